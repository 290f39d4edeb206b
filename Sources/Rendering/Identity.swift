import KPeerSystem
import SocketInventory

/// Who a process is (ProcessIdentity) and how it holds a socket (HoldKind),
/// for every output form: JSON members, the `-e` table's columns, text
/// suffixes, DOT clusters. Pure functions: the callers decide where each
/// goes. Cgroup paths and unit names are chosen by whoever may make
/// cgroups (a user with a delegated subtree): text outputs escape them as
/// names are (Escape.bytes); JSON carries the exact bytes.
public enum Identity {
    // MARK: how a socket is held

    /// `fd`, `thread` or `io_uring`.
    public static func viaWord(_ via: HoldKind) -> String {
        switch via {
        case .fd: "fd"
        case .thread: "thread"
        case .ioUring: "io_uring"
        }
    }

    /// The members an owner object gains, after its `"fd"`: `"via":"fd"`;
    /// `"via":"thread","tid":TID` (the fd is in that thread's own table);
    /// `"via":"io_uring","slot":N` (the fd is the ring's).
    public static func viaJSON(_ via: HoldKind) -> String {
        switch via {
        case .fd: "\"via\":\"fd\""
        case .thread(let tid): "\"via\":\"thread\",\"tid\":\(tid)"
        case .ioUring(let slot): "\"via\":\"io_uring\",\"slot\":\(slot)"
        }
    }

    /// Text for a holder that is not a plain descriptor: `thread TID`,
    /// `io_uring` (with the ring's fd and slot when `detailed`); nil for a
    /// descriptor of the process's own table.
    public static func viaText(_ o: Owner, detailed: Bool = false) -> String? {
        switch o.via {
        case .fd: nil
        case .thread(let tid): detailed ? "thread \(tid) fd \(o.fd)" : "thread \(tid)"
        case .ioUring(let slot): detailed ? "io_uring fd \(o.fd) slot \(slot)" : "io_uring"
        }
    }

    // MARK: JSON

    /// A whole owner object: pid, name, fd, how it is held, and with
    /// `identities` (the scan's, by pid) its `"identity"` (null when the
    /// process was not described).
    public static func ownerJSON(_ o: Owner, identities: [Int32: ProcessIdentity]?) -> String {
        var out = "{\"pid\":\(o.pid)," + JSON.processName(o) + ",\"fd\":\(o.fd)," + viaJSON(o.via)
        if let identities { out += ",\"identity\":" + json(identities[o.pid]) }
        return out + "}"
    }

    /// `{"nspid":[…],"pid_in_namespace":N,"pid_namespace":INODE,"cgroup":{…}}`,
    /// or null. nspid is outermost first (the pid kpeer sees, then each
    /// nested namespace's); pid_in_namespace is its last (what the process
    /// calls itself). Unknown parts are null.
    public static func json(_ id: ProcessIdentity?) -> String {
        guard let id else { return "null" }
        var out = "{\"nspid\":[" + id.nspid.map(String.init).joined(separator: ",") + "]"
        out += ",\"pid_in_namespace\":" + (id.ownPid.map(String.init) ?? "null")
        out += ",\"pid_namespace\":" + (id.pidNamespace.map(String.init) ?? "null")
        out += ",\"cgroup\":" + cgroupJSON(id.cgroup)
        return out + "}"
    }

    /// `{"hierarchy":…,"path":…,"unit":…,"user_unit":…,"slice":…,"container":{"runtime":…,"id":…}}`
    /// (`path_hex` too when the path is not UTF-8), or null.
    public static func cgroupJSON(_ c: CgroupPlacement?) -> String {
        guard let c else { return "null" }
        func opt(_ s: String?) -> String { s.map(JSON.string) ?? "null" }
        var out = "{\"hierarchy\":\(JSON.string(c.hierarchy)),\"path\":\(JSON.string(c.pathText))"
        if !c.pathText.utf8.elementsEqual(c.path) { out += ",\"path_hex\":\"\(JSON.hex(c.path))\"" }
        out += ",\"unit\":\(opt(c.unit)),\"user_unit\":\(opt(c.userUnit)),\"slice\":\(opt(c.slice))"
        out += ",\"container\":" + (c.container.map { "{\"runtime\":\(JSON.string($0.runtime)),\"id\":\(JSON.string($0.id))}" } ?? "null")
        return out + "}"
    }

    // MARK: text

