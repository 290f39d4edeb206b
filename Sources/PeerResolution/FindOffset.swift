import KernelMemory
import KPeerSystem
import SocketInventory
import TypeOffsets

/// The original find_gdb_offset, grown up: the peer offset from every source
/// available, and whether they agree.
public struct OffsetReport: Sendable {
    public struct Line: Sendable {
        public var source: OffsetSource
        public var value: Int?
        /// The file or method behind the value, or why there is none.
        public var detail: String
        /// Why there is none, when a source failed.
        public var error: KPeerError?
    }

    public var lines: [Line] = []

    /// The common value, when at least one source gave one and all agree.
    public var agreed: Int? {
        let values = Set(lines.compactMap(\.value))
        return values.count == 1 ? values.first : nil
    }

    public static func gather(_ options: ResolverOptions, calibrateOn inode: UInt64? = nil) throws(KPeerError) -> OffsetReport {
        // An unknown inode is status 2 whatever else is available; no kptr
        // raise is needed to see inodes, only addresses.
        if let inode, OwnerScan.scan(procRoot: options.procRoot).owners(of: inode).isEmpty,
           let own = Files.readIfPresent("\(options.procRoot)/self/net/unix"),
           !ProcNetUnix.parse(own, netns: 0).contains(where: { $0.inode == inode }) {
            throw .noSocket(inode: inode)
        }
        var report = OffsetReport()
        func attempt(_ source: OffsetSource, _ body: () throws(KPeerError) -> MemberOffset) {
            do {
                let o = try body()
                report.lines.append(Line(source: source, value: o.value, detail: o.origin))
            } catch {
                report.lines.append(Line(source: source, value: nil, detail: error.problem, error: error))
            }
        }
        if let v = options.offset {
            attempt(.option) { () throws(KPeerError) in try UnixSockPeer.fromOption(v) }
        }
        attempt(.btf) { () throws(KPeerError) in
            let file = try SymbolFile(path: options.btfPath ?? BTF.defaultPath, dwarf: false)
            return try KernelTypes(file).peerOffset()
        }
        let dwarfPath = options.dwarfPath ?? DWARF.defaultPaths().first(where: Files.exists)
        if let dwarfPath {
            attempt(.dwarf) { () throws(KPeerError) in
                try KernelTypes(try SymbolFile(path: dwarfPath, dwarf: true, force: options.force)).peerOffset()
            }
        } else {
            report.lines.append(Line(source: .dwarf, value: nil,
                                     detail: "no vmlinux with debug info (give --dwarf, or install linux-image-\(Host.kernelRelease)-dbg)"))
        }
        attempt(.calibration) { () throws(KPeerError) in try calibrate(options, on: inode) }
        // The inode vanished before calibration read the tables: still 2.
        if inode != nil, let failed = report.lines.last?.error, failed.kind == .notFound { throw failed }
        return report
    }

    static func calibrate(_ options: ResolverOptions, on inode: UInt64?) throws(KPeerError) -> MemberOffset {
        try KcorePreflight.check(path: options.kcorePath)
        let memory = try KernelMemory(path: options.kcorePath)
        // Made even with INODE: it confirms the offset when the user's socket alone is ambiguous.
        let pair = try Calibration.Pair()
        let entries = try Resolver.readTables(namespaces: NetNamespaces.all(procRoot: options.procRoot),
                                              procRoot: options.procRoot)
        try KcoreResolver(memory: memory, offset: MemberOffset(value: 8, source: .calibration, origin: "")).checkAddresses(entries)
        if let inode {
            guard let e = entries.first(where: { $0.inode == inode }) else {
                throw .noSocket(inode: inode)
            }
            return try Calibration.offset(memory: memory, socket: e.address, entries: entries,
                                          confirm: try? Calibration.addresses(of: pair, in: entries),
                                          origin: "connected socket \(inode)")
        }
        return try Calibration.offset(memory: memory, pair: pair, entries: entries)
    }
}
