import CKPeer
import Glibc
import SocketInventory

/// What the watch has learned so far about the sockets it saw: who holds
/// each end and what its peer is. The kernel's events name one process
/// each; the book supplies the other end's (a close names only the closer,
/// an accept only the client's pid). Entries go when their socket closes.
struct ConnectionBook {
    /// Socket → the process seen acting on it (connect, accept, pair).
    private(set) var holders: [UInt64: WatchProcess] = [:]
    /// Socket → its peer, for connections both ends of which the watch saw
    /// made (accept, socketpair).
    private(set) var peers: [UInt64: UInt64] = [:]
    var names = ProcessNames()

    /// The kernel's event, with both ends filled in as far as anything tells.
    mutating func event(from raw: RawEvent, wallOffset: Int64) -> WatchEvent? {
        guard let kind = Self.kind(raw.kind) else { return nil }
        let actor = WatchProcess(pid: Int32(bitPattern: raw.pid), tid: Int32(bitPattern: raw.tid), name: raw.comm)
        let time = UInt64(max(0, Int64(bitPattern: raw.monotonic) &+ wallOffset))
        var e = WatchEvent(kind: kind, time: time, type: SocketType(rawValue: UInt16(raw.sockType)), inode: raw.inode,
                           process: actor, peer: raw.peer == 0 ? nil : raw.peer,
                           listener: raw.listener == 0 ? nil : raw.listener,
                           listening: raw.flags & UInt16(KPW_LISTENER_FLAG) != 0, source: .ebpf)
        switch kind {
        case .connect where raw.kind == UInt8(KPW_CONNECT_KIND):
            // The listener's sk_peer_pid: the process that called listen().
            e.peerProcess = process(Int32(bitPattern: raw.peerPid), holding: raw.listener)
            holders[raw.inode] = actor
        case .accept:
            // The accepted socket's sk_peer_pid: the process that called connect().
            e.peerProcess = raw.peer != 0 ? holders[raw.peer] : nil
            if e.peerProcess?.pid != Int32(bitPattern: raw.peerPid) {
                e.peerProcess = process(Int32(bitPattern: raw.peerPid), holding: raw.peer)
            }
            holders[raw.inode] = actor
            if raw.peer != 0 {
                peers[raw.inode] = raw.peer
                peers[raw.peer] = raw.inode
                if holders[raw.peer] == nil, let p = e.peerProcess { holders[raw.peer] = p }
            }
        case .pair:
            e.peerProcess = actor
            holders[raw.inode] = actor
            holders[raw.peer] = actor
            peers[raw.inode] = raw.peer
            peers[raw.peer] = raw.inode
        case .connect, .send:
            // Datagram: the receiver's holder, if the watch has seen it act.
            e.peerProcess = raw.peer != 0 ? holders[raw.peer] : nil
            // (No link is kept: the receiver is no one's peer, and while it
            // lives the kernel names it in the sender's close.)
            if holders[raw.inode] == nil { holders[raw.inode] = actor }
        case .close:
            // A close after the peer's own: the kernel no longer links them.
            if e.peer == nil, let p = peers[raw.inode] { e.peer = p }
            if let p = e.peer { e.peerProcess = holders[p] }
            forget(raw.inode)
        }
        return e
    }

    /// The process `pid` (0: unknown), named as the watch saw it holding
    /// `inode`, else by /proc/PID/comm.
    mutating func process(_ pid: Int32, holding inode: UInt64) -> WatchProcess? {
        if let h = holders[inode], pid == 0 || h.pid == pid { return h }
        guard pid > 0 else { return nil }
        return WatchProcess(pid: pid, name: names.name(of: pid) ?? [])
    }

    /// Who is known to hold `inode`.
    func holder(of inode: UInt64) -> WatchProcess? { holders[inode] }

    mutating func remember(_ inode: UInt64, heldBy p: WatchProcess?, peer: UInt64? = nil) {
        if let p { holders[inode] = p }
        if let peer { peers[inode] = peer }
    }

    /// A socket closed. While its peer lives, the peer's entry still names
    /// it and who held it, for the peer's own close; the second close of a
    /// pair clears both.
    mutating func forget(_ inode: UInt64) {
        guard let p = peers.removeValue(forKey: inode) else {
            holders[inode] = nil
            return
        }
        if peers[p] == inode { return }  // the peer is still open: keep our holder for its close
        holders[inode] = nil
        if peers[p] == nil { holders[p] = nil }  // the peer closed before us
    }

    static func kind(_ raw: UInt8) -> WatchEvent.Kind? {
        switch Int32(raw) {
        case KPW_CONNECT_KIND, KPW_DGRAM_CONNECT_KIND: .connect
        case KPW_ACCEPT_KIND: .accept
        case KPW_CLOSE_KIND: .close
        case KPW_PAIR_KIND: .pair
        case KPW_SEND_KIND: .send
        default: nil
        }
    }
}

// The C enum's values, as Swift imports them (plain Int32 constants).
let KPW_CONNECT_KIND = Int32(KPW_CONNECT)
let KPW_ACCEPT_KIND = Int32(KPW_ACCEPT)
let KPW_CLOSE_KIND = Int32(KPW_CLOSE)
let KPW_PAIR_KIND = Int32(KPW_PAIR)
let KPW_DGRAM_CONNECT_KIND = Int32(KPW_DGRAM_CONNECT)
let KPW_SEND_KIND = Int32(KPW_SEND)
let KPW_LISTENER_FLAG = Int32(KPW_LISTENER)

/// /proc/PID/comm, remembered: the same few processes come back event
/// after event. Bounded; a pid reused meanwhile can show its old name
/// until the cache is cleared (every 4096 names).
struct ProcessNames {
    private var cache: [Int32: [UInt8]] = [:]
    var procRoot = "/proc"

    mutating func name(of pid: Int32) -> [UInt8]? {
        if let n = cache[pid] { return n }
        guard let n = Self.read("\(procRoot)/\(pid)/comm") else { return nil }
        if cache.count >= 4096 { cache.removeAll(keepingCapacity: true) }
        cache[pid] = n
        return n
    }

    mutating func clear() { cache.removeAll(keepingCapacity: true) }

    /// A comm file's bytes, without the newline; nil when unreadable.
    static func read(_ path: String) -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var buf = [UInt8](repeating: 0, count: 64)
        let n = buf.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
        guard n > 0 else { return nil }
        var bytes = Array(buf[0..<n])
        if bytes.last == 0x0A { bytes.removeLast() }
        return bytes
    }
}
