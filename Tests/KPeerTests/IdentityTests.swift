import Foundation
import Glibc
import Testing
@testable import KernelMemory
@testable import KPeerSystem
@testable import PeerResolution
@testable import SocketInventory
@testable import TypeOffsets

/// Identities that can be reused or hidden: inode numbers (a 32-bit
/// counter that wraps), pids (reused), and processes kpeer may not read.
@Suite(.layered) struct IdentityTests {
    // MARK: two live sockets with one inode

    /// sock_diag lists inode 200 twice: two sockets share the number. No
    /// link through it is believed, and both questions are refused.
    @Test func inodeTwinsInSockDiagAreRefused() {
        func diag(_ inode: UInt64, peer: UInt64) -> DiagEntry {
            var d = DiagEntry(inode: inode, rawType: 1, rawState: 1)
            d.peer = peer
            return d
        }
        let dump = [diag(100, peer: 200), diag(200, peer: 100), diag(200, peer: 300), diag(300, peer: 200),
                    diag(400, peer: 401), diag(401, peer: 400)]
        let links = NetlinkResolver.links(from: dump)
        #expect(links.ambiguous == [200])
        let entries = [100, 200, 300, 400, 401].map {
            UnixSocketEntry(address: 0, refCount: 2, flags: 0, rawType: 1, rawState: 3, inode: UInt64($0), path: nil)
        }
        let map = PeerMap(entries: entries, owners: OwnerTable(), links: links, method: .netlink)
        for asked: UInt64 in [100, 200, 300] {
            let e = errorOf { _ = try map.peerOwners(of: asked) }
            #expect(e?.kind == .refused, "inode \(asked): \(String(describing: e))")
            #expect(e?.problem.contains("more than one live socket") == true)
        }
        // The pair that shares nothing is untouched.
        #expect(map[400]?.peer == 401)
        #expect(map[100]?.peer == nil && map[300]?.peer == nil)
    }

    /// Kernel memory shows two unix_socks with inode 2 at two addresses:
    /// both rows are real, and the inode is refused.
    @Test func inodeTwinsInKernelMemoryAreRefused() throws {
        let w = SlotKernel()
        w.socket(0, inode: 1); w.socket(1, inode: 2)
        w.point(0, to: 1); w.point(1, to: 0)
        w.socket(2, inode: 2); w.socket(3, inode: 5)
        w.point(2, to: 3); w.point(3, to: 2)
        w.socket(4, inode: 7); w.socket(5, inode: 8)
        w.point(4, to: 5); w.point(5, to: 4)
        let (links, check) = try w.links()
        #expect(check.failed == 0)
        #expect(links.ambiguous == [2])
        let map = PeerMap(entries: w.entries, owners: OwnerTable(), links: links, method: .kcore)
        for asked: UInt64 in [1, 2, 5] {
            #expect(errorOf { _ = try map.peerOwners(of: asked) }?.kind == .refused, "inode \(asked)")
        }
        #expect(map[7]?.peer == 8)
    }

    /// Rows at two addresses stay; a row repeated word for word is one; rows
    /// that disagree at one address both go.
    @Test func rowsAreOnePerAddress() {
        func row(_ address: UInt64, _ inode: UInt64, state: UInt8 = 3) -> UnixSocketEntry {
            UnixSocketEntry(address: address, refCount: 2, flags: 0, rawType: 1, rawState: state, inode: inode, path: nil)
        }
        let a = row(0x1000, 9), b = row(0x2000, 9), c = row(0x3000, 4), c2 = row(0x3000, 4, state: 1)
        #expect(TrustedRows.uniqueAddresses([a, b]) == [a, b])
        #expect(TrustedRows.uniqueAddresses([a, a, b]) == [a, b])
        #expect(TrustedRows.uniqueAddresses([a, c, c2]) == [a])
    }

    // MARK: a pid reused mid-scan

