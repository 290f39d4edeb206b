import Testing
@testable import KernelMemory
@testable import KernelObjects
@testable import PeerResolution
@testable import SocketInventory

/// `kpeer INODE` checks only the rows its answer rests on (FocusRows): on a
/// synthetic core laid out with this machine's BTF, the rows picked for
/// each question are exactly those the fixture connected, only they are
/// read, and anything doubtful hands the question to the whole table.
@Suite(.layered)
struct FocusRowsTests {
    struct World {
        let w: BTFKernel
        let a, b, c, d, listener, client, embryo, lone: UInt64
        var table: [UnixSocketEntry]

        init() throws {
            w = try BTFKernel()
            let peer = try w.off("unix_sock", "peer")
            a = try w.socket(inode: 500, name: nil, skState: 1); b = try w.socket(inode: 501, name: nil, skState: 1)
            c = try w.socket(inode: 600, name: nil, skState: 1); d = try w.socket(inode: 601, name: nil, skState: 1)
            listener = try w.socket(inode: 700, name: Array("/run/l.sock".utf8) + [0], skState: 10)
            client = try w.socket(inode: 800, name: nil, skState: 1)
            embryo = try w.socket(inode: 0, name: Array("/run/l.sock".utf8) + [0], skState: 1)
            lone = try w.socket(inode: 900, name: nil, skState: 7)
            for (x, y) in [(a, b), (b, a), (c, d), (d, c), (client, embryo), (embryo, client)] { w.core.poke(x + peer, y) }
            func connected(_ at: UInt64, _ inode: UInt64, path: String? = nil) -> UnixSocketEntry {
                BTFKernel.row(at, inode: inode, state: inode == 0 ? 2 : 3, path: path, listening: false)  // an embryo: SS_CONNECTING
            }
            table = [connected(a, 500), connected(b, 501), connected(c, 600), connected(d, 601),
                     BTFKernel.row(listener, inode: 700, path: "/run/l.sock"), connected(client, 800),
                     connected(embryo, 0, path: "/run/l.sock"), BTFKernel.row(lone, inode: 900, state: 1, path: nil, listening: false)]
        }

        func select(_ inode: UInt64, table: [UnixSocketEntry]? = nil) throws -> (rows: [UInt64]?, checked: Int) {
            let v = try w.verifier(peerAt: Int(try w.off("unix_sock", "peer")))
            let rows = FocusRows.select(inode, in: table ?? self.table, verifier: v, pair: nil)
            return (rows.map { $0.map(\.address).sorted() }, v.passed + v.failed)
        }
    }

    @Test(.enabled(if: BTFKernel.available)) func aConnectedSocketNeedsItsPeersRowOnly() throws {
        let x = try World()
        let r = try x.select(500)
        #expect(r.rows == [x.a, x.b].sorted())
        #expect(r.checked == 2)
        #expect(try x.select(601).rows == [x.c, x.d].sorted())
    }

    /// A client not accepted yet points at an embryo: the listener it waits
    /// on comes too (its row names the embryo's path).
    @Test(.enabled(if: BTFKernel.available)) func aPendingClientBringsItsListener() throws {
        let x = try World()
        let r = try x.select(800)
        #expect(r.rows == [x.listener, x.client, x.embryo].sorted())
        #expect(r.checked == 3)
    }

    /// A peer whose inode another live socket shares (the counter wrapped)
    /// brings that socket too, so the inode is refused as in a listing.
    @Test(.enabled(if: BTFKernel.available)) func aPeersInodeTwinComesAlong() throws {
        let x = try World()
        let twin = try x.w.socket(inode: 501, name: nil, skState: 1)
        let rows = x.table + [BTFKernel.row(twin, inode: 501, state: 3, path: nil, listening: false)]
        #expect(try x.select(500, table: rows).rows == [x.a, x.b, twin].sorted())
    }

    /// The whole table decides: a listener (its answer is its clients), an
    /// inode no row has, and a forged row that claims the asked inode at
    /// another socket's address.
    @Test(.enabled(if: BTFKernel.available)) func doubtLeavesItToTheWholeTable() throws {
        let x = try World()
        #expect(try x.select(700).rows == nil)
        #expect(try x.select(4242).rows == nil)
        let forged = BTFKernel.row(x.c, inode: 500, state: 3, path: nil, listening: false)
        #expect(try x.select(500, table: x.table + [forged]).rows == nil)
    }
}
