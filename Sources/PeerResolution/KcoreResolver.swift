import KernelMemory
import KPeerSystem
import SocketInventory
import TypeOffsets

/// Peers read from kernel memory: for each socket, the word at
/// `address + offsetof(struct unix_sock, peer)`, mapped back to an inode
/// through the /proc/net/unix table, and checked before it is believed.
public struct KcoreResolver {
    public let memory: KernelMemory
    public let offset: MemberOffset
    /// Reads the socket tables again, after kernel memory has been read.
    /// A socket can be freed between the table read and the memory read and
    /// its unix_sock reused by another socket (with its own peer); a link is
    /// kept only when both addresses still name the same sockets afterwards.
    /// nil: the table is taken as current (a frozen core file).
    public var reread: (() throws(KPeerError) -> [UnixSocketEntry])?
    /// Scans who holds which socket, after kernel memory has been read: a
    /// socket whose inode some process still holds then was that socket at
    /// its address the whole time (a unix_sock never moves, and inode
    /// numbers come from a counter that does not wrap in milliseconds), so
    /// its pointer needs no second table; nor does, with care, the peer of a
    /// held, connected stream socket (below). Only when a judgement rests on any
    /// other socket (a datagram target no one holds, a socket in flight, one
    /// closed meanwhile) is `reread` called.
    public var liveOwners: (() -> OwnerTable)?
    /// Reads every row's peer word in its own way (one read of each
    /// unix_sock that gathers SocketFacts as well); nil: an 8-byte pread a
    /// row. Called where the pointers are read, so what it reads is covered
    /// by the same stability proof.
    public var readPeers: (([UnixSocketEntry]) -> [UInt64?])?
    /// Runs once the peer pointers are read and before the owner scan, so
    /// what it reads (SocketFacts) is covered by the same stability proof.
    public var memoryPhase: (() -> Void)?
    /// Told which rows were proved stable (same order as the entries).
    public var onStable: (([Bool]) -> Void)?

    public init(memory: KernelMemory, offset: MemberOffset,
                reread: (() throws(KPeerError) -> [UnixSocketEntry])? = nil) {
        self.memory = memory
        self.offset = offset
        self.reread = reread
    }

    /// What the self-check saw.
    public struct Check: Sendable, Equatable {
        /// Peer pointers that point back (stream, seqpacket) or at a datagram socket.
        public var verified = 0
        /// Pointers to a known socket that does not point back.
        public var mismatched = 0
        /// Pointers to no known socket whose target is not a closed socket either.
        public var unknown = 0
        /// Pointers to a socket already closed (its own peer is NULL).
        public var closed = 0
        /// Connected stream/seqpacket sockets whose peer pointer reads NULL:
        /// the kernel sets it before the state says connected, and keeps it
        /// after the peer closes, so the offset must be wrong.
        public var missing = 0
        /// Embryos whose listener could not be told apart.
        public var unattributed = 0
        /// Pointers read from, or to, a socket whose address named another
        /// socket (or none) when the table was read again: freed and maybe
        /// reused meanwhile. Neither trusted nor counted against the offset.
        public var changed = 0
        public var failed: Int { mismatched + unknown + missing }
    }

    /// Refuses tables whose addresses are not kernel addresses: hashed
    /// (kptr_restrict=0 and not raised) or zeroed (kptr_restrict=2, not root).
    public func checkAddresses(_ entries: [UnixSocketEntry]) throws(KPeerError) {
        guard !entries.isEmpty else { return }
        if entries.allSatisfy({ $0.address == 0 }) {
            throw KPeerError(.unavailable, "/proc/net/unix shows every socket address as zero",
                             fix: "run kpeer as root with kernel.kptr_restrict at 0 or 1, or use --method netlink")
        }
        // Forged rows (a bound name with newlines) can carry any address,
        // so only "not one row inside kernel memory" means hashed.
        let inside = entries.reduce(0) { $0 + (memory.contains($1.address) ? 1 : 0) }
        if inside == 0 {
            throw KPeerError(.unavailable, "/proc/net/unix shows hashed socket addresses (\(entries.count - inside) of \(entries.count) lie outside kernel memory)",
                             fix: "run kpeer as root so it can raise kernel.kptr_restrict to 1, or use --method netlink")
        }
    }

