import Glibc
import Testing
@testable import KernelMemory
@testable import KernelObjects
@testable import KPeerSystem
@testable import PeerResolution
@testable import SocketInventory
@testable import TypeOffsets

/// The kcore method's naming of sockets io_uring rings hold (RingHolders),
/// on synthetic cores laid out with this machine's BTF: a task list, a
/// process whose descriptor table has a ring at some fd, the ring's fixed
/// files, and the sockets they are. The ring's table is laid out in each
/// shape (this kernel's, and each forced by layouts that name only its
/// members); what the owner table ends with is held against what the
/// world was built with.
@Suite(.layered) struct RingHolderTests {
    static let btf = "/sys/kernel/btf/vmlinux"
    static var haveBTF: Bool { access(btf, R_OK) == 0 }

    final class World {
        static let base: UInt64 = 0xffff_8880_0400_0000
        let types: KernelTypes
        let core = SyntheticCore()
        var next = World.base + 0x1000
        /// Where nothing is: a pointer there must be refused.
        static let outside: UInt64 = 0xffff_9999_0000_0000

        init(_ types: KernelTypes) {
            self.types = types
            _ = core.add(vaddr: World.base, size: 4 << 20)
        }

        func off(_ t: String, _ p: String) throws -> UInt64 { UInt64(try types.member(t, p).offset) }
        func alloc(bytes: Int) -> UInt64 {
            defer { next += (UInt64(bytes) + 63) & ~63 }
            return next
        }
        func alloc(_ type: String) throws -> UInt64 { alloc(bytes: try types.size(of: type)) }
        func put32(_ at: UInt64, _ v: Int32) {
            for (i, b) in withUnsafeBytes(of: v.littleEndian, Array.init).enumerated() { core.pokeByte(at + UInt64(i), b) }
        }

        /// A thread-group leader with tgid `pid`, its struct pid pointing
        /// at it (PIDTYPE_PID) and it at its struct pid; with `numbers`,
        /// that struct pid's (nr, namespace) from the initial namespace down.
        func task(pid: Int32, numbers: [(Int32, UInt64)] = []) throws -> (task: UInt64, pid: UInt64) {
            let t = try alloc("task_struct")
            let p = alloc(bytes: try types.size(of: "pid") + numbers.count * (try types.size(of: "upid")))
            if !numbers.isEmpty {
                let m = try types.member("pid", "numbers")
                put32(p + (try off("pid", "level")), Int32(numbers.count - 1))
                for (i, (nr, ns)) in numbers.enumerated() {
                    let u = p + UInt64(m.offset + i * m.elementSize)
                    put32(u + (try off("upid", "nr")), nr)
                    core.poke(u + (try off("upid", "ns")), ns)
                }
            }
            put32(t + (try off("task_struct", "tgid")), pid)
            put32(t + (try off("task_struct", "pid")), pid)
            if let comm = try? types.member("task_struct", "comm") {
                for (i, b) in RingHolderTests.taskName(pid).utf8.prefix(comm.size - 1).enumerated() {
                    core.pokeByte(t + UInt64(comm.offset + i), b)
                }
            }
            core.poke(t + (try off("task_struct", "thread_pid")), p)
            core.poke(t + (try off("task_struct", "group_leader")), t)
            core.poke(p + (try off("pid", "tasks")), t + (try off("task_struct", "pid_links")))
            return (t, p)
        }

        /// task.tasks.next of each task to the next one's node.
        func chain(_ tasks: [UInt64], back: Bool = true) throws {
            let node = try off("task_struct", "tasks"), next = try off("task_struct", "tasks.next")
            for (i, t) in tasks.enumerated() where back || i + 1 < tasks.count {
                core.poke(t + next, tasks[(i + 1) % tasks.count] + node)
            }
        }

