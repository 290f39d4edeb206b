import CKPeer
import Glibc
import KPeerSystem
import Testing
@testable import PeerResolution
@testable import Rendering
@testable import SocketInventory

/// The fast paths (threaded fd scan, byte-level parsers, the binary-search
/// peer map, the one-buffer renderers) against plain reference versions
/// written here from the contract, on inputs large and odd enough to reach
/// every branch. No timing: speed is for `make bench`.
@Suite(.layered) struct PerfRegressionTests {
    // MARK: the fd scan

    /// A fake /proc: pids with comm, ns/net and fd links, some sockets
    /// shared between processes, and links that are not sockets.
    static func fakeProc() -> (root: String, expected: [UInt64: [Owner]], netns: [Int32: UInt64]) {
        let root = Support.tempDir()
        var expected: [UInt64: [Owner]] = [:]
        var netns: [Int32: UInt64] = [:]
        mkdir(root + "/self", 0o755)  // not a pid
        let nsFiles = [root + "/nsA", root + "/nsB"]
        for f in nsFiles { close(creat(f, 0o644)) }
        for pid in Int32(100)..<Int32(160) {
            let dir = "\(root)/\(pid)"
            mkdir(dir, 0o755)
            if pid == 105 { continue }  // vanished: no fd directory
            mkdir(dir + "/fd", 0o755)
            mkdir(dir + "/ns", 0o755)
            symlink(nsFiles[Int(pid) % 2], dir + "/ns/net")
            // One comm longer than any real one, to reach the slow path.
            let name = pid == 111 ? String(repeating: "long-", count: 30) : "p\(pid):x é"
            let comm = Array((name + "\n").utf8)
            let fd = creat(dir + "/comm", 0o644)
            _ = comm.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            close(fd)
            var hasSocket = false
            for k in Int32(0)..<Int32(40) {
                let target: String
                switch k % 8 {
                case 5: target = "pipe:[\(k)]"
                case 6: target = k % 16 == 6 ? "socket:[12x]" : "socket:[]"
                case 7: target = "/dev/null"
                default:
                    // Inodes shared between neighbouring processes.
                    let inode = UInt64(1000 + (Int(pid) / 2) * 50 + Int(k))
                    target = "socket:[\(inode)]"
                    expected[inode, default: []].append(Owner(pid: pid, name: name, fd: k))
                    hasSocket = true
                }
                symlink(target, "\(dir)/fd/\(k)")
            }
            if hasSocket, let id = Files.identity(nsFiles[Int(pid) % 2]) { netns[pid] = id.inode }
        }
        for k in expected.keys { expected[k]!.sort() }
        return (root, expected, netns)
    }

    @Test func threadedScanMatchesTheTreeAndTheSingleThreadedScan() {
        let (root, expected, netns) = Self.fakeProc()
        defer { _ = system("rm -rf '\(root)'") }
        #expect(expected.values.contains { $0.count > 1 })  // the tree has shared sockets
        for threads in [1, 2, 3, 4] {
            let t = OwnerScan.scan(procRoot: root, threads: threads)
            #expect(Self.firstDifference(t.byInode, expected) == nil, "threads \(threads)")
            #expect(t.netnsByPid == netns, "threads \(threads)")
        }
        #expect(Self.firstDifference(OwnerScan.scan(procRoot: root).byInode, expected) == nil)
        #expect(OwnerScan.scan(procRoot: root + "/missing").byInode.isEmpty)
    }

    /// The first inode whose owners differ, with both lists: a readable
    /// failure instead of two whole tables.
    static func firstDifference(_ got: [UInt64: [Owner]], _ want: [UInt64: [Owner]]) -> String? {
        for k in Set(got.keys).union(want.keys).sorted() where got[k] != want[k] {
            return "inode \(k): got \(got[k] ?? []), want \(want[k] ?? [])"
        }
        return nil
    }

