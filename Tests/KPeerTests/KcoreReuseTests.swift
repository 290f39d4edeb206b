import Testing
@testable import KernelMemory
@testable import KPeerSystem
@testable import PeerResolution
@testable import SocketInventory
@testable import TypeOffsets

/// Sockets freed between the read of /proc/net/unix and the read of kernel
/// memory, their unix_sock reused by another socket: the pointers then
/// describe the new socket, and the table's inode is no longer its. The
/// peer-of-peer check alone cannot see that; the second table read can.
@Suite(.layered) struct KcoreReuseTests {
    static let offset = SlotKernel.option()

    func resolve(_ w: SlotKernel, reread: [UnixSocketEntry]?) throws -> (PeerLinks, KcoreResolver.Check) {
        var r = try w.resolver()
        if let reread { r.reread = { () throws(KPeerError) -> [UnixSocketEntry] in reread } }
        return try r.links(w.entries)
    }

    /// With the owner scan made after memory is read: the table is read
    /// again only when a judgement rests on a socket no process holds.
    func resolve(_ w: SlotKernel, held: [UInt64], reread: [UnixSocketEntry], offset: MemberOffset = Self.offset) throws
        -> (links: PeerLinks, check: KcoreResolver.Check, rereads: Int) {
        var r = try w.resolver(offset: offset)
        let calls = Counter()
        r.reread = { () throws(KPeerError) -> [UnixSocketEntry] in calls.n += 1; return reread }
        r.liveOwners = {
            var t = OwnerTable()
            for (k, inode) in held.enumerated() { t.byInode[inode] = [Owner(pid: Int32(10 + k), name: "p", fd: 3)] }
            return t
        }
        let (links, check) = try r.links(w.entries)
        return (links, check, calls.n)
    }

    final class Counter { var n = 0 }

    @Test func socketsStillHeldNeedNoSecondTable() throws {
        let w = SlotKernel()
        anchor(w)
        w.socket(0, inode: 100); w.socket(1, inode: 200)
        w.point(0, to: 1); w.point(1, to: 0)
        w.socket(2, inode: 300, state: 1)  // unconnected, held by no one: nothing rests on it
        w.point(2, to: nil)
        let r = try resolve(w, held: [1, 2, 100, 200], reread: [])
        #expect(r.rereads == 0)
        #expect(r.links.peer == [1: 2, 2: 1, 100: 200, 200: 100])
        #expect(r.check.changed == 0)
    }

    /// The standard world (a pair, a pending client and its embryo, a
    /// datagram pair, a closed peer) with every socket held: no second
    /// table, and the links the frozen table gives. The embryo is no one's,
    /// but its client is held and connected, so it is pinned. A datagram
    /// target no one holds is not: that sends kpeer to the table again.
    @Test func theEmbryoOfAHeldClientNeedsNoSecondTable() throws {
        let w = SlotKernel.standard()
        let (frozen, _) = try resolve(w, reread: nil)
        let all = w.entries.map(\.inode).filter { $0 != 0 }
        let r = try resolve(w, held: all, reread: w.entries)
        #expect(r.rereads == 0)
        #expect(r.links == frozen)
        #expect(r.links.pendingOn[11] == 10)
        let dgramTargetGone = try resolve(w, held: all.filter { $0 != 21 }, reread: w.entries)
        #expect(dgramTargetGone.rereads == 1)
        #expect(dgramTargetGone.links == frozen)
    }

    /// 100↔200 listed connected; 200 closes before memory is read (it NULLs
    /// its own pointer and leaves the table; 100's reference keeps the
    /// struct). 100 is still held: 200 must not count as pinned, or a right
    /// offset fails the self-check. Found in review.
    @Test func aPeerClosedMeanwhileIsNotPinned() throws {
        let w = SlotKernel()
        anchor(w)
        for k in 0..<3 {
            w.socket(10 + 2 * k, inode: UInt64(700 + 2 * k)); w.socket(11 + 2 * k, inode: UInt64(701 + 2 * k))
            w.point(10 + 2 * k, to: 11 + 2 * k); w.point(11 + 2 * k, to: nil)  // the peer released
        }
        let later = w.entries.filter { $0.inode < 700 || $0.inode % 2 == 0 }
        let r = try resolve(w, held: [1, 2, 700, 702, 704], reread: later)
        #expect(r.rereads == 1)
        #expect(r.check.failed == 0)
        #expect(r.links.peer == [1: 2, 2: 1])
    }

