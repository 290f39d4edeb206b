import Glibc
import Testing
@testable import KernelMemory
@testable import KernelObjects
@testable import KPeerSystem
@testable import PeerResolution
@testable import SocketInventory
@testable import TypeOffsets

/// SocketFacts from a synthetic core laid out with this machine's BTF: the
/// connector (struct pid, struct cred), the send and receive queues, a
/// listener's backlog and a datagram receiver's senders, each placed by the
/// test where the kernel keeps it; what FactReader reads must be what was
/// put there. (The VM test holds the same facts against a live kernel.)
@Suite(.layered) struct FactReaderTests {
    static func le32(_ v: UInt32) -> [UInt8] { withUnsafeBytes(of: v.littleEndian, Array.init) }

    /// Queues `skbs` (length, sending socket) on the receive queue of `us`.
    static func queue(_ w: BTFKernel, on us: UInt64, _ skbs: [(len: UInt32, from: UInt64)]) throws {
        let head = us + (try w.off("unix_sock", "sk.sk_receive_queue"))
        var addresses: [UInt64] = []
        for s in skbs {
            let skb = w.alloc()
            w.bytes(skb + (try w.off("sk_buff", "len")), le32(s.len))
            w.core.poke(skb + (try w.off("sk_buff", "sk")), s.from)
            addresses.append(skb)
        }
        for (i, skb) in addresses.enumerated() {
            w.core.poke(skb + (try w.off("sk_buff", "next")), i + 1 < addresses.count ? addresses[i + 1] : head)
        }
        w.core.poke(head + (try w.off("sk_buff_head", "next")), addresses.first ?? head)
        w.bytes(head + (try w.off("sk_buff_head", "qlen")), le32(UInt32(skbs.count)))
    }

    @Test(.enabled(if: BTFKernel.available)) func factsAreWhatMemoryHolds() throws {
        let w = try BTFKernel()
        // A connected stream socket: made by pid 4242 (uid 1000, gid 1001),
        // 300 bytes sent and unread, two buffers (100 + 50 bytes) to read.
        let conn = try w.socket(inode: 10, name: nil)
        let pid = w.alloc(), cred = w.alloc()
        w.bytes(pid + (try w.off("pid", "level")), Self.le32(0))
        w.bytes(pid + (try w.off("pid", "numbers")) + (try w.off("upid", "nr")), Self.le32(4242))
        w.bytes(cred + (try w.off("cred", "uid.val")), Self.le32(1000))
        w.bytes(cred + (try w.off("cred", "gid.val")), Self.le32(1001))
        w.core.poke(conn + (try w.off("unix_sock", "sk.sk_peer_pid")), pid)
        w.core.poke(conn + (try w.off("unix_sock", "sk.sk_peer_cred")), cred)
        w.bytes(conn + (try w.off("unix_sock", "sk.sk_wmem_alloc.refs.counter")), Self.le32(301))
        try Self.queue(w, on: conn, [(100, 0), (50, 0)])
        // A second connection by the same process: the same pid and cred.
        let twin = try w.socket(inode: 11, name: nil)
        w.core.poke(twin + (try w.off("unix_sock", "sk.sk_peer_pid")), pid)
        w.core.poke(twin + (try w.off("unix_sock", "sk.sk_peer_cred")), cred)
        w.bytes(twin + (try w.off("unix_sock", "sk.sk_wmem_alloc.refs.counter")), Self.le32(1))
        // A listener with 3 clients waiting of a backlog of 4.
        let listener = try w.socket(inode: 20, name: Array("/run/l.sock".utf8) + [0])
        w.bytes(listener + (try w.off("unix_sock", "sk.sk_max_ack_backlog")), Self.le32(4))
        try Self.queue(w, on: listener, [(0, 0), (0, 0), (0, 0)])
        // A datagram receiver: two datagrams from s1, one from s2.
        let s1 = try w.socket(inode: 31, type: 2, name: nil), s2 = try w.socket(inode: 32, type: 2, name: nil)
        let dgram = try w.socket(inode: 30, type: 2, name: Array("/run/d.sock".utf8) + [0])
        try Self.queue(w, on: dgram, [(10, s1), (20, s2), (30, s1)])

        let reader = ObjectReader(memory: try KernelMemory(path: try w.core.write()), types: w.types)
        let facts = FactReader(reader: reader, pidLevel: 0)
        let peerAt = Int(try w.off("unix_sock", "peer"))
        w.core.poke(conn + UInt64(peerAt), twin)  // read back from the same snapshot
        // A peer offset past the bytes read with the facts (a page on):
        // read on its own, the facts unchanged.
        let farAt = 4096 + 16
        w.core.poke(conn + UInt64(farAt), 0xfeed_f00d)
        let reader2 = ObjectReader(memory: try KernelMemory(path: try w.core.write()), types: w.types)
        let facts2 = FactReader(reader: reader2, pidLevel: 0)

        func row(_ a: UInt64, _ inode: UInt64, type: UInt16 = 1, state: UInt8 = 3, listening: Bool = false) -> UnixSocketEntry {
            BTFKernel.row(a, inode: inode, type: type, state: state, path: nil, listening: listening)
        }
        let c = facts2.factsAndPeer(row(conn, 10), peerOffset: peerAt)
        #expect(c.peer == twin)
        #expect(c.facts.connector == SocketFacts.Connector(pid: 4242, uid: 1000, gid: 1001))
        #expect(c.facts.sendBytes == 300)
        #expect(c.facts.receiveQueue == SocketFacts.Queue(skbs: 2, bytes: 150, partial: false))
        let far = facts2.factsAndPeer(row(conn, 10), peerOffset: farAt)
        #expect(far.peer == 0xfeed_f00d)
        #expect(far.facts == c.facts)
        let t = facts.facts(row(twin, 11))
        #expect(t.connector == SocketFacts.Connector(pid: 4242, uid: 1000, gid: 1001))
        #expect(t.sendBytes == 0)
        #expect(t.receiveQueue == SocketFacts.Queue(skbs: 0, bytes: 0, partial: false))
        let l = facts.facts(row(listener, 20, state: 1, listening: true))
        #expect(l.backlog == SocketFacts.Backlog(pending: 3, max: 4))
        let d = facts.facts(row(dgram, 30, type: 2, state: 1))
        #expect(d.receiveQueue == SocketFacts.Queue(skbs: 3, bytes: 60, partial: false))
        #expect(d.senders.map { [$0.address, UInt64($0.datagrams), UInt64($0.bytes)] } == [[s1, 2, 40], [s2, 1, 20]])
        // A pid at a deeper level than the reader's: translated to level 0
        // of the reader; a reader deeper than the pid's level sees none.
        let deep = FactReader(reader: reader, pidLevel: 1)
        #expect(deep.facts(row(conn, 10)).connector?.pid == nil)
        #expect(facts.unavailable.isEmpty, "\(facts.unavailable)")
    }
}
