import Foundation
import Glibc
import Testing
import KPeerSystem
@testable import PeerResolution
@testable import SocketInventory

/// `kpeer PATH` and `kpeer @name`: against sockets the fixture made and
/// sockets this test makes itself (inodes from fstat, its own pid).
@Suite(.serialized, .tags(.binary, .fixture), .layered) struct PathQueryTests {
    static var kpeer: String { Support.kpeerBinary }

    /// `PID NAME INODE[ pending]` lines the fixture's truth implies for its
    /// stream listener: the two accepted clients, then the pending one.
    static func expectedStreamClients(_ f: Fixture) -> [String] {
        let line = { (s: Fixture.Socket) in "\(s.pids[0]) \(f.names[s.pids[0]]!) \(s.inode)" }
        return f.sockets("client").map(line).sorted { Int($0.split(separator: " ")[0])! < Int($1.split(separator: " ")[0])! }
            + f.sockets("pending").map { line($0) + " pending" }
    }

    static func fixturePath(_ f: Fixture, _ kind: String) throws -> String {
        let pid = try #require(f.process.processIdentifier as Int32?)
        let dir = try #require(f.process.arguments?.first)
        return "\(dir)/kpf-\(pid)-\(kind).sock"
    }

    @Test(.tags(.root), arguments: ["netlink", "auto"])
    func streamListenerListsAcceptedAndPendingClients(method: String) throws {
        let f = try Fixture()
        let path = try Self.fixturePath(f, "stream")
        let r = try Support.run(Self.kpeer, ["--method", method, path])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.split(separator: "\n").map(String.init) == Self.expectedStreamClients(f))
        #expect(OwnerGaps.isQuiet(r.stderr), "\(r.stderr)")
    }

    @Test func abstractAndDatagramNames() throws {
        let f = try Fixture()
        let seq = try Support.run(Self.kpeer, ["@kpeer-fixture-\(f.process.processIdentifier)"])
        let c = try #require(f.sockets("seqclient").first)
        #expect(seq.status == 0, "\(seq.stderr)")
        #expect(seq.stdout == "\(c.pids[0]) \(f.names[c.pids[0]]!) \(c.inode)\n")
        let dg = try Support.run(Self.kpeer, [try Self.fixturePath(f, "dgram")])
        let d = try #require(f.sockets("dgclient").first)
        #expect(dg.status == 0, "\(dg.stderr)")
        #expect(dg.stdout == "\(d.pids[0]) \(f.names[d.pids[0]]!) \(d.inode)\n")
    }

    @Test func jsonNamesListenerClientsAndAcceptedEnds() throws {
        let f = try Fixture()
        let r = try Support.run(Self.kpeer, ["--json", try Self.fixturePath(f, "stream")])
        #expect(r.status == 0, "\(r.stderr)")
        let doc = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        let listener = try #require(doc["listener"] as? [String: Any])
        #expect((listener["inode"] as? NSNumber)?.uint64Value == f.sockets("listener").first?.inode)
        let clients = try #require(doc["clients"] as? [[String: Any]])
        let got = Set(clients.map { (($0["inode"] as! NSNumber).uint64Value, $0["pending"] as! Bool) }.map { "\($0.0) \($0.1)" })
        let want = Set(f.sockets("client").map { "\($0.inode) false" } + f.sockets("pending").map { "\($0.inode) true" })
        #expect(got == want)
        // The accepted ends are the fixture's "accepted" sockets.
        let accepted = Set(clients.compactMap { ($0["accepted_as"] as? [String: Any])?["inode"] as? NSNumber }.map(\.uint64Value))
        #expect(accepted == Set(f.sockets("accepted").map(\.inode)))
    }

    /// Sockets this test owns: a listener whose file is unlinked and bound
    /// again by a second listener. Only the second one's client is shown.
    final class Rebound {
        let dir = Support.tempDir()
        var path: String { dir + "/rebound.sock" }
        var fds: [Int32] = []
        var oldClient: UInt64 = 0, newClient: UInt64 = 0, newPending: UInt64 = 0

        func socketFD(_ type: Int32 = Int32(SOCK_STREAM.rawValue)) -> Int32 {
            let fd = socket(AF_UNIX, type | OwnSockets.cloexec, 0)
            fds.append(fd)
            return fd
        }

        func withAddress<T>(_ body: (UnsafePointer<sockaddr>, socklen_t) -> T) -> T {
            var sa = sockaddr_un()
            sa.sun_family = sa_family_t(AF_UNIX)
            let bytes = Array(path.utf8)
            withUnsafeMutableBytes(of: &sa.sun_path) { raw in
                for (i, b) in bytes.enumerated() { raw[i] = b }
            }
            return withUnsafePointer(to: &sa) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
            }
        }

        func listener() throws -> Int32 {
            let l = socketFD()
            guard withAddress({ bind(l, $0, $1) }) == 0, listen(l, 8) == 0 else { throw Support.Failure("bind \(errno)") }
            return l
        }

        func client() throws -> Int32 {
            let c = socketFD()
            guard withAddress({ connect(c, $0, $1) }) == 0 else { throw Support.Failure("connect \(errno)") }
            return c
        }

        init() throws {
            let l1 = try listener()
            let c1 = try client()
            fds.append(OwnSockets.accept(l1))
            oldClient = Files.inode(fd: c1)!
            unlink(path)
            let l2 = try listener()
            let c2 = try client()
            fds.append(OwnSockets.accept(l2))
            newClient = Files.inode(fd: c2)!
            newPending = Files.inode(fd: try client())!
        }

        deinit {
            for fd in fds { close(fd) }
            unlink(path)
        }
    }

    @Test(arguments: ["netlink", "auto"])
    func aReboundPathShowsOnlyTheNewListenersClients(method: String) throws {
        let s = try Rebound()
        let me = getpid()
        let name = try #require(Files.text("/proc/self/comm"))
        let r = try Support.run(Self.kpeer, ["--method", method, s.path])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout == "\(me) \(name) \(s.newClient)\n\(me) \(name) \(s.newPending) pending\n")
        #expect(!r.stdout.contains(String(s.oldClient)))

        // The library agrees, and knows the old listener is not the one.
        var o = ResolverOptions()
        o.method = .netlink
        let answer = try PathQuery.answer(.file(s.path), in: try Resolver.resolve(o, boundFiles: true))
        #expect(answer.clients.map(\.inode) == [s.newClient, s.newPending])
        #expect(answer.clients.map(\.pending) == [false, true])
    }

    @Test func aStaleSocketFileIsNoSocket() throws {
        let dir = Support.tempDir()
        let path = dir + "/stale.sock"
        let s = try Rebound()
        // A socket file whose socket is closed: same kind of file, nothing bound.
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | OwnSockets.cloexec, 0)
        var sa = sockaddr_un()
        sa.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &sa.sun_path) { raw in for (i, b) in path.utf8.enumerated() { raw[i] = b } }
        let rc = withUnsafePointer(to: &sa) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
        #expect(rc == 0)
        close(fd)
        _ = s
        for args in [[path], [dir + "/missing.sock"], ["/etc/hostname"], ["@kpeer-no-such-name-\(getpid())"]] {
            let r = try Support.run(Self.kpeer, args)
            #expect(r.status == 2, "\(args): \(r.stderr)")
            #expect(r.stdout.isEmpty)
            #expect(r.stderr.split(separator: "\n").count == 1, "\(args): \(r.stderr)")
        }
    }

    @Test func aListenerWithoutClientsSaysSoWithStatusOne() throws {
        let s = try Rebound()
        // A third listener on a fresh path, nobody connected.
        let dir = Support.tempDir()
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | OwnSockets.cloexec, 0)
        defer { close(fd) }
        var sa = sockaddr_un()
        sa.sun_family = sa_family_t(AF_UNIX)
        let path = dir + "/quiet.sock"
        withUnsafeMutableBytes(of: &sa.sun_path) { raw in for (i, b) in path.utf8.enumerated() { raw[i] = b } }
        let rc = withUnsafePointer(to: &sa) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
        #expect(rc == 0 && listen(fd, 1) == 0)
        _ = s
        let r = try Support.run(Self.kpeer, [path])
        #expect(r.status == 1, "\(r.stderr)")
        #expect(r.stdout.isEmpty)
        #expect(r.stderr.split(separator: "\n").count == 1)
        #expect(r.stderr.contains(String(Files.inode(fd: fd)!)))
    }

    @Test func argumentsAreTellApart() throws {
        #expect(try QueryTarget.parse("123") == .inode(123))
        #expect(try QueryTarget.parse("@x") == .abstract(Array("x".utf8)))
        #expect(try QueryTarget.parse("./s") == .file("./s"))
        for bad in ["abc", "@", "", "0", "99999999999"] {
            #expect(throws: KPeerError.self) { try QueryTarget.parse(bad) }
        }
    }

    /// stat's dev_t and the kernel's s_dev encode major:minor differently.
    @Test func deviceNumbersFromStatAndSockDiagMeetInMajorMinor() throws {
        for (major, minor) in [(UInt64(0), UInt64(33)), (8, 1), (259, 300), (4095, 0xFFFFF)] {
            // glibc makedev (sys/sysmacros.h) and the kernel's MKDEV.
            let statDev = ((major & 0xFFF) << 8) | ((major & ~0xFFF) << 32) | (minor & 0xFF) | ((minor & ~0xFF) << 12)
            let kernelDev = major << 20 | minor
            let a = BoundFile(statInode: 7, statDevice: statDev)
            let b = BoundFile(diagInode: 7, diagDevice: kernelDev)
            #expect(a == b, "\(major):\(minor)")
            #expect(a.major == UInt32(major) && a.minor == UInt32(minor))
        }
        // And live: a socket this test binds is found under stat's identity.
        let s = try Rebound()
        let file = try PathQuery.boundFile(at: s.path)
        var o = ResolverOptions()
        o.method = .netlink
        let r = try Resolver.resolve(o, boundFiles: true)
        let bound = (r.boundFiles ?? [:]).filter { $0.value == file }.keys
        #expect(!bound.isEmpty)
        #expect(bound.allSatisfy { r.map[$0] != nil })
    }
}
