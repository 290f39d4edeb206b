import PeerResolution
import SocketInventory

/// A listener's twin: the same name in the other address space, bound by a
/// process that also holds the listener. The X server listens on the file
/// /tmp/.X11-unix/X0 and on the abstract @/tmp/.X11-unix/X0, and its
/// clients (libxcb tries the abstract name first) are all on the twin, so
/// `kpeer /tmp/.X11-unix/X0` alone would answer "no clients".
public enum PathTwin {
    /// The twin of `answer`'s listener, with its clients; nil when there is
    /// none, or it is held by no process that holds the listener (another
    /// program that merely chose the same name is not this server).
    public static func find(_ answer: PathAnswer, in r: Resolution) -> PathAnswer? {
        let l = answer.listener
        guard let name = l.entry.path, !l.owners.isEmpty else { return nil }
        let target: QueryTarget
        if name.isAbstract {
            // Only an absolute path names the same file for every process.
            let path = String(decoding: name.bytes, as: UTF8.self)
            guard name.bytes.first == UInt8(ascii: "/"), !name.bytes.contains(0),
                  Array(path.utf8) == name.bytes else { return nil }
            target = .file(path)
        } else {
            target = .abstract(name.bytes)
        }
        guard let twin = try? PathQuery.answer(target, in: r), twin.listener.inode != l.inode else { return nil }
        let holders = Set(l.owners.map(\.pid))
        guard twin.listener.owners.contains(where: { holders.contains($0.pid) }) else { return nil }
        return twin
    }
}

extension Render {
    /// `kpeer PATH` with its twin (PathTwin): the clients of PATH as
    /// `clients(_:)` prints them, then the twin's, each line ending with
    /// the twin's name (`@/tmp/.X11-unix/X0`, or an absolute path: never
    /// `pending`), so every line still says where its client connected.
    public static func clients(_ answer: PathAnswer, twin: PathAnswer?) -> String {
        var out = clients(answer)
        guard let twin else { return out }
        let mark = " " + twin.query + "\n"
        for line in clients(twin).split(separator: "\n") { out += line + mark }
        return out
    }
}
