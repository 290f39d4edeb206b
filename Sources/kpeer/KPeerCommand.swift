import ArgumentParser
import Glibc
import KPeerSystem
import PeerResolution
import Rendering
import SocketInventory

// MARK: - First of all: no program named by the environment

// The Swift runtime reads SWIFT_BACKTRACE (and SWIFT_ROOT, which places the
// backtracer) in a static initializer, before main, and on SIGQUIT, SIGSEGV
// and the other crash signals runs the program they name: as root, here.
//
// - Startup.early, an .init_array entry of priority 101: in the static
//   binary it runs before the runtime's initializers, so the runtime never
//   sees a SWIFT_* variable of the caller's. Any SWIFT_* but
//   SWIFT_BACKTRACE=enable=no: execve /proc/self/exe, same argv, with an
//   environment without them plus SWIFT_BACKTRACE=enable=no (no backtracer
//   at all, not even the toolchain's, which would be handed
//   LD_LIBRARY_PATH). If that exec fails: they are removed in place and
//   enable=no takes the first freed slot. environ itself is never
//   reallocated (no setenv): the runtime finds argv by walking back from
//   it on the initial stack, later in the same initializer pass.
// - Startup.inMain, the first thing main does: the same check once more (in
//   a dynamically linked build libswiftCore's initializers run before the
//   entry above, which then re-execs), and a handler found on one of the
//   runtime's crash signals (only the runtime's: handlers never survive an
//   exec) goes back to the default, so SIGQUIT or a crash ends kpeer and
//   runs nothing.
//
// early may run before the runtime is initialised: C calls, raw pointers
// and static strings only; nothing that allocates or needs type metadata.
enum Startup {
    typealias CStrings = UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>

    static func cString(_ s: StaticString) -> UnsafePointer<CChar> {
        UnsafeRawPointer(s.utf8Start).assumingMemoryBound(to: CChar.self)
    }

    /// The one SWIFT_ setting kpeer runs with.
    static var disabled: UnsafePointer<CChar> { cString("SWIFT_BACKTRACE=enable=no") }

    static func isSwift(_ p: UnsafePointer<CChar>) -> Bool { strncmp(p, cString("SWIFT_"), 6) == 0 }

    static func early(_ argv: CStrings?) {
        let env = environ  // at exec, never NULL: the kernel passes an array, if empty
        var count = 0
        var foreign = false
        while let p = env[count] {
            if isSwift(p) && strcmp(p, disabled) != 0 { foreign = true }
            count += 1
        }
        guard foreign else { return }
        if let argv { reexec(argv, env, count) }
        // The exec failed: drop them here, in place.
        var kept = 0
        var i = 0
        while i < count {
            if let p = env[i], !isSwift(p) {
                env[kept] = p
                kept += 1
            }
            i += 1
        }
        env[kept] = UnsafeMutablePointer(mutating: disabled)  // at least one slot was freed
        env[kept + 1] = nil
    }

    static func inMain() {
        early(CommandLine.unsafeArgv)
        defaultIfHandled(SIGQUIT)
        defaultIfHandled(SIGABRT)
        defaultIfHandled(SIGBUS)
        defaultIfHandled(SIGFPE)
        defaultIfHandled(SIGILL)
        defaultIfHandled(SIGSEGV)
        defaultIfHandled(SIGTRAP)
    }

    /// execve(/proc/self/exe) with the SWIFT_* variables left out; returns
    /// only if it failed.
    static func reexec(_ argv: CStrings, _ env: CStrings, _ count: Int) {
        guard let raw = malloc((count + 2) * 8) else { return }
        let clean = raw.assumingMemoryBound(to: UnsafeMutablePointer<CChar>?.self)
        var n = 0
        var i = 0
        while i < count {
            if let p = env[i], !isSwift(p) {
                clean[n] = p
                n += 1
            }
            i += 1
        }
        clean[n] = UnsafeMutablePointer(mutating: disabled)
        clean[n + 1] = nil
        execve(cString("/proc/self/exe"), argv, clean)
        free(raw)
    }

    /// SIG_DFL for `sig` if a handler (not SIG_DFL, not SIG_IGN) is on it.
    static func defaultIfHandled(_ sig: Int32) {
        var old = sigaction()
        guard sigaction(sig, nil, &old) == 0 else { return }
        if unsafeBitCast(old.__sigaction_handler, to: UInt.self) > 1 {
            var dfl = sigaction()  // zeroed: SIG_DFL, no flags, empty mask
            sigaction(sig, &dfl, nil)
        }
    }
}

