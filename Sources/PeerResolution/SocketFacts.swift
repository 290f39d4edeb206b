import CKPeer
import KernelMemory
import KernelObjects
import KPeerSystem
import Glibc
import SocketInventory
import TypeOffsets

/// What only kernel memory tells about a socket, read with the
/// kernel-object reader while the peer pointers are read, and kept only for
/// sockets the resolver proved stable over that time.
public struct SocketFacts: Sendable, Equatable {
    /// The file a filesystem socket is bound to: `unix_sock.path.dentry`'s
    /// inode number and superblock device, as sock_diag's UNIX_DIAG_VFS.
    public var boundFile: BoundFile?
    /// Who made the connection (`sk_peer_pid`, `sk_peer_cred`): for an
    /// accepted socket the process that called connect(), for a client the
    /// one that called listen(), for a socketpair its creator.
    public var connector: Connector?
    /// Buffers queued to be read (`sk_receive_queue`): skbs and bytes.
    public var receiveQueue: Queue?
    /// Bytes sent and not yet read by the peer (`sk_wmem_alloc` - 1).
    public var sendBytes: Int?
    /// A listener's accept queue: waiting, and the listen() backlog.
    public var backlog: Backlog?
    /// A datagram socket's queue by sending socket (`skb->sk`).
    public var senders: [Sender] {
        get { lists?.senders ?? [] }
        set { lists = Lists.make(newValue, carrying, carryingAddresses) }
    }
    /// Sockets in flight to this one: passed in SCM_RIGHTS messages queued
    /// on its receive queue, not received yet (`UNIXCB(skb).fp` →
    /// `scm_fp_list.fp[]` → `file.private_data` → `socket.sk`). By inode;
    /// only sockets kpeer lists.
    public var carrying: [UInt64] {
        get { lists?.carrying ?? [] }
        set { lists = Lists.make(senders, newValue, carryingAddresses) }
    }
    /// Their kernel addresses, until the inodes are known.
    var carryingAddresses: [UInt64] {
        get { lists?.carryingAddresses ?? [] }
        set { lists = Lists.make(senders, carrying, newValue) }
    }
    /// The three lists, boxed: nearly every socket has none (nil), and
    /// its facts then copy as plain bytes, with no reference counted
    /// (-e copies every socket's facts several times).
    private var lists: Lists?

    final class Lists: Sendable, Equatable {
        let senders: [Sender]
        let carrying: [UInt64]
        let carryingAddresses: [UInt64]

        init(_ senders: [Sender], _ carrying: [UInt64], _ carryingAddresses: [UInt64]) {
            self.senders = senders
            self.carrying = carrying
            self.carryingAddresses = carryingAddresses
        }

        static func make(_ senders: [Sender], _ carrying: [UInt64], _ carryingAddresses: [UInt64]) -> Lists? {
            senders.isEmpty && carrying.isEmpty && carryingAddresses.isEmpty ? nil : Lists(senders, carrying, carryingAddresses)
        }

        static func == (a: Lists, b: Lists) -> Bool {
            a.senders == b.senders && a.carrying == b.carrying && a.carryingAddresses == b.carryingAddresses
        }
    }

    /// Senders and sockets in flight, set at once.
    mutating func setLists(senders: [Sender], carrying: [UInt64], carryingAddresses: [UInt64]) {
        lists = Lists.make(senders, carrying, carryingAddresses)
    }

    public struct Connector: Sendable, Equatable {
        /// The pid in kpeer's pid namespace; nil when that process's pid
        /// belongs to no namespace kpeer sees (or it has no pid any more).
        public var pid: Int32?
        public var uid: UInt32
        public var gid: UInt32
    }

    public struct Queue: Sendable, Equatable {
        public var skbs: Int
        public var bytes: Int
        /// The list changed while it was walked: counts are a lower bound.
        public var partial: Bool
    }

    public struct Backlog: Sendable, Equatable {
        public var pending: Int
        public var max: Int
    }

    public struct Sender: Sendable, Equatable {
        /// The sending socket; nil when it is closed or not in the table.
        public var inode: UInt64?
        /// Its kernel address (`skb->sk`), until the inode is known.
        var address: UInt64 = 0
        public var datagrams: Int
        public var bytes: Int
    }

    public init() {}

    /// Names other sockets by address (senders, sockets in flight).
    var namesOthers: Bool { lists.map { !$0.senders.isEmpty || !$0.carryingAddresses.isEmpty } ?? false }
}

