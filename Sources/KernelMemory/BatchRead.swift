import KPeerSystem

extension KernelMemory {
    /// One small range to read: `count` bytes at `address`.
    public struct Request: Sendable, Equatable {
        public var address: UInt64
        public var count: Int
        public init(_ address: UInt64, count: Int) {
            self.address = address
            self.count = count
        }
        var end: UInt64 { address &+ UInt64(count) }
    }

    /// Reads many small ranges with few preads. A pread of /proc/kcore costs
    /// far more than the bytes it copies, and the objects kpeer reads one
    /// per socket (unix_sock, socket_alloc) sit side by side in slab pages:
    /// sorted by address, ranges less than `gap` bytes apart share one read
    /// of at most `window` bytes, within one segment. `body` gets each
    /// request's index and bytes, or nil where memory could not be read
    /// (a failed shared read is retried range by range, so one bad address
    /// costs no other its answer). Order of calls: by address.
    public func readMany(_ requests: [Request], gap: Int = 4096, window: Int = 64 << 10,
                         _ body: (Int, UnsafeRawBufferPointer?) -> Void) {
        let order = requests.indices.filter { requests[$0].count > 0 && requests[$0].end >= requests[$0].address }
            .sorted { requests[$0].address < requests[$1].address }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: max(window, requests.map(\.count).max() ?? 0),
                                                            alignment: 8)
        defer { buffer.deallocate() }
        var k = 0
        while k < order.count {
            let first = requests[order[k]]
            let start = first.address
            var end = first.end
            var last = k
            if let seg = segment(containing: start), end <= seg.end {
                while last + 1 < order.count {
                    let next = requests[order[last + 1]]
                    guard next.address <= end &+ UInt64(gap), max(end, next.end) - start <= UInt64(window),
                          max(end, next.end) <= seg.end else { break }
                    end = max(end, next.end)
                    last += 1
                }
            }
            let span = UnsafeMutableRawBufferPointer(rebasing: buffer[0..<Int(end - start)])
            if (try? read(start, into: span)) != nil {
                for i in order[k...last] {
                    let r = requests[i]
                    let at = Int(r.address - start)
                    body(i, UnsafeRawBufferPointer(rebasing: span[at..<at + r.count]))
                }
            } else {
                for i in order[k...last] {
                    let r = requests[i]
                    let one = UnsafeMutableRawBufferPointer(rebasing: buffer[0..<r.count])
                    body(i, (try? read(r.address, into: one)) != nil ? UnsafeRawBufferPointer(one) : nil)
                }
            }
            k = last + 1
        }
    }
}
