import PeerResolution
import Rendering
import SocketInventory

/// The listing forms, as the seed printed them, with what kpeer adds on top.
enum Listing {
    /// The seed's table; a socket of another network namespace than kpeer's
    /// gets ` net:[INODE]` at the end of its row, so rows of kpeer's own
    /// namespace stay exactly as netstat_unix printed them.
    static func table(_ map: PeerMap, ownNetns: UInt64) -> String {
        let text = Render.table(map)
        guard ownNetns != 0, map.sockets.contains(where: { $0.entry.netns != 0 && $0.entry.netns != ownNetns }) else {
            return text
        }
        // One row per socket, in map order (names and paths are escaped, so
        // a row never holds a newline); anything else: leave it untouched.
        var rows = text.split(separator: "\n", omittingEmptySubsequences: false)
        guard rows.count == map.sockets.count + 2 else { return text }
        for (i, s) in map.sockets.enumerated() where s.entry.netns != 0 && s.entry.netns != ownNetns {
            rows[i + 1] += " " + NetNamespace.label(s.entry.netns)
        }
        return rows.joined(separator: "\n")
    }

    /// `--dump`; with `--pid`, only the lines of that process's own sockets
    /// (a shared socket's other holders are left out).
    static func dump(_ map: PeerMap, pid: Int32?) -> String {
        let text = Render.dump(map)
        guard let pid else { return text }
        let want = Substring(String(pid))
        // Names are escaped for --dump: field 2 is always the pid.
        return text.split(separator: "\n").filter { line in
            let f = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            return f.count == 3 && f[1] == want
        }.map { $0 + "\n" }.joined()
    }

    /// `kpeer PATH`: `PID NAME INODE` per client process, ` pending` for a
    /// client not accepted yet; a client no process holds shows `- -`.
    static func clients(_ answer: PathAnswer) -> String {
        var out = ""
        for c in answer.clients {
            let suffix = c.pending ? " pending\n" : "\n"
            var seen = Set<Int32>()
            let holders = c.owners.filter { seen.insert($0.pid).inserted }
            if holders.isEmpty {
                out += "- - \(c.inode)" + suffix
            }
            for o in holders {
                out += "\(o.pid) \(Escape.bytes(Array(o.name.utf8))) \(c.inode)" + suffix
            }
        }
        return out
    }
}
