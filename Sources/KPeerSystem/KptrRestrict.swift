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
        if rc != 0 {
            let code = -rc
            if code == EACCES || code == EPERM || code == EROFS {
                throw KPeerError(.permission, "cannot raise \(path) from 0 to 1 to read socket addresses",
                                 fix: "run kpeer as root, or set it yourself: sysctl kernel.kptr_restrict=1")
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
}
