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
    /// Sockets whose peer pointer could not be verified (it failed the
    /// self-check below the refusal threshold, or the socket changed while
    /// kpeer read it): "no peer" would be a claim kpeer cannot make.
    public var unverified: Set<UInt64> = []
    /// Inodes that name more than one live socket (the kernel's 32-bit
    /// inode counter wrapped): /proc/PID/fd names a socket only by inode,
    /// so neither their holders nor links through them can be told apart.
    public var ambiguous: Set<UInt64> = []
    public init() {}

    /// Drops every link from or to an ambiguous inode; returns the sockets
    /// whose peer (or listener) was one, with its inode.
    mutating func dropAmbiguous() -> [UInt64: UInt64] {
        guard !ambiguous.isEmpty else { return [:] }
        var lost: [UInt64: UInt64] = [:]
        for (s, p) in peer where ambiguous.contains(p) && !ambiguous.contains(s) { lost[s] = p }
        for (s, l) in pendingOn where ambiguous.contains(l) && !ambiguous.contains(s) { lost[s] = l }
        peer = peer.filter { !ambiguous.contains($0.key) && !ambiguous.contains($0.value) }
        pendingOn = pendingOn.filter { !ambiguous.contains($0.key) && !ambiguous.contains($0.value) }
        return lost
    }

    /// Notes every inode that `inodes` lists more than once.
    mutating func noteTwins(count: Int, _ inode: (Int) -> UInt64) {
        ambiguous.formUnion(WordIndex(count: count, skipping: 0, inode).repeated)
    }
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
    /// The sockets' inodes, in the same (ascending) order: found by binary
    /// search, which beats hashing here and needs no table.
    private var inodes: [UInt64]
    private let ownerTable: OwnerTable
    /// See PeerLinks.unverified.
    public let unverified: Set<UInt64>
    /// See PeerLinks.ambiguous.
    public let ambiguous: Set<UInt64>
    /// Sockets whose peer or listener is an ambiguous inode → that inode.
    public let linkedToAmbiguous: [UInt64: UInt64]
    /// Why an empty owner list may not mean "held by no process" (OwnerTable.gaps).
    public var ownerGaps: String? { ownerTable.gaps }
    /// Processes whose descriptors could not be read (OwnerTable.unreadable).
    public var unreadablePids: [Int32] { ownerTable.unreadable }
    /// pid → who the process is, when the scan was asked (ResolverOptions.identities).
    public var identities: [Int32: ProcessIdentity] { ownerTable.identities }
    /// io_uring rings holding unix sockets this kernel does not name (before 6.14).
    public var ringGaps: String? { ownerTable.ringGaps }
    /// What kernel memory said about those rings (kcore method), for -v.
    public var ringNote: String? { ownerTable.ringNote }
    /// What kernel memory told beyond the peer (kcore, when asked for):
    /// by inode, for sockets proved stable; nil when not read.
    public var facts: [UInt64: SocketFacts]? {
        didSet {
            inFlightTo = [:]
            for (receiver, f) in facts ?? [:] { for c in f.carrying { inFlightTo[c] = receiver } }
        }
    }
    private var inFlightTo: [UInt64: UInt64] = [:]
    /// Features of SocketFacts this kernel or run could not give, and why.
    public var factsUnavailable: [String: String] = [:]
    /// The network namespaces of the processes holding sockets.
    public var namespaces: [NetNamespace] { ownerTable.namespaces }
    /// Built from the rows one socket's answer rests on (FocusRows), not
    /// from the whole table: good for that socket's holders only.
    public var focusedRows = false

    public init(entries: [UnixSocketEntry], owners: OwnerTable, links: PeerLinks, method: Method,
                offset: MemberOffset? = nil, excluding excluded: Set<UInt64> = []) {
        self.method = method
        self.offset = offset
        self.ownerTable = owners
        self.unverified = links.unverified
        self.ambiguous = links.ambiguous
        var links = links
        self.linkedToAmbiguous = links.dropAmbiguous()
        // The inode order is found on (inode, position) pairs: sorting the
        // sockets themselves moves large structs around. The first entry of
        // an inode wins, as /proc/net/unix lists each socket once per
        // namespace it is read in.
        var order: [(inode: UInt64, at: Int)] = []
        order.reserveCapacity(entries.count)
        for (at, e) in entries.enumerated() where e.inode != 0 && (excluded.isEmpty || !excluded.contains(e.inode)) {
            order.append((e.inode, at))
        }
        order.sort { $0.inode != $1.inode ? $0.inode < $1.inode : $0.at < $1.at }
        var list: [ResolvedSocket] = []
        list.reserveCapacity(order.count)
        var inodes: [UInt64] = []
        inodes.reserveCapacity(order.count)
        let anyPending = !links.pendingOn.isEmpty
        var last: UInt64 = 0
        for (inode, at) in order where inode != last {
            last = inode
            inodes.append(inode)
            list.append(ResolvedSocket(entry: entries[at], owners: owners.owners(of: inode),
                                       peer: links.peer[inode], pendingOn: anyPending ? links.pendingOn[inode] : nil))
        }
        // The reverse views: who waits on a listener, who sends to a socket
        // that does not point back.
        var touched: [Int] = []
        for (client, listener) in links.pendingOn {
            if let i = Self.position(of: listener, in: inodes) {
                list[i].pending.append(client)
                touched.append(i)
            }
        }
        for (s, p) in links.peer {
            // list[i].peer is links.peer[p]: the socket at i is p.
            if let i = Self.position(of: p, in: inodes), list[i].peer != s {
                list[i].senders.append(s)
                touched.append(i)
            }
        }
        for i in touched {
            if list[i].pending.count > 1 { list[i].pending.sort() }
            if list[i].senders.count > 1 { list[i].senders.sort() }
        }
        self.sockets = list
        self.inodes = inodes
    }

    /// Where `inode` is in the ascending `inodes`, if it is there.
    @inline(__always)
    static func position(of inode: UInt64, in inodes: [UInt64]) -> Int? {
        inodes.withUnsafeBufferPointer { a -> Int? in
            var lo = 0
            var hi = a.count
            while lo < hi {
                let mid = (lo + hi) >> 1
                if a[mid] < inode { lo = mid + 1 } else { hi = mid }
            }
            return lo < a.count && a[lo] == inode ? lo : nil
        }
    }

    public subscript(inode: UInt64) -> ResolvedSocket? {
        Self.position(of: inode, in: inodes).map { sockets[$0] }
    }

    /// Sockets processes hold that no table lists: other families, sockets
    /// made after the tables were read, and unix sockets of a network
    /// namespace no process is in (NetNamespaces.ofHeldSocket).
    public func heldButUnlisted() -> [(inode: UInt64, owners: [Owner])] {
        ownerTable.byInode.compactMap { inode, owners in self[inode] == nil ? (inode, owners) : nil }
    }

    /// Owners of any socket, including ones not listed (a peer that
    /// appeared after the inventory was read).
    public func owners(of inode: UInt64) -> [Owner] {
        if let i = Self.position(of: inode, in: inodes) { return sockets[i].owners }
        return ownerTable.owners(of: inode)
    }

    /// Keeps only the given sockets (for `kpeer INODE --json`).
    public func restricted(to inodes: Set<UInt64>) -> PeerMap {
        var copy = self
        copy.sockets = sockets.filter { inodes.contains($0.inode) }
        copy.inodes = copy.sockets.map(\.inode)
        return copy
    }

    /// The socket on whose receive queue `inode` is in flight (SCM_RIGHTS),
    /// when kernel memory was read for it (SocketFacts.carrying).
    public func inFlight(_ inode: UInt64) -> UInt64? { inFlightTo[inode] }

    /// The original `socket_peer INODE`: the processes holding the peer,
    /// or the facts of why there are none (Rendering words them as the
    /// error kpeer exits with).
    public func peerAnswer(of inode: UInt64) -> PeerAnswer {
        if ambiguous.contains(inode) { return .none(.ambiguous) }
        guard let s = self[inode] else { return .none(.noSocket) }
        if let p = linkedToAmbiguous[inode] { return .none(.peerAmbiguous(peer: p)) }
        if let p = s.peer {
            let owners = self.owners(of: p)
            guard owners.isEmpty else { return .owners(owners) }
            if let r = inFlight(p) { return .none(.peerUnheld(peer: p, .inFlight(on: r, holders: self.owners(of: r)))) }
            if let rings = ownerTable.ringGaps { return .none(.peerUnheld(peer: p, .inRing(rings))) }
            // An owner scan that could not see everything proves nothing
            // by finding nobody.
            if let gaps = ownerGaps { return .none(.peerUnheld(peer: p, .unseen(gaps))) }
            if facts != nil && factsUnavailable["in_flight"] == nil && factsUnavailable["all"] == nil {
                return .none(.peerUnheld(peer: p, .inFlightNowhere))
            }
            return .none(.peerUnheld(peer: p, .unknown))
        }
        if let l = s.pendingOn {
            return .none(.pending(listener: l, path: self[l]?.entry.path, holders: self.owners(of: l)))
        }
        if unverified.contains(inode) { return .none(.unverified) }
        switch s.entry.state {
        case .listening:
            return .none(.listening(pending: s.pending.count))
        case .connected where s.entry.type == .stream || s.entry.type == .seqpacket:
            // socket->state stays SS_CONNECTED after the other end closes
            // (ss: ESTAB, peer 0); only its holder's close ends it.
            return .none(.peerClosed)
        default:
            if !s.senders.isEmpty { return .none(.receivesFrom(s.senders.map { .init(inode: $0, holders: self.owners(of: $0)) })) }
            return .none(.unconnected)
        }
    }
}

