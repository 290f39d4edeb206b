import Glibc
import KPeerSystem

/// Whole strings to a file descriptor. An answer that did not all reach
/// stdout is an error (74): a script must not take a cut listing for a
/// whole one. The one exception is a reader that has gone (`| head`):
/// SIGPIPE ends kpeer as it ends any filter, and where SIGPIPE is ignored,
/// EPIPE ends it the same way, quietly.
enum Output {
    /// The standard descriptors that were closed when kpeer started. Each
    /// now holds /dev/null, so no file kpeer opens takes its number (and
    /// an answer meant for stdout never goes into, say, a netlink socket).
    static let closedAtStart: [Int32] = {
        var closed: [Int32] = []
        for fd in Int32(0)...2 where fcntl(fd, F_GETFD) == -1 && errno == EBADF {
            closed.append(fd)
            _ = open("/dev/null", O_RDWR)  // the lowest free number: fd
        }
        return closed
    }()

    /// The answer, on stdout.
    static func answer(_ text: String) throws(KPeerError) {
        var text = text
        var failure: KPeerError?
        text.withUTF8 { b in
            do throws(KPeerError) { try answer(bytes: b) } catch { failure = error }
        }
        if let failure { throw failure }
    }

    /// The answer as bytes already (Render's tables and dump).
    static func answer(bytes: UnsafeBufferPointer<UInt8>) throws(KPeerError) {
        if closedAtStart.contains(1) {
            throw KPeerError(.io, "cannot write the answer: standard output is closed", fix: "run kpeer with stdout open (not >&-)")
        }
        let e = write(bytes, to: 1)
        if e == EPIPE { exit(KPeerError.Kind.io.rawValue) }
        if e != 0 {
            throw KPeerError(.io, "cannot write the answer: \(String(cString: strerror(e)))", fix: "give kpeer an output it can write to")
        }
    }

    /// A message on stderr; if that fails there is nowhere left to say so.
    static func message(_ text: String) { _ = write(text, to: 2) }

    /// 0, or the errno of the write(2) that failed.
    static func write(_ text: String, to fd: Int32) -> Int32 {
        var text = text
        return text.withUTF8 { write($0, to: fd) }
    }

    static func write(_ buf: UnsafeBufferPointer<UInt8>, to fd: Int32) -> Int32 {
        var done = 0
        while done < buf.count {
            let n = Glibc.write(fd, buf.baseAddress! + done, buf.count - done)
            if n < 0 {
                if errno == EINTR { continue }
                return errno
            }
            done += n
        }
        return 0
    }
}
