import KPeerSystem
import PeerResolution
import SocketInventory
import TypeOffsets

/// Text for every output form. Each builds one string, written once.
public enum Render {
    /// One line per process: several fds of one process are one owner.
    public static func processes(_ owners: [Owner]) -> [Owner] {
        if owners.count < 2 { return owners }
        var seen = Set<Int32>()
        return owners.filter { seen.insert($0.pid).inserted }
    }

    // MARK: kpeer INODE

    /// `PID NAME` per process holding the peer (the original socket_peer's output).
    /// The name is escaped, as in --all, so one line is always one process.
    public static func answer(_ owners: [Owner]) -> String {
        processes(owners).map { "\($0.pid) \($0.escapedName)\n" }.joined()
    }

    // MARK: kpeer PATH

    /// `PID NAME INODE` per client process, ` pending` for a client not
    /// accepted yet; a client no process holds shows `- -`.
    public static func clients(_ answer: PathAnswer) -> String {
        var out = ""
        for c in answer.clients {
            let suffix = c.pending ? " pending\n" : "\n"
            let holders = processes(c.owners)
            if holders.isEmpty { out += "- - \(c.inode)" + suffix }
            for o in holders { out += "\(o.pid) \(o.escapedName) \(c.inode)" + suffix }
        }
        return out
    }

    // MARK: kpeer --all

    public static let tableHeader =
        "Proto RefCnt Flags       Type       State         I-Node   PID/Program name     Peer PID/Program name  Path\n"

    static func pad(_ s: String, _ width: Int) -> String {
        let n = s.utf8.count
        return n >= width ? s : s + String(repeating: " ", count: width - n)
    }

    /// netstat -na --unix -p, plus the peer's processes. Built as bytes in
    /// one buffer, each process's `pid/name` escaped once. A socket of
    /// another network namespace than `ownNetns` (when known) ends its row
    /// with ` net:[INODE]`; rows of kpeer's own stay as netstat_unix printed them.
    public static func table(_ map: PeerMap, ownNetns: UInt64 = 0) -> String {
        table(map, ownNetns: ownNetns, extended: false)
    }

    /// `--all -e`: the table with what kernel memory told (SocketFacts)
    /// between the peer and the path: Recv-Q (skbs/bytes), Send-Q (bytes),
    /// Backlog (waiting/max), Connector (pid:uid:gid), File (inode@major:minor),
    /// Senders (inode:datagrams, for a datagram queue); `-` where unknown.
    /// Then who the socket's first holder is (Identity.columns): NS-PID
    /// (its own pid in a pid namespace not `ownPidNamespace`), Cgroup
    /// (container, unit or path), Held (fd, thread:TID, io_uring:SLOT).
    public static func extendedTable(_ map: PeerMap, ownNetns: UInt64 = 0, ownPidNamespace: UInt64? = nil) -> String {
        table(map, ownNetns: ownNetns, extended: true, ownPidNamespace: ownPidNamespace)
    }

    static let extendedHeader: String =
        "Proto RefCnt Flags       Type       State         I-Node   PID/Program name     Peer PID/Program name  Recv-Q       Send-Q   Backlog  Connector        File                 Senders  "
        + Identity.columnsHeader + "Path\n"

    /// The -e fact cells, written straight into the row (no string per
    /// cell: -e prints a row per socket), each padded to its width with its
    /// separator: Recv-Q `skbs/bytes` (`+`: the queue changed while read),
    /// Send-Q bytes, Backlog `pending/max`, Connector `pid:uid:gid` (`?`: a
    /// pid outside kpeer's namespace), File `inode@major:minor`, Senders
    /// `inode:datagrams,…` (`?`: a closed sender); `-` for nothing known.
    static func writeFactColumns(_ f: SocketFacts?, into out: inout ByteOutput) {
        var at = out.count
        func num<T: BinaryInteger>(_ v: T) {
            if v < 0 { out.decimal(Int64(v)) } else { out.decimal(UInt64(v)) }
        }
        func next(_ width: Int) {
            out.pad(from: at, to: width - 1)
            at = out.count
        }
        if let q = f?.receiveQueue {
            num(q.skbs); out.byte(0x2F); num(q.bytes)
            if q.partial { out.byte(0x2B) }
        } else { out.byte(0x2D) }
        next(13)
        if let b = f?.sendBytes { num(b) } else { out.byte(0x2D) }
        next(9)
        if let b = f?.backlog { num(b.pending); out.byte(0x2F); num(b.max) } else { out.byte(0x2D) }
        next(9)
        if let c = f?.connector {
            if let pid = c.pid { num(pid) } else { out.byte(0x3F) }
            out.byte(0x3A); num(c.uid); out.byte(0x3A); num(c.gid)
        } else { out.byte(0x2D) }
        next(17)
        if let b = f?.boundFile {
            num(b.inode); out.byte(0x40); num(b.major); out.byte(0x3A); num(b.minor)
        } else { out.byte(0x2D) }
        next(21)
        if let f, !f.senders.isEmpty {
            for (i, x) in f.senders.enumerated() {
                if i > 0 { out.byte(0x2C) }
                if let inode = x.inode { num(inode) } else { out.byte(0x3F) }
                out.byte(0x3A); num(x.datagrams)
            }
        } else { out.byte(0x2D) }
        next(9)
    }


