import Glibc
import Testing
@testable import KernelMemory
@testable import KernelObjects
@testable import KPeerSystem
@testable import PeerResolution
@testable import SocketInventory
@testable import TypeOffsets

/// Forged /proc/net/unix rows (a bound name with a newline and a record
/// after it) against the kcore method's row check: a synthetic core laid out
/// with this machine's BTF holds one real socket as the kernel has it; rows
/// that say anything else about its address are dropped one by one, and the
/// real row stays. (The VM test does the same with a real attacker process.)
@Suite(.layered) struct RowVerifierTests {
    static var haveBTF: Bool { BTFKernel.available }

    @Test(.enabled(if: haveBTF)) func theRealRowPassesAndEveryForgeryFails() throws {
        let w = try BTFKernel()
        // A listener bound to /run/svc.sock (the kernel appends a NUL to a path).
        let l = try w.socket(inode: 500, name: Array("/run/svc.sock".utf8) + [0])
        // An abstract name with an embedded NUL, printed @a@b.
        let a = try w.socket(inode: 600, type: 2, name: [0] + Array("a".utf8) + [0] + Array("b".utf8))
        let embryo = try w.socket(inode: 0, name: Array("/run/svc.sock".utf8) + [0])
        let v = try w.verifier()
        #expect(v.verify(BTFKernel.row(l, inode: 500, path: "/run/svc.sock")))
        #expect(v.verify(BTFKernel.row(a, inode: 600, type: 2, path: "a@b", abstract: true, listening: false)))
        #expect(v.verify(BTFKernel.row(embryo, inode: 0, state: 3, path: "/run/svc.sock", listening: false)))
        // Forgeries of the listener's row: another inode, name, type, namespace.
        #expect(!v.verify(BTFKernel.row(l, inode: 501, path: "/run/svc.sock")))
        #expect(!v.verify(BTFKernel.row(l, inode: 500, path: "/run/evil.sock")))
        #expect(!v.verify(BTFKernel.row(l, inode: 500, path: "/run/svc.sock", abstract: true)))
        #expect(!v.verify(BTFKernel.row(l, inode: 500, path: nil)))
        #expect(!v.verify(BTFKernel.row(l, inode: 500, type: 2, path: "/run/svc.sock")))
        #expect(!v.verify(BTFKernel.row(l, inode: 500, netns: 4026532000, path: "/run/svc.sock")))
        // An embryo row naming an inode, and a row at an address that holds no socket.
        #expect(!v.verify(BTFKernel.row(embryo, inode: 77, path: "/run/svc.sock")))
        #expect(!v.verify(BTFKernel.row(BTFKernel.base + 0x30000, inode: 500, path: "/run/svc.sock")))
    }

    /// The attack that made the netlink method drop both rows ("listed
    /// twice"): a forged row with the listener's inode and address. Memory
    /// tells them apart: the real row stays, the forged one goes.
    @Test(.enabled(if: haveBTF)) func aForgedTwinDoesNotHideTheRealRow() throws {
        let w = try BTFKernel()
        let l = try w.socket(inode: 500, name: Array("/run/svc.sock".utf8) + [0])
        let c = try w.socket(inode: 510, type: 1, name: nil)
        let real = BTFKernel.row(l, inode: 500, path: "/run/svc.sock")
        let forged = BTFKernel.row(l, inode: 500, path: "/run/other.sock")
        let client = BTFKernel.row(c, inode: 510, state: 3, path: nil, listening: false)
        let zeroed = (0..<50).map { _ in BTFKernel.row(0, inode: 500, path: "/run/svc.sock") }
        let kept = try #require(TrustedRows.verified([forged, real, client] + zeroed, try w.verifier()))
        #expect(kept == [real, client])
        // Without the check (no layouts), both twins go: the old behaviour.
        #expect(!TrustedRows.inMemory([forged, real, client], try KernelMemory(path: try w.core.write())).contains(real))
    }

    /// Rows no other row imitates are checked by inode alone: the socket
    /// at the address has that inode (an embryo none). Garbage addresses and
    /// made-up inodes go; the flood of the "hashed addresses" attack
    /// (address 0) goes without touching the real rows.
    @Test(.enabled(if: haveBTF)) func loneRowsAreCheckedByInode() throws {
        let w = try BTFKernel()
        let l = try w.socket(inode: 500, name: Array("/run/svc.sock".utf8) + [0])
        let embryo = try w.socket(inode: 0, name: Array("/run/svc.sock".utf8) + [0])
        let rows = [BTFKernel.row(l, inode: 500, path: "/run/svc.sock"),
                    BTFKernel.row(embryo, inode: 0, state: 3, path: "/run/svc.sock", listening: false),
                    BTFKernel.row(embryo, inode: 0, state: 3, path: "/run/svc.sock", listening: false),  // a twin: checked in full, passes
                    BTFKernel.row(BTFKernel.base + 0x30000, inode: 700, path: nil),  // no socket there
                    BTFKernel.row(l + 8, inode: 500, path: nil),                // not a socket's address
                    BTFKernel.row(0, inode: 701, path: nil)]
        #expect(try w.verifier().verifyAll(rows) == [true, true, true, false, false, false])
    }

