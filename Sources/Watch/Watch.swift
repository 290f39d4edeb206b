import CKPeer
import Glibc
import KPeerSystem
import SocketInventory

/// `kpeer --watch`: every unix socket connection as it happens, until
/// stopped (SIGINT, SIGTERM, SIGHUP, --count, --duration), then a summary.
public struct WatchOptions: Sendable {
    public var target: WatchTarget?
    public var pid: Int32?
    public var type: SocketType?
    public var json = false
    /// Stop after this many events printed.
    public var count: Int?
    /// Stop after this many seconds.
    public var duration: Double?
    /// The polling fallback's interval, in seconds.
    public var interval: Double = 0.1
    public var verbose = false
    /// How the BPF program may attach; empty: never try it (poll).
    public var attach: BPFWatch.Attach = .any

    public static let defaultInterval = 0.1

    public init() {}
}

public enum Watch {
    /// Watches until stopped and returns what it saw. Events go to `output`
    /// as they come (one call per batch), one-line notices to `message`.
    /// The summary is the caller's to print.
    public static func run(_ o: WatchOptions, output: (String) throws(KPeerError) -> Void,
                           message: (String) -> Void) throws(KPeerError) -> WatchSummary {
        var filter = WatchFilter(pid: o.pid, type: o.type)
        if let t = o.target { filter.inodes = try WatchFilter.sockets(for: t) }
        if kp_watch_signals_install() != 0 {
            throw KPeerError(.io, "cannot set up the signals that end a watch")
        }
        defer { kp_watch_signals_restore() }
        let clock = Clock(duration: o.duration)

        var reason = ""
        if !o.attach.isEmpty {
            do {
                let bpf = try BPFWatch(attach: o.attach)
                if bpf.followsStreams {
                    for h in bpf.hooks where h.state == .none {
                        message("kpeer: cannot watch \(h.name): \(h.failure)\n")
                    }
                    if o.verbose {
                        message("kpeer: watching unix sockets with eBPF (\(bpf.attachment)): "
                                + bpf.hooks.filter { $0.state != .none }.map(\.name).joined(separator: ", ") + "\n")
                    }
                    defer { bpf.close() }
                    return try watchBPF(bpf, filter: filter, o, clock: clock, output: output)
                }
                reason = bpf.hooks.first { BPFWatch.essential.contains($0.name) && $0.state == .none }
                    .map { "\($0.name): \($0.failure)" } ?? "hooks missing"
                bpf.close()
            } catch {
                reason = error.problem
            }
            // One way of attaching asked for by name: no other instead.
            if o.attach != .any {
                let how = o.attach == .kprobe ? "kprobes" : "fentry"
                throw KPeerError(.unavailable, "cannot watch with \(how): \(reason)",
                                 fix: "try --attach auto, which falls back to kprobes and then to polling")
            }
        }
        let ms = Int((o.interval * 1000).rounded())
        let how = o.attach.isEmpty ? "polling sock_diag every \(ms) ms (--attach poll)"
            : "eBPF cannot watch here (\(reason)); polling sock_diag every \(ms) ms instead"
        message("kpeer: \(how): "
                + "a connection that opens and closes between two polls is missed, and times are to \(ms) ms\n")
        return try watchPolling(filter: filter, o, clock: clock, output: output)
    }

    /// Deadlines and the offset from CLOCK_MONOTONIC (the kernel's event
    /// times) to the wall clock.
    struct Clock {
        let start: UInt64
        let end: UInt64?

        init(duration: Double?) {
            let start = Self.monotonic()
            self.start = start
            end = duration.map { start + UInt64(max(0, $0) * 1e9) }
        }

        static func monotonic() -> UInt64 { read(CLOCK_MONOTONIC) }
        static func realtime() -> UInt64 { read(CLOCK_REALTIME) }

        static func read(_ id: clockid_t) -> UInt64 {
            var ts = timespec()
            clock_gettime(id, &ts)
            return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
        }

        /// Wall clock minus monotonic, now (the two drift apart with NTP).
        static func wallOffset() -> Int64 { Int64(bitPattern: realtime()) &- Int64(bitPattern: monotonic()) }

