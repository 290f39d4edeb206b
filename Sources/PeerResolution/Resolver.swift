import Glibc
import KernelMemory
import KPeerSystem
import SocketInventory
import TypeOffsets

/// What the user asked for, method- and symbol-wise.
public struct ResolverOptions: Sendable {
    public enum MethodChoice: String, Sendable, CaseIterable {
        case auto, kcore, netlink
    }

    public var method: MethodChoice = .auto
    public var kcorePath: String = "/proc/kcore"
    public var offset: Int?
    public var btfPath: String?
    public var dwarfPath: String?
    public var force = false
    /// The /proc this machine has (tests point it elsewhere).
    public var procRoot = "/proc"

    public init() {}

    /// The user pointed kpeer at kernel memory or symbols: `auto` then means
    /// kcore, with no quiet fallback that would hide their mistake.
    var wantsKcore: Bool {
        offset != nil || btfPath != nil || dwarfPath != nil || kcorePath != "/proc/kcore"
    }
}

/// Chooses the method, gathers the inventory, resolves peers.
public enum Resolver {
    public static func resolveAll(_ options: ResolverOptions) throws(KPeerError) -> PeerMap {
        switch options.method {
        case .netlink:
            return try NetlinkResolver.resolveAll(owners: OwnerScan.scan(procRoot: options.procRoot))
        case .kcore:
            return try resolveKcore(options)
        case .auto:
            if options.wantsKcore { return try resolveKcore(options) }
            do {
                return try resolveKcore(options)
            } catch {
                var map = try NetlinkResolver.resolveAll(owners: OwnerScan.scan(procRoot: options.procRoot))
                map.fallbackReason = error.description
                return map
            }
        }
    }

    /// The kcore method, start to end.
    static func resolveKcore(_ options: ResolverOptions) throws(KPeerError) -> PeerMap {
        // What the user gave is checked first: a wrong --dwarf is worth
        // hearing about even on a machine where kcore is unusable.
        let explicit = try explicitOffset(options)
        try KcorePreflight.check(path: options.kcorePath)
        let memory = try KernelMemory(path: options.kcorePath)
        var reasons: [String] = []
        let symbolic = try explicit ?? defaultOffset(reasons: &reasons)
        // Without symbols, calibrate on a pair of our own, which must be
        // open while the table is read.
        let pair = symbolic == nil ? try Calibration.Pair() : nil
        let owners = OwnerScan.scan(procRoot: options.procRoot)
        let entries = try readTables(owners: owners, procRoot: options.procRoot)
        let offset: MemberOffset
        if let symbolic {
            offset = symbolic
        } else {
            try KcoreResolver(memory: memory, offset: MemberOffset(value: 8, source: .calibration, origin: ""))
                .checkAddresses(entries)
            offset = try Calibration.offset(memory: memory, pair: pair!, entries: entries)
        }
        let (links, _) = try KcoreResolver(memory: memory, offset: offset).links(entries)
        let own: Set<UInt64> = pair.map { [$0.inodes.0, $0.inodes.1] } ?? []
        return PeerMap(entries: entries, owners: owners, links: links, method: .kcore, offset: offset, excluding: own)
    }

    /// The offset from --offset, --dwarf or --btf, in that order, if given.
    static func explicitOffset(_ o: ResolverOptions) throws(KPeerError) -> MemberOffset? {
        if let v = o.offset { return try UnixSockPeer.fromOption(v) }
        if let path = o.dwarfPath { return try DWARF.checkedMemberOffset(path: path, force: o.force) }
        if let path = o.btfPath { return try BTF.memberOffset(path: path) }
        return nil
    }

    /// The offset from this kernel's BTF or a vmlinux in the usual places;
    /// nil means: calibrate.
    static func defaultOffset(reasons: inout [String]) -> MemberOffset? {
        do {
            return try BTF.memberOffset()
        } catch {
            reasons.append("btf: \(error.problem)")
        }
        for path in DWARF.defaultPaths() where Files.exists(path) {
            do {
                return try DWARF.checkedMemberOffset(path: path, force: false)
            } catch {
                reasons.append("dwarf: \(error.problem)")
            }
        }
        return nil
    }

    /// /proc/net/unix of every network namespace that holds sockets (and our
    /// own), read with real addresses visible.
    static func readTables(owners: OwnerTable, procRoot: String) throws(KPeerError) -> [UnixSocketEntry] {
        let ownNS = Files.identity("\(procRoot)/self/ns/net")?.inode ?? 0
        var sources: [(ns: UInt64, path: String)] = [(ownNS, "\(procRoot)/self/net/unix")]
        for (ns, pid) in owners.namespaceRepresentatives.sorted(by: { $0.key < $1.key }) where ns != ownNS {
            sources.append((ns, "\(procRoot)/\(pid)/net/unix"))
        }
        let (texts, _) = try KptrRestrict.withAddressesVisible { () throws(KPeerError) -> [(UInt64, [UInt8])] in
            var out: [(UInt64, [UInt8])] = []
            for (i, s) in sources.enumerated() {
                if i == 0 {
                    out.append((s.ns, try Files.read(s.path)))
                } else if let bytes = Files.readIfPresent(s.path) {  // that process may be gone
                    out.append((s.ns, bytes))
                }
            }
            return out
        }
        var entries: [UnixSocketEntry] = []
        for (ns, text) in texts { entries += ProcNetUnix.parse(text, netns: ns) }
        return entries
    }
}

/// Says, before trying, why /proc/kcore cannot work here.
public enum KcorePreflight {
    public static func check(path: String) throws(KPeerError) {
        guard path == "/proc/kcore" else { return }
        if !Files.exists(path) {
            throw KPeerError(.unavailable, "this kernel has no /proc/kcore (CONFIG_PROC_KCORE is off)",
                             fix: "use --method netlink, or a kernel built with CONFIG_PROC_KCORE=y")
        }
        if let mode = Host.lockdown(), mode == "confidentiality" {
            throw KPeerError(.unavailable, "kernel lockdown (\(mode)) forbids reading /proc/kcore",
                             fix: "use --method netlink, or boot with lockdown=none")
        }
        if !Host.isRoot {
            throw KPeerError(.permission, "reading /proc/kcore needs root (CAP_SYS_RAWIO)",
                             fix: "run kpeer as root, or use --method netlink")
        }
    }
}
