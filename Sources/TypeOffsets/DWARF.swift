import CKPeer
import Glibc
import KPeerSystem

/// Offsets from the DWARF of a vmlinux with debug info (Debian's
/// linux-image-*-dbg), read with libdw, after checking that the vmlinux is
/// the running kernel's build.
public enum DWARF {
    /// Where distributions put the running kernel's vmlinux with debug info.
    public static func defaultPaths(release: String = Host.kernelRelease) -> [String] {
        ["/usr/lib/debug/boot/vmlinux-\(release)",
         "/usr/lib/debug/lib/modules/\(release)/vmlinux",
         "/boot/vmlinux-\(release)",
         "/lib/modules/\(release)/build/vmlinux"]
    }

    static func memberOffset(path: String, type: String = UnixSockPeer.type,
                                    member: String = UnixSockPeer.member,
                                    preferCU: String? = UnixSockPeer.compileUnit) throws(KPeerError) -> MemberOffset {
        let fd = try openChecked(path, fix: dwarfFix)
        defer { close(fd) }
        return try memberOffset(fd: fd, path: path, type: type, member: member, preferCU: preferCU)
    }

    /// The file at `path`, opened once and checked to be a regular file:
    /// what the build-id check and the DWARF read both read.
    static func openChecked(_ path: String, fix: String) throws(KPeerError) -> Int32 {
        var err = kp_error()
        let fd = kp_open_checked(path, &err)
        if fd < 0 { throw KPeerError(err, path: path, fix: fix) }
        return fd
    }

    /// Refuses the ELF file open on `fd` unless it is the running kernel's
    /// build (offsets differ between builds).
    static func checkBuildID(fd: Int32, path: String, running: [UInt8]?) throws(KPeerError) {
        let fileID = try BuildID.ofFile(fd: fd, path: path)
        guard let running else {
            throw KPeerError(.unavailable, "cannot read the running kernel's build-id from /sys/kernel/notes to check \(path)",
                             fix: "add --force if you are sure \(path) is this kernel's vmlinux")
        }
        if fileID != running {
            throw KPeerError(.badFile, "\(path) is another kernel build (build-id \(BuildID.hex(fileID)), running \(BuildID.hex(running)))",
                             fix: "give --dwarf the vmlinux of the running kernel, or add --force")
        }
    }

    static let dwarfFix = "give --dwarf the vmlinux with debug info of the running kernel (package linux-image-$(uname -r)-dbg)"

    static func memberOffset(fd: Int32, path: String, type: String = UnixSockPeer.type,
                             member: String = UnixSockPeer.member,
                             preferCU: String? = UnixSockPeer.compileUnit) throws(KPeerError) -> MemberOffset {
        var offset: UInt64 = 0, size: UInt64 = 0
        var err = kp_error()
        if kp_dwarf_member_offset_fd(fd, path, type, member, preferCU, &offset, &size, &err) != 0 {
            throw KPeerError(err, path: path, fix: dwarfFix)
        }
        return MemberOffset(value: Int(offset), structSize: size > 0 ? Int(size) : nil, source: .dwarf, origin: path)
    }

    /// The offset from `path`, refused when its build-id is not the running
    /// kernel's (offsets differ between builds) unless `force`. The file is
    /// opened once: the build-id compared is the one of the file whose
    /// DWARF is read, even if the path is replaced meanwhile.
    static func checkedMemberOffset(path: String, force: Bool,
                                           runningBuildID: [UInt8]? = BuildID.runningKernel()) throws(KPeerError) -> MemberOffset {
        // The fix each failure to open named before the two reads shared it.
        let fd = try openChecked(path, fix: force ? dwarfFix : BuildID.fix)
        defer { close(fd) }
        if !force { try checkBuildID(fd: fd, path: path, running: runningBuildID) }
        return try memberOffset(fd: fd, path: path)
    }
}

/// A --dwarf or --btf file (or a vmlinux found in the usual places), opened
/// once: the build-id check, the peer offset and the struct layouts all read
/// this one descriptor, so replacing the path meanwhile changes nothing.
public final class SymbolFile: @unchecked Sendable {
    public let path: String
    public let isDWARF: Bool
    let fd: Int32

    /// Opens `path` and checks it is a regular file; a DWARF file must be the
    /// running kernel's build unless `force`.
    public init(path: String, dwarf: Bool, force: Bool = false,
                runningBuildID: @autoclosure () -> [UInt8]? = BuildID.runningKernel()) throws(KPeerError) {
        self.path = path
        self.isDWARF = dwarf
        let fix = dwarf ? (force ? DWARF.dwarfFix : BuildID.fix)
                        : "give --btf a BTF file such as /sys/kernel/btf/vmlinux, or use --dwarf or calibration"
        fd = try DWARF.openChecked(path, fix: fix)
        guard dwarf, !force else { return }
        do {
            try DWARF.checkBuildID(fd: fd, path: path, running: runningBuildID())
        } catch {
            close(fd)
            throw error
        }
    }

    deinit { close(fd) }
}

/// GNU build-ids: a vmlinux's, and the running kernel's from /sys/kernel/notes.
public enum BuildID {
    static let fix = "give --dwarf the vmlinux with debug info of the running kernel"

    public static func ofFile(_ path: String) throws(KPeerError) -> [UInt8] {
        var buf = [UInt8](repeating: 0, count: 64)
        var len = 0
        var err = kp_error()
        if kp_elf_build_id(path, &buf, buf.count, &len, &err) != 0 {
            throw KPeerError(err, path: path, fix: "give --dwarf the vmlinux with debug info of the running kernel")
        }
        return Array(buf.prefix(len))
    }

    /// The build-id of the ELF file open on `fd` (`path` for messages).
    static func ofFile(fd: Int32, path: String) throws(KPeerError) -> [UInt8] {
        var buf = [UInt8](repeating: 0, count: 64)
        var len = 0
        var err = kp_error()
        if kp_elf_build_id_fd(fd, path, &buf, buf.count, &len, &err) != 0 {
            throw KPeerError(err, path: path, fix: "give --dwarf the vmlinux with debug info of the running kernel")
        }
        return Array(buf.prefix(len))
    }

    public static func runningKernel(notes: String = "/sys/kernel/notes") -> [UInt8]? {
        guard let bytes = Files.readIfPresent(notes) else { return nil }
        return fromNotes(bytes)
    }

    /// Finds NT_GNU_BUILD_ID (type 3, name "GNU") in raw ELF note data.
    public static func fromNotes(_ bytes: [UInt8]) -> [UInt8]? {
        func u32(_ at: Int) -> Int {
            Int(bytes[at]) | Int(bytes[at + 1]) << 8 | Int(bytes[at + 2]) << 16 | Int(bytes[at + 3]) << 24
        }
        func align4(_ n: Int) -> Int { (n + 3) & ~3 }
        var at = 0
        while at + 12 <= bytes.count {
            let namesz = u32(at), descsz = u32(at + 4), type = u32(at + 8)
            let name = at + 12
            let desc = name + align4(namesz)
            guard namesz < 1 << 16, descsz < 1 << 16, desc + descsz <= bytes.count else { return nil }
            if type == 3, namesz == 4, Array(bytes[name..<name + 4]) == Array("GNU\0".utf8), descsz > 0 {
                return Array(bytes[desc..<desc + descsz])
            }
            at = desc + align4(descsz)
        }
        return nil
    }

    public static func hex(_ id: [UInt8]) -> String {
        id.map { b in
            let s = String(b, radix: 16)
            return b < 16 ? "0" + s : s
        }.joined()
    }
}