    /// The owner scan reads a process's name through the /proc/PID it
    /// opened for its descriptors. Once that process is gone and its pid
    /// belongs to another, the open directory yields nothing: the newcomer's
    /// name is never put on the old process's sockets. Made real here: a
    /// child exits and its pid is handed to a new one (ns_last_pid).
    @Test(.tags(.fixture, .root)) func aReusedPidIsNotReadThroughTheOldDirectory() throws {
        let first = try Self.spawn("/bin/sleep", ["1000"])
        let pid = first.processIdentifier
        let dirFD = open("/proc/\(pid)", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        #expect(dirFD >= 0)
        defer { close(dirFD) }
        #expect(ScanWork.processName(dirFD) == ProcessName("sleep"))
        #expect(ScanWork.netns(dirFD) != nil)
        // SIGKILL: a child may inherit a blocked SIGTERM from the runner.
        kill(pid, SIGKILL)
        first.waitUntilExit()
        // Hand the same pid to a new process; others (tests running beside
        // this one) may take it first, so try until ours gets it. The fork
        // follows the write at once, and the child only pauses.
        var newcomer: pid_t = -1
        let lastPid = open("/proc/sys/kernel/ns_last_pid", O_WRONLY | O_CLOEXEC)
        try #require(lastPid >= 0)
        defer { close(lastPid) }
        let before = Array("\(pid - 1)".utf8)
        for _ in 0..<2000 {
            _ = before.withUnsafeBytes { pwrite(lastPid, $0.baseAddress, $0.count, 0) }
            let child = kp_test_fork()
            if child == 0 { while true { pause() } }
            if child == pid { newcomer = child; break }
            kill(child, SIGKILL)
            var status: Int32 = 0
            waitpid(child, &status, 0)
        }
        try #require(newcomer == pid, "pid \(pid) was never handed out again")
        defer { kill(newcomer, SIGKILL); var status: Int32 = 0; waitpid(newcomer, &status, 0) }
        // The child is named after the thread that forked it.
        #expect(Files.text("/proc/\(pid)/comm") == Files.text("/proc/thread-self/comm"))
        #expect(ScanWork.processName(dirFD) == ProcessName("?"))
        #expect(ScanWork.netns(dirFD) == nil)
    }

    static func spawn(_ path: String, _ args: [String]) throws -> Process {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: path)
        p.arguments = args
        p.standardInput = Pipe()  // cat waits on it
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        return p
    }

    // MARK: descriptors kpeer may not read

    /// From a user namespace (`unshare -r`: uid 0 there, no capability over
    /// the machine's processes) /proc/PID/fd of every other process is
    /// EACCES. The peer held by this test process is then held by nobody
    /// kpeer can see: it must say that, not that the socket is in flight.
    @Test(.tags(.binary, .fixture)) func unreadableHoldersAreNotCalledInFlight() throws {
        guard let unshare = Support.which("unshare") else { throw Support.Failure("unshare (util-linux) is missing") }
        var fds: [Int32] = [0, 0]
        #expect(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | OwnSockets.cloexec, 0, &fds) == 0)
        defer { close(fds[0]); close(fds[1]) }
        let inode = try #require(Files.identity("/proc/self/fd/\(fds[0])")?.inode)
        // As root, in the machine's namespaces: this process holds the peer.
        let plain = try Support.run(Support.kpeerBinary, ["--method", "netlink", String(inode)])
        #expect(plain.status == 0)
        #expect(plain.stdout.contains("\(getpid())"))
        let boxed = try Support.run(unshare, ["-r", Support.kpeerBinary, "--method", "netlink", String(inode)])
        #expect(boxed.status == 77, "\(boxed)")
        #expect(boxed.stdout.isEmpty)
        #expect(boxed.stderr.contains("could not be read"), "\(boxed.stderr)")
        #expect(!boxed.stderr.contains("in flight"), "\(boxed.stderr)")
    }

