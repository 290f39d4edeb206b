import KernelMemory
import KPeerSystem
import TypeOffsets

/// Typed reads of kernel memory: a struct at an address, whose members are
/// found by name in BTF or DWARF (KernelTypes) and read through /proc/kcore
/// (KernelMemory). Every pointer is checked to lie in kernel memory, with
/// room for the whole struct it points to, before it is followed; lists are
/// walked with a bound. Memory is live and changes while it is read: a
/// caller believes what it reads only about objects it knows were stable.
public final class ObjectReader {
    public let memory: KernelMemory
    public let types: KernelTypes

    public init(memory: KernelMemory, types: KernelTypes) {
        self.memory = memory
        self.types = types
    }

    /// The `type` at `address`, which must lie in kernel memory whole.
    public func object(at address: UInt64, type: String) throws(KPeerError) -> KernelObject {
        try object(at: address, type: type, size: try types.size(of: type))
    }

    /// The same, the type's size already looked up (a caller reading one
    /// type at thousands of addresses resolves it once).
    public func object(at address: UInt64, type: String, size: Int) throws(KPeerError) -> KernelObject {
        guard address != 0, address & 7 == 0 || size < 8,
              memory.contains(address), memory.contains(address &+ UInt64(max(size, 1) - 1)),
              address &+ UInt64(size) >= address else {
            throw KPeerError(.refused, "a struct \(type) pointer (0x\(String(address, radix: 16))) lies outside kernel memory")
        }
        return KernelObject(address: address, type: type, reader: self)
    }

    /// The `type` at `address`, its first `length` bytes read at once (one
    /// pread instead of one per member): members inside them are read from
    /// that copy, anything beyond from memory as usual.
    public func snapshot(at address: UInt64, type: String, size: Int? = nil, length: Int) throws(KPeerError) -> KernelObject {
        var o: KernelObject
        if let size {
            o = try object(at: address, type: type, size: size)
        } else {
            o = try object(at: address, type: type)
        }
        o.buffer = try memory.read(address, count: length)
        return o
    }
}

/// One kernel struct: where it is and what it is.
public struct KernelObject {
    public let address: UInt64
    public let type: String
    let reader: ObjectReader
    /// The object's first bytes, when read at once (ObjectReader.snapshot).
    var buffer: [UInt8]?

    init(address: UInt64, type: String, reader: ObjectReader) {
        self.address = address
        self.type = type
        self.reader = reader
    }

    /// The member's description (offset, kind, target).
    public func member(_ path: String) throws(KPeerError) -> KernelTypes.Member {
        try reader.types.member(type, path)
    }

    /// An integer member (1, 2, 4 or 8 bytes, little-endian), zero-extended.
    public func unsigned(_ path: String) throws(KPeerError) -> UInt64 {
        let m = try member(path)
        guard m.kind == .integer || m.kind == .enumeration || m.kind == .pointer, [1, 2, 4, 8].contains(m.size) else {
            throw KPeerError(.unavailable, "\(type).\(path) is not an integer on this kernel")
        }
        return try readInteger(at: address &+ UInt64(m.offset), size: m.size)
    }

    /// An integer member already looked up (a caller reading the same
    /// members of many objects resolves them once).
    public func unsigned(_ m: KernelTypes.Member) throws(KPeerError) -> UInt64 {
        guard m.kind == .integer || m.kind == .enumeration || m.kind == .pointer, [1, 2, 4, 8].contains(m.size) else {
            throw KPeerError(.unavailable, "a member of \(type) is not an integer on this kernel")
        }
        return try readInteger(at: address &+ UInt64(m.offset), size: m.size)
    }

    /// The 8 bytes at `offset` into the object (two adjacent members read at once).
    public func unsigned64(at offset: Int) throws(KPeerError) -> UInt64 {
        try readInteger(at: address &+ UInt64(offset), size: 8)
    }

    /// A signed integer member, sign-extended.
    public func signed(_ path: String) throws(KPeerError) -> Int64 {
        let m = try member(path)
        let raw = try unsigned(path)
        let bits = UInt64(m.size * 8)
        if bits == 64 { return Int64(bitPattern: raw) }
        let sign = UInt64(1) << (bits - 1)
        return raw & sign != 0 ? Int64(bitPattern: raw | ~((sign << 1) &- 1)) : Int64(raw)
    }

    /// An array member of bytes (a `char[]` such as `task_struct.comm`),
    /// whole, as memory holds it now.
    public func bytes(_ path: String) throws(KPeerError) -> [UInt8] {
        let m = try member(path)
        guard m.kind == .array, m.elementSize == 1, m.size > 0, m.size <= 4096 else {
            throw KPeerError(.unavailable, "\(type).\(path) is not an array of bytes on this kernel")
        }
        return try reader.memory.read(address &+ UInt64(m.offset), count: m.size)
    }