    /// The table is printed over time. Slot 4's row, printed before client
    /// 11's, is an embryo queued on /run/a that was accepted and freed; 11
    /// then connected to /run/b and its embryo took slot 4. Memory shows 11 ↔
    /// slot 4: pinning slot 4 would put 11 in /run/a's queue. Only a peer row
    /// printed after its pinner's may be pinned. Found in review.
    @Test func aPeerRowPrintedBeforeItsPinnerIsNotTrusted() throws {
        let w = embryoPrintedFirst()
        var later = w.entries
        let i = try #require(later.firstIndex { $0.address == w.address(4) })
        later[i].path = SocketPath(bytes: Array("/run/b".utf8), isAbstract: false)
        let r = try resolve(w, held: [1, 2, 10, 11, 12], reread: later)
        #expect(r.rereads == 1)
        #expect(r.links.pendingOn[11] == nil)
        // Printed the other way round, the embryo row is the one 11 pins.
        let v = SlotKernel()
        anchor(v)
        v.socket(2, inode: 10, listening: true, path: "/run/a")
        v.socket(3, inode: 11)
        v.socket(4, inode: 0, path: "/run/a")
        v.point(3, to: 4); v.point(4, to: 3)
        let pinned = try resolve(v, held: [1, 2, 10, 11], reread: [])
        #expect(pinned.rereads == 0)
        #expect(pinned.links.pendingOn[11] == 10)
    }

    /// Listeners 10 on /run/a and 12 on /run/b; an embryo row on /run/a
    /// printed before its client 11's, which is connected to it.
    func embryoPrintedFirst() -> SlotKernel {
        let w = SlotKernel()
        anchor(w)
        w.socket(2, inode: 10, listening: true, path: "/run/a")
        w.socket(5, inode: 12, listening: true, path: "/run/b")
        w.socket(4, inode: 0, path: "/run/a")
        w.socket(3, inode: 11)
        w.point(3, to: 4); w.point(4, to: 3)
        return w
    }

    /// An embryo row printed before its client's is trusted when memory
    /// shows it shares its listener's `addr` (the offset BTF gives with the
    /// peer's); not when it shares another listener's, nor without the offset.
    @Test func anEarlierEmbryoRowIsTrustedWhenItSharesItsListenersAddr() throws {
        let addr = 8
        let offset = MemberOffset(value: SlotKernel.peerOffset, source: .btf, origin: "test", addrOffset: addr)
        func world(embryoAddr: UInt64) -> SlotKernel {
            let w = embryoPrintedFirst()
            w.core.poke(w.address(2) + UInt64(addr), 0xffff_8880_1234_0000)  // /run/a's unix_address
            w.core.poke(w.address(5) + UInt64(addr), 0xffff_8880_5678_0000)  // /run/b's
            w.core.poke(w.address(4) + UInt64(addr), embryoAddr)
            return w
        }
        func run(_ w: SlotKernel, _ o: MemberOffset) throws -> (PeerLinks, Int) {
            let r = try resolve(w, held: [1, 2, 10, 11, 12], reread: w.entries, offset: o)
            return (r.links, r.rereads)
        }
        let same = try run(world(embryoAddr: 0xffff_8880_1234_0000), offset)
        #expect(same.1 == 0)
        #expect(same.0.pendingOn[11] == 10)
        let other = try run(world(embryoAddr: 0xffff_8880_5678_0000), offset)  // the row is stale
        #expect(other.1 == 1)
        var noAddr = offset
        noAddr.addrOffset = nil
        #expect(try run(world(embryoAddr: 0xffff_8880_1234_0000), noAddr).1 == 1)
    }

    /// The reuse of aReusedSocketStructGivesNoLink, seen by the owner scan:
    /// 100 and 200 are held by no one any more, so the table is read again,
    /// and it shows their slots taken by 300 and 400.
    @Test func aSocketNoLongerHeldSendsKpeerBackToTheTable() throws {
        let w = SlotKernel()
        anchor(w)
        w.socket(0, inode: 100); w.socket(1, inode: 200)
        w.point(0, to: 1); w.point(1, to: 0)
        var later = replacing(w.entries, slot: w.address(0), inode: 300)
        later = replacing(later, slot: w.address(1), inode: 400)
        let r = try resolve(w, held: [1, 2, 300, 400], reread: later)
        #expect(r.rereads == 1)
        #expect(r.links.peer == [1: 2, 2: 1])
        #expect(r.check.changed == 2)
    }

    /// A datagram pair 100→200 (200 held by no one: the table is read
    /// again) and a stream pair 500↔600 held at the owner scan that closed
    /// before the second table read. The scan proved 500 and 600 were those
    /// sockets while memory was read: their link stays. (Found by the VM
    /// churn check: kcore gave ~9% fewer answers than netlink on the same
    /// churn.)
    @Test func aSocketHeldAtTheScanStaysProvedWhenTheTableIsReadAgain() throws {
        let w = SlotKernel()
        anchor(w)
        w.socket(0, inode: 100, type: .dgram, state: 1); w.socket(1, inode: 200, type: .dgram, state: 1)
        w.point(0, to: 1); w.point(1, to: nil)
        w.socket(2, inode: 500); w.socket(3, inode: 600)
        w.point(2, to: 3); w.point(3, to: 2)
        var later = replacing(w.entries, slot: w.address(2), inode: nil)
        later = replacing(later, slot: w.address(3), inode: nil)
        let r = try resolve(w, held: [1, 2, 100, 500, 600], reread: later)
        #expect(r.rereads == 1)
        #expect(r.links.peer[500] == 600)
        #expect(r.links.peer[600] == 500)
        #expect(r.links.peer[100] == 200)
        #expect(r.check.changed == 0)
    }

