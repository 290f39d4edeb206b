import Glibc

/// The one error type of kpeer. Every fallible call throws it; the CLI
/// prints `description` as one line on stderr and exits with `exitStatus`.
public struct KPeerError: Error, CustomStringConvertible, Equatable, Sendable {
    /// What went wrong, which decides the exit status (see Docs/CONTRACT.md).
    public enum Kind: Sendable, Equatable {
        /// The socket exists but has no peer.
        case noPeer
        /// No unix socket with that inode or path.
        case notFound
        /// The peer exists but no process holds it (pending client, in flight).
        case peerUnheld
        /// A bad argument.
        case usage
        /// A file the user gave is not what it must be.
        case badFile
        /// The method cannot work on this machine (no kcore, lockdown, ...).
        case unavailable
        /// An answer could not be verified (wrong offset), so none is given.
        case refused
        /// Not root, or a capability is missing.
        case permission
        /// An unexpected read or write failure.
        case io
    }

    public var kind: Kind
    /// The problem, as the user sees it.
    public var problem: String
    /// What to do about it, when there is something to do.
    public var fix: String?

    public init(_ kind: Kind, _ problem: String, fix: String? = nil) {
        self.kind = kind
        self.problem = problem
        self.fix = fix
    }

    public var description: String {
        guard let fix else { return problem }
        return "\(problem) — \(fix)"
    }

    /// sysexits.h-style statuses, documented in Docs/CONTRACT.md.
    public var exitStatus: Int32 {
        switch kind {
        case .noPeer: return 1
        case .notFound: return 2
        case .peerUnheld: return 3
        case .usage: return 64
        case .badFile: return 65
        case .unavailable: return 69
        case .refused: return 70
        case .io: return 74
        case .permission: return 77
        }
    }

    /// An error from a failed syscall on `path`, classified by errno.
    public static func system(_ what: String, path: String, errno code: Int32) -> KPeerError {
        let reason = String(cString: strerror(code))
        switch code {
        case EACCES, EPERM:
            return KPeerError(.permission, "\(what) \(path): \(reason)", fix: "run kpeer as root")
        case ENOENT:
            return KPeerError(.unavailable, "\(what) \(path): \(reason)")
        default:
            return KPeerError(.io, "\(what) \(path): \(reason)")
        }
    }
}

import CKPeer

extension KPeerError {
    /// Turns a failure reported by the C shim into a KPeerError. Problems
    /// with a file's content are `.badFile`; `fix` says what to give instead.
    public init(_ err: kp_error, fix: String? = nil) {
        let message = withUnsafeBytes(of: err.message) { raw in
            String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
        }
        let kind: Kind
        switch err.code {
        case Int32(KP_EIO):
            kind = (err.err_errno == EACCES || err.err_errno == EPERM) ? .permission
                : (err.err_errno == ENOENT ? .badFile : .io)
        default:
            kind = .badFile
        }
        self.init(kind, message, fix: fix)
    }
}
