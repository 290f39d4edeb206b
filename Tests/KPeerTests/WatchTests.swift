import CKPeer
import Foundation
import KPeerSystem
import Glibc
import SocketInventory
import Testing
@testable import Watch

/// kpeer --watch: the embedded BPF object, the polling fallback against real
/// sockets this test makes, the kernel events' enrichment and filtering, the
/// output forms, and the signals that end a watch. (The BPF program itself
/// runs in the VM test, guest.d/watch.sh: this host's kernel cannot load it.)
@Suite(.serialized, .tags(.fixture), .layered)
struct WatchTests {
    // MARK: the embedded object

    @Test func base64DecodesRFC4648Vectors() {
        #expect(Base64.decode("") == [])
        #expect(Base64.decode("TQ==") == Array("M".utf8))
        #expect(Base64.decode("TWE=") == Array("Ma".utf8))
        #expect(Base64.decode("TWFu") == Array("Man".utf8))
        #expect(Base64.decode("Zm9vYmFy") == Array("foobar".utf8))
        #expect(Base64.decode("TWF") == nil)
        #expect(Base64.decode("TW=u") == nil)
        #expect(Base64.decode("T!Fu") == nil)
    }

    /// The build compiled the program and embedded it: an ELF file for the
    /// BPF machine (e_machine 247), 64-bit little-endian, with a section
    /// per hook for each way of attaching.
    @Test func embeddedObjectIsABPFELFWithEveryHook() throws {
        let b = BPFObject.bytes
        #expect(b.count > 1024)
        #expect(Array(b.prefix(4)) == [0x7F, 0x45, 0x4C, 0x46])
        #expect(b[4] == 2 && b[5] == 1)  // ELFCLASS64, ELFDATA2LSB
        #expect(UInt16(b[18]) | UInt16(b[19]) << 8 == 247)
        let text = String(decoding: b.map { $0 == 0 ? 0x0A : $0 }, as: UTF8.self)
        let names = Set(text.split(separator: "\n").map(String.init))
        for f in ["security_unix_stream_connect", "unix_accept", "unix_release_sock", "unix_socketpair",
                  "unix_dgram_connect", "security_unix_may_send"] {
            #expect(names.contains { $0.hasSuffix("/" + f) && ($0.hasPrefix("fentry/") || $0.hasPrefix("fexit/")) }, "fentry \(f)")
            #expect(names.contains { $0.hasSuffix("/" + f) && $0.hasPrefix("kprobe/") }, "kprobe \(f)")
        }
        #expect(names.contains("license") || text.contains("GPL"))
    }

