import KPeerSystem
import PeerResolution
import SocketInventory

/// `kpeer --all --format dot`: a Graphviz digraph. Processes are boxes;
/// a connection is an edge from the client's process to the server's,
/// labelled with the socket's path and type (the same pair of processes,
/// path and type drawn once, with a count); listening sockets are ellipses
/// held by their process, with dashed edges from clients still waiting in
/// their accept queue. A socket end several processes hold is drawn at the
/// first (lowest pid), `+N` beside it; the others are tied to that one by
/// a dotted `shares` edge.
public enum Dot {
    struct Edge: Hashable, Comparable {
        var from: String
        var to: String
        var label: [String]
        var attrs: String

        static func < (a: Edge, b: Edge) -> Bool {
            (a.from, a.to, a.label.joined(separator: "\n"), a.attrs) < (b.from, b.to, b.label.joined(separator: "\n"), b.attrs)
        }
    }

    /// A double-quoted DOT label of several lines. The parts are already
    /// escaped for output (Escape.bytes: no control, bidi, invisible or
    /// line-breaking character is left), so what remains is DOT's own
    /// syntax: `\\` and `"`, and `&`, since Graphviz turns an entity in a
    /// label into its character (a process named `&#x202e;` would show
    /// U+202E): `&amp;` shows as `&`.
    static func quote(_ lines: [String]) -> String {
        var out = "\""
        for (i, line) in lines.enumerated() {
            if i > 0 { out += "\\n" }
            for c in line.unicodeScalars {
                switch c {
                case "\\": out += "\\\\"
                case "\"": out += "\\\""
                case "&": out += "&amp;"
                case _ where c.value < 0x20 || c.value == 0x7F: out += "?"
                default: out.unicodeScalars.append(c)
                }
            }
        }
        return out + "\""
    }

    static func typeWord(_ e: UnixSocketEntry) -> String { e.type?.name ?? "type \(e.rawType)" }

