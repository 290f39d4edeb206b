import CKPeer
import Glibc
import KPeerSystem
import Synchronization

/// How a process holds a socket.
public enum HoldKind: Hashable, Sendable {
    /// A descriptor of the process's table (/proc/PID/fd).
    case fd
    /// A descriptor of one thread's own table: the thread unshared its
    /// table (unshare(CLONE_FILES)), so only /proc/PID/task/TID/fd lists it.
    case thread(Int32)
    /// A fixed file of an io_uring ring (IORING_REGISTER_FILES) at this
    /// slot, its descriptor closed; the owner's `fd` is the ring's.
    case ioUring(slot: Int32)
}

/// A process holding a socket: through one of its file descriptors, one
/// of a thread's own, or an io_uring ring's registered files.
public struct Owner: Hashable, Sendable, Comparable {
    // pid and fd side by side (24 bytes with the name); `via` and the
    // one-byte `nameIsRaw` make the stride 32.
    public var pid: Int32
    public var fd: Int32
    /// The name as stored: the comm itself when it is UTF-8 (nearly
    /// always); otherwise each byte as the scalar of that value (U+0000 to
    /// U+00FF), which keeps every byte (`nameIsRaw`).
    private var stored: String
    /// How the process holds the socket: `fd` is a descriptor in which
    /// table, or the ring it is registered with.
    public var via: HoldKind
    /// The comm's bytes are not UTF-8: `stored` holds them one per scalar.
    public private(set) var nameIsRaw = false

    public init(pid: Int32, name: String, fd: Int32, via: HoldKind = .fd) {
        self.pid = pid; self.stored = name; self.fd = fd; self.via = via
    }

    /// An owner named by the bytes of /proc/PID/comm, whatever they are.
    public init(pid: Int32, name: ProcessName, fd: Int32, via: HoldKind = .fd) {
        self.pid = pid; self.stored = name.stored; self.fd = fd; self.via = via
        self.nameIsRaw = name.isRaw
    }

    public static func < (a: Owner, b: Owner) -> Bool { (a.pid, a.fd) < (b.pid, b.fd) }

    /// /proc/PID/comm: the kernel's 15-byte command name, as text; bytes
    /// that are not UTF-8 show as U+FFFD here (`nameBytes` has them).
    public var name: String {
        nameIsRaw ? String(decoding: nameBytes, as: UTF8.self) : stored
    }

    /// The exact bytes of the name.
    public var nameBytes: [UInt8] {
        nameIsRaw ? stored.unicodeScalars.map { UInt8(truncatingIfNeeded: $0.value) } : Array(stored.utf8)
    }

    /// The name as every text output prints it: any process may name itself
    /// "x\n1 init" or put a bidi control or a byte that is not UTF-8 in its
    /// name, so such characters and bytes are `\xNN` (Escape.bytes).
    public var escapedName: String { Escape.bytes(nameBytes) }
    /// `pid/name`, as netstat's PID/Program name column. Owners are joined
    /// with `,` there (and in messages), so a `,` in the name is `\x2c`: a
    /// process named `x,1/sshd` stays one owner.
    public var label: String { "\(pid)/\(Escape.ownerName(nameBytes))" }
    /// The name as a `--dump` field, where `:` separates fields.
    public var dumpField: String { Escape.dumpField(nameBytes) }
}

/// A process's name as read from /proc/PID/comm, every byte kept.
public struct ProcessName: Hashable, Sendable {
    fileprivate var stored: String
    fileprivate var isRaw: Bool

    public init<C: Collection>(bytes: C) where C.Element == UInt8 {
        let text = String(decoding: bytes, as: UTF8.self)
        if text.utf8.elementsEqual(bytes) {
            stored = text
            isRaw = false
        } else {
            var raw = ""
            raw.unicodeScalars.append(contentsOf: bytes.map { Unicode.Scalar($0) })
            stored = raw
            isRaw = true
        }
    }

    public init(_ text: String) {
        stored = text
        isRaw = false
    }
}

/// Who holds which socket, from every /proc/PID/fd.
public struct OwnerTable: Sendable {
    /// Socket inode → its owners, sorted by (pid, fd).
    public var byInode: [UInt64: [Owner]] = [:]
    /// pid → network namespace (nsfs inode) of the processes holding sockets.
    public var netnsByPid: [Int32: UInt64] = [:]

