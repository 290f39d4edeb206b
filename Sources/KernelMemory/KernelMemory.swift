import CKPeer
import Glibc
import KPeerSystem

/// Kernel virtual memory as an ELF core file shows it: /proc/kcore, or a
/// synthetic core in tests. Opened read-only; nothing is ever written.
///
/// Every read is a pread of exactly the bytes asked for, with no cache:
/// /proc/kcore copies each read through a bounce buffer, so copying is what
/// costs, and kpeer wants 8 bytes of each ~1 KiB unix_sock. Measured in the
/// VM (2040 sockets, Linux 6.1, TCG): one 8-byte pread per socket 2.7 ms;
/// one 4 KiB block per page holding a socket (510 preads) 4.1 ms; runs of
/// neighbouring pages coalesced into 16–256 KiB preads 3.6–4.5 ms.
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

    /// The live kernel's memory; any other path is a core file the user gave.
    public static let procKcore = "/proc/kcore"

    public let path: String
    /// PT_LOAD segments sorted by address.
    public let segments: [Segment]
    private let fd: Int32
    /// pread calls made so far (for tests and KPEER_TRACE). Kept behind a
    /// pointer: a stored var of a class is checked for exclusive access at
    /// run time on every increment, and this one is bumped once a socket.
    /// Allocated last in init, once nothing before it can throw (a class
    /// whose init throws midway never runs deinit).
    private let counter: UnsafeMutablePointer<Int>
    public var preads: Int { counter.pointee }

    public init(path: String = procKcore) throws(KPeerError) {
        self.path = path
        // O_NONBLOCK: a FIFO given as --kcore must fail, not wait for a writer.
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        if fd < 0 {
            let code = errno
            let given = path != Self.procKcore
            switch KPeerError.kind(errno: code, of: given ? .input : .system) {
            case .unavailable:  // ENOENT of /proc/kcore itself
                throw .noKcore
            case .permission:
                var e = KPeerError.cannotOpen(path, errno: code)
                e.fix = Host.isRoot ? "kernel lockdown or a security module denies it; use --method netlink"
                                    : "run kpeer as root (reading kernel memory needs CAP_SYS_RAWIO)"
                throw e
            case .badFile:
                throw KPeerError(.badFile, "\(path) does not exist", fix: "give --kcore an ELF core file", errno: code, path: path)
            default:
                throw .cannotOpen(path, errno: code)
            }
        }
        var st = stat()
        if fstat(fd, &st) != 0 || (st.st_mode & S_IFMT) != S_IFREG {
            close(fd)
            throw .notRegularFile(path, isDirectory: (st.st_mode & S_IFMT) == S_IFDIR,
                                  fix: "give --kcore an ELF core file such as /proc/kcore")
        }
        var raw: UnsafeMutablePointer<kp_segment>?
        var count = 0
        var err = kp_error()
        let rc = kp_core_segments(fd, &raw, &count, &err)
        if rc != 0 {
            close(fd)
            var e = KPeerError(err, path: path, fix: "give --kcore an ELF core file such as /proc/kcore")
            e.problem = "\(path): \(e.problem)"  // the C side names no file
            throw e
        }
        defer { free(raw) }
        var segs: [Segment] = []
        for i in 0..<count {
            let s = raw![i]
            segs.append(Segment(vaddr: s.vaddr, memsz: s.memsz, filesz: s.filesz, offset: s.offset))
        }
        self.fd = fd
        counter = .allocate(capacity: 1)
        counter.initialize(to: 0)
        self.segments = segs.sorted { $0.vaddr < $1.vaddr }
        if segments.isEmpty {
            // Fully initialized: deinit closes fd.
            throw KPeerError(.badFile, "\(path) has no PT_LOAD segments", fix: "give --kcore an ELF core file with memory in it", path: path)
        }
    }

    deinit {
        close(fd)
        counter.deallocate()
    }

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
        try [UInt8](unsafeUninitializedCapacity: count) { (buf: inout UnsafeMutableBufferPointer<UInt8>, n: inout Int) throws(KPeerError) in
            try read(address, into: UnsafeMutableRawBufferPointer(buf))
            n = count
        }
    }

    /// A little-endian 64-bit word at `address`: the resolver's inner loop,
    /// one pread per socket.
    public func readWord(_ address: UInt64) throws(KPeerError) -> UInt64 {
        var v: UInt64 = 0
        // Inside one segment's file bytes (nearly always): one pread.
        if let seg = segment(containing: address), address &+ 8 > address, address &+ 8 <= seg.end,
           address - seg.vaddr + 8 <= seg.filesz {
            let n = pread(fd, &v, 8, off_t(Int64(bitPattern: seg.offset + (address - seg.vaddr))))
            counter.pointee += 1
            if n == 8 { return UInt64(littleEndian: v) }
        }
        try withUnsafeMutableBytes(of: &v) { (b: UnsafeMutableRawBufferPointer) throws(KPeerError) in try read(address, into: b) }
        return UInt64(littleEndian: v)
    }

    /// The little-endian word at each of `addresses`, or nil where it cannot
    /// be read: the resolver's inner loop, kept in one tight loop (one pread
    /// a word, the segment of the last address tried first) because under
    /// emulation the code between preads costs as much as the preads.
    public func readWords(_ addresses: [UInt64]) -> [UInt64?] {
        var out = [UInt64?](repeating: nil, count: addresses.count)
        // The segment `segment(containing:)` would pick: the last one that
        // starts at or below the address (so overlapping segments, in a core
        // given as --kcore, read as readWord reads them).
        var at = 0
        var made = 0
        for (i, address) in addresses.enumerated() {
            let seg = segments[at]
            let picked = address >= seg.vaddr && (at + 1 == segments.count || address < segments[at + 1].vaddr)
            if !picked {
                var lo = 0, hi = segments.count
                while lo < hi {
                    let mid = (lo + hi) / 2
                    if segments[mid].vaddr <= address { lo = mid + 1 } else { hi = mid }
                }
                guard lo > 0 else { continue }  // below every segment
                at = lo - 1
            }
            let s = segments[at]
            let rel = address &- s.vaddr
            // Inside the segment's file bytes: one pread; else (across a
            // segment's end, into its zeroes, outside) the general path.
            guard address &+ 8 > address, address &+ 8 <= s.end, rel + 8 <= s.filesz else {
                out[i] = try? readWord(address)
                continue
            }
            var v: UInt64 = 0
            let n = pread(fd, &v, 8, off_t(Int64(bitPattern: s.offset + rel)))
            made += 1
            out[i] = n == 8 ? UInt64(littleEndian: v) : try? readWord(address)
        }
        counter.pointee += made
        return out
    }

    /// Fills `out` from `address` on, segment by segment (adjacent segments
    /// are separate file ranges).
    public func read(_ address: UInt64, into out: UnsafeMutableRawBufferPointer) throws(KPeerError) {
        var done = 0
        while done < out.count {
            let cur = address &+ UInt64(done)
            guard cur >= address, let seg = segment(containing: cur) else {
                throw KPeerError(.refused, "address 0x\(String(address, radix: 16)) (+\(out.count)) lies outside every segment of \(path)")
            }
            let rel = cur - seg.vaddr
            let take = Int(min(UInt64(out.count - done), seg.memsz - rel))
            let piece = UnsafeMutableRawBufferPointer(rebasing: out[done..<done + take])
            // Past p_filesz the segment reads as zeroes, as in any ELF core.
            let inFile = rel < seg.filesz ? Int(min(UInt64(take), seg.filesz - rel)) : 0
            if inFile > 0 { try preadFully(piece.baseAddress!, inFile, at: seg.offset + rel) }
            if inFile < take { (piece.baseAddress! + inFile).initializeMemory(as: UInt8.self, repeating: 0, count: take - inFile) }
            done += take
        }
    }

    private func preadFully(_ base: UnsafeMutableRawPointer, _ count: Int, at offset: UInt64) throws(KPeerError) {
        var done = 0
        while done < count {
            let n = pread(fd, base + done, count - done, off_t(Int64(bitPattern: offset + UInt64(done))))
            counter.pointee += 1
            if n < 0 {
                if errno == EINTR { continue }
                throw .cannotRead(path, errno: errno)
            }
            if n == 0 {
                throw KPeerError(.badFile, "\(path) is shorter than its program headers say",
                                 fix: "give --kcore a complete ELF core file", path: path)
            }
            done += n
        }
    }
}

extension KPeerError {
    /// This kernel has no /proc/kcore (69): the kcore method cannot work.
    public static let noKcore = KPeerError(.unavailable, "this kernel has no /proc/kcore (CONFIG_PROC_KCORE is off)",
                                           fix: "use --method netlink, or a kernel built with CONFIG_PROC_KCORE=y",
                                           errno: ENOENT, path: KernelMemory.procKcore)
}
