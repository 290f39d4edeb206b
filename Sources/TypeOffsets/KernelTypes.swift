import CKPeer
import Glibc
import KPeerSystem

/// The kernel's struct layouts, from BTF (libbpf) or a vmlinux's DWARF
/// (libdw): what the kernel-object reader asks before it reads a member.
/// No offset is written into kpeer; every one comes from here (or, for
/// unix_sock.peer alone, from calibration).
public final class KernelTypes: @unchecked Sendable {
    /// A member's place and shape.
    public struct Member: Sendable, Equatable {
        public enum Kind: Sendable, Equatable {
            case integer, pointer, structure, union, array, enumeration, other
            init(_ raw: Int32) {
                switch raw {
                case Int32(KP_KIND_INT): self = .integer
                case Int32(KP_KIND_PTR): self = .pointer
                case Int32(KP_KIND_STRUCT): self = .structure
                case Int32(KP_KIND_UNION): self = .union
                case Int32(KP_KIND_ARRAY): self = .array
                case Int32(KP_KIND_ENUM): self = .enumeration
                default: self = .other
                }
            }
        }

        public var offset: Int
        public var size: Int
        public var kind: Kind
        /// A structure's or union's own name; a pointer's pointee struct; an
        /// array's element struct. nil when anonymous or not a struct.
        public var target: String?
        public var targetKind: Kind
        public var count: Int
        public var elementSize: Int
        public var elementKind: Kind

        public init(offset: Int, size: Int, kind: Kind, target: String? = nil, targetKind: Kind = .other,
                    count: Int = 0, elementSize: Int = 0, elementKind: Kind = .other) {
            self.offset = offset; self.size = size; self.kind = kind; self.target = target
            self.targetKind = targetKind; self.count = count; self.elementSize = elementSize
            self.elementKind = elementKind
        }
    }

    public let source: OffsetSource
    public let origin: String
    /// The open BTF or DWARF; nil until a layout not remembered is asked for.
    private var handle: OpaquePointer?
    private var members: [String: Member] = [:]
    private var byType: [String: [String: Member]] = [:]
    /// Members this kernel does not have (type.path → why), so a feature
    /// that needs one costs no file read on later runs either.
    private var missing: [String: String] = [:]
    private var sizes: [String: Int] = [:]
    /// Layouts read from the file this run (not remembered): LayoutCache
    /// stores them when there are any.
    public private(set) var learned = false
    /// Whether the layouts came from LayoutCache.
    public private(set) var remembered = false

    /// BTF: /sys/kernel/btf/vmlinux by default, or any raw BTF or ELF with .BTF.
    public convenience init(btf path: String = BTF.defaultPath) throws(KPeerError) {
        try self.init(path: path, dwarf: false)
    }

    /// DWARF of a vmlinux with debug info. The caller checks its build-id.
    public convenience init(dwarf path: String) throws(KPeerError) {
        try self.init(path: path, dwarf: true)
    }

    private init(path: String, dwarf: Bool) throws(KPeerError) {
        source = dwarf ? .dwarf : .btf
        origin = path
        handle = try open()
    }

    /// BTF or DWARF of the file open on `file` (SymbolFile): read through a
    /// copy of that descriptor, never by path, so what was checked (its
    /// build-id, that it is a regular file) is what is read.
    public init(_ file: SymbolFile) throws(KPeerError) {
        source = file.isDWARF ? .dwarf : .btf
        origin = file.path
        let copy = fcntl(file.fd, F_DUPFD_CLOEXEC, 0)
        if copy < 0 { throw KPeerError.system("cannot use", path: file.path, errno: errno) }
        var h: OpaquePointer?
        var err = kp_error()
        if kp_types_open_fd(copy, file.path, file.isDWARF ? 1 : 0, &h, &err) != 0 || h == nil {
            throw KPeerError(err, path: file.path, fix: file.isDWARF ? "give --dwarf the vmlinux with debug info of the running kernel"
                                                    : "give --btf a BTF file such as /sys/kernel/btf/vmlinux")
        }
        handle = h
    }

