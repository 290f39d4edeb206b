import KernelObjects
import KPeerSystem
import SocketInventory
import TypeOffsets

/// The sockets io_uring rings hold as fixed files, named from kernel memory
/// where the ring's fdinfo names them only by protocol (kernels before
/// 6.14: RingFiles). The kcore method only, and only when the owner scan
/// met such rings.
///
/// From a task to the ring's sockets: a struct pid (kpeer's own, the
/// sk_peer_pid of its calibration pair, else any verified socket's) →
/// its task (pid.tasks[PIDTYPE_PID], container_of through pid_links) →
/// the list of thread-group leaders (task.tasks), walked to the ring's
/// process → task.files → fdt → fd[RINGFD] → file.private_data, the
/// io_ring_ctx → its fixed-file table, whose size must be the fdinfo's
/// `UserFiles:` → each slot's file → private_data, the struct socket.
/// A slot counts only when its socket's sk is the address of a row memory
/// vouched for (RowVerifier), the socket points back at the slot's file,
/// and the inode beside it (socket_alloc) is that row's. Anything else
/// leaves the gap as it was: a holder is never guessed.
struct RingHolders {
    let reader: ObjectReader
    /// The rows memory vouched for, by their unix_sock's address.
    let rows: [UInt64: UnixSocketEntry]

    init(reader: ObjectReader, entries: [UnixSocketEntry]) {
        self.reader = reader
        var rows: [UInt64: UnixSocketEntry] = [:]
        for e in entries where e.address != 0 && e.inode != 0 && rows[e.address] == nil { rows[e.address] = e }
        self.rows = rows
    }

    /// The low bits of a fixed file's `file_ptr` are flags (FFS_NOWAIT,
    /// FFS_ISREG, and FFS_SCM before 6.12); a struct file is aligned well
    /// beyond them.
    static let fileFlags: UInt64 = 7
    /// The kernel's IORING_MAX_FIXED_FILES: no ring's table is larger.
    static let maxFixedFiles = 1 << 20
    /// What a `struct file **` array holds: 64-bit kernels only.
    static let pointerSize = 8

    // MARK: the fixed-file table

    /// The two shapes of a ring's fixed-file table, told apart by which
    /// members this kernel's io_ring_ctx has.
    enum Table: Equatable {
        /// `file_table.files`, an array of `struct io_fixed_file { unsigned
        /// long file_ptr; }`, `nr_user_files` long (up to 6.12).
        case fixedFiles
        /// `file_table.data.nodes`, an array of `struct io_rsrc_node *`,
        /// each with its `file_ptr`, `file_table.data.nr` long (6.13 on).
        case nodes

        var path: String {
            switch self {
            case .fixedFiles: "io_ring_ctx.file_table.files"
            case .nodes: "io_ring_ctx.file_table.data.nodes"
            }
        }
    }

    func table() throws(KPeerError) -> Table {
        let t = reader.types
        if (try? t.member("io_ring_ctx", "file_table.files")) != nil {
            _ = try t.member("io_ring_ctx", "nr_user_files")
            _ = try t.member("io_fixed_file", "file_ptr")
            return .fixedFiles
        }
        if (try? t.member("io_ring_ctx", "file_table.data.nodes")) != nil {
            _ = try t.member("io_ring_ctx", "file_table.data.nr")
            _ = try t.member("io_rsrc_node", "file_ptr")
            return .nodes
        }
        throw KPeerError(.unavailable, "this kernel's io_ring_ctx has neither file_table.files nor file_table.data.nodes (\(t.origin))")
    }

    func slotCount(_ ctx: KernelObject, _ table: Table) throws(KPeerError) -> Int {
        Int(try ctx.unsigned(table == .fixedFiles ? "nr_user_files" : "file_table.data.nr"))
    }

