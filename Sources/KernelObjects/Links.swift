import KPeerSystem

/// Following the kernel's links between structs: container_of, circular
/// lists of embedded `list_head`s, and arrays no member describes (what a
/// pointer points to). Every step is checked as ObjectReader.object checks
/// a pointer, and every walk has a bound.
extension ObjectReader {
    /// The `type` whose member `path` lies at `address` (the kernel's
    /// container_of): a list or hash node leads to the struct it links.
    public func container(of address: UInt64, type: String, member path: String) throws(KPeerError) -> KernelObject {
        let offset = UInt64(try types.member(type, path).offset)
        guard address >= offset else {
            throw KPeerError(.refused, "0x\(String(address, radix: 16)) cannot be the \(path) of a struct \(type)")
        }
        return try object(at: address - offset, type: type)
    }

    /// The 8-byte word at `offset` into each of `count` elements of
    /// `stride` bytes from `base`: an array a pointer leads to (a ring's
    /// fixed files). Read a few pages at a time, not a pread per element.
    public func words(at base: UInt64, count: Int, stride: Int, offset: Int = 0) throws(KPeerError) -> [UInt64] {
        guard count >= 0, stride >= 8, offset >= 0, offset + 8 <= stride, count <= Int.max / stride,
              base &+ UInt64(count * stride) >= base else {
            throw KPeerError(.refused, "an array of \(count) elements at 0x\(String(base, radix: 16)) does not fit in memory")
        }
        var out: [UInt64] = []
        out.reserveCapacity(count)
        let perRead = max(1, 16384 / stride)
        var at = 0
        while at < count {
            let n = min(perRead, count - at)
            let bytes = try memory.read(base &+ UInt64(at * stride), count: n * stride)
            for i in 0..<n {
                var v: UInt64 = 0
                for k in 0..<8 { v |= UInt64(bytes[i * stride + offset + k]) << (8 * UInt64(k)) }
                out.append(v)
            }
            at += n
        }
        return out
    }
}

extension KernelObject {
    /// How a walk of a circular list ended.
    public enum Walk: Equatable, Sendable {
        /// Back where it began: every entry was seen.
        case complete
        /// The visitor asked to stop.
        case stopped
        /// A pointer out of kernel memory, a loop that does not pass the
        /// start, or more entries than the bound: the list changed while
        /// read, or is not one. What was visited may still be checked.
        case cutShort
    }

    /// Visits the other structs of this one's type on the circular list
    /// threaded through member `path` (a `struct list_head`): from
    /// `path.next` on, each container_of its node, until back here, until
    /// `visit` returns false, or after `limit` entries.
    public func walkList(_ path: String, limit: Int, _ visit: (KernelObject) -> Bool) throws(KPeerError) -> Walk {
        let head = try member(path)
        let next = try reader.types.member(type, path + ".next")
        let home = address &+ UInt64(head.offset)
        var seen: Set<UInt64> = [home]
        var node = try unsigned(next)
        var steps = 0
        while node != home {
            steps += 1
            guard steps <= limit, seen.insert(node).inserted,
                  let entry = try? reader.container(of: node, type: type, member: path) else { return .cutShort }
            if !visit(entry) { return .stopped }
            guard let n = try? entry.unsigned(next) else { return .cutShort }
            node = n
        }
        return .complete
    }
}