    /// Where the process is, one short cell: the container
    /// (`docker:0123456789ab`), else the unit (`user@1000.service`, with
    /// `/dbus.service` for a user unit), else the cgroup path; `-` unknown.
    /// Escaped.
    public static func placement(_ id: ProcessIdentity?) -> String {
        guard let c = id?.cgroup else { return "-" }
        if let k = c.container { return esc("\(k.runtime):\(k.shortID)") }
        if let u = c.unit { return esc(u + (c.userUnit.map { "/" + $0 } ?? "")) }
        return Escape.bytes(c.path)
    }

    /// The pid namespace cell: `PID@pid:[INODE]`, the process's own pid in
    /// its namespace, when that is not kpeer's; `-` in kpeer's (or unknown).
    public static func namespaceCell(_ id: ProcessIdentity?, ownPidNamespace: UInt64?) -> String {
        guard let id, let ns = id.pidNamespace, ns != ownPidNamespace, let own = id.ownPid else { return "-" }
        return "\(own)@" + ProcessIdentity.label(pidNamespace: ns)
    }

    /// The `-e` table's identity columns for a socket's first owner, each
    /// (text, width with its separator), as Render.writeFactColumns pads: NS-PID,
    /// Cgroup, Held.
    public static func columns(_ owner: Owner?, identity: ProcessIdentity?, ownPidNamespace: UInt64?) -> [(String, Int)] {
        guard let owner else { return [("-", 23), ("-", 33), ("-", 13)] }
        let held = switch owner.via {
        case .fd: "fd"
        case .thread(let tid): "thread:\(tid)"
        case .ioUring(let slot): "io_uring:\(slot)"
        }
        return [(namespaceCell(identity, ownPidNamespace: ownPidNamespace), 23), (placement(identity), 33), (held, 13)]
    }

    /// The header of `columns`, to insert where they go.
    public static let columnsHeader = "NS-PID                 Cgroup                           Held         "

    /// -v lines about one holder: how it holds the socket, its pids and
    /// namespace, its unit and container, its cgroup path. Escaped.
    public static func lines(_ o: Owner, identity id: ProcessIdentity?, ownPidNamespace: UInt64?) -> [String] {
        var out: [String] = []
        let who = "process \(o.pid) (\(o.escapedName))"
        if let v = viaText(o, detailed: true) { out.append("\(who) holds it through \(v)") }
        guard let id else { return out }
        if let ns = id.pidNamespace, ns != ownPidNamespace {
            let own = id.ownPid.map { "pid \($0)" } ?? "a pid"
            out.append("\(who) is \(own) in \(ProcessIdentity.label(pidNamespace: ns)) (pids from kpeer's namespace down: \(id.nspid.map(String.init).joined(separator: " ")))")
        }
        if let c = id.cgroup {
            var parts: [String] = []
            if let u = c.unit { parts.append("unit \(esc(u))") }
            if let u = c.userUnit { parts.append("user unit \(esc(u))") }
            if let k = c.container { parts.append("\(esc(k.runtime)) container \(esc(k.id))") }
            parts.append("cgroup \(Escape.bytes(c.path))")
            out.append("\(who): " + parts.joined(separator: ", "))
        }
        return out
    }

    /// A connector's pid (sk_peer_pid) as text: the pid in kpeer's pid
    /// namespace, or why there is none.
    public static func connectorPid(_ pid: Int32?) -> String {
        pid.map(String.init) ?? "outside kpeer's pid namespace"
    }

    static func esc(_ s: String) -> String { Escape.bytes(Array(s.utf8)) }

    // MARK: DOT

    /// `subgraph cluster_N { … }` blocks, one per container with processes
    /// among `pids`, listing their nodes (`pPID`, as Dot names processes),
    /// labelled `RUNTIME ID12`. Put after the node statements: a node named
    /// in a cluster is drawn inside it. Empty when no process is in a
    /// container.
    public static func dotClusters(_ pids: [Int32], identities: [Int32: ProcessIdentity]) -> String {
        var groups: [ContainerRef: [Int32]] = [:]
        for pid in pids {
            if let c = identities[pid]?.cgroup?.container { groups[c, default: []].append(pid) }
        }
        var out = ""
        let ordered = groups.keys.sorted { ($0.runtime, $0.id) < ($1.runtime, $1.id) }
        for (n, c) in ordered.enumerated() {
            out += "  subgraph cluster_\(n) {\n"
            out += "    label=\(Dot.quote([esc(c.runtime) + " " + esc(c.shortID)])); style=dashed; color=gray40;\n"
            out += "    " + groups[c]!.sorted().map { "p\($0);" }.joined(separator: " ") + "\n"
            out += "  }\n"
        }
        return out
    }
}
