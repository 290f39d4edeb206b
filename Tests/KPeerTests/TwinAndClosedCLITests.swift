import Foundation
import Testing

/// The built kpeer on the scenes: a path whose clients are on its abstract
/// twin (the X server), and a socket whose peer has closed.
@Suite(.serialized, .tags(.binary, .fixture), .layered) struct TwinAndClosedCLITests {
    static var kpeer: String { Support.kpeerBinary }

    @Test func theXServerFileShowsItsAbstractClients() throws {
        let dir = Support.tempDir()
        let s = try Scene(["twin", dir])
        let r = try Support.run(Self.kpeer, [dir + "/X0"])
        #expect(r.status == 0, "\(r.stderr)")
        let mark = " @\(dir)/X0"
        let want = PathTwinTests.lines(s, "xclient", mark: mark) + PathTwinTests.lines(s, "xpending", pending: true, mark: mark)
        #expect(r.stdout == want.map { $0 + "\n" }.joined())
        // Both names with clients: the asked name's first, unmarked.
        let z = try Support.run(Self.kpeer, ["@" + dir + "/Z0"])
        #expect(z.status == 0, "\(z.stderr)")
        let both = PathTwinTests.lines(s, "zabsclient") + PathTwinTests.lines(s, "zfileclient", mark: " \(dir)/Z0")
        #expect(z.stdout == both.map { $0 + "\n" }.joined())
        // Another process's listener on the twin name is not this server's.
        let y = try Support.run(Self.kpeer, [dir + "/Y0"])
        #expect(y.status == 1)
        #expect(y.stdout.isEmpty)
        #expect(y.stderr.hasSuffix("has no clients\n") && y.stderr.split(separator: "\n").count == 1, "\(y.stderr)")
    }

    @Test(arguments: ["netlink", "auto"]) func aPeerThatClosedIsSaid(method: String) throws {
        let s = try Scene(["closed"])
        let survivor = try s.socket("survivor")
        let r = try Support.run(Self.kpeer, ["--method", method, String(survivor.inode)])
        #expect(r.status == 1)
        #expect(r.stdout.isEmpty)
        #expect(r.stderr == "kpeer: \(survivor.inode) was connected, but its peer has closed — the process holding it has not closed its end yet\n")
    }
}