/// What `kpeer INODE` found: the peer's holders, or why there are none.
public enum PeerAnswer: Sendable, Equatable {
    case owners([Owner])
    case none(NoPeer)
}

/// Why `kpeer INODE` names no process, as facts; each has one exit status
/// and one sentence (Rendering's KPeerError(_:inode:)).
public enum NoPeer: Sendable, Equatable {
    /// The inode names more than one live socket (the 32-bit counter wrapped).
    case ambiguous
    /// No unix socket has the inode.
    case noSocket
    /// The peer's inode names more than one live socket.
    case peerAmbiguous(peer: UInt64)
    /// The peer exists, but no process is seen holding it.
    case peerUnheld(peer: UInt64, Unheld)
    /// A client not accepted yet, in the queue of `listener`.
    case pending(listener: UInt64, path: SocketPath?, holders: [Owner])
    /// The peer pointer could not be verified (PeerLinks.unverified).
    case unverified
    /// A listening socket, with `pending` clients waiting.
    case listening(pending: Int)
    /// A connected stream or seqpacket socket whose peer has closed.
    case peerClosed
    /// No peer of its own, but sockets send to it (datagrams).
    case receivesFrom([Socket])
    /// Not connected to any socket.
    case unconnected

    /// A socket and the processes holding it.
    public struct Socket: Sendable, Equatable {
        public var inode: UInt64
        public var holders: [Owner]
    }

    /// What is known of a peer no process is seen holding.
    public enum Unheld: Sendable, Equatable {
        /// In flight in an SCM_RIGHTS message queued on socket `on`.
        case inFlight(on: UInt64, holders: [Owner])
        /// io_uring rings this kernel does not name may hold it (OwnerTable.ringGaps).
        case inRing(String)
        /// The owner scan could not see every process (OwnerTable.gaps).
        case unseen(String)
        /// Kernel memory was read and shows it in flight nowhere.
        case inFlightNowhere
        /// Nothing more is known.
        case unknown
    }
}
