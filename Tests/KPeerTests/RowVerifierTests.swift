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
        let l = try w.socket(inode: 500, name: Array("/run/svc.sock".utf8) + [0], skState: 10)
        // An abstract name with an embedded NUL, printed @a@b.
        let a = try w.socket(inode: 600, type: 2, name: [0] + Array("a".utf8) + [0] + Array("b".utf8), skState: 7)
        let embryo = try w.socket(inode: 0, name: Array("/run/svc.sock".utf8) + [0], skState: 1)
        let v = try w.verifier()
        #expect(v.verify(BTFKernel.row(l, inode: 500, path: "/run/svc.sock")))
        #expect(v.verify(BTFKernel.row(a, inode: 600, type: 2, path: "a@b", abstract: true, listening: false)))
        #expect(v.verify(BTFKernel.row(embryo, inode: 0, state: 2, path: "/run/svc.sock", listening: false)))
        // Flags and St as unix_seq_show prints them from sk_state.
        #expect(!v.verify(BTFKernel.row(l, inode: 500, path: "/run/svc.sock", listening: false)))
        #expect(!v.verify(BTFKernel.row(l, inode: 500, state: 3, path: "/run/svc.sock")))
        #expect(!v.verify(BTFKernel.row(embryo, inode: 0, state: 4, path: "/run/svc.sock", listening: false)))
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
        let l = try w.socket(inode: 500, name: Array("/run/svc.sock".utf8) + [0], skState: 10)
        let c = try w.socket(inode: 510, type: 1, name: nil, skState: 1)
        let real = BTFKernel.row(l, inode: 500, path: "/run/svc.sock")
        let forged = BTFKernel.row(l, inode: 500, path: "/run/other.sock")
        let client = BTFKernel.row(c, inode: 510, state: 3, path: nil, listening: false)
        let zeroed = (0..<50).map { _ in BTFKernel.row(0, inode: 500, path: "/run/svc.sock") }
        let kept = try #require(TrustedRows.verified([forged, real, client] + zeroed, try w.verifier()))
        #expect(kept == [real, client])
        // Without the check (no layouts) and without sock_diag, both twins
        // go; with sock_diag's record of the inode, the real row stays.
        let memory = try KernelMemory(path: try w.core.write())
        #expect(TrustedRows.inMemory([forged, real, client], memory) == [client])
        var record = DiagEntry(inode: 500, rawType: 1, rawState: 10)
        record.name = SocketPath(bytes: Array("/run/svc.sock".utf8), isAbstract: false)
        let dump: [UInt64: DiagEntry] = [500: record, 510: DiagEntry(inode: 510, rawType: 1, rawState: 1)]
        #expect(TrustedRows.inMemory([forged, real, client], memory) { dump } == [real, client])
        // A whole copy of the real row at another address sock_diag cannot
        // tell apart: the address is unknown, neither stays. A row whose
        // inode the dump does not list goes.
        let copy = BTFKernel.row(c + 128, inode: 500, path: "/run/svc.sock")
        #expect(TrustedRows.inMemory([copy, real, client], memory) { dump } == [client])
        #expect(TrustedRows.inMemory([real, client, BTFKernel.row(c + 64, inode: 31337, path: nil)], memory) { dump } == [real, client])
    }

    /// Rows no other row imitates are checked by inode alone: the socket
    /// at the address has that inode (an embryo none). Garbage addresses and
    /// made-up inodes go; the flood of the "hashed addresses" attack
    /// (address 0) goes without touching the real rows.
    @Test(.enabled(if: haveBTF)) func loneRowsAreCheckedByInode() throws {
        let w = try BTFKernel()
        let l = try w.socket(inode: 500, name: Array("/run/svc.sock".utf8) + [0], skState: 10)
        let embryo = try w.socket(inode: 0, name: Array("/run/svc.sock".utf8) + [0], skState: 1)
        let rows = [BTFKernel.row(l, inode: 500, path: "/run/svc.sock"),
                    BTFKernel.row(embryo, inode: 0, state: 2, path: "/run/svc.sock", listening: false),
                    BTFKernel.row(embryo, inode: 0, state: 2, path: "/run/svc.sock", listening: false),  // a twin: checked in full, passes
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
        let a = try w.socket(inode: 500, name: nil, skState: 1), b = try w.socket(inode: 501, name: nil, skState: 1)
        let embryo = try w.socket(inode: 0, name: Array("/run/svc.sock".utf8) + [0], skState: 1)
        w.core.poke(a + peerAt, b)
        w.core.poke(b + peerAt, a)
        w.core.poke(embryo + peerAt, 0xffff_8880_dead_0000)
        let rows = [BTFKernel.row(a, inode: 500, state: 3, path: nil, listening: false),
                    BTFKernel.row(b, inode: 501, state: 3, path: nil, listening: false),
                    BTFKernel.row(embryo, inode: 0, state: 2, path: "/run/svc.sock", listening: false),
                    BTFKernel.row(embryo, inode: 0, state: 2, path: "/run/svc.sock", listening: false),
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

    /// /proc/net/unix as unix_seq_show prints it for sockets of `w` (name
    /// bytes raw: a NUL as '@', an abstract name's first NUL too, a path's
    /// trailing NUL left out), after its header.
    static func printed(_ rows: [(address: UInt64, inode: UInt64, name: [UInt8]?)]) -> [UInt8] {
        var t = Array("Num       RefCount Protocol Flags    Type St Inode Path\n".utf8)
        for r in rows {
            t += Array(String(format: "%016lx: 00000002 00000000 00000000 0001 01 %5lu", r.address, r.inode).utf8)
            if let n = r.name {
                t.append(0x20)
                let shown = n[0] == 0 ? Array(n) : Array(n.dropLast())
                t += shown.map { $0 == 0 ? 0x40 : $0 }
            }
            t.append(0x0A)
        }
        return t
    }

    /// Rows only the kernel can have begun (after the header, or after a
    /// row of the kernel's that has no name or whose name memory shows
    /// whole) are read in one pread, not two, once the first rows have
    /// proved the layouts; the verdicts are the ones every row checked by
    /// inode gives.
    @Test(.enabled(if: haveBTF)) func rowsTheKernelBeganCostOneRead() throws {
        let w = try BTFKernel()
        let peerAt = Int(try w.off("unix_sock", "peer"))
        var rows: [(address: UInt64, inode: UInt64, name: [UInt8]?)] = []
        for i in 0..<10 { rows.append((try w.socket(inode: 500 + UInt64(i), name: nil), 500 + UInt64(i), nil)) }
        let path = Array("/run/a\nb.sock".utf8) + [0]  // a newline of its own, nothing forged after it
        rows.append((try w.socket(inode: 600, name: path), 600, path))
        for i in 0..<3 { rows.append((try w.socket(inode: 700 + UInt64(i), name: nil), 700 + UInt64(i), nil)) }
        let entries = ProcNetUnix.parse(Self.printed(rows), netns: 4026531840)
        #expect(entries.map(\.inode) == rows.map(\.inode))
        #expect(entries[10].path?.bytes == Array(path.dropLast()))
        let each = try w.verifier(peerAt: peerAt)
        let all = each.verifyAll(entries)
        #expect(all == Array(repeating: true, count: rows.count))
        let chained = try w.verifier(peerAt: peerAt)
        #expect(chained.verifyAll(entries, chained: true) == all)
        // The chained check keeps each row's peer word by row.
        #expect(chained.rowWords == entries.map { each.peerWords[$0.address] })
        // Rows 8 and 9, and the three after the named row: five rows with
        // one read instead of two (both read the named row's name length).
        #expect(RowVerifier.layoutSample == 8)
        #expect(chained.begun == 5)
        #expect(each.memory.preads - chained.memory.preads == 5)
    }

    /// A record forged inside a name (an abstract name with a newline) is
    /// never taken for one the kernel began: memory says the name is longer
    /// than the line shows, so from there on every row is checked by inode,
    /// and the forged one, whose address is a real unix_sock of another
    /// inode, goes. Nor is the row after a named row whose socket memory no
    /// longer shows (its inode changed).
    @Test(.enabled(if: haveBTF)) func aRowInsideANameIsNeverTheKernels() throws {
        let w = try BTFKernel()
        let peerAt = Int(try w.off("unix_sock", "peer"))
        var rows: [(address: UInt64, inode: UInt64, name: [UInt8]?)] = []
        for i in 0..<10 { rows.append((try w.socket(inode: 500 + UInt64(i), name: nil), 500 + UInt64(i), nil)) }
        let unlisted = try w.socket(inode: 777, name: nil)  // a real unix_sock with no row of its own
        let forged = String(format: "%016lx: 00000002 00000000 00000000 0001 01 99999", unlisted)
        let name = [0] + Array("m\n\(forged)".utf8)
        rows.append((try w.socket(inode: 600, name: name), 600, name))
        let after = try w.socket(inode: 800, name: nil)
        rows.append((after, 800, nil))
        let entries = ProcNetUnix.parse(Self.printed(rows), netns: 4026531840)
        #expect(entries.map(\.inode) == rows.prefix(11).map(\.inode) + [99999, 800])
        let v = try w.verifier(peerAt: peerAt)
        #expect(v.verifyAll(entries, chained: true) == Array(repeating: true, count: 11) + [false, true])
        #expect(v.begun == 2)  // rows 8 and 9 only: the chain broke at the name

        // The named row's socket is another now (inode 601): the row goes,
        // and the row after it is checked by inode.
        let w2 = try BTFKernel()
        var rows2: [(address: UInt64, inode: UInt64, name: [UInt8]?)] = []
        for i in 0..<10 { rows2.append((try w2.socket(inode: 500 + UInt64(i), name: nil), 500 + UInt64(i), nil)) }
        let plain = [0] + Array("svc".utf8)
        rows2.append((try w2.socket(inode: 601, name: plain), 600, plain))
        rows2.append((try w2.socket(inode: 700, name: nil), 700, nil))
        let v2 = try w2.verifier(peerAt: peerAt)
        #expect(v2.verifyAll(ProcNetUnix.parse(Self.printed(rows2), netns: 4026531840), chained: true)
                == Array(repeating: true, count: 10) + [false, true])
        #expect(v2.begun == 2)
    }

    /// A user binds `@victim-svc` + newline + a record: the table prints
    /// that socket's row as `@victim-svc`, the service's name. Memory's
    /// name is longer, so the row carries memory's name (newline and all)
    /// and `@victim-svc` stays the service's alone; the record after the
    /// newline goes. Chained or not (kpeer INODE checks a few rows alone).
    @Test(.enabled(if: haveBTF)) func aNameCutShortByANewlineIsMemorysWholeName() throws {
        let w = try BTFKernel()
        let peerAt = Int(try w.off("unix_sock", "peer"))
        let service = [0] + Array("victim-svc".utf8)
        let forged = "ffff888002000000: 00000002 00000000 00010000 0001 01 31337"
        let cut = [0] + Array("victim-svc\n\(forged)".utf8)
        // Eight rows first, so that the chained check is past its layout
        // sample and reads the service's row as one the kernel began.
        var rows: [(address: UInt64, inode: UInt64, name: [UInt8]?)] = []
        for i in 0..<8 { rows.append((try w.socket(inode: 100 + UInt64(i), name: nil), 100 + UInt64(i), nil)) }
        rows += [(try w.socket(inode: 500, name: service), 500, service),
                 (try w.socket(inode: 900, name: cut), 900, cut),
                 (try w.socket(inode: 501, name: nil), 501, nil)]
        let table = ProcNetUnix.parse(Self.printed(rows), netns: 4026531840)
        #expect(table.map(\.inode).suffix(4) == [500, 900, 31337, 501])
        #expect(table[9].path?.display == "@victim-svc")  // as printed: the service's name
        for chained in [true, false] {
            var entries = table
            let v = try w.verifier(peerAt: peerAt)
            #expect(v.verifyAll(&entries, chained: chained) == Array(repeating: true, count: 10) + [false, true])
            #expect(entries[8].path?.bytes == Array("victim-svc".utf8))
            #expect(entries[9].path == SocketPath(bytes: Array(cut.dropFirst()), isAbstract: true))
            #expect(entries[11].path == nil)
            // Chained: the row after the cut name is checked by inode.
            if chained { #expect(v.begun == 0) }
        }
        let kept = try #require(TrustedRows.verified(table, try w.verifier(peerAt: peerAt)))
        #expect(kept.filter { $0.path?.display == "@victim-svc" }.map(\.inode) == [500])
        #expect(kept.map(\.inode).suffix(3) == [500, 900, 501])
    }

    /// A row printed twice (a read of the table restarted between them)
    /// with another reference count is one socket: one row stays. A path of
    /// all 108 bytes of sun_path (its NUL past them) passes the full check
    /// a twin puts it to.
    @Test(.enabled(if: haveBTF)) func aRowPrintedTwiceAndALongestPathStay() throws {
        let w = try BTFKernel()
        let l = try w.socket(inode: 500, name: Array("/run/svc.sock".utf8) + [0], skState: 10)
        let first = BTFKernel.row(l, inode: 500, path: "/run/svc.sock")
        var again = first
        again.refCount = 3
        #expect(try TrustedRows.verified([first, again], try w.verifier()) == [first])
        let long = "/" + String(repeating: "a", count: 107)
        let p = try w.socket(inode: 600, name: Array(long.utf8) + [0], skState: 10)
        let real = BTFKernel.row(p, inode: 600, path: long)
        let forged = BTFKernel.row(0, inode: 600, path: long)
        #expect(try TrustedRows.verified([real, forged], try w.verifier()) == [real])
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

    /// A twin that says all sock_diag says but St: the kernel prints St
    /// from sk_state, so it is not the kernel's row.
    @Test func aTwinWithAnotherStateGoes() {
        let real = Self.row(500, path: "/run/svc.sock")
        var forged = real
        forged.rawState = 3
        let details: [UInt64: DiagEntry] = [500: Self.diag(500, name: Array("/run/svc.sock".utf8))]
        #expect(TrustedRows.vouched([forged, real], known: [500]) { details } == [real])
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
