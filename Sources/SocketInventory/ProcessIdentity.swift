import Glibc
import KPeerSystem

/// Who a process is beyond its pid in kpeer's /proc: its pid in each pid
/// namespace down to its own (a container's processes count from 1), that
/// namespace, and where it sits in the cgroup tree (the systemd unit, a
/// container runtime's id).
public struct ProcessIdentity: Sendable, Hashable {
    /// NSpid of /proc/PID/status: the pid in the namespace of the /proc
    /// read (kpeer's), then in each nested namespace, the process's own
    /// last. One number when the process is in that same namespace.
    public var nspid: [Int32]
    /// The pid namespace (nsfs inode of /proc/PID/ns/pid); nil when it
    /// could not be read.
    public var pidNamespace: UInt64?
    /// /proc/PID/cgroup, parsed; nil when it could not be read.
    public var cgroup: CgroupPlacement?

    public init(nspid: [Int32], pidNamespace: UInt64?, cgroup: CgroupPlacement?) {
        self.nspid = nspid
        self.pidNamespace = pidNamespace
        self.cgroup = cgroup
    }

    /// The pid the process sees for itself (getpid() inside its container).
    public var ownPid: Int32? { nspid.last }

    /// As `readlink /proc/PID/ns/pid` and lsns print it.
    public static func label(pidNamespace inode: UInt64) -> String { "pid:[\(inode)]" }

    /// `--unit NAME`: the process is in that unit, or below it (a slice
    /// holds its units; user@1000.service holds the user's). A NAME without
    /// a suffix means NAME.service, as systemctl reads it.
    public func isIn(unit name: String) -> Bool {
        guard let c = cgroup, !name.isEmpty else { return false }
        let wanted = name.contains(".") ? name : name + ".service"
        return c.units.contains(wanted)
    }

    /// `--container PREFIX`: the container's id (or name, for runtimes that
    /// name them) starts with PREFIX, hex case ignored.
    public func isIn(container prefix: String) -> Bool {
        guard let id = cgroup?.container?.id, !prefix.isEmpty else { return false }
        return id.lowercased().hasPrefix(prefix.lowercased())
    }

    // MARK: reading

    /// The identity of the process whose /proc/PID directory is open as
    /// `pidFD`: everything read through it, so a pid reused meanwhile gives
    /// nothing rather than the newcomer's identity.
    ///
    /// `pid` in `flatNamespace` (the pid namespace of the /proc read, when
    /// kpeer is in it: `flatNamespace(procFD:)`): its NSpid is that one
    /// number, so /proc/PID/status, the costliest file read here, is not.
    public static func read(pidFD: Int32, pid: Int32? = nil, flatNamespace: UInt64? = nil) -> ProcessIdentity {
        var st = stat()
        let ns = fstatat(pidFD, "ns/pid", &st, 0) == 0 ? UInt64(st.st_ino) : nil
        let nspid: [Int32]
        if let pid, let ns, ns == flatNamespace {
            nspid = [pid]
        } else {
            nspid = contents(pidFD, "status").map(parseNSpid) ?? []
        }
        let cgroup = contents(pidFD, "cgroup").flatMap(CgroupPlacement.parse)
        return ProcessIdentity(nspid: nspid, pidNamespace: ns, cgroup: cgroup)
    }

    /// The pid namespace of the /proc open as `procFD` when kpeer itself is
    /// in it (its own NSpid has one number), else nil: processes in it have
    /// one pid, the one /proc names them by.
    public static func flatNamespace(procFD: Int32) -> UInt64? {
        guard let status = contents(procFD, "self/status"), parseNSpid(status).count == 1 else { return nil }
        var st = stat()
        return fstatat(procFD, "self/ns/pid", &st, 0) == 0 ? UInt64(st.st_ino) : nil
    }

    /// The identity of `pid` (a connector's pid, say), or nil when it is
    /// gone or /proc/PID may not be opened.
    public static func read(pid: Int32, procRoot: String = "/proc") -> ProcessIdentity? {
        let fd = open("\(procRoot)/\(pid)", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        let id = read(pidFD: fd)
        return id.nspid.isEmpty && id.pidNamespace == nil && id.cgroup == nil ? nil : id
    }

    /// A small /proc file under `dirFD` (status, cgroup, stat, a ring's
    /// fdinfo), or nil. Read in 4 KiB steps: these are read once per
    /// process, and most fit in one. Each is printed whole by one read
    /// that has room for it (a single_open seq_file, as a regular file
    /// would be), so a read that returns less than asked is the last: no
    /// further read just to see 0.
    static func contents(_ dirFD: Int32, _ name: String) -> [UInt8]? {
        let fd = openat(dirFD, name, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                return nil
            }
            if n == 0 { return out }
            out += chunk[0..<n]
            if n < chunk.count { return out }
        }
    }

