import CKPeer
import KPeerSystem

/// Offsets from BTF, the compact type info the kernel ships in
/// /sys/kernel/btf/vmlinux (CONFIG_DEBUG_INFO_BTF), read with libbpf.
public enum BTF {
    public static let defaultPath = "/sys/kernel/btf/vmlinux"

    /// The offset of `member`, and of `also` (unix_sock.addr) from the same read.
    static func memberOffset(path: String = defaultPath, type: String = UnixSockPeer.type,
                                    member: String = UnixSockPeer.member,
                                    also: String? = UnixSockPeer.addrMember) throws(KPeerError) -> MemberOffset {
        var offset: UInt64 = 0, size: UInt64 = 0, alsoOffset = UInt64.max
        var err = kp_error()
        if kp_btf_member_offsets(path, type, member, also, &offset, &alsoOffset, &size, &err) != 0 {
            throw KPeerError(err, path: path, fix: "give --btf a BTF file such as /sys/kernel/btf/vmlinux, or use --dwarf or calibration")
        }
        let addr = alsoOffset < UInt64(UnixSockPeer.plausibleRange.upperBound) ? Int(alsoOffset) : nil
        return MemberOffset(value: Int(offset), structSize: Int(size), source: .btf, origin: path, addrOffset: addr)
    }

    /// The same from the file open on `fd` (SymbolFile), through libbpf.
    static func memberOffset(fd: Int32, path: String) throws(KPeerError) -> MemberOffset {
        var offset: UInt64 = 0, size: UInt64 = 0, alsoOffset = UInt64.max
        var err = kp_error()
        if kp_btf_fd_member_offsets(fd, path, UnixSockPeer.type, UnixSockPeer.member, UnixSockPeer.addrMember,
                                    &offset, &alsoOffset, &size, &err) != 0 {
            throw KPeerError(err, path: path, fix: "give --btf a BTF file such as /sys/kernel/btf/vmlinux, or use --dwarf or calibration")
        }
        let addr = alsoOffset < UInt64(UnixSockPeer.plausibleRange.upperBound) ? Int(alsoOffset) : nil
        return MemberOffset(value: Int(offset), structSize: Int(size), source: .btf, origin: path, addrOffset: addr)
    }
}
