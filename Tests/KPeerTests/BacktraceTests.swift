import Foundation
import Testing

/// kpeer runs as root, and a Swift program runs the crash backtracer its
/// environment names (SWIFT_BACKTRACE=swift-backtrace=PATH, or one under
/// SWIFT_ROOT) on SIGQUIT, SIGSEGV and the other crash signals. kpeer must
/// never run it: it clears every SWIFT_* before the runtime reads them (the
/// startup code at the top of Sources/kpeer/KPeerCommand.swift), and then
/// dies of the signal like of any other.
///
/// kpeer is caught mid-run, blocked writing `--all` into a pipe nobody
/// reads, then signalled; the "backtracer" would leave a marker file.
/// The binary beside the tests is checked, and the static product too when
/// KPEER_STATIC_BIN names it (swift build -c release --static-swift-stdlib
/// -Xswiftc -static-executable ...): there the runtime is linked in and its
/// initializer order differs.
@Suite(.serialized, .tags(.binary), .layered) struct BacktraceTests {
    static var binaries: [String] {
        var list = [Support.kpeerBinary]
        if let s = ProcessInfo.processInfo.environment["KPEER_STATIC_BIN"], FileManager.default.isExecutableFile(atPath: s) {
            list.append(s)
        }
        return list
    }

    enum Vector: String, CaseIterable, CustomTestStringConvertible {
        /// SWIFT_BACKTRACE=enable=yes,swift-backtrace=DIR/evil.sh
        case backtracePath
        /// SWIFT_ROOT=DIR, where the runtime looks for swift-backtrace(-static)
        case swiftRoot

        var testDescription: String { rawValue }

        func environment(_ dir: String) -> [String: String] {
            switch self {
            case .backtracePath:
                ["SWIFT_BACKTRACE": "enable=yes,swift-backtrace=\(dir)/evil.sh"]
            case .swiftRoot:
                ["SWIFT_ROOT": dir + "/root", "SWIFT_BACKTRACE": "enable=yes"]
            }
        }
    }

    /// A shell script that leaves `marker` when run, placed where both
    /// vectors would find it.
    static func plantEvil(_ dir: String) throws {
        let script = "#!/bin/sh\ntouch \(dir)/marker\n"
        var paths = [dir + "/evil.sh"]
        for sub in ["/root/libexec/swift/linux", "/root/libexec/swift", "/root/bin", "/root"] {
            try FileManager.default.createDirectory(atPath: dir + sub, withIntermediateDirectories: true)
            paths += [dir + sub + "/swift-backtrace", dir + sub + "/swift-backtrace-static"]
        }
        for p in paths {
            try script.write(toFile: p, atomically: false, encoding: .utf8)
            chmod(p, 0o755)
        }
        chmod(dir, 0o755)
    }

    /// Starts `binary` with every signal at its default and unblocked, its
    /// stdout `out`, its stderr the file `err`.
    static func spawn(_ binary: String, _ args: [String], env: [String: String], out: Int32, err: String) throws -> pid_t {
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
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, out, 1)
        posix_spawn_file_actions_addopen(&actions, 2, err, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        let argv = ([binary] + args).map { strdup($0) } + [nil]
        let envp = env.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { (argv + envp).forEach { free($0) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, binary, &actions, &attr, argv, envp)
        guard rc == 0 else { throw Support.Failure("posix_spawn \(binary): \(rc)") }
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

    static func environ(of pid: pid_t) -> [String] {
        guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/environ") else { return [] }
        return data.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
    }

    @Test(.tags(.root), .enabled(if: getuid() == 0, "kpeer --all needs root"),
          arguments: BacktraceTests.binaries, [(Vector.backtracePath, SIGQUIT), (.backtracePath, SIGSEGV),
                                               (.swiftRoot, SIGQUIT), (.swiftRoot, SIGSEGV)])
    func aCrashSignalRunsNoBacktracerNamedByTheEnvironment(_ binary: String, _ c: (Vector, Int32)) throws {
        let (vector, sig) = c
        let dir = Support.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try Self.plantEvil(dir)
        let marker = dir + "/marker"

        // Enough sockets that `--all` overflows a one-page pipe.
        var pairs: [Int32] = []
        defer { pairs.forEach { close($0) } }
        for _ in 0..<200 {
            var sv: [Int32] = [-1, -1]
            guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | OwnSockets.cloexec, 0, &sv) == 0 else { break }
            pairs += sv
        }
        var fds: [Int32] = [-1, -1]
        try #require(pipe(&fds) == 0)
        defer { close(fds[0]) }
        _ = fcntl(fds[0], F_SETFD, FD_CLOEXEC)
        _ = fcntl(fds[1], F_SETFD, FD_CLOEXEC)
        let F_SETPIPE_SZ: Int32 = 1031  // Linux's, behind _GNU_SOURCE in C
        let capacity = fcntl(fds[1], F_SETPIPE_SZ, 4096)
        try #require(capacity > 0)

        let env = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("SWIFT_") }
            .merging(vector.environment(dir)) { $1 }
        let pid = try Self.spawn(binary, ["--method", "netlink", "--all"], env: env, out: fds[1], err: dir + "/stderr")
        close(fds[1])
        var reaped: Int32? = nil
        defer { if reaped == nil { kill(pid, SIGKILL); _ = Self.reap(pid, within: 10) } }

        // Blocked: the pipe is full and kpeer still runs. Waited for as long
        // as kpeer lives (two minutes only as a hang detector: a loaded
        // machine may take its time).
        var full = false
        for _ in 0..<12000 {
            var queued: Int32 = 0
            if ioctl(fds[0], UInt(FIONREAD), &queued) == 0, queued >= capacity {
                full = true
                break
            }
            var st: Int32 = 0
            if waitpid(pid, &st, WNOHANG) == pid {
                reaped = st
                break
            }
            usleep(10_000)
        }
        let stderr = (try? String(contentsOfFile: dir + "/stderr", encoding: .utf8)) ?? ""
        try #require(full, "kpeer ended (status \(reaped ?? -1)) before filling the pipe: \(stderr)")

        // The environment it runs with: no SWIFT_* of ours left.
        let swiftVars = Self.environ(of: pid).filter { $0.hasPrefix("SWIFT_") }
        #expect(swiftVars == ["SWIFT_BACKTRACE=enable=no"], "\(binary): \(swiftVars)")

        kill(pid, sig)
        reaped = Self.reap(pid, within: 10)
        let status = reaped ?? -1
        #expect(reaped != nil, "\(binary) did not end within 10 s of signal \(sig)")
        // WIFSIGNALED with that signal (a core dump bit may come with it).
        #expect(reaped.map { $0 & 0x7f == sig } == true, "\(binary): wait status \(status)")
        #expect(!FileManager.default.fileExists(atPath: marker),
                "\(binary) ran the backtracer named by \(vector) on signal \(sig)")
    }

    /// When the re-exec cannot happen (strace makes kpeer's own execve of
    /// /proc/self/exe fail), the SWIFT_* variables are dropped in place and
    /// the crash handlers reset: still nothing runs, and the signal kills.
    @Test(.tags(.root), .enabled(if: getuid() == 0 && Support.which("strace") != nil, "needs root and strace"),
          arguments: BacktraceTests.binaries, [SIGQUIT, SIGSEGV])
    func withoutTheReexecStillNoBacktracer(_ binary: String, _ sig: Int32) throws {
        let dir = Support.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try Self.plantEvil(dir)
        // A one-page pipe, full before kpeer writes: it blocks in its first write.
        var fds: [Int32] = [-1, -1]
        try #require(pipe(&fds) == 0)
        defer { close(fds[0]) }
        _ = fcntl(fds[0], F_SETFD, FD_CLOEXEC)
        _ = fcntl(fds[1], F_SETFD, FD_CLOEXEC)
        let capacity = Int(fcntl(fds[1], 1031 /* F_SETPIPE_SZ */, 4096))
        try #require(capacity > 0)
        let fill = [UInt8](repeating: 0x78, count: capacity)
        try #require(write(fds[1], fill, capacity) == capacity)

        var env = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("SWIFT_") }
        env.merge(Vector.backtracePath.environment(dir)) { $1 }
        env["SWIFT_ROOT"] = dir + "/root"
        let log = dir + "/strace.log"
        let strace = try Self.spawn(Support.which("strace")!,
                                    ["-o", log, "-e", "trace=execve", "-e", "inject=execve:error=EACCES:when=1", binary, "--help"],
                                    env: env, out: fds[1], err: dir + "/stderr")
        close(fds[1])
        var reaped: Int32? = nil
        var kpeer: Int32 = 0
        defer {
            if kpeer > 0 && reaped == nil { kill(kpeer, SIGKILL) }
            if reaped == nil { kill(strace, SIGKILL); _ = Self.reap(strace, within: 10) }
        }
        var blocked = false
        // As long as strace (and kpeer under it) lives; two minutes only as
        // a hang detector.
        for _ in 0..<12000 where !blocked && reaped == nil {
            var st: Int32 = 0
            if waitpid(strace, &st, WNOHANG) == strace { reaped = st; break }
            // strace forks short-lived children of its own to probe ptrace
            // first: kpeer is the child whose executable is the binary, and
            // the children are read again until it shows up blocked.
            if let kids = try? String(contentsOfFile: "/proc/\(strace)/task/\(strace)/children", encoding: .utf8) {
                for kid in kids.split(separator: " ").compactMap({ Int32($0) })
                    where (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(kid)/exe")).map({ URL(fileURLWithPath: $0).resolvingSymlinksInPath().path }) == URL(fileURLWithPath: binary).resolvingSymlinksInPath().path {
                    kpeer = kid
                }
            }
            if kpeer > 0, let wchan = try? String(contentsOfFile: "/proc/\(kpeer)/wchan", encoding: .utf8) {
                blocked = wchan.contains("pipe_write")
            }
            if !blocked { usleep(10_000) }
        }
        let wchan = kpeer > 0 ? ((try? String(contentsOfFile: "/proc/\(kpeer)/wchan", encoding: .utf8)) ?? "gone") : "no pid"
        try #require(blocked, "kpeer (\(kpeer), wchan \(wchan), strace status \(reaped.map(String.init) ?? "running")) never blocked writing --help: \((try? String(contentsOfFile: log, encoding: .utf8)) ?? "")")
        // No handler on any of the runtime's crash signals.
        let status = (try? String(contentsOfFile: "/proc/\(kpeer)/status", encoding: .utf8)) ?? ""
        let caught = status.split(separator: "\n").first { $0.hasPrefix("SigCgt:") }
            .flatMap { UInt64($0.dropFirst(7).trimmingCharacters(in: .whitespaces), radix: 16) } ?? UInt64.max
        for crash in [SIGQUIT, SIGABRT, SIGBUS, SIGFPE, SIGILL, SIGSEGV, SIGTRAP] {
            #expect(caught & (1 << UInt64(crash - 1)) == 0, "\(binary): signal \(crash) is caught (SigCgt \(String(caught, radix: 16)))")
        }
        kill(kpeer, sig)
        reaped = Self.reap(strace, within: 10)
        let trace = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        #expect(trace.contains("(INJECTED)"), "\(binary): the re-exec was not made to fail: \(trace)")
        #expect(trace.contains("+++ killed by SIG\(sig == SIGQUIT ? "QUIT" : "SEGV")"), "\(binary): \(trace)")
        #expect(!FileManager.default.fileExists(atPath: dir + "/marker"), "\(binary) ran the backtracer on signal \(sig)")
    }

    /// The start keeps the command line, with or without an environment to
    /// clean (the static runtime finds argv by walking back from environ,
    /// so that array must stay where exec put it).
    @Test(arguments: BacktraceTests.binaries)
    func theCommandLineSurvivesTheCleanStart(_ binary: String) throws {
        let base = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("SWIFT_") }
        let environments: [[String: String]] = [
            [:],
            base,
            base.merging(["SWIFT_DETERMINISTIC_HASHING": "1"]) { $1 },
            base.merging(["SWIFT_BACKTRACE": "enable=no,swift-backtrace=/nonexistent", "SWIFT_ROOT": "/nonexistent"]) { $1 },
            base.merging(["SWIFT_BACKTRACE": "enable=no"]) { $1 },
        ]
        for env in environments {
            let version = try Support.run(binary, ["--version"], environment: env)
            #expect(version.status == 0 && version.stdout == Support.versionLine && version.stderr.isEmpty,
                    "\(env.keys.filter { $0.hasPrefix("SWIFT_") }): \(version.status) \(version.stdout) \(version.stderr)")
            let usage = try Support.run(binary, ["12ab"], environment: env)
            #expect(usage.status == 64 && usage.stderr.contains("'12ab'"),
                    "\(env.keys.filter { $0.hasPrefix("SWIFT_") }): \(usage.status) \(usage.stderr)")
        }
    }
}