    /// Does `unix_sock.addr` sit at `addr` in these rows? A socket has an
    /// address exactly when its row shows a name (embryos share their
    /// listener's), and it is a kernel pointer: up to `sample` rows of each
    /// kind are read. The addr offset decides which listener an embryo
    /// waits on, so a remembered one (OffsetCache) is held to this too.
    public func addrOffsetHolds(_ addr: Int, in entries: [UnixSocketEntry], sample: Int = 64) -> Bool {
        var named = 0, unnamed = 0
        for e in entries where e.address != 0 && memory.contains(e.address) {
            let hasName = e.path != nil
            if hasName ? named >= sample : unnamed >= sample { continue }
            guard let word = try? memory.readWord(e.address &+ UInt64(addr)) else { return false }
            if hasName {
                guard word != 0, memory.contains(word) else { return false }
                named += 1
            } else {
                guard word == 0 else { return false }
                unnamed += 1
            }
            if named >= sample && unnamed >= sample { break }
        }
        return true
    }

    /// What one row's peer pointer says, judged once every read of memory is done.
    enum Outcome {
        case none, missing, closed, unknown
        case mismatched(Int)  // the row it points at
        case verified(Int)
    }

    /// Reads and verifies every peer pointer. Throws `.refused` when the
    /// offset is evidently wrong; otherwise returns only verified links.
    /// Four stages, each over the whole table: the peer words, what each
    /// says, which rows were stable while they were read, the links.
    public func links(_ entries: [UnixSocketEntry]) throws(KPeerError) -> (PeerLinks, Check) {
        try Trace.phase("links: addresses") { () throws(KPeerError) in try checkAddresses(entries) }
        let index = Trace.phase("links: index") { AddressIndex(entries) }
        let peerOf = Trace.phase("links: words") { peerWords(entries, index) }
        memoryPhase?()
        let outcome = Trace.phase("links: classify") { classify(entries, index, peerOf) }
        let stable = try Trace.phase("links: stability") { () throws(KPeerError) in try stability(entries, index, peerOf, outcome) }
        onStable?(stable)
        return try Trace.phase("links: judged") { () throws(KPeerError) in try judged(entries, outcome, stable) }
    }

    /// Stage 1: the word at the peer offset of every row with an address
    /// (one 8-byte pread each, KernelMemory says why; or `readPeers`).
    func peerWords(_ entries: [UnixSocketEntry], _ index: AddressIndex) -> [UInt64?] {
        if let readPeers { return readPeers(entries) }
        var rows: [Int] = [], addresses: [UInt64] = []
        for (i, e) in entries.enumerated() where e.address != 0 {
            rows.append(i)
            addresses.append(e.address &+ UInt64(offset.value))
        }
        var peerOf = [UInt64?](repeating: nil, count: entries.count)
        for (k, w) in memory.readWords(addresses).enumerated() { peerOf[rows[k]] = w }
        return peerOf
    }

