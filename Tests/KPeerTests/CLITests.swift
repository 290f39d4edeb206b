import Foundation
import Testing

struct BadInput: Sendable, CustomTestStringConvertible {
    var args: [String]
    var status: Int32
    var testDescription: String { args.joined(separator: " ") }
}

/// The built kpeer binary: the original tool's three forms, JSON, exit statuses.
@Suite(.serialized, .tags(.binary, .fixture), .layered) struct CLITests {
    static var kpeer: String { Support.kpeerBinary }

    @Test func dumpAndAllAgreeWithTheTruth() throws {
        let f = try Fixture()
        let dump = try Support.run(Self.kpeer, ["--dump"])
        #expect(dump.status == 0)
        #expect(LiveNetlinkTests.own(dump.stdout, f) == f.dump.sorted())

        let all = try Support.run(Self.kpeer, ["--all"])
        #expect(all.status == 0)
        #expect(all.stdout.split(separator: "\n").first
                == "Proto RefCnt Flags       Type       State         I-Node   PID/Program name     Peer PID/Program name  Path")
        let rows = TableRow.rows(all.stdout)
        for line in f.links {
            let p = line.split(separator: ":")
            let r = try #require(rows[UInt64(p[2])!], "no row for \(p[2])")
            // Each column: the socket's first holder, `,+N` for the others.
            #expect(r.owners == f.ownerColumn(UInt64(p[2])!) ?? "?", "\(r.line)")
            #expect(r.peer == f.ownerColumn(UInt64(p[3])!) ?? "?", "\(r.line)")
        }
    }

    @Test(.tags(.root)) func inodeAnswersLikeSocketPeer() throws {
        let f = try Fixture()
        for role in ["pair", "accepted", "client", "seqclient", "seqaccepted", "shared", "sharedpeer", "dgclient"] {
            for s in f.sockets(role) {
                let r = try Support.run(Self.kpeer, [String(s.inode)])
                #expect(r.status == 0, "\(role) \(s.inode): \(r.stderr)")
                #expect(r.stdout.split(separator: "\n").map(String.init) == f.expectedAnswer(s.inode), "\(role) \(s.inode)")
                #expect(OwnerGaps.isQuiet(r.stderr), "\(r.stderr)")
            }
        }
    }

    @Test func sockets_without_a_held_peer_get_one_line_and_their_status() throws {
        let f = try Fixture()
        let cases: [(String, Int32)] = [("pending", 3), ("lonely", 1), ("dgserver", 1)]
        for (role, status) in cases {
            for s in f.sockets(role) {
                let r = try Support.run(Self.kpeer, [String(s.inode)])
                #expect(r.status == status, "\(role): \(r.stderr)")
                #expect(r.stdout.isEmpty)
                #expect(r.stderr.split(separator: "\n").count == 1, "\(role): \(r.stderr)")
            }
        }
        // The pending client's message names its listener and the listening process.
        let pending = try #require(f.sockets("pending").first)
        let listener = try #require(f.sockets("listener").first)
        let r = try Support.run(Self.kpeer, [String(pending.inode)])
        #expect(r.stderr.contains(String(listener.inode)))
        #expect(r.stderr.contains("\(listener.pids[0])/\(f.names[listener.pids[0]]!)"))
        // A listener's inode lists its clients, as its path does.
        let byInode = try Support.run(Self.kpeer, [String(listener.inode)])
        #expect(byInode.status == 0, "\(byInode.stderr)")
        #expect(byInode.stdout.split(separator: "\n").map(String.init) == PathQueryTests.expectedStreamClients(f))
    }

    @Test func jsonDescribesPeersPendingAndSenders() throws {
        let f = try Fixture()
        let r = try Support.run(Self.kpeer, ["--all", "--json"])
        #expect(r.status == 0)
        let doc = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        #expect(doc["method"] as? String == "netlink")
        let sockets = try #require(doc["sockets"] as? [[String: Any]])
        var byInode: [UInt64: [String: Any]] = [:]
        for s in sockets { byInode[(s["inode"] as! NSNumber).uint64Value] = s }
        for line in f.links {
            let p = line.split(separator: ":")
            let s = try #require(byInode[UInt64(p[2])!])
            let peer = (s["peer"] as? [String: Any]) ?? (s["pending_on"] as? [String: Any])
            #expect((peer?["inode"] as? NSNumber)?.uint64Value == UInt64(p[3]), "\(line)")
            let pids = ((peer?["owners"] as? [[String: Any]]) ?? []).map { ($0["pid"] as! NSNumber).int32Value }
            #expect(pids.contains(Int32(p[4])!))
        }
        let listener = try #require(f.sockets("listener").first)
        let pending = (byInode[listener.inode]?["pending"] as? [[String: Any]])?.map { ($0["inode"] as! NSNumber).uint64Value }
        #expect(pending == f.sockets("pending").map(\.inode))
        let server = try #require(f.sockets("dgserver").first)
        let senders = (byInode[server.inode]?["senders"] as? [[String: Any]])?.map { ($0["inode"] as! NSNumber).uint64Value }
        #expect(senders == f.sockets("dgclient").map(\.inode))

        let one = try Support.run(Self.kpeer, ["--json", String(listener.inode)])
        let oneDoc = try #require(try JSONSerialization.jsonObject(with: Data(one.stdout.utf8)) as? [String: Any])
        #expect((oneDoc["sockets"] as? [[String: Any]])?.count == 1)
    }

    /// Bad input: one line on stderr, nothing on stdout, the documented status.
    @Test(arguments: [BadInput]([
        (["abc"], Int32(64)), (["--", "-5"], 64), (["99999999999999"], 64), (["0"], 64),
        (["4000000000"], 2), (["--bogus"], 64), (["--all", "--dump"], 64), ([], 64),
        (["--method", "sideways", "--all"], 64), (["--offset", "3", "--all"], 64),
        (["--offset", "x", "--all"], 64),
        (["--kcore", "/etc/hostname", "--all"], 65), (["--kcore", "/bin/true", "--all"], 65),
        (["--kcore", "/nonexistent", "--all"], 65),
        (["--dwarf", "/etc/hostname", "--all"], 65), (["--btf", "/etc/hostname", "--all"], 65),
    ].map { BadInput(args: $0.0, status: $0.1) }))
    func badInput(_ input: BadInput) throws {
        let (args, status) = (input.args, input.status)
        let r = try Support.run(Self.kpeer, args)
        #expect(r.status == status, "\(args): \(r.stderr)")
        #expect(r.stdout.isEmpty, "\(args)")
        let lines = r.stderr.split(separator: "\n")
        #expect(lines.count == 1, "\(args): \(r.stderr)")
        #expect(lines.first?.hasPrefix("kpeer: ") == true)
    }

    @Test func kcoreWithoutKcoreSaysWhy() throws {
        guard !FileManager.default.fileExists(atPath: "/proc/kcore") else { return }
        let r = try Support.run(Self.kpeer, ["--method", "kcore", "--all"])
        #expect(r.status == 69)
        #expect(r.stderr.contains("CONFIG_PROC_KCORE"))
        #expect(r.stdout.isEmpty)
        let auto = try Support.run(Self.kpeer, ["--all", "-v"])
        #expect(auto.status == 0)
        #expect(auto.stderr.contains("method netlink"))
    }

    @Test func helpShowsTheOriginalCommands() throws {
        let r = try Support.run(Self.kpeer, ["--help"])
        #expect(r.status == 0)
        for command in ["socket_peer INODE", "netstat_unix --dump", "find_gdb_offset"] { #expect(r.stdout.contains(command)) }
    }
}
