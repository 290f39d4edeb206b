import Glibc
import KPeerSystem
import Rendering
import SocketInventory

/// How events and the summary are written. Text: one line per event,
/// fields separated by single spaces, names escaped (Escape.bytes), so a
/// process calling itself "x\n1 connect" stays one field of one line:
///
///     TIME KIND TYPE INODE PID/NAME -> PEER PID/NAME [via LISTENER]
///
/// `-` where something is not known (a connect's server end has no inode
/// until it is accepted). JSON lines: one object per event, names as their
/// exact bytes.
public enum WatchRender {
    public static func line(_ e: WatchEvent) -> String {
        var s = time(e.time) + " " + e.kind.rawValue + " " + (e.type?.name ?? "-") + " \(e.inode) "
        s += (e.process?.label ?? "-") + " -> " + (e.peer.map(String.init) ?? "-") + " " + (e.peerProcess?.label ?? "-")
        if let l = e.listener { s += " via \(l)" }
        if e.listening { s += " listening" }
        return s + "\n"
    }

    /// One JSON object on one line. Unknowns are null.
    public static func json(_ e: WatchEvent) -> String {
        var s = "{\"time\":\"\(time(e.time))\",\"time_ns\":\(e.time),\"kind\":\"\(e.kind.rawValue)\""
        s += ",\"type\":" + (e.type.map { "\"\($0.name)\"" } ?? "null")
        s += ",\"inode\":\(e.inode)"
        s += process("", e.process, tid: true)
        s += ",\"peer_inode\":" + (e.peer.map(String.init) ?? "null")
        s += process("peer_", e.peerProcess, tid: false)
        s += ",\"listener_inode\":" + (e.listener.map(String.init) ?? "null")
        if e.kind == .close { s += ",\"listening\":\(e.listening)" }
        return s + ",\"source\":\"\(e.source.rawValue)\"}\n"
    }

    static func process(_ prefix: String, _ p: WatchProcess?, tid: Bool) -> String {
        guard let p else {
            return ",\"\(prefix)pid\":null" + (tid ? ",\"\(prefix)tid\":null" : "") + ",\"\(prefix)name\":null"
        }
        var s = ",\"\(prefix)pid\":\(p.pid)"
        if tid { s += ",\"\(prefix)tid\":" + (p.tid.map(String.init) ?? "null") }
        return s + name(prefix + "name", p.name)
    }

    /// `"KEY":"TEXT"`, and where the bytes are not UTF-8 (the text then has
    /// U+FFFD for them) `"KEY_hex"` with every byte, as --json does for paths.
    static func name(_ key: String, _ bytes: [UInt8]) -> String {
        let text = String(decoding: bytes, as: UTF8.self)
        var s = ",\"\(key)\":" + JSON.string(text)
        if !text.utf8.elementsEqual(bytes) {
            let digits = Array("0123456789abcdef".utf8)
            var hex: [UInt8] = []
            for b in bytes { hex += [digits[Int(b >> 4)], digits[Int(b & 15)]] }
            s += ",\"\(key)_hex\":\"" + String(decoding: hex, as: UTF8.self) + "\""
        }
        return s
    }

    /// ISO 8601 in UTC, to the microsecond: 2025-01-31T12:00:00.123456Z.
    public static func time(_ ns: UInt64) -> String {
        var t = time_t(ns / 1_000_000_000)
        var tm = tm()
        gmtime_r(&t, &tm)
        let micros = Int(ns % 1_000_000_000 / 1000)
        func pad(_ v: Int32, _ n: Int) -> String {
            let s = String(v)
            return String(repeating: "0", count: max(0, n - s.count)) + s
        }
        let frac = String(micros)
        return "\(pad(tm.tm_year + 1900, 4))-\(pad(tm.tm_mon + 1, 2))-\(pad(tm.tm_mday, 2))T"
            + "\(pad(tm.tm_hour, 2)):\(pad(tm.tm_min, 2)):\(pad(tm.tm_sec, 2))."
            + String(repeating: "0", count: 6 - frac.count) + frac + "Z"
    }