    /// Where the kernel refuses the program (this host), the reason is one
    /// line per hook; where it loads, connect, accept and close attach.
    @Test func loaderSaysWhyInOneLineOrAttaches() {
        do {
            let bpf = try BPFWatch()
            defer { bpf.close() }
            #expect(bpf.hooks.count == Int(KPW_HOOKS))
            for h in bpf.hooks where h.state == .none {
                #expect(!h.failure.isEmpty && !h.failure.contains("\n"), "\(h.name)")
            }
            for h in bpf.hooks where h.state != .none { #expect(h.failure.isEmpty) }
        } catch {
            #expect(error.kind == .unavailable)
            #expect(!error.problem.isEmpty && !error.problem.contains("\n"))
        }
    }

    // MARK: polling sock_diag, on sockets made here

    static func inode(_ fd: Int32) -> UInt64 {
        var st = stat()
        return fstat(fd, &st) == 0 ? UInt64(st.st_ino) : 0
    }

    static func abstractAddress(_ name: String) -> (sockaddr_un, socklen_t) {
        var a = sockaddr_un()
        a.sun_family = sa_family_t(AF_UNIX)
        let bytes = [UInt8(0)] + Array(name.utf8)
        withUnsafeMutableBytes(of: &a.sun_path) { p in for (i, c) in bytes.enumerated() { p[i] = c } }
        return (a, socklen_t(MemoryLayout<sa_family_t>.size + bytes.count))
    }

    static func listen(_ name: String, type: Int32 = Int32(SOCK_STREAM.rawValue)) -> Int32 {
        var (a, len) = abstractAddress(name)
        let fd = socket(AF_UNIX, type | OwnSockets.cloexec, 0)
        let ok = withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } } == 0
        precondition(ok && Glibc.listen(fd, 8) == 0, "listen \(name)")
        return fd
    }

    static func connect(_ name: String, type: Int32 = Int32(SOCK_STREAM.rawValue)) -> Int32 {
        var (a, len) = abstractAddress(name)
        let fd = socket(AF_UNIX, type | OwnSockets.cloexec, 0)
        let ok = withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, len) } } == 0
        precondition(ok, "connect \(name)")
        return fd
    }

    /// Each change between two polls is reported, with the sockets' real
    /// inodes (fstat) and this process as their holder; nothing of ours is
    /// reported twice or before it happened.
    @Test func pollingReportsWhatChangedBetweenPolls() throws {
        let me = getpid()
        let name = "kpeer-watch-test-\(me)"
        var poller = PollWatch()
        func ours(_ events: [WatchEvent], _ mine: Set<UInt64>) -> [WatchEvent] {
            events.filter { mine.contains($0.inode) || ($0.peer.map(mine.contains) ?? false) }
        }
        #expect(try poller.poll(now: 1).isEmpty)  // the baseline

        let l = Self.listen(name)
        let c = Self.connect(name)
        let s = OwnSockets.accept(l)
        #expect(s >= 0)
        let (li, ci, si) = (Self.inode(l), Self.inode(c), Self.inode(s))
        var e = ours(try poller.poll(now: 2), [li, ci, si])
        #expect(e.map(\.kind) == [.connect, .accept])
        #expect(e.first?.inode == ci && e.first?.listener == li && e.first?.process?.pid == me)
        #expect(e.last?.inode == si && e.last?.peer == ci && e.last?.listener == li && e.last?.process?.pid == me)
        #expect(e.allSatisfy { $0.time == 2 && $0.source == .poll && $0.type == .stream })

        var sv: [Int32] = [0, 0]
        #expect(socketpair(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | OwnSockets.cloexec, 0, &sv) == 0)
        let (a, b) = (Self.inode(sv[0]), Self.inode(sv[1]))
        e = ours(try poller.poll(now: 3), [li, ci, si, a, b])
        #expect(e.count == 1 && e.first?.kind == .pair && e.first?.type == .dgram)
        #expect(Set([e.first?.inode, e.first?.peer]) == Set([min(a, b), max(a, b)]))

        // A socket's close shows once its last reference goes: another
        // kpeer running meanwhile may hold a copy for a moment (pidfd_getfd
        // for SO_PEERCRED), so poll until it shows, keeping all that came.
        func pollUntil(closed inodes: Set<UInt64>, now: UInt64) throws -> [WatchEvent] {
            var got: [WatchEvent] = []
            for _ in 0..<100_000 where !inodes.isSubset(of: Set(got.filter { $0.kind == .close }.map(\.inode))) {
                got += ours(try poller.poll(now: now), [li, ci, si, a, b])
            }
            return got
        }
        close(c)
        e = try pollUntil(closed: [ci], now: 4)
        #expect(e.count == 1 && e.first?.kind == .close && e.first?.inode == ci && e.first?.peer == si, "\(e)")
        close(s)
        e = try pollUntil(closed: [si], now: 5)
        // The client is gone, yet the server end's close still names it and who held it.
        #expect(e.count == 1 && e.first?.kind == .close && e.first?.inode == si && e.first?.peer == ci, "\(e)")
        #expect(e.first?.peerProcess?.pid == me)
        close(l)
        close(sv[0])
        close(sv[1])
        e = try pollUntil(closed: [li, a, b], now: 6)
        #expect(Set(e.map(\.inode)) == [li, a, b] && e.count == 3 && e.allSatisfy { $0.kind == .close })
        #expect(e.first { $0.inode == li }?.listening == true)
        #expect(ours(try poller.poll(now: 7), [li, ci, si, a, b]).isEmpty)
    }

    /// A client still in the accept queue is a connect at once; its accept
    /// later is an accept alone, not a second connect.
    @Test func pollingReportsAPendingClientOnce() throws {
        let name = "kpeer-watch-pending-\(getpid())"
        var poller = PollWatch()
        _ = try poller.poll(now: 1)
        let l = Self.listen(name)
        let c = Self.connect(name)
        defer { close(l); close(c) }
        let (li, ci) = (Self.inode(l), Self.inode(c))
        var e = try poller.poll(now: 2).filter { $0.inode == ci || $0.peer == ci }
        #expect(e.count == 1 && e.first?.kind == .connect && e.first?.listener == li)
        let s = OwnSockets.accept(l)
        defer { close(s) }
        e = try poller.poll(now: 3).filter { $0.inode == ci || $0.peer == ci }
        #expect(e.map(\.kind) == [.accept] && e.first?.inode == Self.inode(s))
    }

    // MARK: the kernel's events, completed by the book

    static let client = Array("client".utf8), server = Array("srv".utf8)

    @Test func bookFillsInTheOtherEnd() {
        var book = ConnectionBook()
        book.names.procRoot = "/nonexistent"  // no /proc fallback: only what the events said
        let connect = RawEvent(kind: UInt8(KPW_CONNECT), inode: 10, listener: 5, pid: 100, tid: 101, peerPid: 0, comm: Self.client)
        let accept = RawEvent(kind: UInt8(KPW_ACCEPT), inode: 11, peer: 10, listener: 5, pid: 200, tid: 200, peerPid: 100, comm: Self.server)
        // The client closes first; then the kernel no longer names the server's peer.
        let closeClient = RawEvent(kind: UInt8(KPW_CLOSE), inode: 10, peer: 11, pid: 100, comm: Self.client)
        let closeServer = RawEvent(kind: UInt8(KPW_CLOSE), inode: 11, peer: 0, pid: 200, comm: Self.server)
        let c = book.event(from: connect, wallOffset: 0)
        #expect(c?.kind == .connect && c?.process?.tid == 101 && c?.listener == 5 && c?.peer == nil)
        let a = book.event(from: accept, wallOffset: 0)
        #expect(a?.peer == 10 && a?.peerProcess == WatchProcess(pid: 100, tid: 101, name: Self.client))
        let x = book.event(from: closeClient, wallOffset: 0)
        #expect(x?.peer == 11 && x?.peerProcess?.pid == 200)
        let y = book.event(from: closeServer, wallOffset: 0)
        #expect(y?.peer == 10 && y?.peerProcess?.name == Self.client)
        // Both closed: nothing is kept.
        #expect(book.holders.isEmpty && book.peers.isEmpty)
    }

    @Test func bookTurnsKernelTimeIntoWallTime() {
        var book = ConnectionBook()
        let raw = RawEvent(kind: UInt8(KPW_PAIR), monotonic: 5_000, inode: 1, peer: 2, pid: 7, peerPid: 7, comm: [])
        #expect(book.event(from: raw, wallOffset: 1_700_000_000_000_000_000)?.time == 1_700_000_000_000_005_000)
        #expect(book.event(from: RawEvent(kind: 99, inode: 1, pid: 1, comm: []), wallOffset: 0) == nil)
    }

    // MARK: filtering

    static func event(_ kind: WatchEvent.Kind, _ inode: UInt64, peer: UInt64? = nil, listener: UInt64? = nil, pid: Int32 = 1,
                      type: SocketType = .stream) -> WatchEvent {
        WatchEvent(kind: kind, time: 0, type: type, inode: inode, process: WatchProcess(pid: pid, name: []), peer: peer,
                   listener: listener, source: .ebpf)
    }

    @Test func filterFollowsAWatchedListenersConnections() {
        var f = WatchFilter(inodes: [5])
        let events = [
            Self.event(.connect, 10, listener: 5),        // a client of the watched listener
            Self.event(.accept, 11, peer: 10, listener: 5),
            Self.event(.connect, 20, listener: 6),        // another listener's
            Self.event(.close, 10, peer: 11),
            Self.event(.close, 11),
            Self.event(.close, 11),                       // closed: no longer followed
            Self.event(.close, 5, pid: 9),
        ]
        #expect(events.map { f.admit($0) } == [true, true, false, true, true, false, true])
    }

    @Test func filterByPidAndType() {
        var f = WatchFilter(pid: 42, type: .dgram)
        var byPeer = Self.event(.send, 1, peer: 2, pid: 7, type: .dgram)
        byPeer.peerProcess = WatchProcess(pid: 42, name: [])
        let events = [
            Self.event(.connect, 1, pid: 42),                       // a stream
            Self.event(.send, 1, peer: 2, pid: 42, type: .dgram),
            Self.event(.send, 1, peer: 2, pid: 7, type: .dgram),    // neither end is 42
            byPeer,
        ]
        #expect(events.map { f.admit($0) } == [false, true, false, true])
    }

    /// A name given as PATH or @NAME is the sockets sock_diag says are
    /// bound there; one with nothing bound is status 2.
    @Test func targetsResolveThroughSockDiag() throws {
        let name = "kpeer-watch-target-\(getpid())"
        let l = Self.listen(name)
        defer { close(l) }
        #expect(try WatchFilter.sockets(for: .abstract(Array(name.utf8))) == [Self.inode(l)])
        let none = #expect(throws: KPeerError.self) { try WatchFilter.sockets(for: .abstract(Array((name + "-none").utf8))) }
        #expect(none?.kind == .notFound)
        let missing = #expect(throws: KPeerError.self) { try WatchFilter.sockets(for: .file(Array("/nonexistent/x.sock".utf8))) }
        #expect(missing?.kind == .notFound)
        #expect(try WatchFilter.sockets(for: .inode(77)) == [77])
    }

    // MARK: output

    @Test func textEscapesHostileNamesAndJSONKeepsTheirBytes() {
        let hostile = Array("x\n1 connect".utf8)
        var e = Self.event(.accept, 11, peer: 10, listener: 5, pid: 200)
        e.time = 1_700_000_000_123_456_789
        e.process = WatchProcess(pid: 200, tid: 201, name: hostile)
        e.peerProcess = WatchProcess(pid: 100, name: [0x61, 0xFF])
        let line = WatchRender.line(e)
        #expect(line == "2023-11-14T22:13:20.123456Z accept stream 11 200/x\\x0a1\\x20connect -> 10 100/a\\xff via 5\n")
        let json = WatchRender.json(e)
        #expect(json.hasSuffix("}\n") && json.dropLast().firstIndex(of: "\n") == nil)
        #expect(json.contains(#""pid":200,"tid":201,"name":"x\n1 connect""#))
        #expect(json.contains(#""peer_pid":100,"peer_name":"a\#u{FFFD}","peer_name_hex":"61ff""#))
        #expect(json.contains(#""time_ns":1700000000123456789,"kind":"accept","type":"stream","inode":11"#))
        #expect(json.contains(#""peer_inode":10"#) && json.contains(#""listener_inode":5"#))
        let unknown = WatchRender.json(Self.event(.connect, 3))
        #expect(unknown.contains(#""peer_inode":null,"peer_pid":null,"peer_name":null,"listener_inode":null"#))
    }

    @Test func timesAreUTCToTheMicrosecond() {
        #expect(WatchRender.time(0) == "1970-01-01T00:00:00.000000Z")
        #expect(WatchRender.time(951_782_400_000_001_000) == "2000-02-29T00:00:00.000001Z")
    }

    @Test func summaryCountsConnectionsPerClient() {
        var s = WatchSummary(source: .ebpf, attach: "fentry")
        for i in 0..<3 { s.count(Self.event(.connect, UInt64(i), listener: 9, pid: 7)) }
        s.count(Self.event(.pair, 20, peer: 21, pid: 8))
        s.count(Self.event(.accept, 30, peer: 1, pid: 9))
        s.count(Self.event(.close, 1, pid: 7))
        s.finish(seconds: 2.04, lost: 0)
        #expect(s.connections == 4)
        #expect(s.clients.map(\.process.pid) == [7, 8] && s.clients.map(\.connections) == [3, 1])
        let text = WatchRender.summary(s)
        #expect(text.hasPrefix("kpeer: watched 2.0 s with eBPF (fentry): 4 connections (3 connect, 1 socketpair, 0 first send), 1 accepted, 1 closed, 0 lost; "))
        #expect(text.split(separator: "\n").dropFirst() == ["kpeer:   3 7/", "kpeer:   1 8/"])
        let json = WatchRender.summaryJSON(s)
        #expect(json.contains(#""connections":4,"events":{"connect":3,"accept":1,"close":1,"pair":1,"send":0},"lost":0"#))
    }

    // MARK: ending a watch

    /// SIGINT while watching: the watch returns its summary instead of
    /// dying, and the previous handler is back afterwards.
    @Test func sigintEndsAWatchWithItsSummary() throws {
        var before = sigaction()
        sigaction(SIGINT, nil, &before)
        let started = DispatchSemaphore(value: 0)
        let done = DispatchSemaphore(value: 0)
        nonisolated(unsafe) var result: WatchSummary?
        let thread = Thread {
            // Whatever happens, the test goes on; a watch that never ran has no result.
            defer { started.signal(); done.signal() }
            var o = WatchOptions()
            o.verbose = true  // so that an eBPF watch, too, says when it starts
            result = try? Watch.run(o, output: { _ in }, message: { m in
                if m.contains("polling sock_diag") || m.contains("watching unix sockets") { started.signal() }
            })
        }
        thread.start()
        started.wait()
        kill(getpid(), SIGINT)
        done.wait()
        #expect(result != nil)
        #expect(kp_watch_stop_signal() == SIGINT)
        var after = sigaction()
        sigaction(SIGINT, nil, &after)
        #expect(unsafeBitCast(after.__sigaction_handler.sa_handler, to: Int.self)
                == unsafeBitCast(before.__sigaction_handler.sa_handler, to: Int.self))
        kp_watch_reset_stop()
        #expect(kp_watch_stop_asked() == 0)
    }

    /// Where eBPF cannot load (this host), one line says so, why, and how
    /// often sock_diag is polled instead; the summary says it polled.
    @Test func fallbackSaysSoInOneLine() throws {
        let bpfWorks = (try? BPFWatch()).map { b in defer { b.close() }; return b.followsStreams } ?? false
        var o = WatchOptions()
        o.interval = 0.05
        o.count = 1_000_000
        o.duration = 0.2
        var notices: [String] = []
        let s = try Watch.run(o, output: { _ in }, message: { notices.append($0) })
        kp_watch_reset_stop()
        if bpfWorks {
            #expect(s.source == .ebpf && notices.allSatisfy { !$0.contains("polling") })
        } else {
            #expect(s.source == .poll && s.resolutionMs == 50 && s.lost == nil)
            let polling = notices.filter { $0.contains("polling sock_diag every 50 ms") }
            #expect(polling.count == 1)
            #expect(polling.first?.hasPrefix("kpeer: eBPF cannot watch here (") == true)
            #expect(polling.first?.dropLast().contains("\n") == false)
        }
    }
}

