import Glibc
import KernelMemory
import KPeerSystem
import SocketInventory
import TypeOffsets

/// Finds offsetof(struct unix_sock, peer) with no symbols at all: in a
/// connected pair A ↔ B, the peer field is the one place where A holds B's
/// address and B holds A's, at the same offset.
public enum Calibration {
    /// A socketpair kpeer makes for itself; it must be open while
    /// /proc/net/unix is read, and is left out of every answer.
    public final class Pair {
        public let fds: (Int32, Int32)
        public let inodes: (UInt64, UInt64)

        public init() throws(KPeerError) {
            var fds: [Int32] = [-1, -1]
            if socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &fds) != 0 {
                throw KPeerError.system("cannot create", path: "a unix socketpair", errno: errno)
            }
            self.fds = (fds[0], fds[1])
            self.inodes = (Files.inode(fd: fds[0]) ?? 0, Files.inode(fd: fds[1]) ?? 0)
        }

        deinit {
            close(fds.0)
            close(fds.1)
        }
    }

    /// How many bytes of a unix_sock to search when its size is unknown.
    public static let defaultWindow = 2048

    /// Offsets at which the socket at `a` holds the address of a socket in
    /// `known` that holds `a` back at the same offset.
    public static func candidates(memory: KernelMemory, socket a: UInt64, known: Set<UInt64>,
                                  window: Int) throws(KPeerError) -> [(offset: Int, peer: UInt64)] {
        let bytes = try memory.read(a, count: clampedWindow(memory, a, window))
        var out: [(Int, UInt64)] = []
        var o = 8
        while o + 8 <= bytes.count {
            var v: UInt64 = 0
            for k in (0..<8).reversed() { v = v << 8 | UInt64(bytes[o + k]) }
            if v != a, known.contains(v), (try? memory.readWord(v &+ UInt64(o))) == a {
                out.append((o, v))
            }
            o += 8
        }
        return out
    }

    /// The offset from a connected socket at `address`: it must be unique.
    /// The window runs past the end of the struct into neighbouring slab
    /// objects, where consecutive pairs can mimic a peer field one object
    /// further on; `confirm` (kpeer's own pair, A and B) removes those.
    public static func offset(memory: KernelMemory, socket address: UInt64, entries: [UnixSocketEntry],
                              expectedPeer: UInt64? = nil, confirm: (UInt64, UInt64)? = nil,
                              window: Int = defaultWindow, origin: String) throws(KPeerError) -> MemberOffset {
        let known = Set(entries.map(\.address).filter { $0 != 0 })
        var found = try candidates(memory: memory, socket: address, known: known, window: window)
        if let expectedPeer { found = found.filter { $0.peer == expectedPeer } }
        if let (a, b) = confirm, found.count > 1 {
            let mine = try candidates(memory: memory, socket: a, known: known, window: window)
                .filter { $0.peer == b }.map(\.offset)
            found = found.filter { mine.contains($0.offset) }
        }
        guard found.count == 1 else {
            let what = found.isEmpty ? "no offset" : "\(found.count) offsets (\(found.map { String($0.offset) }.joined(separator: ", ")))"
            throw KPeerError(.refused, "calibration on \(origin) found \(what) where the two sockets point at each other",
                             fix: "give the offset another way: --btf, --dwarf or --offset")
        }
        return MemberOffset(value: found[0].offset, source: .calibration, origin: origin)
    }

    /// Calibrates on kpeer's own pair, whose entries must be in `entries`.
    public static func offset(memory: KernelMemory, pair: Pair, entries: [UnixSocketEntry],
                              window: Int = defaultWindow) throws(KPeerError) -> MemberOffset {
        let (a, b) = try addresses(of: pair, in: entries)
        return try offset(memory: memory, socket: a, entries: entries, expectedPeer: b, window: window,
                          origin: "socketpair made by kpeer")
    }

    /// The kernel addresses of kpeer's own pair, from `entries`.
    public static func addresses(of pair: Pair, in entries: [UnixSocketEntry]) throws(KPeerError) -> (UInt64, UInt64) {
        guard let a = entries.first(where: { $0.inode == pair.inodes.0 })?.address,
              let b = entries.first(where: { $0.inode == pair.inodes.1 })?.address else {
            throw KPeerError(.unavailable, "kpeer's own socketpair is missing from /proc/net/unix",
                             fix: "give the offset another way: --btf, --dwarf or --offset")
        }
        return (a, b)
    }

    private static func clampedWindow(_ memory: KernelMemory, _ a: UInt64, _ window: Int) -> Int {
        guard let seg = memory.segment(containing: a) else { return 8 }
        return Int(min(UInt64(window), seg.end - a))
    }
}
