import Glibc
import KPeerSystem

/// A network namespace, named by its nsfs inode (`readlink /proc/PID/ns/net`
/// prints `net:[INODE]`), and one process inside it to reach it through.
public struct NetNamespace: Hashable, Sendable, Comparable {
    public var inode: UInt64
    public var pid: Int32

    public init(inode: UInt64, pid: Int32) {
        self.inode = inode
        self.pid = pid
    }

    public static func < (a: NetNamespace, b: NetNamespace) -> Bool { a.inode < b.inode }

    /// As `readlink /proc/PID/ns/net` and lsns print it.
    public static func label(_ inode: UInt64) -> String { "net:[\(inode)]" }
}

/// Finding network namespaces and working inside them.
///
/// sock_diag and /proc/net/unix only ever describe the caller's network
/// namespace. A socket created in a namespace stays there, so seeing the
/// sockets of containers means asking from inside each namespace: kpeer
/// enters it with setns(2) on a thread of its own, which then ends, so the
/// rest of the process never changes namespace.
public enum NetNamespaces {
    /// kpeer's own network namespace (the main thread's), or nil when
    /// /proc does not say.
    public static func current(procRoot: String = "/proc") -> UInt64? {
        Files.identity("\(procRoot)/self/ns/net")?.inode
    }

    /// Every distinct network namespace of a process in /proc, each with
    /// its lowest pid, sorted by inode. Processes that exit mid-scan or
    /// whose namespace may not be looked at (not root) are skipped.
    public static func scan(procRoot: String = "/proc") -> [NetNamespace] {
        guard let dir = opendir(procRoot) else { return [] }
        defer { closedir(dir) }
        let dfd = dirfd(dir)
        var lowest: [UInt64: Int32] = [:]
        while let ent = readdir(dir) {
            let name = withUnsafePointer(to: ent.pointee.d_name) { p in
                p.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            }
            guard let pid = Int32(name), pid > 0 else { continue }
            var st = stat()
            guard fstatat(dfd, "\(pid)/ns/net", &st, 0) == 0 else { continue }
            let ns = UInt64(st.st_ino)
            if let have = lowest[ns], have < pid { continue }
            lowest[ns] = pid
        }
        return lowest.map { NetNamespace(inode: $0.key, pid: $0.value) }.sorted()
    }

    /// Runs `body` on a new thread that has entered `ns` (setns through
    /// /proc/PID/ns/net) and returns what it returned. The namespace file is
    /// checked to still be `ns` (the pid may have exited and been reused).
    /// Entering needs CAP_SYS_ADMIN: a refusal is `.permission`, a namespace
    /// that is gone is `.notFound`.
    public static func inside<T>(_ ns: NetNamespace, procRoot: String = "/proc",
                                 _ body: @escaping () throws(KPeerError) -> T) throws(KPeerError) -> T {
        let path = "\(procRoot)/\(ns.pid)/ns/net"
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 {
            if errno == EACCES || errno == EPERM { throw .system("cannot open", path: path, errno: errno) }
            throw KPeerError(.notFound, "network namespace \(NetNamespace.label(ns.inode)) is gone")
        }
        defer { close(fd) }
        guard Files.inode(fd: fd) == ns.inode else {
            throw KPeerError(.notFound, "network namespace \(NetNamespace.label(ns.inode)) is gone (pid \(ns.pid) left it)")
        }
        var outcome: Result<T, KPeerError>? = nil
        let job = ThreadJob {
            if kp_setns(fd, cloneNewNet) != 0 {
                let e = errno
                outcome = .failure(KPeerError(e == EPERM ? .permission : .io,
                                              "cannot enter network namespace \(NetNamespace.label(ns.inode)): \(String(cString: strerror(e)))",
                                              fix: "run kpeer as root (CAP_SYS_ADMIN) to see other namespaces"))
                return
            }
            do throws(KPeerError) {
                outcome = .success(try body())
            } catch {
                outcome = .failure(error)
            }
        }
        try job.runAndWait()
        return try outcome!.get()
    }
}

/// glibc declares setns(2) only under _GNU_SOURCE, which Swift's Glibc
/// module does not define; the symbol is there all the same.
@_silgen_name("setns")
private func kp_setns(_ fd: Int32, _ nstype: Int32) -> Int32

/// CLONE_NEWNET from <linux/sched.h> (a macro Swift cannot see either).
private let cloneNewNet: Int32 = 0x4000_0000

/// One closure on one fresh pthread, joined before returning: the thread's
/// namespace changes die with it.
final class ThreadJob: @unchecked Sendable {
    let work: () -> Void

    init(_ work: @escaping () -> Void) { self.work = work }

    func runAndWait() throws(KPeerError) {
        var thread = pthread_t()
        let context = Unmanaged.passRetained(self).toOpaque()
        let rc = pthread_create(&thread, nil, { raw in
            let job = Unmanaged<ThreadJob>.fromOpaque(raw!).takeRetainedValue()
            job.work()
            return nil
        }, context)
        if rc != 0 {
            Unmanaged<ThreadJob>.fromOpaque(context).release()
            throw KPeerError(.io, "cannot start a thread: \(String(cString: strerror(rc)))")
        }
        pthread_join(thread, nil)
    }
}