/// Reads SocketFacts for table rows. A feature whose types or members this
/// kernel lacks is left out with a reason, once, and the rest still work.
final class FactReader {
    let reader: ObjectReader
    /// kpeer's pid-namespace level: a connector's pid is read at this level.
    let pidLevel: Int
    private(set) var unavailable: [String: String] = [:]

    /// The bytes of unix_sock that hold every member read below, [lo, hi):
    /// one pread a socket instead of one a member (members this kernel lacks
    /// are left out here and reported by the feature that needs them). Only
    /// those bytes: kcore copies every byte through a bounce buffer.
    private let window: (lo: Int, hi: Int)
    /// Where each socket's window is read to: one buffer for the whole run,
    /// not an array a socket.
    private let scratch: UnsafeMutableRawBufferPointer
    /// sizeof(struct unix_sock), looked up once for every snapshot.
    private let unixSockSize: Int?

    /// The unix_sock members read for every socket, looked up once: nil
    /// where this kernel lacks one (the feature that needs it says so).
    private struct Layout {
        var dentry, peerPid, peerCred, maxBacklog, wmem, queueLength: KernelTypes.Member?
    }
    private let layout: Layout
    private var missing: [String: String] = [:]

    /// kpeer's pid namespace as memory says (PidAnchor): connector pids are
    /// translated to it; nil: by `pidLevel` alone.
    let anchor: PidAnchor?

    init(reader: ObjectReader, pidLevel: Int, anchor: PidAnchor? = nil) {
        self.reader = reader
        self.pidLevel = pidLevel
        self.anchor = anchor
        var missing: [String: String] = [:]
        func member(_ path: String, for feature: String) -> KernelTypes.Member? {
            do {
                let m = try reader.types.member("unix_sock", path)
                return m.offset + m.size < 4096 ? m : nil
            } catch {
                if missing[feature] == nil { missing[feature] = error.problem }
                return nil
            }
        }
        layout = Layout(dentry: member("path.dentry", for: "bound_file"),
                        peerPid: member("sk.sk_peer_pid", for: "connector"),
                        peerCred: member("sk.sk_peer_cred", for: "connector"),
                        maxBacklog: member("sk.sk_max_ack_backlog", for: "backlog"),
                        wmem: member("sk.sk_wmem_alloc.refs.counter", for: "send_queue"),
                        queueLength: member("sk.sk_receive_queue.qlen", for: "receive_queue"))
        self.missing = missing
        var lo = Int.max, hi = 0
        for m in [layout.dentry, layout.peerPid, layout.peerCred, layout.maxBacklog, layout.wmem, layout.queueLength] {
            if let m { lo = min(lo, m.offset); hi = max(hi, m.offset + m.size) }
        }
        window = hi > 0 ? (lo, hi) : (0, 0)
        // The window and a peer word read with it both lie in the first page.
        scratch = .allocate(byteCount: 4096, alignment: 8)
        unixSockSize = try? reader.types.size(of: "unix_sock")
    }

    deinit { scratch.deallocate() }

    /// A member of the layout, or `.unavailable` naming why this kernel has none.
    private func need(_ m: KernelTypes.Member?, _ feature: String) throws(KPeerError) -> KernelTypes.Member {
        if let m { return m }
        throw KPeerError(.unavailable, missing[feature] ?? "\(feature) is not readable on this kernel")
    }

    /// Connections made by one process share its struct pid and struct
    /// cred (get_pid, get_current_cred): each is read once a run. Both are
    /// immutable once published and pinned by the sockets that point at them.
    private var pidNumbers: [UInt64: Int32?] = [:]
    private var credentials: [UInt64: (uid: UInt32, gid: UInt32)] = [:]
    /// The last of each looked up, tried before the dictionaries.
    private var lastPid: (at: UInt64, pid: Int32?)?
    private var lastCredential: (at: UInt64, ids: (uid: UInt32, gid: UInt32))?

    private func attempt<T>(_ feature: String, _ body: () throws(KPeerError) -> T?) -> T? {
        // Nearly always empty: no hashing of the feature's name per socket.
        if !unavailable.isEmpty, unavailable[feature] != nil { return nil }
        do {
            return try body()
        } catch where error.kind == .unavailable {
            unavailable[feature] = error.problem
            return nil
        } catch {
            return nil  // a pointer torn by a socket closing meanwhile: this socket only
        }
    }

    /// Facts about one row (senders by address: FactReader.settle names them).
    func facts(_ e: UnixSocketEntry) -> SocketFacts { factsAndPeer(e, peerOffset: nil).facts }

