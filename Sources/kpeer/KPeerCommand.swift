import ArgumentParser
import Glibc
import KPeerSystem
import PeerResolution
import Rendering
import SocketInventory

/// A choice named by its raw value, its values listed from them: the
/// default describes every case by reflection, a tenth of each start.
protocol RawChoice: ExpressibleByArgument, CaseIterable, RawRepresentable where RawValue == String {}

extension RawChoice {
    public static var allValueStrings: [String] { allCases.map(\.rawValue) }
    public var defaultValueDescription: String { rawValue }
}

extension ResolverOptions.MethodChoice: RawChoice {}

/// How a listing is printed.
enum OutputFormat: String, RawChoice {
    case table, dump, json, dot
}

/// `--type`: the socket types a listing keeps.
enum TypeChoice: String, RawChoice {
    case stream, dgram, seqpacket

    var socketType: SocketType {
        switch self {
        case .stream: .stream
        case .dgram: .dgram
        case .seqpacket: .seqpacket
        }
    }
}

/// The command line: what the user asked for, checked in `validate()` and
/// turned into one `Mode`. Running it is in Run.swift.
struct KPeerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kpeer",
        abstract: "Which process is at the other end of this unix socket?",
        discussion: Help.discussion,
        version: "kpeer 0.1.0"
    )

    @Argument(help: ArgumentHelp(
        "A unix socket's inode (as netstat, ss or lsof print it; socket:[INODE] as /proc/PID/fd shows it), a socket file's path (a name without a / if the file is here), or @NAME for an abstract socket. \\xNN is the byte NN, as kpeer prints names.",
        valueName: "inode|path|@name"))
    var target: String?

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

    // Containers: another network namespace's names, and who holds a socket.
    @Option(help: ArgumentHelp("With @NAME: look the abstract name up in the network namespace of this process, or of this namespace file (/run/netns/NAME).", valueName: "pid|path"))
    var netns: String?

    @Option(help: ArgumentHelp("Only sockets held by processes in this systemd unit or below it (docker.service, user@1000.service, a slice); NAME without a suffix is NAME.service.", valueName: "unit"))
    var unit: String?

    @Option(help: ArgumentHelp("Only sockets held by processes of the container whose id starts so (docker, podman, containerd, cri-o; lxc and nspawn by name).", valueName: "id-prefix"))
    var container: String?

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

    // --watch (Watch+CLI.swift).
    @Flag(help: ArgumentHelp(WatchFlags.watchHelp))
    var watch = false
    @Option(help: ArgumentHelp(WatchFlags.countHelp, valueName: "n"))
    var count: Int?
    @Option(help: ArgumentHelp(WatchFlags.durationHelp, valueName: "seconds"))
    var duration: Double?
    @Option(help: ArgumentHelp(WatchFlags.intervalHelp, valueName: "seconds"))
    var interval: Double?
    @Option(help: ArgumentHelp(WatchFlags.attachHelp, valueName: "how"))
    var attach: AttachChoice?
    var watchFlags: WatchFlags {
        WatchFlags(watch: watch, count: count, duration: duration, interval: interval, attach: attach)
    }

    /// What a valid command line asks for.
    enum Mode: Equatable {
        /// --find-offset, calibrating on this inode if one is given.
        case findOffset(UInt64?)
        /// INODE, PATH or @NAME; as a JSON document or as text.
        case target(Target, json: Bool)
        /// --all, --dump, --json or --format without a target.
        case listing(OutputFormat)
    }

    /// Every usage check (status 64): a bad command line never reaches
    /// `execute`.
    func validate() throws {
        guard !Self.checksOff else { return }
        if try validateWatch(watchFlags) { return }  // --watch (Watch+CLI.swift)
        _ = try mode()
    }

    /// ArgumentParser runs validate() before it looks for unknown options:
    /// Main parses once more with the checks off, so `kpeer --lisening`
    /// hears of the typo, not that it asked for nothing. Set once, before
    /// that second parse, on the one thread there is.
    nonisolated(unsafe) static var checksOff = false

    /// The command line as one Mode, or the usage error that stops it.
    func mode() throws(KPeerError) -> Mode {
        let target = try target.map { (arg) throws(KPeerError) in try Target.parse(arg) }
        let modes = [all, dump, findOffset].filter { $0 }.count
        if modes > 1 || (target != nil && (all || dump)) {
            throw KPeerError(.usage, "give one of INODE, PATH, --all, --dump or --find-offset", fix: "see kpeer --help")
        }
        let fmt = try listingFormat()
        if let pid, pid <= 0 {
            throw KPeerError(.usage, "--pid \(pid) is not a process id", fix: "give a pid as ps shows it")
        }
        if !filter.isEmpty && (target != nil || findOffset) {
            throw KPeerError(.usage, "--pid, --type and --listening filter listings, not INODE, PATH or --find-offset",
                             fix: "use them with --all, --dump, --json or --format dot")
        }
        try validateContainers(target, findOffset: findOffset)
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
        // Filters alone ask for the table of what they keep.
        if modes == 0 && target == nil && fmt == nil && filter.isEmpty && identityFilter.isEmpty {
            throw KPeerError(.usage, "nothing to do", fix: "give an INODE, a PATH, --all or --dump (see kpeer --help)")
        }
        // Offsets and core files only mean something to the kcore method.
        if method == .netlink, offset != nil || btf != nil || dwarf != nil || kcore != nil {
            throw KPeerError(.usage, "--offset, --btf, --dwarf and --kcore are for the kcore method, not --method netlink",
                             fix: "drop them, or use --method kcore or auto")
        }
        if findOffset {
            switch target {
            case .inode(let v)?: return .findOffset(v)
            case nil: return .findOffset(nil)
            default: throw KPeerError(.usage, "--find-offset calibrates on a socket inode, not a path", fix: "give the INODE of a connected socket")
            }
        }
        if let target { return .target(target, json: fmt == .json) }
        return .listing(fmt ?? .table)
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

    var filter: SocketFilter {
        SocketFilter(pid: pid, type: type?.socketType, listening: listening)
    }

    /// --unit, --container: they filter listings and the clients of a PATH or @NAME.
    var identityFilter: IdentityFilter { IdentityFilter(unit: unit, container: container) }

    /// --netns goes with @NAME only; --unit and --container need a value
    /// and a listing or a PATH or @NAME to filter.
    func validateContainers(_ target: Target?, findOffset: Bool) throws(KPeerError) {
        if netns != nil {
            guard case .abstract? = target else {
                throw KPeerError(.usage, "--netns looks up an @NAME in another network namespace",
                                 fix: "give it with @NAME (kpeer --netns PID @NAME); --all already lists every namespace kpeer can enter")
            }
        }
        for (flag, value) in [("--unit", unit), ("--container", container)] where value?.isEmpty == true {
            throw KPeerError(.usage, "\(flag) needs a name", fix: flag == "--unit" ? "give a unit, such as docker.service" : "give the start of a container id")
        }
        if !identityFilter.isEmpty {
            if findOffset { throw KPeerError(.usage, "--unit and --container filter listings and clients, not --find-offset", fix: "drop them") }
            if case .inode? = target {
                throw KPeerError(.usage, "--unit and --container filter listings and the clients of a PATH or @NAME, not INODE",
                                 fix: "use them with --all, --json, PATH or @NAME")
            }
        }
    }

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
        o.kernelFacts = json || format == .json || extended || target != nil
        o.connectors = json || format == .json || extended || verbose
        // Who each holder is (pid namespace, cgroup): read only where shown or filtered on.
        o.identities = json || format == .json || format == .dot || extended || verbose || !identityFilter.isEmpty
        return o
    }
}

