import CKPeer
import KernelMemory
import KernelObjects
import KPeerSystem
import SocketInventory
import TypeOffsets

/// The kcore method as stages, each a function of what the ones before
/// gave: symbols → kernel memory → socket tables → rows memory vouches for
/// → the peer offset → peer pointers, their stability and the owners →
/// the map. Resolver.resolveKcore calls them in that order.
struct KcorePipeline {
    let options: ResolverOptions
    /// SocketFacts wanted (-e, -v, JSON, or bound files for a PATH query).
    let wantsFacts: Bool

    // MARK: 1. symbols

    struct Symbols {
        /// The --dwarf or --btf file, opened once (SymbolFile).
        var given: SymbolFile?
        /// Layouts already opened for the offset (the given file's, or this
        /// kernel's read now): stage 4 reads the rest from them.
        var types: KernelTypes?
        /// unix_sock.peer from --offset, the given file, remembered for this
        /// build, or this kernel's BTF or debug vmlinux; nil: calibrate.
        var offset: MemberOffset?
        /// The running kernel's build-id, when offsets and layouts are
        /// remembered by it (read once a run).
        var buildID: [UInt8]?
    }

    /// What the user gave is checked first: a wrong --dwarf is worth hearing
    /// about even on a machine where kcore is unusable.
    func symbols() throws(KPeerError) -> Symbols {
        let given = try Resolver.givenSymbols(options)
        var types = try given.map { f throws(KPeerError) in try KernelTypes(f) }
        var explicit: MemberOffset?
        if let v = options.offset {
            explicit = try UnixSockPeer.fromOption(v)
        } else {
            explicit = try types?.peerOffset()
        }
        try Trace.phase("preflight") { () throws(KPeerError) in try KcorePreflight.check(path: options.kcorePath) }
        // Symbols the user did not name: remembered from an earlier run of
        // this kernel build, else read now.
        let remembers = options.offsetCache != nil && options.dwarfPath == nil && options.btfPath == nil
        let buildID = remembers ? Trace.phase("build-id") { BuildID.runningKernel() } : nil
        var offset = Trace.phase("offset") { explicit ?? buildID.flatMap { options.offsetCache?.lookup(buildID: $0) } }
        if offset == nil, let fresh = try? Trace.phase("offset", { () throws(KPeerError) in try Resolver.freshTypes() }) {
            types = fresh
            offset = try? fresh.peerOffset()
        }
        return Symbols(given: given, types: types, offset: offset, buildID: buildID)
    }

    // MARK: 2. kernel memory

    func memory() throws(KPeerError) -> KernelMemory {
        try Trace.phase("kcore headers") { () throws(KPeerError) in try KernelMemory(path: options.kcorePath) }
    }

    // MARK: 3. socket tables

    struct Table {
        var namespaces: [NetNamespace]
        var rows: [UnixSocketEntry]
        /// kpeer's own socketpair for calibration, open while the table is read.
        var pair: Calibration.Pair?
    }

    /// /proc/net/unix of every network namespace, read with addresses
    /// visible; refused when the addresses are hashed or zeroed. Owners are
    /// scanned only once memory is read (stage 6): the tables need only the
    /// namespaces.
    func table(_ memory: KernelMemory, calibrating: Bool) throws(KPeerError) -> Table {
        // The pair also anchors connector pids (PidAnchor): its sk_peer_pid
        // is kpeer's own struct pid.
        let pair = calibrating || wantsFacts ? try Trace.phase("pair") { () throws(KPeerError) in try Calibration.Pair() } : nil
        let namespaces = Trace.phase("namespaces") {
            Resolver.merged(NetNamespaces.all(procRoot: options.procRoot), options.extraNamespaces)
        }
        let rows = try Trace.phase("tables") { () throws(KPeerError) in
            try Resolver.readTables(namespaces: namespaces, procRoot: options.procRoot)
        }
        try Trace.phase("address check") { () throws(KPeerError) in
            try KcoreResolver(memory: memory, offset: MemberOffset(value: 8, source: .calibration, origin: "")).checkAddresses(rows)
        }
        return Table(namespaces: namespaces, rows: rows, pair: pair)
    }

    // MARK: 4. rows memory vouches for

