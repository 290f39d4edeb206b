import Foundation
import Testing
import PeerResolution
import Rendering

/// A listener's twin (the X server's file and abstract name): the scene's
/// listeners, by what it bound and connected itself.
@Suite(.serialized, .tags(.fixture), .layered) struct PathTwinTests {
    static func resolution() throws -> Resolution {
        var o = ResolverOptions()
        o.method = .netlink
        return try Resolver.resolve(o, boundFiles: true)
    }

    /// `PID NAME INODE[ pending]` lines of the scene's clients with `role`,
    /// by pid then inode, as `kpeer PATH` prints them.
    static func lines(_ s: Scene, _ role: String, pending: Bool = false, mark: String = "") -> [String] {
        s.sockets(role).sorted { ($0.pid, $0.inode) < ($1.pid, $1.inode) }
            .map { "\($0.pid) \(s.names[$0.pid]!) \($0.inode)" + (pending ? " pending" : "") + mark }
    }

    @Test func theFileWithoutClientsShowsItsAbstractTwinsClientsMarked() throws {
        let dir = Support.tempDir()
        let s = try Scene(["twin", dir])
        let r = try Self.resolution()
        let file = try PathQuery.answer(.file(dir + "/X0"), in: r)
        #expect(file.listener.inode == (try s.socket("xfile")).inode)
        #expect(file.clients.isEmpty)
        let twin = try #require(PathTwin.find(file, in: r))
        #expect(twin.listener.inode == (try s.socket("xabstract")).inode)
        #expect(twin.query == "@" + dir + "/X0")
        let want = Self.lines(s, "xclient", mark: " @\(dir)/X0") + Self.lines(s, "xpending", pending: true, mark: " @\(dir)/X0")
        #expect(Render.clients(file, twin: twin) == want.map { $0 + "\n" }.joined())
        // The reverse: the abstract name's twin is the file, with no client
        // to add; the abstract clients print as they always did.
        let abstract = try PathQuery.answer(.abstract(Array((dir + "/X0").utf8)), in: r)
        let back = try #require(PathTwin.find(abstract, in: r))
        #expect(back.listener.inode == (try s.socket("xfile")).inode)
        #expect(Render.clients(abstract, twin: back) == Render.clients(abstract))
    }

    @Test func bothNamesWithClientsShowBoth() throws {
        let dir = Support.tempDir()
        let s = try Scene(["twin", dir])
        let r = try Self.resolution()
        let file = try PathQuery.answer(.file(dir + "/Z0"), in: r)
        let twin = try #require(PathTwin.find(file, in: r))
        let want = Self.lines(s, "zfileclient") + Self.lines(s, "zabsclient", mark: " @\(dir)/Z0")
        #expect(Render.clients(file, twin: twin) == want.map { $0 + "\n" }.joined())
        let abstract = try PathQuery.answer(.abstract(Array((dir + "/Z0").utf8)), in: r)
        let back = try #require(PathTwin.find(abstract, in: r))
        let reverse = Self.lines(s, "zabsclient") + Self.lines(s, "zfileclient", mark: " \(dir)/Z0")
        #expect(Render.clients(abstract, twin: back) == reverse.map { $0 + "\n" }.joined())
    }

    @Test func aNameAnotherProcessHoldsIsNoTwin() throws {
        let dir = Support.tempDir()
        let s = try Scene(["twin", dir])
        let r = try Self.resolution()
        let file = try PathQuery.answer(.file(dir + "/Y0"), in: r)
        #expect(file.listener.inode == (try s.socket("yfile")).inode)
        // @DIR/Y0 exists and has a client, but the stranger holds it.
        let abstract = try PathQuery.answer(.abstract(Array((dir + "/Y0").utf8)), in: r)
        #expect(abstract.listener.inode == (try s.socket("yabstract")).inode)
        #expect(abstract.clients.map(\.inode) == s.sockets("yclient").map(\.inode))
        #expect(PathTwin.find(file, in: r) == nil)
        #expect(PathTwin.find(abstract, in: r) == nil)
    }
}