    /// Each slot's `file_ptr`, 0 for an empty slot (or a node that could
    /// not be read).
    func filePointers(_ ctx: KernelObject, _ table: Table, count: Int) throws(KPeerError) -> [UInt64] {
        switch table {
        case .fixedFiles:
            let ptr = try reader.types.member("io_fixed_file", "file_ptr")
            return try reader.words(at: try ctx.word("file_table.files"), count: count,
                                    stride: try reader.types.size(of: "io_fixed_file"), offset: ptr.offset)
        case .nodes:
            let nodes = try reader.words(at: try ctx.word("file_table.data.nodes"), count: count, stride: Self.pointerSize)
            return nodes.map { n in
                guard n != 0, let node = try? reader.object(at: n, type: "io_rsrc_node"),
                      let p = try? node.unsigned("file_ptr") else { return 0 }
                return p
            }
        }
    }

    // MARK: tasks

    /// How a task's number is held against the pids /proc showed the scan.
    enum Numbering {
        /// kpeer's /proc is the initial pid namespace's: task.tgid.
        case global
        /// Another: the task's struct pid translated to kpeer's level.
        case anchored(PidAnchor)
    }

    /// The thread-group leader whose struct pid is at `pidAt`, when it
    /// points back at that pid.
    func leader(ofPid pidAt: UInt64) -> KernelObject? {
        guard let pid = try? reader.object(at: pidAt, type: "pid"),
              let first = try? pid.element("tasks", 0).unsigned("first"), first != 0,  // PIDTYPE_PID
              let task = try? reader.container(of: first, type: "task_struct", member: "pid_links"),
              (try? task.word("thread_pid")) == pidAt, (try? task.word("group_leader")) == task.address else { return nil }
        return task
    }

    /// A task to walk from: kpeer's own, else that of a verified socket's
    /// sk_peer_pid (most connected sockets have one), trying a few.
    func start(ownPid: UInt64?, entries: [UnixSocketEntry]) -> KernelObject? {
        if let ownPid, let t = leader(ofPid: ownPid) { return t }
        var tried = 0
        for e in entries.prefix(4096) where e.address != 0 && e.inode != 0 {
            guard let us = try? reader.object(at: e.address, type: "unix_sock"),
                  let p = try? us.word("sk.sk_peer_pid"), p != 0 else { continue }
            if let t = leader(ofPid: p) { return t }
            tried += 1
            if tried == 64 { break }
        }
        return nil
    }

    func pid(of task: KernelObject, _ numbering: Numbering) -> Int32? {
        switch numbering {
        case .global:
            return (try? task.signed("tgid")).map { Int32(truncatingIfNeeded: $0) }
        case .anchored(let anchor):
            guard let p = try? task.word("thread_pid"), p != 0 else { return nil }
            return (try? anchor.translate(pidAt: p, reader: reader)) ?? nil
        }
    }

    /// The leaders of the `wanted` processes, from a walk of every leader
    /// (task.tasks) that starts at `start` and takes at most `limit` steps.
    func processes(_ wanted: Set<Int32>, from start: KernelObject, numbering: Numbering,
                   limit: Int) -> (tasks: [Int32: KernelObject], walk: KernelObject.Walk) {
        var found: [Int32: KernelObject] = [:]
        func look(_ t: KernelObject) -> Bool {
            if let p = pid(of: t, numbering), wanted.contains(p), found[p] == nil { found[p] = t }
            return found.count < wanted.count
        }
        guard look(start) else { return (found, .stopped) }
        let walk = (try? start.walkList("tasks", limit: limit, look)) ?? .cutShort
        return (found, walk)
    }

    // MARK: a ring's sockets

    /// The verified unix sockets of ring `ring` of `task`: (slot, inode).
    func sockets(in ring: UnnamedRing, of task: KernelObject, table: Table) throws(KPeerError) -> [(slot: Int32, inode: UInt64)] {
        let ctx = try self.ring(ring.fd, of: task)
        let count = try slotCount(ctx, table)
        guard count == ring.registered, count <= Self.maxFixedFiles else {
            throw KPeerError(.refused, "its table in memory has \(count) files where its fdinfo said \(ring.registered)")
        }
        var out: [(slot: Int32, inode: UInt64)] = []
        for (slot, p) in try filePointers(ctx, table, count: count).enumerated() where p != 0 {
            if let inode = socketInode(filePtr: p) { out.append((Int32(slot), inode)) }
        }
        // Live memory: a table that changed meanwhile gives nothing.
        guard try self.ring(ring.fd, of: task).address == ctx.address, try slotCount(ctx, table) == count else {
            throw KPeerError(.refused, "the ring changed while kpeer read it")
        }
        return out
    }

