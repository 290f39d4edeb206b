import KernelMemory
import KernelObjects
import KPeerSystem
import SocketInventory

/// /proc/net/unix prints bound names raw, so any user can bind a name that
/// reads as extra rows (a newline, then a forged record). The kcore method
/// believes a row only when kernel memory at its address is a unix socket
/// that says the same: family AF_UNIX, the row's type, the row's inode (the
/// socket's inode, `sk_socket` → `socket_alloc.vfs_inode.i_ino`; none for
/// an embryo), the row's network namespace (`skc_net` → `net.ns.inum`) and
/// the row's name (`addr` → `unix_address`, printed as the kernel prints
/// it). A forged row fails one of these, and is dropped on its own: the
/// real row it imitates stays.
final class RowVerifier {
    let reader: ObjectReader
    /// Where each checked member is, resolved once: the check runs for every
    /// row of every kcore run, so it reads raw bytes, not members by name.
    private struct Layout {
        var family = 0, type = 0, socket = 0, net = 0, addr = 0
        var inode = 0, inum = 0, addrLen = 0, sunPath = 0, sunPathSize = 0, sunOffset = 0
        /// `skc_state`, from which the table's flags and St are printed.
        var state: Int?
        var span = 0
    }
    private let at: Layout
    private var netInum: [UInt64: UInt64] = [:]
    private(set) var passed = 0
    private(set) var failed = 0
    /// Where `unix_sock.peer` is, when known before the rows are checked:
    /// the check then reads it in the same pread as `sk_socket`.
    let peerAt: Int?
    /// address → the word at `peerAt`, for each row checked (the resolver's
    /// first read of every peer pointer, made here at no extra pread).
    /// Not kept by a chained check, which keeps `rowWords` instead.
    private(set) var peerWords: [UInt64: UInt64] = [:]
    /// The words at `peerAt` of the last verifyAll's rows, by row (nil:
    /// not read): a whole table's, with no hashing of every address.
    private(set) var rowWords: [UInt64?] = []

    /// Where a checked row's peer word is kept.
    private enum Keep {
        case byAddress
        /// A chained check's row: by row only.
        case byRow(Int)
        case both(Int)
    }
    /// With `queues`: where `sk_receive_queue.qlen` is, read in the same
    /// pread, and the addresses of checked rows whose queue is not empty.
    let qlenAt: Int?
    private(set) var queued: Set<UInt64> = []
    /// The last verifyAll's table listed some address more than once.
    private(set) var sawRepeatedAddress = false

    /// nil when this kernel's layouts lack a member the check needs.
    init?(reader: ObjectReader, peerAt: Int? = nil, queues: Bool = false) {
        self.reader = reader
        self.peerAt = peerAt
        if queues, peerAt != nil, let m = try? reader.types.member("unix_sock", "sk.sk_receive_queue.qlen"), m.size == 4 {
            qlenAt = m.offset
        } else {
            qlenAt = nil
        }
        let t = reader.types
        func off(_ type: String, _ path: String, size: Int? = nil) -> Int? {
            guard let m = try? t.member(type, path), size == nil || m.size == size else { return nil }
            return m.offset
        }
        guard let family = off("unix_sock", "sk.__sk_common.skc_family", size: 2),
              let type = off("unix_sock", "sk.sk_type", size: 2),
              let socket = off("unix_sock", "sk.sk_socket", size: 8),
              let net = off("unix_sock", "sk.__sk_common.skc_net.net", size: 8),
              let addr = off("unix_sock", "addr", size: 8),
              let inode = off("socket_alloc", "vfs_inode.i_ino", size: 8),
              let inum = off("net", "ns.inum", size: 4),
              let addrLen = off("unix_address", "len", size: 4),
              let name = off("unix_address", "name"),
              let sun = try? t.member("sockaddr_un", "sun_path") else { return nil }
        var l = Layout(family: family, type: type, socket: socket, net: net, addr: addr, inode: inode, inum: inum,
                       addrLen: addrLen, sunPath: name + sun.offset, sunPathSize: sun.size, sunOffset: sun.offset,
                       state: off("unix_sock", "sk.__sk_common.skc_state", size: 1))
        l.span = max(family + 2, type + 2, socket + 8, net + 8, addr + 8, (peerAt ?? 0) + 8, (qlenAt ?? 0) + 4,
                     (l.state ?? 0) + 1)
        at = l
        if let peerAt, peerAt < 0 || peerAt & 7 != 0 { return nil }
    }