    /// Processes whose descriptors could not be read (EACCES: another
    /// user's process seen from a user namespace, a hardened /proc), sorted.
    public var unreadable: [Int32] = []
    /// kpeer runs in a pid namespace other than the initial one: /proc
    /// shows only that namespace's processes.
    public var partialPidView = false
    /// pid → who the process is (pid namespaces, cgroup), for the
    /// processes holding sockets; filled only when the scan is asked to
    /// (`identities: true`).
    public var identities: [Int32: ProcessIdentity] = [:]
    /// pid → how many unix sockets its io_uring rings hold as fixed files
    /// that the kernel does not name: before Linux 6.14 a ring's fdinfo
    /// prints a registered file's dentry name, which for a socket is only
    /// its protocol ("UNIX-STREAM"), not its inode.
    public var unnamedRingSockets: [Int32: Int] = [:]
    /// pid → its ring descriptors behind `unnamedRingSockets`.
    public var unnamedRings: [Int32: [UnnamedRing]] = [:]
    /// How many processes /proc listed (a bound for walks over them).
    public var processCount = 0
    /// What kernel memory said about `unnamedRings` (kcore method), for -v.
    public var ringNote: String?

    public init() {}

    public func owners(of inode: UInt64) -> [Owner] { byInode[inode] ?? [] }

    /// Does some process hold it? (No copy of its owners.)
    public func holds(_ inode: UInt64) -> Bool {
        guard let i = byInode.index(forKey: inode) else { return false }
        return !byInode.values[i].isEmpty
    }

    /// Why "no process holds it" may be untrue, or nil when the scan saw
    /// every process's descriptors.
    public var gaps: String? {
        var parts: [String] = []
        if !unreadable.isEmpty {
            let shown = unreadable.prefix(5).map(String.init).joined(separator: ",")
            parts.append("the descriptors of \(unreadable.count) process(es) could not be read (pid \(shown)\(unreadable.count > 5 ? ",…" : ""))")
        }
        if partialPidView { parts.append("kpeer runs in a pid namespace that shows only some processes") }
        return parts.isEmpty ? nil : parts.joined(separator: "; ")
    }

    /// Processes whose io_uring rings hold unix sockets this kernel does
    /// not name, or nil: any of them may hold a socket that seems unheld.
    public var ringGaps: String? {
        guard !unnamedRingSockets.isEmpty else { return nil }
        let list = unnamedRingSockets.sorted { $0.key < $1.key }.prefix(5).map { "\($0.value) in pid \($0.key)" }
        return "io_uring rings hold unix sockets this kernel does not name (\(list.joined(separator: ", "))\(unnamedRingSockets.count > 5 ? ", …" : ""); Linux 6.14 and later name them)"
    }

    /// The network namespaces of the processes holding sockets, each with
    /// its lowest pid (to reach it through), sorted by inode. The fd scan
    /// already stats every such pid's ns/net: no second walk of /proc.
    public var namespaces: [NetNamespace] { NetNamespaces.representatives(netnsByPid) }
}

/// Scans /proc for socket file descriptors. Processes and descriptors
/// vanish mid-scan all the time: anything unreadable is skipped.
///
/// The readlinks are most of kpeer's time, and all of it in the kernel, so
/// the pids are shared out between threads (one per core, at most
/// `maxThreads`), each taking the next pid from a shared counter. A thread
/// records flat (inode, pid, fd) triples into arrays of its own, with no
/// allocation per descriptor; the table is built once at the end.
public enum OwnerScan {
    /// At most this many threads scan, one per online core: the work is
    /// kernel time, and threads beyond the cores only queue.
    public static let maxThreads = 4

    /// With `identities`, each process holding a socket is also described
    /// (ProcessIdentity: NSpid, pid namespace, cgroup): three more reads per
    /// such process, so only when the output shows them. With `rings`, the
    /// fixed files of io_uring rings are read (a comparison per descriptor
    /// that is not a socket, and an fdinfo read per ring).
    public static func scan(procRoot: String = "/proc", identities: Bool = false, rings: Bool = true) -> OwnerTable {
        scan(procRoot: procRoot, threads: defaultThreads(), identities: identities, rings: rings)
    }