    /// The facts and the peer word (at `peerOffset`) of one row from one
    /// read of its unix_sock: what KcoreResolver would read with a pread of
    /// its own comes with the rest.
    func factsAndPeer(_ e: UnixSocketEntry, peerOffset: Int?) -> (facts: SocketFacts, peer: UInt64?) {
        var lo = window.lo, hi = window.hi
        if let p = peerOffset, p >= 0, p + 8 <= 4096 {
            lo = hi > 0 ? min(lo, p) : p
            hi = max(hi, p + 8)
        }
        let memory = reader.memory
        let a = e.address
        /// The peer word read on its own (no facts, or outside the window).
        func peerAlone() -> UInt64? { peerOffset.flatMap { try? memory.readWord(a &+ UInt64($0)) } }
        // The whole unix_sock must lie in kernel memory, as for any object
        // the reader reads (ObjectReader.object).
        let size = UInt64(max(unixSockSize ?? hi, hi, 1))
        guard a != 0, a & 7 == 0, a &+ size > a, memory.contains(a), memory.contains(a &+ (size - 1)) else {
            return (SocketFacts(), peerAlone())
        }
        // With none of the members on this kernel the window is empty:
        // nothing is read, and each feature still says why it is missing.
        let bytes = UnsafeMutableRawBufferPointer(rebasing: scratch[0..<(hi - lo)])
        do {
            try memory.read(a &+ UInt64(lo), into: bytes)
        } catch {
            return (SocketFacts(), peerAlone())
        }
        let us = Window(bytes: UnsafeRawBufferPointer(bytes), lo: lo)
        let peer = peerOffset.flatMap { us.word(at: $0) } ?? peerAlone()
        return (facts(e, us), peer)
    }

    /// A unix_sock's window as read: members by offset, little-endian.
    private struct Window {
        let bytes: UnsafeRawBufferPointer
        let lo: Int

