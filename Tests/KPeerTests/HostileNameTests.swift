import Foundation
import Glibc
import Testing

/// Any process may name itself (prctl PR_SET_NAME) with a newline and a fake
/// second line. `kpeer INODE` must still print one line per process, so the
/// name is escaped as --all escapes it.
@Suite(.serialized) struct HostileNameTests {
    static let script = """
        import ctypes, os, socket, sys
        a, b = socket.socketpair()
        ctypes.CDLL(None).prctl(15, b"x\\n1 init", 0, 0, 0)  # PR_SET_NAME
        print(os.fstat(a.fileno()).st_ino, flush=True)
        sys.stdin.read()
        """

    @Test(.enabled(if: Support.which("python3") != nil, "needs python3 to rename a process"))
    func aNewlineInANameIsEscaped() throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: Support.which("python3")!)
        p.arguments = ["-c", Self.script]
        let input = Pipe(), output = Pipe()
        p.standardInput = input
        p.standardOutput = output
        try p.run()
        defer { try? input.fileHandleForWriting.close(); p.waitUntilExit() }
        var text = ""
        while !text.hasSuffix("\n") {
            let chunk = output.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            text += String(decoding: chunk, as: UTF8.self)
        }
        let inode = try #require(UInt64(text.trimmingCharacters(in: .whitespacesAndNewlines)))
        let r = try Support.run(Support.kpeerBinary, [String(inode)])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout == "\(p.processIdentifier) x\\x0a1\\x20init\n")
    }

    /// /proc/net/unix prints bound paths raw: a path with a newline and a
    /// well-formed record after it reads as a socket that does not exist.
    static let forger = """
        import os, socket, sys
        os.chdir(sys.argv[1])
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind("f\\n0000000000000000: 00000002 00000000 00010000 0001 01 4000000123 @forged-listener")
        s.listen(1)
        print(os.fstat(s.fileno()).st_ino, flush=True)
        sys.stdin.read()
        """

    @Test(.enabled(if: Support.which("python3") != nil, "needs python3 to bind the path"))
    func aForgedRowIsNotASocket() throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: Support.which("python3")!)
        p.arguments = ["-c", Self.forger, Support.tempDir()]
        let input = Pipe(), output = Pipe()
        p.standardInput = input
        p.standardOutput = output
        try p.run()
        defer { try? input.fileHandleForWriting.close(); p.waitUntilExit() }
        let line = String(decoding: output.fileHandleForReading.availableData, as: UTF8.self)
        let real = try #require(UInt64(line.trimmingCharacters(in: .whitespacesAndNewlines)))
        // The forgery is really there for anyone reading the table naively.
        let table = try String(contentsOfFile: "/proc/net/unix", encoding: .utf8)
        try #require(table.contains("4000000123 @forged-listener"))
        let all = try Support.run(Support.kpeerBinary, ["--all"])
        #expect(all.status == 0)
        #expect(!all.stdout.contains("4000000123") && !all.stdout.contains("forged-listener"))
        #expect(all.stdout.contains(" \(real) "), "the forger's real socket is still listed")
        let one = try Support.run(Support.kpeerBinary, ["4000000123"])
        #expect(one.status == 2 && one.stdout.isEmpty)
        let byName = try Support.run(Support.kpeerBinary, ["@forged-listener"])
        #expect(byName.status == 2 && byName.stdout.isEmpty, "\(byName.stdout) \(byName.stderr)")
    }
}