        /// A unix socket as the kernel has it: its unix_sock (the row's
        /// address), its socket beside inode `inode` in a socket_alloc, and
        /// its file. `peerPid` is its sk_peer_pid.
        func socket(inode: UInt64, peerPid: UInt64 = 0) throws -> (us: UInt64, file: UInt64) {
            let us = try alloc("unix_sock"), sa = try alloc("socket_alloc"), file = try alloc("file")
            let sock = sa + (try off("socket_alloc", "socket"))
            core.poke(us + (try off("unix_sock", "sk.sk_socket")), sock)
            core.poke(us + (try off("unix_sock", "sk.sk_peer_pid")), peerPid)
            core.poke(sa + (try off("socket_alloc", "vfs_inode.i_ino")), inode)
            core.poke(sock + (try off("socket", "sk")), us)
            core.poke(sock + (try off("socket", "file")), file)
            core.poke(file + (try off("file", "private_data")), sock)
            return (us, file)
        }

        /// `task`'s descriptor table with a ring at `fd` whose fixed-file
        /// table holds `slots` (file_ptr values, 0 for an empty slot), laid
        /// out in `shape`; `count` is what the table says its size is.
        func ring(of task: UInt64, fd: Int32, slots: [UInt64], shape: RingHolders.Table, count: Int? = nil) throws -> UInt64 {
            let files = try alloc("files_struct"), fdt = try alloc("fdtable"), array = alloc(bytes: 8 * 64)
            core.poke(task + (try off("task_struct", "files")), files)
            core.poke(files + (try off("files_struct", "fdt")), fdt)
            put32(fdt + (try off("fdtable", "max_fds")), 64)
            core.poke(fdt + (try off("fdtable", "fd")), array)
            let file = try alloc("file"), ctx = try alloc("io_ring_ctx")
            core.poke(array + UInt64(fd) * 8, file)
            core.poke(file + (try off("file", "private_data")), ctx)
            switch shape {
            case .fixedFiles:
                let size = UInt64(try types.size(of: "io_fixed_file")), at = try off("io_fixed_file", "file_ptr")
                let table = alloc(bytes: slots.count * Int(size))
                for (i, p) in slots.enumerated() { core.poke(table + UInt64(i) * size + at, p) }
                core.poke(ctx + (try off("io_ring_ctx", "file_table.files")), table)
                put32(ctx + (try off("io_ring_ctx", "nr_user_files")), Int32(count ?? slots.count))
            case .nodes:
                let nodes = alloc(bytes: slots.count * 8), at = try off("io_rsrc_node", "file_ptr")
                for (i, p) in slots.enumerated() where p != 0 {
                    let node = try alloc("io_rsrc_node")
                    core.poke(node + at, p)
                    core.poke(nodes + UInt64(i) * 8, node)
                }
                core.poke(ctx + (try off("io_ring_ctx", "file_table.data.nodes")), nodes)
                put32(ctx + (try off("io_ring_ctx", "file_table.data.nr")), Int32(count ?? slots.count))
            }
            return ctx
        }

        func reader() throws -> ObjectReader {
            ObjectReader(memory: try KernelMemory(path: try core.write()), types: types)
        }
    }

    /// Layouts that have only one shape of a ring's table: this machine's
    /// BTF for everything else, the ring's members placed inside its
    /// io_ring_ctx by hand (or neither shape, `nil`).
    static func layouts(_ shape: RingHolders.Table?) throws -> KernelTypes {
        let host = try KernelTypes(btf: btf)
        let ft = try host.member("io_ring_ctx", "file_table").offset
        typealias M = KernelTypes.Member
        var members: [String: M] = [:]
        var sizes: [String: Int] = [:]
        var missing: [String: String] = [:]
        switch shape {
        case .fixedFiles:
            members["io_ring_ctx.file_table.files"] = M(offset: ft, size: 8, kind: .pointer, target: "io_fixed_file", targetKind: .structure)
            members["io_ring_ctx.nr_user_files"] = M(offset: ft + 16, size: 4, kind: .integer)
            members["io_fixed_file.file_ptr"] = M(offset: 0, size: 8, kind: .integer)
            sizes["io_fixed_file"] = 8
        case .nodes:
            missing["io_ring_ctx.file_table.files"] = "no member file_table.files (this test's layouts)"
            members["io_ring_ctx.file_table.data.nr"] = M(offset: ft, size: 4, kind: .integer)
            members["io_ring_ctx.file_table.data.nodes"] = M(offset: ft + 8, size: 8, kind: .pointer)
            members["io_rsrc_node.file_ptr"] = M(offset: 16, size: 8, kind: .integer)
            sizes["io_rsrc_node"] = 24
        case nil:
            missing["io_ring_ctx.file_table.files"] = "no member file_table.files (this test's layouts)"
            missing["io_ring_ctx.file_table.data.nodes"] = "no member file_table.data.nodes (this test's layouts)"
        }
        return KernelTypes(remembered: members, sizes: sizes, missing: missing, source: .btf, origin: btf)
    }

