import Glibc
import Testing
@testable import KernelMemory
@testable import KernelObjects
@testable import KPeerSystem
@testable import TypeOffsets

/// The kernel-object reader on synthetic cores laid out with a real BTF's
/// layouts (this machine's /sys/kernel/btf/vmlinux): members found by name,
/// nested and through anonymous unions, pointers checked before they are
/// followed, a receive queue walked whole, and torn lists, cycles and
/// pointers outside memory ending the walk instead of the run. The offsets
/// come from the same BTF; the independent truth for them is pahole (the VM
/// test) — here, what the test wrote where.
@Suite(.layered) struct KernelObjectTests {
    static let btf = BTFKernel.btf
    static let base: UInt64 = 0xffff_8880_0100_0000
    static var haveBTF: Bool { BTFKernel.available }

    final class Setup {
        let types: KernelTypes
        let core = SyntheticCore()
        let sockAddr = KernelObjectTests.base
        var skbAddrs: [UInt64] = []

        init() throws {
            types = try KernelTypes(btf: KernelObjectTests.btf)
            _ = core.add(vaddr: KernelObjectTests.base, size: 1 << 16)
        }

        func off(_ t: String, _ p: String) throws -> UInt64 { UInt64(try types.member(t, p).offset) }

        /// A unix_sock with `lens.count` skbs on its receive queue, linked
        /// as the kernel links them (the head's next → first, last → head).
        func queue(_ lens: [UInt32]) throws -> UInt64 {
            let head = sockAddr + (try off("unix_sock", "sk.sk_receive_queue"))
            skbAddrs = lens.indices.map { KernelObjectTests.base + 0x4000 + UInt64($0) * 0x400 }
            let next = try off("sk_buff", "next"), len = try off("sk_buff", "len")
            let qlen = try off("sk_buff_head", "qlen")
            core.poke(head + (try off("sk_buff_head", "next")), skbAddrs.first ?? head)
            core.poke(head + qlen, UInt64(lens.count))
            for (i, a) in skbAddrs.enumerated() {
                core.poke(a + next, i + 1 < skbAddrs.count ? skbAddrs[i + 1] : head)
                core.poke(a + len, UInt64(lens[i]))  // len is 32 bits; the next member's bytes are noise
            }
            return head
        }

        func object() throws -> KernelObject {
            try ObjectReader(memory: try KernelMemory(path: try core.write()), types: types)
                .object(at: sockAddr, type: "unix_sock")
        }
    }

    @Test(.enabled(if: haveBTF)) func nestedMembersMatchTheirParts() throws {
        let t = try KernelTypes(btf: Self.btf)
        let sk = try t.member("unix_sock", "sk")
        #expect(sk.kind == .structure && sk.target == "sock")
        let common = try t.member("sock", "__sk_common")
        let net = try t.member("sock_common", "skc_net")
        // possible_net_t is a typedef of an anonymous struct: reached by path, not by name.
        let whole = try t.member("unix_sock", "sk.__sk_common.skc_net.net")
        #expect(whole.offset == sk.offset + common.offset + net.offset)
        #expect(whole.kind == .pointer && whole.target == "net")
        let peer = try t.member("unix_sock", "peer")
        #expect(peer.kind == .pointer && peer.target == "sock" && peer.size == 8)
        // Through the anonymous union of sk_buff's list links.
        #expect(try t.member("sk_buff", "next").kind == .pointer)
        #expect(throws: KPeerError.self) { try t.member("unix_sock", "no_such_member") }
        #expect(throws: KPeerError.self) { try t.member("no_such_struct_here", "x") }
        // The size of a struct is BTF's, and a member lies inside it.
        #expect(try t.size(of: "unix_sock") > peer.offset)
    }

    @Test(.enabled(if: haveBTF)) func aBitFieldIsRefused() throws {
        let t = try KernelTypes(btf: Self.btf)
        // sock.sk_type is a full u16 on current kernels; sk_buff has bit
        // fields (pkt_type:3) on every kernel with BTF.
        let e = #expect(throws: KPeerError.self) { try t.member("sk_buff", "pkt_type") }
        #expect(e?.problem.contains("bit field") == true)
    }

    @Test(.enabled(if: haveBTF)) func aQueueIsWalkedWhole() throws {
        let s = try Setup()
        _ = try s.queue([100, 200, 300])
        let (skbs, torn) = try s.object().skbQueue("sk.sk_receive_queue")
        #expect(!torn)
        #expect(skbs.map(\.address) == s.skbAddrs)
        #expect(try skbs.map { try $0.unsigned("len") } == [100, 200, 300])
    }

    @Test(.enabled(if: haveBTF)) func aCycleEndsTheWalk() throws {
        let s = try Setup()
        _ = try s.queue([1, 2, 3])
        // The last skb points back at the first instead of the head.
        s.core.poke(s.skbAddrs[2] + (try s.off("sk_buff", "next")), s.skbAddrs[0])
        // qlen says more than there are: the cycle, not the count, must stop it.
        s.core.poke(s.sockAddr + (try s.off("unix_sock", "sk.sk_receive_queue.qlen")), 1000)
        let (skbs, torn) = try s.object().skbQueue("sk.sk_receive_queue")
        #expect(torn)
        #expect(skbs.count == 3)
    }

