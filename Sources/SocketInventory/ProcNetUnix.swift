import KPeerSystem

/// Socket types, as the kernel numbers them.
public enum SocketType: UInt16, Sendable {
    case stream = 1, dgram = 2, raw = 3, rdm = 4, seqpacket = 5

    public var name: String {
        switch self {
        case .stream: "stream"
        case .dgram: "dgram"
        case .raw: "raw"
        case .rdm: "rdm"
        case .seqpacket: "seqpacket"
        }
    }
}

/// A socket's state as kpeer reports it, one vocabulary for both methods.
public enum SocketState: String, Sendable {
    case listening, connected, unconnected, connecting, disconnecting
}

/// One unix socket: a line of /proc/net/unix.
public struct UnixSocketEntry: Sendable, Equatable {
    /// The Num column: the kernel's `struct unix_sock *` when shown to root
    /// under kptr_restrict=1; hashed at 0, zero at 2.
    public var address: UInt64
    public var refCount: UInt32
    /// __SO_ACCEPTCON (1 << 16) marks a listener.
    public var flags: UInt32
    public var rawType: UInt16
    /// socket->state: SS_UNCONNECTED 1, SS_CONNECTING 2, SS_CONNECTED 3, SS_DISCONNECTING 4.
    public var rawState: UInt8
    /// 0 for embryos: connections a listener has not accepted yet.
    public var inode: UInt64
    public var path: SocketPath?
    /// The network namespace (nsfs inode) it was listed in; 0 when unknown.
    public var netns: UInt64 = 0

    public init(address: UInt64, refCount: UInt32, flags: UInt32, rawType: UInt16, rawState: UInt8,
                inode: UInt64, path: SocketPath?, netns: UInt64 = 0) {
        self.address = address; self.refCount = refCount; self.flags = flags; self.rawType = rawType
        self.rawState = rawState; self.inode = inode; self.path = path; self.netns = netns
    }

    public static let acceptConnections: UInt32 = 1 << 16

    public var type: SocketType? { SocketType(rawValue: rawType) }
    public var isListening: Bool { flags & Self.acceptConnections != 0 }
    public var isEmbryo: Bool { inode == 0 }

    public var state: SocketState {
        if isListening { return .listening }
        switch rawState {
        case 2: return .connecting
        case 3: return .connected
        case 4: return .disconnecting
        default: return .unconnected
        }
    }
}

/// The parser of /proc/net/unix (and /proc/PID/net/unix), on bytes.
///
/// Each record is `%pK: %08X %08X %08lX %04X %02X %5lu[ path]`. Paths are
/// printed raw, so a path with a newline spills onto the next line: a line
/// that is not a record continues the previous record's path.
public enum ProcNetUnix {
    public static func read(_ path: String = "/proc/net/unix") throws(KPeerError) -> [UnixSocketEntry] {
        parse(try Files.read(path))
    }

    public static func parse(_ text: [UInt8], netns: UInt64 = 0) -> [UnixSocketEntry] {
        var entries: [UnixSocketEntry] = []
        entries.reserveCapacity(text.count / 80)
        text.withUnsafeBufferPointer { buf in
            var start = 0
            var first = true
            while start < buf.count {
                var end = start
                while end < buf.count && buf[end] != 0x0A { end += 1 }
                if first {
                    first = false  // the header line
                } else if var e = parseRecord(buf, start, end) {
                    e.netns = netns
                    entries.append(e)
                } else if !entries.isEmpty, var path = entries[entries.count - 1].path {
                    path.bytes.append(0x0A)
                    path.bytes.append(contentsOf: buf[start..<end])
                    entries[entries.count - 1].path = path
                }
                start = end + 1
            }
        }
        return entries
    }

    private static func hexValue(_ c: UInt8) -> UInt64? {
        switch c {
        case 0x30...0x39: UInt64(c - 0x30)
        case 0x61...0x66: UInt64(c - 0x61 + 10)
        case 0x41...0x46: UInt64(c - 0x41 + 10)
        default: nil
        }
    }

    /// Reads `width` hex digits at `i` (width 0: as many as there are).
    private static func hex(_ buf: UnsafeBufferPointer<UInt8>, _ i: inout Int, _ end: Int) -> UInt64? {
        var v: UInt64 = 0
        let start = i
        while i < end, let d = hexValue(buf[i]) {
            if i - start >= 16 { return nil }
            v = v << 4 | d
            i += 1
        }
        return i > start ? v : nil
    }

    private static func parseRecord(_ buf: UnsafeBufferPointer<UInt8>, _ start: Int, _ end: Int) -> UnixSocketEntry? {
        var i = start
        guard let address = hex(buf, &i, end), i < end, buf[i] == 0x3A else { return nil }  // ':'
        i += 1
        var fields: [UInt64] = []
        fields.reserveCapacity(5)
        for _ in 0..<5 {
            guard i < end, buf[i] == 0x20 else { return nil }
            i += 1
            guard let v = hex(buf, &i, end) else { return nil }
            fields.append(v)
        }
        guard i < end, buf[i] == 0x20 else { return nil }
        while i < end && buf[i] == 0x20 { i += 1 }  // %5lu pads with spaces
        var inode: UInt64 = 0
        let digits = i
        while i < end, buf[i] >= 0x30, buf[i] <= 0x39 {
            let (m, o1) = inode.multipliedReportingOverflow(by: 10)
            let (a, o2) = m.addingReportingOverflow(UInt64(buf[i] - 0x30))
            if o1 || o2 { return nil }
            inode = a
            i += 1
        }
        guard i > digits else { return nil }
        var path: SocketPath? = nil
        if i < end {
            guard buf[i] == 0x20 else { return nil }
            let raw = Array(buf[(i + 1)..<end])
            if raw.first == UInt8(ascii: "@") {
                path = SocketPath(bytes: Array(raw.dropFirst()), isAbstract: true)
            } else {
                path = SocketPath(bytes: raw, isAbstract: false)
            }
        }
        guard fields[0] <= UInt32.max, fields[2] <= UInt32.max, fields[3] <= UInt16.max, fields[4] <= UInt8.max else {
            return nil
        }
        return UnixSocketEntry(address: address, refCount: UInt32(fields[0]), flags: UInt32(fields[2]),
                               rawType: UInt16(fields[3]), rawState: UInt8(fields[4]), inode: inode, path: path)
    }
}