    @Test(.tags(.fixture)) func liveScanFindsThisProcessSockets() throws {
        var sv: [Int32] = [0, 0]
        #expect(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | OwnSockets.cloexec, 0, &sv) == 0)
        defer { close(sv[0]); close(sv[1]) }
        let table = OwnerScan.scan(procRoot: "/proc", threads: 2)
        for fd in sv {
            let inode = try #require(Files.inode(fd: fd))
            #expect(table.owners(of: inode).contains { $0.pid == getpid() && $0.fd == fd })
        }
    }

    // MARK: /proc/net/unix

    @Test func readingALargeTableGivesEveryRecord() throws {
        // 30k records (1.7 MB): more than the reader's first buffer, with
        // upper- and lower-case hex, paths, abstract names and one path
        // holding a newline.
        var text = "Num       RefCount Protocol Flags    Type St Inode Path\n"
        var want: [(UInt64, UInt32, UInt32, UInt16, UInt8, UInt64, String?)] = []
        for i in 0..<30_000 {
            let address = UInt64(0xffff_8880_0000_0000) &+ UInt64(i) &* 0x400
            let ref = UInt32(i % 7 + 1), flags: UInt32 = i % 50 == 0 ? 0x10000 : 0
            let type = UInt16([1, 2, 5][i % 3]), st = UInt8(i % 4)
            let inode = UInt64(100_000 + i)
            let path: String? = i % 10 == 0 ? "/run/s\(i).sock" : (i % 10 == 1 ? "@abs\(i)" : nil)
            let hexAddress = String(address, radix: 16, uppercase: i % 2 == 0)
            text += "\(hexAddress): \(hex8(ref)) 00000000 \(hex8(flags)) \(hex(UInt64(type), 4)) \(hex(UInt64(st), 2)) \(inode)"
            text += path.map { " " + $0 } ?? ""
            text += "\n"
            want.append((address, ref, flags, type, st, inode, path))
        }
        let cut = 12_340  // a path with a newline: the next line continues it
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        var edited = lines
        edited[cut + 1] += "\nsecond line"
        text = edited.joined(separator: "\n")
        want[cut].6! += "\nsecond line"
        let dir = Support.tempDir()
        defer { _ = system("rm -rf '\(dir)'") }
        let path = dir + "/unix"
        let fd = creat(path, 0o644)
        let bytes = Array(text.utf8)
        _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        close(fd)

        let read = try ProcNetUnix.read(path)
        #expect(read == ProcNetUnix.parse(bytes))
        #expect(read.count == want.count)
        for (e, w) in zip(read, want) where e.address != w.0 || e.refCount != w.1 || e.flags != w.2
            || e.rawType != w.3 || e.rawState != w.4 || e.inode != w.5 || e.path?.display != w.6.map(display) {
            Issue.record("record \(w.5) read as \(e)")
            break
        }
        #expect(throws: KPeerError.self) { try ProcNetUnix.read(dir + "/absent") }
    }

    static func hex(_ v: UInt64, _ width: Int) -> String {
        let s = String(v, radix: 16, uppercase: true)
        return String(repeating: "0", count: max(0, width - s.count)) + s
    }

    func hex8(_ v: UInt32) -> String { Self.hex(UInt64(v), 8) }
    func hex(_ v: UInt64, _ w: Int) -> String { Self.hex(v, w) }

    func display(_ p: String) -> String {
        let abstract = p.hasPrefix("@")
        return SocketPath(bytes: Array(p.utf8.dropFirst(abstract ? 1 : 0)), isAbstract: abstract).display
    }

    @Test func malformedRecordsAreNotRecords() {
        let text = Array("""
            Num       RefCount Protocol Flags    Type St Inode Path
            ffff8880054d6c00: 00000002 00000000 00010000 0001 01 17395
            1ffff8880054d6c00: 00000002 00000000 00010000 0001 01 17396
            ffff8880054d6c00: 0000000g 00000000 00010000 0001 01 17397
            ffff8880054d6c00: 00000002 00000000 00010000 0001 01
            ffff8880054d6c00: 00000002 00000000 00010000 0001 100 17398
            ffff8880054d6c00: 00000002 00000000 00010000 0001 01 99999999999999999999999
            FFFF8880054D6C08: 0000000A 00000000 00000000 0002 03 17399 @x

            """.utf8)
        let e = ProcNetUnix.parse(text)
        #expect(e.map(\.inode) == [17395, 17399])
        #expect(e[1].address == 0xffff_8880_054d_6c08 && e[1].refCount == 10 && e[1].path?.display == "@x")
    }

