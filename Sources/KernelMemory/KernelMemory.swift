import CKPeer
import Glibc
import KPeerSystem

/// Kernel virtual memory as an ELF core file shows it: /proc/kcore, or a
/// synthetic core in tests. Opened read-only; nothing is ever written.
///
/// /proc/kcore reads are slow (each is a syscall that walks the kernel's
/// segment list and copies), so reads go through a cache of 4 KiB blocks:
/// sockets sorted by address share slab pages.
public final class KernelMemory {
    public struct Segment: Sendable, Equatable {
        public var vaddr: UInt64
        public var memsz: UInt64
        public var filesz: UInt64
        public var offset: UInt64
        public var end: UInt64 { vaddr &+ memsz }
        public init(vaddr: UInt64, memsz: UInt64, filesz: UInt64, offset: UInt64) {
            self.vaddr = vaddr; self.memsz = memsz; self.filesz = filesz; self.offset = offset
        }
    }

    public static let blockSize: UInt64 = 4096

    public let path: String
    /// PT_LOAD segments sorted by address.
    public let segments: [Segment]
    private let fd: Int32
    private var cache: [UInt64: [UInt8]] = [:]
    private let cacheLimit: Int
    /// pread calls made so far (for benchmarks and cache tests).
    public private(set) var preads = 0

    public init(path: String = "/proc/kcore", cacheBlocks: Int = 8192) throws(KPeerError) {
        self.path = path
        self.cacheLimit = cacheBlocks
        // O_NONBLOCK: a FIFO given as --kcore must fail, not wait for a writer.
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        if fd < 0 {
            let code = errno
            switch code {
            case ENOENT where path == "/proc/kcore":
                throw KPeerError(.unavailable, "this kernel has no /proc/kcore (CONFIG_PROC_KCORE is off)",
                                 fix: "use --method netlink, or a kernel built with CONFIG_PROC_KCORE=y")
            case EACCES, EPERM:
                throw KPeerError(.permission, "cannot open \(path): \(String(cString: strerror(code)))",
                                 fix: Host.isRoot ? "kernel lockdown or a security module denies it; use --method netlink"
                                                  : "run kpeer as root (reading kernel memory needs CAP_SYS_RAWIO)")
            case ENOENT:
                throw KPeerError(.badFile, "\(path) does not exist", fix: "give --kcore an ELF core file")
            default:
                throw KPeerError.system("cannot open", path: path, errno: code)
            }
        }
        var st = stat()
        if fstat(fd, &st) != 0 || (st.st_mode & S_IFMT) != S_IFREG {
            close(fd)
            let what = (st.st_mode & S_IFMT) == S_IFDIR ? "a directory" : "not a regular file"
            throw KPeerError(.badFile, "\(path) is \(what)", fix: "give --kcore an ELF core file such as /proc/kcore")
        }
        var raw: UnsafeMutablePointer<kp_segment>?
        var count = 0
        var err = kp_error()
        let rc = kp_core_segments(fd, &raw, &count, &err)
        if rc != 0 {
            close(fd)
            var e = KPeerError(err, fix: "give --kcore an ELF core file such as /proc/kcore")
            e.problem = "\(path): \(e.problem)"
            throw e
        }
        defer { free(raw) }
        var segs: [Segment] = []
        for i in 0..<count {
            let s = raw![i]
            segs.append(Segment(vaddr: s.vaddr, memsz: s.memsz, filesz: s.filesz, offset: s.offset))
        }
        self.fd = fd
        self.segments = segs.sorted { $0.vaddr < $1.vaddr }
        if segments.isEmpty {
            close(fd)
            throw KPeerError(.badFile, "\(path) has no PT_LOAD segments", fix: "give --kcore an ELF core file with memory in it")
        }
    }

    deinit { close(fd) }

    /// The segment holding `address`, by binary search.
    public func segment(containing address: UInt64) -> Segment? {
        var lo = 0, hi = segments.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if segments[mid].vaddr <= address { lo = mid + 1 } else { hi = mid }
        }
        guard lo > 0 else { return nil }
        let s = segments[lo - 1]
        return address < s.end ? s : nil
    }

    public func contains(_ address: UInt64) -> Bool { segment(containing: address) != nil }

    /// `count` bytes at `address`. A range reaching outside every segment is
    /// an error; inside one, /proc/kcore gives zeroes for holes, so zeroes
    /// prove nothing by themselves.
    public func read(_ address: UInt64, count: Int) throws(KPeerError) -> [UInt8] {
        var out = [UInt8]()
        out.reserveCapacity(count)
        var cur = address
        var left = UInt64(count)
        while left > 0 {
            guard let seg = segment(containing: cur) else {
                throw KPeerError(.refused, "address 0x\(String(address, radix: 16)) (+\(count)) lies outside every segment of \(path)")
            }
            let rel = cur - seg.vaddr
            let blockStart = rel - rel % Self.blockSize
            let block = try self.block(seg, blockStart)
            let inBlock = Int(rel - blockStart)
            let take = min(UInt64(block.count - inBlock), left)
            out.append(contentsOf: block[inBlock..<inBlock + Int(take)])
            cur &+= take
            left -= take
        }
        return out
    }

    /// A little-endian 64-bit word at `address`. The common case, a word
    /// inside one block, is read straight out of the cached block: this is
    /// the resolver's inner loop, one call per socket.
    public func readWord(_ address: UInt64) throws(KPeerError) -> UInt64 {
        if let seg = segment(containing: address), address &+ 8 <= seg.end {
            let rel = address - seg.vaddr
            let blockStart = rel - rel % Self.blockSize
            let inBlock = Int(rel - blockStart)
            let block = try self.block(seg, blockStart)
            if inBlock + 8 <= block.count {
                return block.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(fromByteOffset: inBlock, as: UInt64.self)) }
            }
        }
        let b = try read(address, count: 8)
        var v: UInt64 = 0
        for i in (0..<8).reversed() { v = v << 8 | UInt64(b[i]) }
        return v
    }

    /// One cache block: [blockStart, blockStart+4096) of `seg`, clipped to it.
    private func block(_ seg: Segment, _ blockStart: UInt64) throws(KPeerError) -> [UInt8] {
        let key = seg.vaddr &+ blockStart
        if let hit = cache[key] { return hit }
        let length = Int(min(Self.blockSize, seg.memsz - blockStart))
        var bytes = [UInt8](repeating: 0, count: length)
        // Past p_filesz the segment reads as zeroes, as in any ELF core.
        if blockStart < seg.filesz {
            let fileLength = Int(min(UInt64(length), seg.filesz - blockStart))
            let fileOffset = seg.offset + blockStart
            var done = 0
            while done < fileLength {
                let n = bytes.withUnsafeMutableBytes { buf in
                    pread(fd, buf.baseAddress! + done, fileLength - done, off_t(Int64(bitPattern: fileOffset + UInt64(done))))
                }
                preads += 1
                if n < 0 {
                    if errno == EINTR { continue }
                    throw KPeerError.system("cannot read", path: path, errno: errno)
                }
                if n == 0 {
                    throw KPeerError(.badFile, "\(path) is shorter than its program headers say",
                                     fix: "give --kcore a complete ELF core file")
                }
                done += n
            }
        }
        if cache.count >= cacheLimit { cache.removeAll(keepingCapacity: true) }
        cache[key] = bytes
        return bytes
    }

    /// Forgets cached blocks, so the next reads see memory as it is now.
    public func dropCache() { cache.removeAll(keepingCapacity: true) }
}
