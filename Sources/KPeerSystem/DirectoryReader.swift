import CKPeer
import Glibc

/// Directory entries through getdents64(2), into one buffer kept for every
/// directory a thread reads. The owner scan lists two /proc directories per
/// process; fdopendir(3) would add an fstat, two fcntls and a 32 KiB
/// allocation to each, and under emulation each syscall into /proc counts.
public final class DirectoryReader {
    private let buffer: UnsafeMutableRawBufferPointer

    public init(capacity: Int = 32 * 1024) {
        buffer = .allocate(byteCount: capacity, alignment: 8)
    }

    deinit { buffer.deallocate() }

    /// Calls `body` with the NUL-terminated name of each entry of the open
    /// directory `fd` (its own position on), "." and ".." included, until
    /// the end or until `body` returns false. false when getdents64 failed
    /// (errno says why).
    ///
    /// `procfs`: the directory is one of /proc's, whose listings fill each
    /// call until the buffer is full or the directory ends; a call that
    /// leaves room for a record of the longest name is then the last (the
    /// call that would return 0 is skipped: one syscall a directory, and
    /// the owner scan lists one or two a process). A signal handled during
    /// the call also ends it early (filldir64): then the next call is made.
    public func forEach(_ fd: Int32, procfs: Bool = false, _ body: (UnsafePointer<UInt8>) -> Bool) -> Bool {
        while true {
            let signals = procfs ? kp_signals_handled() : 0
            let n = kp_getdents64(fd, buffer.baseAddress, UInt(buffer.count))
            if n == 0 { return true }
            if n < 0 {
                if n == -Int(EINTR) { continue }
                errno = Int32(-n)
                return false
            }
            // linux_dirent64: d_ino (8), d_off (8), d_reclen (2), d_type (1),
            // then the name and its NUL, the record padded to 8 bytes.
            var at = 0
            while at + 19 < n {
                let reclen = Int(buffer.load(fromByteOffset: at + 16, as: UInt16.self))
                guard reclen >= 20, at + reclen <= n else { return true }
                if !body((buffer.baseAddress! + at + 19).assumingMemoryBound(to: UInt8.self)) { return true }
                at += reclen
            }
            // linux_dirent64 of a 255-byte name: 19 + 256, padded to 280.
            if procfs && buffer.count - n >= 280 && kp_signals_handled() == signals { return true }
        }
    }

    /// A name of decimal digits only (a pid, a descriptor), at most nine of
    /// them, as a number; nil for any other name.
    @inline(__always)
    public static func number(_ s: UnsafePointer<UInt8>) -> Int32? {
        var v: Int32 = 0
        var i = 0
        while s[i] != 0 {
            guard s[i] >= 0x30, s[i] <= 0x39, i < 9 else { return nil }
            v = v * 10 + Int32(s[i] - 0x30)
            i += 1
        }
        return i > 0 ? v : nil
    }
}