    /// The same with an explicit thread count (tests compare 1 and many).
    public static func scan(procRoot: String, threads: Int, identities: Bool = false, rings: Bool = true) -> OwnerTable {
        let procFD = open(procRoot, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if procFD < 0 { return OwnerTable() }
        defer { close(procFD) }
        let pids = listPids(procFD)
        let work = ScanWork(procRoot: procRoot, procFD: procFD, pids: pids, identities: identities, rings: rings)
        let n = max(1, min(threads, OwnerScan.maxThreads, pids.count / 8 + 1))
        Parallel.run(n) { work.run(slot: $0) }
        var table = work.table()
        table.processCount = pids.count
        table.partialPidView = inChildPidNamespace(procFD, isRealProc: procRoot == "/proc")
        return table
    }

    /// The initial pid namespace's nsfs inode (PROC_PID_INIT_INO, fixed
    /// since Linux 3.8).
    static let initialPidNamespace: UInt64 = 0xEFFF_FFFC

    /// Does this /proc show only part of the machine's processes? Ours is
    /// not the initial pid namespace, or /proc has no `self` (a /proc of a
    /// namespace kpeer is not in).
    static func inChildPidNamespace(_ procFD: Int32, isRealProc: Bool) -> Bool {
        var st = stat()
        guard fstatat(procFD, "self/ns/pid", &st, 0) == 0 else { return isRealProc }
        return UInt64(st.st_ino) != initialPidNamespace
    }

    public static func defaultThreads() -> Int {
        let cores = Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))
        return max(1, min(cores, maxThreads))
    }

    /// Every numeric entry of /proc.
    static func listPids(_ procFD: Int32) -> [Int32] {
        // A descriptor of its own: getdents64 moves the directory's position.
        let dirFD = openat(procFD, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dirFD < 0 { return [] }
        defer { close(dirFD) }
        var pids: [Int32] = []
        pids.reserveCapacity(1024)
        _ = DirectoryReader().forEach(dirFD, procfs: true) { name in
            if let pid = DirectoryReader.number(name) { pids.append(pid) }
            return true
        }
        return pids
    }

    /// `anon_inode:[io_uring]`, the link of a ring's descriptor.
    @inline(__always)
    static func isRing(_ link: UnsafePointer<UInt8>, _ n: Int) -> Bool {
        // "anon_ino" and "[io_urin", as little-endian words, then "g]".
        n == 21 && UnsafeRawPointer(link).loadUnaligned(as: UInt64.self) == 0x6f6e_695f_6e6f_6e61
            && UnsafeRawPointer(link + 11).loadUnaligned(as: UInt64.self) == 0x6e69_7275_5f6f_695b
            && link[19] == 0x67 && link[20] == 0x5D
    }

    /// `socket:[12345]` → 12345: the link's bytes, `n` of them.
    @inline(__always)
    static func socketInode(_ link: UnsafePointer<UInt8>, _ n: Int) -> UInt64? {
        // "socket:[" is 8 bytes: compared as one little-endian word.
        guard n > 9, UnsafeRawPointer(link).loadUnaligned(as: UInt64.self) == 0x5b3a_7465_6b63_6f73 else { return nil }
        var v: UInt64 = 0
        var i = 8
        while i < n, link[i] &- 0x30 < 10 {
            v = v &* 10 &+ UInt64(link[i] &- 0x30)
            i += 1
        }
        return (i < n && link[i] == 0x5D && i > 8) ? v : nil
    }

}

/// A process's /proc/PID/fd, open, and /proc/PID as its "..", opened only
/// when something else is read (the name and namespace of a process that
/// holds a socket, its threads, its rings). Lookups through either fail once
/// the process is gone, even if its pid is reused.
struct ProcessDirs {
    let fdDir: Int32
    private var opened: Int32?

    init(fdDir: Int32) { self.fdDir = fdDir }

