import CoreWriter
import Foundation
import Testing
@testable import KernelMemory
@testable import KPeerSystem

@Suite(.layered) struct KernelMemoryTests {
    static let base: UInt64 = 0xffff_8880_0000_0000

    @Test func mapsProgramHeadersAndTranslates() throws {
        let core = SyntheticCore()
        core.add(vaddr: Self.base, size: 3 * 4096)
        core.add(vaddr: Self.base + 0x10_0000, size: 4096)
        core.poke(Self.base + 0x18, 0x1122_3344_5566_7788)
        core.poke(Self.base + 0x10_0000 + 8, 42)
        let mem = try KernelMemory(path: try core.write())
        #expect(mem.segments.count == 2)
        #expect(mem.segments[0].vaddr == Self.base)
        #expect(mem.segments[1].memsz == 4096)
        #expect(try mem.readWord(Self.base + 0x18) == 0x1122_3344_5566_7788)
        #expect(try mem.readWord(Self.base + 0x10_0000 + 8) == 42)
    }

    @Test func readsAcrossBlockEdgesAndAdjacentSegments() throws {
        let core = SyntheticCore()
        core.add(vaddr: Self.base, size: 2 * 4096)
        core.add(vaddr: Self.base + 2 * 4096, size: 4096)  // adjacent, separate segment
        for i in 0..<(3 * 4096) { core.pokeByte(Self.base + UInt64(i), UInt8(truncatingIfNeeded: i * 7)) }
        let mem = try KernelMemory(path: try core.write())
        let edge = try mem.read(Self.base + 4096 - 5, count: 10)
        #expect(edge == (4091..<4101).map { UInt8(truncatingIfNeeded: $0 * 7) })
        let across = try mem.read(Self.base + 2 * 4096 - 3, count: 6)
        #expect(across == (8189..<8195).map { UInt8(truncatingIfNeeded: $0 * 7) })
        // Exactly the bytes asked for: a word is one pread, a read over two
        // adjacent segments one per segment (their file ranges are apart).
        var before = mem.preads
        #expect(try mem.readWord(Self.base + 4096 + 100) == Self.word(at: 4196))
        #expect(mem.preads == before + 1)
        before = mem.preads
        _ = try mem.read(Self.base + 2 * 4096 - 3, count: 6)
        #expect(mem.preads == before + 2)
    }

    /// The word the pattern `i * 7` puts at byte offset `at`.
    static func word(at: Int) -> UInt64 {
        (0..<8).reduce(UInt64(0)) { $0 | UInt64(UInt8(truncatingIfNeeded: (at + $1) * 7)) << (8 * UInt64($1)) }
    }

    @Test func outsideEverySegmentIsAnError() throws {
        let core = SyntheticCore()
        core.add(vaddr: Self.base, size: 4096)
        core.add(vaddr: Self.base + 3 * 4096, size: 4096)
        let mem = try KernelMemory(path: try core.write())
        #expect(!mem.contains(Self.base - 1))
        #expect(!mem.contains(Self.base + 4096))
        #expect(kindOf { _ = try mem.readWord(0x62d4_0516) } == .refused)           // a hashed value
        #expect(kindOf { _ = try mem.read(Self.base + 4090, count: 16) } == .refused)  // runs into the gap
        #expect(kindOf { _ = try mem.readWord(Self.base + 5 * 4096) } == .refused)
    }

    @Test func beyondFileSizeReadsZeroes() throws {
        let core = SyntheticCore()
        core.add(vaddr: Self.base, size: 4096, memsz: 3 * 4096)
        core.poke(Self.base + 4088, UInt64.max)
        let mem = try KernelMemory(path: try core.write())
        #expect(try mem.readWord(Self.base + 4088) == UInt64.max)
        #expect(try mem.readWord(Self.base + 2 * 4096) == 0)
    }

    @Test func refusesFilesThatAreNotCores() throws {
        let dir = Support.tempDir()
        try Data("not an elf at all".utf8).write(to: URL(fileURLWithPath: dir + "/text"))
        #expect(kindOf { _ = try KernelMemory(path: dir + "/text") } == .badFile)
        #expect(kindOf { _ = try KernelMemory(path: "/bin/true") } == .badFile)  // ELF, not ET_CORE
        #expect(kindOf { _ = try KernelMemory(path: dir + "/missing") } == .badFile)
        let empty = SyntheticCore()
        #expect(kindOf { _ = try KernelMemory(path: try empty.write()) } == .badFile)  // no PT_LOAD
    }
}
