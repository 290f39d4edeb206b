import Glibc
import KPeerSystem
import PeerResolution
import Rendering
import SocketInventory

/// Running a valid command line: call the library, print, and end with the
/// status the answer calls for (KPeerError.exitStatuses), the same whatever
/// the output form: --json prints its document and then fails like the
/// text would, with the same one line on stderr.
extension KPeerCommand {
    func execute() throws(KPeerError) {
        if watch { return try runWatch(watchFlags) }  // --watch (Watch+CLI.swift)
        switch try mode() {
        case .findOffset(let inode):
            try findOffset(calibratingOn: inode)
        case .target(let target, json: let json):
            switch target {
            case .inode(let inode): try answer(inode, json: json)
            default: try clients(of: target, json: json)
            }
        case .listing(let format):
            try list(format)
        }
    }

    /// An owner scan that could not read every process (not root; root in
    /// a user namespace, in a pid namespace that shows only some processes,
    /// or refused a process's descriptors by the kernel) leaves holes in the
    /// owner lists: an answer that stands says so once. "Held by no process" is then never claimed
    /// (PeerMap.peerOwners and noClients: 77), and the kcore method still
    /// needs root.
    func noteWhatIsHidden(_ r: Resolution) {
        guard let gaps = r.map.ownerGaps else { return }
        Output.message("kpeer: \(Host.isRoot ? "" : "not root: ")\(gaps); a socket held only by processes kpeer could not see shows no owner — \(Self.seeEveryHolder)\n")
    }

    static let seeEveryHolder = "run kpeer as root in the initial user and pid namespaces to see every holder"

    /// Other users' /proc/PID/fd are unreadable: their sockets would look
    /// held by no process, a false answer. The original tool, too, needed root.
    func requireRoot() throws(KPeerError) {
        if !Host.isRoot {
            throw KPeerError(.permission, "root is needed to see which processes hold sockets",
                             fix: "run kpeer as root (sudo kpeer ...)")
        }
    }

    func findOffset(calibratingOn inode: UInt64?) throws(KPeerError) {
        let report = try OffsetReport.gather(options, calibrateOn: inode)
        try Output.answer(Render.offsetReport(report))
        if report.agreed == nil {
            throw KPeerError(.refused, "the offset sources do not agree, or none is available", fix: "see the lines above")
        }
    }

    // MARK: kpeer INODE

    /// What `kpeer INODE` prints: the peer's processes, or for a listener
    /// its clients (as `kpeer PATH` lists them).
    enum InodeAnswer {
        case peers([Owner])
        /// A listener's clients and its twin's (PathTwin), none maybe:
        /// `check` turns that into the error.
        case clients(PathAnswer, twin: PathAnswer?, gaps: String?)

        func check() throws(KPeerError) {
            if case .clients(let a, let twin, let gaps) = self, a.clients.isEmpty && twin?.clients.isEmpty ?? true {
                throw KPeerCommand.noClients(a, gaps: gaps)
            }
        }
    }

    func answer(_ inode: UInt64, json: Bool) throws(KPeerError) {
        let r = try Resolver.resolve(options, focus: inode)
        if verbose {
            note(r)
            noteFacts(r.map, inode)
            noteHolders(r.map, r.map.owners(of: inode) + (r.map[inode]?.peer.map { r.map.owners(of: $0) } ?? []))
        }
        if json {
            // Nothing to describe: the error alone (2, or 70 for a wrapped inode).
            guard r.map[inode] != nil else { _ = try r.map.peerOwners(of: inode); return }
            // The document first, whatever the answer; then fail as the text would.
            let found: InodeAnswer
            do {
                found = try answer(inode, in: r)
            } catch {
                try Output.answer(JSON.document(r.map.restricted(to: [inode]), ownNetns: r.ownNetns))
                throw error
            }
            var listener: JSON.Listener?
            if case .clients(let a, let twin, _) = found { listener = JSON.Listener(answer: a, twin: twin) }
            try Output.answer(JSON.document(r.map.restricted(to: [inode]), ownNetns: r.ownNetns, listener: listener))
            try found.check()
            noteWhatIsHidden(r)
            return
        }
        let found = try answer(inode, in: r)
        try found.check()
        switch found {
        case .peers(let owners): try Output.answer(Render.answer(owners))
        case .clients(let a, let twin, _): try Output.answer(Render.clients(a, twin: twin))
        }
        noteWhatIsHidden(r)
    }