    public static func graph(_ map: PeerMap, ownNetns: UInt64 = 0) -> String {
        var processes: [Int32: String] = [:]
        var unheld = Set<UInt64>()
        var listeners: [String: String] = [:]
        var edges: [Edge: Int] = [:]
        /// Sockets drawn, whose other holders are tied to the first below.
        var drawn = Set<UInt64>()

        /// The node a socket end is drawn at: its first process (lowest
        /// pid), or the socket itself when no process holds it; and how
        /// many other processes hold it.
        func holder(_ inode: UInt64) -> (id: String, others: Int) {
            let owners = map.owners(of: inode)
            guard let first = owners.first else {
                unheld.insert(inode)
                return ("s\(inode)", 0)
            }
            processes[first.pid] = first.name
            drawn.insert(inode)
            return ("p\(first.pid)", owners.count == 1 ? 0 : Render.processes(owners).count - 1)
        }
        func netnsNote(_ e: UnixSocketEntry) -> [String] {
            e.netns != 0 && e.netns != ownNetns && ownNetns != 0 ? [NetNamespace.label(e.netns)] : []
        }
        /// One edge per connection, between the first processes of its
        /// ends (n holders on each end are one edge, not n²); `+N` at an
        /// end held by N more processes.
        func connect(_ from: UInt64, _ to: String, _ label: [String], _ attrs: String) {
            connect(holder(from), (to, 0), label, attrs)
        }
        func connect(_ a: (id: String, others: Int), _ b: (id: String, others: Int), _ label: [String], _ attrs: String) {
            var attrs = attrs.isEmpty ? [] : [attrs]
            if a.others > 0 { attrs.append("taillabel=\"+\(a.others)\"") }
            if b.others > 0 { attrs.append("headlabel=\"+\(b.others)\"") }
            edges[Edge(from: a.id, to: b.id, label: label, attrs: attrs.joined(separator: ", ")), default: 0] += 1
        }
        func listenerNode(_ s: ResolvedSocket) -> String {
            let id = "l\(s.inode)"
            if listeners[id] == nil {
                let path = s.entry.path.map(\.display) ?? "(unnamed)"
                listeners[id] = quote([path, "\(typeWord(s.entry)) listener \(s.inode)"] + netnsNote(s.entry))
                connect(s.inode, id, [], "style=dotted, arrowhead=none")
            }
            return id
        }

        for s in map.sockets {
            let e = s.entry
            if e.isListening {
                let l = listenerNode(s)
                for c in s.pending { connect(c, l, ["pending"], "style=dashed, color=darkorange") }
                continue
            }
            if let p = s.peer {
                let other = map[p]
                // A peer filtered out of the map is still connected back,
                // unless this is a datagram socket (connect is one-way).
                let mutual = other.map { $0.peer == s.inode } ?? (e.type != .dgram)
                // Both ends listed: the lower inode draws the pair.
                if mutual && other != nil && p < s.inode { continue }
                // An accepted socket carries its listener's path: that end is the server.
                let serverIsS = mutual && e.path != nil && other?.entry.path == nil
                let shown = serverIsS ? e : (other?.entry ?? e)
                let name = shown.path?.display ?? (mutual && e.type != .dgram ? "socketpair" : nil)
                let label = (name.map { [$0] } ?? []) + [typeWord(e)] + netnsNote(e)
                if serverIsS {
                    connect(holder(p), holder(s.inode), label, "")
                } else {
                    connect(holder(s.inode), holder(p), label, e.type == .dgram ? "style=bold" : "")
                }
            } else if let l = s.pendingOn, map[l] == nil {
                // Its listener is filtered out: still draw where it waits.
                connect(s.inode, "l\(l)", ["pending"], "style=dashed, color=darkorange")
                if listeners["l\(l)"] == nil { listeners["l\(l)"] = quote(["listener \(l)"]) }
            }
        }
        // The other holders of a drawn socket (forked workers, passed
        // descriptors): one dotted `shares` edge to its first process per
        // pair of processes, counted, rather than a copy of every edge.
        for inode in drawn {
            let owners = Render.processes(map.owners(of: inode))
            for o in owners.dropFirst() {
                processes[o.pid] = o.name
                edges[Edge(from: "p\(o.pid)", to: "p\(owners[0].pid)", label: ["shares"], attrs: "style=dotted, arrowhead=none"), default: 0] += 1
            }
        }

        var out = "digraph kpeer {\n"
        out += "  graph [rankdir=LR, fontname=\"Helvetica\"];\n"
        out += "  node [shape=box, style=rounded, fontname=\"Helvetica\", fontsize=11];\n"
        out += "  edge [fontname=\"Helvetica\", fontsize=9];\n"
        for pid in processes.keys.sorted() {
            let name = Escape.bytes(Array(processes[pid]!.utf8))
            out += "  p\(pid) [label=\(quote([String(pid), name]))];\n"
        }
        // Processes of one container drawn together.
        out += Identity.dotClusters(processes.keys.sorted(), identities: map.identities)
        for inode in unheld.sorted() {
            out += "  s\(inode) [shape=box, style=dashed, label=\"socket \(inode)\\n(no process)\"];\n"
        }
        for id in listeners.keys.sorted() {
            out += "  \(id) [shape=ellipse, label=\(listeners[id]!)];\n"
        }
        for (edge, count) in edges.sorted(by: { $0.key < $1.key }) {
            var label = edge.label
            if count > 1 { label.append("×\(count)") }
            var attrs: [String] = []
            if !label.isEmpty { attrs.append("label=\(quote(label))") }
            if !edge.attrs.isEmpty { attrs.append(edge.attrs) }
            out += "  \(edge.from) -> \(edge.to)" + (attrs.isEmpty ? "" : " [" + attrs.joined(separator: ", ") + "]") + ";\n"
        }
        return out + "}\n"
    }
}
