import Testing
@testable import KernelMemory
@testable import KPeerSystem
@testable import PeerResolution
@testable import SocketInventory
@testable import TypeOffsets

/// The resolver on a synthetic kernel: fake unix_sock structs at fake
/// kernel addresses in an ELF core, and a /proc/net/unix table naming them.
@Suite(.layered) struct KcoreResolverTests {
    @Test func verifiedLinksOnly() throws {
        let w = SlotKernel.standard()
        let (links, check) = try w.links()
        #expect(links.peer == [1: 2, 2: 1, 20: 21])
        #expect(links.pendingOn == [11: 10])
        #expect(check.closed == 1)
        #expect(check.failed == 0)
        let map = PeerMap(entries: w.entries, owners: OwnerTable(), links: links, method: .kcore)
        #expect(map[21]?.senders == [20])
        #expect(map[10]?.pending == [11])
        #expect(map[30]?.peer == nil)
        #expect(kindOf { _ = try map.peerOwners(of: 40) } == .noPeer)
        #expect(kindOf { _ = try map.peerOwners(of: 11) } == .peerUnheld)
        #expect(kindOf { _ = try map.peerOwners(of: 99) } == .notFound)
        // The facts behind those words, as the world above laid them out.
        #expect(map.peerAnswer(of: 1) == .none(.peerUnheld(peer: 2, .unknown)))  // no owner table here
        #expect(map.peerAnswer(of: 11) == .none(.pending(listener: 10, path: map[10]?.entry.path, holders: [])))
        #expect(map.peerAnswer(of: 10) == .none(.listening(pending: 1)))
        #expect(map.peerAnswer(of: 21) == .none(.receivesFrom([.init(inode: 20, holders: [])])))
        #expect(map.peerAnswer(of: 30) == .none(.peerClosed))
        #expect(map.peerAnswer(of: 40) == .none(.unconnected))
        #expect(map.peerAnswer(of: 99) == .none(.noSocket))
    }

    @Test func aWrongOffsetIsRefused() throws {
        let w = SlotKernel.standard()
        for wrong in [SlotKernel.peerOffset - 8, SlotKernel.peerOffset + 8, 8, 512] {
            #expect(kindOf { _ = try w.links(offset: SlotKernel.option(wrong)) } == .refused)
        }
    }

    /// A wrong offset that lands on a field that is zero everywhere reads no
    /// pointer at all; connected stream sockets must have one, so it is refused
    /// rather than reported as "no peers".
    @Test func aWrongOffsetReadingOnlyZeroesIsRefused() throws {
        let w = SlotKernel.standard()
        let zeroed = SlotKernel.peerOffset + 16
        for slot in 0..<10 { w.core.poke(w.address(slot) + UInt64(zeroed), 0) }
        #expect(kindOf { _ = try w.links(offset: SlotKernel.option(zeroed)) } == .refused)
    }

    @Test func twoListenersOnOnePathAttributeNothing() throws {
        let w = SlotKernel.standard()
        w.socket(10, inode: 50, listening: true, path: "/run/s")  // rebound after unlink
        let (links, check) = try w.links()
        #expect(links.pendingOn[11] == nil)
        #expect(check.unattributed == 1)
    }

    @Test func hashedOrZeroAddressesAreUnavailable() throws {
        let w = SlotKernel.standard()
        let r = try w.resolver()
        var hashed = w.entries
        for i in hashed.indices { hashed[i].address = UInt64(i * 7919 + 0x62d4_0000) }
        #expect(kindOf { _ = try r.links(hashed) } == .unavailable)
        var zero = w.entries
        for i in zero.indices { zero[i].address = 0 }
        #expect(kindOf { _ = try r.links(zero) } == .unavailable)
    }

    @Test func calibrationFindsTheOffsetFromAPair() throws {
        for offset in [8, 776, 1000] {
            let w = SlotKernel(peerOffset: offset)
            w.socket(0, inode: 1); w.socket(1, inode: 2)
            w.point(0, to: 1); w.point(1, to: 0)
            // A decoy: slot 0 holds slot 1's address elsewhere, one-way.
            w.core.poke(w.address(0) + 64, w.address(1))
            let mem = try w.memory()
            let found = try Calibration.offset(memory: mem, socket: w.address(0), entries: w.entries,
                                               expectedPeer: w.address(1), window: 1024, origin: "test")
            #expect(found.value == offset)
            #expect(found.source == .calibration)
        }
    }

    @Test func ambiguousCalibrationIsRefused() throws {
        let w = SlotKernel()
        w.socket(0, inode: 1); w.socket(1, inode: 2)
        w.point(0, to: 1); w.point(1, to: 0)
        w.core.poke(w.address(0) + 128, w.address(1))
        w.core.poke(w.address(1) + 128, w.address(0))
        let mem = try w.memory()
        #expect(kindOf {
            _ = try Calibration.offset(memory: mem, socket: w.address(0), entries: w.entries, window: 1024, origin: "t")
        } == .refused)
    }

    /// A remembered unix_sock.addr offset is believed only where memory
    /// bears it out: a kernel pointer in every named socket, NULL in every
    /// unnamed one.
    @Test func theAddrOffsetIsCheckedAgainstMemory() throws {
        let w = SlotKernel.standard()
        let addr = 768
        for e in w.entries {
            w.core.poke(e.address + UInt64(addr), e.path == nil ? 0 : w.address(60))
        }
        let r = try w.resolver()
        #expect(r.addrOffsetHolds(addr, in: w.entries))
        // Any other word of the struct fails: noise is no kernel pointer,
        // and the peer word is nonzero where a socket has no name.
        for wrong in [addr - 8, addr + 8, SlotKernel.peerOffset, 0] {
            #expect(!r.addrOffsetHolds(wrong, in: w.entries), "offset \(wrong)")
        }
    }
}
