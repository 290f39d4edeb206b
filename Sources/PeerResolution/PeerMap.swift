import KPeerSystem
import SocketInventory
import TypeOffsets

/// How peers were found.
public enum Method: String, Sendable {
    /// struct unix_sock.peer read from /proc/kcore.
    case kcore
    /// The kernel's sock_diag netlink interface.
    case netlink
}

/// What a resolver established between sockets. Only verified links go in.
public struct PeerLinks: Sendable, Equatable {
    /// Socket inode → the inode of its peer socket.
    public var peer: [UInt64: UInt64] = [:]
    /// A client not accepted yet → the listener it waits on.
    public var pendingOn: [UInt64: UInt64] = [:]
    public init() {}
}

/// One socket with everything kpeer knows about it.
public struct ResolvedSocket: Sendable {
    public var entry: UnixSocketEntry
    public var owners: [Owner]
    public var peer: UInt64?
    public var pendingOn: UInt64?
    /// Clients waiting in this listener's accept queue.
    public var pending: [UInt64] = []
    /// Sockets that connect()ed to this one without it pointing back (datagram).
    public var senders: [UInt64] = []

    public var inode: UInt64 { entry.inode }
}

/// The answer for a whole machine (or the part that was asked for).
public struct PeerMap: Sendable {
    public var method: Method
    /// The unix_sock.peer offset used (kcore only).
    public var offset: MemberOffset?
    /// Why `auto` did not use kcore, when it did not.
    public var fallbackReason: String?
    /// Sorted by inode; embryos (inode 0) are not sockets of their own here.
    public private(set) var sockets: [ResolvedSocket]
    private var index: [UInt64: Int]
    private let ownerTable: OwnerTable

    public init(entries: [UnixSocketEntry], owners: OwnerTable, links: PeerLinks, method: Method,
                offset: MemberOffset? = nil, excluding excluded: Set<UInt64> = []) {
        self.method = method
        self.offset = offset
        self.ownerTable = owners
        var seen = Set<UInt64>()
        var list: [ResolvedSocket] = []
        list.reserveCapacity(entries.count)
        for e in entries where e.inode != 0 && !excluded.contains(e.inode) && seen.insert(e.inode).inserted {
            list.append(ResolvedSocket(entry: e, owners: owners.owners(of: e.inode),
                                       peer: links.peer[e.inode], pendingOn: links.pendingOn[e.inode]))
        }
        list.sort { $0.inode < $1.inode }
        var index: [UInt64: Int] = [:]
        index.reserveCapacity(list.count)
        for (i, s) in list.enumerated() { index[s.inode] = i }
        // The reverse views: who waits on a listener, who sends to a socket
        // that does not point back.
        for (client, listener) in links.pendingOn {
            if let i = index[listener] { list[i].pending.append(client) }
        }
        for (s, p) in links.peer where links.peer[p] != s {
            if let i = index[p] { list[i].senders.append(s) }
        }
        for i in list.indices {
            list[i].pending.sort()
            list[i].senders.sort()
        }
        self.sockets = list
        self.index = index
    }

    public subscript(inode: UInt64) -> ResolvedSocket? {
        index[inode].map { sockets[$0] }
    }

    /// Owners of any socket, including ones not listed (a peer that
    /// appeared after the inventory was read).
    public func owners(of inode: UInt64) -> [Owner] {
        if let s = self[inode] { return s.owners }
        return ownerTable.owners(of: inode)
    }

    /// Keeps only the given sockets (for `kpeer INODE --json`).
    public func restricted(to inodes: Set<UInt64>) -> PeerMap {
        var copy = self
        copy.sockets = sockets.filter { inodes.contains($0.inode) }
        copy.index = [:]
        for (i, s) in copy.sockets.enumerated() { copy.index[s.inode] = i }
        return copy
    }

    /// The seed's `socket_peer INODE`: the processes holding the peer, or
    /// an error saying why there are none.
    public func peerOwners(of inode: UInt64) throws(KPeerError) -> [Owner] {
        guard let s = self[inode] else {
            throw KPeerError(.notFound, "no unix socket has inode \(inode)", fix: "list them with kpeer --all")
        }
        if let p = s.peer {
            let owners = self.owners(of: p)
            if owners.isEmpty {
                throw KPeerError(.peerUnheld, "the peer of \(inode) (inode \(p)) is held by no process",
                                 fix: "it is in flight in an SCM_RIGHTS message or being closed; try again")
            }
            return owners
        }
        if let l = s.pendingOn {
            let holders = describe(self.owners(of: l))
            let path = self[l]?.entry.path.map { " (\($0.display))" } ?? ""
            throw KPeerError(.peerUnheld, "\(inode) is waiting in the accept queue of listener \(l)\(path) held by \(holders)",
                             fix: "that process has not accept()ed the connection yet")
        }
        switch s.entry.state {
        case .listening:
            throw KPeerError(.noPeer, "\(inode) is a listening socket with \(s.pending.count) pending client(s); it has no peer",
                             fix: "its accepted connections are separate sockets: see kpeer --all")
        default:
            if !s.senders.isEmpty {
                let list = s.senders.map { "\($0) (\(describe(self.owners(of: $0))))" }.joined(separator: ", ")
                throw KPeerError(.noPeer, "\(inode) has no peer of its own; sockets sending to it: \(list)")
            }
            throw KPeerError(.noPeer, "\(inode) is not connected to any socket")
        }
    }

    private func describe(_ owners: [Owner]) -> String {
        owners.isEmpty ? "no process" : owners.map { "\($0.pid)/\($0.name)" }.joined(separator: ",")
    }
}
