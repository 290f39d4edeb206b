import CKPeer
import KPeerSystem
import SocketInventory

/// Peers as the kernel reports them through sock_diag: UNIX_DIAG_PEER for
/// every socket, UNIX_DIAG_ICONS for every listener's waiting clients.
public enum NetlinkResolver {
    public static func links(from diag: [DiagEntry]) -> PeerLinks {
        var links = PeerLinks()
        links.peer.reserveCapacity(diag.count)
        for e in diag { add(e, to: &links) }
        links.noteTwins(count: diag.count) { diag[$0].inode }
        return links
    }

    /// What the map needs from sock_diag: the peer of every socket, the
    /// clients queued on every listener, and names, which are the dump's
    /// (TrustedRows.named), not the table's. Bound files and queue lengths
    /// are kernel work per socket and bytes to read, for nothing here.
    static let linkAttributes = UInt32(UDIAG_SHOW_PEER | UDIAG_SHOW_ICONS | UDIAG_SHOW_NAME)

    /// The links from a sock_diag dump read as it arrives (never held whole).
    /// Also every inode the dump lists, what vouches for /proc/net/unix
    /// rows, and the names of those that have one.
    static func linksFromDump() throws(KPeerError) -> (PeerLinks, Set<UInt64>, [UInt64: SocketPath]) {
        var links = PeerLinks()
        var known = Set<UInt64>()
        var names: [UInt64: SocketPath] = [:]
        try SockDiag.dump(show: linkAttributes) {
            // One dump lists each socket once: an inode listed again is a
            // second socket with the same number.
            if !known.insert($0.inode).inserted, $0.inode != 0 { links.ambiguous.insert($0.inode) }
            if let name = $0.name { names[$0.inode] = name }
            add($0, to: &links)
        }
        return (links, known, names)
    }

    @inline(__always)
    static func add(_ e: DiagEntry, to links: inout PeerLinks) {
        // 0 is an embryo (a client's peer before accept) or a peer that
        // is already closed: neither is a socket of its own.
        guard e.inode != 0 else { return }
        if let p = e.peer, p != 0 { links.peer[e.inode] = p }
        if e.rawState == 10 {  // TCP_LISTEN
            for client in e.icons where client != 0 { links.pendingOn[client] = e.inode }
        }
    }

    /// Every socket of this network namespace. The sock_diag dump and
    /// /proc/net/unix are both formatted by the kernel as they are read:
    /// they are read at the same time, on two threads.
    public static func resolveAll(owners: OwnerTable) throws(KPeerError) -> PeerMap {
        try map(read(scanning: nil), owners: owners)
    }

    /// The dump and the table, each on a thread; with `scan` (the
    /// descriptor scan, on threads of its own), that too beside them: the
    /// dump is kernel time, and on more than one core it then adds no wall
    /// time of its own. Nothing is matched until all are in, and they are
    /// matched by inode, which names one socket whichever was read first.
    static func read(scanning scan: (() -> OwnerTable)?) -> Both {
        let work = Both()
        Parallel.run(scan == nil ? 2 : 3) { slot in
            switch slot {
            case 0: work.links = Result { () throws(KPeerError) in try NetlinkResolver.linksFromDump() }
            case 1: work.entries = Result { () throws(KPeerError) in try ProcNetUnix.read("/proc/self/net/unix") }
            default: work.owners = scan?()
            }
        }
        return work
    }

    static func map(_ work: Both, owners: OwnerTable) throws(KPeerError) -> PeerMap {
        // The dump's error first, as when they ran one after the other.
        let (links, known, names) = try work.links!.get()
        // Twins in the table (a forged row) are rare: only then is sock_diag
        // asked again, for whole records, to tell the real row.
        let table = try work.entries!.get()
        var entries = Trace.phase("rows vouched") {
            TrustedRows.vouched(table, known: known) {
                guard let all = try? SockDiag.dump(show: UInt32(UDIAG_SHOW_NAME)) else { return nil }
                return Dictionary(all.map { ($0.inode, $0) }, uniquingKeysWith: { a, _ in a })
            }
        }
        Trace.phase("rows named") { TrustedRows.named(&entries, known: { known.contains($0.inode) }, names: { names[$0.inode] }) }
        return Trace.phase("map") { PeerMap(entries: entries, owners: owners, links: links, method: .netlink) }
    }

    /// The results, each written by one thread before the join.
    final class Both: @unchecked Sendable {
        var owners: OwnerTable?
        var links: Result<(PeerLinks, Set<UInt64>, [UInt64: SocketPath]), KPeerError>?
        var entries: Result<[UnixSocketEntry], KPeerError>?
    }
}
