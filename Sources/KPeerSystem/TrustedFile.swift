import Glibc

extension Files {
    /// A whole file kpeer wrote itself for later runs (/run/kpeer/…), or nil
    /// unless it lies in a trusted directory (`trustedDirectory`) and is a
    /// regular file (not a symlink, not a FIFO) owned by root that no one
    /// else may write, under `maxSize` bytes: anything else may have been
    /// put there by someone who wants kpeer to believe it.
    public static func readTrusted(_ path: String, maxSize: Int) -> [UInt8]? {
        guard let (dir, name) = trustedDirectory(of: path) else { return nil }
        let fd = openat(dir, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK)
        close(dir)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG, st.st_uid == 0, st.st_mode & 0o022 == 0,
              st.st_size < maxSize else { return nil }
        return try? readAll(fd: fd, path: path)
    }

    /// Removes a file kpeer keeps for later runs, only inside a trusted
    /// directory (never through a planted symlink to another one).
    public static func removeTrusted(_ path: String) {
        guard let (dir, name) = trustedDirectory(of: path) else { return }
        unlinkat(dir, name, 0)
        close(dir)
    }
}
