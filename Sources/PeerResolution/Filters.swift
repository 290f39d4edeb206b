import SocketInventory

/// `--pid`, `--type`, `--listening`: which sockets a listing shows. Peers
/// and pending clients of a kept socket are still named, even when they
/// are not kept themselves.
public struct SocketFilter: Sendable, Equatable {
    /// Only sockets this process holds.
    public var pid: Int32?
    /// Only sockets of this type.
    public var type: SocketType?
    /// Only listening sockets.
    public var listening = false

    public init(pid: Int32? = nil, type: SocketType? = nil, listening: Bool = false) {
        self.pid = pid
        self.type = type
        self.listening = listening
    }

    public var isEmpty: Bool { pid == nil && type == nil && !listening }

    public func keeps(_ s: ResolvedSocket) -> Bool {
        if let pid, !s.owners.contains(where: { $0.pid == pid }) { return false }
        if let type, s.entry.type != type { return false }
        if listening && !s.entry.isListening { return false }
        return true
    }

    public func apply(_ map: PeerMap) -> PeerMap {
        isEmpty ? map : map.restricted(to: Set(map.sockets.filter(keeps).map(\.inode)))
    }
}