    /// The io_ring_ctx behind descriptor `fd` of `task`.
    func ring(_ fd: Int32, of task: KernelObject) throws(KPeerError) -> KernelObject {
        guard let files = try task.pointer("files"), let fdt = try files.pointer("fdt") else {
            throw KPeerError(.refused, "its task has no descriptor table")
        }
        guard fd >= 0, UInt64(fd) < (try fdt.unsigned("max_fds")) else {
            throw KPeerError(.refused, "fd \(fd) is beyond its descriptor table")
        }
        let (slotAt, over) = (try fdt.word("fd")).addingReportingOverflow(UInt64(fd) * UInt64(Self.pointerSize))
        guard !over else { throw KPeerError(.refused, "its descriptor table lies outside kernel memory") }
        let fileAt = try reader.memory.readWord(slotAt)
        guard fileAt != 0, let ctx = try reader.object(at: fileAt, type: "file").pointer("private_data", as: "io_ring_ctx") else {
            throw KPeerError(.refused, "fd \(fd) is no longer a ring")
        }
        return ctx
    }

    /// The inode of the verified row whose socket a slot's file is, or nil.
    func socketInode(filePtr: UInt64) -> UInt64? {
        let fileAt = filePtr & ~Self.fileFlags
        guard fileAt != 0, let file = try? reader.object(at: fileAt, type: "file"),
              let sock = try? file.pointer("private_data", as: "socket"),
              let sk = try? sock.word("sk"), let row = rows[sk],
              (try? sock.word("file")) == fileAt,
              let alloc = try? reader.container(of: sock.address, type: "socket_alloc", member: "socket"),
              (try? alloc.unsigned("vfs_inode.i_ino")) == row.inode else { return nil }
        return row.inode
    }

    // MARK: the owner table