    /// Stage 2: what each pointer says about its row.
    func classify(_ entries: [UnixSocketEntry], _ index: AddressIndex, _ peerOf: [UInt64?]) -> [Outcome] {
        var outcome = [Outcome](repeating: .none, count: entries.count)
        // Fields are read in place: copying a row retains its name.
        for i in entries.indices {
            let address = entries[i].address, rawType = entries[i].rawType
            guard let p = peerOf[i], p != 0 else {
                if address != 0, entries[i].state == .connected, entries[i].type == .stream || entries[i].type == .seqpacket {
                    outcome[i] = .missing
                }
                continue
            }
            guard let j = index[p] else {
                // A peer that closed first stays pointed at (the survivor holds a
                // reference) but leaves the table; its own peer was set to NULL.
                if memory.contains(p), let back = try? memory.readWord(p &+ UInt64(offset.value)), back == 0 {
                    outcome[i] = .closed
                } else {
                    outcome[i] = .unknown
                }
                continue
            }
            let pointsBack = peerOf[j] == address
            switch SocketType(rawValue: rawType) {
            case .dgram?:
                // connect() on a datagram socket is one-way; the target must be a datagram socket.
                outcome[i] = entries[j].type == .dgram ? .verified(j) : .mismatched(j)
            default:
                outcome[i] = pointsBack && entries[j].rawType == rawType ? .verified(j) : .mismatched(j)
            }
        }
        return outcome
    }

    /// Stage 3: was each row, while memory was read, the socket the table
    /// named? (liveOwners, then `reread` only where a judgement needs it.)
    func stability(_ entries: [UnixSocketEntry], _ index: AddressIndex, _ peerOf: [UInt64?],
                   _ outcome: [Outcome]) throws(KPeerError) -> [Bool] {
        // Yes if a process still holds it (liveOwners), or a held socket
        // pins it; otherwise the table again decides: an address that still
        // names the same socket (inode; path for embryos, which have none)
        // held that socket the whole time, so what was read is its.
        let listeners = Self.listenersByPath(entries)
        var stable = [Bool](repeating: true, count: entries.count)
        var tablesAgain = reread != nil
        if let liveOwners {
            let owners = liveOwners()
            let held = entries.indices.map { entries[$0].inode != 0 && owners.holds(entries[$0].inode) }
            stable = held
            // A held stream socket that the table showed connected holds a
            // reference on its peer and never changes it: from the moment
            // its row was printed, its peer's address held that peer. So the
            // peer's row describes it (an embryo, which no process holds,
            // included) if it was printed later (the table is read over
            // time, and an earlier row at that address may be of a socket
            // freed since), and if the peer still points back (one that
            // closed meanwhile has NULLed its own pointer).
            // An embryo row printed earlier is trusted when memory shows the
            // embryo now shares a held listener's `addr` (what an embryo
            // inherits from the listener it was made for): the row's path
            // then names the listener it waits on.
            func waitsOnHeldListener(_ j: Int) -> Bool {
                let e = entries[j]
                guard e.inode == 0, let path = e.path, let addr = offset.addrOffset,
                      let l = listeners[ListenerKey(netns: e.netns, path: path)] ?? nil, held[l],
                      let mine = try? memory.readWord(e.address &+ UInt64(addr)), mine != 0,
                      let theirs = try? memory.readWord(entries[l].address &+ UInt64(addr)) else { return false }
                return mine == theirs
            }
            for i in entries.indices where held[i] && entries[i].rawState == 3
                && (entries[i].type == .stream || entries[i].type == .seqpacket) {
                if let p = peerOf[i], p != 0, let j = index[p], peerOf[j] == entries[i].address,
                   j > i || waitsOnHeldListener(j) {
                    stable[j] = true
                }
            }
            // Does a judgement rest on a row neither held nor pinned?
            var unsure = false
            for i in entries.indices where !stable[i] {
                if case .none = outcome[i] {} else { unsure = true }
            }
            for case .verified(let j) in outcome where !stable[j] { unsure = true }
            for case .mismatched(let j) in outcome where !stable[j] { unsure = true }
            tablesAgain = unsure && reread != nil
        }
        if tablesAgain, let reread {
            let now = try reread()
            let nowIndex = AddressIndex(now)
            // What the owner scan proved stays proved (a socket held after
            // memory was read may close before this second read); the
            // second table adds the rows it still shows unchanged.
            let proved = liveOwners != nil ? stable : [Bool](repeating: false, count: entries.count)
            for i in entries.indices {
                let e = entries[i]
                guard let k = nowIndex[e.address] else { stable[i] = proved[i]; continue }
                let n = now[k]
                stable[i] = proved[i] || (n.inode == e.inode && (e.inode != 0 || (n.path == e.path && n.netns == e.netns)))
            }
        }

        return stable
    }

