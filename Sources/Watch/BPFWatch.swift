import CKPeer
import Glibc
import KPeerSystem

/// The BPF program loaded and attached (watch.c): its hooks, and the events
/// they send. Closing it detaches everything; so does kpeer's exit, however
/// it comes (links and programs are file descriptors).
public final class BPFWatch {
    /// How the kernel functions may be hooked.
    public struct Attach: OptionSet, Sendable {
        public let rawValue: Int32
        public init(rawValue: Int32) { self.rawValue = rawValue }
        public static let fentry = Attach(rawValue: Int32(KPW_ATTACH_FENTRY))
        public static let kprobe = Attach(rawValue: Int32(KPW_ATTACH_KPROBE))
        public static let any: Attach = [.fentry, .kprobe]
    }

    /// One hook: what it lets kpeer see, how it is attached, why not.
    public struct Hook: Sendable, Equatable {
        public enum State: String, Sendable { case fentry, kprobe, none }
        public var name: String
        public var state: State
        public var failure: String
    }

    /// The three without which a stream connection's life cannot be
    /// followed: connect, accept, close.
    public static let essential = ["stream connects", "accepts", "closes"]

    private var handle: OpaquePointer?
    public let hooks: [Hook]

    /// Loads the embedded program and attaches every hook it can. Throws
    /// `.unavailable` when nothing could be loaded at all.
    public init(attach: Attach = .any, ringBytes: UInt32 = 0) throws(KPeerError) {
        let object = BPFObject.bytes
        guard !object.isEmpty else {
            throw KPeerError(.unavailable, "this kpeer was built without its BPF program")
        }
        var err = kp_error()
        var h: OpaquePointer?
        let rc = object.withUnsafeBytes { kp_watch_open($0.baseAddress, $0.count, attach.rawValue, ringBytes, &h, &err) }
        guard rc == 0, let h else {
            throw KPeerError(.unavailable, Self.message(err))
        }
        handle = h
        hooks = (0..<kp_watch_hook_count()).map { i in
            let state: Hook.State = switch kp_watch_hook_state(h, i) {
            case Int32(KPW_HOOK_FENTRY): .fentry
            case Int32(KPW_HOOK_KPROBE): .kprobe
            default: .none
            }
            return Hook(name: String(cString: kp_watch_hook_name(i)), state: state,
                        failure: String(cString: kp_watch_hook_error(h, i)))
        }
    }

    deinit { close() }

    /// Detaches every hook and frees the program.
    public func close() {
        if let h = handle { kp_watch_close(h) }
        handle = nil
    }

    /// Whether connect, accept and close are all attached.
    public var followsStreams: Bool {
        Self.essential.allSatisfy { name in hooks.contains { $0.name == name && $0.state != .none } }
    }

    /// "fentry", "kprobe" or "fentry+kprobe": how the attached hooks are.
    public var attachment: String {
        let kinds = Set(hooks.map(\.state)).subtracting([.none])
        return [Hook.State.fentry, .kprobe].filter { kinds.contains($0) }.map(\.rawValue).joined(separator: "+")
    }

    /// Events the kernel holds, waiting up to `timeoutMs` (-1: no limit)
    /// for the first, or for `stopFd` to become readable.
    func consume(timeoutMs: Int32, stopFd: Int32, _ body: (RawEvent) -> Void) throws(KPeerError) {
        guard let h = handle else { return }
        var events: UnsafePointer<kp_watch_event>?
        var count = 0
        let rc = kp_watch_consume(h, timeoutMs, stopFd, &events, &count)
        if rc < 0 {
            throw KPeerError(.io, "cannot read the BPF ring buffer: \(String(cString: strerror(-rc)))")
        }
        guard let events else { return }
        for i in 0..<count { body(RawEvent(events[i])) }
    }

    /// Events the ring buffer had no room for.
    public var lost: UInt64 { handle.map { kp_watch_lost($0) } ?? 0 }

    static func message(_ err: kp_error) -> String {
        withUnsafeBytes(of: err.message) { String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self) }
    }
}