    /// A true pair 1↔2 that stays, so the self-check has something verified.
    func anchor(_ w: SlotKernel) {
        w.socket(40, inode: 1); w.socket(41, inode: 2)
        w.point(40, to: 41); w.point(41, to: 40)
    }

    func replacing(_ entries: [UnixSocketEntry], slot address: UInt64, inode: UInt64?) -> [UnixSocketEntry] {
        var out = entries
        if let i = out.firstIndex(where: { $0.address == address }) {
            if let inode { out[i].inode = inode } else { out.remove(at: i) }
        }
        return out
    }

    /// The table said slot 0 is socket 100 and slot 1 socket 200. Socket 100
    /// closed, its struct went to a new socket 300 that connected to 200's
    /// slot — now held by 400. Memory shows slot 0 ↔ slot 1 pointing at each
    /// other: without the second read that is a link 100↔200, which never existed.
    @Test func aReusedSocketStructGivesNoLink() throws {
        let w = SlotKernel()
        anchor(w)
        w.socket(0, inode: 100); w.socket(1, inode: 200)
        w.point(0, to: 1); w.point(1, to: 0)
        let (blind, _) = try resolve(w, reread: nil)
        #expect(blind.peer[100] == 200, "control: the frozen table does believe the pair")

        var later = replacing(w.entries, slot: w.address(0), inode: 300)
        later = replacing(later, slot: w.address(1), inode: 400)
        let (links, check) = try resolve(w, reread: later)
        #expect(links.peer == [1: 2, 2: 1])
        #expect(check.changed == 2)
        #expect(check.failed == 0)
    }

    /// The reader is the same socket both times, but its peer's address now
    /// names another socket (reused) or no socket (freed): no link either way.
    @Test(arguments: [UInt64(777), nil])
    func aPeerAddressThatChangedGivesNoLink(_ newInode: UInt64?) throws {
        let w = SlotKernel()
        anchor(w)
        w.socket(0, inode: 100); w.socket(1, inode: 200)
        w.point(0, to: 1); w.point(1, to: 0)
        let later = replacing(w.entries, slot: w.address(1), inode: newInode)
        let (links, check) = try resolve(w, reread: later)
        #expect(links.peer[100] == nil)
        #expect(links.peer[200] == nil)
        #expect(links.peer[1] == 2)
        #expect(check.changed == 2)
    }

    /// An embryo's slot taken by an embryo of another listener: the waiting
    /// client is not attributed to the first listener.
    @Test func aReusedEmbryoIsNotAttributed() throws {
        let w = SlotKernel()
        anchor(w)
        w.socket(2, inode: 10, listening: true, path: "/run/a")
        w.socket(3, inode: 11)
        w.socket(4, inode: 0, path: "/run/a")
        w.point(3, to: 4); w.point(4, to: 3)
        let (blind, _) = try resolve(w, reread: w.entries)
        #expect(blind.pendingOn == [11: 10], "control: unchanged, the client is pending on /run/a")

        var later = w.entries
        let i = try #require(later.firstIndex { $0.address == w.address(4) })
        later[i].path = SocketPath(bytes: Array("/run/b".utf8), isAbstract: false)
        let (links, check) = try resolve(w, reread: later)
        #expect(links.pendingOn.isEmpty)
        #expect(check.changed == 2)  // the client's pointer, and the embryo's own
    }

    /// Churn: many sockets gone by the second read, their slots full of
    /// whatever the allocator left. Without the second read that would look
    /// like a wrong offset and be refused; with it they are set aside.
    @Test func churnedSocketsDoNotFailTheSelfCheck() throws {
        let w = SlotKernel.standard()
        for slot in 20..<36 {
            w.socket(slot, inode: UInt64(1000 + slot))
            w.core.poke(w.address(slot) + UInt64(SlotKernel.peerOffset), 0x4141_4141_4141_4141)
        }
        #expect(kindOf { _ = try resolve(w, reread: nil) } == .refused, "control")
        let later = w.entries.filter { $0.inode < 1000 }
        let (links, check) = try resolve(w, reread: later)
        #expect(links.peer == [1: 2, 2: 1, 20: 21])
        #expect(links.pendingOn == [11: 10])
        #expect(check.changed == 16)
        #expect(check.failed == 0)
    }

    /// Nothing changed: the second read keeps every true link.
    @Test func anUnchangedTableKeepsEveryLink() throws {
        let w = SlotKernel.standard()
        let (before, _) = try resolve(w, reread: nil)
        let (after, check) = try resolve(w, reread: w.entries)
        #expect(after.peer == before.peer)
        #expect(after.pendingOn == before.pendingOn)
        #expect(check.changed == 0)
    }
}
