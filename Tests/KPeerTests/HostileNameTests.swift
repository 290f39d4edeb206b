import Foundation
import Glibc
import KPeerSystem
import Testing

/// What any unprivileged process can put in front of kpeer: its own name,
/// and the bytes of a path it binds.
@Suite(.serialized, .tags(.binary, .fixture), .layered) struct HostileNameTests {
    /// A python3 script that prints one line (an inode) and then waits for
    /// EOF on stdin, holding its sockets.
    final class Script {
        let process = Process()
        let input = Pipe()
        let inode: UInt64

        init(_ source: String, _ args: [String] = []) throws {
            let output = Pipe()
            process.executableURL = URL(fileURLWithPath: Support.which("python3")!)
            process.arguments = ["-c", source] + args
            process.standardInput = input
            process.standardOutput = output
            try process.run()
            var text = ""
            while !text.hasSuffix("\n") {
                let chunk = output.fileHandleForReading.availableData
                if chunk.isEmpty { break }
                text += String(decoding: chunk, as: UTF8.self)
            }
            inode = UInt64(text.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
        }

        deinit {
            try? input.fileHandleForWriting.close()
            process.waitUntilExit()
        }
    }

    /// Any process may name itself (prctl PR_SET_NAME) with a newline and a
    /// fake second line. `kpeer INODE` must still print one line per process,
    /// so the name is escaped as --all escapes it.
    @Test(.enabled(if: Support.which("python3") != nil, "needs python3 to rename a process"))
    func aNewlineInANameIsEscaped() throws {
        let s = try Script("""
            import ctypes, os, socket, sys
            a, b = socket.socketpair()
            ctypes.CDLL(None).prctl(15, b"x\\n1 init", 0, 0, 0)  # PR_SET_NAME
            print(os.fstat(a.fileno()).st_ino, flush=True)
            sys.stdin.read()
            """)
        try #require(s.inode != 0)
        let r = try Support.run(Support.kpeerBinary, [String(s.inode)])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout == "\(s.process.processIdentifier) x\\x0a1\\x20init\n")
    }

    /// /proc/net/unix prints bound paths raw: a path with a newline and a
    /// well-formed record after it reads as a socket that does not exist.
    @Test(.enabled(if: Support.which("python3") != nil, "needs python3 to bind the path"))
    func aForgedRowIsNotASocket() throws {
        let s = try Script("""
            import os, socket, sys
            os.chdir(sys.argv[1])
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.bind("f\\n0000000000000000: 00000002 00000000 00010000 0001 01 4000000123 @forged-listener")
            s.listen(1)
            print(os.fstat(s.fileno()).st_ino, flush=True)
            sys.stdin.read()
            """, [Support.tempDir()])
        try #require(s.inode != 0)
        // The forgery is really there for anyone reading the table naively.
        // Not UTF-8 throughout: other tests bind names that are not.
        // Read to its end (FileManager stops after the first page of a
        // procfs file, which reports size 0: a busy machine's table is longer).
        let table = String(decoding: Files.readIfPresent("/proc/net/unix") ?? [], as: UTF8.self)
        try #require(table.contains("4000000123 @forged-listener"))
        let all = try Support.run(Support.kpeerBinary, ["--all"])
        #expect(all.status == 0)
        // No row of its own: the forged text is only the forger's whole
        // (escaped) name, on the forger's real row.
        let rows = all.stdout.split(separator: "\n")
        #expect(!rows.contains { $0.split(separator: " ").contains("4000000123") || $0.hasSuffix(" @forged-listener") })
        let real = rows.filter { $0.split(separator: " ").contains(Substring(String(s.inode))) }
        #expect(real.count == 1 && real[0].contains("f\\x0a0000000000000000:"), "the forger's real socket, named whole: \(real)")
        let one = try Support.run(Support.kpeerBinary, ["4000000123"])
        #expect(one.status == 2 && one.stdout.isEmpty)
        let byName = try Support.run(Support.kpeerBinary, ["@forged-listener"])
        #expect(byName.status == 2 && byName.stdout.isEmpty, "\(byName.stdout) \(byName.stderr)")
    }
}
