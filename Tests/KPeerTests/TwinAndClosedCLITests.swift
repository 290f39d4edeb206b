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

    /// The twin in `--json PATH` (its own object: name, listener, clients)
    /// and through the listener's inode, text and JSON: the same clients
    /// `kpeer PATH` prints, where the scene connected them.
    @Test func jsonAndInodeShowTheTwin() throws {
        let dir = Support.tempDir()
        let s = try Scene(["twin", dir])
        func inodes(_ roles: [String]) -> [UInt64] { roles.flatMap { s.sockets($0).map(\.inode) }.sorted() }
        func clientInodes(_ any: Any?) -> [UInt64] {
            ((any as? [[String: Any]]) ?? []).compactMap { ($0["inode"] as? NSNumber)?.uint64Value }.sorted()
        }
        let xfile = try s.socket("xfile").inode, xabstract = try s.socket("xabstract").inode

        let j = try Support.run(Self.kpeer, ["--json", dir + "/X0"])
        #expect(j.status == 0, "\(j.stderr)")
        let doc = try CLIContractTests.json(j.stdout)
        #expect(clientInodes(doc["clients"]).isEmpty)
        let twin = try #require(doc["twin"] as? [String: Any], "no twin in \(j.stdout)")
        #expect(twin["query"] as? String == "@" + dir + "/X0")
        #expect(((twin["listener"] as? [String: Any])?["inode"] as? NSNumber)?.uint64Value == xabstract)
        #expect(clientInodes(twin["clients"]) == inodes(["xclient", "xpending"]))
        let pending = ((twin["clients"] as? [[String: Any]]) ?? []).filter { $0["pending"] as? Bool == true }
        #expect(clientInodes(pending) == inodes(["xpending"]))

        // The file listener's inode: the lines of its path, twin and all.
        let byPath = try Support.run(Self.kpeer, [dir + "/X0"])
        let byInode = try Support.run(Self.kpeer, [String(xfile)])
        #expect(byInode.status == 0, "\(byInode.stderr)")
        #expect(!byInode.stdout.isEmpty && byInode.stdout == byPath.stdout, "\(byInode.stdout)")
        let ji = try Support.run(Self.kpeer, ["--json", String(xfile)])
        #expect(ji.status == 0, "\(ji.stderr)")
        let idoc = try CLIContractTests.json(ji.stdout)
        #expect(CLIContractTests.socket(idoc, xfile) != nil)
        #expect(clientInodes(idoc["clients"]).isEmpty)
        #expect(clientInodes((idoc["twin"] as? [String: Any])?["clients"]) == inodes(["xclient", "xpending"]))
        // An abstract listener's twin is the file: found by its inode too.
        let z = try Support.run(Self.kpeer, [String(try s.socket("zabstract").inode)])
        #expect(z.status == 0, "\(z.stderr)")
        let both = PathTwinTests.lines(s, "zabsclient") + PathTwinTests.lines(s, "zfileclient", mark: " \(dir)/Z0")
        #expect(z.stdout == both.map { $0 + "\n" }.joined())

        // Another process's listener on the twin name: no twin, and no clients (1).
        let y = try Support.run(Self.kpeer, ["--json", dir + "/Y0"])
        #expect(y.status == 1)
        #expect(try CLIContractTests.json(y.stdout)["twin"] is NSNull)
        let yi = try Support.run(Self.kpeer, [String(try s.socket("yfile").inode)])
        #expect(yi.status == 1 && yi.stdout.isEmpty && yi.stderr.hasSuffix("has no clients\n"), "\(yi.stderr)")
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
