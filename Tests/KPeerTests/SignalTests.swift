import CKPeer
import Foundation
import Testing
@testable import KPeerSystem

/// Signals while kpeer holds kernel.kptr_restrict raised: the C guard must
/// put it back to 0 before kpeer dies of the signal, and runs take turns.
/// kpeer has no hook to hold it raised: Tests/Reliability/churn_check.c
/// (`signal` mode, built here) runs kpeer under ptrace and stops it at the
/// first system call after it wrote 1, then detaches delivering the signal
/// (or, with -w, keeps it stopped until told). The sysctl itself is the
/// independent truth. Needs root and a writable kptr_restrict at 0 (the
/// VM's x_signal_* runs cover /proc/kcore with the same program).
@Suite(.serialized, .tags(.binary, .root), .layered) struct SignalTests {
    static let sysctl = "/proc/sys/kernel/kptr_restrict"
    static let lock = "/run/kpeer-kptr.lock"

    static func kptr() -> String? {
        (try? String(contentsOfFile: sysctl, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    static func setKptr(_ v: String) {
        try? "\(v)\n".write(toFile: sysctl, atomically: false, encoding: .utf8)
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

    /// churn_check, built from Tests/Reliability/churn_check.c.
    static let churnCheck: String? = {
        let out = Support.tempDir() + "/churn_check"
        do {
            try Support.gcc([Support.packageRoot + "/Tests/Reliability/churn_check.c"], output: out, flags: ["-O2", "-Wall"])
        } catch {
            return nil
        }
        return out
    }()

    /// Yama's ptrace_scope 3 forbids ptrace outright.
    static var ptraceAllowed: Bool {
        (try? String(contentsOfFile: "/proc/sys/kernel/yama/ptrace_scope", encoding: .utf8))?
            .trimmingCharacters(in: .whitespacesAndNewlines) != "3"
    }

    static var usable: Bool {
        getuid() == 0 && kptr() == "0" && access(sysctl, W_OK) == 0
    }

    static var traceable: Bool { usable && ptraceAllowed && churnCheck != nil }

    /// A synthetic core, so kpeer reaches /proc/net/unix without /proc/kcore;
    /// it is not this machine's, so a run that gets through ends with 69.
    static func coreArgs() throws -> [String] {
        let core = SyntheticCore()
        core.add(vaddr: 0xffff_8880_0400_0000, size: 4096)
        let path = try core.write()
        chmod((path as NSString).deletingLastPathComponent, 0o755)
        chmod(path, 0o644)
        return ["--kcore", path, "--offset", "776", "--all"]
    }

    /// Starts kpeer with every signal at its default and none blocked,
    /// whatever the test runner's thread has (Process does not promise it).
    static func spawn(_ args: [String], env: [String: String], stderr: String = "/dev/null") throws -> pid_t {
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
        posix_spawn_file_actions_addopen(&actions, 2, stderr, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        let argv = ([Support.kpeerBinary] + args).map { strdup($0) } + [nil]
        let envp = env.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { (argv + envp).forEach { free($0) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, Support.kpeerBinary, &actions, &attr, argv, envp)
        guard rc == 0 else { throw Support.Failure("posix_spawn: \(rc)") }
        return pid
    }

    /// Polls until `pid` ends, at most `seconds`: its wait status, or nil.
    static func reap(_ pid: pid_t, within seconds: Double) -> Int32? {
        var status: Int32 = 0
        for _ in 0..<Int(seconds * 100) {
            if waitpid(pid, &status, WNOHANG) == pid { return status }
            usleep(10_000)
        }
        return nil
    }

    /// `churn_check signal -w SIG kpeer ARGS`: kpeer stopped (ptrace) right
    /// after it raised kptr_restrict, until `release()`.
    final class HeldRun {
        let process = Process()
        let input = Pipe()
        let output = Pipe()
        /// kpeer's pid, 0 if it never got there.
        var pid: Int32 = 0
        var line = ""

        init(_ sig: Int32, _ args: [String]) throws {
            process.executableURL = URL(fileURLWithPath: SignalTests.churnCheck!)
            process.arguments = ["signal", "-w", String(sig), Support.kpeerBinary] + args
            process.standardInput = input
            process.standardOutput = output
            try process.run()
            // Our ends stay ours: a kpeer spawned meanwhile must not hold
            // churn_check's stdin open (or its stdout).
            for h in [input.fileHandleForWriting, output.fileHandleForReading] {
                _ = fcntl(h.fileDescriptor, F_SETFD, FD_CLOEXEC)
            }
            line = Self.readLine(output)
            if line.hasPrefix("raised "), let p = Int32(line.dropFirst(7).trimmingCharacters(in: .whitespacesAndNewlines)) {
                pid = p
            }
        }

        static func readLine(_ pipe: Pipe) -> String {
            var text = ""
            while !text.hasSuffix("\n") {
                let chunk = pipe.fileHandleForReading.availableData
                if chunk.isEmpty { break }
                text += String(decoding: chunk, as: UTF8.self)
            }
            return text
        }

        /// Lets kpeer go with the signal; churn_check's verdict (0: died of
        /// it) and its report line.
        func release() -> (status: Int32, report: String) {
            try? input.fileHandleForWriting.write(contentsOf: Data("\n".utf8))
            try? input.fileHandleForWriting.close()
            let report = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            process.waitUntilExit()
            return (process.terminationStatus, report)
        }

        deinit {
            if process.isRunning { _ = release() }
        }
    }

    // MARK: a signal while raised

    @Test(.enabled(if: SignalTests.traceable, "needs root, kernel.kptr_restrict=0 writable, ptrace and gcc"),
          arguments: [SIGINT, SIGTERM, SIGHUP, SIGALRM, SIGUSR1, SIGXFSZ, 40 /* a real-time signal */])
    func aSignalWhileRaisedRestoresKptrRestrict(_ sig: Int32) throws {
        try Self.exclusively { try aSignalWhileRaisedRestoresKptrRestrictLocked(sig) }
    }

    func aSignalWhileRaisedRestoresKptrRestrictLocked(_ sig: Int32) throws {
        defer { if Self.kptr() != "0" { Self.setKptr("0") } }
        let r = try Support.run(Self.churnCheck!, ["signal", String(sig), Support.kpeerBinary] + Self.coreArgs())
        // churn_check: kpeer died of that very signal, kptr_restrict 0 after.
        #expect(r.status == 0, "\(r.stdout) \(r.stderr)")
        #expect(r.stdout.contains("died of it, kptr_restrict 0 afterwards"), "\(r.stdout) \(r.stderr)")
        #expect(Self.kptr() == "0")
    }

    /// An administrator who sets kptr_restrict while kpeer has it raised
    /// keeps that value: the guard puts 0 back only over its own 1.
    @Test(.enabled(if: SignalTests.traceable, "needs root, kernel.kptr_restrict=0 writable, ptrace and gcc"))
    func aSignalLeavesAnAdministratorsValue() throws {
        try Self.exclusively { try aSignalLeavesAnAdministratorsValueLocked() }
    }

    func aSignalLeavesAnAdministratorsValueLocked() throws {
        defer { if Self.kptr() != "0" { Self.setKptr("0") } }
        let held = try HeldRun(SIGTERM, try Self.coreArgs())
        try #require(held.pid > 0, "kpeer never raised kptr_restrict: \(held.line)")
        #expect(Self.kptr() == "1")
        Self.setKptr("2")
        let (status, report) = held.release()
        #expect(status == 0, "\(report)")  // died of SIGTERM
        #expect(Self.kptr() == "2", "\(report)")
    }

    // MARK: no test hook in the product

    /// The old hook (KPEER_TEST_HOLD_KPTR=N: sleep N s with kptr_restrict
    /// raised and the lock held) is gone: not in the binary, and setting it
    /// delays nothing.
    /// In the binary beside the tests and in the shipped static one.
    @Test func theHoldHookIsNotInTheBinary() throws {
        for binary in BacktraceTests.binaries {
            let bytes = try #require(FileManager.default.contents(atPath: binary))
            #expect(bytes.range(of: Data("KPEER_TEST_HOLD_KPTR".utf8)) == nil, "\(binary)")
        }
    }

    @Test(.enabled(if: SignalTests.usable, "needs root and kernel.kptr_restrict=0, writable"))
    func theHoldHookDelaysNothing() throws {
        try Self.exclusively { try theHoldHookDelaysNothingLocked() }
    }

    func theHoldHookDelaysNothingLocked() throws {
        defer { if Self.kptr() != "0" { Self.setKptr("0") } }
        // The old hook would hold for a day; a run that honours nothing ends
        // as any run does (120 s is only a hang detector).
        let env = ProcessInfo.processInfo.environment.merging(["KPEER_TEST_HOLD_KPTR": "86400"]) { $1 }
        let pid = try Self.spawn(try Self.coreArgs(), env: env)
        let status = Self.reap(pid, within: 120)
        if status == nil { kill(pid, SIGKILL); _ = Self.reap(pid, within: 10) }
        #expect(status.map { $0 >> 8 & 0xff } == 69, "wait status \(status.map(String.init) ?? "none: still running after 120 s")")
        #expect(Self.kptr() == "0")
    }

    // MARK: plain runs

    /// As nobody kpeer stops before it would touch kptr_restrict: one line, 77.
    @Test(.enabled(if: SignalTests.usable, "needs root and kernel.kptr_restrict=0, writable"))
    func nobodyCannotRaiseKptrRestrict() throws {
        try Self.exclusively { try nobodyCannotRaiseKptrRestrictLocked() }
    }

    func nobodyCannotRaiseKptrRestrictLocked() throws {
        let r = try Support.run(try #require(Support.which("setpriv")), BadInputTests.asNobody + Self.coreArgs())
        BadInputTests.expectOneLine(r, status: 77, mentions: ["root"], "nobody: --kcore FILE")
        #expect(Self.kptr() == "0")
    }

    /// The core is valid but not this machine's: one line, status 69, and
    /// kptr_restrict back at 0.
    @Test(.enabled(if: SignalTests.usable, "needs root and kernel.kptr_restrict=0, writable"))
    func aCoreOfAnotherMachineIsUnavailableAndRestores() throws {
        try Self.exclusively { try aCoreOfAnotherMachineIsUnavailableAndRestoresLocked() }
    }

    func aCoreOfAnotherMachineIsUnavailableAndRestoresLocked() throws {
        let r = try Support.run(Support.kpeerBinary, try Self.coreArgs())
        BadInputTests.expectOneLine(r, status: 69, mentions: ["outside kernel memory"], "--kcore of another machine")
        #expect(Self.kptr() == "0")
    }

    // MARK: runs take turns

    /// Two runs at once: while one holds kptr_restrict raised (stopped
    /// there), a second one waits for it (a lock in /run) instead of reading
    /// along and seeing the addresses hashed again the moment the first
    /// restores.
    @Test(.enabled(if: SignalTests.traceable && FileManager.default.fileExists(atPath: "/run"),
                   "needs root, kernel.kptr_restrict=0 writable, ptrace, gcc and /run"))
    func aSecondRunWaitsForTheFirst() throws {
        try Self.exclusively { try aSecondRunWaitsForTheFirstLocked() }
    }

    func aSecondRunWaitsForTheFirstLocked() throws {
        let args = try Self.coreArgs()
        var second: pid_t = 0
        defer {
            if second > 0 { kill(second, SIGKILL); _ = Self.reap(second, within: 10) }
            if Self.kptr() != "0" { Self.setKptr("0") }
        }
        let first = try HeldRun(SIGTERM, args)
        try #require(first.pid > 0, "the first run never raised kptr_restrict: \(first.line)")
        let errPath = Support.tempDir() + "/second.err"
        second = try Self.spawn(args, env: ProcessInfo.processInfo.environment, stderr: errPath)
        usleep(500_000)
        var status: Int32 = 0
        #expect(waitpid(second, &status, WNOHANG) == 0, "the second run did not wait for the first")
        let (verdict, report) = first.release()
        #expect(verdict == 0, "\(report)")  // the first died of SIGTERM
        // Then the second runs on its own: raises, reads, restores, and
        // answers as a lone run does (not "another kpeer ...").
        let done = Self.reap(second, within: 120)
        if done != nil { second = 0 }
        #expect(done.map { $0 >> 8 & 0xff } == 69, "wait status \(done.map(String.init) ?? "none")")
        let err = Self.contents(errPath)
        #expect(err.contains("outside kernel memory"), "\(err)")
        #expect(Self.kptr() == "0")
    }

    /// The wait is bounded: a first run that keeps the lock (stopped, here)
    /// makes the second give up after KP_KPTR_LOCK_WAIT_MS with one line
    /// that names it, instead of hanging.
    @Test(.enabled(if: SignalTests.traceable && FileManager.default.fileExists(atPath: "/run"),
                   "needs root, kernel.kptr_restrict=0 writable, ptrace, gcc and /run"))
    func aSecondRunGivesUpOnAStuckFirst() throws {
        try Self.exclusively { try aSecondRunGivesUpOnAStuckFirstLocked() }
    }

    func aSecondRunGivesUpOnAStuckFirstLocked() throws {
        defer { if Self.kptr() != "0" { Self.setKptr("0") } }
        let args = try Self.coreArgs()
        let first = try HeldRun(SIGTERM, args)
        try #require(first.pid > 0, "the first run never raised kptr_restrict: \(first.line)")
        let errPath = Support.tempDir() + "/second.err"
        let start = Date()
        let second = try Self.spawn(args, env: ProcessInfo.processInfo.environment, stderr: errPath)
        // At most 10 s of waiting, then the answer (polled up to 30 s).
        let done = Self.reap(second, within: 120)
        let took = Date().timeIntervalSince(start)
        if done == nil { kill(second, SIGKILL); _ = Self.reap(second, within: 10) }
        _ = first.release()
        #expect(done.map { $0 >> 8 & 0xff } == 69, "wait status \(done.map(String.init) ?? "none: still waiting after 120 s (hung)")")
        let err = (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? ""
        BadInputTests.expectOneLine(Support.Result(status: 69, stdout: "", stderr: err), status: 69,
                                    mentions: ["another kpeer (pid \(first.pid))", Self.lock, "kill \(first.pid)"], "a stuck first run")
        // It waited out the bound before giving up (how much longer it took
        // is the machine's business: status 69 already says it gave up).
        #expect(took >= Double(KP_KPTR_LOCK_WAIT_MS) / 1000 - 0.5, "took \(took) s")
        #expect(Self.kptr() == "0")
    }

    // MARK: the C guard on files of the test's own (kp_kptr_set_path)

    /// Points the guard at a sysctl file and a lock file of the test's own
    /// for `body`, then back at the real ones. (The paths are kept, not
    /// copied, by the C side: strdup'ed and left.)
    static func withGuardFiles<T>(value: String, lockMode: mode_t? = 0o600, _ body: (_ file: String, _ lock: String) throws -> T) throws -> T {
        let dir = Support.tempDir()
        let file = dir + "/kptr_restrict", lockFile = dir + "/kpeer-kptr.lock"
        try "\(value)\n".write(toFile: file, atomically: false, encoding: .utf8)
        if let lockMode {
            close(open(lockFile, O_RDWR | O_CREAT, 0o600))
            chmod(lockFile, lockMode)
        }
        kp_kptr_set_path(strdup(file))
        kp_kptr_set_lock_path(strdup(lockFile))
        defer {
            kp_kptr_set_path(strdup(sysctl))
            kp_kptr_set_lock_path(strdup(lock))
            try? FileManager.default.removeItem(atPath: dir)
        }
        return try body(file, lockFile)
    }

    static func contents(_ path: String) -> String {
        ((try? String(contentsOfFile: path, encoding: .utf8)) ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// kp_kptr_restore puts 0 back over its own 1, and leaves any other
    /// value set meanwhile.
    @Test(.enabled(if: getuid() == 0, "the lock file must be root's"))
    func theRestoreLeavesAnAdministratorsValue() throws {
        try Self.withGuardFiles(value: "0") { file, _ in
            var previous: Int32 = -1
            #expect(kp_kptr_raise(&previous) == 0)
            #expect(previous == 0 && Self.contents(file) == "1")
            #expect(kp_kptr_restore() == 0)
            #expect(Self.contents(file) == "0")  // its own 1: put back

            #expect(kp_kptr_raise(&previous) == 0)
            #expect(Self.contents(file) == "1")
            try "2\n".write(toFile: file, atomically: false, encoding: .utf8)  // the administrator
            #expect(kp_kptr_restore() == 0)
            #expect(Self.contents(file) == "2")
        }
    }

    /// A lock file kpeer may not trust (others may write it, it is not
    /// root's, not a regular file, or a link) is refused with one line that
    /// says what to do; kptr_restrict is not touched.
    @Test(.enabled(if: getuid() == 0, "needs root to make root's and others' files"),
          arguments: ["group-writable", "world-writable", "nobody's", "symlink", "directory", "fifo", "hard link"])
    func anUntrustedLockFileIsRefused(_ kind: String) throws {
        try Self.withGuardFiles(value: "0", lockMode: nil) { file, lock in
            let dir = (lock as NSString).deletingLastPathComponent
            switch kind {
            case "group-writable", "world-writable", "nobody's":
                close(open(lock, O_RDWR | O_CREAT, 0o600))
                chmod(lock, kind == "group-writable" ? 0o620 : kind == "world-writable" ? 0o606 : 0o600)
                if kind == "nobody's" { chown(lock, 65534, 65534) }
            case "symlink":
                close(open(dir + "/elsewhere", O_RDWR | O_CREAT, 0o600))
                symlink(dir + "/elsewhere", lock)
            case "directory":
                mkdir(lock, 0o700)
            case "fifo":
                mkfifo(lock, 0o600)
            default:  // a second name of another root file
                close(open(dir + "/elsewhere", O_RDWR | O_CREAT, 0o600))
                link(dir + "/elsewhere", lock)
            }
            var previous: Int32 = -1
            #expect(kp_kptr_raise(&previous) == Int32(KP_KPTR_BADLOCK), "\(kind)")
            #expect(Self.contents(file) == "0", "\(kind)")
            do throws(KPeerError) {
                _ = try KptrRestrict.withAddressesVisible { () throws(KPeerError) in 0 }
                Issue.record("\(kind): used")
            } catch {
                #expect(error.kind == .unavailable && error.exitStatus == 69)
                #expect(!error.description.contains("\n") && error.description.contains("rm \(lock)"), "\(error)")
            }
            kp_kptr_restore()
        }
    }

    /// The lock file of a run: root's, 0600, with the holder's pid while
    /// held, empty after.
    @Test(.enabled(if: getuid() == 0, "the lock file must be root's"))
    func theHolderWritesItsPid() throws {
        try Self.withGuardFiles(value: "0", lockMode: nil) { file, lock in
            var previous: Int32 = -1
            #expect(kp_kptr_raise(&previous) == 0)
            #expect(Self.contents(lock) == String(getpid()))
            var st = stat()
            #expect(stat(lock, &st) == 0 && st.st_mode & 0o777 == 0o600 && st.st_uid == 0)
            #expect(kp_kptr_restore() == 0)
            #expect(Self.contents(file) == "0")
            #expect(Self.contents(lock) == "")
        }
    }

    /// A held lock: kp_kptr_raise gives up after the wait (shortened here)
    /// and names the holder only if the pid in the file is a live process;
    /// kptr_restrict is not touched. What the file says after a holder was
    /// killed (its pid, now dead) or never wrote is "another kpeer".
    @Test(.enabled(if: getuid() == 0, "the lock file must be root's"),
          arguments: ["live", "dead", "none", "garbage"])
    func aHeldLockIsWaitedForBoundedly(_ content: String) throws {
        kp_kptr_set_lock_wait(300)
        defer { kp_kptr_set_lock_wait(0) }
        try Self.withGuardFiles(value: "0") { file, lock in
            // The holder: another open file description, flocked.
            let fd = open(lock, O_RDWR | O_CLOEXEC)
            try #require(fd >= 0 && flock(fd, LOCK_EX) == 0)
            defer { close(fd) }
            var dead: pid_t = 0
            if content == "dead" {
                let p = Process()
                p.executableURL = URL(fileURLWithPath: "/bin/true")
                try p.run()
                p.waitUntilExit()
                dead = p.processIdentifier
            }
            let text = ["live": "\(getpid())\n", "dead": "\(dead)\n", "none": "", "garbage": "12x\n"][content]!
            try text.write(toFile: lock, atomically: false, encoding: .utf8)
            let start = Date()
            var previous: Int32 = -1
            #expect(kp_kptr_raise(&previous) == Int32(KP_KPTR_BUSY))
            let took = Date().timeIntervalSince(start)
            #expect(took >= 0.25, "took \(took) s")  // it waited the bound out
            #expect(kp_kptr_lock_holder() == (content == "live" ? getpid() : 0))
            #expect(Self.contents(file) == "0")
            let error = KptrRestrict.lockError(Int32(KP_KPTR_BUSY))
            #expect(error.exitStatus == 69 && !error.description.contains("\n"))
            #expect(error.description.contains(content == "live" ? "another kpeer (pid \(getpid())) has held \(lock) for 300 ms"
                                                                 : "another kpeer has held \(lock) for 300 ms"), "\(error)")
        }
    }
}
