import CKPeer
import Glibc
import KPeerSystem

/// One socket as the kernel's sock_diag (NETLINK_SOCK_DIAG, unix_diag) describes it.
public struct DiagEntry: Sendable, Equatable {
    public var inode: UInt64
    public var rawType: UInt8
    /// sk_state: TCP_ESTABLISHED 1, TCP_CLOSE 7, TCP_LISTEN 10.
    public var rawState: UInt8
    /// UNIX_DIAG_PEER: the peer's inode (0 for an embryo or a dead peer).
    public var peer: UInt64?
    /// UNIX_DIAG_ICONS: inodes of every client waiting in a listener's queue.
    public var icons: [UInt64] = []
    /// UNIX_DIAG_NAME: sun_path, leading NUL for abstract names.
    public var name: SocketPath?
    /// UNIX_DIAG_VFS: inode and device of the bound file.
    public var vfs: (inode: UInt64, device: UInt64)?
    /// UNIX_DIAG_RQLEN: for listeners, the accept backlog and its limit.
    public var rqlen: (read: UInt32, write: UInt32)?

    public init(inode: UInt64, rawType: UInt8, rawState: UInt8) {
        self.inode = inode; self.rawType = rawType; self.rawState = rawState
    }

    public static func == (a: DiagEntry, b: DiagEntry) -> Bool {
        a.inode == b.inode && a.rawType == b.rawType && a.rawState == b.rawState && a.peer == b.peer
            && a.icons == b.icons && a.name == b.name && a.vfs?.inode == b.vfs?.inode
            && a.vfs?.device == b.vfs?.device && a.rqlen?.read == b.rqlen?.read && a.rqlen?.write == b.rqlen?.write
    }
}

/// The kernel's own answer: a sock_diag dump of AF_UNIX sockets. It covers
/// the caller's network namespace and needs the unix_diag module.
public enum SockDiag {
    public static let showAll = UInt32(UDIAG_SHOW_NAME | UDIAG_SHOW_VFS | UDIAG_SHOW_PEER | UDIAG_SHOW_ICONS | UDIAG_SHOW_RQLEN)
    public static let allStates: UInt32 = 0xFFFF_FFFF
    public static let listenStates: UInt32 = 1 << 10  // TCP_LISTEN

    /// Every unix socket of this network namespace.
    public static func dump(states: UInt32 = allStates, show: UInt32 = showAll) throws(KPeerError) -> [DiagEntry] {
        try exchange(request(inode: 0, dump: true, states: states, show: show), dump: true)
    }

    /// The same dump, one entry at a time as the datagrams arrive: for
    /// callers that keep only part of each entry, at 100k sockets the
    /// whole array would be ~10 MB of peak memory.
    public static func dump(states: UInt32 = allStates, show: UInt32 = showAll,
                            each body: (DiagEntry) -> Void) throws(KPeerError) {
        try exchange(request(inode: 0, dump: true, states: states, show: show), dump: true, each: body)
    }

    /// One socket by inode (cookie ~0: "any"), or nil when there is none.
    public static func query(inode: UInt32, show: UInt32 = showAll) throws(KPeerError) -> DiagEntry? {
        do {
            return try exchange(request(inode: inode, dump: false, states: allStates, show: show), dump: false).first
        } catch where error.kind == .notFound {
            return nil
        }
    }

    /// A request: nlmsghdr + unix_diag_req, in host byte order.
    public static func request(inode: UInt32, dump: Bool, states: UInt32, show: UInt32, seq: UInt32 = 1) -> [UInt8] {
        var req = unix_diag_req()
        req.sdiag_family = UInt8(AF_UNIX)
        req.sdiag_protocol = 0
        req.udiag_states = states
        req.udiag_ino = inode
        req.udiag_show = show
        req.udiag_cookie = (UInt32.max, UInt32.max)
        var hdr = nlmsghdr()
        hdr.nlmsg_len = UInt32(MemoryLayout<nlmsghdr>.size + MemoryLayout<unix_diag_req>.size)
        hdr.nlmsg_type = UInt16(SOCK_DIAG_BY_FAMILY)
        hdr.nlmsg_flags = UInt16(NLM_F_REQUEST) | (dump ? UInt16(NLM_F_DUMP) : 0)
        hdr.nlmsg_seq = seq
        return withUnsafeBytes(of: hdr) { Array($0) } + withUnsafeBytes(of: req) { Array($0) }
    }

    static func exchange(_ request: [UInt8], dump: Bool) throws(KPeerError) -> [DiagEntry] {
        var entries: [DiagEntry] = []
        try exchange(request, dump: dump) { entries.append($0) }
        return entries
    }

