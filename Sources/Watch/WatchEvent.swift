import CKPeer
import KPeerSystem
import SocketInventory

/// A process as an event names it: the one that acted, or the one at the
/// other end. `name` is the kernel's comm, exact bytes (anything a process
/// chose to call itself).
public struct WatchProcess: Sendable, Equatable, Hashable {
    public var pid: Int32
    /// The acting thread, where the kernel told (eBPF).
    public var tid: Int32?
    public var name: [UInt8]

    public init(pid: Int32, tid: Int32? = nil, name: [UInt8]) {
        self.pid = pid; self.tid = tid; self.name = name
    }

    /// `PID/NAME` for text output, the name escaped (Escape.bytes).
    public var label: String { "\(pid)/\(Escape.bytes(name))" }
}

/// Where the events came from.
public enum WatchSource: String, Sendable {
    /// The BPF program: every event, as it happened.
    case ebpf
    /// sock_diag snapshots compared: what changed between two polls.
    case poll
}

/// One thing that happened to a unix socket connection.
public struct WatchEvent: Sendable, Equatable {
    public enum Kind: String, Sendable, CaseIterable {
        /// connect() succeeded: a stream or seqpacket client to a listener,
        /// or a datagram socket to its receiver.
        case connect
        /// accept() returned a connection's server end.
        case accept
        /// A socket went away (its last descriptor closed).
        case close
        /// socketpair() made two connected sockets.
        case pair
        /// The first datagram from one socket to another.
        case send
    }

    public var kind: Kind
    /// Wall-clock time (CLOCK_REALTIME), in ns since the epoch.
    public var time: UInt64
    public var type: SocketType?
    /// The socket acted on: the client of a connect, the server end of an
    /// accept, the socket closed, a pair's first, a datagram's sender.
    public var inode: UInt64
    /// Who acted (connected, accepted, closed, made the pair, sent).
    public var process: WatchProcess?
    /// The other end: the client of an accept, the receiver of a datagram;
    /// nil when there is none yet (a connect's server end exists only once
    /// accepted) or it is not known.
    public var peer: UInt64?
    /// The process at the other end: for a connect, the one that called
    /// listen(); for an accept, the one that called connect().
    public var peerProcess: WatchProcess?
    /// connect, accept: the listening socket.
    public var listener: UInt64?
    /// close: the socket closed was listening.
    public var listening: Bool
    public var source: WatchSource

    public init(kind: Kind, time: UInt64, type: SocketType?, inode: UInt64, process: WatchProcess?,
                peer: UInt64? = nil, peerProcess: WatchProcess? = nil, listener: UInt64? = nil,
                listening: Bool = false, source: WatchSource) {
        self.kind = kind; self.time = time; self.type = type; self.inode = inode; self.process = process
        self.peer = peer; self.peerProcess = peerProcess; self.listener = listener
        self.listening = listening; self.source = source
    }

    /// A new connection, as the summary counts them: a client's connect
    /// (stream, seqpacket or datagram), a socketpair, a first datagram sent
    /// without connect(). Accepts and closes are the same connections again.
    public var isConnection: Bool { kind == .connect || kind == .pair || kind == .send }
}

/// The kernel's event as the BPF program wrote it (kpwatch_event.h).
struct RawEvent {
    var kind: UInt8
    var sockType: UInt8
    var flags: UInt16
    var monotonic: UInt64
    var inode: UInt64
    var peer: UInt64
    var listener: UInt64
    var pid: UInt32
    var tid: UInt32
    var peerPid: UInt32
    var comm: [UInt8]

    init(_ e: kp_watch_event) {
        kind = e.kind; sockType = e.sock_type; flags = e.flags
        monotonic = e.time_ns; inode = e.inode; peer = e.peer_inode; listener = e.listener_inode
        pid = e.pid; tid = e.tid; peerPid = e.peer_pid
        comm = withUnsafeBytes(of: e.comm) { Array($0.prefix(while: { $0 != 0 })) }
    }

    init(kind: UInt8, sockType: UInt8 = 1, flags: UInt16 = 0, monotonic: UInt64 = 0, inode: UInt64, peer: UInt64 = 0,
         listener: UInt64 = 0, pid: UInt32, tid: UInt32 = 0, peerPid: UInt32 = 0, comm: [UInt8]) {
        self.kind = kind; self.sockType = sockType; self.flags = flags; self.monotonic = monotonic
        self.inode = inode; self.peer = peer; self.listener = listener
        self.pid = pid; self.tid = tid; self.peerPid = peerPid; self.comm = comm
    }
}