    // MARK: sock_diag

    @Test func parsingASliceInTheMiddleOfABuffer() throws {
        var msg = SockDiagTests.diag(inode: 7, type: 1, state: 1, attrs: [
            SockDiagTests.attr(Int32(UNIX_DIAG_PEER), SockDiagTests.le32(8)),
            SockDiagTests.attr(Int32(UNIX_DIAG_NAME), Array("/a".utf8)),
        ])
        msg += SockDiagTests.diag(inode: 9, type: 1, state: 10, attrs: [
            SockDiagTests.attr(Int32(UNIX_DIAG_ICONS), SockDiagTests.le32(11) + SockDiagTests.le32(12)),
        ])
        msg += SockDiagTests.message(type: UInt16(NLMSG_DONE), SockDiagTests.le32(0))
        let padded = [0xAA, 0xBB, 0xCC] + msg + [0xDD]
        var fromArray: [DiagEntry] = []
        var fromSlice: [DiagEntry] = []
        #expect(try SockDiag.parse(msg[...], into: &fromArray))
        #expect(try SockDiag.parse(padded[3..<(3 + msg.count)], into: &fromSlice))
        #expect(fromArray == fromSlice)
        #expect(fromArray.map(\.inode) == [7, 9])
        #expect(fromArray[0].peer == 8 && fromArray[0].name == SocketPath(bytes: Array("/a".utf8), isAbstract: false))
        #expect(fromArray[1].icons == [11, 12])
        #expect(SockDiag.parseEntry(padded[(3 + 16)..<(3 + Int(msg[0]))])?.peer == 8)
    }

    // MARK: the peer map and the renderers

