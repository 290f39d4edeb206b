import KPeerSystem
import SocketInventory

/// `kpeer INODE` asks about one socket: its answer rests on a few rows of
/// /proc/net/unix, not on all of them. Those rows, checked against memory
/// like any (RowVerifier), are all the kcore pipeline reads then:
/// - the rows of that inode (a forged twin among them is checked in full);
/// - the rows at the address its peer pointer holds, the rows that share
///   their inode (an inode two sockets share is refused, as in a listing),
///   and for an embryo the listener it waits on;
/// - kpeer's own calibration pair (the pid anchor).
/// A listener (its answer is its clients), a socket not in the table, or
/// any row that does not check out leaves the decision to the whole table
/// (nil). So does an answer that is not a list of holders: Resolver.resolve
/// asks again without the focus, so that the rarer answers (pending, in
/// flight, closed, unverified) rest on every row, as they always did.
enum FocusRows {
    static func select(_ focus: UInt64, in table: [UnixSocketEntry], verifier: RowVerifier,
                       pair: Calibration.Pair?) -> [UnixSocketEntry]? {
        guard verifier.peerAt != nil else { return nil }
        let own: Set<UInt64> = pair.map { [$0.inodes.0, $0.inodes.1] } ?? []
        var first = table.filter { $0.inode == focus || own.contains($0.inode) }
        let asked = first.filter { $0.inode == focus }
        guard !asked.isEmpty, !asked.contains(where: \.isListening) else { return nil }
        let ok = verifier.verifyAll(&first)
        guard !ok.contains(false) else { return nil }
        // What the asked-about rows point at.
        let peers = Set(asked.compactMap { verifier.peerWords[$0.address] }.filter { $0 != 0 })
        var chosen = Set(first.map(\.address))
        var second: [UnixSocketEntry] = []
        func take(_ e: UnixSocketEntry) {
            if chosen.insert(e.address).inserted { second.append(e) }
        }
        let atPeers = table.filter { peers.contains($0.address) }
        let twinned = Set(atPeers.map(\.inode).filter { $0 != 0 })
        let waitedOn = Set(atPeers.filter { $0.inode == 0 }.compactMap { e in e.path.map { KcoreResolver.ListenerKey(netns: e.netns, path: $0) } })
        for e in table {
            if peers.contains(e.address) || (e.inode != 0 && twinned.contains(e.inode)) {
                take(e)
            } else if e.isListening, e.inode != 0, let p = e.path, waitedOn.contains(KcoreResolver.ListenerKey(netns: e.netns, path: p)) {
                take(e)
            }
        }
        guard !verifier.verifyAll(&second).contains(false) else { return nil }
        return TrustedRows.uniqueAddresses(first + second, vouched: true)
    }
}
