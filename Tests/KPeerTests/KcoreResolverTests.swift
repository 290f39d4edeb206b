import Testing
@testable import KernelMemory
@testable import KPeerSystem
@testable import PeerResolution
@testable import SocketInventory
@testable import TypeOffsets

/// The resolver on a synthetic kernel: fake unix_sock structs at fake
/// kernel addresses in an ELF core, and a /proc/net/unix table naming them.
struct KcoreResolverTests {
    static let base: UInt64 = 0xffff_8880_0400_0000
    static let size: UInt64 = 1024
    static let peerOffset = 776

    /// A small world: socket slot i lives at base + i*1024.
    final class World {
        let core = SyntheticCore()
        var entries: [UnixSocketEntry] = []
        var peerOffset: Int

        init(peerOffset: Int = KcoreResolverTests.peerOffset) {
            self.peerOffset = peerOffset
            core.add(vaddr: KcoreResolverTests.base, size: 64 * Int(KcoreResolverTests.size))
        }

        func address(_ slot: Int) -> UInt64 { KcoreResolverTests.base + UInt64(slot) * KcoreResolverTests.size }

        func socket(_ slot: Int, inode: UInt64, type: SocketType = .stream, state: UInt8 = 3,
                    listening: Bool = false, path: String? = nil, inTable: Bool = true) {
            // Noise everywhere else in the struct, as a real one has.
            for o in stride(from: 8, to: Int(KcoreResolverTests.size), by: 8) where o != peerOffset {
                core.poke(address(slot) + UInt64(o), 0xdead_0000_0000_0000 | UInt64(slot << 16 | o))
            }
            core.poke(address(slot) + UInt64(peerOffset), 0)
            if inTable {
                entries.append(UnixSocketEntry(address: address(slot), refCount: 2,
                                               flags: listening ? UnixSocketEntry.acceptConnections : 0,
                                               rawType: type.rawValue, rawState: listening ? 1 : state, inode: inode,
                                               path: path.map { SocketPath(bytes: Array($0.utf8), isAbstract: false) }))
            }
        }

        func point(_ from: Int, to: Int?) {
            core.poke(address(from) + UInt64(peerOffset), to.map(address) ?? 0)
        }

        func memory() throws -> KernelMemory { try KernelMemory(path: try core.write()) }
    }

    /// Pair 1↔2, listener 10 with pending client 11 (embryo in slot 12),
    /// dgram 20→21, socket 30 whose peer (slot 31) closed, lonely 40.
    static func standardWorld() -> World {
        let w = World()
        w.socket(0, inode: 1); w.socket(1, inode: 2)
        w.point(0, to: 1); w.point(1, to: 0)
        w.socket(2, inode: 10, listening: true, path: "/run/s")
        w.socket(3, inode: 11)
        w.socket(4, inode: 0, path: "/run/s")  // the embryo
        w.point(3, to: 4); w.point(4, to: 3)
        w.socket(5, inode: 20, type: .dgram, state: 1)
        w.socket(6, inode: 21, type: .dgram, state: 1, path: "/run/d")
        w.point(5, to: 6)
        w.socket(7, inode: 30)
        w.socket(8, inode: 31, inTable: false)  // closed: gone from the table, its peer NULL
        w.point(7, to: 8)
        w.socket(9, inode: 40, state: 1)
        return w
    }

    func resolve(_ w: World, offset: Int) throws -> (PeerLinks, KcoreResolver.Check) {
        try KcoreResolver(memory: try w.memory(), offset: MemberOffset(value: offset, source: .option, origin: "test"))
            .links(w.entries)
    }

    @Test func verifiedLinksOnly() throws {
        let w = Self.standardWorld()
        let (links, check) = try resolve(w, offset: Self.peerOffset)
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
    }

    @Test func aWrongOffsetIsRefused() throws {
        let w = Self.standardWorld()
        for wrong in [Self.peerOffset - 8, Self.peerOffset + 8, 8, 512] {
            #expect(kindOf { _ = try resolve(w, offset: wrong) } == .refused)
        }
    }

    /// A wrong offset that lands on a field that is zero everywhere reads no
    /// pointer at all; connected stream sockets must have one, so it is refused
    /// rather than reported as "no peers".
    @Test func aWrongOffsetReadingOnlyZeroesIsRefused() throws {
        let w = Self.standardWorld()
        let zeroed = Self.peerOffset + 16
        for slot in 0..<10 { w.core.poke(w.address(slot) + UInt64(zeroed), 0) }
        #expect(kindOf { _ = try resolve(w, offset: zeroed) } == .refused)
    }

    @Test func twoListenersOnOnePathAttributeNothing() throws {
        let w = Self.standardWorld()
        w.socket(10, inode: 50, listening: true, path: "/run/s")  // rebound after unlink
        let (links, check) = try resolve(w, offset: Self.peerOffset)
        #expect(links.pendingOn[11] == nil)
        #expect(check.unattributed == 1)
    }

    @Test func hashedOrZeroAddressesAreUnavailable() throws {
        let w = Self.standardWorld()
        let mem = try w.memory()
        let r = KcoreResolver(memory: mem, offset: MemberOffset(value: Self.peerOffset, source: .option, origin: "t"))
        var hashed = w.entries
        for i in hashed.indices { hashed[i].address = UInt64(i * 7919 + 0x62d4_0000) }
        #expect(kindOf { _ = try r.links(hashed) } == .unavailable)
        var zero = w.entries
        for i in zero.indices { zero[i].address = 0 }
        #expect(kindOf { _ = try r.links(zero) } == .unavailable)
    }

    @Test func calibrationFindsTheOffsetFromAPair() throws {
        for offset in [8, 776, 1000] {
            let w = World(peerOffset: offset)
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
        let w = World()
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
        let w = Self.standardWorld()
        let addr = 768
        for e in w.entries {
            w.core.poke(e.address + UInt64(addr), e.path == nil ? 0 : w.address(60))
        }
        let r = KcoreResolver(memory: try w.memory(), offset: MemberOffset(value: Self.peerOffset, source: .option, origin: "t"))
        #expect(r.addrOffsetHolds(addr, in: w.entries))
        // Any other word of the struct fails: noise is no kernel pointer,
        // and the peer word is nonzero where a socket has no name.
        for wrong in [addr - 8, addr + 8, Self.peerOffset, 0] {
            #expect(!r.addrOffsetHolds(wrong, in: w.entries), "offset \(wrong)")
        }
    }
}
