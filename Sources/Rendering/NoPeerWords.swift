import KPeerSystem
import PeerResolution
import SocketInventory

extension PeerMap {
    /// The original `socket_peer INODE`: the processes holding the peer, or
    /// the error that says why there are none (PeerMap.peerAnswer's facts,
    /// worded here).
    public func peerOwners(of inode: UInt64) throws(KPeerError) -> [Owner] {
        switch peerAnswer(of: inode) {
        case .owners(let owners): return owners
        case .none(let why): throw KPeerError(why, inode: inode)
        }
    }
}

extension KPeerError {
    /// The one line and exit status of each reason `kpeer INODE` has no
    /// process to name.
    public init(_ why: NoPeer, inode: UInt64) {
        let wrapped = "names more than one live socket (the kernel's 32-bit inode counter has wrapped): kpeer cannot tell which one a process holds"
        switch why {
        case .ambiguous:
            self.init(.refused, "inode \(inode) \(wrapped)",
                      fix: "ask for the other end by its own inode, or by the path or @name it is bound to")
        case .noSocket:
            self = .noSocket(inode: inode)
        case .peerAmbiguous(let p):
            self.init(.refused, "the peer of \(inode) has inode \(p), which \(wrapped)",
                      fix: "look the socket up by the path or @name it is bound to, if any")
        case .peerUnheld(let p, .inFlight(let r, let holders)):
            self.init(.peerUnheld, "the peer of \(inode) (inode \(p)) is held by no process: it is in flight in an SCM_RIGHTS message queued on socket \(r), held by \(Self.describe(holders))",
                      fix: "that process has not received it yet")
        case .peerUnheld(let p, .inRing(let rings)):
            self.init(.peerUnheld, "the peer of \(inode) (inode \(p)) is held by no process kpeer can see; \(rings)",
                      fix: "one of those rings may hold it; Linux 6.14 and later say which")
        case .peerUnheld(let p, .unseen(let gaps)):
            self.init(.permission, "the peer of \(inode) is socket \(p), held by no process kpeer could see: \(gaps)",
                      fix: "run kpeer as root in the initial user and pid namespaces to see every holder")
        case .peerUnheld(let p, .inFlightNowhere):
            self.init(.peerUnheld, "the peer of \(inode) (inode \(p)) is held by no process kpeer can see, and is in flight in no queue kernel memory shows",
                      fix: "it is being closed, or held where kpeer cannot look (another pid namespace); try again")
        case .peerUnheld(let p, .unknown):
            self.init(.peerUnheld, "the peer of \(inode) (inode \(p)) is held by no process kpeer can see",
                      fix: "it may be in flight in an SCM_RIGHTS message or being closed (kpeer -v with the kcore method says which)")
        case .pending(let l, let path, let holders):
            self.init(.peerUnheld, "\(inode) is waiting in the accept queue of listener \(l)\(path.map { " (\($0.display))" } ?? "") held by \(Self.describe(holders))",
                      fix: "that process has not accept()ed the connection yet")
        case .unverified:
            self.init(.refused, "the peer of \(inode) could not be verified (the socket changed while kpeer read it, or its pointer failed the self-check)",
                      fix: "run kpeer again, or use --method netlink")
        case .listening(let pending):
            self.init(.noPeer, "\(inode) is a listening socket with \(pending) pending client(s); it has no peer",
                      fix: "its accepted connections are separate sockets: see kpeer --all")
        case .peerClosed:
            self.init(.noPeer, "\(inode) was connected, but its peer has closed",
                      fix: "the process holding it has not closed its end yet")
        case .receivesFrom(let senders):
            let list = senders.map { "\($0.inode) (\(Self.describe($0.holders)))" }.joined(separator: ", ")
            self.init(.noPeer, "\(inode) has no peer of its own; sockets sending to it: \(list)")
        case .unconnected:
            self.init(.noPeer, "\(inode) is not connected to any socket")
        }
    }

    fileprivate static func describe(_ owners: [Owner]) -> String {
        owners.isEmpty ? "no process" : owners.map(\.label).joined(separator: ",")
    }
}