    /// Does memory at the row's address say all that the row says?
    func verify(_ e: UnixSocketEntry) -> Bool {
        let ok = (try? fullCheck(e, keep: .byAddress)) ?? false
        if ok { passed += 1 } else { failed += 1 }
        return ok
    }

    /// Rows whose inode check passed: once `layoutSample` have, the
    /// layouts are borne out and rows the kernel began need no inode read.
    private(set) var confirmed = 0
    static let layoutSample = 8
    /// Rows believed as records the kernel began, without an inode read.
    private(set) var begun = 0
    /// unix_address → its `len`, read once (accepted sockets share their
    /// listener's).
    private var nameLengths: [UInt64: Int] = [:]

    /// Every row. Each must be the unix socket of its inode (`sk_socket`'s
    /// inode; none for an embryo): two 8-byte reads. A row that shares its
    /// inode or its address with another (one of them forged: a real
    /// socket is listed once) must also agree on family, type, namespace
    /// and name, read in full. Reading every row in full costs several
    /// times more (kcore copies every byte through a bounce buffer) and
    /// adds nothing for a row no other row imitates: a forged row can carry
    /// a socket's inode only by imitating that socket's real row, and one
    /// with an inode of its own matches no socket at its address.
    ///
    /// A row with a name is also held to the length of the name memory
    /// holds (`unix_address.len`, read once per address): a name with a
    /// newline and a record after it is printed cut short, and the row
    /// would name its socket by that shorter name (a user's socket passing
    /// for a service's). Such a row's name is the one memory holds.
    ///
    /// `chained`, for whole tables in the order read: a row that only the
    /// kernel can have begun needs no inode read (its words are still read,
    /// in one pread). Users choose names, nothing else in a row, so forged
    /// text lies inside some name: the first record after the header is
    /// the kernel's, and so is the one after a record of the kernel's that
    /// ends at its inode (no name), or whose name memory shows is all that
    /// the table printed for it. Any other row is checked as above; a chain
    /// that breaks stays broken for the rest of its table. The first
    /// `layoutSample` rows are checked by inode all the same: that is what
    /// proves the layouts.
    func verifyAll(_ entries: inout [UnixSocketEntry], chained: Bool = false) -> [Bool] {
        // Inodes and addresses listed more than once: a real table has none.
        let (twinInodes, twinAddresses) = Trace.phase("row twins") { () -> (Set<UInt64>, Set<UInt64>) in
            (Set(WordIndex(count: entries.count, skipping: 0) { entries[$0].inode }.repeated),
             Set(WordIndex(count: entries.count) { entries[$0].address }.repeated))
        }
        sawRepeatedAddress = !twinAddresses.isEmpty
        if peerAt != nil && !chained { peerWords.reserveCapacity(entries.count) }
        rowWords = [UInt64?](repeating: nil, count: peerAt != nil ? entries.count : 0)
        // The loop runs once per row of every kcore run: counts are kept
        // here and stored once, and a row the kernel began with nothing
        // but its peer word wanted is read with one readWord, as the
        // resolver read every row before the checks existed.
        var begunRows = 0, confirmedRows = confirmed, passedRows = 0
        let memory = reader.memory
        let wordOnly = peerAt.flatMap { qlenAt == nil ? UInt64($0) : nil }
        var nextBegun = false  // is the next row a record the kernel began?
        var ok = [Bool](repeating: false, count: entries.count)
        // Rows the kernel began with nothing but their peer word wanted are
        // read after the loop, all at once (KernelMemory.readWords): the
        // chain needs no word of theirs, only that they have no name.
        var fastRows: [Int] = []
        var fastAddresses: [UInt64] = []
        for i in entries.indices {
            // Only the plain fields first: copying the row would retain its name.
            let address = entries[i].address, inode = entries[i].inode, unnamed = entries[i].path == nil
            let twin = (!twinInodes.isEmpty && twinInodes.contains(inode)) || (!twinAddresses.isEmpty && twinAddresses.contains(address))
            let kernels: Bool
            switch entries[i].preceding {
            case .header: kernels = chained
            case .pathless, .named: kernels = chained && nextBegun
            case .unknown: kernels = false
            }
            if !twin, kernels, unnamed, confirmedRows >= Self.layoutSample, let wordOnly {
                if address != 0 {
                    fastRows.append(i)
                    fastAddresses.append(address &+ wordOnly)
                }
                nextBegun = true
                continue
            }
            let keep: Keep = chained ? .byRow(i) : .both(i)
            let e = entries[i]
            var whole = false
            if twin {
                ok[i] = (try? fullCheck(e, keep: keep)) ?? false
            } else if kernels, unnamed, confirmedRows >= Self.layoutSample {
                ok[i] = ((try? wordsCheck(e, inode: false, keep: keep)) ?? nil) != nil
                if ok[i] { begunRows += 1 }
            } else {
                switch (try? wordsCheck(e, inode: true, keep: keep)) ?? nil {
                case nil: break
                case .whole?: ok[i] = true; whole = true
                case .other(let name)?: ok[i] = true; entries[i].path = name
                }
                if ok[i] { confirmedRows += 1 }
            }
            nextBegun = kernels && (unnamed || whole)
            if ok[i] { passedRows += 1 }
        }
        if !fastRows.isEmpty {
            let read = memory.readWords(fastAddresses)
            var words = rowWords
            rowWords = []  // one owner of the array while it is filled
            for (k, i) in fastRows.enumerated() {
                guard let w = read[k] else { continue }
                words[i] = w
                ok[i] = true
                begunRows += 1
                passedRows += 1
            }
            rowWords = words
        }
        begun += begunRows
        confirmed = confirmedRows
        passed += passedRows
        failed += entries.count - passedRows
        return ok
    }

