import Foundation
import Glibc
import Testing
import KPeerSystem
import SocketInventory

/// Sockets this test binds itself, under names given as raw bytes, so what
/// kpeer says about them is checked against what the test did.
@_silgen_name("accept4")
private func kp_test_accept4(_ fd: Int32, _ addr: UnsafeMutablePointer<sockaddr>?,
                             _ len: UnsafeMutablePointer<socklen_t>?, _ flags: Int32) -> Int32

final class OwnSockets {
    var fds: [Int32] = []
    var files: [[UInt8]] = []

    /// A stream socket bound to `name` (a file, or an abstract name).
    func bound(_ name: [UInt8], abstract: Bool, listen backlog: Int32? = 8,
               type: Int32 = Int32(SOCK_STREAM.rawValue)) throws -> Int32 {
        // CLOEXEC: tests run in parallel, and a kpeer another test spawns
        // must not inherit these and show up as one more holder.
        let fd = socket(AF_UNIX, type | Self.cloexec, 0)
        fds.append(fd)
        guard Self.withAddress(name, abstract, { bind(fd, $0, $1) }) == 0 else { throw Support.Failure("bind: \(errno)") }
        if !abstract { files.append(name) }
        if let backlog, listen(fd, backlog) != 0 { throw Support.Failure("listen: \(errno)") }
        return fd
    }

    func client(_ name: [UInt8], abstract: Bool) throws -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Self.cloexec, 0)
        fds.append(fd)
        guard Self.withAddress(name, abstract, { connect(fd, $0, $1) }) == 0 else { throw Support.Failure("connect: \(errno)") }
        return fd
    }

    func accepted(_ listener: Int32) -> Int32 {
        let fd = OwnSockets.accept(listener)
        fds.append(fd)
        return fd
    }

    func pair() throws -> (Int32, Int32) {
        var sv: [Int32] = [-1, -1]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Self.cloexec, 0, &sv) == 0 else { throw Support.Failure("socketpair") }
        fds += sv
        return (sv[0], sv[1])
    }

    static var cloexec: Int32 { Int32(SOCK_CLOEXEC.rawValue) }

    /// accept4(2) with SOCK_CLOEXEC: Glibc's module does not declare it.
    static func accept(_ listener: Int32) -> Int32 { kp_test_accept4(listener, nil, nil, cloexec) }

    static func withAddress<T>(_ name: [UInt8], _ abstract: Bool, _ body: (UnsafePointer<sockaddr>, socklen_t) -> T) -> T {
        var sa = sockaddr_un()
        sa.sun_family = sa_family_t(AF_UNIX)
        let raw = (abstract ? [0] : []) + name
        withUnsafeMutableBytes(of: &sa.sun_path) { p in for (i, b) in raw.enumerated() { p[i] = b } }
        let length = socklen_t(2 + raw.count + (abstract ? 0 : 1))
        return withUnsafePointer(to: &sa) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, length) } }
    }

    static func inode(_ fd: Int32) -> UInt64 {
        var st = stat()
        fstat(fd, &st)
        return UInt64(st.st_ino)
    }

    deinit {
        for fd in fds { close(fd) }
        for f in files { _ = (f + [0]).withUnsafeBufferPointer { unlink(UnsafeRawPointer($0.baseAddress!).assumingMemoryBound(to: CChar.self)) } }
    }
}

