import ArgumentParser
import KPeerSystem
import SocketInventory
import Watch

/// `kpeer --watch [INODE | PATH | @NAME] [--pid PID] [--type T] [--json]
/// [--count N] [--duration S] [--interval S] [--attach HOW]`: the command-line
/// side of the Watch module. KPeerCommand declares the five options and calls
/// in here:
///
///     var watchFlags: WatchFlags { WatchFlags(watch: watch, ..., attach: attach) }
///     validate():  if try validateWatch(watchFlags) { return }   (after the checksOff guard)
///     execute():   if watch { return try runWatch(watchFlags) }  (first)
struct WatchFlags {
    /// --watch
    var watch: Bool
    /// --count N: stop after N events.
    var count: Int?
    /// --duration S: stop after S seconds.
    var duration: Double?
    /// --interval S: the polling fallback's interval.
    var interval: Double?
    /// --attach HOW: how the hooks attach (default: fentry, else kprobes,
    /// else polling).
    var attach: AttachChoice?

    /// The text --help gives each option.
    static let watchHelp = "Print every unix socket connect, accept and close as it happens (eBPF), with both ends' inodes and processes, until interrupted; a summary at the end. With INODE, PATH or @NAME: that socket's connections; with --pid: that process's."
    static let countHelp = "With --watch: stop after this many events."
    static let durationHelp = "With --watch: stop after this many seconds."
    static let intervalHelp = "With --watch, where eBPF cannot load: poll sock_diag this often (seconds, default 0.1)."
    static let attachHelp = "With --watch: how to hook the kernel (auto: fentry, else kprobes, else polling sock_diag; fentry, kprobe: only that; poll: never load eBPF)."
}

/// `--attach`: how a watch hooks the kernel.
enum AttachChoice: String, RawChoice {
    case auto, fentry, kprobe, poll

    var attach: BPFWatch.Attach {
        switch self {
        case .auto: .any
        case .fentry: .fentry
        case .kprobe: .kprobe
        case .poll: []
        }
    }
}

extension KPeerCommand {
    /// Usage checks for --watch and its options (64 for a bad one). True
    /// when the command line is a watch, and so needs no other check.
    func validateWatch(_ w: WatchFlags) throws(KPeerError) -> Bool {
        let own = [(w.count != nil, "--count"), (w.duration != nil, "--duration"), (w.interval != nil, "--interval"),
                   (w.attach != nil, "--attach")]
        guard w.watch else {
            if let (_, name) = own.first(where: { $0.0 }) {
                throw KPeerError(.usage, "\(name) is for --watch", fix: "add --watch, or drop \(name)")
            }
            return false
        }
        let conflicts: [(Bool, String)] = [
            (all, "--all"), (dump, "--dump"), (findOffset, "--find-offset"), (listening, "--listening"),
            (extended, "-e"), (format != nil && format != .json, "--format"), (method != .auto, "--method"),
            (kcore != nil, "--kcore"), (offset != nil, "--offset"), (btf != nil, "--btf"), (dwarf != nil, "--dwarf"),
            (force, "--force"),
        ]
        if let (_, name) = conflicts.first(where: { $0.0 }) {
            throw KPeerError(.usage, "--watch does not go with \(name)",
                             fix: "--watch takes an INODE, PATH or @NAME, --pid, --type, --json, --count, --duration, --interval, --attach")
        }
        if let pid, pid <= 0 {
            throw KPeerError(.usage, "--pid \(pid) is not a process id", fix: "give a pid as ps shows it")
        }
        if let count = w.count, count <= 0 {
            throw KPeerError(.usage, "--count \(count) is not a number of events", fix: "give a count of 1 or more")
        }
        if let duration = w.duration, !(duration > 0 && duration <= 31_536_000) {
            throw KPeerError(.usage, "--duration \(duration) is not a number of seconds", fix: "give seconds, more than 0 (0.5, 60)")
        }
        if let interval = w.interval, !(interval >= 0.001 && interval <= 3600) {
            throw KPeerError(.usage, "--interval \(interval) is out of range", fix: "give seconds from 0.001 to 3600 (default 0.1)")
        }
        if let target { _ = try Target.parse(target) }
        return true
    }

    /// Watches until stopped, then prints the summary (stderr; with --json,
    /// the last line on stdout). Stopped by a signal, --count or --duration,
    /// it exits 0.
    func runWatch(_ w: WatchFlags) throws(KPeerError) {
        try requireRoot()
        var o = WatchOptions()
        if let target {
            o.target = switch try Target.parse(target) {
            case .inode(let v): .inode(v)
            case .file(let p): .file(p)
            case .abstract(let n): .abstract(n)
            }
        }
        o.pid = pid
        o.type = type?.socketType
        o.json = json || format == .json
        o.count = w.count
        o.duration = w.duration
        o.interval = w.interval ?? WatchOptions.defaultInterval
        o.verbose = verbose
        o.attach = (w.attach ?? .auto).attach
        let summary = try Watch.run(o, output: { (text) throws(KPeerError) in try Output.answer(text) },
                                    message: { Output.message($0) })
        if o.json {
            try Output.answer(WatchRender.summaryJSON(summary))
        } else {
            Output.message(WatchRender.summary(summary))
        }
    }
}