    func verifyAll(_ entries: [UnixSocketEntry], chained: Bool = false) -> [Bool] {
        var rows = entries
        return verifyAll(&rows, chained: chained)
    }

    /// The addresses listed more than once.
    static func repeatedAddresses(_ entries: [UnixSocketEntry]) -> Set<UInt64> {
        Set(WordIndex(count: entries.count) { entries[$0].address }.repeated)
    }

    /// What a row's check found of its name: the one printed is all of it
    /// (or it has none), or memory holds another.
    enum Name { case whole, other(SocketPath?) }

    /// The socket at the row's address has the row's inode, and the row's
    /// name is whole (or memory's is given); nil if the socket is not the
    /// row's. Without `inode`, only its words are read (the address is
    /// kernel memory): a record the kernel began, with no name.
    private func wordsCheck(_ e: UnixSocketEntry, inode: Bool, keep: Keep) throws(KPeerError) -> Name? {
        let memory = reader.memory
        guard e.address != 0, memory.contains(e.address &+ UInt64(at.socket)) else { return nil }
        // sk_socket, addr, peer and qlen, those wanted, in one read: a pread
        // costs far more than the few hundred bytes between them. A row the
        // kernel began needs only its peer word (and qlen): kcore copies
        // every byte through a bounce buffer, so those alone are read.
        let named = inode && e.path != nil
        var lo = Int.max, hi = 0
        func span(_ o: Int?, _ size: Int) {
            guard let o else { return }
            lo = min(lo, o)
            hi = max(hi, o + size)
        }
        if inode { span(at.socket, 8) }
        span(peerAt, 8)
        span(qlenAt, 4)
        if named { span(at.addr, 8) }
        if hi == 0 { return .whole }  // nothing wanted but the address
        guard memory.contains(e.address &+ UInt64(lo)), memory.contains(e.address &+ UInt64(hi - 1)) else { return nil }
        var words = (socket: UInt64(0), addr: UInt64(0))
        try withUnsafeTemporaryAllocation(byteCount: hi - lo, alignment: 8) { (b: UnsafeMutableRawBufferPointer) throws(KPeerError) in
            try memory.read(e.address &+ UInt64(lo), into: b)
            func word(_ o: Int) -> UInt64 { UInt64(littleEndian: b.loadUnaligned(fromByteOffset: o - lo, as: UInt64.self)) }
            if inode { words.socket = word(at.socket) }
            if named { words.addr = word(at.addr) }
            if let peerAt { note(e, word(peerAt), keep) }
            if let qlenAt, UInt32(littleEndian: b.loadUnaligned(fromByteOffset: qlenAt - lo, as: UInt32.self)) != 0 {
                queued.insert(e.address)
            }
        }
        guard inode else { return .whole }
        let socket = words.socket
        if socket == 0 {
            guard e.inode == 0 else { return nil }  // an embryo has no socket, and no inode
        } else {
            guard e.inode != 0, memory.contains(socket &+ UInt64(at.inode)),
                  try memory.readWord(socket &+ UInt64(at.inode)) == e.inode else { return nil }
        }
        guard let path = e.path else { return .whole }
        // A socket with a name in the table and none in memory is not the row's.
        guard words.addr != 0 else { return nil }
        // unix_seq_show prints len - sizeof(sun_family) bytes, a path's NUL
        // left out, an abstract name's first NUL as the '@' that SocketPath
        // does not keep: either way, one fewer.
        if path.bytes.count == (try nameLength(words.addr)) - at.sunOffset - 1 { return .whole }
        return .other(try name(words.addr))
    }

