import CKPeer
import Glibc
import KPeerSystem
import SocketInventory

/// The fallback where the BPF program cannot run: sock_diag snapshots, one
/// every interval, each compared with the one before. What changed is
/// reported as events, stamped with the time of the poll that saw it. A
/// connection that opens and closes between two polls is never seen, and
/// a first datagram sent without connect() leaves nothing to see.
public struct PollWatch {
    /// One socket as a snapshot keeps it.
    struct Seen: Equatable {
        var type: SocketType?
        var listening: Bool
        var peer: UInt64
        var name: SocketPath?
        var vfs: UInt64?
        var icons: [UInt64]
    }

    private(set) var previous: [UInt64: Seen] = [:]
    private var started = false
    /// Clients whose connect was already reported (pending on a listener
    /// before they were accepted).
    private var announced: Set<UInt64> = []
    /// Who held what at the last owner scan: a closed socket is gone from
    /// /proc, so its last known holder names it.
    private var lastOwners: [UInt64: WatchProcess] = [:]
    /// Both ends of every link the watch reported: once one end closes the
    /// kernel no longer names it as the other's peer, but its close does.
    private var linked: [UInt64: UInt64] = [:]
    /// Owners are read from /proc only when a poll found something new.
    var scanOwners: () -> OwnerTable = { OwnerScan.scan() }
    var snapshot: () throws(KPeerError) -> [DiagEntry] = { () throws(KPeerError) in
        try SockDiag.dump(show: UInt32(UDIAG_SHOW_NAME | UDIAG_SHOW_VFS | UDIAG_SHOW_PEER | UDIAG_SHOW_ICONS))
    }

    public init() {}

    /// One poll: the events since the last one (none at the first, which
    /// only sets the baseline), stamped `now` (ns since the epoch).
    public mutating func poll(now: UInt64) throws(KPeerError) -> [WatchEvent] {
        var current: [UInt64: Seen] = [:]
        for e in try snapshot() where e.inode != 0 {
            current[e.inode] = Seen(type: SocketType(rawValue: UInt16(e.rawType)), listening: e.rawState == 10,
                                    peer: e.peer ?? 0, name: e.name, vfs: e.vfs?.inode, icons: e.icons)
        }
        defer { previous = current }
        guard started else {
            started = true
            if !current.isEmpty { remember(scanOwners(), current) }
            return []
        }
        return events(current, now: now)
    }

    /// The changes from `previous` to `current`.
    mutating func events(_ current: [UInt64: Seen], now: UInt64) -> [WatchEvent] {
        // Listeners by name, to tell an accepted socket (it carries its
        // listener's name) from its client.
        var listeners: [SocketPath: UInt64] = [:]
        for (inode, s) in current where s.listening { if let n = s.name { listeners[n] = inode } }
        for (inode, s) in previous where s.listening { if let n = s.name, listeners[n] == nil { listeners[n] = inode } }

        var links: [(UInt64, Seen)] = []   // sockets whose peer is new
        var waiting: [(UInt64, UInt64)] = []  // (client, listener) newly pending
        for (inode, s) in current {
            if s.peer != 0, previous[inode]?.peer != s.peer { links.append((inode, s)) }
            if s.listening {
                let before = Set(previous[inode]?.icons ?? [])
                for c in s.icons where !before.contains(c) && !announced.contains(c) { waiting.append((c, inode)) }
            }
        }
        let gone = previous.keys.filter { current[$0] == nil }
        if links.isEmpty && waiting.isEmpty && gone.isEmpty { return [] }

        let owners = links.isEmpty && waiting.isEmpty ? nil : scanOwners()
        func holder(_ inode: UInt64) -> WatchProcess? {
            if let o = owners?.owners(of: inode).first { return WatchProcess(pid: o.pid, name: o.nameBytes) }
            return lastOwners[inode]
        }
        var out: [WatchEvent] = []
        func emit(_ kind: WatchEvent.Kind, _ type: SocketType?, _ inode: UInt64, peer: UInt64?, listener: UInt64? = nil,
                  listening: Bool = false) {
            if let peer, kind != .close {
                linked[inode] = peer
                if kind != .connect || listener != nil || type != .dgram { linked[peer] = inode }
            }
            out.append(WatchEvent(kind: kind, time: now, type: type, inode: inode, process: holder(inode), peer: peer,
                                  peerProcess: peer.map(holder) ?? listener.flatMap(holder), listener: listener,
                                  listening: listening, source: .poll))
        }
        for (client, listener) in waiting.sorted(by: { $0.0 < $1.0 }) {
            announced.insert(client)
            emit(.connect, current[client]?.type ?? current[listener]?.type, client, peer: nil, listener: listener)
        }
        var paired: Set<UInt64> = []
        for (inode, s) in links.sorted(by: { $0.0 < $1.0 }) where !paired.contains(inode) {
            let other = current[s.peer]
            let mutual = other?.peer == inode
            if s.type == .stream || s.type == .seqpacket {
                guard mutual, let other else { continue }  // a client still pending: its listener said so
                // The accepted end carries its listener's name.
                let (server, client) = s.name.flatMap { listeners[$0] } != nil && other.name == nil
                    ? (inode, s.peer) : other.name.flatMap { listeners[$0] } != nil && s.name == nil ? (s.peer, inode) : (0, 0)
                paired.insert(inode)
                paired.insert(s.peer)
                if server != 0, let name = current[server]?.name, let listener = listeners[name] {
                    if !announced.contains(client) { emit(.connect, s.type, client, peer: nil, listener: listener) }
                    announced.remove(client)
                    emit(.accept, s.type, server, peer: client, listener: listener)
                } else {
                    emit(.pair, s.type, min(inode, s.peer), peer: max(inode, s.peer))
                }
            } else if other?.name == nil {
                // connect() needs a bound receiver: to an unbound one this is
                // a socketpair, seen half made if not mutual yet (the next
                // poll sees it whole).
                guard mutual else { continue }
                paired.insert(inode)
                paired.insert(s.peer)
                emit(.pair, s.type, min(inode, s.peer), peer: max(inode, s.peer))
            } else {
                emit(.connect, s.type, inode, peer: s.peer)
            }
        }
        for inode in gone.sorted() {
            let s = previous[inode]!
            announced.remove(inode)
            emit(.close, s.type, inode, peer: s.peer != 0 ? s.peer : linked[inode], listening: s.listening)
        }
        // Who held a closed socket is kept while its peer lives, for the
        // peer's own close to name.
        for inode in gone {
            let p = linked[inode]
            if let p, current[p] != nil { continue }
            lastOwners[inode] = nil
            linked[inode] = nil
            if let p, linked[p] == inode {
                lastOwners[p] = nil
                linked[p] = nil
            }
        }
        if let owners { remember(owners, current) }
        return out
    }

    private mutating func remember(_ owners: OwnerTable, _ current: [UInt64: Seen]) {
        for inode in current.keys {
            if let o = owners.owners(of: inode).first { lastOwners[inode] = WatchProcess(pid: o.pid, name: o.nameBytes) }
        }
    }
}
