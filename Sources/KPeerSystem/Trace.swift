import Glibc

/// Phase timings on stderr when KPEER_TRACE is set: where a run's time goes,
/// on a machine (a VM) where no profiler runs. Off, it costs one branch.
public enum Trace {
    public static let enabled = getenv("KPEER_TRACE") != nil

    static func now() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }

    /// Times `body` as phase `name`.
    @inline(__always)
    public static func phase<T, E: Error>(_ name: StaticString, _ body: () throws(E) -> T) throws(E) -> T {
        guard enabled else { return try body() }
        let start = now()
        defer { report(name, now() - start) }
        return try body()
    }

    /// A count worth seeing beside the timings (preads made, rows read).
    public static func count(_ name: StaticString, _ value: @autoclosure () -> Int) {
        guard enabled else { return }
        let line = "kpeer trace: \(name) = \(value())\n"
        _ = line.withCString { write(2, $0, strlen($0)) }
    }

    static func report(_ name: StaticString, _ ns: UInt64) {
        let line = "kpeer trace: \(name) \(ns / 1000) us\n"
        _ = line.withCString { write(2, $0, strlen($0)) }
    }
}
