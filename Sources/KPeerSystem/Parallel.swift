import Glibc

/// Threads, started by hand: the owner scan's workers, the sock_diag dump
/// beside the table read, and the short-lived threads that enter another
/// network namespace.
public enum Parallel {
    final class Job: @unchecked Sendable {
        let body: () -> Void
        init(_ body: @escaping () -> Void) { self.body = body }
    }

    /// `body` on a new pthread, or nil (errno-style code in `rc`) when none
    /// could be started.
    static func start(_ body: @escaping () -> Void, rc: inout Int32) -> pthread_t? {
        let job = Unmanaged.passRetained(Job(body)).toOpaque()
        var t = pthread_t()
        rc = pthread_create(&t, nil, { raw in
            Unmanaged<Job>.fromOpaque(raw!).takeRetainedValue().body()
            return nil
        }, job)
        if rc != 0 {
            Unmanaged<Job>.fromOpaque(job).release()
            return nil
        }
        return t
    }

    /// Runs a body on `count` threads (the caller's is one of them) and waits.
    public static func run(_ count: Int, _ body: @escaping (Int) -> Void) {
        var threads: [pthread_t] = []
        var rc: Int32 = 0
        for slot in 1..<max(1, count) {
            if let t = start({ body(slot) }, rc: &rc) {
                threads.append(t)
            } else {
                body(slot)  // no thread: do its share here
            }
        }
        body(0)
        for t in threads { pthread_join(t, nil) }
    }

    /// Runs `body` on a fresh thread and waits for it: for changes that must
    /// die with the thread (setns), never made on the caller's.
    public static func onNewThread(_ body: @escaping () -> Void) throws(KPeerError) {
        var rc: Int32 = 0
        guard let t = start(body, rc: &rc) else {
            throw KPeerError(.io, "cannot start a thread: \(String(cString: strerror(rc)))")
        }
        pthread_join(t, nil)
    }
}
