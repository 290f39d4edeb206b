import CKPeer
import Glibc
import KernelMemory
import KernelObjects
import KPeerSystem
import SocketInventory
import TypeOffsets

/// What the user asked for, method- and symbol-wise.
public struct ResolverOptions: Sendable {
    public enum MethodChoice: String, Sendable, CaseIterable {
        case auto, kcore, netlink
    }

    public var method: MethodChoice = .auto
    public var kcorePath: String = "/proc/kcore"
    public var offset: Int?
    public var btfPath: String?
    public var dwarfPath: String?
    public var force = false
    /// Where offsets read from symbols are remembered; nil: neither read nor written.
    public var offsetCache: OffsetCache? = OffsetCache()
    /// The /proc this machine has (tests point it elsewhere).
    public var procRoot = "/proc"
    /// Read SocketFacts with the kernel-object reader (kcore method):
    /// bound files, connectors, queues, datagram senders.
    public var kernelFacts = false
    /// The one socket asked about (`kpeer INODE`): the kcore method then
    /// reads SocketFacts only where that answer can rest on them (the
    /// socket, its peer, and sockets with a receive queue, which may carry
    /// it in flight), not for every socket.
    public var factsFocus: UInt64?
    /// With factsFocus: check and read every row all the same (the answer
    /// from the focus's own rows was not a list of holders).
    public var focusAllRows = false
    /// The netlink method's connectors (a pidfd_getfd per connected
    /// socket): only where the output shows them, not for a bare INODE.
    public var connectors = false
    /// Where struct layouts read for SocketFacts are remembered.
    public var layoutCache = LayoutCache()
    /// Network namespaces to read besides those of processes (ones no
    /// process is in, found through a socket: NetNamespaces.ofHeldSocket).
    public var extraNamespaces: [NetNamespace] = []
    /// Describe each process holding a socket (pid namespaces, cgroup):
    /// for JSON, -e, dot, -v, --unit and --container.
    public var identities = false

    public init() {}

    /// The user pointed kpeer at kernel memory or symbols: `auto` then means
    /// kcore, with no quiet fallback that would hide their mistake.
    var wantsKcore: Bool {
        offset != nil || btfPath != nil || dwarfPath != nil || kcorePath != "/proc/kcore"
    }
}

/// Everything one run found: the peer map, and what path queries and
/// namespace-aware output need besides.
public struct Resolution: Sendable {
    public var map: PeerMap
    /// kpeer's own network namespace (nsfs inode; 0 when /proc hides it).
    public var ownNetns: UInt64
    /// Socket inode → the file it is bound to (sock_diag UNIX_DIAG_VFS),
    /// for every namespace; nil when it was not asked for or sock_diag is
    /// unavailable.
    public var boundFiles: [UInt64: BoundFile]?
    /// Namespaces that could not be looked into, and why (not root).
    public var skipped: [String] = []

    /// The namespace a socket was listed in (0 in the map means: ours).
    public func netns(of entry: UnixSocketEntry) -> UInt64 {
        entry.netns == 0 ? ownNetns : entry.netns
    }
}

/// Chooses the method, gathers the inventory, resolves peers.
public enum Resolver {
    public static func resolveAll(_ options: ResolverOptions) throws(KPeerError) -> PeerMap {
        try resolve(options).map
    }

    /// Resolves every socket of every network namespace kpeer can enter;
    /// with `boundFiles`, also asks sock_diag which file each socket is
    /// bound to (for `kpeer PATH`). A unix socket that processes hold but no
    /// table lists lives in a namespace no process is in: that namespace is
    /// found through a holder's descriptor (NetNamespaces.ofHeldSocket) and
    /// read too. With `focus` (the inode asked about) only that socket is
    /// looked into.
    public static func resolve(_ options: ResolverOptions, boundFiles: Bool = false,
                               focus: UInt64? = nil) throws(KPeerError) -> Resolution {
        var options = options
        if let focus, !boundFiles { options.factsFocus = focus }
        var first = try resolveOnce(options, boundFiles: boundFiles)
        if let focus, first.map.focusedRows {
            // Read from the focus's own rows: believed when it names the
            // peer's holders; any other answer is read from every row.
            if case .owners(let o) = first.map.peerAnswer(of: focus), !o.isEmpty {
                return first
            }
            options.focusAllRows = true
            first = try resolveOnce(options, boundFiles: boundFiles)
        }
        let unlisted: [(inode: UInt64, owners: [Owner])]
        if let focus {
            unlisted = first.map[focus] == nil ? [(focus, first.map.owners(of: focus))] : []
        } else {
            unlisted = first.map.heldButUnlisted()
        }
        guard !unlisted.isEmpty else { return first }
        var known = Set(first.map.namespaces.map(\.inode))
        known.insert(first.ownNetns)
        for ns in options.extraNamespaces { known.insert(ns.inode) }
        var extra: [NetNamespace] = []
        for (inode, owners) in unlisted {
            guard let ns = NetNamespaces.ofHeldSocket(inode, owners: owners), known.insert(ns.inode).inserted else { continue }
            extra.append(ns)
        }
        guard !extra.isEmpty else { return first }
        var o = options
        o.extraNamespaces += extra
        return try resolveOnce(o, boundFiles: boundFiles)
    }

