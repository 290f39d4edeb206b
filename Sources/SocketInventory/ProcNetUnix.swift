import Glibc
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
    // Declared widest first, so that the narrow fields share one word.
    /// The Num column: the kernel's `struct unix_sock *` when shown to root
    /// under kptr_restrict=1; hashed at 0, zero at 2.
    public var address: UInt64
    /// 0 for embryos: connections a listener has not accepted yet.
    public var inode: UInt64
    /// The network namespace (nsfs inode) it was listed in; 0 when unknown.
    public var netns: UInt64 = 0
    public var path: SocketPath?
    public var refCount: UInt32
    /// __SO_ACCEPTCON (1 << 16) marks a listener.
    public var flags: UInt32
    public var rawType: UInt16
    /// socket->state: SS_UNCONNECTED 1, SS_CONNECTING 2, SS_CONNECTED 3, SS_DISCONNECTING 4.
    public var rawState: UInt8
    /// The line before this row in its table; not part of what the row says.
    public var preceding: Preceding = .unknown

    /// What /proc/net/unix printed on the line before a row. Only names are
    /// printed raw, so a row is a record the kernel began, not text inside
    /// some name, when the line before it is the header or a record that
    /// the kernel began and printed without a name (RowVerifier's chain).
    public enum Preceding: UInt8, Sendable {
        /// Not from a table, or after a line that is no record.
        case unknown
        case header
        /// A record that ended at its inode: no name.
        case pathless
        /// A record with a name (lines that were no record appended to it).
        case named
    }

    public init(address: UInt64, refCount: UInt32, flags: UInt32, rawType: UInt16, rawState: UInt8,
                inode: UInt64, path: SocketPath?, netns: UInt64 = 0) {
        self.address = address; self.refCount = refCount; self.flags = flags; self.rawType = rawType
        self.rawState = rawState; self.inode = inode; self.path = path; self.netns = netns
    }

    /// Two rows are equal when they say the same: where they stood in a
    /// table is not part of it.
    public static func == (a: Self, b: Self) -> Bool {
        a.address == b.address && a.inode == b.inode && a.netns == b.netns && a.path == b.path
            && a.refCount == b.refCount && a.flags == b.flags && a.rawType == b.rawType && a.rawState == b.rawState
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
        try Files.withContents(path) { parse($0, netns: 0) }
    }

    public static func parse(_ text: [UInt8], netns: UInt64 = 0) -> [UnixSocketEntry] {
        text.withUnsafeBufferPointer { parse($0, netns: netns) }
    }

    static func parse(_ buf: UnsafeBufferPointer<UInt8>, netns: UInt64) -> [UnixSocketEntry] {
        var entries: [UnixSocketEntry] = []
        // A record without a path is 56 bytes with its newline.
        entries.reserveCapacity(buf.count / 56 + 1)
        guard let base = buf.baseAddress else { return entries }
        do {
            var start = 0
            var first = true
            var before = UnixSocketEntry.Preceding.header
            while start < buf.count {
                let end = memchr(base + start, 0x0A, buf.count - start)
                    .map { UnsafeRawPointer($0) - UnsafeRawPointer(base) } ?? buf.count
                if first {
                    first = false  // the header line, which the kernel prints first
                    if end - start < 4 || memcmp(base + start, "Num ", 4) != 0 { before = .unknown }
                } else if var e = parseRecord(buf, start, end) {
                    e.netns = netns
                    e.preceding = before
                    before = e.path == nil ? .pathless : .named
                    entries.append(e)
                } else if !entries.isEmpty, var path = entries[entries.count - 1].path {
                    path.bytes.append(0x0A)
                    path.bytes.append(contentsOf: buf[start..<end])
                    entries[entries.count - 1].path = path
                } else {
                    before = .unknown
                }
                start = end + 1
            }
        }
        return entries
    }

    /// The value of a hex digit, or 0xFF for any other byte.
    @inline(__always)
    private static func hexDigit(_ c: UInt8) -> UInt8 {
        let d = c &- 0x30
        if d < 10 { return d }
        let l = (c | 0x20) &- 0x61  // a-f and A-F alike
        return l < 6 ? l &+ 10 : 0xFF
    }

    /// Reads the hex digits at `i` (at least one, at most 16).
    @inline(__always)
    private static func hex(_ buf: UnsafeBufferPointer<UInt8>, _ i: inout Int, _ end: Int) -> UInt64? {
        var v: UInt64 = 0
        let start = i
        while i < end {
            let d = hexDigit(buf[i])
            if d == 0xFF { break }
            if i - start >= 16 { return nil }
            v = v << 4 | UInt64(d)
            i += 1
        }
        return i > start ? v : nil
    }

    /// " " then a hex field.
    @inline(__always)
    private static func field(_ buf: UnsafeBufferPointer<UInt8>, _ i: inout Int, _ end: Int) -> UInt64? {
        guard i < end, buf[i] == 0x20 else { return nil }
        i += 1
        return hex(buf, &i, end)
    }

    /// `width` hex digits at `i`, or nil if any is not one.
    @inline(__always)
    private static func fixedHex(_ buf: UnsafeBufferPointer<UInt8>, _ i: Int, _ width: Int) -> UInt64? {
        var v: UInt64 = 0
        var bad: UInt8 = 0
        for k in i..<(i + width) {
            let d = hexDigit(buf[k])
            bad |= d & 0xF0
            v = v << 4 | UInt64(d & 0x0F)
        }
        return bad == 0 ? v : nil
    }

    /// The columns every kernel prints the same way: a 16-digit address,
    /// then `: %08X %08X %08X %04X %02X ` (one pass, no per-field loop).
    @inline(__always)
    private static func fixedColumns(_ buf: UnsafeBufferPointer<UInt8>, _ s: Int, _ end: Int)
        -> (address: UInt64, fields: (UInt64, UInt64, UInt64, UInt64, UInt64))? {
        guard end - s >= 58, buf[s + 16] == 0x3A, buf[s + 17] == 0x20, buf[s + 26] == 0x20, buf[s + 35] == 0x20,
              buf[s + 44] == 0x20, buf[s + 49] == 0x20, buf[s + 52] == 0x20,
              let address = fixedHex(buf, s, 16), let refCount = fixedHex(buf, s + 18, 8),
              fixedHex(buf, s + 27, 8) != nil, let flags = fixedHex(buf, s + 36, 8),
              let type = fixedHex(buf, s + 45, 4), let st = fixedHex(buf, s + 50, 2) else { return nil }
        return (address, (refCount, 0, flags, type, st))
    }

    private static func parseRecord(_ buf: UnsafeBufferPointer<UInt8>, _ start: Int, _ end: Int) -> UnixSocketEntry? {
        var i = start
        let address: UInt64
        let fields: (UInt64, UInt64, UInt64, UInt64, UInt64)
        if let fixed = fixedColumns(buf, start, end) {
            (address, fields) = fixed
            i = start + 52
        } else {
            guard let a = hex(buf, &i, end), i < end, buf[i] == 0x3A else { return nil }  // ':'
            i += 1
            // RefCount, Protocol, Flags, Type, St.
            guard let refCount = field(buf, &i, end), field(buf, &i, end) != nil, let flags = field(buf, &i, end),
                  let type = field(buf, &i, end), let st = field(buf, &i, end) else { return nil }
            (address, fields) = (a, (refCount, 0, flags, type, st))
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
        guard fields.0 <= UInt32.max, fields.2 <= UInt32.max, fields.3 <= UInt16.max, fields.4 <= UInt8.max else {
            return nil
        }
        return UnixSocketEntry(address: address, refCount: UInt32(fields.0), flags: UInt32(fields.2),
                               rawType: UInt16(fields.3), rawState: UInt8(fields.4), inode: inode, path: path)
    }
}
