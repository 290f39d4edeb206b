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

    static func owners(_ list: [Owner]) -> String {
        "[" + list.map { "{\"pid\":\($0.pid),\"name\":\(string($0.name)),\"fd\":\($0.fd)}" }.joined(separator: ",") + "]"
    }

    /// `{"method":…`, the offset (kcore) and why kcore was not used (auto),
    /// left open for the document's own fields.
    static func header(_ map: PeerMap) -> String {
        var out = "{\"method\":\(string(map.method.rawValue))"
        if let o = map.offset {
            out += ",\"offset\":{\"value\":\(o.value),\"source\":\(string(o.source.rawValue)),\"origin\":\(string(o.origin)),\"remembered\":\(o.remembered)}"
        }
        if let why = map.fallbackReason { out += ",\"fallback_reason\":\(string(why))" }
        return out
    }

    static func ref(_ map: PeerMap, _ inode: UInt64?) -> String {
        guard let inode else { return "null" }
        return "{\"inode\":\(inode),\"owners\":\(owners(map.owners(of: inode)))}"
    }

    /// `ownNetns` names the namespace of sockets the map lists without one
    /// (the netlink resolver reads only kpeer's own).
    public static func document(_ map: PeerMap, ownNetns: UInt64 = 0) -> String {
        var out = header(map)
        out += ",\"sockets\":["
        for (i, s) in map.sockets.enumerated() {
            if i > 0 { out += "," }
            let e = s.entry
            out += "\n{\"inode\":\(s.inode)"
            out += ",\"type\":\(string(e.type?.name ?? "unknown"))"
            out += ",\"state\":\(string(e.state.rawValue))"
            out += ",\"netns\":\(e.netns == 0 ? ownNetns : e.netns)"
            out += ",\"path\":" + (e.path.map { string($0.display) } ?? "null")
            out += ",\"owners\":\(owners(s.owners))"
            out += ",\"peer\":\(ref(map, s.peer))"
            out += ",\"pending_on\":\(ref(map, s.pendingOn))"
            out += ",\"pending\":[" + s.pending.map { ref(map, $0) }.joined(separator: ",") + "]"
            out += ",\"senders\":[" + s.senders.map { ref(map, $0) }.joined(separator: ",") + "]"
            out += "}"
        }
        return out + "\n]}\n"
    }

    /// `kpeer --json PATH`: the socket bound there and its clients.
    public static func pathDocument(_ answer: PathAnswer, map: PeerMap, ownNetns: UInt64 = 0) -> String {
        let l = answer.listener
        var out = header(map)
        out += ",\"query\":\(string(answer.query))"
        out += ",\"listener\":{\"inode\":\(l.inode),\"type\":\(string(l.entry.type?.name ?? "unknown"))"
        out += ",\"state\":\(string(l.entry.state.rawValue)),\"netns\":\(l.entry.netns == 0 ? ownNetns : l.entry.netns)"
        out += ",\"path\":" + (l.entry.path.map { string($0.display) } ?? "null")
        out += ",\"owners\":\(owners(l.owners))}"
        out += ",\"clients\":["
        for (i, c) in answer.clients.enumerated() {
            if i > 0 { out += "," }
            out += "\n{\"inode\":\(c.inode),\"owners\":\(owners(c.owners)),\"pending\":\(c.pending)"
            out += ",\"accepted_as\":" + (c.acceptedAs.map { ref(map, $0) } ?? "null") + "}"
        }
        return out + "\n]}\n"
    }
}
