import Foundation
import Testing

/// --pid, --type, --listening against the fixture's truth.
@Suite(.serialized, .tags(.binary, .fixture), .layered) struct FilterTests {
    static var kpeer: String { Support.kpeerBinary }

    /// Rows of the table, by inode.
    static func rows(_ text: String) -> [UInt64: TableRow] { TableRow.rows(text) }

    @Test func pidKeepsThatProcessesSockets() throws {
        let f = try Fixture()
        let server = try #require(f.sockets("listener").first?.pids.first)
        let all = try Support.run(Self.kpeer, ["--all", "--pid", String(server)])
        #expect(all.status == 0, "\(all.stderr)")
        let rows = Self.rows(all.stdout)
        // The fixture's children also inherit a descriptor or two from the
        // test process: the truth covers the fixture's own sockets.
        let mine = Set(f.sockets.filter { $0.pids.contains(server) }.map(\.inode))
        #expect(Set(rows.keys).intersection(f.inodes) == mine)
        // Every row's holders (-e lists them all) include it.
        let whole = Self.rows(try Support.run(Self.kpeer, ["--all", "-e", "--pid", String(server)]).stdout)
        #expect(Set(whole.keys) == Set(rows.keys))
        #expect(!whole.isEmpty && whole.values.allSatisfy { $0.owners.split(separator: ",").contains { $0.hasPrefix("\(server)/") } })
        let dump = try Support.run(Self.kpeer, ["--dump", "--pid", String(server)])
        let lines = dump.stdout.split(separator: "\n").map(String.init)
        #expect(lines.allSatisfy { $0.split(separator: ":")[1] == String(server) })
        #expect(LiveNetlinkTests.own(dump.stdout, f) == f.dump.filter { $0.split(separator: ":")[1] == String(server) }.sorted())
        // Filters alone mean the table.
        let alone = try Support.run(Self.kpeer, ["--pid", String(server)])
        #expect(alone.status == 0)
        #expect(Self.rows(alone.stdout).filter { f.inodes.contains($0.key) } == rows.filter { f.inodes.contains($0.key) })
    }

    @Test func typeAndListening() throws {
        let f = try Fixture()
        let seq = try Support.run(Self.kpeer, ["--all", "--type", "seqpacket"])
        let seqRows = Self.rows(seq.stdout)
        #expect(!seqRows.isEmpty && seqRows.values.allSatisfy { $0.type == "SEQPACKET" })
        let seqMine = Set(f.sockets.filter { $0.role.hasPrefix("seq") }.map(\.inode))
        #expect(Set(seqRows.keys).intersection(f.inodes) == seqMine)

        let lst = try Support.run(Self.kpeer, ["--all", "--listening"])
        let lstRows = Self.rows(lst.stdout)
        #expect(!lstRows.isEmpty && lstRows.values.allSatisfy { $0.state == "LISTENING" && $0.accepting })
        #expect(Set(lstRows.keys).intersection(f.inodes) == Set(f.sockets("listener").map(\.inode) + f.sockets("seqlistener").map(\.inode)))

        let both = try Support.run(Self.kpeer, ["--json", "--type", "stream", "--listening"])
        let doc = try #require(try JSONSerialization.jsonObject(with: Data(both.stdout.utf8)) as? [String: Any])
        let socks = try #require(doc["sockets"] as? [[String: Any]])
        #expect(socks.allSatisfy { $0["type"] as? String == "stream" && $0["state"] as? String == "listening" })
        let inodes = Set(socks.map { ($0["inode"] as! NSNumber).uint64Value })
        #expect(inodes.intersection(f.inodes) == Set(f.sockets("listener").map(\.inode)))
    }

    @Test(arguments: [BadInput]([
        (["--pid", "0", "--all"], Int32(64)), (["--pid", "x", "--all"], 64), (["--type", "raw", "--all"], 64),
        (["--pid", "1", "12345"], 64), (["--format", "dot", "12345"], 64), (["--json", "--format", "dot"], 64),
        (["--format", "sideways"], 64), (["--listening", "/tmp"], 64), (["--find-offset", "--type", "stream"], 64),
        (["@"], 64),
    ].map { BadInput(args: $0.0, status: $0.1) }))
    func badFilterInput(_ input: BadInput) throws {
        let r = try Support.run(Self.kpeer, input.args)
        #expect(r.status == input.status, "\(input.args): \(r.stderr)")
        #expect(r.stdout.isEmpty)
        #expect(r.stderr.split(separator: "\n").count == 1, "\(input.args): \(r.stderr)")
    }
}
