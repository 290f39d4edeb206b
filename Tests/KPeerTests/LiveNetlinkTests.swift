import Foundation
import Testing
@testable import PeerResolution
@testable import Rendering
@testable import SocketInventory

/// On this machine, through sock_diag: the library's answers against what
/// the fixture created.
@Suite(.serialized, .tags(.fixture), .layered) struct LiveNetlinkTests {
    static func netlinkMap() throws -> PeerMap {
        var o = ResolverOptions()
        o.method = .netlink
        return try Resolver.resolveAll(o)
    }

    /// Lines of `text` about the fixture's own sockets (the machine has others).
    static func own(_ text: String, _ f: Fixture) -> [String] {
        text.split(separator: "\n").map(String.init).filter { line in
            let parts = line.split(separator: ":", omittingEmptySubsequences: false)
            return parts.count == 6 && f.inodes.contains(UInt64(parts[2]) ?? 0)
        }.sorted()
    }

    @Test func dumpEqualsTheTruth() throws {
        let f = try Fixture()
        let map = try Self.netlinkMap()
        #expect(Self.own(Render.dump(map), f) == f.dump.sorted())
    }

    @Test func everyFixtureSocketHasItsOwners() throws {
        let f = try Fixture()
        let map = try Self.netlinkMap()
        for s in f.sockets {
            let found = try #require(map[s.inode], "socket \(s.inode) (\(s.role)) missing")
            #expect(Set(found.owners.map(\.pid)) == Set(s.pids), "owners of \(s.role) \(s.inode)")
            #expect(found.owners.allSatisfy { f.names[$0.pid] == $0.name })
        }
    }

    @Test func listenersKnowEveryPendingClientAndDatagramServersTheirSenders() throws {
        let f = try Fixture()
        let map = try Self.netlinkMap()
        let listener = try #require(f.sockets("listener").first)
        let pending = f.sockets("pending").map(\.inode)
        #expect(map[listener.inode]?.pending == pending)
        for p in pending { #expect(map[p]?.pendingOn == listener.inode) }
        let server = try #require(f.sockets("dgserver").first)
        #expect(map[server.inode]?.senders == f.sockets("dgclient").map(\.inode))
        #expect(map[server.inode]?.peer == nil)
    }

    @Test func singleSocketQueryMatchesTheDump() throws {
        let f = try Fixture()
        let dump = try SockDiag.dump()
        for s in f.sockets {
            let one = try #require(try SockDiag.query(inode: UInt32(s.inode)))
            let inDump = try #require(dump.first { $0.inode == s.inode })
            #expect(one == inDump, "\(s.role) \(s.inode)")
        }
        #expect(try SockDiag.query(inode: 4_000_000_000) == nil)
    }
}
