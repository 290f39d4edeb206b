import KernelMemory
import SocketInventory

/// /proc/net/unix prints a bound path's bytes raw, newlines included, so any
/// user can bind a path that reads as extra rows of the table. A row is kept
/// only when something the kernel gives out of band vouches for it, and an
/// inode that appears twice in one namespace is dropped altogether: one of
/// the two is forged, and nothing says which.
enum TrustedRows {
    /// Netlink: the sock_diag dump lists the inode. Embryos (inode 0) are not
    /// sockets of their own and pass. An inode listed twice (one row is a
    /// forgery) is settled by sock_diag's own record of it (`details`, asked
    /// for only then): the rows that agree with it on type, listening and
    /// name stay (one of them, as they say the same), the others go. Without
    /// details, both go.
    static func vouched(_ entries: [UnixSocketEntry], known: Set<UInt64>,
                        details: () -> [UInt64: DiagEntry]? = { nil }) -> [UnixSocketEntry] {
        let listed = entries.filter { $0.inode == 0 || known.contains($0.inode) }
        let twins = twinKeys(listed)
        guard !twins.isEmpty else { return listed }
        guard let diag = details() else { return unique(listed) }
        var kept: [UnixSocketEntry] = []
        var seen = Set<Key>()
        for e in listed {
            // Only a twinned inode is put to sock_diag's record: a row of its
            // own stays whatever its name (a name with a newline prints cut).
            let key = Key(netns: e.netns, inode: e.inode)
            if e.inode == 0 || !twins.contains(key) { kept.append(e); continue }
            guard let d = diag[e.inode], agrees(e, d), seen.insert(key).inserted else { continue }
            kept.append(e)
        }
        return kept
    }

    /// Does a row say what sock_diag says of the same inode? The name is
    /// compared as /proc/net/unix prints it (NULs as `@`).
    static func agrees(_ e: UnixSocketEntry, _ d: DiagEntry) -> Bool {
        // St as unix_seq_show prints it from sk_state for a socket (a row
        // with an inode has one): SS_CONNECTED when established.
        UInt16(d.rawType) == e.rawType && (d.rawState == 10) == e.isListening && e.rawState == (d.rawState == 1 ? 3 : 1)
            && d.name?.columnBytes == e.path?.columnBytes
    }

    /// Netlink: every row that sock_diag lists gets sock_diag's name (as
    /// the table prints names), not the table's. A name with a newline and
    /// a record after it prints cut short, and the row would pass for a
    /// socket of that shorter name (a user's socket named like a
    /// service's): the dump has the whole name. `names` holds the named
    /// sockets of the dump; a listed inode absent from it has no name.
    static func named(_ entries: inout [UnixSocketEntry], known: (UnixSocketEntry) -> Bool,
                      names: (UnixSocketEntry) -> SocketPath?) {
        for i in entries.indices where entries[i].inode != 0 && known(entries[i]) {
            let name = names(entries[i])?.printed
            if name != entries[i].path { entries[i].path = name }
        }
    }

    /// The (namespace, inode) keys listed more than once.
    static func twinKeys(_ entries: [UnixSocketEntry]) -> Set<Key> {
        var seen = Set<Key>()
        seen.reserveCapacity(entries.count)
        var twins = Set<Key>()
        for e in entries where e.inode != 0 {
            let key = Key(netns: e.netns, inode: e.inode)
            if !seen.insert(key).inserted { twins.insert(key) }
        }
        return twins
    }