    /// -v with INODE or PATH: SocketFacts of one socket, a line each.
    public static func factLines(_ map: PeerMap, _ inode: UInt64) -> [String] {
        guard let facts = map.facts else {
            return map.factsUnavailable.sorted { $0.key < $1.key }.map { "kernel memory: \($0.key) unavailable: \($0.value)" }
        }
        guard let f = facts[inode] else { return ["kernel memory: socket \(inode) was not proved stable while it was read"] }
        var out: [String] = []
        if let b = f.boundFile { out.append("socket \(inode) is bound to \(b.description)") }
        if let c = f.connector {
            out.append("socket \(inode): connection made by pid \(Identity.connectorPid(c.pid)), uid \(c.uid), gid \(c.gid)")
        }
        if let q = f.receiveQueue { out.append("socket \(inode): \(q.skbs) buffers (\(q.bytes) bytes) waiting to be read\(q.partial ? " (at least: the queue changed while read)" : "")") }
        if let b = f.sendBytes { out.append("socket \(inode): \(b) bytes sent and not yet read by the peer") }
        if let b = f.backlog { out.append("socket \(inode): \(b.pending) of \(b.max) connections waiting to be accepted") }
        if let r = map.inFlight(inode) {
            out.append("socket \(inode) is in flight in an SCM_RIGHTS message queued on socket \(r)")
        }
        if !f.carrying.isEmpty {
            out.append("socket \(inode): sockets in flight to it (SCM_RIGHTS, not received yet): " + f.carrying.map(String.init).joined(separator: ", "))
        }
        for x in f.senders {
            let who = x.inode.map { "socket \($0) (\(map.owners(of: $0).map(\.label).joined(separator: ",").nilIfEmpty ?? "no process"))" } ?? "a closed socket"
            out.append("socket \(inode): \(x.datagrams) datagrams (\(x.bytes) bytes) queued from \(who)")
        }
        for (k, v) in map.factsUnavailable.sorted(by: { $0.key < $1.key }) { out.append("kernel memory: \(k) unavailable: \(v)") }
        return out
    }

    /// About how many bytes a table of `rows` takes: an -e row is over
    /// twice as wide, reserved once rather than grown and copied.
    static func tableSize(rows: Int, extended: Bool) -> Int { rows * (extended ? 288 : 128) + 256 }

    static func table(_ map: PeerMap, ownNetns: UInt64, extended: Bool, ownPidNamespace: UInt64? = nil) -> String {
        var out = ByteOutput(expected: tableSize(rows: map.sockets.count, extended: extended))
        writeTable(map, ownNetns: ownNetns, extended: extended, ownPidNamespace: ownPidNamespace, into: &out)
        return out.finish()
    }

    /// `table` or `extendedTable` as bytes, to be written out as they are.
    public static func tableBytes(_ map: PeerMap, ownNetns: UInt64 = 0, extended: Bool = false,
                                  ownPidNamespace: UInt64? = nil) -> [UInt8] {
        var out = ByteOutput(expected: tableSize(rows: map.sockets.count, extended: extended), asBytes: true)
        writeTable(map, ownNetns: ownNetns, extended: extended, ownPidNamespace: ownPidNamespace, into: &out)
        return out.finishBytes()
    }

