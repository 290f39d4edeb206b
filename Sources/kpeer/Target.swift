import Glibc
import KPeerSystem
import PeerResolution
import SocketInventory

/// What `kpeer TARGET` asks about. Every form a user is likely to paste is
/// read here, and only here:
/// - digits, or `socket:[DIGITS]` as /proc/PID/fd and lsof show it: an inode;
/// - `@NAME`: an abstract name;
/// - anything with a `/`, or a bare word naming a file that exists: a file.
/// Names are read as kpeer prints them: `\xNN` is the byte NN (see Escape),
/// so a name copied from any output finds the real socket.
enum Target: Equatable {
    case inode(UInt64)
    case file([UInt8])
    case abstract([UInt8])

    static func parse(_ arg: String) throws(KPeerError) -> Target {
        let bytes = Array(arg.utf8)
        if let digits = procFdInode(bytes) ?? (isDigits(bytes) ? bytes : nil) {
            return .inode(try inode(digits, as: arg))
        }
        if bytes.first == UInt8(ascii: "@") {
            let name = unescape(Array(bytes.dropFirst()))
            guard !name.isEmpty else {
                throw KPeerError(.usage, "'@' names no abstract socket", fix: "give @NAME as ss or netstat show it")
            }
            return .abstract(name)
        }
        let path = fileName(bytes)
        guard !path.contains(0) else {
            throw KPeerError(.usage, "'\(Escape.bytes(bytes))' holds a NUL byte (\\x00), which no file name can", fix: "give the socket file's path")
        }
        // A bare word is a file only when one is there (`redis.sock` in its
        // directory); otherwise it is a mistyped inode or option.
        if bytes.contains(UInt8(ascii: "/")) || exists(path) { return .file(path) }
        throw KPeerError(.usage, "'\(Escape.bytes(bytes))' is not a socket inode, @name or a file here",
                         fix: "give the inode netstat, ss or lsof show (or socket:[INODE]), a socket file (./NAME or a path), or @NAME")
    }

    /// The query the library answers.
    func query() throws(KPeerError) -> QueryTarget {
        switch self {
        case .inode(let v): return .inode(v)
        case .abstract(let name): return .abstract(name)
        case .file(let path):
            // QueryTarget holds a file's name as a String.
            guard let s = Self.utf8(path) else {
                throw KPeerError(.usage, "'\(Escape.bytes(path))' is not UTF-8, and kpeer cannot look a socket file up by such a name yet",
                                 fix: "give its inode (kpeer --all shows it)")
            }
            return .file(s)
        }
    }

    /// The name as the socket is bound to it, for --json's "query".
    var name: SocketPath? {
        switch self {
        case .inode: nil
        case .file(let p): SocketPath(bytes: p, isAbstract: false)
        case .abstract(let n): SocketPath(bytes: n, isAbstract: true)
        }
    }

    static func isDigits(_ b: [UInt8]) -> Bool { !b.isEmpty && b.allSatisfy { $0 >= 0x30 && $0 <= 0x39 } }

    /// The digits of `socket:[DIGITS]`.
    static func procFdInode(_ b: [UInt8]) -> [UInt8]? {
        let prefix = Array("socket:[".utf8)
        guard b.count > prefix.count + 1, b.starts(with: prefix), b.last == UInt8(ascii: "]") else { return nil }
        let digits = Array(b[prefix.count..<b.count - 1])
        return isDigits(digits) ? digits : nil
    }

    static func inode(_ digits: [UInt8], as arg: String) throws(KPeerError) -> UInt64 {
        guard let v = UInt64(String(decoding: digits, as: UTF8.self)), v <= UInt32.max, v > 0 else {
            throw KPeerError(.usage, "inode \(arg) is out of range (socket inodes are 1 to \(UInt32.max))",
                             fix: "give the number netstat, ss or lsof show in the inode column")
        }
        return v
    }

    /// A file's name, unescaped; as given when only that exists (a real
    /// name with `\x` in it, which kpeer itself would print as `\x5cx`).
    static func fileName(_ bytes: [UInt8]) -> [UInt8] {
        let real = unescape(bytes)
        if real != bytes && !exists(real) && exists(bytes) { return bytes }
        return real
    }

    /// Every `\xNN` (either case of hex digit) as the byte NN; any other
    /// `\` stays.
    static func unescape(_ b: [UInt8]) -> [UInt8] {
        func hex(_ c: UInt8) -> UInt8? {
            switch c {
            case 0x30...0x39: c - 0x30
            case 0x41...0x46: c - 0x41 + 10
            case 0x61...0x66: c - 0x61 + 10
            default: nil
            }
        }
        var out: [UInt8] = []
        out.reserveCapacity(b.count)
        var i = 0
        while i < b.count {
            if b[i] == 0x5C, i + 3 < b.count, b[i + 1] == UInt8(ascii: "x"), let hi = hex(b[i + 2]), let lo = hex(b[i + 3]) {
                out.append(hi << 4 | lo)
                i += 4
            } else {
                out.append(b[i])
                i += 1
            }
        }
        return out
    }

    static func exists(_ path: [UInt8]) -> Bool {
        guard !path.isEmpty, !path.contains(0) else { return false }
        var st = stat()
        return (path + [0]).withUnsafeBufferPointer { p in
            p.withMemoryRebound(to: CChar.self) { lstat($0.baseAddress!, &st) == 0 }
        }
    }

    static func utf8(_ b: [UInt8]) -> String? {
        let s = String(decoding: b, as: UTF8.self)
        return Array(s.utf8) == b ? s : nil
    }
}