    /// /proc/PID, or -1 when it can no longer be opened (the process exited).
    mutating func pidDir() -> Int32 {
        if let opened { return opened }
        let fd = openat(fdDir, "..", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        opened = fd
        return fd
    }

    func close() {
        Glibc.close(fdDir)
        if let opened, opened >= 0 { Glibc.close(opened) }
    }
}

/// One scan: the pid list, the next pid to take, and each thread's finds.
final class ScanWork: @unchecked Sendable {
    /// What one thread found. Sockets are flat triples; names and
    /// namespaces are per process.
    struct Found {
        var inodes: [UInt64] = []
        var pids: [Int32] = []
        var fds: [Int32] = []
        var procs: [(pid: Int32, name: ProcessName, netns: UInt64?)] = []
        /// Processes whose descriptors may not be read.
        var unreadable: [Int32] = []
        /// The few triples not held through the process's own table: their
        /// index in `inodes` and how they are held, in index order.
        var vias: [(at: Int, via: HoldKind)] = []
        var identities: [(pid: Int32, identity: ProcessIdentity)] = []
        var unnamedRingSockets: [(pid: Int32, count: Int)] = []
        var unnamedRings: [(pid: Int32, ring: UnnamedRing)] = []
    }

    let procRoot: String
    let procFD: Int32
    let pids: [Int32]
    /// Describe each process holding a socket (ProcessIdentity).
    let identities: Bool
    /// Read the fixed files of io_uring rings.
    let rings: Bool
    /// With `identities`: the pid namespace whose processes have one pid
    /// (ProcessIdentity.flatNamespace), read once a scan.
    let flatNamespace: UInt64?
    let next = Atomic<Int>(0)
    /// One slot per thread, each written by its own thread only (raw
    /// memory, so that no Array uniqueness check is shared between them).
    let found: UnsafeMutableBufferPointer<Found>

    init(procRoot: String, procFD: Int32, pids: [Int32], identities: Bool = false, rings: Bool = true) {
        self.procRoot = procRoot
        self.procFD = procFD
        self.pids = pids
        self.identities = identities
        self.rings = rings
        flatNamespace = identities ? ProcessIdentity.flatNamespace(procFD: procFD) : nil
        found = .allocate(capacity: OwnerScan.maxThreads)
        found.initialize(repeating: Found())
    }

    deinit {
        _ = found.deinitialize()
        found.deallocate()
    }

    func run(slot: Int) {
        var mine = Found()
        mine.inodes.reserveCapacity(4096)
        mine.pids.reserveCapacity(4096)
        mine.fds.reserveCapacity(4096)
        let link = UnsafeMutablePointer<UInt8>.allocate(capacity: 64)
        defer { link.deallocate() }
        var path = [CChar](repeating: 0, count: 32)
        let dirs = DirectoryReader()
        while true {
            let i = next.wrappingAdd(1, ordering: .relaxed).oldValue
            if i >= pids.count { break }
            scanProcess(pids[i], into: &mine, link: link, path: &path, dirs: dirs)
        }
        found[slot] = mine
    }

    /// Writes "PID/rest" as a C string into `path`.
    @inline(__always)
    static func setPath(_ path: inout [CChar], _ pid: Int32, _ rest: StaticString) {
        var digits: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        var n = 0
        var v = UInt32(bitPattern: pid)
        withUnsafeMutableBytes(of: &digits) { d in
            repeat {
                d[n] = UInt8(v % 10) + 0x30
                v /= 10
                n += 1
            } while v > 0
        }
        path.withUnsafeMutableBufferPointer { p in
            withUnsafeBytes(of: &digits) { d in
                for k in 0..<n { p[k] = CChar(bitPattern: d[n - 1 - k]) }
            }
            var at = n
            rest.withUTF8Buffer { r in
                for b in r { p[at] = CChar(bitPattern: b); at += 1 }
            }
            p[at] = 0
        }
    }

    /// Writes "task/TID/fd" as a C string into `path`.
    static func setTaskPath(_ path: inout [CChar], _ tid: Int32) {
        var at = 0
        for b in "task/".utf8 { path[at] = CChar(bitPattern: b); at += 1 }
        var digits: [CChar] = []
        var v = UInt32(bitPattern: tid)
        repeat {
            digits.append(CChar(bitPattern: UInt8(v % 10) + 0x30))
            v /= 10
        } while v > 0
        for d in digits.reversed() { path[at] = d; at += 1 }
        for b in "/fd".utf8 { path[at] = CChar(bitPattern: b); at += 1 }
        path[at] = 0
    }

