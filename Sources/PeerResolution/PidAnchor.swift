import KernelObjects
import KPeerSystem

/// Where kpeer is among pid namespaces, as kernel memory says, and a
/// connector's pid (sk_peer_pid, a struct pid) translated to it.
///
/// A struct pid holds one `upid {nr, ns}` per level, from the initial
/// namespace (0) down to the process's own (`level`). kpeer's number for a
/// process is the entry at kpeer's level, and only if that entry's
/// namespace is kpeer's: a process in a sibling namespace has an entry at
/// that level too, with another namespace and a number that means nothing
/// here. kpeer's own level and namespace are read from its own struct pid,
/// the sk_peer_pid of a socketpair it made (socketpair(2) records the
/// caller there). /proc/self/status cannot give them when kpeer's /proc
/// is its namespace's own (`unshare -p --mount-proc`, a container): NSpid
/// then lists one number, and the level would be taken for 0.
public struct PidAnchor: Equatable, Sendable {
    /// kpeer's pid-namespace level.
    public var level: Int
    /// Its struct pid_namespace (address).
    public var namespace: UInt64

    public init(level: Int, namespace: UInt64) {
        self.level = level
        self.namespace = namespace
    }

    /// Levels are bounded by the kernel (MAX_PID_NS_LEVEL, 32).
    static let maxLevel = 32

    /// The anchor from kpeer's own struct pid at `pidAt`.
    public static func read(pidAt: UInt64, reader: ObjectReader) throws(KPeerError) -> PidAnchor {
        let p = try reader.object(at: pidAt, type: "pid")
        let level = Int(try p.unsigned("level"))
        guard level <= maxLevel else {
            throw KPeerError(.refused, "kpeer's struct pid says level \(level), more than any kernel allows")
        }
        let ns = try p.element("numbers", level, limit: level + 1).unsigned("ns")
        guard ns != 0 else { throw KPeerError(.refused, "kpeer's struct pid names no namespace at its own level") }
        return PidAnchor(level: level, namespace: ns)
    }

    /// The pid kpeer sees for the struct pid at `pidAt`, or nil when that
    /// process is outside kpeer's pid namespace (above it, or beside it).
    public func translate(pidAt: UInt64, reader: ObjectReader) throws(KPeerError) -> Int32? {
        let p = try reader.object(at: pidAt, type: "pid")
        let level = Int(try p.unsigned("level"))
        guard level >= self.level, level <= Self.maxLevel else { return nil }
        let entry = try p.element("numbers", self.level, limit: level + 1)
        guard try entry.unsigned("ns") == namespace else { return nil }
        return Int32(truncatingIfNeeded: try entry.signed("nr"))
    }
}
