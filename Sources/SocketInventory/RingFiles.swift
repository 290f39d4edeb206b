/// The fixed files of an io_uring ring, from /proc/PID/fdinfo/RINGFD.
///
/// After `UserFiles:\tN` the kernel lists the registered files a line each,
/// `%5u: NAME`. What NAME is depends on the kernel:
/// - before 6.14, the file's dentry name (`file_dentry(f)->d_iname`), and
///   `<none>` for an empty slot. A socket's dentry is named after its
///   protocol ("UNIX-STREAM", "UNIX"), so which socket it is cannot be told;
/// - since Al Viro's fix of January 2025 ("fix io_uring_show_fdinfo()
///   misuse of ->d_iname", Linux 6.14), its path (`seq_file_path`), which
///   for a socket is `socket:[INODE]`; empty slots are left out.
/// Kernels of the first kind list them only when the ring's lock is free
/// at that moment (mutex_trylock): a busy ring lists nothing.
public struct RingFiles: Equatable, Sendable {
    /// (slot, socket inode) of each socket the kernel names.
    public var sockets: [(slot: Int32, inode: UInt64)] = []
    /// Registered unix sockets named only by protocol.
    public var unnamedUnix = 0
    /// The `UserFiles:` count (the table's size, empty slots included).
    public var registered = 0

    public init() {}

    public static func == (a: RingFiles, b: RingFiles) -> Bool {
        a.sockets.map(\.slot) == b.sockets.map(\.slot) && a.sockets.map(\.inode) == b.sockets.map(\.inode)
            && a.unnamedUnix == b.unnamedUnix && a.registered == b.registered
    }

    public static func parse(_ info: [UInt8]) -> RingFiles {
        var out = RingFiles()
        var inFiles = false
        for line in info.split(separator: 0x0A) {
            if !inFiles {
                let key = "UserFiles:".utf8
                if line.starts(with: key) {
                    inFiles = true
                    out.registered = Int(decimal(line.dropFirst(key.count).drop { $0 == 0x09 || $0 == 0x20 }) ?? 0)
                }
                continue
            }
            // "%5u: NAME": spaces, the slot, ": ", the name. Anything else
            // ends the list (UserBufs: follows it).
            let body = line.drop { $0 == 0x20 }
            guard let colon = body.firstIndex(of: 0x3A), let slot = decimal(body[..<colon]),
                  colon + 1 < body.endIndex, body[colon + 1] == 0x20 else { break }
            let name = body[(colon + 2)...]
            if let inode = socketInode(name) {
                out.sockets.append((Int32(truncatingIfNeeded: slot), inode))
            } else if name.starts(with: "UNIX".utf8) {
                out.unnamedUnix += 1
            }
        }
        return out
    }

    /// Digits only, else nil.
    static func decimal(_ s: ArraySlice<UInt8>) -> UInt64? {
        guard !s.isEmpty, s.count <= 19, s.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return nil }
        return s.reduce(0) { $0 * 10 + UInt64($1 - 0x30) }
    }

    /// `socket:[N]` exactly, else nil (a file whose name merely starts so is
    /// printed with its directory: `/tmp/socket:[1]`).
    static func socketInode(_ name: ArraySlice<UInt8>) -> UInt64? {
        let prefix = "socket:[".utf8
        guard name.starts(with: prefix), name.last == 0x5D else { return nil }
        return decimal(name.dropFirst(prefix.count).dropLast())
    }
}

/// A ring descriptor whose fdinfo names registered unix sockets only by
/// protocol (RingFiles.unnamedUnix): where the kcore method looks for them
/// in kernel memory (PeerResolution's RingHolders).
public struct UnnamedRing: Equatable, Sendable {
    /// The ring's descriptor, in the process's table (tid 0) or in the
    /// own table of thread `tid`.
    public var fd: Int32
    public var tid: Int32
    /// The fdinfo's `UserFiles:` count, which the ring's table in memory must match.
    public var registered: Int
    /// Its unix sockets the fdinfo named only by protocol.
    public var unnamedUnix: Int

    public init(fd: Int32, tid: Int32 = 0, registered: Int, unnamedUnix: Int) {
        self.fd = fd; self.tid = tid; self.registered = registered; self.unnamedUnix = unnamedUnix
    }
}