    static func resolveOnce(_ options: ResolverOptions, boundFiles: Bool) throws(KPeerError) -> Resolution {
        switch options.method {
        case .netlink:
            return withNetlinkFacts(try resolveNetlink(options, boundFiles: boundFiles), options)
        case .kcore:
            return try withBoundFiles(resolveKcore(options, boundFiles: boundFiles), options, boundFiles)
        case .auto:
            if options.wantsKcore { return try withBoundFiles(resolveKcore(options, boundFiles: boundFiles), options, boundFiles) }
            let map: PeerMap
            do {
                map = try resolveKcore(options, boundFiles: boundFiles)
            } catch {
                var r = withNetlinkFacts(try resolveNetlink(options, boundFiles: boundFiles), options)
                // The problem only: its fix ("use --method netlink") is done.
                r.map.fallbackReason = error.problem
                return r
            }
            return try withBoundFiles(map, options, boundFiles)
        }
    }

    /// The connectors, when facts were asked for (NetlinkFacts).
    static func withNetlinkFacts(_ r: Resolution, _ options: ResolverOptions) -> Resolution {
        guard options.kernelFacts && options.connectors else { return r }
        var r = r
        Trace.phase("connectors") { NetlinkFacts.add(to: &r.map) }
        return r
    }

    /// sock_diag, once per network namespace. With only kpeer's own
    /// namespace and no bound files wanted, this is the plain netlink
    /// resolver.
    static func resolveNetlink(_ options: ResolverOptions, boundFiles: Bool) throws(KPeerError) -> Resolution {
        let own = NetNamespaces.current(procRoot: options.procRoot) ?? 0
        let (procRoot, identities) = (options.procRoot, options.identities)
        func scan() -> OwnerTable { Trace.phase("owners") { OwnerScan.scan(procRoot: procRoot, identities: identities) } }
        func foreign(_ found: [NetNamespace]) -> [NetNamespace] { merged(found, options.extraNamespaces).filter { $0.inode != own } }
        let owners: OwnerTable
        // Most machines: kpeer's namespace alone (a stat of each process's
        // ns/net says so, for far less than the scan). Its dump and table
        // are then read while the descriptors are scanned, and used only if
        // the scan, too, found no other namespace; where there are others,
        // they are all dumped after the scan, kpeer's own not twice. On one
        // core there is nothing to overlap: the scan comes first, as ever.
        if !boundFiles, OwnerScan.defaultThreads() > 1,
           Trace.phase("namespaces", { foreign(NetNamespaces.all(procRoot: procRoot)) }).isEmpty {
            let work = Trace.phase("owners, dump and table") { NetlinkResolver.read(scanning: scan) }
            owners = work.owners!
            if foreign(owners.namespaces).isEmpty {
                return Resolution(map: try NetlinkResolver.map(work, owners: owners), ownNetns: own)
            }
        } else {
            owners = scan()
            if !boundFiles, foreign(owners.namespaces).isEmpty {
                return Resolution(map: try Trace.phase("dump and table") { () throws(KPeerError) in try NetlinkResolver.resolveAll(owners: owners) }, ownNetns: own)
            }
        }
        let others = foreign(owners.namespaces)
        let found = try diagAcrossNamespaces(own: own, others: others, procRoot: options.procRoot, tables: true)
        // A row is vouched for only in the namespace whose dump lists its
        // inode: a forged row in one namespace's table cannot relabel
        // another namespace's socket.
        let sameNamespace = found.entries.filter { $0.inode == 0 || found.netnsOf[$0.inode] == $0.netns }
        let records = Dictionary(found.diag.map { ($0.inode, $0) }, uniquingKeysWith: { a, _ in a })
        var entries = TrustedRows.vouched(sameNamespace, known: Set(records.keys)) { records }
        TrustedRows.named(&entries, known: { found.netnsOf[$0.inode] == $0.netns }, names: { records[$0.inode]?.name })
        let map = PeerMap(entries: entries, owners: owners, links: NetlinkResolver.links(from: found.diag),
                          method: .netlink)
        return Resolution(map: map, ownNetns: own, boundFiles: boundFiles ? files(found.diag) : nil,
                          skipped: found.skipped)
    }

