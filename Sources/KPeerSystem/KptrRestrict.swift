import CKPeer
import Glibc

/// kernel.kptr_restrict controls whether /proc/net/unix shows real kernel
/// addresses: 0 hashes them, 1 shows them to root (CAP_SYSLOG), 2 zeroes them.
public enum KptrRestrict {
    public static let path = "/proc/sys/kernel/kptr_restrict"

    /// Runs `body` with kptr_restrict raised from 0 to 1, restoring it on
    /// every path out — return, throw, or a fatal signal (the C guard).
    /// Returns the body's result and the value found before.
    public static func withAddressesVisible<T>(
        _ body: () throws(KPeerError) -> T
    ) throws(KPeerError) -> (result: T, previous: Int) {
        var previous: Int32 = -1
        let rc = kp_kptr_raise(&previous)
        if rc == Int32(KP_KPTR_BUSY) || rc == Int32(KP_KPTR_BADLOCK) {
            throw lockError(rc)
        }
        if rc != 0 {
            let code = -rc
            if code == EACCES || code == EPERM || code == EROFS {
                throw .needsRoot("cannot raise \(path) from 0 to 1 to read socket addresses",
                                 otherwise: "set it yourself: sysctl kernel.kptr_restrict=1")
            }
            throw KPeerError.system("cannot use", path: path, errno: code)
        }
        defer { kp_kptr_restore() }
        if previous >= 2 {
            throw KPeerError(.unavailable, "kernel.kptr_restrict is \(previous): /proc/net/unix hides socket addresses",
                             fix: "set it to 1 (sysctl kernel.kptr_restrict=1) or use --method netlink")
        }
        return (try body(), Int(previous))
    }

    /// Runs take turns at raising it (a lock file): one that waited too
    /// long, or found a lock file it may not trust, says which and stops.
    static func lockError(_ rc: Int32) -> KPeerError {
        let lock = String(cString: kp_kptr_lock_path())
        if rc == Int32(KP_KPTR_BADLOCK) {
            return KPeerError(.unavailable, "\(lock) is not a regular file of root's that only root can write, so kpeer does not use it as its lock",
                              fix: "remove it (rm \(lock)); kpeer makes a new one")
        }
        let holder = kp_kptr_lock_holder()
        let who = holder > 0 ? "another kpeer (pid \(holder))" : "another kpeer"
        let ms = Int(kp_kptr_lock_wait())
        let waited = ms % 1000 == 0 ? "\(ms / 1000) s" : "\(ms) ms"
        return KPeerError(.unavailable, "\(who) has held \(lock) for \(waited) while it reads socket addresses",
                          fix: holder > 0 ? "let it finish and run kpeer again, or end it (kill \(holder)); or use --method netlink"
                                          : "let it finish and run kpeer again, or use --method netlink")
    }
}
