import Glibc

/// Thin wrappers over the syscalls kpeer makes on files. procfs files report
/// a size of 0, so everything is read until EOF.
public enum Files {
    /// Reads a whole file (relative to `directory` when given).
    public static func read(_ path: String, relativeTo directory: Int32 = AT_FDCWD) throws(KPeerError) -> [UInt8] {
        let fd = openat(directory, path, O_RDONLY | O_CLOEXEC)
        if fd < 0 { throw .cannotOpen(path, errno: errno) }
        defer { close(fd) }
        return try readAll(fd: fd, path: path)
    }

    /// Reads a whole file, or nil when it vanished or cannot be read: a
    /// process exiting mid-scan is normal, not an error.
    public static func readIfPresent(_ path: String, relativeTo directory: Int32 = AT_FDCWD) -> [UInt8]? {
        try? read(path, relativeTo: directory)
    }

    public static func readAll(fd: Int32, path: String) throws(KPeerError) -> [UInt8] {
        try withContents(fd: fd, path: path) { Array($0) }
    }

    /// A whole file (procfs says size 0) into one malloc'd buffer that
    /// doubles as it fills, handed to `body` and freed. Reads are large:
    /// the kernel formats /proc/net/unix as it is read, walking to its
    /// position again at every read, and growing by just what one more read
    /// needs would copy the whole file again each time.
    public static func withContents<T>(fd: Int32, path: String,
                                       _ body: (UnsafeBufferPointer<UInt8>) -> T) throws(KPeerError) -> T {
        var capacity = 1 << 16
        var base = malloc(capacity)!.assumingMemoryBound(to: UInt8.self)
        defer { free(base) }
        var count = 0
        while true {
            if capacity - count < capacity / 2 {
                capacity *= 2
                base = realloc(base, capacity)!.assumingMemoryBound(to: UInt8.self)
            }
            let n = Glibc.read(fd, base + count, capacity - count)
            if n < 0 {
                if errno == EINTR { continue }
                throw .cannotRead(path, errno: errno)
            }
            if n == 0 { return body(UnsafeBufferPointer(start: base, count: count)) }
            count += n
        }
    }

    /// `withContents` of the file at `path`.
    public static func withContents<T>(_ path: String, _ body: (UnsafeBufferPointer<UInt8>) -> T) throws(KPeerError) -> T {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 { throw .cannotOpen(path, errno: errno) }
        defer { close(fd) }
        return try withContents(fd: fd, path: path, body)
    }

    /// The text of a small file without its trailing newline, or nil.
    public static func text(_ path: String) -> String? {
        guard var bytes = readIfPresent(path) else { return nil }
        while let last = bytes.last, last == 0x0A || last == 0 { bytes.removeLast() }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Replaces the file at `path` whole (a new file renamed over it, so no
    /// reader sees half of it), creating its directory if missing. Only in
    /// a directory kpeer may trust (`trustedDirectory`), and relative to
    /// that open directory, so the directory cannot be swapped for another
    /// between the check and the write. Best effort: false when anything
    /// fails or the directory is not trusted.
    @discardableResult
    public static func replace(_ path: String, with bytes: [UInt8], mode: mode_t = 0o644,
                               directoryMode: mode_t = 0o755) -> Bool {
        if let slash = path.lastIndex(of: "/"), slash != path.startIndex {
            mkdir(String(path[..<slash]), directoryMode)  // EEXIST is fine
        }
        guard let (dir, name) = trustedDirectory(of: path) else { return false }
        defer { close(dir) }
        let temp = "\(name).\(getpid())"
        unlinkat(dir, temp, 0)  // left by a run of the same pid that died midway
        let fd = openat(dir, temp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode)
        guard fd >= 0 else { return false }
        let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        close(fd)
        guard written == bytes.count, renameat(dir, temp, dir, name) == 0 else {
            unlinkat(dir, temp, 0)
            return false
        }
        return true
    }

    /// The directory of `path`, open, and the file's name in it, when kpeer
    /// may keep files there for later runs (/run/kpeer): a real directory
    /// (O_NOFOLLOW: not a symlink to one), owned by root, that neither group
    /// nor others may write. Otherwise nil: whoever could change that
    /// directory could plant a file for kpeer to believe, or point it at
    /// another directory for kpeer to write or delete in. Use the name with
    /// openat/unlinkat on the descriptor, then close it.
    public static func trustedDirectory(of path: String) -> (fd: Int32, name: String)? {
        let slash = path.lastIndex(of: "/")
        let directory = slash.map { $0 == path.startIndex ? "/" : String(path[..<$0]) } ?? "."
        let name = slash.map { String(path[path.index(after: $0)...]) } ?? path
        guard !name.isEmpty, name != ".", name != ".." else { return nil }
        let fd = open(directory, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        var st = stat()
        guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR, st.st_uid == 0, st.st_mode & 0o022 == 0 else {
            close(fd)
            return nil
        }
        return (fd, name)
    }

    public static func exists(_ path: String) -> Bool {
        access(path, F_OK) == 0
    }

    /// st_ino and st_dev of a path (following symlinks), or nil.
    public static func identity(_ path: String) -> (inode: UInt64, device: UInt64)? {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        return (UInt64(st.st_ino), UInt64(st.st_dev))
    }

    /// st_ino of an open descriptor, or nil.
    public static func inode(fd: Int32) -> UInt64? {
        var st = stat()
        guard fstat(fd, &st) == 0 else { return nil }
        return UInt64(st.st_ino)
    }
}

/// Facts about the running process and kernel.
public enum Host {
    public static var isRoot: Bool { geteuid() == 0 }

    /// The kernel lockdown mode from /sys/kernel/security/lockdown
    /// ("none", "integrity", "confidentiality"), or nil when not exposed.
    public static func lockdown(root: String = "/sys/kernel/security/lockdown") -> String? {
        guard let text = Files.text(root) else { return nil }
        // The active mode is bracketed: "none [integrity] confidentiality".
        guard let open = text.firstIndex(of: "["), let close = text[open...].firstIndex(of: "]") else { return nil }
        return String(text[text.index(after: open)..<close])
    }

    /// The running kernel's release, as uname -r prints it.
    public static var kernelRelease: String {
        var u = utsname()
        uname(&u)
        return withUnsafeBytes(of: &u.release) { raw in
            String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
        }
    }
}
