import Testing
@testable import KernelMemory
@testable import KPeerSystem
@testable import PeerResolution
@testable import SocketInventory
@testable import TypeOffsets

/// A connected socket whose pointer fails the self-check, among enough
/// verified ones not to refuse the offset: kpeer must not call it "not
/// connected" (status 1); it says it could not verify it (status 70).
@Suite(.layered) struct KcoreUnverifiedTests {
    @Test func aPointerThatFailsTheCheckIsNotNoPeer() throws {
        let w = SlotKernel.standard()
        w.socket(20, inode: 60)
        w.socket(21, inode: 61)
        w.point(20, to: 21)   // 60 → 61, but 61 points elsewhere
        w.point(21, to: 0)
        let (links, check) = try w.links()
        #expect(check.failed >= 1 && check.verified > check.failed)
        #expect(links.peer[60] == nil)
        #expect(links.unverified.contains(60))
        let map = PeerMap(entries: w.entries, owners: OwnerTable(), links: links, method: .kcore)
        #expect(kindOf { _ = try map.peerOwners(of: 60) } == .refused)
        // A socket that simply has no peer is still "no peer".
        #expect(kindOf { _ = try map.peerOwners(of: 40) } == .noPeer)
    }

    /// A wrong offset landing on pointers to other objects that read zero
    /// there looks like "every peer already closed": nothing verified, so
    /// nothing is proven, and the offset is refused.
    @Test func onlyClosedPeersAndNothingVerifiedIsRefused() throws {
        let w = SlotKernel()
        w.socket(0, inode: 1); w.socket(1, inode: 2)
        w.point(0, to: 1); w.point(1, to: 0)
        let wrong = SlotKernel.peerOffset + 8
        // Slot 30 is no socket and all zeroes: a "closed peer" at any offset.
        w.core.poke(w.address(0) + UInt64(wrong), w.address(30))
        w.core.poke(w.address(1) + UInt64(wrong), w.address(30))
        #expect(kindOf { _ = try w.links(offset: SlotKernel.option(wrong)) } == .refused)
    }
}
