import Glibc
import KPeerSystem
import SocketInventory

/// What `kpeer ARG` asks about: a socket inode, a socket file, or an
/// abstract name.
public enum QueryTarget: Equatable, Sendable {
    case inode(UInt64)
    case file(String)
    case abstract([UInt8])

    /// Digits are an inode; `@name` an abstract name; anything with a `/`
    /// a file (so `./sock` works). Anything else is a usage error.
    public static func parse(_ arg: String) throws(KPeerError) -> QueryTarget {
        let bytes = Array(arg.utf8)
        if let first = bytes.first, first == UInt8(ascii: "@") {
            guard bytes.count > 1 else {
                throw KPeerError(.usage, "'@' names no abstract socket", fix: "give @NAME as ss or netstat show it")
            }
            return .abstract(Array(bytes.dropFirst()))
        }
        if bytes.contains(UInt8(ascii: "/")) { return .file(arg) }
        guard !bytes.isEmpty, bytes.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else {
            throw KPeerError(.usage, "'\(Escape.bytes(bytes))' is not a socket inode, path or @name",
                             fix: "give the inode netstat, ss or lsof show, a socket file (with a /), or @abstract")
        }
        guard let v = UInt64(arg), v <= UInt32.max, v > 0 else {
            throw KPeerError(.usage, "inode \(arg) is out of range (socket inodes are 1 to \(UInt32.max))",
                             fix: "give the number netstat, ss or lsof show in the inode column")
        }
        return .inode(v)
    }
}

/// One client of a listening (or bound datagram) socket.
public struct PathClient: Sendable, Equatable {
    /// The client's own socket.
    public var inode: UInt64
    public var owners: [Owner]
    /// Still in the listener's accept queue.
    public var pending: Bool
    /// The server's end: the socket accept() returned (stream, seqpacket).
    public var acceptedAs: UInt64?
}

/// The answer to `kpeer PATH` or `kpeer @name`.
public struct PathAnswer: Sendable {
    /// As the user gave it (a file path) or `@name`.
    public var query: String
    /// The socket bound there: a listener, or a bound datagram socket.
    public var listener: ResolvedSocket
    /// Connected clients first, then pending ones; each by pid of its first
    /// owner, then inode.
    public var clients: [PathClient]
}

/// `kpeer PATH`: every client of the socket bound to a file or an abstract
/// name. A file is matched by inode and device (sock_diag's UNIX_DIAG_VFS
/// against stat(2)), never by name: a socket whose file was unlinked and
/// bound again is a different socket, and its clients are not these.
public enum PathQuery {
    /// The file at `path`, which must be a socket. Missing, or not a socket:
    /// `.notFound` (exit 2).
    public static func boundFile(at path: String) throws(KPeerError) -> BoundFile {
        var st = stat()
        guard stat(path, &st) == 0 else {
            let e = errno
            throw .unreachable(display(path), by: "cannot stat", errno: e, fix: "give the path of a listening unix socket")
        }
        guard st.st_mode & S_IFMT == S_IFSOCK else {
            throw KPeerError(.notFound, "\(display(path)) is not a socket", fix: "give the path of a listening unix socket")
        }
        return BoundFile(statInode: UInt64(st.st_ino), statDevice: UInt64(st.st_dev))
    }

    static func display(_ path: String) -> String { Escape.bytes(Array(path.utf8)) }

    /// Answers a `.file` or `.abstract` target from a resolution that has
    /// bound files (Resolver.resolve(_:boundFiles: true)).
    public static func answer(_ target: QueryTarget, in r: Resolution) throws(KPeerError) -> PathAnswer {
        let map = r.map
        let query: String
        let bound: [ResolvedSocket]
        switch target {
        case .inode:
            preconditionFailure("an inode is not a path query")
        case .file(let path):
            query = display(path)
            let file = try boundFile(at: path)
            guard let files = r.boundFiles else {
                throw KPeerError(.unavailable, "which socket is bound to \(query) is known only to sock_diag, which is unavailable",
                                 fix: "load the unix_diag module (modprobe unix_diag)")
            }
            bound = map.sockets.filter { files[$0.inode] == file }
        case .abstract(let name):
            // Abstract names belong to a network namespace: kpeer's own, as
            // for connect(2). They have no file, so the name is all there is.
            let path = SocketPath(bytes: name, isAbstract: true)
            query = path.display
            bound = map.sockets.filter { $0.entry.path == path && r.netns(of: $0.entry) == r.ownNetns }
        }
        // Accepted sockets carry their listener's address (and file) too;
        // the socket bound there is the listener, or a datagram socket.
        guard let listener = bound.first(where: { $0.entry.isListening })
            ?? bound.first(where: { $0.entry.type == .dgram }) else {
            if let other = bound.first(where: { $0.peer == nil && $0.pendingOn == nil }) {
                throw KPeerError(.noPeer, "\(query) is bound by socket \(other.inode), which is not listening")
            }
            if case .abstract = target {
                throw KPeerError(.notFound, "no socket is bound to \(query) in kpeer's network namespace",
                                 fix: "list the abstract names with kpeer --all --listening")
            }
            throw KPeerError(.notFound, "no socket is bound to \(query)",
                             fix: "its listener has closed (a stale socket file), or it is in a network namespace kpeer cannot enter")
        }
        var clients: [PathClient] = []
        if listener.entry.isListening {
            for s in bound where !s.entry.isListening && s.entry.rawType == listener.entry.rawType {
                guard let client = s.peer else { continue }  // the client has gone
                clients.append(PathClient(inode: client, owners: map.owners(of: client), pending: false, acceptedAs: s.inode))
            }
            for c in listener.pending {
                clients.append(PathClient(inode: c, owners: map.owners(of: c), pending: true, acceptedAs: nil))
            }
        } else {
            for c in listener.senders {
                clients.append(PathClient(inode: c, owners: map.owners(of: c), pending: false, acceptedAs: nil))
            }
        }
        clients.sort { a, b in
            if a.pending != b.pending { return !a.pending }
            let pa = a.owners.first?.pid ?? Int32.max, pb = b.owners.first?.pid ?? Int32.max
            return (pa, a.inode) < (pb, b.inode)
        }
        return PathAnswer(query: query, listener: listener, clients: clients)
    }
}
