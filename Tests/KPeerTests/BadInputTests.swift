import Foundation
import Testing

/// The bad-input table of Docs/RELIABILITY.md, against the built binary:
/// each case gets exactly one stderr line `kpeer: <problem> — <fix>`, its
/// documented status, nothing on stdout, and no crash.
@Suite(.serialized, .tags(.binary), .layered) struct BadInputTests {
    static var kpeer: String { Support.kpeerBinary }

    /// Files the cases need, made once: what they are is the point. Making
    /// them is part of each case that uses one: a case whose file could not
    /// be made fails, rather than passing on "no such file".
    static let made: Result<[String: String], any Error> = Result {
        let dir = Support.tempDir()
        chmod(dir, 0o755)  // the non-root case reads them too
        var out: [String: String] = [:]
        func put(_ name: String, _ bytes: [UInt8]) throws {
            let p = dir + "/" + name
            try Data(bytes).write(to: URL(fileURLWithPath: p))
            chmod(p, 0o644)
            out[name] = p
        }
        try put("garbage", (0..<4096).map { UInt8(truncatingIfNeeded: $0 &* 2654435761 >> 7) })
        try put("empty", [])
        // An ELF object with DWARF but no unix_sock, and a linked ELF whose
        // GNU build-id is not the running kernel's.
        let c = dir + "/other.c"
        try "struct other { int a; void *peer; }; struct other o; int main(void) { return 0; }\n"
            .write(toFile: c, atomically: true, encoding: .utf8)
        try Support.gcc([c], output: dir + "/nounixsock.o", flags: ["-g", "-c"])
        out["nounixsock.o"] = dir + "/nounixsock.o"
        try Support.gcc([c], output: dir + "/otherbuild.elf",
                        flags: ["-g", "-Wl,--build-id=0x0123456789abcdef0123456789abcdef01234567"])
        out["otherbuild.elf"] = dir + "/otherbuild.elf"
        // A FIFO nobody writes to: opening or reading it must not hang kpeer.
        guard mkfifo(dir + "/fifo", 0o644) == 0 else { throw Support.Failure("mkfifo: \(String(cString: strerror(errno)))") }
        out["fifo"] = dir + "/fifo"
        return out
    }

    /// A case's argument: `%NAME` is the file `made` made under that name.
    static func argument(_ a: String) throws -> String {
        guard a.hasPrefix("%") else { return a }
        let name = String(a.dropFirst())
        return try #require(try made.get()[name], "no input file \(name)")
    }

    struct Case: Sendable, CustomTestStringConvertible {
        var name: String
        var args: [String]
        var status: Int32
        /// Words the one line must contain (the problem named).
        var mentions: [String] = []
        var testDescription: String { name }
    }

    static let cases: [Case] = [
        Case(name: "inode non-numeric", args: ["12ab"], status: 64, mentions: ["12ab"]),
        Case(name: "inode negative", args: ["--", "-5"], status: 64, mentions: ["-5"]),
        Case(name: "inode negative as an option", args: ["-5"], status: 64),
        Case(name: "inode zero", args: ["0"], status: 64, mentions: ["out of range"]),
        Case(name: "inode huge", args: ["99999999999999"], status: 64, mentions: ["out of range"]),
        Case(name: "inode past UInt64", args: ["184467440737095516160"], status: 64),
        Case(name: "inode with a sign", args: ["+42"], status: 64),
        Case(name: "inode nonexistent", args: ["4000000000"], status: 2),
        Case(name: "--dwarf not ELF", args: ["--dwarf", "/etc/hostname", "--all"], status: 65, mentions: ["/etc/hostname"]),
        Case(name: "--dwarf garbage", args: ["--dwarf", "%garbage", "--all"], status: 65),
        Case(name: "--dwarf empty", args: ["--dwarf", "%empty", "--all"], status: 65),
        Case(name: "--dwarf ELF without build-id", args: ["--dwarf", "%nounixsock.o", "--all"], status: 65, mentions: ["build-id"]),
        Case(name: "--dwarf ELF without unix_sock", args: ["--dwarf", "%nounixsock.o", "--force", "--all"], status: 65, mentions: ["unix_sock"]),
        Case(name: "--dwarf another build's vmlinux", args: ["--dwarf", "%otherbuild.elf", "--all"], status: 65,
             mentions: ["another kernel build", "0123456789abcdef"]),
        Case(name: "--dwarf missing", args: ["--dwarf", "/nonexistent/vmlinux", "--all"], status: 65),
        Case(name: "--btf garbage", args: ["--btf", "%garbage", "--all"], status: 65, mentions: ["BTF"]),
        Case(name: "--btf empty", args: ["--btf", "%empty", "--all"], status: 65),
        Case(name: "--btf an ELF without BTF", args: ["--btf", "%nounixsock.o", "--all"], status: 65),
        Case(name: "--offset zero", args: ["--offset", "0", "--all"], status: 64, mentions: ["--offset"]),
        Case(name: "--offset negative", args: ["--offset=-8", "--all"], status: 64, mentions: ["--offset"]),
        Case(name: "--offset unaligned", args: ["--offset", "1001", "--all"], status: 64, mentions: ["--offset"]),
        Case(name: "--offset past unix_sock", args: ["--offset", "8192", "--all"], status: 64, mentions: ["--offset"]),
        Case(name: "--offset past Int", args: ["--offset", "99999999999999999999", "--all"], status: 64),
        Case(name: "--kcore not ELF", args: ["--kcore", "/etc/hostname", "--all"], status: 65),
        Case(name: "--kcore ELF, not a core", args: ["--kcore", "%otherbuild.elf", "--all"], status: 65, mentions: ["core"]),
        Case(name: "--kcore empty", args: ["--kcore", "%empty", "--all"], status: 65),
        Case(name: "--kcore a directory", args: ["--kcore", "/tmp", "--all"], status: 65),
        Case(name: "--kcore missing", args: ["--kcore", "/nonexistent/core", "--all"], status: 65),
        Case(name: "--kcore a FIFO", args: ["--kcore", "%fifo", "--all"], status: 65, mentions: ["regular file"]),
        Case(name: "--kcore a device", args: ["--kcore", "/dev/null", "--all"], status: 65, mentions: ["regular file"]),
        Case(name: "--dwarf a FIFO", args: ["--dwarf", "%fifo", "--all"], status: 65, mentions: ["regular file"]),
        Case(name: "--btf a FIFO", args: ["--btf", "%fifo", "--all"], status: 65, mentions: ["regular file"]),
        Case(name: "--dwarf with --method netlink", args: ["--method", "netlink", "--dwarf", "/x", "--all"], status: 64,
             mentions: ["kcore method"]),
        Case(name: "--kcore with --method netlink", args: ["--method", "netlink", "--kcore", "/x", "--all"], status: 64),
        Case(name: "--find-offset on a nonexistent inode", args: ["--find-offset", "4000000000"], status: 2),
        // "--kcore of another machine" (69) raises kptr_restrict: it is in
        // SignalTests, whose suite owns that sysctl while it runs.
    ]

    static func expectOneLine(_ r: Support.Result, status: Int32, mentions: [String] = [], _ what: String) {
        #expect(r.status == status, "\(what): \(r.stderr)")
        #expect(r.stdout.isEmpty, "\(what): stdout \(r.stdout)")
        let lines = r.stderr.split(separator: "\n", omittingEmptySubsequences: false).dropLast()
        #expect(lines.count == 1 && r.stderr.hasSuffix("\n"), "\(what): \(r.stderr)")
        #expect(r.stderr.hasPrefix("kpeer: "), "\(what): \(r.stderr)")
        for m in mentions { #expect(r.stderr.contains(m), "\(what) should name \(m): \(r.stderr)") }
    }

    @Test(arguments: cases)
    func badInput(_ c: Case) throws {
        let args = try c.args.map(Self.argument)
        Self.expectOneLine(try Support.run(Self.kpeer, args), status: c.status, mentions: c.mentions, c.name)
    }

    /// A path that is not a socket: status 2, as CONTRACT says (no such
    /// socket: a PATH is not a socket).
    @Test func aPathThatIsNotASocket() throws {
        let r = try Support.run(Self.kpeer, ["/etc/passwd"])
        Self.expectOneLine(r, status: 2, mentions: ["/etc/passwd", "is not a socket"], "kpeer /etc/passwd")
    }

    /// Not root: kpeer answers for what the user may see (sock_diag works
    /// unprivileged, the user's own /proc/PID/fd is readable) and says once
    /// on stderr what it left out; the kcore method, a peer held only by
    /// another user's process, that user's listener with no client, and
    /// `--pid` of another user's process are 77. (--kcore as nobody is in
    /// SignalTests, whose suite owns kptr_restrict.)
    @Test(.tags(.root, .fixture), .enabled(if: getuid() == 0, "needs root to drop to 65534"))
    func withoutRoot() throws {
        let setpriv = try #require(Support.which("setpriv"))
        var said: [String] = []  // every stderr, for the check at the end
        defer {
            let doubled = said.flatMap { $0.split(separator: "\n") }.filter { $0.hasPrefix("kpeer: kpeer") }
            #expect(doubled.isEmpty, "\(doubled)")
        }
        // (A kernel without /proc/kcore says that first: 69.)
        let kcore = try Support.run(setpriv, Self.asNobody + ["--method", "kcore", "--all"])
        said.append(kcore.stderr)
        let haveKcore = access("/proc/kcore", F_OK) == 0
        Self.expectOneLine(kcore, status: haveKcore ? 77 : 69, mentions: [haveKcore ? "root" : "kcore"], "nobody: --method kcore --all")
        for args in [["--method", "netlink", "--all"], ["--dump"]] {
            let r = try Support.run(setpriv, Self.asNobody + args)
            said.append(r.stderr)
            #expect(r.status == 0, "nobody: \(args): \(r)")
            let err = r.stderr.split(separator: "\n")
            #expect(err.count == 1 && err[0].hasPrefix("kpeer: not root: ") && err[0].contains("could not be read"),
                    "nobody: \(args): \(r.stderr)")
        }
        for args in [["1"], ["/etc/passwd"]] {
            let r = try Support.run(setpriv, Self.asNobody + args)
            said.append(r.stderr)
            Self.expectOneLine(r, status: 2, mentions: [args[0]], "nobody: \(args)")
        }
        // Root's process 1 exists, and which sockets it holds nobody may
        // read: not an empty listing.
        for args in [["--pid", "1"], ["--json", "--pid", "1"], ["--dump", "--pid", "1"]] {
            let r = try Support.run(setpriv, Self.asNobody + args)
            said.append(r.stderr)
            Self.expectOneLine(r, status: 77, mentions: ["process 1", "could not be read"], "nobody: \(args)")
        }
        // A peer only root's process (this one) holds: not seen, and said so.
        var sv: [Int32] = [-1, -1]
        try #require(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | OwnSockets.cloexec, 0, &sv) == 0)
        defer { close(sv[0]); close(sv[1]) }
        var st = stat()
        fstat(sv[0], &st)
        let theirs = try Support.run(setpriv, Self.asNobody + [String(st.st_ino)])
        said.append(theirs.stderr)
        Self.expectOneLine(theirs, status: 77, mentions: ["could not be read"], "nobody asks about root's socket")
        // Root's listener (this process's) with no client: who holds it is
        // unknown to nobody, so not "held by no process".
        let s = OwnSockets()
        let name = "kpeer-\(getpid())-roots-listener"
        let listener = OwnSockets.inode(try s.bound(Array(name.utf8), abstract: true))
        for args in [["@" + name], [String(listener)]] {
            let r = try Support.run(setpriv, Self.asNobody + args)
            said.append(r.stderr)
            Self.expectOneLine(r, status: 77, mentions: ["held by no process kpeer could see", "could not be read"], "nobody: \(args)")
        }
        // The user's own socketpair: answered, with the user's own process.
        let python = try #require(Support.which("python3"))
        let own = try Support.run(setpriv, ["--reuid=65534", "--regid=65534", "--clear-groups", "--", python, "-c", """
            import json, os, socket, subprocess, sys
            a, b = socket.socketpair()
            inode = str(os.fstat(a.fileno()).st_ino)
            r = subprocess.run([sys.argv[1], inode], capture_output=True, text=True)
            print(r.returncode, os.getpid(), r.stdout.strip(), sep="|")
            j = subprocess.run([sys.argv[1], "--json", inode], capture_output=True, text=True)
            print(j.returncode, json.dumps(json.loads(j.stdout)["owners_incomplete"]), sep="|")
            for e in (r.stderr, j.stderr): print(json.dumps(e))
            """, Self.kpeer])
        let lines = own.stdout.split(separator: "\n").map(String.init)
        let f = lines.first.map { $0.split(separator: "|").map(String.init) } ?? []
        #expect(f.count == 3 && f[0] == "0" && f[2] == "\(f[1]) python3", "nobody asks about its own socket: \(own)")
        // Text and --json alike: answered, with the one "not root" line.
        #expect(lines.count == 4 && lines[1] == "0|true", "nobody: --json its own socket: \(own)")
        for quoted in lines.dropFirst(2) {
            let err = (try? JSONSerialization.jsonObject(with: Data(quoted.utf8), options: .fragmentsAllowed)) as? String ?? ""
            said.append(err)
            #expect(err.hasPrefix("kpeer: not root: ") && err.split(separator: "\n").count == 1 && err.contains("could not be read"),
                    "nobody: its own socket: \(err)")
        }
    }

    static var asNobody: [String] { ["--reuid=65534", "--regid=65534", "--clear-groups", "--", kpeer] }
}
