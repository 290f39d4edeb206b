import Glibc

/// The one error type of kpeer. Every fallible call throws it; the CLI
/// prints `description` as one line on stderr and exits with `exitStatus`.
public struct KPeerError: Error, CustomStringConvertible, Equatable, Sendable {
    /// What went wrong; its raw value is the exit status (sysexits.h-style
    /// above 63), one per kind, the same for every output form.
    public enum Kind: Int32, Sendable, Equatable, CaseIterable {
        /// The socket exists but has no peer.
        case noPeer = 1
        /// No unix socket with that inode or path (or no process with that pid).
        case notFound = 2
        /// The peer exists but no process holds it (pending client, in flight).
        case peerUnheld = 3
        /// A bad argument.
        case usage = 64
        /// A file the user gave is not what it must be.
        case badFile = 65
        /// The method cannot work on this machine (no kcore, lockdown, ...).
        case unavailable = 69
        /// An answer could not be verified (wrong offset), so none is given.
        case refused = 70
        /// An unexpected read or write failure.
        case io = 74
        /// Not root, or a capability is missing.
        case permission = 77

        /// What the status means to a user: --help and Docs/CONTRACT.md
        /// print these words (a test holds the document to them).
        public var meaning: String {
            switch self {
            case .noPeer:
                "no peer: the socket is not connected (or is an unconnected datagram socket), or a listener given by PATH, @NAME or INODE has no client"
            case .notFound:
                "no such socket or process: no unix socket has that inode, a PATH is missing, is not a socket or has nothing bound to it, or no process has the --pid"
            case .peerUnheld:
                "the peer exists but no process holds it: a client not yet accepted (its listener is named), or a socket in flight"
            case .usage:
                "bad usage: an unknown option, a bad value, options that do not go together, an argument that is no inode, path or @NAME"
            case .badFile:
                "a file given to --kcore, --btf or --dwarf is missing or not what it must be: not ELF, no BTF, no unix_sock, a vmlinux of another build"
            case .unavailable:
                "the method is unavailable here: no /proc/kcore, lockdown, hashed or zeroed pointers, kptr_restrict=2, no unix_diag"
            case .refused:
                "refused, as it could not be verified: the peer offset failed the self-check, offset sources disagree, calibration was ambiguous, an inode names two sockets"
            case .io:
                "input or output failed: a file could not be read midway, or the output could not be written (a full disk, a closed stdout; no message when the reader has gone)"
            case .permission:
                "permission: the kcore method without root (CAP_SYS_RAWIO), or an answer that rests on processes kpeer may not read (not root, a user or pid namespace)"
            }
        }
    }

    /// Every exit status and its meaning, in order: the one table --help
    /// prints and Docs/CONTRACT.md repeats.
    public static let exitStatuses: [(status: Int32, meaning: String)] =
        [(0, "answered")] + Kind.allCases.map { ($0.rawValue, $0.meaning) }

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

    /// The status kpeer exits with (see `exitStatuses`).
    public var exitStatus: Int32 { kind.rawValue }

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
