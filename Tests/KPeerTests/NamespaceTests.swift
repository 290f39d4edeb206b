import Foundation
import Glibc
import Testing
import KPeerSystem
@testable import PeerResolution
@testable import SocketInventory

/// The fixture run in a network namespace of its own (`unshare -n`, root):
/// its sockets live there, where a plain sock_diag dump does not reach.
final class NetnsFixture: Fixture {
    /// The namespace, from the fixture's children: stat of /proc/PID/ns/net.
    var netns: UInt64 = 0

    static var available: Bool { geteuid() == 0 && Support.which("unshare") != nil }

    init() throws {
        try super.init(launcher: [Support.which("unshare")!, "-n"])
        let pid = try #require(names.keys.min())
        netns = try #require(Files.identity("/proc/\(pid)/ns/net")?.inode)
    }
}

@Suite(.serialized, .tags(.binary, .fixture, .root), .layered) struct NamespaceTests {
    static var kpeer: String { Support.kpeerBinary }

    /// Another namespace's table is read from inside that namespace, entered
    /// through its ns file checked to be it: the fixture's rows carry its
    /// namespace; a namespace its recorded pid is not in gives no rows.
    @Test(.enabled(if: NetnsFixture.available)) func aTableIsReadFromInsideItsNamespace() throws {
        let f = try NetnsFixture()
        let pid = try #require(f.names.keys.min())
        let rows = try Resolver.readTables(namespaces: [NetNamespace(inode: f.netns, pid: pid)], procRoot: "/proc")
        let theirs = Set(rows.filter { $0.netns == f.netns }.map(\.inode))
        #expect(!f.inodes.isEmpty && f.inodes.isSubset(of: theirs))
        // The same pid recorded for another namespace: not read.
        let wrong = try Resolver.readTables(namespaces: [NetNamespace(inode: f.netns &+ 1, pid: pid)], procRoot: "/proc")
        #expect(!wrong.contains { $0.netns == f.netns &+ 1 })
    }

    @Test(.enabled(if: NetnsFixture.available)) func theFixturesNamespaceIsAnotherOne() throws {
        let f = try NetnsFixture()
        let own = try #require(NetNamespaces.current())
        #expect(f.netns != own)
        let found = OwnerScan.scan().namespaces
        let ns = try #require(found.first { $0.inode == f.netns })
        // Entering it on a thread: that thread sees the fixture's namespace,
        // the process keeps its own.
        let seen = try NetNamespaces.inside(ns) { () throws(KPeerError) -> UInt64 in
            Files.identity("/proc/thread-self/ns/net")?.inode ?? 0
        }
        #expect(seen == f.netns)
        #expect(NetNamespaces.current() == own)
    }

    @Test(.enabled(if: NetnsFixture.available)) func dumpCoversEveryNamespaceAndEqualsTheTruth() throws {
        let f = try NetnsFixture()
        for method in ["netlink", "auto"] {
            let r = try Support.run(Self.kpeer, ["--method", method, "--dump"])
            #expect(r.status == 0, "\(r.stderr)")
            let mine = r.stdout.split(separator: "\n").map(String.init).filter { line in
                let p = line.split(separator: ":", omittingEmptySubsequences: false)
                return p.count == 6 && f.inodes.contains(UInt64(p[2]) ?? 0)
            }.sorted()
            #expect(mine == f.dump.sorted(), "\(method)")
        }
    }

    @Test(.enabled(if: NetnsFixture.available)) func allMarksTheOtherNamespaceAndJSONNamesIt() throws {
        let f = try NetnsFixture()
        let host = try Fixture()  // in kpeer's own namespace: rows unmarked
        let own = try #require(NetNamespaces.current())
        let all = try Support.run(Self.kpeer, ["--all"])
        #expect(all.status == 0, "\(all.stderr)")
        let rows = TableRow.rows(all.stdout)
        func row(_ inode: UInt64) -> String? { rows[inode]?.line }
        for s in f.sockets {
            let r = try #require(row(s.inode), "no row for \(s.role) \(s.inode)")
            #expect(r.hasSuffix(" net:[\(f.netns)]"), "\(r)")
        }
        for s in host.sockets {
            let r = try #require(row(s.inode))
            #expect(!r.contains("net:["), "\(r)")
        }
        let json = try Support.run(Self.kpeer, ["--all", "--json"])
        let doc = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
        var netnsOf: [UInt64: UInt64] = [:]
        for s in doc["sockets"] as? [[String: Any]] ?? [] {
            netnsOf[(s["inode"] as! NSNumber).uint64Value] = (s["netns"] as? NSNumber)?.uint64Value
        }
        for s in f.sockets { #expect(netnsOf[s.inode] == f.netns, "\(s.role)") }
        for s in host.sockets { #expect(netnsOf[s.inode] == own, "\(s.role)") }
    }

    /// A socket file bound inside another namespace is reachable from every
    /// namespace: its clients are found there too.
    @Test(.enabled(if: NetnsFixture.available)) func aPathListenerInAnotherNamespace() throws {
        let f = try NetnsFixture()
        let dir = try #require(f.process.arguments?.last)
        let files = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasSuffix("-stream.sock") }
        let path = dir + "/" + (try #require(files.first))
        let r = try Support.run(Self.kpeer, ["--method", "netlink", path])
        #expect(r.status == 0, "\(r.stderr)")
        let want = f.sockets("client").map { "\($0.pids[0]) \(f.names[$0.pids[0]]!) \($0.inode)" }.sorted()
            + f.sockets("pending").map { "\($0.pids[0]) \(f.names[$0.pids[0]]!) \($0.inode) pending" }
        #expect(r.stdout.split(separator: "\n").map(String.init) == want)
    }
}