    /// The owner scan's view of a process with one ring at `fd` whose
    /// fdinfo listed `registered` files, `unnamed` of them unix sockets it
    /// named only by protocol.
    static func scanned(pid: Int32, fd: Int32, registered: Int, unnamed: Int = 1, processes: Int = 3) -> OwnerTable {
        var t = OwnerTable()
        t.unnamedRingSockets[pid] = unnamed
        t.unnamedRings[pid] = [UnnamedRing(fd: fd, registered: registered, unnamedUnix: unnamed)]
        t.processCount = processes
        return t
    }

    static func row(_ us: UInt64, _ inode: UInt64) -> UnixSocketEntry {
        UnixSocketEntry(address: us, refCount: 2, flags: 0, rawType: 1, rawState: 3, inode: inode, path: nil)
    }

    /// This test process's pid stands for the ring's holder; its name is
    /// the one its task in the synthetic kernel carries (`taskName`), not
    /// /proc's: the task whose files were read is the one to name.
    static let me = getpid()
    static var myName: String { taskName(me) }
    static func taskName(_ pid: Int32) -> String { "task \(pid)" }

    /// A process (this one's pid) whose ring holds, in slot 1 (slot 0
    /// empty, a flag bit set in the pointer), a socket its fdinfo does not
    /// name: it is named its holder `via io_uring`, fd the ring's, slot 1,
    /// and the gap closes; in the kernel's own shape, and in each shape.
    @Test(.enabled(if: haveBTF), arguments: ["this kernel", "fixed files", "nodes"])
    func aRingSocketIsNamedItsHolder(_ which: String) throws {
        let types = which == "this kernel" ? try KernelTypes(btf: Self.btf)
            : try Self.layouts(which == "nodes" ? .nodes : .fixedFiles)
        let w = World(types)
        let shape = try RingHolders(reader: try w.reader(), entries: []).table()
        if which == "fixed files" { #expect(shape == .fixedFiles) }
        if which == "nodes" { #expect(shape == .nodes) }
        let initTask = try w.task(pid: 0), other = try w.task(pid: 100), holder = try w.task(pid: Self.me)
        try w.chain([initTask.task, other.task, holder.task])
        // The socket's sk_peer_pid is the other process's: the walk starts there.
        let s = try w.socket(inode: 4242, peerPid: other.pid)
        _ = try w.ring(of: holder.task, fd: 7, slots: [0, s.file | 1], shape: shape)
        var owners = Self.scanned(pid: Self.me, fd: 7, registered: 2)
        RingHolders.name(in: &owners, reader: try w.reader(), entries: [Self.row(s.us, 4242)],
                         pair: nil, procRoot: "/proc", identities: false)
        #expect(owners.owners(of: 4242) == [Owner(pid: Self.me, name: Self.myName, fd: 7, via: .ioUring(slot: 1))])
        #expect(owners.unnamedRingSockets.isEmpty && owners.unnamedRings.isEmpty && owners.ringGaps == nil)
        #expect(owners.ringNote?.contains("named 1 of the 1") == true)
        #expect(owners.ringNote?.contains(shape.path) == true)
    }

    /// A slot whose socket's inode is not the row's (memory reused, a
    /// forged row), whose socket does not point back at the slot's file,
    /// or whose pointer leads out of kernel memory: nothing is named, the
    /// gap stays.
    @Test(.enabled(if: haveBTF)) func unverifiedSlotsNameNothing() throws {
        let w = World(try KernelTypes(btf: Self.btf))
        let shape = try RingHolders(reader: try w.reader(), entries: []).table()
        let initTask = try w.task(pid: 0), holder = try w.task(pid: Self.me)
        try w.chain([initTask.task, holder.task])
        let wrongInode = try w.socket(inode: 500, peerPid: holder.pid)
        let notBack = try w.socket(inode: 501)
        let notBackSock = try w.reader().object(at: notBack.us, type: "unix_sock").word("sk.sk_socket")
        #expect(notBackSock != 0)
        w.core.poke(notBackSock + (try w.off("socket", "file")), wrongInode.file)
        _ = try w.ring(of: holder.task, fd: 3, slots: [wrongInode.file, notBack.file, World.outside], shape: shape)
        var owners = Self.scanned(pid: Self.me, fd: 3, registered: 3, unnamed: 3)
        // The row says 499 where memory says 500.
        RingHolders.name(in: &owners, reader: try w.reader(), entries: [Self.row(wrongInode.us, 499), Self.row(notBack.us, 501)],
                         pair: nil, procRoot: "/proc", identities: false)
        #expect(owners.owners(of: 499).isEmpty && owners.owners(of: 500).isEmpty && owners.owners(of: 501).isEmpty)
        #expect(owners.unnamedRingSockets[Self.me] == 3)
        #expect(owners.ringGaps != nil)
        #expect(owners.ringNote?.contains("3 of its unix sockets are not among the sockets kpeer verified") == true)
    }

    /// Pointers out of kernel memory on the way to the ring, and a table
    /// whose size is not the fdinfo's: refused, with the reason in -v.
    @Test(.enabled(if: haveBTF)) func outOfMemoryPointersAndOtherTablesAreRefused() throws {
        let w = World(try KernelTypes(btf: Self.btf))
        let shape = try RingHolders(reader: try w.reader(), entries: []).table()
        let initTask = try w.task(pid: 0), holder = try w.task(pid: Self.me)
        try w.chain([initTask.task, holder.task])
        let s = try w.socket(inode: 600, peerPid: holder.pid)
        _ = try w.ring(of: holder.task, fd: 5, slots: [s.file], shape: shape)
        let rows = [Self.row(s.us, 600)]
        // The fdinfo said 2 files; memory says 1: another table, or a changed one.
        var owners = Self.scanned(pid: Self.me, fd: 5, registered: 2)
        RingHolders.name(in: &owners, reader: try w.reader(), entries: rows, pair: nil, procRoot: "/proc", identities: false)
        #expect(owners.owners(of: 600).isEmpty && owners.unnamedRingSockets[Self.me] == 1)
        #expect(owners.ringNote?.contains("has 1 files where its fdinfo said 2") == true)
        // A descriptor table pointer out of kernel memory.
        let files = try w.reader().object(at: holder.task, type: "task_struct").word("files")
        w.core.poke(files + (try w.off("files_struct", "fdt")), World.outside)
        owners = Self.scanned(pid: Self.me, fd: 5, registered: 1)
        RingHolders.name(in: &owners, reader: try w.reader(), entries: rows, pair: nil, procRoot: "/proc", identities: false)
        #expect(owners.owners(of: 600).isEmpty && owners.unnamedRingSockets[Self.me] == 1)
        #expect(owners.ringNote?.contains("lies outside kernel memory") == true)
    }

    /// A task list that loops without coming back to where the walk began,
    /// or is longer than the bound: the walk ends, and a process beyond
    /// it is not found (its gap stays).
    @Test(.enabled(if: haveBTF)) func taskWalksAreBounded() throws {
        let w = World(try KernelTypes(btf: Self.btf))
        let shape = try RingHolders(reader: try w.reader(), entries: []).table()
        let a = try w.task(pid: 10), b = try w.task(pid: 11), c = try w.task(pid: 12), holder = try w.task(pid: Self.me)
        try w.chain([a.task, b.task, c.task])
        // c → b: a loop that never comes back to a.
        w.core.poke(c.task + (try w.off("task_struct", "tasks.next")), b.task + (try w.off("task_struct", "tasks")))
        let s = try w.socket(inode: 700, peerPid: a.pid)
        _ = try w.ring(of: holder.task, fd: 4, slots: [s.file], shape: shape)
        var owners = Self.scanned(pid: Self.me, fd: 4, registered: 1)
        RingHolders.name(in: &owners, reader: try w.reader(), entries: [Self.row(s.us, 700)], pair: nil,
                         procRoot: "/proc", identities: false)
        #expect(owners.owners(of: 700).isEmpty && owners.unnamedRingSockets[Self.me] == 1)
        #expect(owners.ringNote?.contains("cut short") == true)

        // A chain of 40 tasks, the holder last: found within a bound of 50,
        // not within 20.
        let chain = try (0..<39).map { i in try w.task(pid: 1000 + Int32(i)).task } + [holder.task]
        try w.chain(chain)
        let holders = RingHolders(reader: try w.reader(), entries: [])
        let start = try #require(holders.leader(ofPid: try w.reader().object(at: chain[0], type: "task_struct").word("thread_pid")))
        let far = holders.processes([Self.me], from: start, numbering: .global, limit: 50)
        #expect(far.tasks[Self.me]?.address == holder.task && far.walk == .stopped)
        let near = holders.processes([Self.me], from: start, numbering: .global, limit: 20)
        #expect(near.tasks.isEmpty && near.walk == .cutShort)
        // A whole circle: every task seen, back at the start.
        let all = holders.processes([4242], from: start, numbering: .global, limit: 50)
        #expect(all.tasks.isEmpty && all.walk == .complete)
    }

    /// kpeer in a child pid namespace: the ring's process is found by its
    /// struct pid translated to kpeer's level (kpeer's own struct pid, from
    /// its calibration pair, anchors it), not by its global tgid; with no
    /// pair to anchor it, nothing is named and -v says why.
    @Test(.enabled(if: haveBTF)) func inAChildPidNamespaceTasksAreMatchedThroughTheAnchor() throws {
        let w = World(try KernelTypes(btf: Self.btf))
        let shape = try RingHolders(reader: try w.reader(), entries: []).table()
        // Namespaces: the initial one R and B below it, where kpeer is pid 1
        // and the ring's holder this process's pid (globally 9000).
        let (r, b): (UInt64, UInt64) = (0xffff_8880_0aaa_0000, 0xffff_8880_0bbb_0000)
        let initTask = try w.task(pid: 0, numbers: [(0, r)])
        let kpeer = try w.task(pid: 8000, numbers: [(8000, r), (1, b)])
        let holder = try w.task(pid: 9000, numbers: [(9000, r), (Self.me, b)])
        try w.chain([initTask.task, kpeer.task, holder.task])
        let pair = try Calibration.Pair()
        let ends = (try w.socket(inode: pair.inodes.0, peerPid: kpeer.pid), try w.socket(inode: pair.inodes.1, peerPid: kpeer.pid))
        let s = try w.socket(inode: 800)
        _ = try w.ring(of: holder.task, fd: 6, slots: [s.file], shape: shape)
        let rows = [Self.row(ends.0.us, pair.inodes.0), Self.row(ends.1.us, pair.inodes.1), Self.row(s.us, 800)]
        var owners = Self.scanned(pid: Self.me, fd: 6, registered: 1)
        owners.partialPidView = true
        RingHolders.name(in: &owners, reader: try w.reader(), entries: rows, pair: pair, procRoot: "/proc", identities: false)
        // Named by the task found (its comm, written under its global pid).
        #expect(owners.owners(of: 800) == [Owner(pid: Self.me, name: Self.taskName(9000), fd: 6, via: .ioUring(slot: 0))])
        #expect(owners.unnamedRingSockets.isEmpty)
        // Without the pair: kpeer's level is unknown.
        owners = Self.scanned(pid: Self.me, fd: 6, registered: 1)
        owners.partialPidView = true
        RingHolders.name(in: &owners, reader: try w.reader(), entries: rows, pair: nil, procRoot: "/proc", identities: false)
        #expect(owners.owners(of: 800).isEmpty && owners.unnamedRingSockets[Self.me] == 1)
        #expect(owners.ringNote?.contains("child pid namespace") == true)
    }

    /// A kernel with neither shape of the table says so, and names nothing.
    @Test(.enabled(if: haveBTF)) func neitherShapeIsAReason() throws {
        let w = World(try Self.layouts(nil))
        var owners = Self.scanned(pid: Self.me, fd: 4, registered: 1)
        RingHolders.name(in: &owners, reader: try w.reader(), entries: [], pair: nil, procRoot: "/proc", identities: false)
        #expect(owners.unnamedRingSockets[Self.me] == 1)
        #expect(owners.ringNote?.contains("neither file_table.files nor file_table.data.nodes") == true)
    }
}