    func scanProcess(_ pid: Int32, into mine: inout Found, link: UnsafeMutablePointer<UInt8>, path: inout [CChar],
                     dirs: DirectoryReader) {
        // The descriptor table first, /proc/PID/fd, opened in one step (most
        // processes, kernel threads among them, hold no socket and need
        // nothing else); what else is read goes through it (ProcessDirs),
        // so should the process exit and its pid be reused mid-scan, it
        // fails (ESRCH) instead of describing the newcomer.
        Self.setPath(&path, pid, "/fd")
        let fdDir = openat(procFD, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fdDir < 0 {
            if errno == EACCES || errno == EPERM { mine.unreadable.append(pid) }
            return
        }
        var proc = ProcessDirs(fdDir: fdDir)
        defer { proc.close() }
        let first = mine.inodes.count
        var seen = Set<UInt64>()
        var ringFDs: [(tid: Int32, fd: Int32)] = []
        if !scanFdDir(pid, fdDir, &proc, into: &mine, link: link, seen: &seen, dedupe: false, via: .fd, tid: 0, rings: &ringFDs,
                      dirs: dirs) {
            mine.unreadable.append(pid)
            return
        }
        // Descriptors /proc/PID/fd does not show: a process whose main
        // thread exited (pthread_exit) shows an empty one while its other
        // threads hold everything, and a thread that unshared its table
        // (unshare(CLONE_FILES)) holds descriptors only its own
        // /proc/PID/task/TID/fd lists. So every task of a process with more
        // than one is read too, and the tables are united (a socket is
        // recorded once per process). Single-threaded processes, the
        // common case, cost one stat more; a threaded one a kcmp(2) per
        // task, and a readlink per descriptor only for tasks whose table
        // is their own (or where kcmp cannot tell).
        if threadCount(fdDir) > 1 {
            let pidDir = proc.pidDir()
            seen = Set(mine.inodes[first...])
            // A thread-group leader that exited (pthread_exit) has no table:
            // then the first other task's table is the process's, and only
            // a task with yet another table holds sockets as a thread.
            var leaderGone: Bool?
            var standIn: Int32?
            // A task that shares the main thread's table (most do) has
            // nothing new: kcmp(KCMP_FILES) says so in one syscall.
            for tid in tasks(pidDir, dirs) where tid != pid && kp_same_files(pid, tid) != 1 {
                var via = HoldKind.thread(tid)
                if leaderGone == nil { leaderGone = Self.isExited(pidDir) }
                if leaderGone == true {
                    if let s = standIn {
                        if kp_same_files(s, tid) == 1 { continue }
                    } else {
                        standIn = tid
                        via = .fd
                    }
                }
                Self.setTaskPath(&path, tid)
                let taskDir = path.withUnsafeBufferPointer { openat(pidDir, $0.baseAddress!, O_RDONLY | O_DIRECTORY | O_CLOEXEC) }
                if taskDir < 0 { continue }
                _ = scanFdDir(pid, taskDir, &proc, into: &mine, link: link, seen: &seen, dedupe: true,
                              via: via, tid: tid, rings: &ringFDs, dirs: dirs)
                close(taskDir)
            }
        }
        if !ringFDs.isEmpty { scanRings(pid, proc.pidDir(), ringFDs, first: first, into: &mine, &proc) }
    }

    /// Is this process's main thread a zombie (/proc/PID/stat's state after
    /// the last `)`: the name before it is the process's own choice)?
    static func isExited(_ pidFD: Int32) -> Bool {
        guard let stat = ProcessIdentity.contents(pidFD, "stat"), let close = stat.lastIndex(of: 0x29),
              close + 2 < stat.count else { return false }
        return stat[close + 2] == UInt8(ascii: "Z") || stat[close + 2] == UInt8(ascii: "X")
    }

    /// The sockets the process's io_uring rings hold as fixed files that it
    /// does not also hold through a descriptor, recorded with `.ioUring`.
    func scanRings(_ pid: Int32, _ pidFD: Int32, _ ringFDs: [(tid: Int32, fd: Int32)], first: Int, into mine: inout Found,
                   _ proc: inout ProcessDirs) {
        var held = Set(mine.inodes[first...])
        var unnamed = 0
        for r in ringFDs {
            let name = r.tid == 0 ? "fdinfo/\(r.fd)" : "task/\(r.tid)/fdinfo/\(r.fd)"
            guard let info = ProcessIdentity.contents(pidFD, name) else { continue }
            let files = RingFiles.parse(info)
            unnamed += files.unnamedUnix
            if files.unnamedUnix > 0 {
                mine.unnamedRings.append((pid, UnnamedRing(fd: r.fd, tid: r.tid, registered: files.registered,
                                                           unnamedUnix: files.unnamedUnix)))
            }
            for (slot, inode) in files.sockets where held.insert(inode).inserted {
                mine.vias.append((mine.inodes.count, .ioUring(slot: slot)))
                record(inode, pid, r.fd, &proc, into: &mine)
            }
        }
        if unnamed > 0 { mine.unnamedRingSockets.append((pid, unnamed)) }
    }

    /// Threads of the process: /proc/PID/task's link count is 2 plus one
    /// per thread (one stat, no directory read), reached from /proc/PID/fd.
    /// 0 when unknown.
    func threadCount(_ fdDir: Int32) -> Int {
        var st = stat()
        guard fstatat(fdDir, "../task", &st, 0) == 0 else { return 0 }
        return Int(st.st_nlink) - 2
    }

    /// The thread ids in /proc/PID/task.
    func tasks(_ pidFD: Int32, _ dirs: DirectoryReader) -> [Int32] {
        let dirFD = openat(pidFD, "task", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dirFD < 0 { return [] }
        defer { close(dirFD) }
        var tids: [Int32] = []
        _ = dirs.forEach(dirFD, procfs: true) { name in
            if let tid = DirectoryReader.number(name) { tids.append(tid) }
            return true
        }
        return tids
    }

    /// Reads the descriptor directory `dir` of the open /proc/PID: `fd` or
    /// `task/TID/fd`. With `dedupe`, a socket already in `seen` is skipped
    /// and each new one is added. False when the directory is there but
    /// may not be read (another user's process seen from a user namespace,
    /// say): what it holds is unknown, which is not "nothing".
    /// Sockets are recorded as held `via` (a thread's own table or the
    /// process's); with `rings` on, io_uring descriptors are collected into
    /// `rings` for scanRings, with `tid` (0: the process's `fd` directory).
    @discardableResult
    func scanFdDir(_ pid: Int32, _ fdDirFD: Int32, _ proc: inout ProcessDirs, into mine: inout Found,
                   link: UnsafeMutablePointer<UInt8>, seen: inout Set<UInt64>, dedupe: Bool,
                   via: HoldKind, tid: Int32, rings ringFDs: inout [(tid: Int32, fd: Int32)], dirs: DirectoryReader) -> Bool {
        let notOwnTable = via != .fd
        var refused = false
        _ = dirs.forEach(fdDirFD, procfs: true) { name in
            // Descriptor links of sockets are DT_LNK like every other; the
            // name is the number.
            guard let fd = DirectoryReader.number(name) else { return true }
            let n = name.withMemoryRebound(to: CChar.self, capacity: 16) {
                readlinkat(fdDirFD, $0, UnsafeMutableRawPointer(link).assumingMemoryBound(to: CChar.self), 64)
            }
            // The directory may be listed (its owner's uid matches) while
            // each link is refused (no ptrace access: a user namespace).
            if n < 0 && (errno == EACCES || errno == EPERM) {
                refused = true
                return false
            }
            guard n > 9, let inode = OwnerScan.socketInode(link, n) else {
                if rings && OwnerScan.isRing(link, n) { ringFDs.append((tid, fd)) }
                return true
            }
            if dedupe, !seen.insert(inode).inserted { return true }
            if notOwnTable { mine.vias.append((mine.inodes.count, via)) }
            record(inode, pid, fd, &proc, into: &mine)
            return true
        }
        return !refused
    }

    /// One (inode, pid, fd) triple. A process's triples are contiguous and
    /// its entry in `procs` comes with the first of them.
    @inline(__always)
    func record(_ inode: UInt64, _ pid: Int32, _ fd: Int32, _ proc: inout ProcessDirs, into mine: inout Found) {
        if mine.procs.last?.pid != pid {
            let pidFD = proc.pidDir()
            // A main thread that exited shows no namespace (nil): such a
            // pid cannot stand for its namespace (/proc/PID/net/unix and
            // ns/net are gone with the main thread), so it is not offered
            // as one.
            mine.procs.append((pid, Self.processName(pidFD), Self.netns(pidFD)))
            if identities {
                mine.identities.append((pid, ProcessIdentity.read(pidFD: pidFD, pid: pid, flatNamespace: flatNamespace)))
            }
        }
        mine.inodes.append(inode)
        mine.pids.append(pid)
        mine.fds.append(fd)
    }

    /// /proc/PID/comm without its newline, every byte (a process may name
    /// itself with any but NUL), "?" when it cannot be read.
    static func processName(_ pidFD: Int32) -> ProcessName {
        let fd = openat(pidFD, "comm", O_RDONLY | O_CLOEXEC)
        if fd < 0 { return ProcessName("?") }
        defer { close(fd) }
        // comm is at most 16 bytes with its newline; a larger buffer keeps
        // any longer name whole.
        var buf = (UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0))
        return withUnsafeMutableBytes(of: &buf) { raw -> ProcessName in
            var total = 0
            while total < raw.count {
                let r = read(fd, raw.baseAddress! + total, raw.count - total)
                if r < 0 && errno == EINTR { continue }
                if r <= 0 {
                    if r < 0 && total == 0 { return ProcessName("?") }
                    break
                }
                total += r
                // comm is printed whole in one read, ending in its newline:
                // a short read that ends so is all of it (no read for EOF).
                if total < raw.count, raw[total - 1] == 0x0A { break }
            }
            if total == raw.count {
                // Longer than any comm (a test's fake /proc): the rest of it.
                var bytes = Array(raw)
                var more = [UInt8](repeating: 0, count: 4096)
                while true {
                    let r = read(fd, &more, more.count)
                    if r < 0 && errno == EINTR { continue }
                    if r <= 0 { break }
                    bytes += more[0..<r]
                }
                while let last = bytes.last, last == 0x0A || last == 0 { bytes.removeLast() }
                return ProcessName(bytes: bytes)
            }
            while total > 0, raw[total - 1] == 0x0A || raw[total - 1] == 0 { total -= 1 }
            return ProcessName(bytes: UnsafeRawBufferPointer(rebasing: raw[0..<total]))
        }
    }

    static func netns(_ pidFD: Int32) -> UInt64? {
        var st = stat()
        return fstatat(pidFD, "ns/net", &st, 0) == 0 ? UInt64(st.st_ino) : nil
    }

    /// The threads' finds as one table, each socket's owners sorted.
    func table() -> OwnerTable {
        var table = OwnerTable()
        table.byInode.reserveCapacity(found.reduce(0) { $0 + $1.inodes.count })
        table.unreadable = found.flatMap(\.unreadable).sorted()
        var shared = false
        for f in found {
            for (pid, id) in f.identities { table.identities[pid] = id }
            for (pid, n) in f.unnamedRingSockets { table.unnamedRingSockets[pid] = n }
            for (pid, r) in f.unnamedRings { table.unnamedRings[pid, default: []].append(r) }
            // A thread's triples come process by process, in the order of
            // its `procs`: the name is found by walking both together.
            var p = -1
            var name = ProcessName("?")
            var v = 0
            for k in f.inodes.indices {
                let pid = f.pids[k]
                if p < 0 || f.procs[p].pid != pid {
                    p += 1
                    name = f.procs[p].name
                    if let ns = f.procs[p].netns { table.netnsByPid[pid] = ns }
                }
                var owner = Owner(pid: pid, name: name, fd: f.fds[k])
                if v < f.vias.count && f.vias[v].at == k {
                    owner.via = f.vias[v].via
                    v += 1
                }
                Self.add(owner, to: &table.byInode[f.inodes[k], default: []], shared: &shared)
            }
        }
        // Most sockets have one owner: only the shared ones need sorting.
        if shared {
            for at in table.byInode.values.indices where table.byInode.values[at].count > 1 {
                table.byInode.values[at].sort()
            }
        }
        return table
    }

    @inline(__always)
    static func add(_ owner: Owner, to list: inout [Owner], shared: inout Bool) {
        if !list.isEmpty { shared = true }
        list.append(owner)
    }
}