    /// A map with every kind of row: connected pairs, shared sockets, a
    /// listener with pending clients, datagram senders, unheld sockets,
    /// odd names and paths, a duplicate and an excluded entry; enough rows
    /// (and multi-byte names) that the renderer's buffer is flushed many
    /// times mid-way.
    static func bigMap() -> (map: PeerMap, entries: [UnixSocketEntry], owners: OwnerTable, links: PeerLinks) {
        var entries: [UnixSocketEntry] = []
        var owners = OwnerTable()
        var links = PeerLinks()
        let names = ["café", "a b", "x:y", "back\\slash", "ünïcødé-long-name", "sh"]
        func owner(_ pid: Int32, _ fd: Int32) -> Owner { Owner(pid: pid, name: names[Int(pid) % names.count], fd: fd) }
        for i in 0..<3000 {
            let a = UInt64(5_000_000 - 2 * i), b = a - 1  // descending: the map must sort
            let type: UInt16 = i % 5 == 4 ? 2 : 1
            entries.append(UnixSocketEntry(address: 0, refCount: UInt32(i % 3 + 2), flags: 0, rawType: type, rawState: 3,
                                           inode: a, path: i % 9 == 0 ? SocketPath(bytes: Array("/run/p \(i)".utf8), isAbstract: i % 2 == 0) : nil))
            entries.append(UnixSocketEntry(address: 0, refCount: 1_000_000_000, flags: 0, rawType: type, rawState: 3, inode: b, path: nil))
            let pa = Int32(1000 + i % 40), pb = Int32(1000 + (i + 7) % 40)
            owners.byInode[a] = i % 11 == 0 ? [owner(pa, 3), owner(pa, 9), owner(pb + 4096, 4)] : [owner(pa, Int32(10 + i))]
            if i % 13 != 0 { owners.byInode[b] = [owner(pb, Int32(10 + i))] }
            if type == 2 && i % 2 == 0 {
                links.peer[a] = b  // one-way: b gets a sender
            } else {
                links.peer[a] = b
                links.peer[b] = a
            }
        }
        // A listener with three pending clients, one more unheld.
        let listener: UInt64 = 42
        entries.append(UnixSocketEntry(address: 0, refCount: 2, flags: UnixSocketEntry.acceptConnections, rawType: 1, rawState: 1,
                                       inode: listener, path: SocketPath(bytes: Array("/run/listen".utf8), isAbstract: false)))
        owners.byInode[listener] = [Owner(pid: 7, name: "server", fd: 3)]
        for c in [UInt64(45), 43, 44] {
            entries.append(UnixSocketEntry(address: 0, refCount: 2, flags: 0, rawType: 1, rawState: 2, inode: c, path: nil))
            owners.byInode[c] = [Owner(pid: 8, name: "client", fd: Int32(c))]
            links.pendingOn[c] = listener
        }
        // The same pid under another name on another socket (a cache must
        // not reuse the first), a duplicate entry, an embryo, an exclusion.
        entries.append(UnixSocketEntry(address: 0, refCount: 2, flags: 0, rawType: 5, rawState: 1, inode: 50, path: nil))
        owners.byInode[50] = [Owner(pid: 7, name: "renamed", fd: 4)]
        entries.append(UnixSocketEntry(address: 0, refCount: 9, flags: 0, rawType: 1, rawState: 1, inode: 50, path: nil))
        entries.append(UnixSocketEntry(address: 0, refCount: 2, flags: 0, rawType: 1, rawState: 3, inode: 0, path: nil))
        entries.append(UnixSocketEntry(address: 0, refCount: 2, flags: 0, rawType: 1, rawState: 3, inode: 60, path: nil))
        // Every type and state word, known or not.
        for (k, (type, state)) in [(UInt16(3), UInt8(0)), (4, 4), (9, 9), (2, 1), (5, 2)].enumerated() {
            entries.append(UnixSocketEntry(address: 0, refCount: 1, flags: 0, rawType: type, rawState: state,
                                           inode: UInt64(70 + k), path: nil))
        }
        let map = PeerMap(entries: entries, owners: owners, links: links, method: .netlink, excluding: [60])
        return (map, entries, owners, links)
    }