        func word(at offset: Int) -> UInt64? {
            let at = offset - lo
            guard at >= 0, at + 8 <= bytes.count else { return nil }
            return UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: at, as: UInt64.self))
        }

        /// An integer member (1, 2, 4 or 8 bytes), zero-extended.
        func unsigned(_ m: KernelTypes.Member) throws(KPeerError) -> UInt64 {
            let at = m.offset - lo
            guard m.kind == .integer || m.kind == .enumeration || m.kind == .pointer else {
                throw KPeerError(.unavailable, "a member of unix_sock is not an integer on this kernel")
            }
            // Every member read lies in the window (init): outside it is a
            // fault of this socket's read, not of the kernel's layouts.
            guard at >= 0, at + m.size <= bytes.count else {
                throw KPeerError(.refused, "a unix_sock member lies outside the bytes read")
            }
            switch m.size {
            case 1: return UInt64(bytes[at])
            case 2: return UInt64(UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: at, as: UInt16.self)))
            case 4: return UInt64(UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: at, as: UInt32.self)))
            case 8: return UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: at, as: UInt64.self))
            default: throw KPeerError(.unavailable, "a member of unix_sock is not an integer on this kernel")
            }
        }
    }

    private func facts(_ e: UnixSocketEntry, _ us: Window) -> SocketFacts {
        var f = SocketFacts()
        if let path = e.path, !path.isAbstract {
            f.boundFile = attempt("bound_file") { () throws(KPeerError) -> BoundFile? in
                let at = try us.unsigned(try need(layout.dentry, "bound_file"))
                guard at != 0 else { return nil }
                let dentry = try reader.object(at: at, type: "dentry")
                guard let inode = try dentry.pointer("d_inode"), let sb = try dentry.pointer("d_sb") else { return nil }
                return BoundFile(diagInode: try inode.unsigned("i_ino"), diagDevice: try sb.unsigned("s_dev"))
            }
        }
        if e.state == .connected && e.inode != 0 {
            f.connector = attempt("connector") { () throws(KPeerError) -> SocketFacts.Connector? in
                let credAt = try us.unsigned(try need(layout.peerCred, "connector"))
                guard credAt != 0 else { return nil }
                let pidAt = try us.unsigned(try need(layout.peerPid, "connector"))
                var pid: Int32?
                if pidAt != 0 {
                    if let last = lastPid, last.at == pidAt {
                        pid = last.pid  // the same process's connections, one after another
                    } else if let known = pidNumbers[pidAt] {
                        pid = known
                        lastPid = (pidAt, known)
                    } else {
                        if let anchor {
                            pid = try anchor.translate(pidAt: pidAt, reader: reader)
                        } else {
                            let p = try reader.object(at: pidAt, type: "pid")
                            let level = Int(try p.unsigned("level"))
                            if level >= pidLevel && level < 64 {
                                pid = Int32(truncatingIfNeeded: try p.element("numbers", pidLevel, limit: level + 1).signed("nr"))
                            }
                        }
                        pidNumbers[pidAt] = pid
                        lastPid = (pidAt, pid)
                    }
                }
                let ids: (uid: UInt32, gid: UInt32)
                if let last = lastCredential, last.at == credAt {
                    ids = last.ids
                } else if let known = credentials[credAt] {
                    ids = known
                    lastCredential = (credAt, known)
                } else {
                    let cred = try reader.object(at: credAt, type: "cred")
                    // uid and gid sit side by side in struct cred: one read for both.
                    let u = try cred.member("uid.val"), g = try cred.member("gid.val")
                    if u.size == 4, g.size == 4, g.offset == u.offset + 4 {
                        let both = try cred.unsigned64(at: u.offset)
                        ids = (UInt32(truncatingIfNeeded: both), UInt32(truncatingIfNeeded: both >> 32))
                    } else {
                        ids = (UInt32(truncatingIfNeeded: try cred.unsigned("uid.val")),
                               UInt32(truncatingIfNeeded: try cred.unsigned("gid.val")))
                    }
                    credentials[credAt] = ids
                    lastCredential = (credAt, ids)
                }
                return SocketFacts.Connector(pid: pid, uid: ids.uid, gid: ids.gid)
            }
        }
        if e.isListening {
            f.backlog = attempt("backlog") { () throws(KPeerError) -> SocketFacts.Backlog? in
                // A unix listener queues its embryos' skbs on its own
                // receive queue (unix_recvq_full compares that with
                // sk_max_ack_backlog); sk_ack_backlog is TCP's.
                SocketFacts.Backlog(pending: Int(try us.unsigned(try need(layout.queueLength, "backlog"))),
                                    max: Int(try us.unsigned(try need(layout.maxBacklog, "backlog"))))
            }
            return f
        }
        f.sendBytes = attempt("send_queue") { () throws(KPeerError) -> Int? in
            let m = try need(layout.wmem, "send_queue")
            let raw = try us.unsigned(m)  // atomic_t / refcount_t: an int
            let w = m.size == 4 ? Int64(Int32(truncatingIfNeeded: raw)) : Int64(bitPattern: raw)
            return w > 0 ? Int(w - 1) : 0
        }
        let walked = attempt("receive_queue") { () throws(KPeerError) -> ([KernelObject], Bool)? in
            // Most queues are empty: their length, from the same read, settles it.
            if try us.unsigned(try need(layout.queueLength, "receive_queue")) == 0 { return ([], false) }
            let sock = try reader.object(at: e.address, type: "unix_sock")
            return try sock.skbQueue("sk.sk_receive_queue")
        }
        guard let (skbs, torn) = walked else { return f }
        var bytes = 0
        var bySender: [UInt64: (Int, Int)] = [:]
        var order: [UInt64] = []
        for skb in skbs {
            let len = Int((try? skb.unsigned("len")) ?? 0)
            bytes += len
            if e.type == .dgram, let sk = try? skb.word("sk") {
                if bySender[sk] == nil { order.append(sk) }
                bySender[sk, default: (0, 0)].0 += 1
                bySender[sk, default: (0, 0)].1 += len
            }
        }
        f.receiveQueue = SocketFacts.Queue(skbs: skbs.count, bytes: bytes, partial: torn)
        if skbs.isEmpty { return f }
        f.setLists(senders: order.map { sk in
                       SocketFacts.Sender(inode: nil, address: sk, datagrams: bySender[sk]!.0, bytes: bySender[sk]!.1)
                   },
                   carrying: [],
                   carryingAddresses: skbs.flatMap { skb in
                       attempt("in_flight") { () throws(KPeerError) -> [UInt64]? in try passed(skb) } ?? []
                   })
        return f
    }
}

