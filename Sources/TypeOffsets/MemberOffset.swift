import KPeerSystem

/// Where an offset came from, in the order `auto` tries them.
public enum OffsetSource: String, Sendable, CaseIterable {
    case option = "--offset"
    case btf
    case dwarf
    case calibration
}

/// The byte offset of a member in a kernel struct, and how it was found.
public struct MemberOffset: Sendable, Equatable {
    public var value: Int
    /// sizeof(struct), when the source knows it.
    public var structSize: Int?
    public var source: OffsetSource
    /// The file or method behind it, for messages and --find-offset.
    public var origin: String
    /// Read from OffsetCache, not from `origin` itself on this run.
    public var remembered: Bool
    /// offsetof(struct unix_sock, addr), when the same source gave it (BTF
    /// does): an embryo shares its listener's `addr`, which lets kpeer tell
    /// in memory which listener it waits on.
    public var addrOffset: Int?

    public init(value: Int, structSize: Int? = nil, source: OffsetSource, origin: String, remembered: Bool = false,
                addrOffset: Int? = nil) {
        self.value = value
        self.structSize = structSize
        self.source = source
        self.origin = origin
        self.remembered = remembered
        self.addrOffset = addrOffset
    }

    /// `origin`, saying so when it was remembered from an earlier run.
    public var provenance: String {
        remembered ? "\(origin), remembered in \(OffsetCache.defaultPath)" : origin
    }
}

/// The member kpeer needs: `struct unix_sock { ... struct sock *peer; ... }`.
public enum UnixSockPeer {
    public static let type = "unix_sock"
    public static let member = "peer"
    /// `struct unix_address *addr`, shared by a listener and its embryos.
    public static let addrMember = "addr"
    /// The CU that defines unix_sock in full; searched first in a vmlinux.
    public static let compileUnit = "net/unix/af_unix.c"
    /// unix_sock is about 1 KiB; an offset beyond this is not a peer pointer.
    public static let plausibleRange = 8...4096

    /// Validates a user-given `--offset`.
    public static func fromOption(_ value: Int) throws(KPeerError) -> MemberOffset {
        guard plausibleRange.contains(value), value % 8 == 0 else {
            throw KPeerError(.usage, "--offset \(value) is not a plausible offset of unix_sock.peer (a multiple of 8 in \(plausibleRange.lowerBound)...\(plausibleRange.upperBound))",
                             fix: "run kpeer --find-offset to find it")
        }
        return MemberOffset(value: value, source: .option, origin: "--offset")
    }
}
