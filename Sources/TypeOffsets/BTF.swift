import CKPeer
import KPeerSystem

/// Offsets from BTF, the compact type info the kernel ships in
/// /sys/kernel/btf/vmlinux (CONFIG_DEBUG_INFO_BTF), read with libbpf.
public enum BTF {
    public static let defaultPath = "/sys/kernel/btf/vmlinux"

    public static func memberOffset(path: String = defaultPath, type: String = UnixSockPeer.type,
                                    member: String = UnixSockPeer.member) throws(KPeerError) -> MemberOffset {
        var offset: UInt64 = 0, size: UInt64 = 0
        var err = kp_error()
        if kp_btf_member_offset(path, type, member, &offset, &size, &err) != 0 {
            throw KPeerError(err, fix: "give --btf a BTF file such as /sys/kernel/btf/vmlinux, or use --dwarf or calibration")
        }
        return MemberOffset(value: Int(offset), structSize: Int(size), source: .btf, origin: path)
    }
}
