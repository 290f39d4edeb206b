import Testing
@testable import PeerResolution
@testable import Rendering
@testable import SocketInventory

/// The -e table's fact cells, written straight into the row: each case's
/// cells are spelled out here as Docs/CONTRACT.md gives them, padded to the
/// header's widths (13, 9, 9, 17, 21, 9, each with its separator).
@Suite(.layered)
struct FactColumnsTests {
    static func cells(_ f: SocketFacts?) -> String {
        var out = ByteOutput(expected: 256)
        Render.writeFactColumns(f, into: &out)
        out.endRow()
        return out.finish()
    }

    static func padded(_ cells: [String]) -> String {
        zip(cells, [13, 9, 9, 17, 21, 9]).map { c, w in c + String(repeating: " ", count: max(w - 1 - c.utf8.count, 0) + 1) }
            .joined()
    }

    @Test func nothingKnownIsADashEach() {
        #expect(Self.cells(nil) == Self.padded(["-", "-", "-", "-", "-", "-"]))
        #expect(Self.cells(SocketFacts()) == Self.padded(["-", "-", "-", "-", "-", "-"]))
    }

    @Test func everyCellAsTheContractSpellsIt() {
        var f = SocketFacts()
        f.receiveQueue = .init(skbs: 3, bytes: 120, partial: true)
        f.sendBytes = 4096
        f.backlog = .init(pending: 3, max: 4)
        f.connector = .init(pid: 982, uid: 1000, gid: 100)
        f.boundFile = BoundFile(inode: 131_073, major: 0, minor: 25)
        f.senders = [.init(inode: 4711, datagrams: 2, bytes: 10), .init(inode: nil, datagrams: 1, bytes: 5)]
        #expect(Self.cells(f) == Self.padded(["3/120+", "4096", "3/4", "982:1000:100", "131073@0:25", "4711:2,?:1"]))
        f.receiveQueue?.partial = false
        f.connector?.pid = nil
        f.senders = []
        #expect(Self.cells(f) == Self.padded(["3/120", "4096", "3/4", "?:1000:100", "131073@0:25", "-"]))
    }

    /// A cell wider than its column pushes the rest right by what it
    /// overflows, one separator still between (as netstat's columns do).
    @Test func aWideCellKeepsOneSeparator() {
        var f = SocketFacts()
        f.connector = .init(pid: 2_147_483_647, uid: 4_294_967_295, gid: 4_294_967_295)
        let want = Self.padded(["-", "-", "-", "2147483647:4294967295:4294967295", "-", "-"])
        #expect(Self.cells(f) == want)
        #expect(want.contains("4294967295 -"))
    }
}
