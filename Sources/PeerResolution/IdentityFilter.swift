import SocketInventory

/// `--unit NAME`, `--container ID-PREFIX`: only sockets held by a process in
/// that systemd unit (or below it: a slice, user@UID.service) or in that
/// container. Needs the owner scan's identities (OwnerScan.scan(identities:
/// true)); a process that was not described matches neither.
public struct IdentityFilter: Sendable, Equatable {
    public var unit: String?
    public var container: String?

    public init(unit: String? = nil, container: String? = nil) {
        self.unit = unit
        self.container = container
    }

    public var isEmpty: Bool { unit == nil && container == nil }

    /// The process matches every criterion given.
    public func keeps(_ id: ProcessIdentity?) -> Bool {
        if let unit, id?.isIn(unit: unit) != true { return false }
        if let container, id?.isIn(container: container) != true { return false }
        return true
    }

    /// Some process holding the socket matches.
    public func keeps(_ owners: [Owner], identities: [Int32: ProcessIdentity]) -> Bool {
        owners.contains { keeps(identities[$0.pid]) }
    }

    /// The listing's sockets that a matching process holds (their peers are
    /// still named, as with --pid).
    public func apply(_ map: PeerMap, identities: [Int32: ProcessIdentity]) -> PeerMap {
        isEmpty ? map : map.restricted(to: Set(map.sockets.filter { keeps($0.owners, identities: identities) }.map(\.inode)))
    }

    /// `kpeer PATH`: only the clients a matching process holds ("which
    /// container talks to /run/docker.sock").
    public func apply(_ answer: PathAnswer, identities: [Int32: ProcessIdentity]) -> PathAnswer {
        guard !isEmpty else { return answer }
        var a = answer
        a.clients = answer.clients.filter { keeps($0.owners, identities: identities) }
        return a
    }
}