    static func exchange(_ request: [UInt8], dump: Bool, each body: (DiagEntry) -> Void) throws(KPeerError) {
        let fd = socket(AF_NETLINK, Int32(SOCK_RAW.rawValue) | Int32(SOCK_CLOEXEC.rawValue), NETLINK_SOCK_DIAG)
        if fd < 0 {
            throw KPeerError(.unavailable, "cannot open a NETLINK_SOCK_DIAG socket: \(String(cString: strerror(errno)))",
                             fix: "this kernel lacks sock_diag (CONFIG_INET_DIAG/UNIX_DIAG)")
        }
        defer { close(fd) }
        var kernel = sockaddr_nl()
        kernel.nl_family = sa_family_t(AF_NETLINK)
        let sent = request.withUnsafeBytes { buf in
            withUnsafePointer(to: &kernel) { p in
                p.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    sendto(fd, buf.baseAddress, buf.count, 0, $0, socklen_t(MemoryLayout<sockaddr_nl>.size))
                }
            }
        }
        if sent < 0 { throw KPeerError.system("cannot send to", path: "sock_diag", errno: errno) }
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n < 0 {
                if errno == EINTR { continue }
                throw KPeerError.system("cannot receive from", path: "sock_diag", errno: errno)
            }
            if n == 0 { break }
            var failure: KPeerError? = nil
            let done = buffer.withUnsafeBytes { raw -> Bool in
                do throws(KPeerError) {
                    return try parse(UnsafeRawBufferPointer(rebasing: raw[0..<n]), each: body)
                } catch {
                    failure = error
                    return false
                }
            }
            if let failure { throw failure }
            if done { break }
            // A single-socket query answers with one message and no DONE.
            if !dump { break }
        }
    }

    // Netlink is in host byte order, and kpeer builds for little-endian
    // Linux only.
    @inline(__always)
    static func u32(_ b: UnsafeRawBufferPointer, _ at: Int) -> UInt32 {
        UInt32(littleEndian: b.loadUnaligned(fromByteOffset: at, as: UInt32.self))
    }

    @inline(__always)
    static func u16(_ b: UnsafeRawBufferPointer, _ at: Int) -> UInt16 {
        UInt16(littleEndian: b.loadUnaligned(fromByteOffset: at, as: UInt16.self))
    }

    /// Parses one datagram of netlink messages. Returns true at NLMSG_DONE.
    /// Malformed input is an error, never a crash.
    public static func parse(_ data: ArraySlice<UInt8>, into entries: inout [DiagEntry]) throws(KPeerError) -> Bool {
        var failure: KPeerError? = nil
        let done = data.withUnsafeBytes { raw -> Bool in
            do throws(KPeerError) {
                return try parse(raw, into: &entries)
            } catch {
                failure = error
                return false
            }
        }
        if let failure { throw failure }
        return done
    }

    /// The same over raw bytes: every read is checked against the
    /// message's and the attribute's declared lengths first.
    static func parse(_ data: UnsafeRawBufferPointer, into entries: inout [DiagEntry]) throws(KPeerError) -> Bool {
        try parse(data) { entries.append($0) }
    }

    static func parse(_ data: UnsafeRawBufferPointer, each body: (DiagEntry) -> Void) throws(KPeerError) -> Bool {
        var at = 0
        let end = data.count
        while at + 16 <= end {
            let len = Int(u32(data, at))
            let type = u16(data, at + 4)
            guard len >= 16, at + len <= end else {
                throw KPeerError(.io, "sock_diag sent a truncated netlink message")
            }
            switch Int32(type) {
            case NLMSG_DONE:
                return true
            case NLMSG_ERROR:
                let code = len >= 20 ? Int32(bitPattern: u32(data, at + 16)) : -EIO
                if code == 0 { return true }  // an ACK
                // -code would overflow for Int32.min (found by fuzzing).
                if code == -ENOENT {
                    throw KPeerError(.notFound, "sock_diag knows no such socket")
                }
                let errnum = code < 0 && code != Int32.min ? -code : EIO
                throw KPeerError(.unavailable, "sock_diag refused the request: \(String(cString: strerror(errnum)))",
                                 fix: "load the unix_diag module (modprobe unix_diag) or use --method kcore")
            case Int32(SOCK_DIAG_BY_FAMILY):
                if let e = parseEntry(data, at + 16, at + len) { body(e) }
            default:
                break
            }
            at += (len + 3) & ~3
        }
        return false
    }

    /// unix_diag_msg followed by rtattrs.
    static func parseEntry(_ m: ArraySlice<UInt8>) -> DiagEntry? {
        m.withUnsafeBytes { parseEntry($0, 0, $0.count) }
    }

    /// unix_diag_msg followed by rtattrs, in `m[start..<end]`.
    static func parseEntry(_ m: UnsafeRawBufferPointer, _ start: Int, _ end: Int) -> DiagEntry? {
        guard end - start >= 16, m[start] == UInt8(AF_UNIX) else { return nil }
        var e = DiagEntry(inode: UInt64(u32(m, start + 4)), rawType: m[start + 1], rawState: m[start + 2])
        var at = start + 16
        while at + 4 <= end {
            let alen = Int(u16(m, at))
            let atype = Int32(u16(m, at + 2) & 0x3FFF)
            guard alen >= 4, at + alen <= end else { break }
            let p = at + 4
            let plen = alen - 4
            switch atype {
            case Int32(UNIX_DIAG_NAME):
                e.name = SocketPath(sunPath: Array(UnsafeRawBufferPointer(rebasing: m[p..<p + plen])))
            case Int32(UNIX_DIAG_VFS) where plen >= 8:
                e.vfs = (UInt64(u32(m, p)), UInt64(u32(m, p + 4)))
            case Int32(UNIX_DIAG_PEER) where plen >= 4:
                e.peer = UInt64(u32(m, p))
            case Int32(UNIX_DIAG_ICONS):
                e.icons = stride(from: p, to: p + plen - 3, by: 4).map { UInt64(u32(m, $0)) }
            case Int32(UNIX_DIAG_RQLEN) where plen >= 8:
                e.rqlen = (u32(m, p), u32(m, p + 4))
            default:
                break
            }
            at += (alen + 3) & ~3
        }
        return e
    }
}
