import KernelMemory
import KPeerSystem

extension ObjectReader {
    /// The `type` at each address, its first `length` bytes read for all of
    /// them with few preads (KernelMemory.readMany: neighbouring objects
    /// share a read). nil where the address is not kernel memory or the
    /// read failed. Members past `length` are read from memory as usual.
    public func snapshots(at addresses: [UInt64], type: String, length: Int) -> [KernelObject?] {
        var out = addresses.map { try? object(at: $0, type: type) }
        let requests = out.map { o in KernelMemory.Request(o?.address ?? 0, count: o == nil ? 0 : length) }
        var read = [Bool](repeating: false, count: out.count)
        memory.readMany(requests) { i, bytes in
            guard let bytes else { return }
            out[i]?.buffer = Array(bytes)
            read[i] = true
        }
        for i in out.indices where !read[i] { out[i] = nil }
        return out
    }
}
