import Foundation
import Glibc
import Testing

/// The netlink method's connector (SO_PEERCRED on a pidfd_getfd(2) copy of
/// a holder's descriptor), held against what this test made: a socketpair's
/// connector is its creator, and a client's is the process that called
/// listen(), whoever holds the socket now.
@Suite(.tags(.binary, .fixture, .root), .layered) struct NetlinkConnectorTests {
    static var usable: Bool { getuid() == 0 }

    /// `status`: what the text form exits with for this socket (--json
    /// exits the same, still printing its document).
    func kernel(_ inode: UInt64, status: Int32 = 0) throws -> [String: Any]? {
        let r = try Support.run(Support.kpeerBinary, ["--method", "netlink", "--json", String(inode)])
        #expect(r.status == status, "\(r.stderr)")
        let doc = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]
        let socket = (doc?["sockets"] as? [[String: Any]])?.first { ($0["inode"] as? NSNumber)?.uint64Value == inode }
        return socket?["kernel"] as? [String: Any]
    }

    static func inode(_ fd: Int32) -> UInt64 {
        var st = stat()
        fstat(fd, &st)
        return UInt64(st.st_ino)
    }

    @Test(.enabled(if: usable, "needs root (pidfd_getfd of other processes' descriptors)"))
    func aSocketpairWasMadeByItsCreator() throws {
        var sv: [Int32] = [-1, -1]
        try #require(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | OwnSockets.cloexec, 0, &sv) == 0)
        defer { close(sv[0]); close(sv[1]) }
        let k = try #require(try kernel(Self.inode(sv[0])))
        let c = try #require(k["connector"] as? [String: Any])
        #expect((c["pid"] as? NSNumber)?.int32Value == getpid())
        #expect((c["uid"] as? NSNumber)?.uint32Value == getuid())
        #expect((c["gid"] as? NSNumber)?.uint32Value == getgid())
        #expect(k["receive_queue"] is NSNull)  // what only kernel memory tells: not claimed
    }

    /// A client made by a child that exits: the accepted socket's connector
    /// is the child (gone), its holder this process.
    @Test(.enabled(if: usable, "needs root"))
    func anAcceptedSocketNamesTheProcessThatConnected() throws {
        let path = Support.tempDir() + "/l.sock"
        let l = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | OwnSockets.cloexec, 0)
        defer { close(l); unlink(path) }
        var a = sockaddr_un()
        a.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &a.sun_path) { b in for (i, c) in path.utf8.enumerated() { b[i] = c } }
        let len = socklen_t(MemoryLayout<sockaddr_un>.size)
        try #require(withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(l, $0, len) } } == 0)
        try #require(listen(l, 4) == 0)
        let child = try Support.run("/usr/bin/python3", ["-c", """
            import os, socket; s = socket.socket(socket.AF_UNIX); s.connect("\(path)"); print(os.getpid())
            """])
        let childPid = Int32(child.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
        try #require(child.status == 0 && childPid != nil, "\(child.stderr)")
        let acc = OwnSockets.accept(l)
        try #require(acc >= 0)
        defer { close(acc) }
        // The client has closed: the accepted socket has no peer left (1).
        let k = try #require(try kernel(Self.inode(acc), status: 1))
        let c = try #require(k["connector"] as? [String: Any])
        #expect((c["pid"] as? NSNumber)?.int32Value == childPid)
        #expect((c["pid"] as? NSNumber)?.int32Value != getpid())
    }
}