extension FactReader {
    /// The sockets an skb carries in SCM_RIGHTS: UNIXCB(skb) lives in
    /// `skb->cb`; its `fp` lists the files, a socket file's private_data is
    /// its struct socket. Files that are not sockets give addresses no row
    /// has, and are ignored when the addresses are named (settle).
    func passed(_ skb: KernelObject) throws(KPeerError) -> [UInt64] {
        let t = reader.types
        let cb = try t.member("sk_buff", "cb"), fpAt = try t.member("unix_skb_parms", "fp")
        guard fpAt.offset + 8 <= cb.size else {
            throw KPeerError(.unavailable, "unix_skb_parms does not fit in sk_buff.cb on this kernel")
        }
        let list = try reader.memory.readWord(skb.address &+ UInt64(cb.offset + fpAt.offset))
        guard list != 0 else { return [] }
        let fp = try reader.object(at: list, type: "scm_fp_list")
        let count = Int(try fp.signed("count"))
        guard count > 0 else { return [] }
        var out: [UInt64] = []
        for i in 0..<min(count, try fp.member("fp").count) {
            let file = try fp.pointerElement("fp", i)
            guard file != 0, let f = try? reader.object(at: file, type: "file"),
                  let socket = try? f.pointer("private_data", as: "socket"), let sk = try? socket.word("sk") else { continue }
            out.append(sk)
        }
        return out
    }

    /// The facts of rows proved stable, by inode; a sender named by the
    /// inode of the stable row at its address (nil: closed, or unproved).
    static func settle(_ raw: [SocketFacts?], entries: [UnixSocketEntry], stable: [Bool]) -> [UInt64: SocketFacts] {
        // Rows by index, fields in place: copying a row retains its name.
        // Addresses become inodes only where some facts name other sockets
        // (senders, sockets in flight): most tables have none.
        let namesOthers = raw.contains { $0?.namesOthers ?? false }
        var inodeAt: [UInt64: UInt64] = [:]
        if namesOthers {
            inodeAt.reserveCapacity(entries.count)
            for i in entries.indices where stable[i] && entries[i].inode != 0 { inodeAt[entries[i].address] = entries[i].inode }
        }
        var out: [UInt64: SocketFacts] = [:]
        out.reserveCapacity(entries.count)
        for i in entries.indices where stable[i] && entries[i].inode != 0 {
            guard namesOthers else {
                if let f = raw[i] { out[entries[i].inode] = f }  // stored as read: no copy to change
                continue
            }
            guard var f = raw[i] else { continue }
            if f.namesOthers {
                var senders = f.senders
                for k in senders.indices { senders[k].inode = inodeAt[senders[k].address] }
                let addresses = f.carryingAddresses
                f.setLists(senders: senders, carrying: addresses.compactMap { inodeAt[$0] }, carryingAddresses: addresses)
            }
            out[entries[i].inode] = f
        }
        return out
    }
}

/// kpeer's own pid-namespace level: NSpid in /proc/self/status lists one pid
/// per level, the outermost first.
enum PidNamespace {
    static func ownLevel(procRoot: String) -> Int {
        guard let bytes = Files.readIfPresent("\(procRoot)/self/status") else { return 0 }
        let text = String(decoding: bytes, as: UTF8.self)
        for line in text.split(separator: "\n") where line.hasPrefix("NSpid:") {
            return max(0, line.split(whereSeparator: { $0 == " " || $0 == "\t" }).count - 2)
        }
        return 0
    }
}

/// The netlink method reads no kernel memory; of SocketFacts it can give
/// the connector, as SO_PEERCRED on a copy of a holder's descriptor
/// (pidfd_getfd(2)). The rest is marked unavailable.
enum NetlinkFacts {
    static let unavailable = "the netlink method does not read kernel memory (use the kcore method)"

    static func add(to map: inout PeerMap) {
        var facts: [UInt64: SocketFacts] = [:]
        var failure: String?
        for s in map.sockets where s.entry.state == .connected {
            var f = SocketFacts()
            for o in s.owners {
                var pid: Int32 = 0
                var uid: UInt32 = 0, gid: UInt32 = 0
                let rc = kp_peercred(o.pid, o.fd, s.inode, &pid, &uid, &gid)
                if rc == 0 {
                    // pid 0 and uid/gid -1: no credentials were recorded
                    // (a datagram socket's connect() records none), as
                    // kcore sees a NULL sk_peer_cred.
                    if pid > 0 || uid != UInt32.max {
                        f.connector = SocketFacts.Connector(pid: pid > 0 ? pid : nil, uid: uid, gid: gid)
                    }
                    break
                }
                if rc == -ENOSYS || rc == -EPERM { failure = "pidfd_getfd(2): \(String(cString: strerror(-rc)))" }
            }
            if f.connector != nil { facts[s.inode] = f }
        }
        map.facts = facts
        var missing: [String: String] = [:]
        for k in ["bound_file", "receive_queue", "send_queue", "backlog", "in_flight"] { missing[k] = unavailable }
        if let failure, facts.isEmpty { missing["connector"] = failure }
        map.factsUnavailable = missing
    }
}