    static func writeTable(_ map: PeerMap, ownNetns: UInt64, extended: Bool, ownPidNamespace: UInt64?,
                           into out: inout ByteOutput) {
        var names = NameCache(dump: false)
        // The identity cells are the same for every socket of a process
        // held the same way: rendered once each, kept in slots by pid (a
        // dictionary keyed by a type of our own costs a search of every
        // conformance in the binary the first time it grows).
        var identityCells = [(key: IdentityKey, cells: [UInt8])?](repeating: nil, count: extended ? 1024 : 0)
        if extended { out.append(extendedHeader) } else { out.append(tableHeader) }
        for i in map.sockets.indices {
            let e = map.sockets[i].entry
            out.append("unix  " as StaticString)
            var at = out.count
            out.decimal(UInt64(e.refCount))
            out.pad(from: at, to: 6)
            // The flags column, padded to 11, and its separator.
            out.append(e.isListening ? "[ ACC ]     " as StaticString : "[ ]         " as StaticString)
            at = out.count
            out.append(typeWord(e.rawType))
            out.pad(from: at, to: 10)
            at = out.count
            out.append(stateWord(e))
            out.pad(from: at, to: 13)
            at = out.count
            out.decimal(e.inode)
            out.pad(from: at, to: 8)
            at = out.count
            names.column(map.sockets[i].owners, whole: extended, into: &out)
            out.pad(from: at, to: 20)
            at = out.count
            if let p = map.sockets[i].peer {
                names.column(map.owners(of: p), whole: extended, into: &out)
            } else if let l = map.sockets[i].pendingOn {
                names.column(map.owners(of: l), whole: extended, into: &out)
                out.append(" (pending)" as StaticString)
            } else {
                out.byte(0x2D)
            }
            out.pad(from: at, to: 22)
            if extended {
                // Each width counts its separator, as the header spells them.
                writeFactColumns(map.facts?[e.inode], into: &out)
                let first = map.sockets[i].owners.first
                let key = first.map { IdentityKey(pid: $0.pid, via: $0.via) }
                let slot = key.map { Int(UInt32(bitPattern: $0.pid) & 1023) }
                if let key, let slot, let hit = identityCells[slot], hit.key == key {
                    out.append(hit.cells)
                } else {
                    let start = out.count
                    for (text, width) in Identity.columns(first, identity: first.flatMap { map.identities[$0.pid] }, ownPidNamespace: ownPidNamespace) {
                        at = out.count
                        out.append(text)
                        out.pad(from: at, to: width - 1)
                    }
                    if let key, let slot { identityCells[slot] = (key, out.bytes(from: start)) }
                }
            }
            if let path = e.path { out.append(path.display) }
            if ownNetns != 0, e.netns != 0, e.netns != ownNetns {
                // A pathless row already ends with the column separator.
                if e.path != nil { out.byte(0x20) }
                out.append(NetNamespace.label(e.netns))
            }
            out.byte(0x0A)
            out.endRow()
        }
    }

    /// netstat's type words.
    static func typeWord(_ raw: UInt16) -> StaticString {
        switch SocketType(rawValue: raw) {
        case .stream?: "STREAM"
        case .dgram?: "DGRAM"
        case .seqpacket?: "SEQPACKET"
        case .raw?: "RAW"
        case .rdm?: "RDM"
        case nil: "UNKNOWN"
        }
    }

    /// netstat's state words, from socket->state and the ACC flag.
    static func stateWord(_ e: UnixSocketEntry) -> StaticString {
        switch e.rawState {
        case 0: "FREE"
        case 1: e.isListening ? "LISTENING" : ""
        case 2: "CONNECTING"
        case 3: "CONNECTED"
        case 4: "DISCONNECTING"
        default: "UNKNOWN"
        }
    }

    // MARK: kpeer --dump

    /// `name:pid:socket:peer_socket:peer_pid:peer_name`, one line per
    /// process holding a socket that has a held peer: the peer fields name
    /// the peer's first process (lowest pid); its other processes have
    /// lines of their own, with the peer as their `socket` (n holders on
    /// each end of a connection make 2n lines, not 2n²). A client not
    /// accepted yet has no peer socket: `peer_socket` is 0 (never an
    /// inode) and the peer fields name the listener's first process, the
    /// one to accept it. With `pid`, only that process's own lines.
    public static func dump(_ map: PeerMap, pid: Int32? = nil) -> String {
        var out = ByteOutput(expected: map.sockets.count * 64 + 256)
        writeDump(map, pid: pid, into: &out)
        return out.finish()
    }

