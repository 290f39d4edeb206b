import Foundation
import Glibc
import Testing
import KPeerSystem
@testable import SocketInventory

/// The container options and outputs at the command line (Docs/CONTRACT.md,
/// "Containers"): --netns, --unit, --container, the owners' "via" and
/// "identity" in --json, the -e identity columns, DOT clusters and -v lines.
/// The situations are made by ContainerTests' fixture (containers.c) in a
/// network namespace, a pid namespace or a cgroup made here; every answer
/// is held against what the fixture printed or what /proc says.
@Suite(.serialized, .tags(.binary, .fixture, .root), .layered) struct ContainerCLITests {
    typealias Made = ContainerTests.Made
    static var kpeer: String { Support.kpeerBinary }

    static func run(_ args: [String]) throws -> Support.Result { try Support.run(kpeer, args) }

    static func json(_ text: String) throws -> [String: Any] { try CLIContractTests.json(text) }

    /// The owners of socket `inode` in a --json listing.
    static func owners(_ doc: [String: Any], _ inode: UInt64) -> [[String: Any]]? {
        CLIContractTests.socket(doc, inode)?["owners"] as? [[String: Any]]
    }

    static func int(_ v: Any?) -> Int64? { (v as? NSNumber)?.int64Value }

    /// The -e table row of socket `inode`: its NS-PID, Cgroup and Held
    /// cells (after the six fact cells).
    static func identityCells(_ table: String, _ inode: UInt64) -> [String]? {
        TableRow.rows(table)[inode].map { Array($0.rest.dropFirst(6).prefix(3)) }
    }

    // MARK: --netns

    /// Bad uses of the new options: one line, the documented status.
    @Test func badContainerOptions() throws {
        let cases: [([String], Int32, [String])] = [
            (["--netns", "0", "@x"], 64, ["--netns"]),
            (["--netns", "/etc/hostname", "@x"], 65, ["/etc/hostname"]),
            (["--netns", "/nonexistent/kpeer-netns", "@x"], 2, ["/nonexistent/kpeer-netns"]),
            (["--netns", "1", "--all"], 64, ["--netns"]),
            (["--netns", "1", "/tmp"], 64, ["--netns"]),
            (["--netns", "1", "4242"], 64, ["--netns"]),
            (["--unit", "", "--all"], 64, ["--unit"]),
            (["--container", "", "--all"], 64, ["--container"]),
            (["--unit", "docker", "4242"], 64, ["INODE"]),
            (["--container", "ab", "--find-offset"], 64, ["--find-offset"]),
        ]
        for (args, status, mentions) in cases {
            BadInputTests.expectOneLine(try Self.run(args), status: status, mentions: mentions, "\(args)")
        }
    }

    /// `kpeer --netns /run/netns/NS @NAME`: a namespace made with `ip netns
    /// add`, no process in it; the fixture binds @NAME there and at home.
    /// The answer is the client made there; plain `kpeer @NAME` answers
    /// the home one; a name bound only at home is not found there (2).
    @Test(.enabled(if: ContainerTests.hasIp)) func netnsFileOnTheCommandLine() throws {
        let ip = Support.which("ip")!
        let nsName = "kpeer-cli-\(getpid())"
        guard try Support.run(ip, ["netns", "add", nsName]).status == 0 else { throw Support.Failure("ip netns add failed") }
        defer { _ = try? Support.run(ip, ["netns", "delete", nsName]) }
        let file = "/run/netns/" + nsName
        let name = "kpeer-cli-\(getpid())-\(ContainerTests.randomID().prefix(8))"
        let made = try Made(["netns", file, name])
        defer { made.finish() }

        let there = try Self.run(["--method", "netlink", "--netns", file, "@" + name])
        #expect(there.status == 0, "\(there.stderr)")
        #expect(there.stdout == "\(made.pid) containers \(made.number("client"))\n")
        let home = try Self.run(["--method", "netlink", "@" + name])
        #expect(home.stdout == "\(made.pid) containers \(made.number("home_client"))\n", "\(home.stderr)")

        // --json: the listener and its namespace, the client accepted there.
        let json = try Self.run(["--method", "netlink", "--json", "--netns", file, "@" + name])
        let doc = try Self.json(json.stdout)
        let listener = try #require(doc["listener"] as? [String: Any])
        #expect(Self.int(listener["inode"]) == Int64(made.number("listener")))
        #expect(Self.int(listener["netns"]) == Int64(Files.identity(file)?.inode ?? 0))
        let clients = try #require(doc["clients"] as? [[String: Any]])
        #expect(clients.map { Self.int($0["inode"]) } == [Int64(made.number("client"))])
        #expect(Self.int((clients.first?["accepted_as"] as? [String: Any])?["inode"]) == Int64(made.number("accepted")))

        // Bound only at home: not in that namespace, which the error names.
        let only = "kpeer-cli-home-\(getpid())-\(ContainerTests.randomID().prefix(8))"
        let homeOnly = try Made(["abstract", only])
        defer { homeOnly.finish() }
        let ns = try #require(Files.identity(file)?.inode)
        BadInputTests.expectOneLine(try Self.run(["--method", "netlink", "--netns", file, "@" + only]), status: 2,
                                    mentions: ["net:[\(ns)]"], "name only at home")
        // With -v: the method line, then the error.
        let v = try Self.run(["-v", "--method", "netlink", "--netns", file, "@" + only])
        let lines = v.stderr.split(separator: "\n")
        #expect(v.status == 2 && lines.count == 2 && lines[0].hasPrefix("kpeer: method netlink") && lines[1].contains("net:[\(ns)]"), "\(v.stderr)")
    }

    /// `kpeer --netns PID @NAME`: the namespace of a process in `unshare -n`.
    @Test(.enabled(if: ContainerTests.canUnshare)) func netnsPidOnTheCommandLine() throws {
        let name = "kpeer-cli-pid-\(getpid())-\(ContainerTests.randomID().prefix(8))"
        let made = try Made(["abstract", name], launcher: [Support.which("unshare")!, "-n"])
        defer { made.finish() }
        // unshare execs the fixture: its pid is the fixture's.
        let fixture = Int32(made.number("pid"))
        let r = try Self.run(["--method", "netlink", "--netns", String(made.pid), "@" + name])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout == "\(fixture) containers \(made.number("client"))\n")
        // Not bound in kpeer's namespace.
        #expect(try Self.run(["--method", "netlink", "@" + name]).status == 2)
    }

    // MARK: --json owners

    /// Every owner object says how the socket is held and who the process
    /// is: this test's own socketpair (via fd, its pid namespace, its
    /// cgroup as /proc/self/cgroup says), and a thread's own table (via
    /// thread, with the thread's id).
    @Test func jsonOwnersCarryViaAndIdentity() throws {
        let s = OwnSockets()
        let (a, _) = try s.pair()
        let threaded = try Made(["thread"])
        defer { threaded.finish() }
        let doc = try Self.json(try Self.run(["--all", "--json"]).stdout)

        let mine = try #require(Self.owners(doc, OwnSockets.inode(a))?.first { Self.int($0["pid"]) == Int64(getpid()) })
        #expect(mine["via"] as? String == "fd")
        let id = try #require(mine["identity"] as? [String: Any])
        #expect((id["nspid"] as? [Int]) == [Int(getpid())])
        #expect(Self.int(id["pid_in_namespace"]) == Int64(getpid()))
        #expect(Self.int(id["pid_namespace"]) == Int64(Files.identity("/proc/self/ns/pid")?.inode ?? 0))
        // The cgroup is one of the lines the kernel gives (N:HIERARCHY:PATH,
        // 0::PATH for the unified hierarchy).
        let cg = try #require(id["cgroup"] as? [String: Any])
        let hierarchy = try #require(cg["hierarchy"] as? String), path = try #require(cg["path"] as? String)
        let lines = try #require(Files.text("/proc/self/cgroup")).split(separator: "\n").map { $0.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false) }
        #expect(lines.contains { $0.count == 3 && $0[2] == Substring(path) && ($0[1] == Substring(hierarchy) || ($0[1].isEmpty && hierarchy == "unified")) },
                "\(hierarchy) \(path)")

        let tid = Int(threaded.number("tid"))
        let held = try #require(Self.owners(doc, threaded.number("pair"))?.first)
        #expect(Self.int(held["pid"]) == Int64(threaded.pid))
        #expect(held["via"] as? String == "thread" && Self.int(held["tid"]) == Int64(tid))
        // The fd is the one that thread's table has for the socket.
        let fd = try #require(Self.int(held["fd"]))
        let link = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(threaded.pid)/task/\(tid)/fd/\(fd)")
        #expect(link == "socket:[\(threaded.number("pair"))]")
    }

    // MARK: --unit, --container, -e, dot

    /// A docker-like scope and a unit made in cgroup v2, a fixture in each
    /// and one outside: --container and --unit keep exactly the sockets of
    /// the processes moved in (listings and the clients of @NAME), -e names
    /// the container and the unit, dot clusters the container's process.
    @Test(.enabled(if: ContainerTests.cgroup2 != nil)) func unitAndContainerFilters() throws {
        let mount = try #require(ContainerTests.cgroup2)
        let slice = "kpeer-cli-\(getpid()).slice"
        let id = ContainerTests.randomID()
        let scope = "docker-\(id).scope", service = "kpeer-cli-demo-\(getpid()).service"
        let tree = ContainerTests.Subtree(mount)
        try tree.mkdir(slice)
        try tree.mkdir(slice + "/" + scope)
        try tree.mkdir(slice + "/" + service)
        let name = "kpeer-cli-ctr-\(getpid())-\(ContainerTests.randomID().prefix(8))"
        let container = try Made(["abstract", name]), unit = try Made(["hold"]), outside = try Made(["hold"])
        try tree.move(container, into: slice + "/" + scope)
        try tree.move(unit, into: slice + "/" + service)
        defer { outside.finish() }
        // Every socket each holds, as its /proc/PID/fd says (the fixture's
        // and any it inherited).
        func sockets(_ p: Made) throws -> Set<UInt64> {
            let dir = "/proc/\(p.pid)/fd"
            return Set(try FileManager.default.contentsOfDirectory(atPath: dir).compactMap { fd in
                (try? FileManager.default.destinationOfSymbolicLink(atPath: dir + "/" + fd)).flatMap { link in
                    link.hasPrefix("socket:[") ? UInt64(link.dropFirst(8).dropLast()) : nil
                }
            })
        }
        let cInodes = try sockets(container), uInodes = try sockets(unit)
        #expect(cInodes.isSuperset(of: ["listener", "client", "accepted"].map { container.number($0) }))
        #expect(uInodes.isSuperset(of: [unit.number("pair", 0), unit.number("pair", 1)]))

        /// The inodes a --json listing with these filters keeps, and the
        /// pids holding them.
        func kept(_ filter: [String]) throws -> (inodes: Set<UInt64>, pids: Set<Int64>) {
            let r = try Self.run(["--all", "--json"] + filter)
            #expect(r.status == 0, "\(filter): \(r.stderr)")
            let sockets = try #require(try Self.json(r.stdout)["sockets"] as? [[String: Any]])
            let inodes = Set(sockets.compactMap { Self.int($0["inode"]).map(UInt64.init) })
            let pids = Set(sockets.flatMap { ($0["owners"] as? [[String: Any]] ?? []).compactMap { Self.int($0["pid"]) } })
            return (inodes, pids)
        }
        let byContainer = try kept(["--container", String(id.prefix(7))])
        #expect(byContainer.inodes == cInodes && byContainer.pids == [Int64(container.pid)])
        let byUnit = try kept(["--unit", String(service.dropLast(8))])  // NAME is NAME.service
        #expect(byUnit.inodes == uInodes && byUnit.pids == [Int64(unit.pid)])
        let bySlice = try kept(["--unit", slice])
        #expect(bySlice.inodes == cInodes.union(uInodes))
        #expect(try kept(["--container", String(id.prefix(7)), "--unit", service]).inodes.isEmpty)
        // A filter alone asks for the table, which has the same rows.
        let table = try Self.run(["--container", String(id.prefix(7))])
        let lines = table.stdout.split(separator: "\n").dropFirst()
        let rows = lines.compactMap(TableRow.init)
        #expect(rows.count == lines.count && lines.count == cInodes.count && Set(rows.map(\.inode)) == cInodes, "\(table.stdout)")

        // The JSON identity of the container's process.
        let doc = try Self.json(try Self.run(["--all", "--json", "--container", String(id.prefix(12))]).stdout)
        let cg = try #require(((Self.owners(doc, container.number("client"))?.first?["identity"] as? [String: Any])?["cgroup"]) as? [String: Any])
        #expect((cg["container"] as? [String: String]) == ["runtime": "docker", "id": id])
        #expect(cg["unit"] as? String == scope && cg["slice"] as? String == slice)

        // Clients of @NAME: held in the container, not in the unit.
        let clients = try Self.run(["--container", String(id.prefix(7)), "@" + name])
        #expect(clients.stdout == "\(container.pid) containers \(container.number("client"))\n", "\(clients.stderr)")
        BadInputTests.expectOneLine(try Self.run(["--unit", service, "@" + name]), status: 1, mentions: ["has no clients"], "--unit @NAME")

        // -e: the Cgroup and Held columns of each.
        let extended = try Self.run(["--all", "-e"]).stdout
        let header = try #require(extended.split(separator: "\n").first)
        #expect(header.contains("NS-PID") && header.contains("Cgroup") && header.hasSuffix("Held         Path"))
        let cRow = try #require(Self.identityCells(extended, container.number("client")))
        #expect(cRow.dropFirst() == ["docker:\(id.prefix(12))", "fd"], "\(cRow)")
        let uRow = try #require(Self.identityCells(extended, unit.number("pair", 0)))
        #expect(uRow.dropFirst().first == service, "\(uRow)")

        // dot: the container's process in a cluster, the others not.
        let dot = try Self.run(["--all", "--format", "dot"]).stdout
        let cluster = try #require(dot.components(separatedBy: "subgraph cluster_").dropFirst()
            .first { $0.contains("label=\"docker \(id.prefix(12))\"") })
        let body = cluster.prefix(while: { $0 != "}" })
        #expect(body.contains("p\(container.pid);") && !body.contains("p\(unit.pid);") && !body.contains("p\(outside.pid);"))
    }

    // MARK: pid namespaces: -e and -v

    /// A process in `unshare -p -f --mount-proc`: -e shows its own pid in
    /// its namespace, -v says so about the peer's holder.
    @Test(.enabled(if: ContainerTests.canUnshare)) func aPidNamespaceInExtendedAndVerbose() throws {
        let made = try Made(["hold"], launcher: [Support.which("unshare")!, "-p", "-f", "--mount-proc"])
        defer { made.finish() }
        let hostPid = try ContainerTests.child(of: made.pid)
        let ownPid = made.number("pid"), ns = made.number("pidns")
        let a = made.number("pair", 0), b = made.number("pair", 1)

        let row = try #require(Self.identityCells(try Self.run(["--all", "-e"]).stdout, a))
        #expect(row.first == "\(ownPid)@pid:[\(ns)]", "\(row)")

        let v = try Self.run(["-v", String(a)])
        #expect(v.status == 0, "\(v.stderr)")
        #expect(v.stdout == "\(hostPid) containers\n")
        #expect(v.stderr.contains("kpeer: process \(hostPid) (containers) is pid \(ownPid) in pid:[\(ns)]"), "\(v.stderr)")
        #expect(v.stderr.split(separator: "\n").allSatisfy { $0.hasPrefix("kpeer: ") })
        _ = b
    }

    /// -v names a holder that is a thread's own table.
    @Test func verboseSaysAThreadHoldsIt() throws {
        let made = try Made(["thread"])
        defer { made.finish() }
        let tid = made.number("tid")
        let v = try Self.run(["-v", String(made.number("pair", 0))])
        #expect(v.stdout == "\(made.pid) containers\n", "\(v.stderr)")
        #expect(v.stderr.contains("kpeer: process \(made.pid) (containers) holds it through thread \(tid) fd "), "\(v.stderr)")
    }
}