/// The .init_array entry: glibc calls it with (argc, argv, envp).
@used @section(".init_array.00101")
let kpeerStartup: @convention(c) (Int32, Startup.CStrings?, Startup.CStrings?) -> Void = { _, argv, _ in
    Startup.early(argv)
}

extension ResolverOptions.MethodChoice: ExpressibleByArgument {}

/// How a listing is printed.
enum OutputFormat: String, ExpressibleByArgument, CaseIterable {
    case table, dump, json, dot
}

/// `--type`: the socket types a listing keeps.
enum TypeChoice: String, ExpressibleByArgument, CaseIterable {
    case stream, dgram, seqpacket

    var socketType: SocketType {
        switch self {
        case .stream: .stream
        case .dgram: .dgram
        case .seqpacket: .seqpacket
        }
    }
}

/// The command line: parse, call the library, print. Nothing else.
struct KPeerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kpeer",
        abstract: "Which process is at the other end of this unix socket?",
        discussion: """
            kpeer reads struct unix_sock.peer out of live kernel memory (/proc/kcore), \
            with the offset from BTF, DWARF or calibration, and falls back to the \
            kernel's sock_diag netlink interface where /proc/kcore is missing.

            The original perl + gdb tool's commands and their kpeer equivalents:
              socket_peer INODE        kpeer INODE
              netstat_unix             kpeer --all
              netstat_unix --dump      kpeer --dump
              find_gdb_offset INODE    kpeer --find-offset [INODE]

            Beyond those commands:
              kpeer PATH | @NAME       every client of the socket listening there:
                                       PID NAME INODE, "pending" when not accepted yet
              kpeer --all --format dot a Graphviz graph of processes and connections
              --pid, --type, --listening  filter --all, --dump, --json and dot
            --all, --dump and --json cover every network namespace kpeer can enter \
            (as root); --all marks sockets of another namespace with net:[INODE].

            Exit statuses: 0 answered, 1 no peer (or no client), 2 no such socket, \
            3 peer held by no process (e.g. a client not yet accepted), 64 bad usage, \
            65 wrong file given, 69 method unavailable here, 70 refused (offset failed \
            the self-check), 74 I/O error, 77 permission (run as root).
            """,
        version: "kpeer 0.1.0"
    )

    @Argument(help: ArgumentHelp(
        "A unix socket's inode (as netstat, ss or lsof print it), a socket file's path (with a /), or @NAME for an abstract socket.",
        valueName: "inode|path|@name"))
    var inode: String?

    @Flag(help: "Every unix socket, as netstat -na --unix -p, plus the peer's processes.")
    var all = false

    @Flag(help: "name:pid:socket:peer_socket:peer_pid:peer_name, one line per pair of processes.")
    var dump = false

    @Flag(help: "One JSON document (with INODE, PATH or --all).")
    var json = false

    @Option(help: ArgumentHelp("How to print a listing: table (--all), dump (--dump), json (--json) or dot (Graphviz).",
                               valueName: "format"))
    var format: OutputFormat?

    @Option(help: ArgumentHelp("List only the sockets this process holds.", valueName: "pid"))
    var pid: Int32?

    @Option(help: ArgumentHelp("List only sockets of this type: stream, dgram or seqpacket.", valueName: "type"))
    var type: TypeChoice?

    @Flag(help: "List only listening sockets.")
    var listening = false

    @Flag(name: .customLong("find-offset"), help: "Show offsetof(struct unix_sock, peer) from every source; with INODE, calibrate on that connected socket.")
    var findOffset = false

    @Option(help: "How to find peers: auto (kcore, else netlink), kcore or netlink.")
    var method: ResolverOptions.MethodChoice = .auto

    @Option(help: ArgumentHelp("Read kernel memory from this ELF core file.", valueName: "path"))
    var kcore: String?

    @Option(help: ArgumentHelp("Use this offset of unix_sock.peer (as the original find_gdb_offset printed it).", valueName: "bytes"))
    var offset: Int?

    @Option(help: ArgumentHelp("Read the offset from this BTF file.", valueName: "path"))
    var btf: String?

    @Option(help: ArgumentHelp("Read the offset from this vmlinux's DWARF (e.g. /usr/lib/debug/vmlinux).", valueName: "path"))
    var dwarf: String?

    @Flag(help: "Use a --dwarf vmlinux even when its build-id is not the running kernel's.")
    var force = false

    @Flag(name: .shortAndLong, help: "Say on stderr which method and offset were used; with INODE or PATH, what kernel memory tells about the socket (kcore).")
    var verbose = false

    @Flag(name: [.customShort("e"), .customLong("extended")],
          help: "With --all: add what kernel memory tells (queues, backlog, connector, bound file; kcore).")
    var extended = false

    var options: ResolverOptions {
        var o = ResolverOptions()
        o.method = method
        if let kcore { o.kcorePath = kcore }
        o.offset = offset
        o.btfPath = btf
        o.dwarfPath = dwarf
        o.force = force
        // What only kernel memory tells, where the output shows it.
        // (With a target always: its answer may rest on one, a peer in flight.)
        o.kernelFacts = json || format == .json || extended || inode != nil
        o.connectors = json || format == .json || extended || verbose
        return o
    }

    var filter: SocketFilter {
        SocketFilter(pid: pid, type: type?.socketType, listening: listening)
    }

    /// The listing format the flags ask for, or nil when none is asked.
    func listingFormat() throws(KPeerError) -> OutputFormat? {
        var chosen = format
        for (flag, f) in [(json, OutputFormat.json), (dump, .dump)] where flag {
            if let c = chosen, c != f {
                throw KPeerError(.usage, "--\(f.rawValue) and --format \(c.rawValue) disagree", fix: "give one output format")
            }
            chosen = f
        }
        return chosen
    }

    func execute() throws(KPeerError) {
        let target = try inode.map { (arg) throws(KPeerError) in try QueryTarget.parse(arg) }
        let modes = [all, dump, findOffset].filter { $0 }.count
        if modes > 1 || (target != nil && (all || dump)) {
            throw KPeerError(.usage, "give one of INODE, PATH, --all, --dump or --find-offset", fix: "see kpeer --help")
        }
        var fmt = try listingFormat()
        if let pid, pid <= 0 {
            throw KPeerError(.usage, "--pid \(pid) is not a process id", fix: "give a pid as ps shows it")
        }
        if !filter.isEmpty && (target != nil || findOffset) {
            throw KPeerError(.usage, "--pid, --type and --listening filter listings, not INODE, PATH or --find-offset",
                             fix: "use them with --all, --dump, --json or --format dot")
        }
        if extended && (target != nil || (fmt != nil && fmt != .table)) {
            throw KPeerError(.usage, "-e adds columns to the --all table", fix: "use it with --all (--json always has them; -v with INODE or PATH)")
        }
        if target != nil, let f = fmt, f != .json {
            throw KPeerError(.usage, "--format \(f.rawValue) lists every socket; it takes no INODE or PATH",
                             fix: "drop the INODE or PATH, or use --json")
        }
        if findOffset && fmt != nil {
            throw KPeerError(.usage, "--find-offset has one output form", fix: "drop --format, --json or --dump")
        }
        if modes == 0 && target == nil && fmt == nil {
            // Filters alone ask for the table of what they keep.
            guard !filter.isEmpty else {
                throw KPeerError(.usage, "nothing to do", fix: "give an INODE, a PATH, --all or --dump (see kpeer --help)")
            }
            fmt = .table
        }
        // Offsets and core files only mean something to the kcore method.
        if method == .netlink, offset != nil || btf != nil || dwarf != nil || kcore != nil {
            throw KPeerError(.usage, "--offset, --btf, --dwarf and --kcore are for the kcore method, not --method netlink",
                             fix: "drop them, or use --method kcore or auto")
        }
        if findOffset {
            let inodeTarget: UInt64?
            switch target {
            case .inode(let v)?: inodeTarget = v
            case nil: inodeTarget = nil
            default: throw KPeerError(.usage, "--find-offset calibrates on a socket inode, not a path", fix: "give the INODE of a connected socket")
            }
            let report = try OffsetReport.gather(options, calibrateOn: inodeTarget)
            write(Render.offsetReport(report))
            if report.agreed == nil {
                throw KPeerError(.refused, "the offset sources do not agree, or none is available", fix: "see the lines above")
            }
            return
        }
        // Other users' /proc/PID/fd are unreadable: their sockets would look
        // held by no process, a false answer. The original tool, too, needed root.
        if !Host.isRoot {
            throw KPeerError(.permission, "kpeer needs root to see which processes hold sockets",
                             fix: "run it as root (sudo kpeer ...)")
        }
        switch target {
        case .inode(let inode)?:
            let r = try Resolver.resolve(options)
            if verbose { note(r); noteFacts(r.map, inode) }
            let map = r.map
            if fmt == .json {
                guard map[inode] != nil else { _ = try map.peerOwners(of: inode); return }
                write(JSON.document(map.restricted(to: [inode]), ownNetns: r.ownNetns))
            } else {
                write(Render.answer(try map.peerOwners(of: inode)))
            }
        case let path?:
            let r = try Resolver.resolve(options, boundFiles: true)
            if verbose { note(r) }
            let answer = try PathQuery.answer(path, in: r)
            if verbose { noteFacts(r.map, answer.listener.inode) }
            if fmt == .json {
                write(JSON.pathDocument(answer, map: r.map, ownNetns: r.ownNetns))
            } else if answer.clients.isEmpty {
                let l = answer.listener
                let holders = l.owners.isEmpty ? "no process" : l.owners.map(\.label).joined(separator: ",")
                throw KPeerError(.noPeer, "\(answer.query): socket \(l.inode) held by \(holders) has no clients")
            } else {
                write(Render.clients(answer))
            }
        case nil:
            let r = try Trace.phase("resolve") { () throws(KPeerError) in try Resolver.resolve(options) }
            if verbose { note(r) }
            let map = filter.apply(r.map)
            Trace.phase("render") {
                switch fmt ?? .table {
                case .json: write(JSON.document(map, ownNetns: r.ownNetns))
                case .dump: write(Render.dump(map, pid: pid))
                case .dot: write(Dot.graph(map, ownNetns: r.ownNetns))
                case .table: write(extended ? Render.extendedTable(map, ownNetns: r.ownNetns)
                                            : Render.table(map, ownNetns: r.ownNetns))
                }
            }
        }
    }

    func note(_ r: Resolution) {
        let map = r.map
        var line = "kpeer: method \(map.method.rawValue)"
        if let o = map.offset { line += ", unix_sock.peer at \(o.value) from \(o.source.rawValue) (\(o.provenance))" }
        if let why = map.fallbackReason { line += "; kcore not used: \(why)" }
        let spaces = Set(map.sockets.map { r.netns(of: $0.entry) })
        if spaces.count > 1 { line += "; \(spaces.count) network namespaces" }
        if !r.skipped.isEmpty { line += "; not entered: " + r.skipped.joined(separator: "; ") }
        Output.write(line + "\n", to: 2)
    }

    /// -v with INODE or PATH: what kernel memory told about that socket.
    func noteFacts(_ map: PeerMap, _ inode: UInt64) {
        for line in Render.factLines(map, inode) { Output.write("kpeer: " + line + "\n", to: 2) }
    }

    func write(_ text: String) { Output.write(text, to: 1) }
}

/// Whole strings to a file descriptor, in as few write(2) calls as it takes.
enum Output {
    static func write(_ text: String, to fd: Int32) {
        var text = text
        text.withUTF8 { buf in
            var done = 0
            while done < buf.count {
                let n = Glibc.write(fd, buf.baseAddress! + done, buf.count - done)
                if n <= 0 {
                    if n < 0 && errno == EINTR { continue }
                    return
                }
                done += n
            }
        }
    }
}

@main
enum Main {
    static func main() {
        // Before anything else (see Startup): no program named by the environment.
        Startup.inMain()
        let command: KPeerCommand
        do {
            command = try KPeerCommand.parse()
        } catch {
            let code = KPeerCommand.exitCode(for: error)
            if code == .success {
                print(KPeerCommand.fullMessage(for: error))
                exit(0)
            }
            let message = KPeerCommand.message(for: error).split(separator: "\n").first.map(String.init) ?? "bad usage"
            fail(KPeerError(.usage, message, fix: "see kpeer --help"))
        }
        do {
            try command.execute()
        } catch {
            fail(error)
        }
    }

    static func fail(_ error: KPeerError) -> Never {
        Output.write("kpeer: \(error)\n", to: 2)
        exit(error.exitStatus)
    }
}