    func answer(_ inode: UInt64, in r: Resolution) throws(KPeerError) -> InodeAnswer {
        do {
            return .peers(try r.map.peerOwners(of: inode))
        } catch {
            guard error.kind == .noPeer, let s = r.map[inode], s.entry.isListening,
                  let (answer, twin) = try clients(ofListener: s, r) else { throw error }
            return .clients(answer, twin: twin, gaps: r.map.ownerGaps)
        }
    }

    /// A listener's clients, through the path query of the name it is bound
    /// to, and its twin's (PathTwin: the X server's file and abstract name);
    /// nil where that name does not lead back to this listener (an abstract
    /// name in another network namespace, a file unlinked or bound again, a
    /// relative or non-UTF-8 path), which leaves the plain "no peer".
    func clients(ofListener s: ResolvedSocket, _ r: Resolution) throws(KPeerError) -> (PathAnswer, twin: PathAnswer?)? {
        guard let path = s.entry.path else { return nil }
        let target: QueryTarget
        if path.isAbstract {
            guard r.netns(of: s.entry) == r.ownNetns else { return nil }
            target = .abstract(path.bytes)
        } else {
            guard let file = Target.utf8(path.bytes), file.hasPrefix("/") else { return nil }
            target = .file(file)
        }
        // Files are matched by inode and device, which this run has not read
        // yet: needed for a file, and for an abstract name that is an
        // absolute path (its twin may be that file).
        let withFiles = path.isAbstract && path.bytes.first != UInt8(ascii: "/") ? r : try Resolver.resolve(options, boundFiles: true)
        guard let answer = try? PathQuery.answer(target, in: withFiles), answer.listener.inode == s.inode else { return nil }
        return (answer, PathTwin.find(answer, in: withFiles))
    }

    /// A listener with no client (nor its twin). Who holds it is said only
    /// when the owner scan saw everyone: "held by no process" may be a
    /// process kpeer could not read (77, as for an unseen peer).
    static func noClients(_ answer: PathAnswer, gaps: String?) -> KPeerError {
        let l = answer.listener
        if l.owners.isEmpty, let gaps {
            return KPeerError(.permission, "\(answer.query): socket \(l.inode) has no clients and is held by no process kpeer could see: \(gaps)",
                              fix: seeEveryHolder)
        }
        let holders = l.owners.isEmpty ? "no process" : l.owners.map(\.label).joined(separator: ",")
        return KPeerError(.noPeer, "\(answer.query): socket \(l.inode) held by \(holders) has no clients")
    }

    // MARK: kpeer PATH, kpeer @NAME

    func clients(of target: Target, json: Bool) throws(KPeerError) {
        let query = try target.query()
        let r: Resolution
        var answer: PathAnswer
        if let arg = netns, case .abstract(let name) = target {
            // The name as bound in that namespace, which no process need be in.
            let ns = try NetNamespaces.named(arg)
            try NetnsQuery.checkEnterable(ns, own: NetNamespaces.current(procRoot: options.procRoot) ?? 0)
            r = try Resolver.resolve(NetnsQuery.options(options, reading: ns))
            if verbose { note(r) }
            answer = try NetnsQuery.answer(name, in: ns.inode, from: r)
        } else {
            r = try Resolver.resolve(options, boundFiles: true)
            if verbose { note(r) }
            answer = try PathQuery.answer(query, in: r)
        }
        answer = identityFilter.apply(answer, identities: r.map.identities)
        if verbose {
            noteFacts(r.map, answer.listener.inode)
            noteHolders(r.map, answer.listener.owners + answer.clients.flatMap(\.owners))
        }
        // The same name in the other address space, held by the same
        // process (the X server's file and abstract name): its clients too.
        // Not for another namespace's name, nor when clients are filtered.
        let twin = netns == nil && identityFilter.isEmpty ? PathTwin.find(answer, in: r) : nil
        if json, let name = target.name {
            try Output.answer(JSON.pathDocument(answer, query: name, twin: twin, map: r.map, ownNetns: r.ownNetns))
        }
        let found = InodeAnswer.clients(answer, twin: twin, gaps: r.map.ownerGaps)
        try found.check()
        if !json { try Output.answer(Render.clients(answer, twin: twin)) }
        noteWhatIsHidden(r)
    }