    /// A pointer member's raw value.
    public func word(_ path: String) throws(KPeerError) -> UInt64 {
        let m = try member(path)
        guard m.kind == .pointer else { throw KPeerError(.unavailable, "\(type).\(path) is not a pointer on this kernel") }
        return try readInteger(at: address &+ UInt64(m.offset), size: 8)
    }

    /// The struct a pointer member points to: nil for NULL; `as` names the
    /// type where the member is `void *` (file.private_data).
    public func pointer(_ path: String, as given: String? = nil) throws(KPeerError) -> KernelObject? {
        let m = try member(path)
        guard m.kind == .pointer, let target = given ?? m.target else {
            throw KPeerError(.unavailable, "\(type).\(path) is not a pointer to a struct on this kernel")
        }
        let p = try readInteger(at: address &+ UInt64(m.offset), size: 8)
        return p == 0 ? nil : try reader.object(at: p, type: target)
    }

    /// An embedded struct or union member, as an object of its own.
    public func embedded(_ path: String) throws(KPeerError) -> KernelObject {
        let m = try member(path)
        guard m.kind == .structure || m.kind == .union, let target = m.target else {
            throw KPeerError(.unavailable, "\(type).\(path) is not a named struct on this kernel")
        }
        var inner = KernelObject(address: address &+ UInt64(m.offset), type: target, reader: reader)
        if let buffer, m.offset < buffer.count { inner.buffer = Array(buffer[m.offset...]) }
        return inner
    }

    /// Element `index` of an array member of structs (bounded by its length,
    /// or by `limit` for a flexible array).
    public func element(_ path: String, _ index: Int, limit: Int? = nil) throws(KPeerError) -> KernelObject {
        let m = try member(path)
        guard m.kind == .array, let target = m.target, m.elementSize > 0, index >= 0,
              index < (m.count > 0 ? m.count : (limit ?? 0)) else {
            throw KPeerError(.unavailable, "\(type).\(path)[\(index)] is out of bounds on this kernel")
        }
        return try reader.object(at: address &+ UInt64(m.offset + index * m.elementSize), type: target)
    }

    /// Element `index` of an array member of pointers (scm_fp_list.fp).
    public func pointerElement(_ path: String, _ index: Int) throws(KPeerError) -> UInt64 {
        let m = try member(path)
        guard m.kind == .array, m.elementKind == .pointer, m.elementSize == 8, index >= 0, index < m.count else {
            throw KPeerError(.unavailable, "\(type).\(path)[\(index)] is out of bounds on this kernel")
        }
        return try reader.memory.readWord(address &+ UInt64(m.offset + index * 8))
    }

    /// The object as another struct that begins at the same address (a
    /// `struct sock` that is a `struct unix_sock`).
    public func reinterpreted(as type: String) throws(KPeerError) -> KernelObject {
        try reader.object(at: address, type: type)
    }

    func readInteger(at a: UInt64, size: Int) throws(KPeerError) -> UInt64 {
        if let buffer, a >= address, a - address + UInt64(size) <= UInt64(buffer.count) {
            let at = Int(a - address)
            var v: UInt64 = 0
            for i in 0..<size { v |= UInt64(buffer[at + i]) << (8 * UInt64(i)) }
            return v
        }
        if size == 8 { return try reader.memory.readWord(a) }
        // One 8-byte pread and a mask, not an array: where the word fits.
        if reader.memory.contains(a &+ 7) {
            return try reader.memory.readWord(a) & ((UInt64(1) << (8 * UInt64(size))) &- 1)
        }
        let bytes = try reader.memory.read(a, count: size)
        var v: UInt64 = 0
        for (i, b) in bytes.enumerated() { v |= UInt64(b) << (8 * UInt64(i)) }
        return v
    }
}

extension KernelObject {
    /// The members of a `struct sk_buff_head` queue at `path` (a list whose
    /// head is embedded in this object): each skb in order, at most `limit`.
    /// The list is live: a pointer out of kernel memory, a loop, or more
    /// entries than `qlen` said end the walk, reported as `torn`.
    public func skbQueue(_ path: String, limit: Int = 4096) throws(KPeerError) -> (skbs: [KernelObject], torn: Bool) {
        let head = try embedded(path)
        let qlen = Int(try head.unsigned("qlen"))
        if qlen == 0 { return ([], false) }  // most queues: nothing more to read
        var out: [KernelObject] = []
        var seen = Set<UInt64>()
        var p = try head.word("next")
        while p != head.address {
            if out.count >= min(limit, qlen) || p == 0 || !seen.insert(p).inserted { return (out, true) }
            guard let skb = try? reader.object(at: p, type: "sk_buff") else { return (out, true) }
            out.append(skb)
            p = try skb.word("next")
        }
        return (out, out.count != qlen)
    }
}
