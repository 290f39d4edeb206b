import KPeerSystem

/// The address a unix socket is bound to: a filesystem path, or an abstract
/// name (the kernel's leading NUL, shown as `@`).
public struct SocketPath: Hashable, Sendable {
    /// The name without the abstract marker.
    public var bytes: [UInt8]
    public var isAbstract: Bool

    public init(bytes: [UInt8], isAbstract: Bool) {
        self.bytes = bytes
        self.isAbstract = isAbstract
    }

    /// From sun_path as UNIX_DIAG_NAME gives it: a leading NUL means abstract.
    public init(sunPath: [UInt8]) {
        if sunPath.first == 0 {
            self.init(bytes: Array(sunPath.dropFirst()), isAbstract: true)
        } else {
            self.init(bytes: Array(sunPath.prefix(while: { $0 != 0 })), isAbstract: false)
        }
    }

    /// As /proc/net/unix prints the name (unix_seq_show): every NUL as `@`.
    public var printed: SocketPath { SocketPath(bytes: bytes.map { $0 == 0 ? 0x40 : $0 }, isAbstract: isAbstract) }

    /// The bytes of the table's Path column: `@` first for an abstract
    /// name, so a path that begins with `@` reads the same there.
    public var columnBytes: [UInt8] { (isAbstract ? [0x40] : []) + printed.bytes }

    /// As kpeer prints it: `@name` for abstract names, odd bytes escaped so
    /// that one socket stays one line and one column.
    public var display: String { (isAbstract ? "@" : "") + Escape.bytes(bytes) }
}


/// The file a socket is bound to, as inode and device. This, not the name,
/// identifies a filesystem socket: a socket file unlinked and bound again
/// keeps its name but is a new file, and the old socket keeps the old one.
public struct BoundFile: Hashable, Sendable {
    public var inode: UInt64
    public var major: UInt32
    public var minor: UInt32

    public init(inode: UInt64, major: UInt32, minor: UInt32) {
        self.inode = inode; self.major = major; self.minor = minor
    }

    /// From UNIX_DIAG_VFS, whose device is the kernel's own dev_t
    /// (`sb->s_dev`: major << 20 | minor), not stat's encoding.
    public init(diagInode: UInt64, diagDevice: UInt64) {
        self.init(inode: diagInode, major: UInt32(truncatingIfNeeded: diagDevice >> 20),
                  minor: UInt32(truncatingIfNeeded: diagDevice & 0xFFFFF))
    }

    /// From stat(2): glibc's dev_t splits major and minor over two ranges of bits.
    public init(statInode: UInt64, statDevice: UInt64) {
        let major = ((statDevice >> 8) & 0xFFF) | ((statDevice >> 32) & ~UInt64(0xFFF))
        let minor = (statDevice & 0xFF) | ((statDevice >> 12) & ~UInt64(0xFF))
        self.init(inode: statInode, major: UInt32(truncatingIfNeeded: major), minor: UInt32(truncatingIfNeeded: minor))
    }

    public var description: String { "inode \(inode) on device \(major):\(minor)" }
}