    /// Names in `owners` what kernel memory can of the sockets its
    /// `unnamedRings` hold (owners `via: io_uring`, fd the ring's), and
    /// shrinks the gap by as many; `ringNote` says what was done (-v).
    /// `reader` nil: no layouts to read with.
    static func name(in owners: inout OwnerTable, reader: ObjectReader?, entries: [UnixSocketEntry],
                     pair: Calibration.Pair?, procRoot: String, identities: Bool) {
        guard !owners.unnamedRings.isEmpty else { return }
        let total = owners.unnamedRingSockets.values.reduce(0, +)
        func fail(_ why: String) {
            owners.ringNote = "io_uring: kernel memory cannot name the \(total) unix socket(s) rings hold unnamed: \(why)"
        }
        guard let reader else { return fail("the struct layouts are unknown or contradicted by memory") }
        let holders = RingHolders(reader: reader, entries: entries)
        let table: Table
        do { table = try holders.table() } catch { return fail(error.problem) }
        let ownPid = pair.flatMap { ownPidAddress($0, entries, reader) }
        let numbering: Numbering
        if !owners.partialPidView {
            numbering = .global
        } else if let ownPid, let anchor = try? PidAnchor.read(pidAt: ownPid, reader: reader) {
            numbering = .anchored(anchor)
        } else {
            return fail("kpeer runs in a child pid namespace and could not place itself in it")
        }
        guard let start = holders.start(ownPid: ownPid, entries: entries) else {
            return fail("no task was found to walk the process list from")
        }
        let wanted = Set(owners.unnamedRings.filter { $0.value.contains { $0.tid == 0 } }.keys)
        // A bound, not an estimate: processes started since the scan fit
        // in the margin; where /proc shows only some, pid_max bounds them all.
        let limit = owners.partialPidView ? pidMax(procRoot)
                                          : owners.processCount + owners.processCount / 2 + 64
        let (tasks, walk) = holders.processes(wanted, from: start, numbering: numbering, limit: limit)
        var named = 0
        var problems: [String] = []
        for (pid, rings) in owners.unnamedRings.sorted(by: { $0.key < $1.key }) {
            var left = owners.unnamedRingSockets[pid] ?? 0
            var unresolved: [UnnamedRing] = []
            for ring in rings {
                var rest = ring
                defer { if rest.unnamedUnix > 0 { unresolved.append(rest) } }
                guard ring.tid == 0 else {
                    problems.append("pid \(pid) ring fd \(ring.fd) is in thread \(ring.tid)'s own table, not looked into")
                    continue
                }
                guard let task = tasks[pid] else {
                    problems.append("pid \(pid): its task was not found\(walk == .cutShort ? " (the walk of the task list was cut short)" : "")")
                    continue
                }
                do {
                    let found = try holders.sockets(in: ring, of: task, table: table)
                    let name = processName(of: task)
                    for (slot, inode) in found { owners.addRingHolder(Owner(pid: pid, name: name, fd: ring.fd, via: .ioUring(slot: slot)), of: inode) }
                    if identities, !found.isEmpty, owners.identities[pid] == nil {
                        owners.identities[pid] = ProcessIdentity.read(pid: pid, procRoot: procRoot)
                    }
                    let n = min(found.count, ring.unnamedUnix)
                    named += n
                    left -= n
                    rest.unnamedUnix -= n
                    if rest.unnamedUnix > 0 {
                        problems.append("pid \(pid) ring fd \(ring.fd): \(rest.unnamedUnix) of its unix sockets are not among the sockets kpeer verified")
                    }
                } catch {
                    problems.append("pid \(pid) ring fd \(ring.fd): \(error.problem)")
                }
            }
            owners.unnamedRingSockets[pid] = left > 0 ? left : nil
            owners.unnamedRings[pid] = unresolved.isEmpty ? nil : unresolved
        }
        var note = "io_uring: kernel memory named \(named) of the \(total) unix socket(s) rings hold unnamed (fixed files through \(table.path))"
        if !problems.isEmpty { note += "; " + problems.prefix(3).joined(separator: "; ") + (problems.count > 3 ? "; …" : "") }
        owners.ringNote = note
    }

    /// kpeer's own struct pid: the sk_peer_pid of its calibration pair.
    static func ownPidAddress(_ pair: Calibration.Pair, _ entries: [UnixSocketEntry], _ reader: ObjectReader) -> UInt64? {
        guard let (a, _) = try? Calibration.addresses(of: pair, in: entries),
              let us = try? reader.object(at: a, type: "unix_sock"),
              let p = try? us.word("sk.sk_peer_pid"), p != 0 else { return nil }
        return p
    }

    static func pidMax(_ procRoot: String) -> Int {
        Files.text("\(procRoot)/sys/kernel/pid_max").flatMap { Int($0) } ?? (1 << 22)
    }

    /// The task's own `comm`, every byte kept, from the task whose files
    /// were read (not /proc/PID/comm: that pid may be another process's by
    /// now); "?" when it cannot be read.
    static func processName(of task: KernelObject) -> ProcessName {
        guard let comm = try? task.bytes("comm") else { return ProcessName(bytes: Array("?".utf8)) }
        return ProcessName(bytes: comm.prefix { $0 != 0 })
    }
}

extension OwnerTable {
    /// A ring's holding of `inode`, unless that process already holds it
    /// (by a descriptor, or through another slot).
    mutating func addRingHolder(_ owner: Owner, of inode: UInt64) {
        var list = byInode[inode] ?? []
        guard !list.contains(where: { $0.pid == owner.pid }) else { return }
        list.append(owner)
        list.sort()
        byInode[inode] = list
    }
}