    @Test func peerMapIndexesEverySocketOnceInInodeOrder() {
        let (map, entries, owners, links) = Self.bigMap()
        var first: [UInt64: UnixSocketEntry] = [:]
        for e in entries where e.inode != 0 && e.inode != 60 && first[e.inode] == nil { first[e.inode] = e }
        #expect(map.sockets.map(\.inode) == first.keys.sorted())
        for (inode, e) in first {
            let s = map[inode]
            #expect(s?.entry == e)
            #expect(s?.owners == owners.owners(of: inode))
            #expect(s?.peer == links.peer[inode])
            #expect(s?.pendingOn == links.pendingOn[inode])
        }
        for absent: UInt64 in [0, 1, 41, 60, 4_000_000, UInt64.max] { #expect(map[absent] == nil) }
        #expect(map[42]?.pending == [43, 44, 45])
        let senders = links.peer.filter { links.peer[$0.value] != $0.key }
        for (s, p) in senders { #expect(map[p]?.senders.contains(s) == true) }
        #expect(map.sockets.allSatisfy { $0.senders == $0.senders.sorted() })
        #expect(map.owners(of: 60) == owners.owners(of: 60))  // not listed, still known
        let some = map.restricted(to: [42, 50, 4_999_999])
        #expect(some.sockets.map(\.inode) == [50, 42, 4_999_999].sorted())
        #expect(some[50]?.entry.refCount == 2 && some[43] == nil)
    }

    /// netstat's words for types and states.
    static let typeNames: [UInt16: String] = [1: "STREAM", 2: "DGRAM", 3: "RAW", 4: "RDM", 5: "SEQPACKET"]
    static func stateName(_ e: UnixSocketEntry) -> String {
        switch e.rawState {
        case 0: "FREE"
        case 1: e.isListening ? "LISTENING" : ""
        case 2: "CONNECTING"
        case 3: "CONNECTED"
        case 4: "DISCONNECTING"
        default: "UNKNOWN"
        }
    }

    /// The contract's row: `%-5s %-6s %-11s %-10s %-13s %-8s %-20s %-22s %s`.
    static func referenceTable(_ map: PeerMap) -> String {
        func pad(_ s: String, _ w: Int) -> String { s + String(repeating: " ", count: max(0, w - s.utf8.count)) }
        func column(_ owners: [Owner]) -> String {
            var seen = Set<Int32>()
            let list = owners.filter { seen.insert($0.pid).inserted }
            guard let first = list.first else { return "-" }
            return "\(first.pid)/\(Escape.bytes(Array(first.name.utf8)))" + (list.count > 1 ? ",+\(list.count - 1)" : "")
        }
        var out = Render.tableHeader
        for s in map.sockets {
            let e = s.entry
            let peer = s.peer.map { column(map.owners(of: $0)) }
                ?? s.pendingOn.map { column(map.owners(of: $0)) + " (pending)" } ?? "-"
            out += [pad("unix", 5), pad(String(e.refCount), 6), pad(e.isListening ? "[ ACC ]" : "[ ]", 11),
                    pad(typeNames[e.rawType] ?? "UNKNOWN", 10), pad(stateName(e), 13), pad(String(e.inode), 8),
                    pad(column(s.owners), 20), pad(peer, 22), e.path?.display ?? ""].joined(separator: " ") + "\n"
        }
        return out
    }

    static func referenceDump(_ map: PeerMap) -> String {
        func unique(_ o: [Owner]) -> [Owner] {
            var seen = Set<Int32>()
            return o.filter { seen.insert($0.pid).inserted }
        }
        var out = ""
        for s in map.sockets {
            guard let t = s.peer ?? s.pendingOn, let o = map.owners(of: t).min() else { continue }
            for m in unique(s.owners) {
                out += "\(Escape.dumpField(m.name)):\(m.pid):\(s.inode):\(s.peer ?? 0):\(o.pid):\(Escape.dumpField(o.name))\n"
            }
        }
        return out
    }

    /// The first line that differs (bytes, not Characters), or nil.
    static func firstDifference(_ got: String, _ want: String) -> String? {
        let g = Array(got.utf8).split(separator: 0x0A, omittingEmptySubsequences: false)
        let w = Array(want.utf8).split(separator: 0x0A, omittingEmptySubsequences: false)
        for i in 0..<max(g.count, w.count) where i >= g.count || i >= w.count || g[i] != w[i] {
            func show(_ l: [ArraySlice<UInt8>]) -> String { i < l.count ? String(decoding: l[i], as: UTF8.self) : "(none)" }
            return "line \(i): got \(show(g)), want \(show(w))"
        }
        return nil
    }

    @Test func tableAndDumpAreTheReferenceByteForByte() {
        let map = Self.bigMap().map
        let table = Render.table(map)
        #expect(table.utf8.count > 4 * ByteOutput.flushAt)
        #expect(Self.firstDifference(table, Self.referenceTable(map)) == nil)
        let dump = Render.dump(map)
        #expect(dump.utf8.count > 2 * ByteOutput.flushAt)
        #expect(Self.firstDifference(dump, Self.referenceDump(map)) == nil)
        // Rows of the odd cases, spelled out.
        #expect(table.contains("\n" + "unix  2      [ ACC ]     STREAM     LISTENING     42       7/server             -                      /run/listen\n"))
        #expect(table.contains("\n" + "unix  2      [ ]         STREAM     CONNECTING    43       8/client             7/server (pending)     \n"))
        #expect(table.contains("\n" + "unix  2      [ ]         SEQPACKET                50       7/renamed            -                      \n"))
        #expect(dump.contains("client:8:43:0:7:server\n"))
        #expect(dump.contains("x\\x3ay:"))
    }

    @Test func emptyMapRendersTheHeaderAlone() {
        let map = PeerMap(entries: [], owners: OwnerTable(), links: PeerLinks(), method: .netlink)
        #expect(Render.table(map) == Render.tableHeader)
        #expect(Render.dump(map) == "")
    }
}
