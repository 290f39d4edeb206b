import KernelMemory
import SocketInventory

/// /proc/net/unix prints a bound path's bytes raw, newlines included, so any
/// user can bind a path that reads as extra rows of the table. A row is kept
/// only when something the kernel gives out of band vouches for it, and an
/// inode that appears twice in one namespace is dropped altogether: one of
/// the two is forged, and nothing says which.
enum TrustedRows {
    /// Netlink: the sock_diag dump lists the inode. Embryos (inode 0) are not
    /// sockets of their own and pass.
    static func vouched(_ entries: [UnixSocketEntry], known: Set<UInt64>) -> [UnixSocketEntry] {
        unique(entries.filter { $0.inode == 0 || known.contains($0.inode) })
    }

    /// Kcore: the address lies in kernel memory. Real rows carry real
    /// addresses (checkAddresses has made sure of that); a forger can only
    /// guess, or copy a real row's address: an address listed twice names
    /// no socket for sure, and both rows go.
    static func inMemory(_ entries: [UnixSocketEntry], _ memory: KernelMemory) -> [UnixSocketEntry] {
        let kept = entries.filter { $0.address != 0 && memory.contains($0.address) }
        var addresses = kept.map(\.address)
        addresses.sort()
        var twice = Set<UInt64>()
        for i in addresses.indices.dropFirst() where addresses[i] == addresses[i - 1] { twice.insert(addresses[i]) }
        return unique(twice.isEmpty ? kept : kept.filter { !twice.contains($0.address) })
    }

    struct Key: Hashable {
        var netns: UInt64
        var inode: UInt64
    }

    static func unique(_ entries: [UnixSocketEntry]) -> [UnixSocketEntry] {
        var count: [Key: Int] = [:]
        count.reserveCapacity(entries.count)
        for e in entries where e.inode != 0 { count[Key(netns: e.netns, inode: e.inode), default: 0] += 1 }
        if count.count == entries.lazy.filter({ $0.inode != 0 }).count { return entries }
        return entries.filter { $0.inode == 0 || count[Key(netns: $0.netns, inode: $0.inode)] == 1 }
    }
}