    /// The kcore map, plus bound files when asked for: the file's identity
    /// is nowhere in /proc/net/unix. Kernel memory gives it (unix_sock.path,
    /// read by the kernel-object reader); where the reader could not,
    /// sock_diag's UNIX_DIAG_VFS; with neither, boundFiles stays nil and
    /// path queries say so.
    static func withBoundFiles(_ map: PeerMap, _ options: ResolverOptions, _ wanted: Bool) throws(KPeerError) -> Resolution {
        let own = NetNamespaces.current(procRoot: options.procRoot) ?? 0
        var r = Resolution(map: map, ownNetns: own)
        guard wanted else { return r }
        if let facts = map.facts, map.factsUnavailable["bound_file"] == nil {
            var files: [UInt64: BoundFile] = [:]
            for (inode, f) in facts { if let b = f.boundFile { files[inode] = b } }
            r.boundFiles = files
            return r
        }
        let others = merged(map.namespaces, options.extraNamespaces).filter { $0.inode != own }
        if let found = try? diagAcrossNamespaces(own: own, others: others, procRoot: options.procRoot, tables: false,
                                                 show: UInt32(UDIAG_SHOW_NAME | UDIAG_SHOW_VFS)) {
            r.boundFiles = files(found.diag)
            r.skipped = found.skipped
        }
        return r
    }

    /// Namespaces of processes, and the extra ones not among them.
    static func merged(_ namespaces: [NetNamespace], _ extra: [NetNamespace]) -> [NetNamespace] {
        let known = Set(namespaces.map(\.inode))
        return namespaces + extra.filter { !known.contains($0.inode) }
    }

    static func files(_ diag: [DiagEntry]) -> [UInt64: BoundFile] {
        var out: [UInt64: BoundFile] = [:]
        for e in diag {
            if let v = e.vfs { out[e.inode] = BoundFile(diagInode: v.inode, diagDevice: v.device) }
        }
        return out
    }

    /// A sock_diag dump (and, with `tables`, /proc/net/unix) of kpeer's own
    /// namespace, then of each other one from a thread that entered it.
    /// Namespaces that vanish meanwhile are left out; ones kpeer may not
    /// enter are listed in `skipped`.
    static func diagAcrossNamespaces(own: UInt64, others: [NetNamespace], procRoot: String, tables: Bool,
                                     show: UInt32 = SockDiag.showAll) throws(KPeerError)
        -> (entries: [UnixSocketEntry], diag: [DiagEntry], skipped: [String], netnsOf: [UInt64: UInt64]) {
        var diag = try SockDiag.dump(show: show)
        var netnsOf: [UInt64: UInt64] = [:]
        for d in diag { netnsOf[d.inode] = own }
        var entries = tables ? ProcNetUnix.parse(try Files.read("\(procRoot)/self/net/unix"), netns: own) : []
        var skipped: [String] = []
        for ns in others {
            do {
                let (d, text) = try NetNamespaces.inside(ns, procRoot: procRoot) { () throws(KPeerError) -> ([DiagEntry], [UInt8]) in
                    // thread-self: this thread's namespace, not the process's.
                    (try SockDiag.dump(show: show), tables ? try Files.read("\(procRoot)/thread-self/net/unix") : [])
                }
                diag += d
                for x in d { netnsOf[x.inode] = ns.inode }
                if tables { entries += ProcNetUnix.parse(text, netns: ns.inode) }
            } catch where error.kind == .notFound {
                continue
            } catch {
                skipped.append(error.problem)
            }
        }
        return (entries, diag, skipped, netnsOf)
    }

    /// The kcore method, start to end: KcorePipeline's stages in order.
    static func resolveKcore(_ options: ResolverOptions, boundFiles: Bool = false) throws(KPeerError) -> PeerMap {
        let run = KcorePipeline(options: options, wantsFacts: options.kernelFacts || boundFiles)
        let symbols = try run.symbols()
        let memory = try run.memory()
        let table = try run.table(memory, calibrating: symbols.offset == nil)
        let rows = run.rows(table.rows, memory, symbols, pair: table.pair)
        let offset = try Trace.phase("peer offset") { () throws(KPeerError) in try run.peerOffset(symbols.offset, memory, rows.entries, pair: table.pair) }
        let peers = try run.peers(offset, memory, rows, namespaces: table.namespaces, buildID: symbols.buildID, pair: table.pair)
        return run.map(peers, rows, excluding: table.pair, buildID: symbols.buildID)
    }