    private func note(_ e: UnixSocketEntry, _ word: UInt64, _ keep: Keep) {
        switch keep {
        case .byAddress: peerWords[e.address] = word
        case .byRow(let i): rowWords[i] = word
        case .both(let i): rowWords[i] = word; peerWords[e.address] = word
        }
    }

    /// `unix_address.len` (sun_family included), remembered per address.
    private func nameLength(_ addr: UInt64) throws(KPeerError) -> Int {
        if let known = nameLengths[addr] { return known }
        let memory = reader.memory
        guard memory.contains(addr &+ UInt64(at.addrLen + 7)) else {
            throw KPeerError(.refused, "unix_address outside kernel memory")
        }
        let len = Int(Int32(truncatingIfNeeded: try memory.readWord(addr &+ UInt64(at.addrLen)) & 0xffff_ffff))
        nameLengths[addr] = len
        return len
    }

    private func le(_ b: [UInt8], _ at: Int, _ size: Int) -> UInt64 {
        var v: UInt64 = 0
        for i in 0..<size { v |= UInt64(b[at + i]) << (8 * UInt64(i)) }
        return v
    }

    /// Family, type, inode, namespace and name.
    private func fullCheck(_ e: UnixSocketEntry, keep: Keep) throws(KPeerError) -> Bool {
        let memory = reader.memory
        guard e.address != 0, memory.contains(e.address), memory.contains(e.address &+ UInt64(at.span - 1)) else { return false }
        let b = try memory.read(e.address, count: at.span)
        if let peerAt { note(e, le(b, peerAt, 8), keep) }
        if let qlenAt, le(b, qlenAt, 4) != 0 { queued.insert(e.address) }
        guard le(b, at.family, 2) == 1,  // AF_UNIX
              le(b, at.type, 2) == UInt64(e.rawType) else { return false }
        let socket = le(b, at.socket, 8)
        if let stateAt = at.state {
            // unix_seq_show prints both from sk_state: __SO_ACCEPTCON for
            // TCP_LISTEN; St SS_CONNECTED or SS_UNCONNECTED for a socket,
            // SS_CONNECTING or SS_DISCONNECTING for an embryo.
            let established = le(b, stateAt, 1) == 1, listening = le(b, stateAt, 1) == 10
            let st: UInt8 = socket != 0 ? (established ? 3 : 1) : (established ? 2 : 4)
            guard listening == e.isListening, st == e.rawState else { return false }
        }
        if socket != 0 {
            guard e.inode != 0, memory.contains(socket &+ UInt64(at.inode)),
                  try memory.readWord(socket &+ UInt64(at.inode)) == e.inode else { return false }
        } else if e.inode != 0 {
            return false
        }
        if e.netns != 0 {
            let net = le(b, at.net, 8)
            if netInum[net] == nil {
                guard memory.contains(net &+ UInt64(at.inum)) else { return false }
                netInum[net] = try memory.readWord(net &+ UInt64(at.inum)) & 0xffff_ffff
            }
            guard netInum[net] == e.netns else { return false }
        }
        return try name(le(b, at.addr, 8))?.columnBytes == e.path?.columnBytes
    }

