import Glibc
import KPeerSystem

/// The offset kpeer last found in this kernel's BTF or DWARF, remembered
/// under the kernel's build-id: the layout of unix_sock is fixed by the
/// build, and reading BTF again on every run costs more than the rest of the
/// kcore method (sysfs hands it out 4 KiB per read). /run is tmpfs, so what
/// is remembered goes at reboot; a remembered offset still passes the
/// self-check on every run, and one that fails it is forgotten.
///
/// One line: `BUILD-ID unix_sock.peer OFFSET SIZE|- ADDR|- SOURCE ORIGIN`
/// (ADDR: offsetof(unix_sock, addr)).
public struct OffsetCache: Sendable {
    public static let defaultPath = "/run/kpeer/offsets"
    public var path: String

    public init(path: String = OffsetCache.defaultPath) {
        self.path = path
    }

    /// The remembered offset for the kernel with `buildID`, or nil. Only a
    /// root-owned file that no one else may write, in a directory of the
    /// same kind (Files.trustedDirectory: not a symlink), is believed; any
    /// other is not read at all, silently (it is only a cache).
    public func lookup(buildID: [UInt8]) -> MemberOffset? {
        Files.readTrusted(path, maxSize: 4096).flatMap { Self.parse($0, buildID: buildID) }
    }

    static func parse(_ bytes: [UInt8], buildID: [UInt8]) -> MemberOffset? {
        guard bytes.last == 0x0A else { return nil }
        let line = String(decoding: bytes.dropLast(), as: UTF8.self)
        let f = line.split(separator: " ", maxSplits: 6, omittingEmptySubsequences: false).map(String.init)
        guard f.count == 7, f[0] == BuildID.hex(buildID), f[1] == "\(UnixSockPeer.type).\(UnixSockPeer.member)",
              let value = Int(f[2]), UnixSockPeer.plausibleRange.contains(value), value % 8 == 0,
              let source = OffsetSource(rawValue: f[5]), source == .btf || source == .dwarf, !f[6].isEmpty
        else { return nil }
        let size = Int(f[3]), addr = Int(f[4])
        guard f[3] == "-" || (size.map { $0 > value } ?? false),
              f[4] == "-" || (addr.map { $0 >= 0 && $0 % 8 == 0 && $0 != value && $0 < (size ?? Int.max) } ?? false)
        else { return nil }
        return MemberOffset(value: value, structSize: size, source: source, origin: f[6], remembered: true,
                            addrOffset: addr)
    }

    static func line(_ o: MemberOffset, buildID: [UInt8]) -> String {
        let size = o.structSize.map(String.init) ?? "-", addr = o.addrOffset.map(String.init) ?? "-"
        return "\(BuildID.hex(buildID)) \(UnixSockPeer.type).\(UnixSockPeer.member) \(o.value) \(size) \(addr) \(o.source.rawValue) \(o.origin)\n"
    }

    /// Remembers an offset read from symbols (never a calibrated or
    /// user-given one). Best effort: a read-only /run, or a directory
    /// Files.replace does not trust, just means no cache.
    public func store(_ o: MemberOffset, buildID: [UInt8]) {
        guard o.source == .btf || o.source == .dwarf, !o.remembered, !buildID.isEmpty,
              !o.origin.contains("\n") else { return }
        Files.replace(path, with: Array(Self.line(o, buildID: buildID).utf8), directoryMode: 0o755)
    }

    /// Deletes the remembered offset, only from a trusted directory: through
    /// a planted symlink, `offsets` could be another directory's file.
    public func forget() { Files.removeTrusted(path) }
}