    /// Struct layouts for the kernel-object reader: the --dwarf or --btf
    /// file the user gave, else remembered for this build, else read now
    /// (freshTypes). `buildID`: the running kernel's, when already read.
    static func kernelTypes(_ o: ResolverOptions, _ given: SymbolFile?, buildID: [UInt8]? = nil) throws(KPeerError) -> KernelTypes {
        if let given { return try KernelTypes(given) }
        // Remembered for this build by an earlier run (only then with the
        // offset cache on: tests and --offset runs leave /run alone).
        if o.offsetCache != nil, let running = buildID ?? BuildID.runningKernel(), let t = o.layoutCache.lookup(buildID: running) {
            return t
        }
        return try freshTypes()
    }

    /// This kernel's BTF, else a vmlinux with debug info in the usual
    /// places whose build-id is the running kernel's (opened once).
    static func freshTypes() throws(KPeerError) -> KernelTypes {
        if let t = try? KernelTypes(btf: BTF.defaultPath) { return t }
        if let running = BuildID.runningKernel() {
            for path in DWARF.defaultPaths() where Files.exists(path) {
                if let file = try? SymbolFile(path: path, dwarf: true, runningBuildID: running),
                   let t = try? KernelTypes(file) { return t }
            }
        }
        throw KPeerError(.unavailable, "no BTF (\(BTF.defaultPath)) and no vmlinux with debug info for this kernel: struct layouts are unknown",
                         fix: "give --dwarf the vmlinux of the running kernel (package linux-image-$(uname -r)-dbg)")
    }

    /// The file of --dwarf or --btf, opened and checked once (SymbolFile).
    static func givenSymbols(_ o: ResolverOptions) throws(KPeerError) -> SymbolFile? {
        if let path = o.dwarfPath { return try SymbolFile(path: path, dwarf: true, force: o.force) }
        if let path = o.btfPath { return try SymbolFile(path: path, dwarf: false) }
        return nil
    }

    /// The offset from symbols read now (no --offset, nothing remembered);
    /// nil means: calibrate (kpeer --find-offset says why each source failed).
    static func defaultOffset() -> MemberOffset? {
        try? freshTypes().peerOffset()
    }

    /// /proc/net/unix of every network namespace a process is in (and our
    /// own), read with real addresses visible.
    static func readTables(namespaces: [NetNamespace], procRoot: String) throws(KPeerError) -> [UnixSocketEntry] {
        let ownNS = Files.identity("\(procRoot)/self/ns/net")?.inode ?? 0
        // Another namespace's table is read from a thread inside it, entered
        // through its ns file checked to be that namespace (NetNamespaces.inside):
        // not through /proc/PID/net, which answers for whatever namespace
        // that pid (maybe reused, maybe moved) is in by then.
        let others = namespaces.filter { $0.inode != ownNS }
        let (texts, _) = try KptrRestrict.withAddressesVisible { () throws(KPeerError) -> [(UInt64, [UInt8])] in
            var out: [(UInt64, [UInt8])] = [(ownNS, try Files.read("\(procRoot)/self/net/unix"))]
            for ns in others {
                if let bytes = try? NetNamespaces.inside(ns, procRoot: procRoot, { () throws(KPeerError) in
                    try Files.read("\(procRoot)/thread-self/net/unix")
                }) {
                    out.append((ns.inode, bytes))
                }
            }
            return out
        }
        var entries: [UnixSocketEntry] = []
        for (ns, text) in texts { entries += ProcNetUnix.parse(text, netns: ns) }
        return entries
    }
}

/// Says, before trying, why /proc/kcore cannot work here.
public enum KcorePreflight {
    public static func check(path: String) throws(KPeerError) {
        guard path == KernelMemory.procKcore else { return }
        if !Files.exists(path) { throw .noKcore }
        if let mode = Host.lockdown(), mode == "confidentiality" {
            throw KPeerError(.unavailable, "kernel lockdown (\(mode)) forbids reading /proc/kcore",
                             fix: "use --method netlink, or boot with lockdown=none")
        }
        if !Host.isRoot {
            throw .needsRoot("reading /proc/kcore needs root (CAP_SYS_RAWIO)", otherwise: "use --method netlink")
        }
    }
}
