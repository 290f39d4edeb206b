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
    /// The errno of the failed call behind it, when there was one.
    public var errno: Int32?
    /// The file it is about (or the kernel object a syscall failed on), as
    /// `problem` names it, when there is one.
    public var path: String?

    public init(_ kind: Kind, _ problem: String, fix: String? = nil, errno: Int32? = nil, path: String? = nil) {
        self.kind = kind
        self.problem = problem
        self.fix = fix
        self.errno = errno
        self.path = path
    }

    public var description: String {
        guard let fix else { return problem }
        return "\(problem) — \(fix)"
    }

    /// The status kpeer exits with (see `exitStatuses`).
    public var exitStatus: Int32 { kind.rawValue }
}

// MARK: errno, classified once

extension KPeerError {
    /// What a file is to kpeer, which decides what its absence means.
    public enum FileRole: Sendable {
        /// A file kpeer looks for itself (/proc, /sys): missing means the
        /// kernel lacks the feature.
        case system
        /// A file given to --kcore, --btf or --dwarf: missing is a bad file.
        case input
        /// The socket file or namespace file asked about: missing (or any
        /// failure but permission) means there is no such thing.
        case target
    }

    /// The one place errno becomes a kind.
    public static func kind(errno code: Int32, of role: FileRole) -> Kind {
        if code == EACCES || code == EPERM { return .permission }
        switch role {
        case .system: return code == ENOENT ? .unavailable : .io
        case .input: return code == ENOENT ? .badFile : .io
        case .target: return .notFound
        }
    }

    static func reason(_ code: Int32) -> String { String(cString: strerror(code)) }

    /// A failed syscall on `path` (a file kpeer looks for itself, or a
    /// kernel object such as sock_diag): "WHAT PATH: REASON".
    public static func system(_ what: String, path: String, errno code: Int32) -> KPeerError {
        let kind = kind(errno: code, of: .system)
        return KPeerError(kind, "\(what) \(path): \(reason(code))", fix: kind == .permission ? "run kpeer as root" : nil,
                          errno: code, path: path)
    }

    /// open(2) of `path` failed.
    public static func cannotOpen(_ path: String, errno code: Int32) -> KPeerError {
        system("cannot open", path: path, errno: code)
    }

    /// read(2) of `path` failed.
    public static func cannotRead(_ path: String, errno code: Int32) -> KPeerError {
        system("cannot read", path: path, errno: code)
    }

    /// The file the user asked about (`shown`, escaped) cannot be reached
    /// by `what` (stat, open): there is no such socket or namespace (2),
    /// unless kpeer may not look (77).
    public static func unreachable(_ shown: String, by what: String, errno code: Int32, fix: String) -> KPeerError {
        if kind(errno: code, of: .target) == .permission { return system(what, path: shown, errno: code) }
        return KPeerError(.notFound, "\(shown): \(reason(code))", fix: fix, errno: code, path: shown)
    }

    // MARK: recurring cases

    /// No unix socket has this inode (2).
    public static func noSocket(inode: UInt64) -> KPeerError {
        KPeerError(.notFound, "no unix socket has inode \(inode)", fix: "list them with kpeer --all")
    }

    /// What only root may do (77): "run kpeer as root", or `otherwise`.
    public static func needsRoot(_ problem: String, otherwise: String? = nil) -> KPeerError {
        KPeerError(.permission, problem, fix: "run kpeer as root" + (otherwise.map { ", or \($0)" } ?? ""))
    }

    /// A file the user gave that is not a regular file (65): a FIFO or a
    /// device would block or never end.
    public static func notRegularFile(_ path: String, isDirectory: Bool = false, fix: String? = nil) -> KPeerError {
        KPeerError(.badFile, "\(path) is \(isDirectory ? "a directory" : "not a regular file")", fix: fix, path: path)
    }
}

import CKPeer

extension KPeerError {
    /// Turns a failure reported by the C shim into a KPeerError. The C
    /// shim opens only files the user gave or struct layouts come from, so
    /// a missing one is a bad file; problems with a file's content are
    /// `.badFile` too; `fix` says what to give instead.
    public init(_ err: kp_error, path: String? = nil, fix: String? = nil) {
        let message = withUnsafeBytes(of: err.message) { raw in
            String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
        }
        let kind: Kind = err.code == Int32(KP_EIO) ? Self.kind(errno: err.err_errno, of: .input) : .badFile
        self.init(kind, message, fix: fix, errno: err.err_errno != 0 ? err.err_errno : nil, path: path)
    }
}