    /// The numbers of the `NSpid:` line of /proc/PID/status (Linux 4.1).
    /// The kernel escapes the one field a process chooses (Name), so a line
    /// starting `NSpid:` is the kernel's.
    public static func parseNSpid(_ status: [UInt8]) -> [Int32] {
        let key = Array("NSpid:".utf8)
        var i = 0
        while i < status.count {
            var end = i
            while end < status.count && status[end] != 0x0A { end += 1 }
            if end - i > key.count && status[i..<i + key.count].elementsEqual(key) {
                var out: [Int32] = []
                var v: Int64 = -1
                for b in status[(i + key.count)..<end] {
                    if b >= 0x30 && b <= 0x39 {
                        v = max(v, 0) * 10 + Int64(b - 0x30)
                        if v > Int64(Int32.max) { return [] }
                    } else if b == 0x09 || b == 0x20 {
                        if v >= 0 { out.append(Int32(v)) }
                        v = -1
                    } else {
                        return []
                    }
                }
                if v >= 0 { out.append(Int32(v)) }
                return out
            }
            i = end + 1
        }
        return []
    }
}

/// kpeer's own place among pid namespaces.
public struct PidView: Sendable, Equatable {
    /// kpeer's pid namespace (nsfs inode), nil when /proc does not say.
    public var namespace: UInt64?
    /// The namespace is not the initial one: /proc shows only the
    /// processes of this namespace and those below it.
    public var isChild: Bool

    public static func current(procRoot: String = "/proc") -> PidView {
        let ns = Files.identity("\(procRoot)/self/ns/pid")?.inode
        return PidView(namespace: ns, isChild: ns.map { $0 != OwnerScan.initialPidNamespace } ?? false)
    }
}

/// A container as its runtime names it in the cgroup path.
public struct ContainerRef: Sendable, Hashable {
    /// docker, podman, containerd, cri-o, kubepods, lxc or systemd-nspawn.
    public var runtime: String
    /// The runtime's id: 64 hex digits, or a name (lxc, systemd-nspawn).
    public var id: String

    public init(runtime: String, id: String) {
        self.runtime = runtime
        self.id = id
    }

    /// The first 12 hex digits of an id (as docker ps prints it), a name whole.
    public var shortID: String { Self.isHexID(id) ? String(id.prefix(12)) : id }

    static func isHexID<S: StringProtocol>(_ s: S) -> Bool {
        s.utf8.count == 64 && s.utf8.allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) }
    }
}

/// Where /proc/PID/cgroup puts a process, and what its path says.
public struct CgroupPlacement: Sendable, Hashable {
    /// The hierarchy the path is from: the unified one (cgroup v2, `0::`),
    /// or a v1 one by its controllers (`name=systemd`, `memory`, ...).
    public var hierarchy: String
    /// The path, bytes as the kernel gave them (relative to kpeer's cgroup
    /// namespace: a process outside it shows `/../…`).
    public var path: [UInt8]
    /// The systemd unit: the first unit (not slice) on the path, as
    /// `systemctl status PID` names it (docker.service, session-3.scope,
    /// user@1000.service).
    public var unit: String?
    /// The unit inside a user's service manager (below user@UID.service).
    public var userUnit: String?
    /// The slice that holds the innermost unit named (the user unit's, if
    /// there is one).
    public var slice: String?
    /// The container the path names, if it names one.
    public var container: ContainerRef?
    /// Every unit and slice on the path, outermost first (for `--unit`).
    public var units: [String]

    public init(hierarchy: String, path: [UInt8], unit: String? = nil, userUnit: String? = nil, slice: String? = nil,
                container: ContainerRef? = nil, units: [String] = []) {
        self.hierarchy = hierarchy
        self.path = path
        self.unit = unit
        self.userUnit = userUnit
        self.slice = slice
        self.container = container
        self.units = units
    }

    /// The path as text (U+FFFD for bytes that are not UTF-8).
    public var pathText: String { String(decoding: path, as: UTF8.self) }

    /// Reads /proc/PID/cgroup: `ID:CONTROLLERS:PATH` a line, `0::PATH` for
    /// cgroup v2. The path described is the v2 one where the process is
    /// placed in v2 (pure v2, or hybrid with systemd); else the
    /// name=systemd one; else the first v1 hierarchy that places it below
    /// the root (a v1 container engine without systemd). A container named
    /// only in another hierarchy's path is still found. Nil for text with
    /// no well-formed line. (cgroup names cannot hold a newline: mkdir
    /// refuses one, so a line is the kernel's.)
    public static func parse(_ text: [UInt8]) -> CgroupPlacement? {
        var lines: [(controllers: [UInt8], path: [UInt8])] = []
        for line in text.split(separator: 0x0A, omittingEmptySubsequences: true) {
            guard let c1 = line.firstIndex(of: 0x3A),
                  let c2 = line[(c1 + 1)...].firstIndex(of: 0x3A),
                  !line[..<c1].isEmpty, line[..<c1].allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { continue }
            let path = Array(line[(c2 + 1)...])
            guard path.first == 0x2F else { continue }
            lines.append((Array(line[(c1 + 1)..<c2]), path))
        }
        guard !lines.isEmpty else { return nil }
        let unified = lines.first { $0.controllers.isEmpty }
        let systemd = lines.first { $0.controllers.elementsEqual("name=systemd".utf8) }
        let v1Placed = lines.first { !$0.controllers.isEmpty && $0.path != [0x2F] }
        let chosen: (controllers: [UInt8], path: [UInt8])
        if let u = unified, u.path != [0x2F] || lines.count == 1 {
            chosen = u
        } else if let s = systemd, s.path != [0x2F] {
            chosen = s
        } else if let v = v1Placed {
            chosen = v
        } else {
            chosen = unified ?? systemd ?? lines[0]
        }
        var p = describe(chosen.path)
        p.hierarchy = chosen.controllers.isEmpty ? "unified" : String(decoding: chosen.controllers, as: UTF8.self)
        if p.container == nil {
            for l in lines where l.path != chosen.path {
                if let c = describe(l.path).container {
                    p.container = c
                    break
                }
            }
        }
        return p
    }