    /// The summary as text, for stderr.
    public static func summary(_ s: WatchSummary) -> String {
        var out = "kpeer: watched \(seconds(s.seconds)) s \(s.how): \(s.connections) connection\(s.connections == 1 ? "" : "s")"
        out += " (\(s.counts[.connect] ?? 0) connect, \(s.counts[.pair] ?? 0) socketpair, \(s.counts[.send] ?? 0) first send)"
        out += ", \(s.counts[.accept] ?? 0) accepted, \(s.counts[.close] ?? 0) closed"
        if let lost = s.lost { out += ", \(lost) lost" }
        out += "; \(seconds(s.cpuSeconds)) s CPU"
        if let r = s.resolutionMs { out += "; polled every \(r) ms, shorter connections missed" }
        out += "\n"
        for c in s.clients {
            out += "kpeer:   \(c.connections) \(c.process.label)\n"
        }
        return out
    }

    /// The summary as the last JSON line.
    public static func summaryJSON(_ s: WatchSummary) -> String {
        var out = "{\"summary\":{\"seconds\":\(seconds(s.seconds)),\"source\":\"\(s.source.rawValue)\""
        out += ",\"attach\":" + (s.attach.map { "\"\($0)\"" } ?? "null")
        out += ",\"connections\":\(s.connections),\"events\":{"
        out += WatchEvent.Kind.allCases.map { "\"\($0.rawValue)\":\(s.counts[$0] ?? 0)" }.joined(separator: ",")
        out += "},\"lost\":" + (s.lost.map(String.init) ?? "null")
        out += ",\"cpu_seconds\":\(seconds(s.cpuSeconds))"
        out += ",\"poll_interval_ms\":" + (s.resolutionMs.map(String.init) ?? "null")
        out += ",\"clients\":[" + s.clients.map { c in
            "{\"pid\":\(c.process.pid)" + name("name", c.process.name) + ",\"connections\":\(c.connections)}"
        }.joined(separator: ",")
        return out + "]}}\n"
    }

    static func seconds(_ v: Double) -> String {
        let tenths = Int((v * 10).rounded())
        return "\(tenths / 10).\(tenths % 10)"
    }
}

/// What a watch saw, for its summary.
public struct WatchSummary: Sendable {
    public struct Client: Sendable, Equatable {
        public var process: WatchProcess
        public var connections: Int
    }

    public var source: WatchSource
    /// "fentry", "kprobe" (eBPF), nil when polling.
    public var attach: String?
    public var seconds: Double = 0
    public var counts: [WatchEvent.Kind: Int] = [:]
    /// Connections made (connect, socketpair, first send).
    public var connections = 0
    /// Events the kernel could not hand over (eBPF); nil when polling,
    /// where what is missed cannot be counted.
    public var lost: UInt64?
    public var resolutionMs: Int?
    /// kpeer's own CPU time (user and system) for the whole watch.
    public var cpuSeconds: Double = 0
    /// Per client process (the one that connected), most connections first.
    public var clients: [Client] = []
    private var byPid: [Int32: Client] = [:]

    public init(source: WatchSource, attach: String?, resolutionMs: Int? = nil) {
        self.source = source; self.attach = attach; self.resolutionMs = resolutionMs
    }

    var how: String {
        switch source {
        case .ebpf: "with eBPF" + (attach.map { " (\($0))" } ?? "")
        case .poll: "by polling sock_diag"
        }
    }

    public mutating func count(_ e: WatchEvent) {
        counts[e.kind, default: 0] += 1
        guard e.isConnection else { return }
        connections += 1
        let p = e.process ?? WatchProcess(pid: 0, name: Array("?".utf8))
        byPid[p.pid, default: Client(process: WatchProcess(pid: p.pid, name: p.name), connections: 0)].connections += 1
    }

    public mutating func finish(seconds: Double, lost: UInt64?) {
        self.seconds = seconds
        self.lost = lost
        var u = rusage()
        if getrusage(RUSAGE_SELF.rawValue, &u) == 0 {
            cpuSeconds = Double(u.ru_utime.tv_sec + u.ru_stime.tv_sec) + Double(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6
        }
        clients = byPid.values.sorted { ($0.connections, $1.process.pid) > ($1.connections, $0.process.pid) }
    }
}
