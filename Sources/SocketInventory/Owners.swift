import Glibc
import KPeerSystem

/// A process holding a socket through one of its file descriptors.
public struct Owner: Hashable, Sendable, Comparable {
    public var pid: Int32
    /// /proc/PID/comm: the kernel's 15-byte command name.
    public var name: String
    public var fd: Int32

    public init(pid: Int32, name: String, fd: Int32) {
        self.pid = pid; self.name = name; self.fd = fd
    }

    public static func < (a: Owner, b: Owner) -> Bool { (a.pid, a.fd) < (b.pid, b.fd) }
}

/// Who holds which socket, from every /proc/PID/fd.
public struct OwnerTable: Sendable {
    /// Socket inode → its owners, sorted by (pid, fd).
    public var byInode: [UInt64: [Owner]] = [:]
    /// pid → network namespace (nsfs inode) of the processes holding sockets.
    public var netnsByPid: [Int32: UInt64] = [:]

    public init() {}

    public func owners(of inode: UInt64) -> [Owner] { byInode[inode] ?? [] }

    /// One pid per network namespace seen, to read its /proc/PID/net/unix.
    public var namespaceRepresentatives: [UInt64: Int32] {
        var out: [UInt64: Int32] = [:]
        for (pid, ns) in netnsByPid where ns != 0 {
            if let have = out[ns], have < pid { continue }
            out[ns] = pid
        }
        return out
    }
}

/// Scans /proc for socket file descriptors. Processes and descriptors
/// vanish mid-scan all the time: anything unreadable is skipped.
public enum OwnerScan {
    public static func scan(procRoot: String = "/proc") -> OwnerTable {
        var table = OwnerTable()
        guard let proc = opendir(procRoot) else { return table }
        defer { closedir(proc) }
        let procFD = dirfd(proc)
        var link = [CChar](repeating: 0, count: 64)
        while let ent = readdir(proc) {
            guard let pid = numericName(ent) else { continue }
            let fdDirFD = openat(procFD, "\(pid)/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            if fdDirFD < 0 { continue }
            guard let fdDir = fdopendir(fdDirFD) else {
                close(fdDirFD)
                continue
            }
            var name: String? = nil
            while let fent = readdir(fdDir) {
                guard let fd = numericName(fent) else { continue }
                let n = withUnsafePointer(to: fent.pointee.d_name) { p in
                    p.withMemoryRebound(to: CChar.self, capacity: 256) { readlinkat(fdDirFD, $0, &link, link.count) }
                }
                guard n > 9, let inode = socketInode(link, n) else { continue }
                if name == nil {
                    name = Files.text("\(procRoot)/\(pid)/comm") ?? "?"
                    var st = stat()
                    if fstatat(procFD, "\(pid)/ns/net", &st, 0) == 0 {
                        table.netnsByPid[pid] = UInt64(st.st_ino)
                    }
                }
                table.byInode[inode, default: []].append(Owner(pid: pid, name: name!, fd: fd))
            }
            closedir(fdDir)
        }
        for key in table.byInode.keys { table.byInode[key]!.sort() }
        return table
    }

    /// `socket:[12345]` → 12345.
    private static func socketInode(_ link: [CChar], _ n: Int) -> UInt64? {
        let prefix: [CChar] = Array("socket:[".utf8).map { CChar(bitPattern: $0) }
        for i in 0..<8 where link[i] != prefix[i] { return nil }
        var v: UInt64 = 0
        var i = 8
        while i < n, link[i] >= 0x30, link[i] <= 0x39 {
            v = v &* 10 &+ UInt64(link[i] - 0x30)
            i += 1
        }
        return (i < n && link[i] == 0x5D && i > 8) ? v : nil
    }

    private static func numericName(_ ent: UnsafeMutablePointer<dirent>) -> Int32? {
        withUnsafePointer(to: ent.pointee.d_name) { p in
            p.withMemoryRebound(to: UInt8.self, capacity: 256) { s -> Int32? in
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
    }
}
