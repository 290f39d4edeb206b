import CoreWriter
import Foundation
import Testing
@testable import KernelMemory
@testable import KernelObjects
@testable import KPeerSystem
@testable import PeerResolution
@testable import SocketInventory
@testable import TypeOffsets

// The synthetic kernels the unit suites share: an ELF core written by
// libelf (the shape /proc/kcore has), and two ways of laying sockets out
// in it — fixed slots with only the peer field placed (SlotKernel), or
// whole structs laid out with this machine's BTF (BTFKernel).

/// A synthetic kernel: segments at kernel-looking addresses, written as an
/// ELF core.
final class SyntheticCore {
    struct Segment {
        var vaddr: UInt64
        var bytes: [UInt8]
        var memsz: UInt64
    }

    var segments: [Segment] = []
    let path: String

    init(name: String = "core") {
        path = Support.tempDir() + "/" + name
    }

    @discardableResult
    func add(vaddr: UInt64, size: Int, memsz: UInt64? = nil) -> Int {
        segments.append(Segment(vaddr: vaddr, bytes: [UInt8](repeating: 0, count: size), memsz: memsz ?? UInt64(size)))
        return segments.count - 1
    }

    /// Writes a little-endian word at a kernel address.
    func poke(_ address: UInt64, _ value: UInt64) {
        for (i, s) in segments.enumerated() where address >= s.vaddr && address + 8 <= s.vaddr + UInt64(s.bytes.count) {
            let at = Int(address - s.vaddr)
            for k in 0..<8 { segments[i].bytes[at + k] = UInt8(truncatingIfNeeded: value >> (8 * UInt64(k))) }
            return
        }
        fatalError("poke outside the synthetic core: \(String(address, radix: 16))")
    }

    func pokeByte(_ address: UInt64, _ value: UInt8) {
        for (i, s) in segments.enumerated() where address >= s.vaddr && address < s.vaddr + UInt64(s.bytes.count) {
            segments[i].bytes[Int(address - s.vaddr)] = value
        }
    }

    func write() throws -> String {
        var err = [CChar](repeating: 0, count: 256)
        let rc: Int32 = withArrayOfBuffers(segments.map(\.bytes)) { bufs in
            var cws = zip(segments, bufs).map { s, b in
                cw_segment(vaddr: s.vaddr, data: b.baseAddress, filesz: UInt64(s.bytes.count), memsz: s.memsz)
            }
            return cw_write_core(path, &cws, cws.count, &err, err.count)
        }
        if rc != 0 { throw Support.Failure("cw_write_core: " + String(decoding: err.prefix { $0 != 0 }.map(UInt8.init(bitPattern:)), as: UTF8.self)) }
        return path
    }
}

private func withArrayOfBuffers<R>(_ arrays: [[UInt8]], _ body: ([UnsafeRawBufferPointer]) -> R) -> R {
    func go(_ i: Int, _ acc: [UnsafeRawBufferPointer]) -> R {
        if i == arrays.count { return body(acc) }
        return arrays[i].withUnsafeBytes { go(i + 1, acc + [$0]) }
    }
    return go(0, [])
}

/// Sockets in fixed slots (slot i at base + i*1024): only the peer field is
/// placed, noise everywhere else, and a /proc/net/unix table naming them.
/// For the kcore resolver and calibration, which read nothing but that field.
final class SlotKernel {
    static let base: UInt64 = 0xffff_8880_0400_0000
    static let size: UInt64 = 1024
    static let peerOffset = 776

    let core = SyntheticCore()
    var entries: [UnixSocketEntry] = []
    var peerOffset: Int

    init(peerOffset: Int = SlotKernel.peerOffset) {
        self.peerOffset = peerOffset
        core.add(vaddr: Self.base, size: 64 * Int(Self.size))
    }

    func address(_ slot: Int) -> UInt64 { Self.base + UInt64(slot) * Self.size }

