import Glibc
import KPeerSystem

extension NetNamespaces {
    /// ioctl_ns(2): the type of namespace an nsfs descriptor refers to.
    static let getNamespaceType: UInt = 0xB703  // NS_GET_NSTYPE, _IO(0xb7, 0x3)
    static let cloneNewNet: Int32 = 0x4000_0000  // CLONE_NEWNET, what it returns for a network namespace

    /// `--netns PID|PATH`: the network namespace of process PID (digits),
    /// or of the nsfs file at PATH (/run/netns/NAME as `ip netns add` makes
    /// it, /proc/PID/ns/net, a bind mount of one), as `ip netns exec` finds
    /// it. The namespace is held open from here on, so it stays the one
    /// named even if the process exits or the file is unmounted.
    /// Missing: `.notFound`; not a network namespace file: `.badFile`.
    public static func named(_ arg: String, procRoot: String = "/proc") throws(KPeerError) -> NetNamespace {
        let bytes = Array(arg.utf8)
        let isPid = !bytes.isEmpty && bytes.allSatisfy { $0 >= 0x30 && $0 <= 0x39 }
        let path: String
        var pid: Int32 = 0
        let shown = Escape.bytes(bytes)
        if isPid {
            guard let p = Int32(arg), p > 0 else {
                throw KPeerError(.usage, "--netns \(shown) is not a process id", fix: "give a pid as ps shows it, or a namespace file such as /run/netns/NAME")
            }
            pid = p
            path = "\(procRoot)/\(p)/ns/net"
        } else {
            guard !bytes.isEmpty else {
                throw KPeerError(.usage, "--netns needs a pid or a namespace file", fix: "give a pid, or a file such as /run/netns/NAME")
            }
            path = arg
        }
        let fd = Glibc.open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 {
            let e = errno
            if isPid && KPeerError.kind(errno: e, of: .target) == .notFound {
                throw KPeerError(.notFound, "no process \(pid)", fix: "give the pid of a process in that network namespace")
            }
            throw .unreachable(isPid ? path : shown, by: "cannot open", errno: e,
                               fix: "give a network namespace file such as /run/netns/NAME (ip netns list)")
        }
        let file = NamespaceFile(fd: fd)
        guard ioctl(fd, getNamespaceType) == cloneNewNet, let inode = Files.inode(fd: fd) else {
            throw KPeerError(.badFile, "\(isPid ? "process \(pid)'s ns/net" : shown) is not a network namespace",
                             fix: "give a pid, or a network namespace file such as /run/netns/NAME")
        }
        return NetNamespace(inode: inode, pid: pid, file: file)
    }
}
