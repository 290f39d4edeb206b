import CKPeer
import Glibc
import Testing
@testable import SocketInventory

/// The netlink parser, on messages assembled the way the kernel lays them out.
@Suite(.layered) struct SockDiagTests {
    static func le32(_ v: UInt32) -> [UInt8] { withUnsafeBytes(of: v.littleEndian) { Array($0) } }
    static func le16(_ v: UInt16) -> [UInt8] { withUnsafeBytes(of: v.littleEndian) { Array($0) } }

    static func attr(_ type: Int32, _ payload: [UInt8]) -> [UInt8] {
        var a = le16(UInt16(4 + payload.count)) + le16(UInt16(type)) + payload
        while a.count % 4 != 0 { a.append(0) }
        return a
    }

    static func message(type: UInt16, _ payload: [UInt8]) -> [UInt8] {
        le32(UInt32(16 + payload.count)) + le16(type) + le16(2) + le32(1) + le32(0) + payload
    }

    static func diag(inode: UInt32, type: UInt8, state: UInt8, attrs: [[UInt8]]) -> [UInt8] {
        let msg: [UInt8] = [UInt8(AF_UNIX), type, state, 0] + le32(inode) + le32(0xFFFF_FFFF) + le32(0xFFFF_FFFF)
        return message(type: UInt16(SOCK_DIAG_BY_FAMILY), msg + attrs.flatMap { $0 })
    }

    @Test func parsesPeersIconsNamesAndDone() throws {
        var bytes = Self.diag(inode: 10, type: 1, state: 10, attrs: [
            Self.attr(Int32(UNIX_DIAG_NAME), Array("/run/x.sock".utf8)),
            Self.attr(Int32(UNIX_DIAG_ICONS), Self.le32(21) + Self.le32(22) + Self.le32(23)),
            Self.attr(Int32(UNIX_DIAG_VFS), Self.le32(777) + Self.le32(0x803)),
            Self.attr(Int32(UNIX_DIAG_RQLEN), Self.le32(3) + Self.le32(128)),
        ])
        bytes += Self.diag(inode: 21, type: 1, state: 1, attrs: [Self.attr(Int32(UNIX_DIAG_PEER), Self.le32(0))])
        bytes += Self.diag(inode: 30, type: 5, state: 1, attrs: [
            Self.attr(Int32(UNIX_DIAG_NAME), [0] + Array("abstract".utf8)),
            Self.attr(Int32(UNIX_DIAG_PEER), Self.le32(31)),
        ])
        bytes += Self.message(type: UInt16(NLMSG_DONE), Self.le32(0))
        var entries: [DiagEntry] = []
        let done = try SockDiag.parse(bytes[...], into: &entries)
        #expect(done)
        #expect(entries.count == 3)
        #expect(entries[0].icons == [21, 22, 23])  // every pending client, not just the first
        #expect(entries[0].name?.display == "/run/x.sock")
        #expect(entries[0].vfs?.inode == 777)
        #expect(entries[0].rqlen?.read == 3)
        #expect(entries[1].peer == 0)
        #expect(entries[2].peer == 31)
        #expect(entries[2].name?.display == "@abstract")
    }

    @Test func enoentIsNotFoundAndOtherErrorsAreUnavailable() {
        var entries: [DiagEntry] = []
        let enoent = Self.message(type: UInt16(NLMSG_ERROR), Self.le32(UInt32(bitPattern: -ENOENT)) + [UInt8](repeating: 0, count: 16))
        #expect(kindOf { _ = try SockDiag.parse(enoent[...], into: &entries) } == .notFound)
        let eopnotsupp = Self.message(type: UInt16(NLMSG_ERROR), Self.le32(UInt32(bitPattern: -EOPNOTSUPP)) + [UInt8](repeating: 0, count: 16))
        #expect(kindOf { _ = try SockDiag.parse(eopnotsupp[...], into: &entries) } == .unavailable)
    }

    /// Every prefix of a message: a cut inside the netlink header leaves no
    /// message to read (nothing, not done); a cut after it leaves a message
    /// shorter than its header says, which is an error (74). Neither gives
    /// an entry from the bytes that are there.
    @Test func truncatedMessagesAreErrorsNotCrashes() throws {
        let good = Self.diag(inode: 5, type: 1, state: 1, attrs: [Self.attr(Int32(UNIX_DIAG_PEER), Self.le32(6))])
        let header = MemoryLayout<nlmsghdr>.size
        for cut in 1..<good.count {
            var entries: [DiagEntry] = []
            var done: Bool?
            let error = errorOf { done = try SockDiag.parse(good[0..<cut], into: &entries) }
            if cut < header {
                #expect(error == nil && done == false, "cut \(cut): \(String(describing: error))")
            } else {
                #expect(error?.kind == .io, "cut \(cut): \(String(describing: error))")
            }
            #expect(entries.isEmpty, "cut \(cut): \(entries)")
        }
        var whole: [DiagEntry] = []
        _ = try SockDiag.parse(good[...], into: &whole)
        #expect(whole.map(\.peer) == [6])
        // An attribute claiming more than the message holds is ignored: the
        // entry is there, without the peer the cut attribute would give.
        var bad = Self.diag(inode: 5, type: 1, state: 1, attrs: [])
        bad += Self.le16(200) + Self.le16(UInt16(UNIX_DIAG_PEER)) + Self.le32(6)
        bad[0] = UInt8(bad.count)
        var entries: [DiagEntry] = []
        _ = try SockDiag.parse(bad[...], into: &entries)
        #expect(entries.map(\.inode) == [5])
        #expect(entries.first?.peer == nil)
    }

    @Test func requestLayoutMatchesTheKernelStructs() {
        let r = SockDiag.request(inode: 1234, dump: false, states: 0xFFFF_FFFF, show: SockDiag.showAll)
        #expect(r.count == MemoryLayout<nlmsghdr>.size + MemoryLayout<unix_diag_req>.size)
        #expect(r[16] == UInt8(AF_UNIX))
        #expect(Array(r[24..<28]) == Self.le32(1234))  // udiag_ino
        #expect(Array(r[32..<40]) == [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF])  // cookie ~0: any
    }
}
