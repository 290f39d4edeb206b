import Foundation
import Testing

/// SIGINT and SIGTERM while kpeer holds kernel.kptr_restrict raised: the C
/// guard must put it back to 0 before kpeer dies of the signal. The test hook
/// KPEER_TEST_HOLD_KPTR (Sources/CKPeer/kptr.c) keeps it raised long enough
/// to aim; the sysctl itself is the independent truth. Needs root and a
/// writable kptr_restrict at 0 (the VM's x_signal_* runs cover /proc/kcore).
@Suite(.serialized) struct SignalTests {
    static let sysctl = "/proc/sys/kernel/kptr_restrict"

    static func kptr() -> String? {
        (try? String(contentsOfFile: sysctl, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// kptr_restrict is one per machine: test runs of other checkouts (or
    /// other users) on this machine take turns through this lock.
    static func exclusively<T>(_ body: () throws -> T) throws -> T {
        let fd = open("/tmp/kpeer-kptr-restrict.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0o666)
        guard fd >= 0 else { throw Support.Failure("cannot open the kptr_restrict lock") }
        defer { close(fd) }
        flock(fd, LOCK_EX)
        return try body()
    }

    static var usable: Bool {
        getuid() == 0 && kptr() == "0" && access(sysctl, W_OK) == 0
    }

    /// Starts kpeer with every signal at its default and none blocked,
    /// whatever the test runner's thread has (Process does not promise it).
    static func spawn(_ args: [String], env: [String: String]) throws -> pid_t {
        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        var none = sigset_t(), all = sigset_t()
        sigemptyset(&none)
        sigfillset(&all)
        posix_spawnattr_setsigmask(&attr, &none)
        posix_spawnattr_setsigdefault(&attr, &all)
        posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        let argv = ([Support.kpeerBinary] + args).map { strdup($0) } + [nil]
        let envp = env.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { (argv + envp).forEach { free($0) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, Support.kpeerBinary, &actions, &attr, argv, envp)
        guard rc == 0 else { throw Support.Failure("posix_spawn: \(rc)") }
        return pid
    }

    @Test(.enabled(if: SignalTests.usable, "needs root and kernel.kptr_restrict=0, writable"),
          arguments: [SIGINT, SIGTERM, SIGHUP, SIGALRM, SIGUSR1, SIGXFSZ, 40 /* a real-time signal */])
    func aSignalWhileRaisedRestoresKptrRestrict(_ sig: Int32) throws {
        try Self.exclusively { try aSignalWhileRaisedRestoresKptrRestrictLocked(sig) }
    }

    func aSignalWhileRaisedRestoresKptrRestrictLocked(_ sig: Int32) throws {
        // A synthetic core, so kpeer reaches /proc/net/unix without /proc/kcore.
        let core = SyntheticCore()
        core.add(vaddr: 0xffff_8880_0400_0000, size: 4096)
        let path = try core.write()
        let env = ProcessInfo.processInfo.environment.merging(["KPEER_TEST_HOLD_KPTR": "30"]) { $1 }
        let pid = try Self.spawn(["--kcore", path, "--offset", "776", "--all"], env: env)
        var status: Int32 = 0
        var reaped = false
        // Whatever happens, the machine gets its 0 back.
        defer {
            if !reaped { kill(pid, SIGKILL); waitpid(pid, &status, 0) }
            if Self.kptr() != "0" { try? "0\n".write(toFile: Self.sysctl, atomically: false, encoding: .utf8) }
        }
        var seen = false
        for _ in 0..<1000 {
            if Self.kptr() == "1" { seen = true; break }
            if waitpid(pid, &status, WNOHANG) == pid { reaped = true; break }
            usleep(10_000)
        }
        try #require(seen, "kpeer never raised kptr_restrict (status \(status))")
        kill(pid, sig)
        waitpid(pid, &status, 0)
        reaped = true
        // Died of that very signal (WIFSIGNALED, WTERMSIG), after the restore.
        #expect(status & 0x7f == sig, "wait status \(status)")
        #expect(Self.kptr() == "0")
    }

    /// As nobody kpeer stops before it would touch kptr_restrict: one line, 77.
    @Test(.enabled(if: SignalTests.usable, "needs root and kernel.kptr_restrict=0, writable"))
    func nobodyCannotRaiseKptrRestrict() throws {
        try Self.exclusively { try nobodyCannotRaiseKptrRestrictLocked() }
    }

    func nobodyCannotRaiseKptrRestrictLocked() throws {
        let core = SyntheticCore()
        core.add(vaddr: 0xffff_8880_0400_0000, size: 4096)
        let path = try core.write()
        chmod((path as NSString).deletingLastPathComponent, 0o755)
        chmod(path, 0o644)
        let r = try Support.run(try #require(Support.which("setpriv")),
                                BadInputTests.asNobody + ["--kcore", path, "--offset", "776", "--all"])
        BadInputTests.expectOneLine(r, status: 77, mentions: ["root"], "nobody: --kcore FILE")
        #expect(Self.kptr() == "0")
    }

    /// Without a signal the hook only delays: kpeer finishes and restores.
    /// The core is valid but not this machine's: one line, status 69.
    @Test(.enabled(if: SignalTests.usable, "needs root and kernel.kptr_restrict=0, writable"))
    func aCoreOfAnotherMachineIsUnavailableAndRestores() throws {
        try Self.exclusively { try aCoreOfAnotherMachineIsUnavailableAndRestoresLocked() }
    }

    func aCoreOfAnotherMachineIsUnavailableAndRestoresLocked() throws {
        let core = SyntheticCore()
        core.add(vaddr: 0xffff_8880_0400_0000, size: 4096)
        let env = ProcessInfo.processInfo.environment.merging(["KPEER_TEST_HOLD_KPTR": "1"]) { $1 }
        let r = try Support.run(Support.kpeerBinary, ["--kcore", try core.write(), "--offset", "776", "--all"], environment: env)
        BadInputTests.expectOneLine(r, status: 69, mentions: ["outside kernel memory"], "--kcore of another machine")
        #expect(Self.kptr() == "0")
    }

    /// Two runs at once: while one holds kptr_restrict raised, a second one
    /// waits for it (a lock in /run) instead of reading along and seeing
    /// the addresses hashed again the moment the first restores.
    @Test(.enabled(if: SignalTests.usable && FileManager.default.fileExists(atPath: "/run"),
                   "needs root, kernel.kptr_restrict=0 writable, and /run"))
    func aSecondRunWaitsForTheFirst() throws {
        try Self.exclusively { try aSecondRunWaitsForTheFirstLocked() }
    }

    func aSecondRunWaitsForTheFirstLocked() throws {
        let core = SyntheticCore()
        core.add(vaddr: 0xffff_8880_0400_0000, size: 4096)
        let path = try core.write()
        let args = ["--kcore", path, "--offset", "776", "--all"]
        let env = ProcessInfo.processInfo.environment
        let first = try Self.spawn(args, env: env.merging(["KPEER_TEST_HOLD_KPTR": "30"]) { $1 })
        var status: Int32 = 0
        var second: pid_t = 0
        defer {
            kill(first, SIGKILL); waitpid(first, &status, 0)
            if second > 0 { kill(second, SIGKILL); waitpid(second, &status, 0) }
            if Self.kptr() != "0" { try? "0\n".write(toFile: Self.sysctl, atomically: false, encoding: .utf8) }
        }
        var seen = false
        for _ in 0..<1000 where !seen {
            seen = Self.kptr() == "1"
            if !seen { usleep(10_000) }
        }
        try #require(seen, "the first run never raised kptr_restrict")
        second = try Self.spawn(args, env: env)
        usleep(500_000)
        #expect(waitpid(second, &status, WNOHANG) == 0, "the second run did not wait for the first")
        kill(first, SIGTERM)
        waitpid(first, &status, 0)
        // Then the second runs on its own: raises, reads, restores.
        #expect(waitpid(second, &status, 0) == second)
        second = 0
        #expect(status >> 8 & 0xff == 69, "wait status \(status)")
        #expect(Self.kptr() == "0")
    }
}