    /// Stage 4: the links of stable rows whose pointers check out, and the
    /// tally that refuses a wrong offset.
    func judged(_ entries: [UnixSocketEntry], _ outcome: [Outcome], _ stable: [Bool]) throws(KPeerError) -> (PeerLinks, Check) {
        let listeners = Self.listenersByPath(entries)
        var check = Check()
        var links = PeerLinks()
        links.peer.reserveCapacity(entries.count)
        // Rows are listed once per socket (TrustedRows): two rows with one
        // inode are two sockets at two addresses that share the number.
        links.noteTwins(count: entries.count) { entries[$0].inode }
        for i in entries.indices {
            if case .none = outcome[i] { continue }
            let inode = entries[i].inode  // read in place: copying a row retains its name
            switch outcome[i] {
            case .verified(let j), .mismatched(let j):
                if !stable[j] { check.changed += 1; links.unverified.insert(inode); continue }
            default: break
            }
            guard stable[i] else { check.changed += 1; links.unverified.insert(inode); continue }
            switch outcome[i] {
            case .none: continue
            case .missing: check.missing += 1; links.unverified.insert(inode)
            case .closed: check.closed += 1
            case .unknown: check.unknown += 1; links.unverified.insert(inode)
            case .mismatched: check.mismatched += 1; links.unverified.insert(inode)
            case .verified(let j):
                check.verified += 1
                if inode == 0 { continue }  // an embryo: its client is handled below
                if entries[j].inode != 0 {
                    links.peer[inode] = entries[j].inode
                } else if let path = entries[j].path, let listener = listeners[ListenerKey(netns: entries[j].netns, path: path)] ?? nil {
                    links.pendingOn[inode] = entries[listener].inode
                } else {
                    check.unattributed += 1
                }
            }
        }
        // Pointers that lead only to "closed" peers and never to a verified
        // pair mean a wrong offset landing on some other pointer whose target
        // reads zero there: no proof of anything, so refused as well.
        if (check.failed > 0 && check.failed >= check.verified) || (check.verified == 0 && check.closed > 0) {
            throw KPeerError(.refused,
                             "unix_sock.peer offset \(offset.value) (from \(offset.source.rawValue): \(offset.provenance)) fails the self-check: \(check.failed) of \(check.failed + check.verified) connected sockets have no peer pointer that leads back to them",
                             fix: "run kpeer --find-offset, then pass the right --offset (or drop it)")
        }
        return (links, check)
    }

    struct ListenerKey: Hashable {
        var netns: UInt64
        var path: SocketPath
    }

    /// An embryo (a connection not accepted yet) carries its listener's
    /// address: it belongs to the one listener bound to that path in its
    /// network namespace. Two listeners on one path (a path unlinked and
    /// bound again) map to nil: no answer rather than a guess. Values are
    /// rows of `entries`.
    static func listenersByPath(_ entries: [UnixSocketEntry]) -> [ListenerKey: Int?] {
        var out: [ListenerKey: Int?] = [:]
        // Fields read in place: copying each row would retain its name.
        for row in entries.indices where entries[row].isListening && entries[row].inode != 0 {
            guard let path = entries[row].path else { continue }
            let key = ListenerKey(netns: entries[row].netns, path: path)
            out[key] = out[key] == nil ? .some(row) : .some(nil)
        }
        return out
    }
}

/// Table rows by kernel address (WordIndex): the first row listing each.
struct AddressIndex {
    private let index: WordIndex

    init(_ entries: [UnixSocketEntry]) {
        index = WordIndex(count: entries.count, skipping: 0) { entries[$0].address }
    }

    /// The row listed at `address` (the first, should two claim it).
    subscript(address: UInt64) -> Int? { address == 0 ? nil : index[address] }
}