    @Test(.enabled(if: haveBTF)) func aPointerOutsideMemoryEndsTheWalk() throws {
        let s = try Setup()
        _ = try s.queue([1, 2, 3])
        s.core.poke(s.skbAddrs[1] + (try s.off("sk_buff", "next")), 0xffff_ffff_dead_0000)
        let (skbs, torn) = try s.object().skbQueue("sk.sk_receive_queue")
        #expect(torn)
        #expect(skbs.count == 2)
    }

    @Test(.enabled(if: haveBTF)) func aTornListShorterThanQlenIsPartial() throws {
        let s = try Setup()
        let head = try s.queue([5, 6, 7])
        // The second skb was unlinked meanwhile: the first now leads home.
        s.core.poke(s.skbAddrs[0] + (try s.off("sk_buff", "next")), head)
        let (skbs, torn) = try s.object().skbQueue("sk.sk_receive_queue")
        #expect(torn)
        #expect(skbs.count == 1)
    }

    @Test(.enabled(if: haveBTF)) func pointersAreCheckedBeforeTheyAreFollowed() throws {
        let s = try Setup()
        let peer = try s.off("unix_sock", "peer")
        s.core.poke(s.sockAddr + peer, 0x1234)  // not kernel memory
        #expect(throws: KPeerError.self) { try s.object().pointer("peer") }
        s.core.poke(s.sockAddr + peer, 0)
        #expect(try s.object().pointer("peer") == nil)
        // A struct that would run past the end of memory is refused too.
        let size = UInt64(try s.types.size(of: "sock"))
        s.core.poke(s.sockAddr + peer, Self.base + (1 << 16) - size / 2)
        #expect(throws: KPeerError.self) { try s.object().pointer("peer") }
        s.core.poke(s.sockAddr + peer, Self.base + 0x8000)
        #expect(try s.object().pointer("peer")?.address == Self.base + 0x8000)
    }
}

/// Layouts remembered per kernel build (/run/kpeer/layouts): what was read
/// from BTF comes back the same, for that build only, and a file with
/// anything unexpected in it is not believed at all.
@Suite(.layered) struct LayoutCacheTests {
    static let id: [UInt8] = [0xde, 0xad, 0xbe, 0xef]

    @Test(.enabled(if: KernelObjectTests.haveBTF)) func whatWasReadComesBackTheSame() throws {
        let t = try KernelTypes(btf: KernelObjectTests.btf)
        let paths = ["sk.__sk_common.skc_net.net", "peer", "addr", "sk.sk_receive_queue", "path.dentry"]
        let read = try paths.map { try t.member("unix_sock", $0) }
        let size = try t.size(of: "unix_sock")
        #expect(throws: KPeerError.self) { try t.member("unix_sock", "no_such_member") }
        #expect(t.learned && !t.remembered)
        let text = try #require(LayoutCache.text(t, buildID: Self.id))
        let back = try #require(LayoutCache.parse(Array(text.utf8), buildID: Self.id))
        #expect(back.remembered && back.source == .btf && back.origin == KernelObjectTests.btf)
        #expect(try paths.map { try back.member("unix_sock", $0) } == read)
        #expect(try back.size(of: "unix_sock") == size)
        // What this kernel lacks is remembered too: asked again, it is missing, not looked up.
        #expect(text.contains("x unix_sock no_such_member\n"))
        let e = #expect(throws: KPeerError.self) { try back.member("unix_sock", "no_such_member") }
        #expect(e?.kind == .unavailable && e?.problem.contains("remembered") == true)
        #expect(!back.learned)
        // Another build's file is not this one's.
        #expect(LayoutCache.parse(Array(text.utf8), buildID: [1, 2, 3]) == nil)
        // One odd line, and none of it is believed.
        for bad in ["m unix_sock peer 8 8 1 sock 2 0 0 6 extra\n", "m unix_sock pe$er 8 8 1 sock 2 0 0 6\n",
                    "m unix_sock peer -8 8 1 sock 2 0 0 6\n", "m unix_sock peer 8 8 9 sock 2 0 0 6\n", "x\n",
                    "m unix_sock peer 999999999999 8 1 sock 2 0 0 6\n", "m unix_sock peer 16777216 8 1 sock 2 0 0 6\n",
                    "s unix_sock \n", "s  8\n", "ss unix_sock 8\n"] {
            #expect(LayoutCache.parse(Array((text + bad).utf8), buildID: Self.id) == nil, "\(bad)")
        }
        #expect(LayoutCache.parse(Array(text.utf8.dropLast()), buildID: Self.id) == nil)
    }

    @Test(.tags(.root)) func aFileAnyoneCouldWriteIsNotRead() throws {
        let dir = Support.tempDir()
        chmod(dir, 0o755)
        let path = dir + "/layouts"
        let text = "kpeer-layout 1 deadbeef btf /sys/kernel/btf/vmlinux\ns unix_sock 1024\n"
        try text.write(toFile: path, atomically: false, encoding: .utf8)
        chmod(path, 0o644)
        #expect(LayoutCache(path: path).lookup(buildID: Self.id) != nil)
        chmod(path, 0o666)
        #expect(LayoutCache(path: path).lookup(buildID: Self.id) == nil)
        chmod(path, 0o644)
        chmod(dir, 0o777)
        #expect(LayoutCache(path: path).lookup(buildID: Self.id) == nil)
    }
}