    // MARK: Listings

    func list(_ format: OutputFormat) throws(KPeerError) {
        // A pid no process has is a mistake to say, not an empty listing.
        if let pid, kill(pid, 0) != 0, errno == ESRCH {
            throw KPeerError(.notFound, "no process has pid \(pid)", fix: "give the pid of a running process (ps shows them)")
        }
        let r = try Trace.phase("resolve") { () throws(KPeerError) in try Resolver.resolve(options) }
        if verbose { note(r) }
        // A process whose descriptors may not be read holds sockets nobody
        // can list here: an empty listing would say it holds none.
        if let pid, r.map.unreadablePids.contains(pid) {
            throw KPeerError(.permission, "the descriptors of process \(pid) could not be read, so which sockets it holds is unknown",
                             fix: Host.isRoot ? Self.seeEveryHolder : "run kpeer as root (sudo kpeer ...)")
        }
        let map = identityFilter.apply(filter.apply(r.map), identities: r.map.identities)
        // The table and the dump are written out as the bytes rendered: a
        // String of them would only check every byte for UTF-8 again.
        let bytes = Trace.phase("render") { () -> [UInt8] in
            switch format {
            case .json: Array(JSON.document(map, ownNetns: r.ownNetns).utf8)
            case .dump: Render.dumpBytes(map, pid: pid)
            case .dot: Array(Dot.graph(map, ownNetns: r.ownNetns).utf8)
            case .table: Render.tableBytes(map, ownNetns: r.ownNetns, extended: extended,
                                           ownPidNamespace: extended ? PidView.current().namespace : nil)
            }
        }
        try bytes.withUnsafeBufferPointer { b throws(KPeerError) in try Output.answer(bytes: b) }
        noteWhatIsHidden(r)
    }

    // MARK: -v

    func note(_ r: Resolution) {
        let map = r.map
        var line = "kpeer: method \(map.method.rawValue)"
        if let o = map.offset { line += ", unix_sock.peer at \(o.value) from \(o.source.rawValue) (\(o.provenance))" }
        if let why = map.fallbackReason { line += "; kcore not used: \(why)" }
        let spaces = Set(map.sockets.map { r.netns(of: $0.entry) })
        if spaces.count > 1 { line += "; \(spaces.count) network namespaces" }
        if !r.skipped.isEmpty { line += "; not entered: " + r.skipped.joined(separator: "; ") }
        let pids = PidView.current()
        if pids.isChild, let ns = pids.namespace {
            line += "; in pid namespace \(ProcessIdentity.label(pidNamespace: ns)): processes of other namespaces are not seen"
        }
        Output.message(line + "\n")
        if let ring = map.ringNote { Output.message("kpeer: \(ring)\n") }
    }

    /// -v with INODE or PATH: who each holder printed is (how it holds the
    /// socket, its pid namespace, unit, container), a process once.
    func noteHolders(_ map: PeerMap, _ owners: [Owner]) {
        let own = PidView.current().namespace
        var described = Set<Int32>()
        var held: [Owner] = []
        for o in owners where !held.contains(o) { held.append(o) }
        for o in held {
            // A process's identity once; each way it holds a socket.
            let id = described.insert(o.pid).inserted ? map.identities[o.pid] : nil
            for line in Identity.lines(o, identity: id, ownPidNamespace: own) { Output.message("kpeer: " + line + "\n") }
        }
    }

    /// -v with INODE or PATH: what kernel memory told about that socket.
    func noteFacts(_ map: PeerMap, _ inode: UInt64) {
        for line in Render.factLines(map, inode) { Output.message("kpeer: " + line + "\n") }
    }
}