    struct Rows {
        var entries: [UnixSocketEntry]
        /// The kernel-object reader, when struct layouts are known.
        var reader: ObjectReader?
        /// The layouts were contradicted by memory: no facts from them.
        var layoutContradicted = false
        /// Why SocketFacts are missing altogether, when they are.
        var factsUnavailable: [String: String] = [:]
        /// Each checked row's word at the peer offset the symbols gave, read
        /// with its check (RowVerifier.peerWords): stage 6's first read.
        var peerWords: (offset: Int, words: [UInt64: UInt64])?
        /// Or, for a whole table, each row's word by row (aligned with `entries`).
        var rowWords: (offset: Int, words: [UInt64?])?
        /// With a focus (ResolverOptions.factsFocus): the rows whose receive
        /// queue is not empty, read with their check; nil when not known.
        var queued: Set<UInt64>?
        /// Only the rows the focus's answer rests on (FocusRows).
        var focused = false
    }

    /// Struct layouts (given, remembered, BTF, DWARF) for the kernel-object
    /// reader; with them a row stays only when memory at its address is the
    /// socket it describes (RowVerifier), without them when its address is
    /// kernel memory and listed once (TrustedRows.inMemory).
    func rows(_ table: [UnixSocketEntry], _ memory: KernelMemory, _ symbols: Symbols,
              pair: Calibration.Pair? = nil) -> Rows {
        var out = Rows(entries: [])
        do throws(KPeerError) {
            let types: KernelTypes
            if let known = symbols.types {
                types = known
            } else {
                types = try Trace.phase("types") { () throws(KPeerError) in try Resolver.kernelTypes(options, nil, buildID: symbols.buildID) }
            }
            out.reader = ObjectReader(memory: memory, types: types)
        } catch {
            out.factsUnavailable["all"] = error.description
        }
        // With -e the facts' snapshot of each unix_sock carries the peer
        // word; without, or with facts for one socket only, the row check
        // reads it (and, for the latter, which receive queues hold data).
        let oneSocket = wantsFacts && options.factsFocus != nil
        let peerAt = !wantsFacts || oneSocket ? symbols.offset?.value : nil
        if let verifier = Trace.phase("row layouts", { out.reader.flatMap { RowVerifier(reader: $0, peerAt: peerAt, queues: oneSocket) } }) {
            if oneSocket, !options.focusAllRows, let focus = options.factsFocus, let peerAt,
               let picked = Trace.phase("row checks", { FocusRows.select(focus, in: table, verifier: verifier, pair: pair) }) {
                out.entries = picked
                out.peerWords = (peerAt, verifier.peerWords)
                // Carriers of sockets in flight are not looked for: an
                // answer that could rest on one is read from every row.
                out.queued = []
                out.focused = true
                return out
            }
            let before = memory.preads
            let checked = Trace.phase("row checks", { TrustedRows.verifiedWithWords(table, verifier) })
            Trace.count("row check preads", memory.preads - before)
            Trace.count("rows begun", verifier.begun)
            Trace.count("rows confirmed", verifier.confirmed)
            if let (rows, words) = checked {
                out.entries = rows
                if let peerAt, words.count == rows.count { out.rowWords = (peerAt, words) }
                if verifier.qlenAt != nil { out.queued = verifier.queued }
                return out
            }
            out.layoutContradicted = true
            out.factsUnavailable["all"] = "the struct layouts of \(out.reader?.types.origin ?? "?") do not match this kernel's memory"
        }
        out.entries = TrustedRows.inMemory(table, memory) {
            // Without layouts, sock_diag's records (where unix_diag is
            // loaded) say which rows are sockets, and tell a forged twin
            // from the real row.
            guard let all = try? SockDiag.dump(show: UInt32(UDIAG_SHOW_NAME)) else { return nil }
            return Dictionary(all.map { ($0.inode, $0) }, uniquingKeysWith: { a, _ in a })
        }
        return out
    }

    // MARK: 5. the peer offset

    /// From symbols, its addr offset held to memory; else calibrated on
    /// kpeer's own pair.
    func peerOffset(_ symbolic: MemberOffset?, _ memory: KernelMemory, _ entries: [UnixSocketEntry],
                    pair: Calibration.Pair?) throws(KPeerError) -> MemberOffset {
        guard var symbolic else {
            return try Trace.phase("calibration") { () throws(KPeerError) in
                try Calibration.offset(memory: memory, pair: pair!, entries: entries)
            }
        }
        // The addr offset rests on no self-check of its own: memory must
        // bear it out, or embryos are left unattributed.
        if let addr = symbolic.addrOffset,
           !KcoreResolver(memory: memory, offset: symbolic).addrOffsetHolds(addr, in: entries) {
            symbolic.addrOffset = nil
            if symbolic.remembered { options.offsetCache?.forget() }
        }
        return symbolic
    }