    /// Layouts remembered for this kernel build (LayoutCache); the file
    /// they came from is opened only if a layout not among them is asked for.
    init(remembered members: [String: Member], sizes: [String: Int], missing: [String: String] = [:],
         source: OffsetSource, origin: String) {
        self.source = source
        self.origin = origin
        self.members = members
        self.sizes = sizes
        self.missing = missing
        self.remembered = true
    }

    private func open() throws(KPeerError) -> OpaquePointer {
        if let handle { return handle }
        var h: OpaquePointer?
        var err = kp_error()
        let dwarf = source == .dwarf
        if kp_types_open(origin, dwarf ? 1 : 0, &h, &err) != 0 || h == nil {
            throw KPeerError(err, path: origin, fix: dwarf ? "give --dwarf the vmlinux with debug info of the running kernel"
                                             : "give --btf a BTF file such as /sys/kernel/btf/vmlinux")
        }
        handle = h
        return h!
    }

    deinit { if let handle { kp_types_close(handle) } }

    /// Everything known so far, for LayoutCache.
    var snapshot: (members: [String: Member], sizes: [String: Int], missing: [String: String]) { (members, sizes, missing) }

    /// unix_sock.peer, the kcore method's one offset, read like any other
    /// member; with sizeof(unix_sock) and, where the kernel has it,
    /// unix_sock.addr. A file without them is the wrong file (65).
    public func peerOffset() throws(KPeerError) -> MemberOffset {
        let peer: Member
        do {
            peer = try member(UnixSockPeer.type, UnixSockPeer.member)
        } catch {
            throw KPeerError(.badFile, error.problem, fix: source == .dwarf
                ? "give --dwarf the vmlinux with debug info of the running kernel"
                : "give --btf the BTF of the running kernel, such as /sys/kernel/btf/vmlinux")
        }
        guard peer.kind == .pointer, UnixSockPeer.plausibleRange.contains(peer.offset) else {
            throw KPeerError(.badFile, "unix_sock.peer in \(origin) is not a pointer within the struct")
        }
        let addr = try? member(UnixSockPeer.type, UnixSockPeer.addrMember)
        return MemberOffset(value: peer.offset, structSize: try? size(of: UnixSockPeer.type), source: source,
                            origin: origin, remembered: remembered,
                            addrOffset: addr.flatMap { $0.kind == .pointer ? $0.offset : nil })
    }

    /// `type`'s member at a dotted `path` ("sk.__sk_common.skc_net").
    /// Missing on this kernel: `.unavailable`, naming the struct and member.
    public func member(_ type: String, _ path: String) throws(KPeerError) -> Member {
        // Asked for every member of every socket read: no string is built
        // for a layout already known.
        if let m = byType[type]?[path] { return m }
        let key = type + "." + path
        if let m = members[key] {
            byType[type, default: [:]][path] = m
            return m
        }
        // Known to be missing (this run, or remembered): no file opened again.
        if let why = missing[key] { throw KPeerError(.unavailable, why) }
        let handle = try openForMiss()
        var raw = kp_member()
        var err = kp_error()
        if kp_types_member(handle, type, path, &raw, &err) != 0 {
            var e = KPeerError(err)
            e.kind = .unavailable
            if err.code == Int32(KP_ENOMEMBER) || err.code == Int32(KP_ENOTYPE) || err.code == Int32(KP_EFORMAT) {
                missing[key] = e.problem
                learned = true
            }
            throw e
        }
        let target = withUnsafeBytes(of: raw.target) { b in
            String(decoding: b.prefix(while: { $0 != 0 }), as: UTF8.self)
        }
        let m = Member(offset: Int(raw.offset), size: Int(raw.size), kind: Member.Kind(raw.kind),
                       target: target.isEmpty ? nil : target, targetKind: Member.Kind(raw.target_kind),
                       count: Int(raw.count), elementSize: Int(raw.elem_size), elementKind: Member.Kind(raw.elem_kind))
        members[key] = m
        byType[type, default: [:]][path] = m
        learned = true
        return m
    }

