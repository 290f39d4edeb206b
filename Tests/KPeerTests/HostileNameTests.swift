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
}