    // MARK: 6. peer pointers, stability, owners

    struct Peers {
        var offset: MemberOffset
        var links: PeerLinks
        var check: KcoreResolver.Check
        var owners: OwnerTable
        var factReader: FactReader?
        var facts: [UInt64: SocketFacts]?
    }

    /// Once memory is read: the owners (a socket still held then was that
    /// socket all along), and the tables again only when a link rests on one
    /// that is not (KcoreResolver.liveOwners, .reread): a socket freed
    /// meanwhile, its struct maybe reused, gives no link. An offset
    /// remembered for this build that fails now is forgotten and read again.
    func peers(_ offset: MemberOffset, _ memory: KernelMemory, _ rows: Rows, namespaces: [NetNamespace],
               buildID: [UInt8]?, pair: Calibration.Pair? = nil) throws(KPeerError) -> Peers {
        var factReader: FactReader?
        if wantsFacts, let reader = rows.reader, !rows.layoutContradicted {
            factReader = Trace.phase("facts setup") { FactReader(reader: reader, pidLevel: PidNamespace.ownLevel(procRoot: options.procRoot),
                                    anchor: pair.flatMap { anchor($0, rows.entries, reader) }) }
        }
        var offset = offset
        var found: Peers
        do {
            found = try pointers(offset, memory, rows.entries, namespaces, factReader, rows.peerWords, queued: rows.queued,
                                 rowWords: rows.rowWords)
        } catch where error.kind == .refused && offset.remembered {
            // Remembered for this build, yet failing now (the cache file was
            // edited?): forget it and read the symbols again.
            options.offsetCache?.forget()
            guard let fresh = Resolver.defaultOffset() else { throw error }
            offset = fresh
            found = try pointers(offset, memory, rows.entries, namespaces, factReader)
        }
        if !offset.remembered, found.check.verified > 0, let buildID, options.offset == nil,
           options.dwarfPath == nil, options.btfPath == nil {
            options.offsetCache?.store(offset, buildID: buildID)
        }
        return found
    }

    /// kpeer's own place among pid namespaces, from the struct pid its
    /// pair recorded; nil when it cannot be read (the /proc level is used).
    private func anchor(_ pair: Calibration.Pair, _ entries: [UnixSocketEntry], _ reader: ObjectReader) -> PidAnchor? {
        guard let (a, _) = try? Calibration.addresses(of: pair, in: entries),
              let us = try? reader.object(at: a, type: "unix_sock"),
              let pidAt = try? us.unsigned("sk.sk_peer_pid"), pidAt != 0 else { return nil }
        return try? PidAnchor.read(pidAt: pidAt, reader: reader)
    }