    /// Unit, slice and container from one cgroup path.
    public static func describe(_ path: [UInt8]) -> CgroupPlacement {
        let parts = path.split(separator: 0x2F).map { String(decoding: $0, as: UTF8.self) }
        var p = CgroupPlacement(hierarchy: "unified", path: path)
        var inUserManager = false
        for (i, part) in parts.enumerated() {
            if isUnit(part) {
                p.units.append(part)
                if part.hasSuffix(".slice") {
                    if p.unit == nil || (inUserManager && p.userUnit == nil) { p.slice = part }
                } else if p.unit == nil {
                    p.unit = part
                    inUserManager = part.hasPrefix("user@") && part.hasSuffix(".service")
                } else if inUserManager && p.userUnit == nil {
                    p.userUnit = part
                }
            }
            if let c = container(parts, at: i) { p.container = c }  // the innermost wins
        }
        return p
    }

    static let unitSuffixes = [".service", ".scope", ".slice", ".socket", ".mount", ".swap", ".target"]

    static func isUnit(_ s: String) -> Bool {
        unitSuffixes.contains { s.hasSuffix($0) && s.count > $0.count }
    }

    /// The container that path component `i` names, if any. systemd
    /// cgroup drivers name scopes `RUNTIME-ID.scope`; cgroupfs drivers make
    /// directories `docker/ID`, `kubepods/…/pod…/ID`, `lxc/NAME`. A
    /// runtime's own helper (`libpod-conmon-…`, `crio-conmon-…`) is not
    /// the container.
    static func container(_ parts: [String], at i: Int) -> ContainerRef? {
        let part = parts[i]
        let scopes: [(prefix: String, runtime: String)] = [
            ("docker-", "docker"), ("libpod-", "podman"), ("cri-containerd-", "containerd"),
            ("nerdctl-", "containerd"), ("crio-", "cri-o"),
        ]
        if part.hasSuffix(".scope") {
            let stem = part.dropLast(6)
            for s in scopes where stem.hasPrefix(s.prefix) {
                let id = stem.dropFirst(s.prefix.count)
                if ContainerRef.isHexID(id) { return ContainerRef(runtime: s.runtime, id: String(id)) }
            }
            if stem.hasPrefix("machine-"), i > 0, parts[i - 1] == "machine.slice" {
                let name = unescapeUnit(String(stem.dropFirst(8)))
                if !name.isEmpty { return ContainerRef(runtime: "systemd-nspawn", id: name) }
            }
        }
        if i > 0 {
            let parent = parts[i - 1]
            if ContainerRef.isHexID(part) {
                switch parent {
                case "docker": return ContainerRef(runtime: "docker", id: part)
                case "libpod_parent": return ContainerRef(runtime: "podman", id: part)
                default:
                    // kubelet's cgroupfs driver: kubepods[/QOS]/podUID/ID.
                    if parent.hasPrefix("pod") && parts[..<i].contains("kubepods") {
                        return ContainerRef(runtime: "kubepods", id: part)
                    }
                }
            }
            if parent == "lxc" && i == 1, !part.isEmpty { return ContainerRef(runtime: "lxc", id: part) }
        }
        // LXC 4 and later: lxc.payload.NAME (the container; lxc.monitor.NAME is its monitor).
        if part.hasPrefix("lxc.payload.") && part.count > 12 {
            return ContainerRef(runtime: "lxc", id: String(part.dropFirst(12)))
        }
        return nil
    }

    /// systemd's unit-name escaping undone: `\x2d` is `-`.
    static func unescapeUnit(_ s: String) -> String {
        let b = Array(s.utf8)
        var out: [UInt8] = []
        var i = 0
        while i < b.count {
            if b[i] == 0x5C, i + 3 < b.count, b[i + 1] == 0x78,
               let v = UInt8(String(decoding: b[(i + 2)...(i + 3)], as: UTF8.self), radix: 16) {
                out.append(v)
                i += 4
            } else {
                out.append(b[i])
                i += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}