        var expired: Bool { end.map { Self.monotonic() >= $0 } ?? false }

        /// How long to wait at most: `cap` ms, less when the end is nearer.
        func wait(cap: Int) -> Int32 {
            guard let end else { return Int32(cap) }
            let now = Self.monotonic()
            guard end > now else { return 0 }
            return Int32(min(UInt64(cap), (end - now + 999_999) / 1_000_000))
        }

        var elapsed: Double { Double(Self.monotonic() - start) / 1e9 }
    }

    /// Prints what the filter admits, counts it; false once --count is reached.
    struct Printer {
        var filter: WatchFilter
        var summary: WatchSummary
        let json: Bool
        let limit: Int?
        var printed = 0
        var text = ""

        mutating func take(_ e: WatchEvent) -> Bool {
            if let limit, printed >= limit { return false }
            guard filter.admit(e) else { return true }
            summary.count(e)
            text += json ? WatchRender.json(e) : WatchRender.line(e)
            printed += 1
            return limit.map { printed < $0 } ?? true
        }

        mutating func flush(_ output: (String) throws(KPeerError) -> Void) throws(KPeerError) {
            guard !text.isEmpty else { return }
            let t = text
            text = ""
            try output(t)
        }
    }

    static func watchBPF(_ bpf: BPFWatch, filter: WatchFilter, _ o: WatchOptions, clock: Clock,
                         output: (String) throws(KPeerError) -> Void) throws(KPeerError) -> WatchSummary {
        var printer = Printer(filter: filter, summary: WatchSummary(source: .ebpf, attach: bpf.attachment),
                              json: o.json, limit: o.count)
        var book = ConnectionBook()
        let stopFd = kp_watch_stop_fd()
        var going = true
        func batch(_ timeout: Int32) throws(KPeerError) -> Int {
            let offset = Clock.wallOffset()
            var n = 0
            try bpf.consume(timeoutMs: timeout, stopFd: stopFd) { raw in
                n += 1
                guard going else { return }
                // A socket that was never connected, closing: nothing to tell.
                if raw.kind == UInt8(KPW_CLOSE_KIND), raw.peer == 0, raw.flags == 0, book.holder(of: raw.inode) == nil {
                    return
                }
                guard let e = book.event(from: raw, wallOffset: offset) else { return }
                if !printer.take(e) { going = false }
            }
            try printer.flush(output)
            return n
        }
        while going && kp_watch_stop_asked() == 0 && !clock.expired {
            _ = try batch(clock.wait(cap: 1000))
        }
        // What the kernel already holds belongs to the watch, stop or not.
        while going, try batch(0) > 0 {}
        printer.summary.finish(seconds: clock.elapsed, lost: bpf.lost)
        return printer.summary
    }

    static func watchPolling(filter: WatchFilter, _ o: WatchOptions, clock: Clock,
                             output: (String) throws(KPeerError) -> Void) throws(KPeerError) -> WatchSummary {
        let ms = max(1, Int((o.interval * 1000).rounded()))
        var printer = Printer(filter: filter, summary: WatchSummary(source: .poll, attach: nil, resolutionMs: ms),
                              json: o.json, limit: o.count)
        var poller = PollWatch()
        var going = true
        var tick: UInt64 = 0
        while going {
            for e in try poller.poll(now: Clock.realtime()) where going {
                going = printer.take(e)
            }
            try printer.flush(output)
            if !going || kp_watch_stop_asked() != 0 || clock.expired { break }
            // The next tick on the interval's grid, however long this poll took.
            tick += 1
            let next = clock.start + tick * UInt64(ms) * 1_000_000
            let now = Clock.monotonic()
            if next > now {
                let wait = min(Int(clock.wait(cap: Int((next - now) / 1_000_000))), Int(Int32.max))
                if kp_watch_wait_stop(Int32(wait)) > 0 { break }
            } else {
                tick = (now - clock.start) / (UInt64(ms) * 1_000_000)
            }
        }
        printer.summary.finish(seconds: clock.elapsed, lost: nil)
        return printer.summary
    }
}
