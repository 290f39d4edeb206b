import Glibc
import KPeerSystem

/// The offset kpeer last found in this kernel's BTF or DWARF, remembered
/// under the kernel's build-id: the layout of unix_sock is fixed by the
/// build, and reading BTF again on every run costs more than the rest of the
/// kcore method (sysfs hands it out 4 KiB per read). /run is tmpfs, so what
/// is remembered goes at reboot; a remembered offset still passes the
/// self-check on every run, and one that fails it is forgotten.
///
/// One line: `BUILD-ID unix_sock.peer OFFSET SIZE|- SOURCE ORIGIN`.
public struct OffsetCache: Sendable {
    public static let defaultPath = "/run/kpeer/offsets"
    public var path: String

    public init(path: String = OffsetCache.defaultPath) {
        self.path = path
    }

    /// The remembered offset for the kernel with `buildID`, or nil. Only a
    /// root-owned file that no one else may write is believed.
    public func lookup(buildID: [UInt8]) -> MemberOffset? {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG, st.st_uid == 0, st.st_mode & 0o022 == 0,
              st.st_size < 4096, let bytes = try? Files.readAll(fd: fd, path: path) else { return nil }
        return Self.parse(bytes, buildID: buildID)
    }

    static func parse(_ bytes: [UInt8], buildID: [UInt8]) -> MemberOffset? {
        guard bytes.last == 0x0A else { return nil }
        let line = String(decoding: bytes.dropLast(), as: UTF8.self)
        let f = line.split(separator: " ", maxSplits: 5, omittingEmptySubsequences: false).map(String.init)
        guard f.count == 6, f[0] == BuildID.hex(buildID), f[1] == "\(UnixSockPeer.type).\(UnixSockPeer.member)",
              let value = Int(f[2]), UnixSockPeer.plausibleRange.contains(value), value % 8 == 0,
              let source = OffsetSource(rawValue: f[4]), source == .btf || source == .dwarf, !f[5].isEmpty
        else { return nil }
        let size = Int(f[3])
        guard f[3] == "-" || (size.map { $0 > value } ?? false) else { return nil }
        return MemberOffset(value: value, structSize: size, source: source, origin: f[5], remembered: true)
    }

    static func line(_ o: MemberOffset, buildID: [UInt8]) -> String {
        "\(BuildID.hex(buildID)) \(UnixSockPeer.type).\(UnixSockPeer.member) \(o.value) \(o.structSize.map(String.init) ?? "-") \(o.source.rawValue) \(o.origin)\n"
    }

    /// Remembers an offset read from symbols (never a calibrated or
    /// user-given one). Best effort: a read-only /run just means no cache.
    public func store(_ o: MemberOffset, buildID: [UInt8]) {
        guard o.source == .btf || o.source == .dwarf, !o.remembered, !buildID.isEmpty,
              !o.origin.contains("\n") else { return }
        Files.replace(path, with: Array(Self.line(o, buildID: buildID).utf8), directoryMode: 0o755)
    }

    public func forget() {
        unlink(path)
    }
}