    /// The name as /proc/net/unix prints it (unix_seq_show): an abstract
    /// name's NULs as `@`, a path without the NUL the kernel appended.
    private func name(_ addr: UInt64) throws(KPeerError) -> SocketPath? {
        guard addr != 0 else { return nil }
        let memory = reader.memory
        guard memory.contains(addr), memory.contains(addr &+ UInt64(at.addrLen + 7)) else {
            throw KPeerError(.refused, "unix_address outside kernel memory")
        }
        let len = Int(Int32(truncatingIfNeeded: try memory.readWord(addr &+ UInt64(at.addrLen)) & 0xffff_ffff))
        let bytesLen = len - at.sunOffset  // len counts sun_family too
        // A path of all sun_path's bytes has its NUL one past them: the
        // kernel allocates unix_address for len bytes.
        guard bytesLen > 0, bytesLen <= at.sunPathSize + 1 else { return nil }
        guard memory.contains(addr &+ UInt64(at.sunPath + bytesLen - 1)) else {
            throw KPeerError(.refused, "unix_address outside kernel memory")
        }
        let raw = try memory.read(addr &+ UInt64(at.sunPath), count: bytesLen)
        if raw[0] == 0 {
            return SocketPath(bytes: raw.dropFirst().map { $0 == 0 ? 0x40 : $0 }, isAbstract: true)
        }
        return SocketPath(bytes: raw.dropLast().map { $0 == 0 ? 0x40 : $0 }, isAbstract: false)
    }
}

extension TrustedRows {
    /// Kcore rows that kernel memory vouches for (RowVerifier), then one
    /// row per inode and namespace. When not one row of many verifies, the
    /// layouts are what is wrong (a stale remembered layout): nil, and the
    /// caller falls back to `inMemory`.
    static func verified(_ entries: [UnixSocketEntry], _ verifier: RowVerifier) -> [UnixSocketEntry]? {
        verifiedWithWords(entries, verifier)?.rows
    }

    /// The same, with each kept row's peer word (RowVerifier.rowWords;
    /// empty when the verifier reads none).
    static func verifiedWithWords(_ entries: [UnixSocketEntry], _ verifier: RowVerifier)
        -> (rows: [UnixSocketEntry], words: [UInt64?])? {
        var entries = entries
        let ok = Trace.phase("row reads") { verifier.verifyAll(&entries, chained: true) }
        let words = verifier.rowWords
        if !verifier.sawRepeatedAddress && !ok.contains(false) {
            return (entries, words)  // every row vouched for, each address once: nothing to copy
        }
        var keep = entries.indices.filter { ok[$0] }
        if keep.isEmpty && !entries.isEmpty { return nil }
        // Memory vouched for each row: rows that share an inode at two
        // addresses are two real sockets (the inode counter wrapped) and
        // both stay, for the links to mark the inode ambiguous; a row
        // repeated at one address is one socket.
        if verifier.sawRepeatedAddress,
           let unique = Trace.phase("row unique", { uniqueAddressIndices(keep.map { entries[$0] }, vouched: true) }) {
            keep = unique.map { keep[$0] }
        }
        return (keep.map { entries[$0] }, words.isEmpty ? [] : keep.map { words[$0] })
    }
}

extension RowVerifier {
    var memory: KernelMemory { reader.memory }
}