    /// Kcore: the address lies in kernel memory. Real rows carry real
    /// addresses (checkAddresses has made sure of that); a forger can only
    /// guess, or copy a real row's address: an address listed twice names
    /// no socket for sure, and both rows go.
    ///
    /// Where sock_diag answers (`details`), a row whose inode it does not
    /// list goes, and it settles the twins as for the netlink method: a row
    /// listed twice stays only if sock_diag's record of its inode agrees
    /// with it, once per inode; so a forged twin no longer takes the real
    /// row with it.
    static func inMemory(_ entries: [UnixSocketEntry], _ memory: KernelMemory,
                         details: () -> [UInt64: DiagEntry]? = { nil }) -> [UnixSocketEntry] {
        var kept = entries.filter { $0.address != 0 && memory.contains($0.address) }
        let diag = details()
        // A row whose inode sock_diag does not list is no socket.
        if let diag { kept = kept.filter { $0.inode == 0 || diag[$0.inode] != nil } }
        let twice = RowVerifier.repeatedAddresses(kept)
        let twins = twinKeys(kept)
        if twice.isEmpty && twins.isEmpty { return kept }
        guard let diag else {
            return unique(twice.isEmpty ? kept : kept.filter { !twice.contains($0.address) })
        }
        // Rows listed twice: those sock_diag's record agrees with. Agreeing
        // rows at two addresses leave the address unknown (a forger may
        // copy a row whole but its address): then none stays.
        var agreeing: [Key: [UnixSocketEntry]] = [:]
        for e in kept where twice.contains(e.address) || twins.contains(Key(netns: e.netns, inode: e.inode)) {
            if e.inode != 0, let d = diag[e.inode], agrees(e, d) { agreeing[Key(netns: e.netns, inode: e.inode), default: []].append(e) }
        }
        var seen = Set<Key>()
        return kept.filter { e in
            let key = Key(netns: e.netns, inode: e.inode)
            guard twice.contains(e.address) || twins.contains(key) else { return true }
            guard let rows = agreeing[key], rows.contains(e), Set(rows.map(\.address)).count == 1,
                  !twice.contains(e.address) || kept.allSatisfy({ $0.address != e.address || $0.inode == e.inode }) else { return false }
            return seen.insert(key).inserted
        }
    }

    struct Key: Hashable {
        var netns: UInt64
        var inode: UInt64
    }

    /// One row per kernel address: a row repeated word for word is one
    /// socket listed once; rows at one address that differ go, as nothing
    /// says which is true. Rows at different addresses all stay.
    static func uniqueAddresses(_ entries: [UnixSocketEntry], vouched: Bool = false) -> [UnixSocketEntry] {
        guard let keep = uniqueAddressIndices(entries, vouched: vouched) else { return entries }
        return keep.map { entries[$0] }
    }

    /// The indices uniqueAddresses keeps; nil when it keeps them all.
    /// `vouched`: memory checked every row in full at its address (family,
    /// type, inode, namespace, name, flags, St), so rows at one address are
    /// one socket, printed twice (a read of the table restarted between
    /// them), maybe with another reference count: the first stays.
    static func uniqueAddressIndices(_ entries: [UnixSocketEntry], vouched: Bool = false) -> [Int]? {
        // Found by sorting: a real table lists each address once.
        let twice = RowVerifier.repeatedAddresses(entries)
        if twice.isEmpty { return nil }
        var first: [UInt64: Int] = [:]
        var drop = Set<UInt64>()
        var repeated = Set<Int>()
        for (i, e) in entries.enumerated() where twice.contains(e.address) {
            if let j = first[e.address] {
                if vouched || entries[j] == e { repeated.insert(i) } else { drop.insert(e.address) }
            } else {
                first[e.address] = i
            }
        }
        return entries.indices.filter { !repeated.contains($0) && !drop.contains(entries[$0].address) }
    }

    static func unique(_ entries: [UnixSocketEntry]) -> [UnixSocketEntry] {
        var count: [Key: Int] = [:]
        count.reserveCapacity(entries.count)
        for e in entries where e.inode != 0 { count[Key(netns: e.netns, inode: e.inode), default: 0] += 1 }
        if count.count == entries.lazy.filter({ $0.inode != 0 }).count { return entries }
        return entries.filter { $0.inode == 0 || count[Key(netns: $0.netns, inode: $0.inode)] == 1 }
    }
}