    /// sizeof(struct type).
    public func size(of type: String) throws(KPeerError) -> Int {
        if let s = sizes[type] { return s }
        let handle = try openForMiss()
        var size: UInt64 = 0
        var err = kp_error()
        if kp_types_struct_size(handle, type, &size, &err) != 0 {
            var e = KPeerError(err)
            e.kind = .unavailable
            throw e
        }
        sizes[type] = Int(size)
        learned = true
        return Int(size)
    }

    /// A miss: the file is opened now. One that cannot be opened any more
    /// says the layout is unknown (`.unavailable`), as a missing member does.
    private func openForMiss() throws(KPeerError) -> OpaquePointer {
        do {
            return try Trace.phase("types opened") { () throws(KPeerError) in try open() }
        } catch {
            var e = error
            e.kind = .unavailable
            throw e
        }
    }
}

/// Struct layouts read by the kernel-object reader, remembered per kernel
/// build next to the peer offset (OffsetCache): one parse of BTF is most of
/// what a run with SocketFacts costs, and the layouts of a build never
/// change. /run is tmpfs, so they go at reboot. Only a root-owned file no
/// one else may write is believed; what it says is checked against memory
/// like everything else (the reader's pointers, the row checks), and a run
/// that finds it wrong forgets it.
///
/// Text, one record a line:
///   `kpeer-layout 1 BUILD-ID SOURCE ORIGIN`
///   `m TYPE PATH OFFSET SIZE KIND TARGET|- TARGET-KIND COUNT ELEM-SIZE ELEM-KIND`
///   `s TYPE SIZE`
///   `x TYPE PATH`   (no such member on this kernel)
public struct LayoutCache: Sendable {
    public static let defaultPath = "/run/kpeer/layouts"
    public var path: String

    public init(path: String = LayoutCache.defaultPath) {
        self.path = path
    }

    static let kinds: [KernelTypes.Member.Kind] = [.integer, .pointer, .structure, .union, .array, .enumeration, .other]
    static func code(_ k: KernelTypes.Member.Kind) -> Int { kinds.firstIndex(of: k)! }

    /// Identifiers and dotted member paths only: nothing else is ever written.
    static func isName(_ s: Substring) -> Bool {
        !s.isEmpty && s.count < 128 && s.utf8.allSatisfy { $0 == 0x5F || $0 == 0x2E || (0x30...0x39).contains($0)
            || (0x41...0x5A).contains($0) || (0x61...0x7A).contains($0) }
    }

    public func lookup(buildID: [UInt8]) -> KernelTypes? {
        guard let bytes = Files.readTrusted(path, maxSize: 1 << 20) else { return nil }
        return Self.parse(bytes, buildID: buildID)
    }