    /// Told the peer offset, the check reads each row's peer word in the
    /// same pread as sk_socket (one read fewer a row): the verdicts are the
    /// same, and each checked row's word is what the core holds there —
    /// lone rows (inode check) and twins (full check) alike.
    @Test(.enabled(if: haveBTF)) func thePeerWordComesWithTheCheck() throws {
        let w = try BTFKernel()
        let peerAt = try w.off("unix_sock", "peer")
        let a = try w.socket(inode: 500, name: nil), b = try w.socket(inode: 501, name: nil)
        let embryo = try w.socket(inode: 0, name: Array("/run/svc.sock".utf8) + [0])
        w.core.poke(a + peerAt, b)
        w.core.poke(b + peerAt, a)
        w.core.poke(embryo + peerAt, 0xffff_8880_dead_0000)
        let rows = [BTFKernel.row(a, inode: 500, state: 3, path: nil, listening: false),
                    BTFKernel.row(b, inode: 501, state: 3, path: nil, listening: false),
                    BTFKernel.row(embryo, inode: 0, state: 3, path: "/run/svc.sock", listening: false),
                    BTFKernel.row(embryo, inode: 0, state: 3, path: "/run/svc.sock", listening: false),
                    BTFKernel.row(BTFKernel.base + 0x30000, inode: 700, path: nil)]
        let plain = try w.verifier().verifyAll(rows)
        let v = try w.verifier(peerAt: Int(peerAt))
        #expect(v.verifyAll(rows) == plain)
        #expect(plain == [true, true, true, true, false])
        #expect(v.peerWords[a] == b && v.peerWords[b] == a && v.peerWords[embryo] == 0xffff_8880_dead_0000)
        // A misaligned offset is no offset: no verifier rather than torn words.
        #expect(RowVerifier(reader: v.reader, peerAt: Int(peerAt) + 4) == nil)
        // Asked for queues (kpeer INODE): the rows whose receive queue holds
        // data, from the same read — the lone row (inode check) and the
        // twinned embryo (full check) alike; no others.
        w.core.pokeByte(a + (try w.off("unix_sock", "sk.sk_receive_queue.qlen")), 2)
        w.core.pokeByte(embryo + (try w.off("unix_sock", "sk.sk_receive_queue.qlen")), 1)
        let q = try #require(RowVerifier(reader: try w.verifier().reader, peerAt: Int(peerAt), queues: true))
        #expect(q.verifyAll(rows) == plain)
        #expect(q.queued == [a, embryo])
        #expect(q.peerWords[a] == b)
    }

    /// A table none of whose rows verifies says the layouts are wrong (a
    /// stale remembered layout), not that every row is forged.
    @Test(.enabled(if: haveBTF)) func nothingVerifiedMeansWrongLayouts() throws {
        let w = try BTFKernel()
        let l = try w.socket(inode: 500, name: nil)
        #expect(TrustedRows.verified([BTFKernel.row(l, inode: 999, path: nil)], try w.verifier()) == nil)
    }
}

/// The netlink method's side of the same attack: sock_diag's own record of
/// an inode listed twice tells the real row from the forged twin.
@Suite(.layered) struct VouchedRowTests {
    static func row(_ inode: UInt64, path: String?, abstract: Bool = false, listening: Bool = true,
                    type: UInt16 = 1) -> UnixSocketEntry {
        BTFKernel.row(0, inode: inode, type: type, path: path, abstract: abstract, listening: listening)
    }

    static func diag(_ inode: UInt64, name: [UInt8]?, listening: Bool = true, type: UInt8 = 1) -> DiagEntry {
        var d = DiagEntry(inode: inode, rawType: type, rawState: listening ? 10 : 7)
        d.name = name.map { SocketPath(sunPath: $0) }
        return d
    }

    @Test func aForgedTwinGoesAndTheRealRowStays() {
        let real = Self.row(500, path: "/run/svc.sock")
        let other = Self.row(600, path: "a@b", abstract: true, listening: false, type: 2)
        let twins = [Self.row(500, path: "/run/evil.sock"), Self.row(500, path: "/run/svc.sock", listening: false),
                     Self.row(500, path: "/run/svc.sock", type: 5), Self.row(500, path: nil)]
        let details: [UInt64: DiagEntry] = [500: Self.diag(500, name: Array("/run/svc.sock".utf8)),
                       600: Self.diag(600, name: [0, 0x61, 0, 0x62], listening: false, type: 2)]
        for twin in twins {
            for order in [[twin, real, other], [real, twin, other]] {
                let kept = TrustedRows.vouched(order, known: [500, 600]) { details }
                #expect(kept == [real, other], "\(twin)")
            }
        }
        // Without sock_diag's details, both twins go (nothing says which is real).
        #expect(TrustedRows.vouched([twins[0], real, other], known: [500, 600]) == [other])
        // No twins: the details are never asked for.
        var asked = false
        #expect(TrustedRows.vouched([real, other], known: [500, 600]) { asked = true; return details } == [real, other])
        #expect(!asked)
    }

    /// A twin anywhere in the table must not cost other sockets their rows:
    /// a socket bound to a name with a newline prints only the name's first
    /// line, which disagrees with sock_diag's full name, yet its inode is
    /// listed once and its row stays.
    @Test func onlyTwinnedInodesAreCheckedByName() {
        let real = Self.row(500, path: "/run/svc.sock")
        let twin = Self.row(500, path: "/run/evil.sock")
        let cut = Self.row(700, path: "/tmp/f")
        let details: [UInt64: DiagEntry] = [500: Self.diag(500, name: Array("/run/svc.sock".utf8)),
                                            700: Self.diag(700, name: Array("/tmp/f\n0000: forged".utf8))]
        #expect(TrustedRows.vouched([twin, real, cut], known: [500, 700]) { details } == [real, cut])
    }
}
