import Foundation
import Testing

/// `--format dot`: the fixture's connections as edges between its processes.
@Suite(.serialized, .tags(.binary, .fixture), .layered) struct DotTests {
    static var kpeer: String { Support.kpeerBinary }

    @Test func edgesFollowTheTruth() throws {
        let f = try Fixture()
        let r = try Support.run(Self.kpeer, ["--all", "--format", "dot"])
        #expect(r.status == 0, "\(r.stderr)")
        let text = r.stdout
        #expect(text.hasPrefix("digraph kpeer {"))
        let server = try #require(f.sockets("listener").first)
        let dir = try #require(f.process.arguments?.first)
        let path = "\(dir)/kpf-\(f.process.processIdentifier)-stream.sock"
        // Each accepted client: client process -> server process, path and type.
        for c in f.sockets("client") {
            #expect(text.contains("  p\(c.pids[0]) -> p\(server.pids[0]) [label=\"\(path)\\nstream\"];"), "client \(c.pids[0])")
        }
        // The pending client waits on the listener node, which its process holds.
        let pending = try #require(f.sockets("pending").first)
        #expect(text.contains("  p\(pending.pids[0]) -> l\(server.inode) [label=\"pending\""))
        #expect(text.contains("  p\(server.pids[0]) -> l\(server.inode) [style=dotted"))
        // Two socketpairs between the same two processes: one edge, counted.
        let a = try #require(f.sockets("pair").first?.pids.first), b = try #require(f.sockets("pair").last?.pids.first)
        let pairEdge = text.contains("  p\(a) -> p\(b) [label=\"socketpair\\nstream\\n×2\"];")
            || text.contains("  p\(b) -> p\(a) [label=\"socketpair\\nstream\\n×2\"];")
        #expect(pairEdge)
        // The datagram client sends to the server.
        let dc = try #require(f.sockets("dgclient").first), ds = try #require(f.sockets("dgserver").first)
        #expect(text.contains("  p\(dc.pids[0]) -> p\(ds.pids[0]) ["))
        // One end held by two processes: one edge from its first, `+1`
        // beside it; the other holder shares it with the first.
        let shared = try #require(f.sockets("shared").first), other = try #require(f.sockets("sharedpeer").first)
        let first = try #require(shared.pids.min()), kid = try #require(shared.pids.max())
        let sharedEdge = text.contains("  p\(first) -> p\(other.pids[0]) [label=\"socketpair\\nstream\", taillabel=\"+1\"];")
            || text.contains("  p\(other.pids[0]) -> p\(first) [label=\"socketpair\\nstream\", headlabel=\"+1\"];")
        #expect(sharedEdge)
        #expect(!text.contains("  p\(kid) -> p\(other.pids[0]) ") && !text.contains("  p\(other.pids[0]) -> p\(kid) "))
        #expect(text.contains("  p\(kid) -> p\(first) [label=\"shares\", style=dotted, arrowhead=none];"))
        for (pid, name) in f.names { #expect(text.contains("  p\(pid) [label=\"\(pid)\\n\(name)\"];"), "\(name)") }
    }

    @Test(.enabled(if: Support.which("dot") != nil)) func graphvizAcceptsIt() throws {
        let _ = try Fixture()
        let r = try Support.run(Self.kpeer, ["--all", "--format", "dot"])
        let dir = Support.tempDir()
        try r.stdout.write(toFile: dir + "/g.dot", atomically: true, encoding: .utf8)
        let d = try Support.run(Support.which("dot")!, ["-Tsvg", "-o", dir + "/g.svg", dir + "/g.dot"])
        #expect(d.status == 0, "\(d.stderr)")
        #expect(d.stderr.isEmpty, "\(d.stderr)")
    }
}