    func socket(_ slot: Int, inode: UInt64, type: SocketType = .stream, state: UInt8 = 3,
                listening: Bool = false, path: String? = nil, inTable: Bool = true) {
        // Noise everywhere else in the struct, as a real one has.
        for o in stride(from: 8, to: Int(Self.size), by: 8) where o != peerOffset {
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

    /// The kcore resolver on this kernel, reading the peer at `offset`.
    func resolver(offset: MemberOffset = SlotKernel.option()) throws -> KcoreResolver {
        KcoreResolver(memory: try memory(), offset: offset)
    }

    /// What the resolver links in this kernel's table.
    func links(offset: MemberOffset = SlotKernel.option()) throws -> (PeerLinks, KcoreResolver.Check) {
        try resolver(offset: offset).links(entries)
    }

    /// An offset as --offset gives it.
    static func option(_ value: Int = peerOffset) -> MemberOffset {
        MemberOffset(value: value, source: .option, origin: "test")
    }

    /// Pair 1↔2, listener 10 with pending client 11 (embryo in slot 12),
    /// dgram 20→21, socket 30 whose peer (slot 31) closed, lonely 40.
    static func standard() -> SlotKernel {
        let w = SlotKernel()
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
}

/// Whole kernel objects laid out with this machine's BTF, each in a page of
/// its own: what the kernel-object reader, the row check and the fact
/// reader read.
final class BTFKernel {
    static let btf = "/sys/kernel/btf/vmlinux"
    static let base: UInt64 = 0xffff_8880_0200_0000
    static var available: Bool { access(btf, R_OK) == 0 }

    let types: KernelTypes
    let core = SyntheticCore()
    var next = BTFKernel.base + 0x1000

    init() throws {
        types = try KernelTypes(btf: Self.btf)
        _ = core.add(vaddr: Self.base, size: 1 << 18)
    }

    func off(_ t: String, _ p: String) throws -> UInt64 { UInt64(try types.member(t, p).offset) }
    func alloc() -> UInt64 { defer { next += 0x1000 }; return next }
    func bytes(_ at: UInt64, _ b: [UInt8]) { for (i, x) in b.enumerated() { core.pokeByte(at + UInt64(i), x) } }

    /// A unix_sock of `type` with inode `inode` (0: an embryo, no
    /// socket), in the namespace `netns`, bound to `name` (sun_path bytes).
    /// `skState`, the sk_state the table's flags and St are printed from
    /// (10 listening, 1 established, 7 closed); nil leaves it 0.
    func socket(inode: UInt64, type: UInt16 = 1, netns: UInt32 = 4026531840, name: [UInt8]?,
                skState: UInt8? = nil) throws -> UInt64 {
        let us = alloc()
        bytes(us + (try off("unix_sock", "sk.__sk_common.skc_family")), [1, 0])
        bytes(us + (try off("unix_sock", "sk.sk_type")), [UInt8(type), 0])
        if let skState { bytes(us + (try off("unix_sock", "sk.__sk_common.skc_state")), [skState]) }
        if inode != 0 {
            let sa = alloc()
            core.poke(us + (try off("unix_sock", "sk.sk_socket")), sa)
            core.poke(sa + (try off("socket_alloc", "vfs_inode.i_ino")), inode)
        }
        let net = alloc()
        core.poke(us + (try off("unix_sock", "sk.__sk_common.skc_net.net")), net)
        bytes(net + (try off("net", "ns.inum")), withUnsafeBytes(of: netns.littleEndian, Array.init))
        if let name {
            let ua = alloc()
            core.poke(us + (try off("unix_sock", "addr")), ua)
            let len = Int32(try off("sockaddr_un", "sun_path")) + Int32(name.count)
            bytes(ua + (try off("unix_address", "len")), withUnsafeBytes(of: len.littleEndian, Array.init))
            bytes(ua + (try off("unix_address", "name")) + (try off("sockaddr_un", "sun_path")), name)
        }
        return us
    }

    func verifier(peerAt: Int? = nil) throws -> RowVerifier {
        let reader = ObjectReader(memory: try KernelMemory(path: try core.write()), types: types)
        return try #require(RowVerifier(reader: reader, peerAt: peerAt))
    }

    /// A /proc/net/unix row for the socket at `address`.
    static func row(_ address: UInt64, inode: UInt64, type: UInt16 = 1, state: UInt8 = 1, netns: UInt64 = 4026531840,
                    path: String?, abstract: Bool = false, listening: Bool = true) -> UnixSocketEntry {
        UnixSocketEntry(address: address, refCount: 2, flags: listening ? UnixSocketEntry.acceptConnections : 0,
                        rawType: type, rawState: state, inode: inode,
                        path: path.map { SocketPath(bytes: Array($0.utf8), isAbstract: abstract) }, netns: netns)
    }
}