/// The text of --help beyond the options: the forms, and the exit statuses
/// from the one table there is (KPeerError.exitStatuses).
enum Help {
    static let discussion = """
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
                                   (kpeer LISTENER_INODE too)
          kpeer --all --format dot a Graphviz graph of processes and connections
          --pid, --type, --listening  filter --all, --dump, --json and dot
          --unit, --container      filter those, and the clients of PATH or @NAME,
                                   by the holder's systemd unit or container
          kpeer --netns PID|FILE @NAME
                                   the clients of @NAME as bound in that network
                                   namespace (a process's, or /run/netns/NAME)
        --all, --dump and --json cover every network namespace kpeer can enter \
        (as root); --all marks sockets of another namespace with net:[INODE].

        Exit statuses, the same for every output form (--json still prints its \
        document with 1 and 3):
           0  answered
           1  no peer: the socket is not connected (or is an unconnected datagram
              socket), or a listener given by PATH, @NAME or INODE has no client
           2  no such socket or process: no unix socket has that inode, a PATH is
              missing, is not a socket or has nothing bound to it, or no process has
              the --pid
           3  the peer exists but no process holds it: a client not yet accepted (its
              listener is named), or a socket in flight
          64  bad usage: an unknown option, a bad value, options that do not go
              together, an argument that is no inode, path or @NAME
          65  a file given to --kcore, --btf or --dwarf is missing or not what it must
              be: not ELF, no BTF, no unix_sock, a vmlinux of another build
          69  the method is unavailable here: no /proc/kcore, lockdown, hashed or
              zeroed pointers, kptr_restrict=2, no unix_diag
          70  refused, as it could not be verified: the peer offset failed the
              self-check, offset sources disagree, calibration was ambiguous, an inode
              names two sockets
          74  input or output failed: a file could not be read midway, or the output
              could not be written (a full disk, a closed stdout; no message when the
              reader has gone)
          77  permission: the kcore method without root (CAP_SYS_RAWIO), or an answer
              that rests on processes kpeer may not read (not root, a user or pid
              namespace)
        """

