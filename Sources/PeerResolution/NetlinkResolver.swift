import KPeerSystem
import SocketInventory

/// Peers as the kernel reports them through sock_diag: UNIX_DIAG_PEER for
/// every socket, UNIX_DIAG_ICONS for every listener's waiting clients.
public enum NetlinkResolver {
    public static func links(from diag: [DiagEntry]) -> PeerLinks {
        var links = PeerLinks()
        for e in diag where e.inode != 0 {
            // 0 is an embryo (a client's peer before accept) or a peer that
            // is already closed: neither is a socket of its own.
            if let p = e.peer, p != 0 { links.peer[e.inode] = p }
            if e.rawState == 10 {  // TCP_LISTEN
                for client in e.icons where client != 0 { links.pendingOn[client] = e.inode }
            }
        }
        return links
    }

    /// Every socket of this network namespace.
    public static func resolveAll(owners: OwnerTable) throws(KPeerError) -> PeerMap {
        let diag = try SockDiag.dump()
        let entries = try ProcNetUnix.read("/proc/self/net/unix")
        return PeerMap(entries: entries, owners: owners, links: links(from: diag), method: .netlink)
    }
}
