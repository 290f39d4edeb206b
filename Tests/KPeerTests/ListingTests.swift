import Foundation
import Testing

/// What the listings make of cases real machines have: a socket many
/// forked processes hold, a client not accepted yet, a row of another
/// network namespace with no path.
@Suite(.serialized, .tags(.binary, .fixture), .layered) struct ListingTests {
    static var kpeer: String { Support.kpeerBinary }

    /// `--all` rows by inode.
    static func rows(_ text: String) -> [UInt64: TableRow] { TableRow.rows(text) }

    /// Where the header's Path column starts.
    static func pathColumn(_ text: String) -> Int {
        let header = text.prefix { $0 != "\n" }
        return header.range(of: "Path").map { header.utf8.distance(from: header.startIndex, to: $0.lowerBound) } ?? -1
    }

    /// The owner and peer columns of a row.
    static func owners(_ row: TableRow) -> (String, String) { (row.owners, row.peer) }

    @Test func sevenHoldersMakeOneBoundedRowAndWholeListsUnderE() throws {
        let s = try Scene(["shared", "7"])
        let a = try s.socket("a"), b = try s.socket("b")
        #expect(s.pids.count == 7)
        let first = try #require(s.pids.first)
        let bounded = "\(first)/kps-worker,+6"
        let all = try Support.run(Self.kpeer, ["--all"])
        #expect(all.status == 0, "\(all.stderr)")
        let rows = Self.rows(all.stdout)
        for end in [a, b] {
            let row = try #require(rows[end.inode], "no row for \(end.inode)")
            let (mine, peer) = Self.owners(row)
            #expect(mine == bounded, "\(row.line)")
            #expect(peer == bounded, "\(row.line)")
            // Both columns fit their widths: a pathless row ends where the path would start.
            #expect(row.line.utf8.count == Self.pathColumn(all.stdout), "\(row.line)")
        }
        // -e: every holder, in pid order.
        let whole = s.pids.map { "\($0)/kps-worker" }.joined(separator: ",")
        let e = try Support.run(Self.kpeer, ["--all", "-e"])
        #expect(e.status == 0, "\(e.stderr)")
        let erows = Self.rows(e.stdout)
        for end in [a, b] {
            let row = try #require(erows[end.inode])
            let (mine, peer) = Self.owners(row)
            #expect(mine == whole, "\(row.line)")
            #expect(peer == whole, "\(row.line)")
        }
        // --json: all seven holders of each end, and of its peer.
        let j = try Support.run(Self.kpeer, ["--json"])
        #expect(j.status == 0, "\(j.stderr)")
        let doc = try CLIContractTests.json(j.stdout)
        func holders(_ owners: Any?) -> [String] {
            Set(((owners as? [[String: Any]]) ?? []).map { "\(($0["pid"] as? NSNumber)?.int32Value ?? 0)/\($0["name"] as? String ?? "")" }).sorted()
        }
        let seven = s.pids.map { "\($0)/kps-worker" }.sorted()
        for (end, other) in [(a, b), (b, a)] {
            let sock = try #require(CLIContractTests.socket(doc, end.inode))
            #expect(holders(sock["owners"]) == seven)
            let peer = try #require(sock["peer"] as? [String: Any])
            #expect((peer["inode"] as? NSNumber)?.uint64Value == other.inode)
            #expect(holders(peer["owners"]) == seven)
        }
    }

    @Test func sevenHoldersMakeALinePerHolderInTheDump() throws {
        let s = try Scene(["shared", "7"])
        let a = try s.socket("a"), b = try s.socket("b")
        let first = try #require(s.pids.first)
        let r = try Support.run(Self.kpeer, ["--dump"])
        #expect(r.status == 0, "\(r.stderr)")
        let got = r.stdout.split(separator: "\n").map(String.init).filter {
            let f = $0.split(separator: ":", omittingEmptySubsequences: false)
            return f.count == 6 && (f[2] == "\(a.inode)" || f[2] == "\(b.inode)")
        }.sorted()
        // Each end, each holder: the peer fields name the peer's first holder.
        var want: [String] = []
        for pid in s.pids {
            want.append("kps-worker:\(pid):\(a.inode):\(b.inode):\(first):kps-worker")
            want.append("kps-worker:\(pid):\(b.inode):\(a.inode):\(first):kps-worker")
        }
        #expect(got == want.sorted())
        // --pid keeps that holder's own lines.
        let last = try #require(s.pids.last)
        let one = try Support.run(Self.kpeer, ["--dump", "--pid", String(last)])
        let mine = one.stdout.split(separator: "\n").filter { $0.contains(":\(a.inode):") || $0.contains(":\(b.inode):") }.map(String.init)
        #expect(mine.sorted() == want.filter { $0.hasPrefix("kps-worker:\(last):") }.sorted())
    }

    @Test func sevenHoldersMakeOneDotEdgeAndSharesEdges() throws {
        let s = try Scene(["shared", "7"])
        let first = try #require(s.pids.first)
        let r = try Support.run(Self.kpeer, ["--all", "--format", "dot"])
        #expect(r.status == 0, "\(r.stderr)")
        let ids = Set(s.pids.map { "p\($0)" })
        // Edges between the scene's processes (its first process also holds
        // what it inherited from the test runner).
        let edges = r.stdout.split(separator: "\n").map(String.init).filter { line in
            let f = line.split(separator: " ", omittingEmptySubsequences: true)
            return f.count > 3 && f[1] == "->" && ids.contains(String(f[0])) && ids.contains(String(f[2].prefix { $0 != ";" }))
        }
        // The connection, once, between the first holders, +6 at each end;
        // each other worker shares both ends with the first.
        var want = ["  p\(first) -> p\(first) [label=\"socketpair\\nstream\", taillabel=\"+6\", headlabel=\"+6\"];"]
        for pid in s.pids.dropFirst() {
            want.append("  p\(pid) -> p\(first) [label=\"shares\\n×2\", style=dotted, arrowhead=none];")
        }
        #expect(edges.sorted() == want.sorted())
        for pid in s.pids { #expect(r.stdout.contains("  p\(pid) [label=\"\(pid)\\nkps-worker\"];")) }
    }

    @Test func aPendingClientsDumpLineHasNoPeerSocket() throws {
        let f = try Fixture()
        let pending = try #require(f.sockets("pending").first)
        let listener = try #require(f.sockets("listener").first)
        let server = try #require(listener.pids.first)
        let r = try Support.run(Self.kpeer, ["--dump"])
        #expect(r.status == 0, "\(r.stderr)")
        let lines = r.stdout.split(separator: "\n").map { $0.split(separator: ":", omittingEmptySubsequences: false).map(String.init) }
        let mine = lines.filter { $0.count == 6 && $0[2] == "\(pending.inode)" }
        #expect(mine == [["kpf-pending", "\(pending.pids[0])", "\(pending.inode)", "0", "\(server)", "kpf-server"]])
        // An accepted client's line names the accepted socket, a real one.
        for c in f.sockets("client") {
            let line = try #require(lines.first { $0.count == 6 && $0[2] == "\(c.inode)" })
            #expect(f.sockets("accepted").map { "\($0.inode)" }.contains(line[3]), "\(line)")
        }
    }

    @Test(.tags(.root), .enabled(if: NetnsFixture.available)) func aPathlessRowOfAnotherNamespaceHasOneSpaceBeforeItsMark() throws {
        let f = try NetnsFixture()
        for args in [["--all"], ["--all", "-e"]] {
            let r = try Support.run(Self.kpeer, args)
            #expect(r.status == 0, "\(r.stderr)")
            let rows = Self.rows(r.stdout)
            let path = Self.pathColumn(r.stdout)
            for s in f.sockets {
                let row = try #require(rows[s.inode], "no row for \(s.role)")
                #expect(row.line.hasSuffix(" net:[\(f.netns)]"), "\(row.line)")
                // With no path, the mark stands in the Path column, not a
                // space after it (rows whose columns fit their widths).
                if ["listener", "accepted", "dgserver", "seqlistener", "seqaccepted"].contains(s.role) { continue }  // bound: a path
                let peer = row.peer.utf8.count + (row.pending ? 10 : 0)
                // With -e, the NS-PID, Cgroup and Held cells follow the six fact
                // cells; a cgroup path wider than its column pushes the mark right.
                let who = args.contains("-e") ? Array(row.rest.dropFirst(6).prefix(3)) : []
                guard row.owners.utf8.count <= 20 && peer <= 22 && zip(who, [22, 32, 12]).allSatisfy({ $0.utf8.count <= $1 }) else { continue }
                let at = row.line.utf8.count - "net:[\(f.netns)]".utf8.count
                #expect(at == path, "\(args) \(s.role): \(row.line)")
            }
        }
    }
}