    /// `dump` as bytes, to be written out as they are.
    public static func dumpBytes(_ map: PeerMap, pid: Int32? = nil) -> [UInt8] {
        var out = ByteOutput(expected: map.sockets.count * 64 + 256, asBytes: true)
        writeDump(map, pid: pid, into: &out)
        return out.finishBytes()
    }

    static func writeDump(_ map: PeerMap, pid: Int32?, into out: inout ByteOutput) {
        var names = NameCache(dump: true)
        for i in map.sockets.indices {
            let peer = map.sockets[i].peer
            guard let target = peer ?? map.sockets[i].pendingOn else { continue }
            guard let other = map.owners(of: target).first else { continue }
            let inode = map.sockets[i].inode
            for mine in processes(map.sockets[i].owners) where pid == nil || mine.pid == pid {
                names.dumpName(mine, into: &out)
                out.byte(0x3A)
                out.decimal(Int64(mine.pid))
                out.byte(0x3A)
                out.decimal(inode)
                out.byte(0x3A)
                out.decimal(peer ?? 0)
                out.byte(0x3A)
                out.decimal(Int64(other.pid))
                out.byte(0x3A)
                names.dumpName(other, into: &out)
                out.byte(0x0A)
                out.endRow()
            }
        }
    }
}

/// Output text, built as bytes in a small scratch buffer that is moved into
/// the result String after every row once it holds 48 KiB: the result is
/// never held twice (a whole second copy of a 100k-socket table is ~10 MB).
/// Flushing only between rows keeps every multi-byte character whole.
/// Every writer makes its own room (a compare, and a doubling when full).
struct ByteOutput: ~Copyable {
    private var base: UnsafeMutablePointer<UInt8>
    private(set) var count = 0
    private var capacity: Int
    private var text = ""
    /// The result as bytes instead (`asBytes`): what is written out as it
    /// is needs no String, and making one checks every byte for UTF-8.
    private var raw: [UInt8]?
    static let flushAt = 48 << 10

    /// `expected`: about how many bytes the whole text will have.
    init(expected: Int, asBytes: Bool = false) {
        capacity = 64 << 10
        base = .allocate(capacity: capacity)
        // Reserved but untouched memory costs no RSS.
        if asBytes {
            raw = []
            raw!.reserveCapacity(expected)
        } else {
            text.reserveCapacity(expected)
        }
    }

    deinit { base.deallocate() }

    @inline(__always) mutating func reserve(_ n: Int) {
        if count + n > capacity { grow(count + n) }
    }

    mutating func grow(_ need: Int) {
        var c = capacity * 2
        while c < need { c *= 2 }
        let b = UnsafeMutablePointer<UInt8>.allocate(capacity: c)
        b.update(from: base, count: count)
        base.deallocate()
        base = b
        capacity = c
    }

    /// Call at the end of a row (or line).
    @inline(__always) mutating func endRow() {
        if count >= Self.flushAt { flush() }
    }

    mutating func flush() {
        if count == 0 { return }
        if raw != nil {
            raw!.append(contentsOf: UnsafeBufferPointer(start: base, count: count))
        } else {
            text += String(decoding: UnsafeBufferPointer(start: base, count: count), as: UTF8.self)
        }
        count = 0
    }

    @inline(__always) mutating func byte(_ b: UInt8) {
        reserve(1)
        base[count] = b
        count += 1
    }

    @inline(__always) mutating func append(_ s: StaticString) {
        let n = s.utf8CodeUnitCount
        reserve(n)
        (base + count).update(from: s.utf8Start, count: n)
        count += n
    }

    mutating func append(_ bytes: UnsafeBufferPointer<UInt8>) {
        reserve(bytes.count)
        if let p = bytes.baseAddress { (base + count).update(from: p, count: bytes.count) }
        count += bytes.count
    }

    mutating func append(_ s: String) {
        var s = s
        s.withUTF8 { append($0) }
    }

    @inline(__always) mutating func append(_ b: [UInt8]) {
        b.withUnsafeBufferPointer { append($0) }
    }

