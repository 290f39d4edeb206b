import Foundation
import Glibc
import Testing
import KPeerSystem
@testable import KernelMemory
@testable import KernelObjects
@testable import PeerResolution
@testable import TypeOffsets
@testable import Rendering
@testable import SocketInventory

/// Containers, as kpeer sees them: pid namespaces (NSpid, pid:[INODE]),
/// cgroups (unit, runtime and id), holders that are not descriptors of the
/// process's table (io_uring fixed files, a thread's own table), and
/// abstract names in another network namespace (--netns). Every case is
/// made here, by Tests/Fixture/containers.c run under unshare(1), in a
/// cgroup subtree made for it, or in a network namespace made for it; each
/// answer is held against what the fixture printed about itself or what
/// the kernel says in /proc.
@Suite(.serialized, .tags(.fixture, .root), .layered) struct ContainerTests {
    // MARK: the fixture

    /// containers.c in one mode, until it is let go (stdin closed).
    final class Made {
        let process: Process
        let input: Pipe
        /// Its `key value...` lines.
        var facts: [String: [String]] = [:]

        init(_ args: [String], launcher: [String] = []) throws {
            let started = try Support.startUntilReady(launcher + [try ContainerTests.binary()] + args, what: "containers \(args)")
            process = started.process
            input = started.input
            let text = started.text
            for line in text.split(separator: "\n") {
                let f = line.split(separator: " ").map(String.init)
                if f.count > 1 { facts[f[0]] = Array(f.dropFirst()) }
            }
        }

        func number(_ key: String, _ at: Int = 0) -> UInt64 { UInt64(facts[key]?[at] ?? "") ?? 0 }
        var pid: Int32 { process.processIdentifier }

        func finish() {
            try? input.fileHandleForWriting.close()
            process.waitUntilExit()
        }

        deinit { finish() }
    }

    static func binary() throws -> String {
        try Support.program("Tests/Fixture/containers.c", named: "containers", flags: ["-O2", "-Wall", "-pthread"])
    }

    static var root: Bool { geteuid() == 0 }
    static var canUnshare: Bool { root && Support.which("unshare") != nil }

    static func owners(_ table: OwnerTable, _ inode: UInt64) -> [Owner] { table.owners(of: inode) }

    // MARK: pid namespaces

    /// NSpid of kpeer's own /proc/self/status: its pid, and nothing more
    /// (it is in the namespace of the /proc it reads).
    @Test func nspidOfThisProcessIsItsPid() throws {
        let status = try Files.read("/proc/self/status")
        #expect(ProcessIdentity.parseNSpid(status) == [getpid()])
        let me = try #require(ProcessIdentity.read(pid: getpid()))
        #expect(me.pidNamespace == Files.identity("/proc/self/ns/pid")?.inode)
        #expect(PidView.current().namespace == me.pidNamespace)
    }

    /// The host pid of unshare's forked child (the process running inside).
    static func child(of parent: Int32) throws -> Int32 {
        for entry in try FileManager.default.contentsOfDirectory(atPath: "/proc") {
            guard let pid = Int32(entry), let stat = Files.readIfPresent("/proc/\(entry)/stat"),
                  let close = stat.lastIndex(of: 0x29) else { continue }
            let fields = stat[(close + 2)...].split(separator: 0x20)
            if fields.count > 1, Int32(String(decoding: fields[1], as: UTF8.self)) == parent { return pid }
        }
        throw Support.Failure("no child of \(parent)")
    }

    /// A process in `unshare -p -f --mount-proc`: seen from here with its
    /// host pid, NSpid [host pid, its own pid], and its namespace; seen
    /// from its own /proc (what kpeer run inside sees) with its own pid,
    /// and kpeer's view there marked partial.
    @Test(.enabled(if: canUnshare)) func aProcessInAPidNamespace() throws {
        let made = try Made(["hold"], launcher: [Support.which("unshare")!, "-p", "-f", "--mount-proc"])
        let hostPid = try Self.child(of: made.pid)
        let ownPid = Int32(made.number("pid"))
        let ns = made.number("pidns")
        #expect(ns == Files.identity("/proc/\(hostPid)/ns/pid")?.inode)
        #expect(ns != PidView.current().namespace)
        let inode = made.number("pair")

        let table = OwnerScan.scan(identities: true)
        let owner = try #require(table.owners(of: inode).first)
        #expect(owner.pid == hostPid)
        let id = try #require(table.identities[hostPid])
        #expect(id.nspid == [hostPid, ownPid])
        #expect(id.ownPid == ownPid)
        #expect(id.pidNamespace == ns)
        #expect(Identity.namespaceCell(id, ownPidNamespace: PidView.current().namespace) == "\(ownPid)@pid:[\(ns)]")

        // Its /proc, as kpeer inside would read it.
        let inside = OwnerScan.scan(procRoot: "/proc/\(hostPid)/root/proc", identities: true)
        let seen = try #require(inside.owners(of: inode).first)
        #expect(seen.pid == ownPid)
        #expect(inside.identities[ownPid]?.nspid == [ownPid])
        #expect(inside.identities[ownPid]?.pidNamespace == ns)
        #expect(inside.owners(of: inode).allSatisfy { $0.pid == ownPid })
    }

    // MARK: cgroups

    /// The first mount of `type` (cgroup2, or cgroup with `option`), from
    /// /proc/self/mountinfo: `ID PARENT DEV ROOT MOUNTPOINT OPTS ... - TYPE SOURCE SUPEROPTS`.
    static func cgroupMount(_ type: String, option: String? = nil) -> String? {
        guard let text = Files.text("/proc/self/mountinfo") else { return nil }
        for line in text.split(separator: "\n") {
            let parts = line.components(separatedBy: " - ")
            guard parts.count == 2 else { continue }
            let left = parts[0].split(separator: " "), right = parts[1].split(separator: " ")
            guard left.count >= 5, right.count >= 3, right[0] == type, left[3] == "/" else { continue }
            if let option, !right[2].split(separator: ",").contains(Substring(option)) { continue }
            return String(left[4])
        }
        return nil
    }

    static func randomID() -> String { (0..<32).map { _ in String(format: "%02x", UInt8.random(in: 0...255)) }.joined() }

    /// Directories made under a cgroup mount, removed (deepest first) when
    /// done, after the processes moved in have exited.
    final class Subtree {
        let mount: String
        var made: [String] = []
        var processes: [Made] = []

        init(_ mount: String) { self.mount = mount }

        func mkdir(_ relative: String) throws {
            let path = mount + "/" + relative
            guard Glibc.mkdir(path, 0o755) == 0 || errno == EEXIST else {
                throw Support.Failure("mkdir \(path): \(String(cString: strerror(errno)))")
            }
            made.append(path)
        }

        func move(_ p: Made, into relative: String) throws {
            processes.append(p)
            try "\(p.pid)\n".write(toFile: mount + "/" + relative + "/cgroup.procs", atomically: false, encoding: .utf8)
        }

        deinit {
            for p in processes { p.finish() }  // reaped: the cgroups are empty
            for path in made.reversed() { rmdir(path) }
        }
    }

    /// A cgroup mount this test may make directories in (not read-only,
    /// as in many containers), by trying.
    static func writable(_ mount: String?) -> String? {
        guard root, let mount else { return nil }
        let probe = mount + "/kpeer-probe-\(getpid())"
        guard Glibc.mkdir(probe, 0o755) == 0 else { return nil }
        rmdir(probe)
        return mount
    }

    static var cgroup2: String? { writable(cgroupMount("cgroup2")) }

    /// A unit-like and a docker-like cgroup v2 subtree made here, a fixture
    /// moved into each: kpeer names the unit, slice, runtime and id the
    /// paths say, and the filters keep exactly the processes moved in.
    @Test(.enabled(if: cgroup2 != nil)) func cgroupV2UnitAndDockerPaths() throws {
        let mount = try #require(Self.cgroup2)
        let slice = "kpeer-test-\(getpid()).slice"
        let id = Self.randomID()
        let scope = "docker-\(id).scope", service = "kpeer-demo-\(getpid()).service"
        let tree = Subtree(mount)
        try tree.mkdir(slice)
        try tree.mkdir(slice + "/" + scope)
        try tree.mkdir(slice + "/" + service)
        let container = try Made(["hold"]), unit = try Made(["hold"]), outside = try Made(["hold"])
        try tree.move(container, into: slice + "/" + scope)
        try tree.move(unit, into: slice + "/" + service)
        defer { outside.finish() }

        // The kernel's own line for each, the truth the parse is held to.
        for (p, leaf) in [(container, scope), (unit, service)] {
            let line = try #require(Files.text("/proc/\(p.pid)/cgroup")?.split(separator: "\n").first { $0.hasPrefix("0::") })
            #expect(line.hasSuffix("/\(slice)/\(leaf)"), "\(line)")
        }

        let table = OwnerScan.scan(identities: true)
        let c = try #require(table.identities[container.pid]?.cgroup)
        #expect(c.hierarchy == "unified")
        #expect(c.pathText.hasSuffix("/\(slice)/\(scope)"))
        #expect(c.container == ContainerRef(runtime: "docker", id: id))
        #expect(c.unit == scope && c.slice == slice)
        let u = try #require(table.identities[unit.pid]?.cgroup)
        #expect(u.unit == service && u.slice == slice && u.container == nil)
        #expect(u.pathText.hasSuffix("/\(slice)/\(service)"))

        // --container and --unit keep the processes moved in, and no other.
        let byContainer = IdentityFilter(container: String(id.prefix(7)))
        let byUnit = IdentityFilter(unit: String(service.dropLast(8)))  // without .service
        let bySlice = IdentityFilter(unit: slice)
        for (p, filter, kept) in [(container, byContainer, true), (unit, byContainer, false), (outside, byContainer, false),
                                  (container, byUnit, false), (unit, byUnit, true), (outside, byUnit, false),
                                  (container, bySlice, true), (unit, bySlice, true), (outside, bySlice, false)] {
            #expect(filter.keeps(table.owners(of: p.number("pair")), identities: table.identities) == kept,
                    "\(filter) pid \(p.pid)")
        }

        // JSON: the same, as a parser reads it.
        let json = Identity.json(table.identities[container.pid])
        let doc = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        let cg = try #require(doc["cgroup"] as? [String: Any])
        #expect((cg["container"] as? [String: String]) == ["runtime": "docker", "id": id])
        #expect(cg["unit"] as? String == scope)
        #expect((doc["nspid"] as? [Int]) == [Int(container.pid)])

        // DOT: the container's process in a cluster of its own, the others not.
        let dot = Identity.dotClusters([container.pid, unit.pid, outside.pid], identities: table.identities)
        #expect(dot.contains("label=\"docker \(id.prefix(12))\""))
        #expect(dot.contains("p\(container.pid);") && !dot.contains("p\(unit.pid);") && !dot.contains("p\(outside.pid);"))
    }

    static var cgroup1: String? { writable(cgroupMount("cgroup", option: "name=systemd")) }

    /// cgroup v1 (a named hierarchy, as systemd's hybrid layout has): a
    /// cgroupfs-driver docker path, docker/ID, is found in that line.
    @Test(.enabled(if: cgroup1 != nil)) func cgroupV1DockerPath() throws {
        let mount = try #require(Self.cgroup1)
        let top = "kpeer-test-\(getpid())"
        let id = Self.randomID()
        let tree = Subtree(mount)
        try tree.mkdir(top)
        try tree.mkdir(top + "/docker")
        try tree.mkdir(top + "/docker/" + id)
        let p = try Made(["hold"])
        try tree.move(p, into: top + "/docker/" + id)
        let line = try #require(Files.text("/proc/\(p.pid)/cgroup")?.split(separator: "\n").first { $0.contains(":name=systemd:") })
        #expect(line.hasSuffix("/\(top)/docker/\(id)"))
        let table = OwnerScan.scan(identities: true)
        #expect(table.identities[p.pid]?.cgroup?.container == ContainerRef(runtime: "docker", id: id))
    }

    /// The parse of /proc/PID/cgroup text in the forms runtimes write.
    @Test func cgroupPathsOfEachRuntime() {
        let id = String(repeating: "0123456789abcdef", count: 4)
        func parse(_ text: String) -> CgroupPlacement? { CgroupPlacement.parse(Array(text.utf8)) }
        func container(_ text: String) -> ContainerRef? { parse(text)?.container }

        // cgroup v2 under systemd.
        let docker = parse("0::/system.slice/docker-\(id).scope\n")
        #expect(docker?.unit == "docker-\(id).scope" && docker?.slice == "system.slice")
        #expect(docker?.container == ContainerRef(runtime: "docker", id: id))
        #expect(parse("0::/system.slice/docker.service\n")?.unit == "docker.service")
        #expect(parse("0::/system.slice/docker.service\n")?.container == nil)
        let session = parse("0::/user.slice/user-1000.slice/session-3.scope\n")
        #expect(session?.unit == "session-3.scope" && session?.slice == "user-1000.slice" && session?.userUnit == nil)
        let user = parse("0::/user.slice/user-1000.slice/user@1000.service/app.slice/dbus.service\n")
        #expect(user?.unit == "user@1000.service" && user?.userUnit == "dbus.service" && user?.slice == "app.slice")
        #expect(user?.units == ["user.slice", "user-1000.slice", "user@1000.service", "app.slice", "dbus.service"])
        #expect(container("0::/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-\(id).scope/container\n")
            == ContainerRef(runtime: "podman", id: id))
        #expect(container("0::/machine.slice/libpod-conmon-\(id).scope\n") == nil)  // podman's monitor
        #expect(container("0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1234_5678.slice/cri-containerd-\(id).scope\n")
            == ContainerRef(runtime: "containerd", id: id))
        #expect(container("0::/kubepods.slice/kubepods-pod12.slice/crio-\(id).scope\n") == ContainerRef(runtime: "cri-o", id: id))
        #expect(container("0::/kubepods.slice/kubepods-pod12.slice/crio-conmon-\(id).scope\n") == nil)
        #expect(container("0::/kubepods/burstable/pod0b7e-11/\(id)\n") == ContainerRef(runtime: "kubepods", id: id))
        #expect(container("0::/lxc.payload.web1\n") == ContainerRef(runtime: "lxc", id: "web1"))
        #expect(container("0::/lxc.monitor.web1\n") == nil)
        #expect(container("0::/machine.slice/machine-deb\\x2dtest.scope/payload\n") == ContainerRef(runtime: "systemd-nspawn", id: "deb-test"))
        // A scope that only looks like a runtime's (the id is not 64 hex digits).
        #expect(container("0::/system.slice/docker-compose.scope\n") == nil)

        // cgroup v1 only (cgroupfs driver): every controller names it.
        let v1 = parse("12:pids:/docker/\(id)\n11:memory:/docker/\(id)\n1:name=systemd:/docker/\(id)\n")
        #expect(v1?.hierarchy == "name=systemd" && v1?.container == ContainerRef(runtime: "docker", id: id))
        #expect(parse("4:memory:/lxc/web1\n1:name=systemd:/\n")?.container == ContainerRef(runtime: "lxc", id: "web1"))
        // Hybrid: the v2 line places it; a container named only in a v1 line is still found.
        let hybrid = parse("9:name=systemd:/system.slice/foo.service\n4:memory:/docker/\(id)\n0::/system.slice/foo.service\n")
        #expect(hybrid?.hierarchy == "unified" && hybrid?.unit == "foo.service")
        #expect(hybrid?.container == ContainerRef(runtime: "docker", id: id))
        // The root, and text that is not /proc/PID/cgroup.
        #expect(parse("0::/\n")?.pathText == "/" && parse("0::/\n")?.unit == nil)
        #expect(parse("") == nil && parse("garbage\n0:x\nx::/a\n") == nil)
        // A path outside kpeer's cgroup namespace keeps its /../.
        #expect(parse("0::/../../system.slice/docker-\(id).scope\n")?.pathText == "/../../system.slice/docker-\(id).scope")
    }

    /// Names from cgroup paths are whatever a user with a delegated subtree
    /// made: text escapes them, JSON keeps the bytes (path_hex when not UTF-8).
    @Test func hostileCgroupNames() throws {
        let path: [UInt8] = Array("/user.slice/user-1000.slice/user@1000.service/x\u{202E}\"\\.service/".utf8) + [0xFF, 0x41]
        var c = CgroupPlacement.describe(path)
        c.hierarchy = "unified"
        let id = ProcessIdentity(nspid: [7], pidNamespace: 1, cgroup: c)
        let cell = Identity.placement(id)
        #expect(!cell.unicodeScalars.contains("\u{202E}"))
        #expect(cell.contains("\\xe2\\x80\\xae"))
        let doc = try #require(try JSONSerialization.jsonObject(with: Data(Identity.cgroupJSON(c).utf8)) as? [String: Any])
        #expect(doc["path_hex"] as? String == path.map { String(format: "%02x", $0) }.joined())
        #expect(doc["user_unit"] as? String == "x\u{202E}\"\\.service")
        for line in Identity.lines(Owner(pid: 7, name: "n", fd: 3), identity: id, ownPidNamespace: 2) {
            #expect(!line.unicodeScalars.contains { $0 == "\u{202E}" || $0 == "\n" })
        }
    }

    /// A connector's struct pid, read as kpeer would from kernel memory
    /// (a synthetic core laid out with this machine's BTF): the number at
    /// kpeer's level when that level's namespace is kpeer's, nil for a
    /// process above or beside it. The truth: the upids the test wrote.
    @Test(.enabled(if: KernelObjectTests.haveBTF)) func connectorPidsAtKpeersLevel() throws {
        let types = try KernelTypes(btf: KernelObjectTests.btf)
        let core = SyntheticCore()
        let base = KernelObjectTests.base
        core.add(vaddr: base, size: 1 << 14)
        let level = UInt64(try types.member("pid", "level").offset)
        let numbers = try types.member("pid", "numbers")
        let nr = UInt64(try types.member("upid", "nr").offset), ns = UInt64(try types.member("upid", "ns").offset)
        // Namespaces: the initial one R, B below it, C below B, S beside B.
        let (r, b, c, s): (UInt64, UInt64, UInt64, UInt64) = (0xffff_8880_0aaa_0000, 0xffff_8880_0bbb_0000,
                                                              0xffff_8880_0ccc_0000, 0xffff_8880_0ddd_0000)
        func pid(_ k: UInt64, _ chain: [(Int32, UInt64)]) -> UInt64 {
            let at = base + k * 0x400
            core.poke(at + level, UInt64(chain.count - 1))
            for (i, e) in chain.enumerated() {
                let u = at + UInt64(numbers.offset + i * numbers.elementSize)
                core.poke(u + nr, UInt64(UInt32(bitPattern: e.0)))
                core.poke(u + ns, e.1)
            }
            return at
        }
        let kpeerInB = pid(0, [(4000, r), (7, b)])
        let leafInC = pid(1, [(4100, r), (60, b), (1, c)])
        let sibling = pid(2, [(4200, r), (9, s)])
        let host = pid(3, [(300, r)])
        let kpeerOnHost = pid(4, [(5000, r)])
        let reader = ObjectReader(memory: try KernelMemory(path: try core.write()), types: types)

        let inB = try PidAnchor.read(pidAt: kpeerInB, reader: reader)
        #expect(inB == PidAnchor(level: 1, namespace: b))
        #expect(try inB.translate(pidAt: kpeerInB, reader: reader) == 7)
        #expect(try inB.translate(pidAt: leafInC, reader: reader) == 60)
        #expect(try inB.translate(pidAt: sibling, reader: reader) == nil)
        #expect(try inB.translate(pidAt: host, reader: reader) == nil)
        let onHost = try PidAnchor.read(pidAt: kpeerOnHost, reader: reader)
        #expect(onHost == PidAnchor(level: 0, namespace: r))
        #expect(try [leafInC, sibling, host].map { try onHost.translate(pidAt: $0, reader: reader) } == [4100, 4200, 300])
    }

    // MARK: holders that are not the process's descriptors

    static var ioUring: Bool { Files.text("/proc/sys/kernel/io_uring_disabled").map { $0 != "2" } ?? true }

    /// A socket registered with an io_uring ring, its descriptor closed: the
    /// ring holds it. Where the kernel names it in the ring's fdinfo (the
    /// fixture reads that itself), kpeer names the process as its holder
    /// (`via io_uring`, the ring's fd and slot 0) and its peer's answer is
    /// that process; where it does not (Linux before 6.14), kpeer counts it
    /// as an unnamed ring socket of that process.
    @Test(.enabled(if: ioUring)) func aSocketHeldOnlyByAnIoUringRing() throws {
        let made = try Made(["uring"])
        let registered = made.number("registered"), other = made.number("other")
        let ring = Int32(made.number("ring"))
        let named = made.number("named") == 1
        let table = OwnerScan.scan()
        #expect(table.owners(of: other).map(\.pid) == [made.pid])
        #expect(table.owners(of: other).first?.via == .fd)
        if named {
            #expect(table.owners(of: registered) == [Owner(pid: made.pid, name: "containers", fd: ring, via: .ioUring(slot: 0))])
            #expect(table.unnamedRingSockets[made.pid] == nil)
            // The peer of the other end: the process, through its ring.
            var o = ResolverOptions()
            o.method = .netlink
            o.offsetCache = nil
            let map = try Resolver.resolve(o).map
            #expect(try map.peerOwners(of: other).map(\.pid) == [made.pid])
            #expect(Identity.viaJSON(try map.peerOwners(of: other)[0].via) == "\"via\":\"io_uring\",\"slot\":0")
        } else {
            #expect(table.owners(of: registered).isEmpty)
            #expect(table.unnamedRingSockets[made.pid] == 1)
            #expect(table.ringGaps?.contains("1 in pid \(made.pid)") == true)
        }
        // Without ring reading, nothing of it.
        let plain = OwnerScan.scan(rings: false)
        #expect(plain.owners(of: registered).isEmpty && plain.unnamedRingSockets.isEmpty)
    }

    /// The fdinfo of a ring as each kernel prints it.
    @Test func ringFdinfoOfEachKernel() {
        // 6.14 and later: paths, empty slots left out.
        let new = RingFiles.parse(Array("SqThread:\t-1\nUserFiles:\t3\n    0: socket:[2381197]\n    2: /tmp/socket:[5]\nUserBufs:\t0\n    0: socket:[9]\n".utf8))
        #expect(new.registered == 3 && new.sockets.map(\.slot) == [0] && new.sockets.map(\.inode) == [2381197] && new.unnamedUnix == 0)
        // Before: dentry names, <none> for empty slots.
        let old = RingFiles.parse(Array("UserFiles:\t4\n    0: UNIX-STREAM\n    1: <none>\n    2: UNIX\n    3: TCP\nUserBufs:\t0\n".utf8))
        #expect(old.registered == 4 && old.sockets.isEmpty && old.unnamedUnix == 2)
        #expect(RingFiles.parse(Array("UserFiles:\t0\nUserBufs:\t0\n".utf8)) == RingFiles())
    }

    /// A thread that unshared its descriptor table holds sockets no other
    /// table lists: the holder is named with the thread (`via thread TID`).
    /// Where the main thread exited instead (pthread_exit), the table the
    /// other threads share is the process's: held by descriptor.
    @Test(arguments: ["thread", "leaderexit"]) func aThreadsOwnTable(_ mode: String) throws {
        let made = try Made([mode])
        let tid = Int32(made.number("tid"))
        #expect(tid != made.pid)
        for k in 0..<2 {
            let inode = made.number("pair", k)
            let owners = OwnerScan.scan().owners(of: inode)
            #expect(owners.map(\.pid) == [made.pid], "\(mode) \(inode)")
            #expect(owners.first?.via == (mode == "thread" ? .thread(tid) : .fd), "\(mode)")
            // The fd is the one that thread's table lists for that socket.
            if let o = owners.first {
                let link = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(made.pid)/task/\(tid)/fd/\(o.fd)")
                #expect(link == "socket:[\(inode)]")
            }
        }
        #expect(Identity.viaText(Owner(pid: made.pid, name: "c", fd: 4, via: .thread(tid))) == "thread \(tid)")
    }

    // MARK: another namespace's abstract names

    static var hasIp: Bool { root && Support.which("ip") != nil }

    /// `--netns FILE @NAME`: a namespace made with `ip netns add` that no
    /// process is in; the fixture enters it, binds @NAME and connects a
    /// client there, and comes back, binding the same name at home too.
    /// Asked there, the answer is the namespace's listener and client; asked
    /// at home, the home ones.
    @Test(.enabled(if: hasIp)) func anAbstractNameInANamespaceFile() throws {
        let ip = Support.which("ip")!
        let nsName = "kpeer-ctr-\(getpid())"
        guard try Support.run(ip, ["netns", "add", nsName]).status == 0 else { throw Support.Failure("ip netns add failed") }
        defer { _ = try? Support.run(ip, ["netns", "delete", nsName]) }
        let file = "/run/netns/" + nsName
        let name = "kpeer-ctr-\(getpid())-\(Self.randomID().prefix(8))"
        let made = try Made(["netns", file, name])

        let ns = try NetNamespaces.named(file)
        #expect(ns.inode == Files.identity(file)?.inode)
        #expect(ns.inode != NetNamespaces.current())
        var o = ResolverOptions()
        o.method = .netlink
        o.offsetCache = nil
        let (r, answer) = try NetnsQuery.resolve(Array(name.utf8), in: ns, options: o)
        #expect(answer.listener.inode == made.number("listener"))
        #expect(answer.clients.map(\.inode) == [made.number("client")])
        #expect(answer.clients.first?.acceptedAs == made.number("accepted"))
        #expect(answer.clients.first?.owners.map(\.pid) == [made.pid])
        #expect(r.netns(of: answer.listener.entry) == ns.inode)

        // At home, the same name is the other listener.
        let home = try PathQuery.answer(.abstract(Array(name.utf8)), in: try Resolver.resolve(o))
        #expect(home.listener.inode == made.number("home_listener"))
        #expect(home.clients.map(\.inode) == [made.number("home_client")])

        // A name bound only at home is not in that namespace.
        let only = "kpeer-ctr-home-\(getpid())-\(Self.randomID().prefix(8))"
        let homeOnly = try Made(["abstract", only])
        defer { homeOnly.finish() }
        let e = errorOf { _ = try NetnsQuery.answer(Array(only.utf8), in: ns.inode, from: r) }
        #expect(e?.kind == .notFound)
        #expect(e?.problem.contains(NetNamespace.label(ns.inode)) == true)
    }

    /// `--netns PID @NAME`: the namespace of a process in `unshare -n`.
    @Test(.enabled(if: canUnshare)) func anAbstractNameInAProcesssNamespace() throws {
        let name = "kpeer-ctr-pid-\(getpid())-\(Self.randomID().prefix(8))"
        let made = try Made(["abstract", name], launcher: [Support.which("unshare")!, "-n"])
        let ns = try NetNamespaces.named(String(made.pid))
        #expect(ns.inode == Files.identity("/proc/\(made.pid)/ns/net")?.inode)
        var o = ResolverOptions()
        o.method = .netlink
        o.offsetCache = nil
        let (_, answer) = try NetnsQuery.resolve(Array(name.utf8), in: ns, options: o)
        #expect(answer.listener.inode == made.number("listener"))
        #expect(answer.clients.map(\.inode) == [made.number("client")])
        // Not in kpeer's own namespace.
        #expect(errorOf { _ = try PathQuery.answer(.abstract(Array(name.utf8)), in: try Resolver.resolve(o)) }?.kind == .notFound)
    }

    /// Bad --netns arguments: one clear error each.
    @Test func badNetnsArguments() {
        #expect(errorOf { _ = try NetNamespaces.named("0") }?.kind == .usage)
        #expect(errorOf { _ = try NetNamespaces.named("") }?.kind == .usage)
        #expect(errorOf { _ = try NetNamespaces.named("/nonexistent/netns") }?.kind == .notFound)
        #expect(errorOf { _ = try NetNamespaces.named("2147483647") }?.kind == .notFound)
        let notNs = errorOf { _ = try NetNamespaces.named("/proc/self/ns/pid") }
        #expect(notNs?.kind == .badFile)
        #expect(errorOf { _ = try NetNamespaces.named("/etc/hostname") }?.kind == .badFile)
        #expect(errorOf { _ = try NetNamespaces.named("/x\n\u{202E}y") }?.problem.contains("\n") == false)
    }
}
