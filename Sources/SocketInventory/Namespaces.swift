import CKPeer
import Glibc
import KPeerSystem

/// A network namespace, named by its nsfs inode (`readlink /proc/PID/ns/net`
/// prints `net:[INODE]`), and one process inside it to reach it through, or
/// (a namespace no process is in any more) an open descriptor of it.
public struct NetNamespace: Hashable, Sendable, Comparable {
    public var inode: UInt64
    public var pid: Int32
    /// The namespace itself, when no process is there to reach it through.
    public var file: NamespaceFile?

    public init(inode: UInt64, pid: Int32, file: NamespaceFile? = nil) {
        self.inode = inode
        self.pid = pid
        self.file = file
    }

    public static func < (a: NetNamespace, b: NetNamespace) -> Bool { a.inode < b.inode }
    public static func == (a: NetNamespace, b: NetNamespace) -> Bool { a.inode == b.inode && a.pid == b.pid }
    public func hash(into h: inout Hasher) { h.combine(inode); h.combine(pid) }

    /// As `readlink /proc/PID/ns/net` and lsns print it.
    public static func label(_ inode: UInt64) -> String { "net:[\(inode)]" }
}

/// An open nsfs descriptor, closed with the last reference.
public final class NamespaceFile: @unchecked Sendable {
    let fd: Int32
    init(fd: Int32) { self.fd = fd }
    deinit { close(fd) }
}

/// Finding network namespaces and working inside them.
///
/// sock_diag and /proc/net/unix only ever describe the caller's network
/// namespace. A socket created in a namespace stays there, so seeing the
/// sockets of containers means asking from inside each namespace: kpeer
/// enters it with setns(2) on a thread of its own, which then ends, so the
/// rest of the process never changes namespace.
public enum NetNamespaces {
    /// Every network namespace a process is in, each with its lowest pid,
    /// sorted by inode: one stat of /proc/PID/ns/net per process, for when
    /// the namespaces are needed before the fd scan.
    public static func all(procRoot: String = "/proc") -> [NetNamespace] {
        let procFD = open(procRoot, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard procFD >= 0 else { return [] }
        defer { close(procFD) }
        var netnsByPid: [Int32: UInt64] = [:]
        for pid in OwnerScan.listPids(procFD) {
            var st = stat()
            if fstatat(procFD, "\(pid)/ns/net", &st, 0) == 0 { netnsByPid[pid] = UInt64(st.st_ino) }
        }
        return representatives(netnsByPid)
    }

    /// Each namespace of `netnsByPid` once, with its lowest pid (to reach it
    /// through), sorted by inode.
    static func representatives(_ netnsByPid: [Int32: UInt64]) -> [NetNamespace] {
        var lowest: [UInt64: Int32] = [:]
        for (pid, ns) in netnsByPid where ns != 0 {
            if let have = lowest[ns], have < pid { continue }
            lowest[ns] = pid
        }
        return lowest.map { NetNamespace(inode: $0.key, pid: $0.value) }.sorted()
    }

    /// kpeer's own network namespace (the main thread's), or nil when
    /// /proc does not say.
    public static func current(procRoot: String = "/proc") -> UInt64? {
        Files.identity("\(procRoot)/self/ns/net")?.inode
    }

    /// Runs `body` on a new thread that has entered `ns` (setns through
    /// /proc/PID/ns/net) and returns what it returned. The namespace file is
    /// checked to still be `ns` (the pid may have exited and been reused).
    /// Entering needs CAP_SYS_ADMIN: a refusal is `.permission`, a namespace
    /// that is gone is `.notFound`.
    public static func inside<T>(_ ns: NetNamespace, procRoot: String = "/proc",
                                 _ body: @escaping () throws(KPeerError) -> T) throws(KPeerError) -> T {
        let fd: Int32
        var opened: Int32 = -1
        defer { if opened >= 0 { close(opened) } }
        if let file = ns.file {
            fd = file.fd
        } else {
            let path = "\(procRoot)/\(ns.pid)/ns/net"
            opened = open(path, O_RDONLY | O_CLOEXEC)
            if opened < 0 {
                let e = errno
                if KPeerError.kind(errno: e, of: .system) == .permission { throw .cannotOpen(path, errno: e) }
                throw KPeerError(.notFound, "network namespace \(NetNamespace.label(ns.inode)) is gone")
            }
            fd = opened
            guard Files.inode(fd: fd) == ns.inode else {
                throw KPeerError(.notFound, "network namespace \(NetNamespace.label(ns.inode)) is gone (pid \(ns.pid) left it)")
            }
        }
        var outcome: Result<T, KPeerError>? = nil
        try Parallel.onNewThread {
            if kp_setns_net(fd) != 0 {
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
        return try outcome!.get()
    }

    /// The namespace of a unix socket that processes hold but no table
    /// lists: its namespace has no process left in it (a child that made a
    /// socketpair in `unshare -n` and passed it out before exiting). Found
    /// as lsfd does, with SIOCGSKNS on a copy of a holder's descriptor.
    public static func ofHeldSocket(_ inode: UInt64, owners: [Owner]) -> NetNamespace? {
        // Most unlisted sockets are of other families: one getxattr tells,
        // before any copy of a descriptor is taken.
        guard let first = owners.first(where: { $0.via == .fd }), kp_is_unix_socket(first.pid, first.fd) == 1 else {
            return nil
        }
        for o in owners where o.via == .fd {
            let fd = kp_socket_netns(o.pid, o.fd, inode)
            guard fd >= 0 else { continue }
            let file = NamespaceFile(fd: fd)
            guard let ns = Files.inode(fd: fd) else { continue }
            return NetNamespace(inode: ns, pid: o.pid, file: file)
        }
        return nil
    }
}
