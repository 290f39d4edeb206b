import PeerResolution
import SocketInventory
import TypeOffsets

/// `--json`: one document, built by hand to keep Foundation out.
public enum JSON {
    public static func string(_ s: String) -> String {
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where u.value < 0x20:
                let h = String(u.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - h.count) + h
            default: out.unicodeScalars.append(u)
            }
        }
        return out + "\""
    }

    /// `"KEY":"NAME"` for a socket's name: the real bytes, as JSON text (a
    /// file's path, or `@` and an abstract name); and when they are not
    /// UTF-8 (so the text shows U+FFFD for some), `"KEY_hex"`, every byte
    /// of that same name in lowercase hex.
    static func name(_ key: String, _ path: SocketPath?) -> String {
        guard let path else { return "\"\(key)\":null" }
        let raw = path.isAbstract ? [UInt8(ascii: "@")] + path.bytes : path.bytes
        let text = String(decoding: raw, as: UTF8.self)
        var out = "\"\(key)\":" + string(text)
        if !text.utf8.elementsEqual(raw) { out += ",\"\(key)_hex\":\"" + hex(raw) + "\"" }
        return out
    }

    /// `"name":"NAME"` of a process, and `"name_hex"` when its comm is not
    /// UTF-8: as for a socket's name, the text shows U+FFFD for those bytes.
    static func processName(_ o: Owner) -> String {
        var out = "\"name\":" + string(o.name)
        if o.nameIsRaw { out += ",\"name_hex\":\"" + hex(o.nameBytes) + "\"" }
        return out
    }

    /// Every byte in lowercase hex.
    static func hex(_ raw: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var hex: [UInt8] = []
        hex.reserveCapacity(raw.count * 2)
        for b in raw { hex += [digits[Int(b >> 4)], digits[Int(b & 15)]] }
        return String(decoding: hex, as: UTF8.self)
    }

    /// Owner objects: pid, name, fd, how the socket is held ("via") and
    /// who the process is ("identity", from the map's owner scan).
    static func owners(_ list: [Owner], _ map: PeerMap) -> String {
        let identities = map.identities
        return "[" + list.map { Identity.ownerJSON($0, identities: identities) }.joined(separator: ",") + "]"
    }

    /// `{"method":…`, the offset (kcore) and why kcore was not used (auto),
    /// left open for the document's own fields.
    static func header(_ map: PeerMap) -> String {
        var out = "{\"method\":\(string(map.method.rawValue))"
        if let o = map.offset {
            out += ",\"offset\":{\"value\":\(o.value),\"source\":\(string(o.source.rawValue)),\"origin\":\(string(o.origin)),\"remembered\":\(o.remembered)}"
        }
        if let why = map.fallbackReason { out += ",\"fallback_reason\":\(string(why))" }
        // An owner scan with holes: an empty owner list is not "no process".
        if let gaps = map.ownerGaps {
            out += ",\"owners_incomplete\":true,\"owners_incomplete_reason\":\(string(gaps))"
        } else {
            out += ",\"owners_incomplete\":false"
        }
        // Why some or all of each socket's "kernel" facts are missing.
        var missing = map.factsUnavailable
        if map.facts == nil && missing.isEmpty {
            missing["all"] = map.method == .kcore ? "not read" : "the netlink method does not read kernel memory"
        }
        if !missing.isEmpty {
            out += ",\"kernel_unavailable\":{" + missing.sorted { $0.key < $1.key }
                .map { "\(string($0.key)):\(string($0.value))" }.joined(separator: ",") + "}"
        }
        return out
    }

    /// A socket's SocketFacts (Docs/CONTRACT.md): null when kernel memory
    /// was not read for it (another method, or not proved stable).
    static func facts(_ f: SocketFacts?) -> String {
        guard let f else { return "null" }
        var parts: [String] = []
        parts.append("\"bound_file\":" + (f.boundFile.map {
            "{\"inode\":\($0.inode),\"device\":\(string("\($0.major):\($0.minor)"))}" } ?? "null"))
        parts.append("\"connector\":" + (f.connector.map {
            "{\"pid\":\($0.pid.map(String.init) ?? "null"),\"uid\":\($0.uid),\"gid\":\($0.gid)}" } ?? "null"))
        parts.append("\"receive_queue\":" + (f.receiveQueue.map {
            "{\"skbs\":\($0.skbs),\"bytes\":\($0.bytes),\"partial\":\($0.partial)}" } ?? "null"))
        parts.append("\"send_queue_bytes\":" + (f.sendBytes.map(String.init) ?? "null"))
        parts.append("\"backlog\":" + (f.backlog.map { "{\"pending\":\($0.pending),\"max\":\($0.max)}" } ?? "null"))
        parts.append("\"carrying\":[" + f.carrying.map(String.init).joined(separator: ",") + "]")
        parts.append("\"senders\":[" + f.senders.map {
            "{\"inode\":\($0.inode.map(String.init) ?? "null"),\"datagrams\":\($0.datagrams),\"bytes\":\($0.bytes)}"
        }.joined(separator: ",") + "]")
        return "{" + parts.joined(separator: ",") + "}"
    }

    static func ref(_ map: PeerMap, _ inode: UInt64?) -> String {
        guard let inode else { return "null" }
        return "{\"inode\":\(inode),\"owners\":\(owners(map.owners(of: inode), map))}"
    }

    /// A listener's clients as `kpeer LISTENER_INODE` lists them: through
    /// the name it is bound to, and its twin's (PathTwin).
    public struct Listener {
        public var answer: PathAnswer
        public var twin: PathAnswer?
        public init(answer: PathAnswer, twin: PathAnswer?) { self.answer = answer; self.twin = twin }
    }

    /// `ownNetns` names the namespace of sockets the map lists without one
    /// (the netlink resolver reads only kpeer's own). With `listener` (kpeer
    /// --json LISTENER_INODE), its `"clients"` and `"twin"` follow the
    /// sockets, as in `--json PATH`.
    public static func document(_ map: PeerMap, ownNetns: UInt64 = 0, listener: Listener? = nil) -> String {
        var out = header(map)
        out += ",\"sockets\":["
        for (i, s) in map.sockets.enumerated() {
            if i > 0 { out += "," }
            let e = s.entry
            out += "\n{\"inode\":\(s.inode)"
            out += ",\"type\":\(string(e.type?.name ?? "unknown"))"
            out += ",\"state\":\(string(e.state.rawValue))"
            out += ",\"netns\":\(e.netns == 0 ? ownNetns : e.netns)"
            out += "," + name("path", e.path)
            out += ",\"owners\":\(owners(s.owners, map))"
            out += ",\"peer\":\(ref(map, s.peer))"
            out += ",\"pending_on\":\(ref(map, s.pendingOn))"
            out += ",\"pending\":[" + s.pending.map { ref(map, $0) }.joined(separator: ",") + "]"
            out += ",\"senders\":[" + s.senders.map { ref(map, $0) }.joined(separator: ",") + "]"
            out += ",\"kernel\":" + facts(map.facts?[s.inode])
            out += ",\"in_flight_to\":" + (map.inFlight(s.inode).map { ref(map, $0) } ?? "null")
            out += "}"
        }
        out += "\n]"
        if let listener {
            out += ",\"clients\":" + clients(listener.answer, map)
            out += ",\"twin\":" + twin(listener.twin, map: map, ownNetns: ownNetns)
        }
        return out + "}\n"
    }

    /// `kpeer --json PATH`: the socket bound there and its clients, and
    /// its twin's (PathTwin), or `"twin":null`. `query` is the name asked
    /// for, as bound (not as printed).
    public static func pathDocument(_ answer: PathAnswer, query: SocketPath, twin found: PathAnswer? = nil,
                                    map: PeerMap, ownNetns: UInt64 = 0) -> String {
        var out = header(map)
        out += "," + name("query", query)
        out += ",\"listener\":" + listener(answer.listener, map: map, ownNetns: ownNetns)
        out += ",\"clients\":" + clients(answer, map)
        out += ",\"twin\":" + twin(found, map: map, ownNetns: ownNetns)
        return out + "}\n"
    }

    static func listener(_ l: ResolvedSocket, map: PeerMap, ownNetns: UInt64) -> String {
        var out = "{\"inode\":\(l.inode),\"type\":\(string(l.entry.type?.name ?? "unknown"))"
        out += ",\"state\":\(string(l.entry.state.rawValue)),\"netns\":\(l.entry.netns == 0 ? ownNetns : l.entry.netns)"
        out += "," + name("path", l.entry.path)
        out += ",\"owners\":\(owners(l.owners, map))"
        return out + ",\"kernel\":" + facts(map.facts?[l.inode]) + "}"
    }

    static func clients(_ answer: PathAnswer, _ map: PeerMap) -> String {
        var out = "["
        for (i, c) in answer.clients.enumerated() {
            if i > 0 { out += "," }
            out += "\n{\"inode\":\(c.inode),\"owners\":\(owners(c.owners, map)),\"pending\":\(c.pending)"
            out += ",\"accepted_as\":" + (c.acceptedAs.map { ref(map, $0) } ?? "null") + "}"
        }
        return out + "\n]"
    }

    /// The twin as `{"query":NAME,"listener":{…},"clients":[…]}`: the name
    /// in the other address space, as bound; null when there is none.
    static func twin(_ twin: PathAnswer?, map: PeerMap, ownNetns: UInt64) -> String {
        guard let twin else { return "null" }
        return "{" + name("query", twin.listener.entry.path) + ",\"listener\":" + listener(twin.listener, map: map, ownNetns: ownNetns)
            + ",\"clients\":" + clients(twin, map) + "}"
    }
}