    /// One pass of KcoreResolver over the rows with `offset`.
    private func pointers(_ offset: MemberOffset, _ memory: KernelMemory, _ entries: [UnixSocketEntry],
                          _ namespaces: [NetNamespace], _ factReader: FactReader?,
                          _ early: (offset: Int, words: [UInt64: UInt64])? = nil,
                          queued: Set<UInt64>? = nil,
                          rowWords: (offset: Int, words: [UInt64?])? = nil) throws(KPeerError) -> Peers {
        let procRoot = options.procRoot
        let identities = options.identities
        let scanned = Scanned()
        var resolver = KcoreResolver(memory: memory, offset: offset) { () throws(KPeerError) -> [UnixSocketEntry] in
            try Trace.phase("tables again") { () throws(KPeerError) in
                try Resolver.readTables(namespaces: namespaces, procRoot: procRoot)
            }
        }
        // The peer words the row checks read at this offset (an offset that
        // changed since, a remembered one found wrong, reads them again).
        var earlyWords: (([UnixSocketEntry]) -> [UInt64?])?
        if let rowWords, rowWords.offset == offset.value, rowWords.words.count == entries.count {
            // Read with the row checks, row by row: these very rows.
            earlyWords = { rows in rows.count == rowWords.words.count ? rowWords.words
                                                                      : rows.map { e in e.address == 0 ? nil : try? memory.readWord(e.address &+ UInt64(rowWords.offset)) } }
        } else if let early, early.offset == offset.value {
            let at = UInt64(early.offset)
            earlyWords = { rows in
                rows.map { e in e.address == 0 ? nil : early.words[e.address] ?? (try? memory.readWord(e.address &+ at)) }
            }
        }
        if let factReader, let focus = options.factsFocus, let earlyWords, let queued {
            // One socket asked about: its facts, its peer's, and those of
            // sockets with a receive queue (one may carry either in flight).
            resolver.readPeers = { rows in
                Trace.phase("kernel objects") {
                    let words = earlyWords(rows)
                    var wanted = queued
                    for (i, e) in rows.enumerated() where e.inode == focus && e.address != 0 {
                        wanted.insert(e.address)
                        if let p = words[i], p != 0 { wanted.insert(p) }
                    }
                    scanned.rawFacts = rows.map { e in
                        e.address != 0 && wanted.contains(e.address) ? factReader.factsAndPeer(e, peerOffset: nil).facts : nil
                    }
                    return words
                }
            }
            resolver.onStable = { stable in
                scanned.facts = Trace.phase("facts settle") { FactReader.settle(scanned.rawFacts, entries: entries, stable: stable) }
            }
        } else if let factReader {
            // The peer word comes from the same read of each unix_sock as
            // its facts.
            let at = offset.value
            resolver.readPeers = { rows in
                Trace.phase("kernel objects") {
                    var words = [UInt64?](repeating: nil, count: rows.count)
                    var facts: [SocketFacts?] = []
                    facts.reserveCapacity(rows.count)
                    for i in rows.indices {
                        guard rows[i].address != 0 else { facts.append(SocketFacts()); continue }
                        let (f, w) = factReader.factsAndPeer(rows[i], peerOffset: at)
                        facts.append(f)
                        words[i] = w
                    }
                    scanned.rawFacts = facts
                    return words
                }
            }
            resolver.onStable = { stable in
                scanned.facts = Trace.phase("facts settle") { FactReader.settle(scanned.rawFacts, entries: entries, stable: stable) }
            }
        } else if let earlyWords {
            resolver.readPeers = earlyWords
        }
        resolver.liveOwners = {
            let owners = Trace.phase("owners") { OwnerScan.scan(procRoot: procRoot, identities: identities) }
            scanned.owners = owners
            return owners
        }
        let (links, check) = try Trace.phase("peer pointers") { () throws(KPeerError) in try resolver.links(entries) }
        return Peers(offset: offset, links: links, check: check,
                     owners: scanned.owners ?? OwnerScan.scan(procRoot: procRoot, identities: identities),
                     factReader: factReader, facts: scanned.facts)
    }

    /// What KcoreResolver.links found on the way, kept for the map.
    final class Scanned {
        var owners: OwnerTable?
        var rawFacts: [SocketFacts?] = []
        var facts: [UInt64: SocketFacts]?
    }

    // MARK: 7. the map

    /// The peer map (kpeer's own calibration pair left out), its facts, and
    /// the layouts remembered for this build (or forgotten, if memory
    /// contradicted them).
    func map(_ peers: Peers, _ rows: Rows, excluding pair: Calibration.Pair?, buildID: [UInt8]?) -> PeerMap {
        let own: Set<UInt64> = pair.map { [$0.inodes.0, $0.inodes.1] } ?? []
        // Sockets rings hold that their fdinfo does not name (RingHolders).
        var owners = peers.owners
        if !owners.unnamedRings.isEmpty {
            Trace.phase("io_uring") {
                RingHolders.name(in: &owners, reader: rows.layoutContradicted ? nil : rows.reader, entries: rows.entries,
                                 pair: pair, procRoot: options.procRoot, identities: options.identities)
            }
        }
        var map = Trace.phase("map") {
            PeerMap(entries: rows.entries, owners: owners, links: peers.links, method: .kcore,
                    offset: peers.offset, excluding: own)
        }
        if let factReader = peers.factReader {
            map.facts = peers.facts
            map.factsUnavailable = factReader.unavailable
        } else {
            map.factsUnavailable = rows.factsUnavailable
        }
        map.focusedRows = rows.focused
        if let types = rows.reader?.types, let buildID {
            if rows.layoutContradicted {
                if types.remembered { options.layoutCache.forget() }  // wrong for this build: read again next run
            } else {
                options.layoutCache.store(types, buildID: buildID)
            }
        }
        return map
    }
}
