import Testing
@testable import KernelMemory
@testable import KPeerSystem
@testable import PeerResolution
@testable import SocketInventory

/// Calibration reads past the end of a unix_sock into the next slab object.
/// Two consecutive pairs laid out as [D][B][A][C] with A↔B and C↔D make
/// A+size+peer hold D and D+size+peer hold A: a false second offset, seen on
/// a real 6.12 kernel with the fixture's pairs. kpeer's own pair settles it.
@Suite(.layered) struct CalibrationNeighbourTests {
    typealias W = SlotKernel
    let off = SlotKernel.peerOffset
    let size = Int(SlotKernel.size)

    func world() -> W {
        let w = W()
        for slot in 0..<4 { w.socket(slot, inode: UInt64(100 + slot)) }
        w.point(2, to: 1); w.point(1, to: 2)   // A = slot 2, B = slot 1
        w.point(3, to: 0); w.point(0, to: 3)   // C = slot 3, D = slot 0
        // kpeer's own pair, not adjacent to each other.
        w.socket(10, inode: 200); w.socket(11, inode: 300); w.socket(12, inode: 201)
        w.point(10, to: 12); w.point(12, to: 10)
        return w
    }

    @Test func theNeighbourMimicsAPeerField() throws {
        let w = world()
        let mem = try w.memory()
        let known = Set(w.entries.map(\.address))
        let found = try Calibration.candidates(memory: mem, socket: w.address(2), known: known, window: 2048)
        #expect(found.map(\.offset) == [off, off + size])
        #expect(kindOf {
            _ = try Calibration.offset(memory: mem, socket: w.address(2), entries: w.entries, window: 2048, origin: "t")
        } == .refused)
    }

    @Test func kpeersOwnPairConfirmsTheRealOffset() throws {
        let w = world()
        let mem = try w.memory()
        let o = try Calibration.offset(memory: mem, socket: w.address(2), entries: w.entries,
                                       confirm: (w.address(10), w.address(12)), window: 2048, origin: "t")
        #expect(o.value == off)
    }
}