/// The command line's contract (Docs/CONTRACT.md): JSON holds real bytes,
/// escaped names are accepted back, output that cannot be written is an
/// error, every output form exits with the same status, and the inputs users
/// try (socket:[N], a bare file name, a listener's inode) are understood.
@Suite(.serialized, .tags(.binary, .fixture), .layered) struct CLIContractTests {
    static var kpeer: String { Support.kpeerBinary }

    static func json(_ text: String) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any], "not JSON: \(text)")
    }

    static func socket(_ doc: [String: Any], _ inode: UInt64) -> [String: Any]? {
        (doc["sockets"] as? [[String: Any]])?.first { ($0["inode"] as? NSNumber)?.uint64Value == inode }
    }

    static func hex(_ bytes: [UInt8]) -> String { bytes.map { String(format: "%02x", $0) }.joined() }

    // MARK: JSON holds the real bytes (issue 13, item 4)

    @Test func jsonCarriesTheRealBytesOfSocketNames() throws {
        let s = OwnSockets()
        let dir = Support.tempDir()
        let file = Array((dir + "/q\"uote\\back sl.sock").utf8)
        let tag = "kpeer-\(getpid())"
        let newline = Array("\(tag)-x\ny".utf8)
        let invalid = Array("\(tag)-".utf8) + [0xFF, 0x41]
        let f = OwnSockets.inode(try s.bound(file, abstract: false))
        let n = OwnSockets.inode(try s.bound(newline, abstract: true))
        let i = OwnSockets.inode(try s.bound(invalid, abstract: true))

        let r = try Support.run(Self.kpeer, ["--json", "--all"])
        #expect(r.status == 0, "\(r.stderr)")
        let doc = try Self.json(r.stdout)
        let fs = try #require(Self.socket(doc, f)), ns = try #require(Self.socket(doc, n)), isock = try #require(Self.socket(doc, i))
        #expect(fs["path"] as? String == String(decoding: file, as: UTF8.self))
        #expect(fs["path_hex"] == nil, "a UTF-8 name needs no hex")
        #expect(ns["path"] as? String == "@" + String(decoding: newline, as: UTF8.self))
        // Not UTF-8: the exact bytes in hex ("@" and the name), the text with U+FFFD.
        #expect(isock["path_hex"] as? String == Self.hex(Array("@".utf8) + invalid))
        #expect(isock["path"] as? String == "@" + String(decoding: invalid, as: UTF8.self))
    }

    @Test(.enabled(if: Support.which("python3") != nil, "needs python3 to rename a process"))
    func jsonCarriesTheRealNamesOfProcesses() throws {
        let s = try HostileNameTests.Script("""
            import ctypes, os, socket, sys
            a, b = socket.socketpair()
            ctypes.CDLL(None).prctl(15, b"q\\"x\\\\y z\\n1", 0, 0, 0)  # PR_SET_NAME
            print(os.fstat(a.fileno()).st_ino, flush=True)
            sys.stdin.read()
            """)
        try #require(s.inode != 0)
        let r = try Support.run(Self.kpeer, ["--json", String(s.inode)])
        #expect(r.status == 0, "\(r.stderr)")
        let peer = try #require(Self.socket(try Self.json(r.stdout), s.inode)?["peer"] as? [String: Any])
        let names = (peer["owners"] as? [[String: Any]])?.compactMap { $0["name"] as? String }
        #expect(names == ["q\"x\\y z\n1"])
    }

    /// A process may name itself with bytes that are not UTF-8: JSON has
    /// the name with U+FFFD and `name_hex` with the real bytes; the text
    /// forms print each such byte as `\xNN`.
    @Test(.enabled(if: Support.which("python3") != nil, "needs python3 to rename a process"))
    func jsonCarriesNonUTF8ProcessNames() throws {
        let s = try HostileNameTests.Script("""
            import ctypes, os, socket, sys
            a, b = socket.socketpair()
            ctypes.CDLL(None).prctl(15, b"bad\\xffname", 0, 0, 0)  # PR_SET_NAME
            print(os.fstat(a.fileno()).st_ino, flush=True)
            sys.stdin.read()
            """)
        try #require(s.inode != 0)
        let pid = s.process.processIdentifier
        let raw = Array("bad".utf8) + [0xFF] + Array("name".utf8)
        // What the kernel holds as the name: the bytes the script gave.
        try #require(FileManager.default.contents(atPath: "/proc/\(pid)/comm") == Data(raw + [0x0A]))
        let r = try Support.run(Self.kpeer, ["--json", String(s.inode)])
        #expect(r.status == 0, "\(r.stderr)")
        let sock = try #require(Self.socket(try Self.json(r.stdout), s.inode))
        let peer = try #require(sock["peer"] as? [String: Any])
        for owners in [sock["owners"], peer["owners"]] {
            let o = try #require((owners as? [[String: Any]])?.first { ($0["pid"] as? NSNumber)?.int32Value == pid })
            #expect(o["name"] as? String == String(decoding: raw, as: UTF8.self))
            #expect(o["name_hex"] as? String == Self.hex(raw))
        }
        let text = try Support.run(Self.kpeer, [String(s.inode)])
        #expect(text.stdout == "\(pid) bad\\xffname\n", "\(text.stdout)")
        let dump = try Support.run(Self.kpeer, ["--dump", "--pid", String(pid)])
        #expect(dump.stdout.split(separator: "\n").contains { $0.hasPrefix("bad\\xffname:\(pid):\(s.inode):") && $0.hasSuffix(":\(pid):bad\\xffname") },
                "\(dump.stdout)")
        let all = try Support.run(Self.kpeer, ["--all", "--pid", String(pid)])
        #expect(TableRow.rows(all.stdout)[s.inode]?.owners == "\(pid)/bad\\xffname", "\(all.stdout)")
    }

    // MARK: A name as kpeer prints it is accepted back (issue 13, item 4)

    @Test func anEscapedNameFindsTheRealSocket() throws {
        let s = OwnSockets()
        let dir = Support.tempDir()
        let file = Array((dir + "/a b\\c.sock").utf8)
        let tag = "kpeer-\(getpid())"
        let abstract = Array("\(tag)-x\ny".utf8)
        let invalid = Array("\(tag)-".utf8) + [0xFF]
        var clients: [String: UInt64] = [:], listeners: [String: UInt64] = [:]
        for (name, isAbstract, key) in [(file, false, "file"), (abstract, true, "newline"), (invalid, true, "invalid")] {
            listeners[key] = OwnSockets.inode(try s.bound(name, abstract: isAbstract))
            clients[key] = OwnSockets.inode(try s.client(name, abstract: isAbstract))
        }
        let me = try #require(Files.text("/proc/self/comm"))
        let escapedMe = Escape.bytes(Array(me.utf8))
        // Each name as `--all` prints it in its listener's row.
        let rows = TableRow.rows(try Support.run(Self.kpeer, ["--all", "--listening"]).stdout)
        var asPrinted: [(String, String)] = []
        for (key, inode) in listeners.sorted(by: { $0.key < $1.key }) {
            asPrinted.append((key, try #require(rows[inode]?.rest.first, "no --all row for the \(key) listener")))
        }
        #expect(asPrinted.count == 3)
        for (key, arg) in asPrinted {
            #expect(arg.contains("\\x"), "\(arg) is printed escaped")
            let r = try Support.run(Self.kpeer, [arg])
            #expect(r.status == 0, "\(arg): \(r.stderr)")
            // (Other tests fork children that inherit this process's
            // descriptors for a moment: only this process's line is sure.)
            let lines = r.stdout.split(separator: "\n").map(String.init)
            #expect(lines.contains("\(getpid()) \(escapedMe) \(clients[key]!) pending"), "\(arg): \(r.stdout)")
            #expect(lines.allSatisfy { $0.hasSuffix(" \(clients[key]!) pending") }, "\(arg): \(r.stdout)")
        }
        // --json PATH: the query as the real name.
        let j = try Support.run(Self.kpeer, ["--json", try #require(asPrinted.first { $0.0 == "newline" }?.1)])
        #expect(j.status == 0, "\(j.stderr)")
        #expect(try Self.json(j.stdout)["query"] as? String == "@" + String(decoding: abstract, as: UTF8.self))
    }

    // MARK: Output that cannot be written (issue 13, item 5)

    /// Runs kpeer with stdout on `stdout` (nil: closed), stderr captured.
    static func run(_ args: [String], stdout: FileHandle?, launcher: [String] = []) throws -> (Process, String) {
        let p = Process()
        let errPath = Support.tempDir() + "/stderr"
        _ = FileManager.default.createFile(atPath: errPath, contents: nil)
        let err = try #require(FileHandle(forWritingAtPath: errPath))
        if let stdout {
            p.executableURL = URL(fileURLWithPath: launcher.first ?? Self.kpeer)
            p.arguments = Array(launcher.dropFirst()) + (launcher.isEmpty ? [] : [Self.kpeer]) + args
            p.standardOutput = stdout
        } else {
            // A closed stdout: sh closes it, then runs kpeer in its place.
            p.executableURL = URL(fileURLWithPath: "/bin/sh")
            p.arguments = ["-c", "exec \"$0\" \"$@\" >&-", Self.kpeer] + args
        }
        p.standardError = err
        p.standardInput = FileHandle.nullDevice
        try p.run()
        p.waitUntilExit()
        try? err.close()
        return (p, String(decoding: FileManager.default.contents(atPath: errPath) ?? Data(), as: UTF8.self))
    }

    @Test func aWriteErrorIsStatus74AndOneLine() throws {
        let s = OwnSockets()
        let (a, _) = try s.pair()
        let full = try #require(FileHandle(forWritingAtPath: "/dev/full"))
        for args in [["--all"], ["--json", "--all"], ["--dump"], [String(OwnSockets.inode(a))]] {
            let (p, err) = try Self.run(args, stdout: full)
            #expect(p.terminationReason == .exit && p.terminationStatus == 74, "\(args) > /dev/full: \(p.terminationStatus) \(err)")
            #expect(err.hasPrefix("kpeer: ") && err.split(separator: "\n").count == 1, "\(args): \(err)")
        }
        let (p, err) = try Self.run([String(OwnSockets.inode(a))], stdout: nil)
        #expect(p.terminationStatus == 74, "INODE >&-: \(p.terminationStatus) \(err)")
        #expect(err.hasPrefix("kpeer: ") && err.split(separator: "\n").count == 1, "\(err)")
    }

    /// A reader that has gone (`kpeer --all | head -1`): SIGPIPE ends kpeer
    /// quietly, as any filter; with SIGPIPE ignored, EPIPE ends it quietly too.
    @Test(.enabled(if: Support.which("env") != nil))
    func aGoneReaderEndsKpeerQuietly() throws {
        let env = try #require(Support.which("env"))
        for signal in ["--default-signal=PIPE", "--ignore-signal=PIPE"] {
            let pipe = Pipe()
            try pipe.fileHandleForReading.close()  // no reader, before anything is written
            let (p, err) = try Self.run(["--all"], stdout: pipe.fileHandleForWriting, launcher: [env, signal])
            if signal.hasPrefix("--default") {
                #expect(p.terminationReason == .uncaughtSignal && p.terminationStatus == SIGPIPE, "\(p.terminationStatus)")
            } else {
                #expect(p.terminationReason == .exit && p.terminationStatus == 74, "\(p.terminationStatus)")
            }
            #expect(err.isEmpty, "\(signal): \(err)")
        }
    }

    // MARK: One table of statuses, the same for every output form (item 8)

    @Test(.tags(.root)) func jsonExitsWithTheStatusTextExitsWith() throws {
        let f = try Fixture()
        for role in ["pair", "lonely", "pending", "listener", "dgserver", "seqlistener"] {
            for s in f.sockets(role) {
                let text = try Support.run(Self.kpeer, [String(s.inode)])
                let json = try Support.run(Self.kpeer, ["--json", String(s.inode)])
                #expect(json.status == text.status, "\(role): text \(text.status), json \(json.status): \(json.stderr)")
                // Still the document, and the same one line on stderr as text.
                #expect(Self.socket(try Self.json(json.stdout), s.inode) != nil, "\(role)")
                #expect(json.stderr == text.stderr, "\(role)")
            }
        }
        // A PATH whose listener has no client: 1 for both, the document still printed.
        let s = OwnSockets()
        let path = Array((Support.tempDir() + "/lonely.sock").utf8)
        let l = OwnSockets.inode(try s.bound(path, abstract: false))
        let text = try Support.run(Self.kpeer, [String(decoding: path, as: UTF8.self)])
        let json = try Support.run(Self.kpeer, ["--json", String(decoding: path, as: UTF8.self)])
        #expect(text.status == 1 && json.status == 1, "\(text.status) \(json.status)")
        let doc = try Self.json(json.stdout)
        #expect(((doc["listener"] as? [String: Any])?["inode"] as? NSNumber)?.uint64Value == l)
        #expect((doc["clients"] as? [Any])?.isEmpty == true)
        #expect(json.stderr == text.stderr && json.stderr.split(separator: "\n").count == 1)
    }

    /// pid_max is one past the largest pid the kernel hands out.
    @Test func aPidNoProcessHasIsStatus2() throws {
        let max = try #require(Files.text("/proc/sys/kernel/pid_max").flatMap { Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) })
        for args in [["--pid", String(max)], ["--all", "--pid", String(max)], ["--json", "--pid", String(max)]] {
            BadInputTests.expectOneLine(try Support.run(Self.kpeer, args), status: 2, mentions: [String(max)], "\(args)")
        }
    }

    /// Docs/CONTRACT.md's table of exit statuses is the one in the code, and
    /// --help prints it.
    @Test func oneTableOfExitStatuses() throws {
        let contract = try String(contentsOfFile: Support.packageRoot + "/Docs/CONTRACT.md", encoding: .utf8)
        let section = try #require(contract.components(separatedBy: "## Exit statuses").last)
        let rows = section.split(separator: "\n").filter { $0.hasPrefix("| ") && !$0.hasPrefix("| status") }.map { line in
            let cells = line.split(separator: "|", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
            return "\(cells[1]) \(cells[2])"
        }
        #expect(rows == KPeerError.exitStatuses.map { "\($0.status) \($0.meaning)" })
        #expect(KPeerError.exitStatuses.map(\.status) == [0] + KPeerError.Kind.allCases.map { KPeerError(($0), "").exitStatus })

        let help = try Support.run(Self.kpeer, ["--help"]).stdout
        let flat = help.split(whereSeparator: \.isWhitespace).joined(separator: " ")
        for row in KPeerError.exitStatuses {
            #expect(flat.contains("\(row.status) \(row.meaning)".split(separator: " ").joined(separator: " ")), "\(row.status)")
        }
    }

    // MARK: Inputs users try (item 9)

    @Test func theProcFdFormIsAnInode() throws {
        let s = OwnSockets()
        let (a, _) = try s.pair()
        let plain = try Support.run(Self.kpeer, [String(OwnSockets.inode(a))])
        let procForm = try Support.run(Self.kpeer, ["socket:[\(OwnSockets.inode(a))]"])
        #expect(plain.status == 0 && procForm.status == 0, "\(procForm.stderr)")
        #expect(procForm.stdout == plain.stdout && plain.stdout.hasPrefix("\(getpid()) "))
        BadInputTests.expectOneLine(try Support.run(Self.kpeer, ["socket:[12x]"]), status: 64, mentions: ["socket:[12x]"], "socket:[12x]")
    }

    @Test func aFileNameWithoutASlashIsAPathWhenTheFileExists() throws {
        let s = OwnSockets()
        let dir = Support.tempDir()
        let name = "redis.sock"
        let l = try s.bound(Array((dir + "/" + name).utf8), abstract: false)
        let c = OwnSockets.inode(try s.client(Array((dir + "/" + name).utf8), abstract: false))
        _ = s.accepted(l)
        func run(_ args: [String]) throws -> Support.Result {
            // Support.run in the socket's directory: sh changes to it first.
            try Support.run("/bin/sh", ["-c", "cd \"$0\" && exec \"$1\" \"$2\"", dir, Self.kpeer] + args)
        }
        let r = try run([name])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.hasSuffix(" \(c)\n") && r.stdout.hasPrefix("\(getpid()) "), "\(r.stdout)")
        // A word no file has is still bad usage, with a hint.
        BadInputTests.expectOneLine(try run(["nosuch.sock"]), status: 64, mentions: ["nosuch.sock", "./"], "a missing bare name")
    }

    @Test func aListenersInodeListsItsClientsAsItsPathDoes() throws {
        let s = OwnSockets()
        let path = Array((Support.tempDir() + "/listener.sock").utf8)
        let tag = Array("kpeer-\(getpid())-listener".utf8)
        let me = Escape.bytes(Array(try #require(Files.text("/proc/self/comm")).utf8))
        for (name, abstract) in [(path, false), (tag, true)] {
            let l = try s.bound(name, abstract: abstract)
            let accepted = OwnSockets.inode(try s.client(name, abstract: abstract))
            _ = s.accepted(l)
            let pending = OwnSockets.inode(try s.client(name, abstract: abstract))
            let want = "\(getpid()) \(me) \(accepted)\n\(getpid()) \(me) \(pending) pending\n"
            let byInode = try Support.run(Self.kpeer, [String(OwnSockets.inode(l))])
            let byName = try Support.run(Self.kpeer, [(abstract ? "@" : "") + String(decoding: name, as: UTF8.self)])
            #expect(byInode.status == 0, "\(byInode.stderr)")
            #expect(byInode.stdout == want)
            #expect(byName.stdout == want)
            // --json: the listener's document with the same clients, as --json PATH has them.
            let json = try Support.run(Self.kpeer, ["--json", String(OwnSockets.inode(l))])
            #expect(json.status == 0, "\(json.stderr)")
            let doc = try Self.json(json.stdout)
            #expect(Self.socket(doc, OwnSockets.inode(l)) != nil)
            let clients = try #require(doc["clients"] as? [[String: Any]], "no clients in \(json.stdout)")
            #expect(clients.map { ($0["inode"] as? NSNumber)?.uint64Value } == [accepted, pending])
            #expect(clients.map { $0["pending"] as? Bool } == [false, true])
            for c in clients {
                let pids = (c["owners"] as? [[String: Any]])?.compactMap { ($0["pid"] as? NSNumber)?.int32Value }
                #expect(pids?.contains(getpid()) == true)
            }
            #expect(doc["twin"] is NSNull)
        }
        // No client: 1, as for its path.
        let lonely = OwnSockets.inode(try s.bound(Array("kpeer-\(getpid())-lonely".utf8), abstract: true))
        BadInputTests.expectOneLine(try Support.run(Self.kpeer, [String(lonely)]), status: 1, mentions: [String(lonely)], "a listener with no client")
    }

    // MARK: Messages (item 10)

    @Test(.tags(.root)) func messagesSayEachThingOnce() throws {
        let help = try Support.run(Self.kpeer, ["--help"])
        #expect(!help.stdout.lowercased().contains("seed"))
        let contract = try String(contentsOfFile: Support.packageRoot + "/Docs/CONTRACT.md", encoding: .utf8)
        #expect(!contract.lowercased().contains("seed"))
        guard getuid() == 0, let setpriv = Support.which("setpriv") else { return }
        // Not root: answered, and one line says what is left out.
        let r = try Support.run(setpriv, BadInputTests.asNobody + ["--all"])
        #expect(r.status == 0)
        #expect(r.stderr.hasPrefix("kpeer: not root: ") && !r.stderr.hasPrefix("kpeer: kpeer "), "\(r.stderr)")
    }

    /// The original tool's name for its source is never a word kpeer says:
    /// not in the README, the manual (ArgumentParser renders kpeer.1 from
    /// the help this dump holds), nor any string the sources print.
    @Test func noSeedInWhatUsersRead() throws {
        let readme = try String(contentsOfFile: Support.packageRoot + "/README.md", encoding: .utf8)
        #expect(!readme.lowercased().contains("seed"))
        let manual = try Support.run(Self.kpeer, ["--experimental-dump-help"])
        #expect(manual.status == 0 && manual.stdout.contains("find-offset"), "\(manual.stderr)")
        #expect(!manual.stdout.lowercased().contains("seed"))
        // String literals of the Swift and C sources ("…" on one line).
        let literal = try NSRegularExpression(pattern: #""(?:[^"\\\n]|\\.)*seed(?:[^"\\\n]|\\.)*""#, options: [.caseInsensitive])
        let sources = Support.packageRoot + "/Sources"
        let files = try #require(FileManager.default.enumerator(atPath: sources)).compactMap { $0 as? String }
            .filter { $0.hasSuffix(".swift") || $0.hasSuffix(".c") || $0.hasSuffix(".h") }
        #expect(files.count > 20)
        for f in files {
            let text = try String(contentsOfFile: sources + "/" + f, encoding: .utf8)
            let hits = literal.matches(in: text, range: NSRange(text.startIndex..., in: text))
            #expect(hits.isEmpty, "\(f): \(hits.map { (text as NSString).substring(with: $0.range) })")
        }
    }

    /// Why kcore was not used is said without the advice the fallback has
    /// already taken (auto fell back: "use --method netlink" is no news).
    @Test(.enabled(if: !FileManager.default.fileExists(atPath: "/proc/kcore"), "a kernel without /proc/kcore"))
    func theFallbackReasonGivesNoAdviceAlreadyTaken() throws {
        let r = try Support.run(Self.kpeer, ["-v", "--all"])
        #expect(r.status == 0)
        let line = try #require(r.stderr.split(separator: "\n").first { $0.contains("kcore not used: ") }, "\(r.stderr)")
        #expect(line.contains("/proc/kcore") && !line.contains("--method netlink"), "\(line)")
        let doc = try Self.json(try Support.run(Self.kpeer, ["--json"]).stdout)
        #expect((doc["fallback_reason"] as? String).map { !$0.contains("--method netlink") } == true)
    }

    /// --find-offset's last line says "agree" only where two or more
    /// sources gave a value; one is "only SOURCE gave an offset". The
    /// sources this machine has, then the same with --offset added, which
    /// makes one more that agrees.
    @Test func findOffsetSaysAgreeOnlyForTwoOrMore() throws {
        func check(_ args: [String]) throws -> Int? {
            let r = try Support.run(Self.kpeer, ["--find-offset"] + args)
            let lines = r.stdout.split(separator: "\n").map(String.init)
            let table = lines.dropFirst().dropLast().map { $0.split(separator: " ", omittingEmptySubsequences: true).map(String.init) }
            let gave = table.filter { $0.count > 1 && Int($0[1]) != nil }
            let values = Set(gave.map { Int($0[1])! })
            let last = try #require(lines.last, "\(args): \(r)")
            if gave.count >= 2 && values.count == 1 {
                #expect(last == gave.map { $0[0] }.joined(separator: ", ") + " agree: \(values.first!)", "\(args): \(r.stdout)")
                #expect(r.status == 0)
            } else if gave.count == 1 {
                #expect(last == "only \(gave[0][0]) gave an offset: \(gave[0][1])", "\(args): \(r.stdout)")
                #expect(r.status == 0)
            } else {
                #expect(!last.contains("agree:"), "\(args): \(r.stdout)")
            }
            return values.count == 1 ? values.first : nil
        }
        guard let offset = try check([]) else { return }
        #expect(try check(["--offset", String(offset)]) == offset)
    }

    /// eBPF that cannot load falls back to polling with one line naming why
    /// for each kind of hook; each reason is whole there (a fixed buffer once
    /// cut "kprobe: this kernel has)"): the same words `--attach fentry` and
    /// `--attach kprobe` each give alone.
    @Test(.tags(.root)) func theWatchFallbackLineIsWhole() throws {
        let auto = try Support.run(Self.kpeer, ["--watch", "--duration", "0.1", "--interval", "0.05"])
        #expect(auto.status == 0, "\(auto.stderr)")
        guard let line = auto.stderr.split(separator: "\n").first(where: { $0.hasPrefix("kpeer: eBPF cannot watch here (") }) else {
            return  // eBPF loads here: nothing fell back
        }
        #expect(line.hasSuffix("times are to 50 ms"), "\(line)")
        var checked = 0
        for attach in ["fentry", "kprobe"] {
            let alone = try Support.run(Self.kpeer, ["--watch", "--attach", attach, "--duration", "0.1"])
            guard alone.status == 69, let start = alone.stderr.range(of: "cannot watch with \(attach)"),
                  let colon = alone.stderr[start.upperBound...].range(of: ": "),
                  let end = alone.stderr.range(of: " — ", range: colon.upperBound..<alone.stderr.endIndex) else { continue }
            let reason = alone.stderr[colon.upperBound..<end.lowerBound]
            #expect(line.contains(reason), "\(attach): \(reason) is not whole in \(line)")
            checked += 1
        }
        #expect(checked > 0, "neither hook kind failed alone: \(line)")
    }
}