    @inline(__always) mutating func decimal(_ v: UInt64) {
        reserve(20)  // UInt64.max has 20 digits
        var n = 0
        var t = v
        repeat {
            n += 1
            t /= 10
        } while t > 0
        var at = count + n
        var v = v
        repeat {
            at -= 1
            base[at] = UInt8(truncatingIfNeeded: v % 10) &+ 0x30
            v /= 10
        } while v > 0
        count += n
    }

    @inline(__always) mutating func decimal(_ v: Int64) {
        if v < 0 {
            byte(0x2D)
            decimal(v.magnitude)
        } else {
            decimal(UInt64(v))
        }
    }

    /// Spaces after what was written since `start`, up to `width` bytes
    /// (as `pad`), then the column separator.
    @inline(__always) mutating func pad(from start: Int, to width: Int) {
        let n = max(width - (count - start), 0) + 1
        reserve(n)
        (base + count).update(repeating: 0x20, count: n)
        count += n
    }

    /// The bytes written since `start` in this row (rows are flushed only
    /// between rows, so they are all still here).
    func bytes(from start: Int) -> [UInt8] {
        Array(UnsafeBufferPointer(start: base + start, count: count - start))
    }

    consuming func finish() -> String {
        flush()
        return raw.map { String(decoding: $0, as: UTF8.self) } ?? text
    }

    consuming func finishBytes() -> [UInt8] {
        flush()
        return raw ?? Array(text.utf8)
    }
}

/// `pid/name` (table) or the escaped name (dump) of each process, escaped
/// once per process rather than once per socket: a direct-mapped cache
/// keyed by pid and checked against the name (a pid's owners normally
/// share one name, but nothing here relies on it).
struct NameCache {
    let dump: Bool
    private var slots: [(pid: Int32, name: String, bytes: [UInt8])?]

    init(dump: Bool) {
        self.dump = dump
        slots = Array(repeating: nil, count: 4096)
    }

    private mutating func rendered(_ o: Owner) -> [UInt8] {
        let slot = Int(UInt32(bitPattern: o.pid) & 4095)
        if let hit = slots[slot], hit.pid == o.pid, hit.name == o.name { return hit.bytes }
        let bytes: [UInt8]
        if dump {
            bytes = Array(o.dumpField.utf8)
        } else {
            bytes = Array(o.label.utf8)
        }
        slots[slot] = (o.pid, o.name, bytes)
        return bytes
    }

    mutating func dumpName(_ o: Owner, into out: inout ByteOutput) { out.append(rendered(o)) }

    /// An owner column: `-` for none; the first process (lowest pid) and,
    /// when others hold the socket too, `,+N` for how many (seven forked
    /// workers are `982/postgres,+6`, not a 200-column row). `whole` (-e):
    /// every process, `,`-joined. A `,` in a name is `\x2c`, so `,+N` is
    /// never part of one.
    mutating func column(_ owners: [Owner], whole: Bool = false, into out: inout ByteOutput) {
        if owners.isEmpty { return out.byte(0x2D) }
        out.append(rendered(owners[0]))
        if owners.count == 1 { return }
        let processes = Render.processes(owners)
        if processes.count == 1 { return }
        if !whole {
            out.append(",+" as StaticString)
            return out.decimal(UInt64(processes.count - 1))
        }
        for o in processes.dropFirst() {
            out.byte(0x2C)
            out.append(rendered(o))
        }
    }
}

extension Render {
    // MARK: kpeer --find-offset

    public static func offsetReport(_ report: OffsetReport) -> String {
        var out = "unix_sock.peer offset\n"
        for line in report.lines {
            out += "  " + pad(line.source.rawValue, 12) + " " + pad(line.value.map(String.init) ?? "-", 6) + " " + line.detail + "\n"
        }
        if let v = report.agreed {
            let gave = report.lines.filter { $0.value != nil }.map(\.source.rawValue)
            out += gave.count == 1 ? "only \(gave[0]) gave an offset: \(v)\n"
                                   : "\(gave.joined(separator: ", ")) agree: \(v)\n"
        } else if report.lines.allSatisfy({ $0.value == nil }) {
            out += "no source gave an offset\n"
        } else {
            out += "sources disagree\n"
        }
        return out
    }
}

extension String {
    var nilIfEmpty: String? { isEmpty ? nil : self }
}

/// Which identity cells a holder gets: its process, and how it holds.
struct IdentityKey: Equatable {
    var pid: Int32
    var via: HoldKind
}
