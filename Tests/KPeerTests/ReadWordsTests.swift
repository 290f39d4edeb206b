import Testing
@testable import KernelMemory

/// KernelMemory.readWords against readWord at each address, and against the
/// bytes this test put in its synthetic core.
@Suite(.layered) struct ReadWordsTests {
    static let base: UInt64 = 0xffff_8880_0000_0000
    static let page: UInt64 = 4096
    /// Where each segment of `core()` lies.
    static let a = base                        // 2 pages
    static let b = base + 2 * page             // 1 page, adjacent to a: a separate file range
    static let c = base + 0x10_0000            // 1 page in the file, 3 in memory
    static let d = base + 0x20_0000            // 1 page
    static let top: UInt64 = 0xffff_ffff_ffff_e000  // 1 page, ending one page below 2^64

    /// A core with random bytes in every segment.
    static func core(seed: UInt64) throws -> (SyntheticCore, KernelMemory) {
        let core = SyntheticCore()
        core.add(vaddr: a, size: Int(2 * page))
        core.add(vaddr: b, size: Int(page))
        core.add(vaddr: c, size: Int(page), memsz: 3 * page)
        core.add(vaddr: d, size: Int(page))
        core.add(vaddr: top, size: Int(page))
        var rng = SplitMix64(seed: seed)
        for i in core.segments.indices {
            core.segments[i].bytes = core.segments[i].bytes.map { _ in UInt8(truncatingIfNeeded: rng.next()) }
        }
        let mem = try KernelMemory(path: try core.write())
        return (core, mem)
    }

    /// The word at `address` from the core's own bytes: each of its eight
    /// bytes in some segment (zero past a segment's file bytes), else nil.
    static func expected(_ core: SyntheticCore, _ address: UInt64) -> UInt64? {
        var v: UInt64 = 0
        for k in 0..<UInt64(8) {
            let (at, over) = address.addingReportingOverflow(k)
            if over { return nil }
            guard let s = core.segments.first(where: { at >= $0.vaddr && at - $0.vaddr < $0.memsz }) else { return nil }
            let rel = Int(at - s.vaddr)
            v |= UInt64(rel < s.bytes.count ? s.bytes[rel] : 0) << (8 * k)
        }
        return v
    }

    /// readWords(addresses) equals readWord at each and the core's bytes;
    /// its preads are those readWord makes for the same addresses.
    func check(_ core: SyntheticCore, _ mem: KernelMemory, _ addresses: [UInt64], _ label: String) {
        var single: [UInt64?] = []
        var singlePreads = 0
        for address in addresses {
            let before = mem.preads
            single.append(try? mem.readWord(address))
            singlePreads += mem.preads - before
        }
        let before = mem.preads
        let got = mem.readWords(addresses)
        let made = mem.preads - before
        #expect(got.count == addresses.count, "\(label)")
        var wrong: [String] = []
        for (i, address) in addresses.enumerated() where i < got.count {
            let truth = Self.expected(core, address)
            if got[i] != single[i] || got[i] != truth {
                wrong.append("0x\(String(address, radix: 16)): readWords \(got[i].map { String($0, radix: 16) } ?? "nil"), readWord \(single[i].map { String($0, radix: 16) } ?? "nil"), core \(truth.map { String($0, radix: 16) } ?? "nil")")
            }
        }
        #expect(wrong.isEmpty, "\(label): \(wrong.count) wrong, first \(wrong.prefix(4))")
        #expect(made == singlePreads, "\(label): readWords made \(made) preads, readWord \(singlePreads)")
    }

    @Test func interleavedSegmentsOnePreadAWord() throws {
        let (core, mem) = try Self.core(seed: 11)
        var rng = SplitMix64(seed: 12)
        // In-file words only, switching segment at nearly every address
        // (and back), aligned and not, the first one outside segments[0].
        let inFile: [(UInt64, UInt64)] = [(Self.a, 2 * Self.page), (Self.b, Self.page), (Self.c, Self.page), (Self.d, Self.page), (Self.top, Self.page)]
        var addresses: [UInt64] = []
        for i in 0..<2000 {
            let (start, size) = inFile[(i * 3 + Int(rng.next() % 2)) % inFile.count]
            addresses.append(start + rng.next() % (size - 7))
        }
        addresses += [Self.a, Self.a + 2 * Self.page - 8, Self.b, Self.b + Self.page - 8, Self.c + Self.page - 8, Self.top + Self.page - 8]
        let before = mem.preads
        let got = mem.readWords(addresses)
        #expect(mem.preads - before == addresses.count, "one pread a word in a segment's file bytes")
        let truth = addresses.map { Self.expected(core, $0) }
        #expect(got == truth, "seed 11/12")
        #expect(!truth.contains(nil))
        check(core, mem, addresses, "seed 11/12 in file")
    }

    @Test func straddlesHolesAndEdges() throws {
        let (core, mem) = try Self.core(seed: 21)
        var addresses: [UInt64] = []
        for k in UInt64(1)...7 {
            addresses.append(Self.b - k)                       // a into b: two segments, both read
            addresses.append(Self.c + Self.page - k)           // file bytes into the zero part
            addresses.append(Self.b + Self.page - k)           // b into the gap after it: nil
            addresses.append(Self.c + 3 * Self.page - k)       // c's end into the gap: nil
            addresses.append(Self.a - k)                       // the gap into a: nil
            addresses.append(Self.top + Self.page - k)         // top's end into the gap: nil
            addresses.append(UInt64.max - k + 1)               // wraps past 2^64: nil
        }
        addresses += [
            Self.c + Self.page, Self.c + 2 * Self.page + 100, Self.c + 3 * Self.page - 8,  // the zero part: 0
            Self.a - 8, Self.b + Self.page, Self.d - 8, Self.d + Self.page, Self.c - 1,      // gaps
            0, 8, 0x62d4_0516, Self.base - Self.page, UInt64.max, UInt64.max - 8, Self.top - 8, Self.top + Self.page,
        ]
        // The same addresses in two orders: readWords starts from the last
        // segment it used.
        check(core, mem, addresses, "edges")
        check(core, mem, addresses.reversed(), "edges reversed")
        // Spot checks of the truth itself: the zero part reads 0, a gap nil.
        #expect(Self.expected(core, Self.c + 2 * Self.page) == 0)
        #expect(Self.expected(core, Self.b + Self.page - 1) == nil)
        #expect(Self.expected(core, Self.b - 1) != nil)
    }

    @Test func randomMixture() throws {
        for seed: UInt64 in [31, 0xfeed, UInt64.random(in: 0...UInt64.max)] {
            let (core, mem) = try Self.core(seed: seed)
            var rng = SplitMix64(seed: seed)
            let starts = [Self.a, Self.b, Self.c, Self.d, Self.top]
            let addresses: [UInt64] = (0..<5000).map { _ in
                switch rng.next() % 4 {
                case 0: return rng.next()                                      // anything
                case 1: return starts[Int(rng.next() % 5)] &- 16 &+ rng.next() % 48  // near a start
                default: return starts[Int(rng.next() % 5)] &+ rng.next() % (3 * Self.page + 16)  // in or just past
                }
            }
            check(core, mem, addresses, "seed \(seed)")
        }
    }

    @Test func noAddressesNoPreads() throws {
        let (_, mem) = try Self.core(seed: 41)
        let before = mem.preads
        #expect(mem.readWords([]).isEmpty)
        #expect(mem.preads == before)
    }
}