    /// The same holes in listings and in a listener's answer: from a user
    /// namespace every socket only other processes hold shows `-`, which
    /// the run must say (one line, and `owners_incomplete` in JSON), and a
    /// listener held by a process kpeer cannot read is not "held by no
    /// process" (77, as for an unseen peer).
    @Test(.tags(.binary, .fixture)) func unreadableHoldersInListingsAreSaid() throws {
        guard let unshare = Support.which("unshare") else { throw Support.Failure("unshare (util-linux) is missing") }
        let s = OwnSockets()
        let (a, _) = try s.pair()
        let pair = OwnSockets.inode(a)
        let name = "kpeer-\(getpid())-unseen-listener"
        let listener = OwnSockets.inode(try s.bound(Array(name.utf8), abstract: true))
        let boxed = [unshare, "-r", Support.kpeerBinary, "--method", "netlink"]
        func run(_ args: [String]) throws -> Support.Result { try Support.run(boxed[0], Array(boxed.dropFirst()) + args) }

        let all = try run(["--all"])
        #expect(all.status == 0, "\(all.stderr)")
        #expect(TableRow.rows(all.stdout)[pair]?.owners == "-", "this process's socket is unseen from the namespace")
        let dump = try run(["--dump"])
        #expect(dump.status == 0 && !dump.stdout.contains(":\(pair):"), "\(dump)")
        for r in [all, dump] {
            #expect(OwnerGaps.isNote(r.stderr) && r.stderr.contains("could not be read"), "\(r.stderr)")
        }
        let json = try run(["--json"])
        #expect(json.status == 0 && OwnerGaps.isNote(json.stderr), "\(json.stderr)")
        let doc = try CLIContractTests.json(json.stdout)
        #expect(doc["owners_incomplete"] as? Bool == true)
        #expect((doc["owners_incomplete_reason"] as? String)?.contains("could not be read") == true)
        #expect((CLIContractTests.socket(doc, pair)?["owners"] as? [Any])?.isEmpty == true)
        // As root in the machine's namespaces the same socket has its holder,
        // and the document says the lists are whole unless this machine
        // hides processes from root too.
        let plain = try CLIContractTests.json(try Support.run(Support.kpeerBinary, ["--method", "netlink", "--json"]).stdout)
        let held = (CLIContractTests.socket(plain, pair)?["owners"] as? [[String: Any]])?.compactMap { ($0["pid"] as? NSNumber)?.int32Value }
        #expect(held?.contains(getpid()) == true)
        #expect(plain["owners_incomplete"] as? Bool == OwnerGaps.hostHides)

        // The listener this process holds and no client connected to.
        for args in [["@" + name], [String(listener)], ["--json", "@" + name], ["--json", String(listener)]] {
            let r = try run(args)
            #expect(r.status == 77, "\(args): \(r)")
            #expect(r.stderr.hasPrefix("kpeer: ") && r.stderr.split(separator: "\n").count == 1, "\(args): \(r.stderr)")
            #expect(r.stderr.contains("held by no process kpeer could see") && !r.stderr.contains("held by no process has"), "\(args): \(r.stderr)")
            if args[0] == "--json" {
                #expect(try CLIContractTests.json(r.stdout)["owners_incomplete"] as? Bool == true, "\(args)")
            } else {
                #expect(r.stdout.isEmpty)
            }
        }
    }

    /// In a pid namespace of its own (`unshare -p -f --mount-proc`), /proc
    /// shows kpeer alone: this process, which holds the peer, is not seen.
    /// That is "held by no process kpeer could see" (77), not a peer in
    /// flight; and a listing there says its owners are incomplete.
    @Test(.tags(.binary, .fixture, .root), .enabled(if: getuid() == 0, "a pid namespace needs root"))
    func aPidNamespaceViewIsNotInFlight() throws {
        guard let unshare = Support.which("unshare") else { throw Support.Failure("unshare (util-linux) is missing") }
        let s = OwnSockets()
        let (a, _) = try s.pair()
        let inode = OwnSockets.inode(a)
        let boxed = ["-p", "-f", "--mount-proc", Support.kpeerBinary]
        let r = try Support.run(unshare, boxed + [String(inode)])
        #expect(r.status == 77, "\(r)")
        #expect(r.stdout.isEmpty)
        #expect(r.stderr.hasPrefix("kpeer: ") && r.stderr.split(separator: "\n").count == 1, "\(r.stderr)")
        #expect(r.stderr.contains("pid namespace") && r.stderr.contains("could see"), "\(r.stderr)")
        #expect(!r.stderr.contains("in flight"), "\(r.stderr)")
        let all = try Support.run(unshare, boxed + ["--all"])
        #expect(all.status == 0, "\(all.stderr)")
        #expect(TableRow.rows(all.stdout)[inode]?.owners == "-")
        #expect(OwnerGaps.isNote(all.stderr) && all.stderr.contains("pid namespace"), "\(all.stderr)")
    }
}

/// fork(2): Glibc's module marks it unavailable in Swift. The child here
/// only pauses (async-signal-safe) until it is killed.
@_silgen_name("fork")
private func kp_test_fork() -> pid_t
