import CKPeer
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
    private let handle: OpaquePointer
    private var members: [String: Member] = [:]
    private var sizes: [String: Int] = [:]

    /// BTF: /sys/kernel/btf/vmlinux by default, or any raw BTF or ELF with .BTF.
    public convenience init(btf path: String = BTF.defaultPath) throws(KPeerError) {
        try self.init(path: path, dwarf: false)
    }

    /// DWARF of a vmlinux with debug info. The caller checks its build-id.
    public convenience init(dwarf path: String) throws(KPeerError) {
        try self.init(path: path, dwarf: true)
    }

    private init(path: String, dwarf: Bool) throws(KPeerError) {
        var h: OpaquePointer?
        var err = kp_error()
        if kp_types_open(path, dwarf ? 1 : 0, &h, &err) != 0 || h == nil {
            throw KPeerError(err, fix: dwarf ? "give --dwarf the vmlinux with debug info of the running kernel"
                                             : "give --btf a BTF file such as /sys/kernel/btf/vmlinux")
        }
        handle = h!
        source = dwarf ? .dwarf : .btf
        origin = path
    }

    deinit { kp_types_close(handle) }

    /// `type`'s member at a dotted `path` ("sk.__sk_common.skc_net").
    /// Missing on this kernel: `.unavailable`, naming the struct and member.
    public func member(_ type: String, _ path: String) throws(KPeerError) -> Member {
        let key = type + "." + path
        if let m = members[key] { return m }
        var raw = kp_member()
        var err = kp_error()
        if kp_types_member(handle, type, path, &raw, &err) != 0 {
            var e = KPeerError(err)
            e.kind = .unavailable
            throw e
        }
        let target = withUnsafeBytes(of: raw.target) { b in
            String(decoding: b.prefix(while: { $0 != 0 }), as: UTF8.self)
        }
        let m = Member(offset: Int(raw.offset), size: Int(raw.size), kind: Member.Kind(raw.kind),
                       target: target.isEmpty ? nil : target, targetKind: Member.Kind(raw.target_kind),
                       count: Int(raw.count), elementSize: Int(raw.elem_size), elementKind: Member.Kind(raw.elem_kind))
        members[key] = m
        return m
    }

    /// sizeof(struct type).
    public func size(of type: String) throws(KPeerError) -> Int {
        if let s = sizes[type] { return s }
        var size: UInt64 = 0
        var err = kp_error()
        if kp_types_struct_size(handle, type, &size, &err) != 0 {
            var e = KPeerError(err)
            e.kind = .unavailable
            throw e
        }
        sizes[type] = Int(size)
        return Int(size)
    }
}