    /// On bytes, each field a slice: this runs on every kcore run, and
    /// String's splitting and parsing made it a few milliseconds under
    /// emulation.
    static func parse(_ bytes: [UInt8], buildID: [UInt8]) -> KernelTypes? {
        guard bytes.last == 0x0A else { return nil }
        let lines = bytes.dropLast().split(separator: 0x0A, omittingEmptySubsequences: false)
        guard let first = lines.first else { return nil }
        let head = first.split(separator: 0x20, maxSplits: 4, omittingEmptySubsequences: false)
        guard head.count == 5, head[0].elementsEqual("kpeer-layout".utf8), head[1].elementsEqual("1".utf8),
              head[2].elementsEqual(BuildID.hex(buildID).utf8),
              let source = OffsetSource(rawValue: String(decoding: head[3], as: UTF8.self)),
              source == .btf || source == .dwarf, !head[4].isEmpty else { return nil }
        var members: [String: KernelTypes.Member] = [:]
        var sizes: [String: Int] = [:]
        var missing: [String: String] = [:]
        for line in lines.dropFirst() {
            let f = line.split(separator: 0x20, omittingEmptySubsequences: false)
            func int(_ i: Int) -> Int? {
                guard !f[i].isEmpty, f[i].count <= 8 else { return nil }  // below 1 << 24 fits in 8 digits
                var v = 0
                for b in f[i] {
                    guard b >= 0x30, b <= 0x39 else { return nil }
                    v = v * 10 + Int(b - 0x30)
                }
                return v < 1 << 24 ? v : nil
            }
            func kind(_ i: Int) -> KernelTypes.Member.Kind? { int(i).flatMap { $0 < kinds.count ? kinds[$0] : nil } }
            func name(_ i: Int) -> Bool { isName(f[i]) }
            func text(_ i: Int) -> String { String(decoding: f[i], as: UTF8.self) }
            func tag(_ c: Character) -> Bool { f[0].count == 1 && f[0].first == c.asciiValue }
            if f.count == 3, tag("s"), name(1), let size = int(2) {
                sizes[text(1)] = size
            } else if f.count == 3, tag("x"), name(1), name(2) {
                missing[text(1) + "." + text(2)] = "this kernel's struct \(text(1)) has no member \(text(2)) (remembered in \(LayoutCache.defaultPath))"
            } else if f.count == 11, tag("m"), name(1), name(2), let off = int(3), let size = int(4),
                      let k = kind(5), f[6].elementsEqual([0x2D]) || name(6), let tk = kind(7), let count = int(8),
                      let es = int(9), let ek = kind(10) {
                members[text(1) + "." + text(2)] = KernelTypes.Member(offset: off, size: size, kind: k,
                                                                      target: f[6].elementsEqual([0x2D]) ? nil : text(6), targetKind: tk,
                                                                      count: count, elementSize: es, elementKind: ek)
            } else {
                return nil  // anything unexpected: the whole file is not believed
            }
        }
        return KernelTypes(remembered: members, sizes: sizes, missing: missing, source: source,
                           origin: String(decoding: head[4], as: UTF8.self))
    }

    /// Identifiers and dotted member paths, as bytes.
    static func isName(_ s: ArraySlice<UInt8>) -> Bool {
        !s.isEmpty && s.count < 128 && s.allSatisfy { $0 == 0x5F || $0 == 0x2E || (0x30...0x39).contains($0)
            || (0x41...0x5A).contains($0) || (0x61...0x7A).contains($0) }
    }

    static func text(_ t: KernelTypes, buildID: [UInt8]) -> String? {
        guard !t.origin.contains("\n"), !t.origin.isEmpty else { return nil }
        let (members, sizes, missing) = t.snapshot
        var out = "kpeer-layout 1 \(BuildID.hex(buildID)) \(t.source.rawValue) \(t.origin)\n"
        for (name, size) in sizes.sorted(by: { $0.key < $1.key }) { out += "s \(name) \(size)\n" }
        for key in missing.keys.sorted() {
            guard let dot = key.firstIndex(of: ".") else { continue }
            out += "x \(key[..<dot]) \(key[key.index(after: dot)...])\n"
        }
        for (key, m) in members.sorted(by: { $0.key < $1.key }) {
            guard let dot = key.firstIndex(of: ".") else { continue }
            out += "m \(key[..<dot]) \(key[key.index(after: dot)...]) \(m.offset) \(m.size) \(code(m.kind)) "
                + "\(m.target ?? "-") \(code(m.targetKind)) \(m.count) \(m.elementSize) \(code(m.elementKind))\n"
        }
        return out
    }

    /// Remembers what `t` knows, when this run learned something (best
    /// effort, like OffsetCache).
    public func store(_ t: KernelTypes, buildID: [UInt8]) {
        guard t.learned, !buildID.isEmpty, let text = Self.text(t, buildID: buildID) else { return }
        Files.replace(path, with: Array(text.utf8), directoryMode: 0o755)
    }

    public func forget() { Files.removeTrusted(path) }
}