    /// The status table as `discussion` spells it out, from the one table
    /// there is. Written out there because this runs on every start (about
    /// 1% of a run under emulation); CLIContractTests holds the help to
    /// KPeerError.exitStatuses, and `kpeer --help` equals this.
    static var generatedDiscussion: String {
        let table = discussion.components(separatedBy: "with 1 and 3):\n")
        return table[0] + "with 1 and 3):\n" + statuses
    }

    /// One `STATUS  meaning` entry per status, wrapped under its meaning.
    static var statuses: String {
        KPeerError.exitStatuses.map { row in
            let status = String(row.status)
            return wrap(String(repeating: " ", count: 4 - status.count) + status + "  ", row.meaning, width: 78)
        }.joined(separator: "\n")
    }

    /// `text` after `lead`, in lines of at most `width`, the later ones
    /// indented as far as `lead` reaches.
    /// On bytes, widths counted as they go (a character is a byte that is
    /// not a UTF-8 continuation): this runs on every start, as part of the
    /// command's configuration, where String's splitting and counting took
    /// a tenth of a start.
    static func wrap(_ lead: String, _ text: String, width: Int) -> String {
        func chars<C: Collection>(_ b: C) -> Int where C.Element == UInt8 { b.reduce(0) { $0 + ($1 & 0xC0 == 0x80 ? 0 : 1) } }
        let leadBytes = Array(lead.utf8)
        let leadWidth = chars(leadBytes)
        var out = leadBytes
        var lineWidth = leadWidth
        for word in Array(text.utf8).split(separator: 0x20) {
            let w = chars(word)
            if lineWidth > leadWidth && lineWidth + 1 + w > width {
                out.append(0x0A)
                out += repeatElement(0x20, count: leadWidth)
                lineWidth = leadWidth
            }
            if lineWidth > leadWidth {
                out.append(0x20)
                lineWidth += 1
            }
            out += word
            lineWidth += w
        }
        return String(decoding: out, as: UTF8.self)
    }
}
