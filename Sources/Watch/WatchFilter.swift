import CKPeer
import Glibc
import KPeerSystem
import SocketInventory

/// What `kpeer --watch` was asked to watch: everything, or a socket (INODE),
/// the sockets bound to a name (PATH, @NAME), a process (--pid), a type.
public enum WatchTarget: Equatable, Sendable {
    case inode(UInt64)
    case file([UInt8])
    case abstract([UInt8])
}

/// Which events are printed. A watched socket's connections are followed:
/// once a client connects to a watched listener, its accept and both ends'
/// closes belong to the watch too.
public struct WatchFilter: Sendable {
    /// The sockets asked about (empty: any).
    public var inodes: Set<UInt64> = []
    public var pid: Int32?
    public var type: SocketType?
    /// Sockets born of a watched one, until they close.
    private(set) var following: Set<UInt64> = []

    public init(inodes: Set<UInt64> = [], pid: Int32? = nil, type: SocketType? = nil) {
        self.inodes = inodes; self.pid = pid; self.type = type
    }

    public var isEverything: Bool { inodes.isEmpty && pid == nil && type == nil }

    /// Whether `e` is printed; learns which sockets follow a watched one.
    public mutating func admit(_ e: WatchEvent) -> Bool {
        if let type, e.type != type { return false }
        if let pid, e.process?.pid != pid, e.peerProcess?.pid != pid { return false }
        guard !inodes.isEmpty else { return true }
        let ends = [e.inode, e.peer, e.listener].compactMap { $0 }
        let watched = ends.contains { inodes.contains($0) || following.contains($0) }
        guard watched else { return false }
        switch e.kind {
        case .connect, .accept, .pair, .send:
            for s in [e.inode, e.peer].compactMap({ $0 }) where !inodes.contains(s) { following.insert(s) }
        case .close:
            following.remove(e.inode)
        }
        return true
    }

    /// The sockets a target names, in kpeer's network namespace, from
    /// sock_diag: an inode as given (it may connect later); for a file, the
    /// sockets bound to that very file (matched by its inode and device,
    /// never by name); for @NAME, those bound to that abstract name.
    public static func sockets(for target: WatchTarget, entries: () throws(KPeerError) -> [DiagEntry] = {
        () throws(KPeerError) in try SockDiag.dump(show: UInt32(UDIAG_SHOW_NAME | UDIAG_SHOW_VFS))
    }) throws(KPeerError) -> Set<UInt64> {
        switch target {
        case .inode(let v):
            return [v]
        case .abstract(let name):
            let found = Set(try entries().filter { $0.name == SocketPath(bytes: name, isAbstract: true) }.map(\.inode))
            guard !found.isEmpty else {
                throw KPeerError(.notFound, "nothing is bound to @\(Escape.bytes(name)) in this network namespace",
                                 fix: "give the name as kpeer --all or ss -xl shows it")
            }
            return found
        case .file(let path):
            let file = try boundFile(path)
            let found = Set(try entries().filter {
                guard let v = $0.vfs else { return false }
                return BoundFile(diagInode: v.inode, diagDevice: v.device) == file
            }.map(\.inode))
            guard !found.isEmpty else {
                throw KPeerError(.notFound, "nothing is bound to \(Escape.bytes(path)) (a stale socket file?)",
                                 fix: "give the path of a socket a server is listening on")
            }
            return found
        }
    }

    static func boundFile(_ path: [UInt8]) throws(KPeerError) -> BoundFile {
        var st = stat()
        let shown = Escape.bytes(path)
        let rc = (path + [0]).withUnsafeBufferPointer { p in
            p.withMemoryRebound(to: CChar.self) { stat($0.baseAddress!, &st) }
        }
        guard rc == 0 else {
            let e = errno
            throw .unreachable(shown, by: "cannot stat", errno: e, fix: "give the path of a unix socket")
        }
        guard st.st_mode & S_IFMT == S_IFSOCK else {
            throw KPeerError(.notFound, "\(shown) is not a socket", fix: "give the path of a unix socket")
        }
        return BoundFile(statInode: UInt64(st.st_ino), statDevice: UInt64(st.st_dev))
    }
}
