import ArgumentParser
import Glibc
import KPeerSystem
import PeerResolution
import Rendering
import SocketInventory

extension ResolverOptions.MethodChoice: ExpressibleByArgument {}

/// The command line: parse, call the library, print. Nothing else.
struct KPeerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kpeer",
        abstract: "Which process is at the other end of this unix socket?",
        discussion: """
            kpeer reads struct unix_sock.peer out of live kernel memory (/proc/kcore), \
            with the offset from BTF, DWARF or calibration, and falls back to the \
            kernel's sock_diag netlink interface where /proc/kcore is missing.

            The seed's commands and their kpeer equivalents:
              socket_peer INODE        kpeer INODE
              netstat_unix             kpeer --all
              netstat_unix --dump      kpeer --dump
              find_gdb_offset INODE    kpeer --find-offset [INODE]

            Exit statuses: 0 answered, 1 no peer, 2 no such socket, 3 peer held by \
            no process (e.g. a client not yet accepted), 64 bad usage, 65 wrong file \
            given, 69 method unavailable here, 70 refused (offset failed the \
            self-check), 74 I/O error, 77 permission (run as root).
            """,
        version: "kpeer 0.1.0"
    )

    @Argument(help: "A unix socket's inode, as netstat, ss or lsof print it.")
    var inode: String?

    @Flag(help: "Every unix socket, as netstat -na --unix -p, plus the peer's processes.")
    var all = false

    @Flag(help: "name:pid:socket:peer_socket:peer_pid:peer_name, one line per pair of processes.")
    var dump = false

    @Flag(help: "One JSON document (with INODE or --all).")
    var json = false

    @Flag(name: .customLong("find-offset"), help: "Show offsetof(struct unix_sock, peer) from every source; with INODE, calibrate on that connected socket.")
    var findOffset = false

    @Option(help: "How to find peers: auto (kcore, else netlink), kcore or netlink.")
    var method: ResolverOptions.MethodChoice = .auto

    @Option(help: ArgumentHelp("Read kernel memory from this ELF core file.", valueName: "path"))
    var kcore: String?

    @Option(help: ArgumentHelp("Use this offset of unix_sock.peer (as the seed hard-coded it).", valueName: "bytes"))
    var offset: Int?

    @Option(help: ArgumentHelp("Read the offset from this BTF file.", valueName: "path"))
    var btf: String?

    @Option(help: ArgumentHelp("Read the offset from this vmlinux's DWARF (e.g. /usr/lib/debug/vmlinux).", valueName: "path"))
    var dwarf: String?

    @Flag(help: "Use a --dwarf vmlinux even when its build-id is not the running kernel's.")
    var force = false

    @Flag(name: .shortAndLong, help: "Say on stderr which method and offset were used.")
    var verbose = false

    var options: ResolverOptions {
        var o = ResolverOptions()
        o.method = method
        if let kcore { o.kcorePath = kcore }
        o.offset = offset
        o.btfPath = btf
        o.dwarfPath = dwarf
        o.force = force
        return o
    }

    /// The INODE argument, checked: one line and status 64 for anything else.
    func parsedInode() throws(KPeerError) -> UInt64? {
        guard let inode else { return nil }
        guard !inode.isEmpty, inode.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else {
            throw KPeerError(.usage, "'\(Escape.bytes(Array(inode.utf8)))' is not a socket inode",
                             fix: "give the number netstat, ss or lsof show in the inode column")
        }
        guard let v = UInt64(inode), v <= UInt32.max, v > 0 else {
            throw KPeerError(.usage, "inode \(inode) is out of range (socket inodes are 1 to \(UInt32.max))",
                             fix: "give the number netstat, ss or lsof show in the inode column")
        }
        return v
    }

    func execute() throws(KPeerError) {
        let target = try parsedInode()
        let modes = [all, dump, findOffset].filter { $0 }.count
        if modes > 1 || (target != nil && (all || dump)) {
            throw KPeerError(.usage, "give one of INODE, --all, --dump or --find-offset", fix: "see kpeer --help")
        }
        if modes == 0 && target == nil && !json {
            throw KPeerError(.usage, "nothing to do", fix: "give an INODE, --all or --dump (see kpeer --help)")
        }
        if findOffset {
            let report = try OffsetReport.gather(options, calibrateOn: target)
            write(Render.offsetReport(report))
            if report.agreed == nil {
                throw KPeerError(.refused, "the offset sources do not agree, or none is available", fix: "see the lines above")
            }
            return
        }
        let map = try Resolver.resolveAll(options)
        if verbose { note(map) }
        if let target {
            if json {
                guard map[target] != nil else { _ = try map.peerOwners(of: target); return }
                write(JSON.document(map.restricted(to: [target])))
            } else {
                write(Render.answer(try map.peerOwners(of: target)))
            }
        } else if json {
            write(JSON.document(map))
        } else if dump {
            write(Render.dump(map))
        } else {
            write(Render.table(map))
        }
    }

    func note(_ map: PeerMap) {
        var line = "kpeer: method \(map.method.rawValue)"
        if let o = map.offset { line += ", unix_sock.peer at \(o.value) from \(o.source.rawValue) (\(o.origin))" }
        if let why = map.fallbackReason { line += "; kcore not used: \(why)" }
        Output.write(line + "\n", to: 2)
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
