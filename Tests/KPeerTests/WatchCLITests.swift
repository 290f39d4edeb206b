import Foundation
import Testing

/// `kpeer --watch` from the command line: usage errors, and a bounded watch
/// on this host (where eBPF cannot load: the polling fallback and its notice).
@Suite(.serialized, .tags(.binary, .fixture), .layered)
struct WatchCLITests {
    static func kpeer(_ args: [String]) throws -> Support.Result { try Support.run(Support.kpeerBinary, args) }

    @Test(arguments: [
        ["--count", "3"], ["--duration", "1"], ["--interval", "0.1"],
        ["--watch", "--all"], ["--watch", "--dump"], ["--watch", "--listening"], ["--watch", "--method", "netlink"],
        ["--watch", "--count", "0"], ["--watch", "--duration", "0"], ["--watch", "--duration", "-1"],
        ["--watch", "--interval", "0"], ["--watch", "--pid", "0"], ["--watch", "--format", "dot"],
        ["--attach", "poll"], ["--watch", "--attach", "uprobe"], ["--all", "--attach", "kprobe"],
    ])
    func usageErrors(_ args: [String]) throws {
        let r = try Self.kpeer(args)
        #expect(r.status == 64, "\(args)")
        #expect(r.stdout.isEmpty)
        #expect(r.stderr.hasPrefix("kpeer: ") && r.stderr.filter { $0 == "\n" }.count == 1, "\(r.stderr)")
    }

    /// Bounded by --duration, it ends 0 with its summary on stderr (text) or
    /// as the last line of stdout (--json); every stdout line before it is
    /// one event object.
    @Test(.tags(.root)) func durationEndsAWatchWithItsSummary() throws {
        let text = try Self.kpeer(["--watch", "--duration", "0.3", "--interval", "0.05"])
        #expect(text.status == 0)
        let lines = text.stderr.split(separator: "\n")
        #expect(lines.contains { $0.hasPrefix("kpeer: watched ") })
        #expect(lines.filter { $0.contains("polling sock_diag every") }.count <= 1)
        let json = try Self.kpeer(["--watch", "--json", "--duration", "0.3", "--interval", "0.05"])
        #expect(json.status == 0)
        let out = json.stdout.split(separator: "\n")
        #expect(out.last?.hasPrefix("{\"summary\":{\"seconds\":") == true)
        #expect(out.dropLast().allSatisfy { $0.hasPrefix("{\"time\":\"") && $0.hasSuffix("}") })
        #expect(!json.stderr.contains("kpeer: watched "))
    }

    /// --attach poll never loads eBPF and says so once; --attach kprobe
    /// uses kprobes or nothing: where this kernel has none (no kprobe PMU,
    /// as on the host these tests were written on) it is one line and 69,
    /// not a quiet fallback to polling.
    @Test(.tags(.root)) func attachChoosesHowAndSaysSo() throws {
        let poll = try Self.kpeer(["--watch", "--attach", "poll", "--json", "--duration", "0.2", "--interval", "0.05"])
        #expect(poll.status == 0, "\(poll.stderr)")
        #expect(poll.stderr == "kpeer: polling sock_diag every 50 ms (--attach poll): a connection that opens and closes "
                + "between two polls is missed, and times are to 50 ms\n")
        let summary = try #require(poll.stdout.split(separator: "\n").last)
        #expect(summary.contains("\"source\":\"poll\",\"attach\":null"), "\(summary)")

        let kprobe = try Self.kpeer(["--watch", "--attach", "kprobe", "--json", "--duration", "0.2"])
        if !FileManager.default.fileExists(atPath: "/sys/bus/event_source/devices/kprobe") {
            #expect(kprobe.status == 69)
            #expect(kprobe.stdout.isEmpty)
            #expect(kprobe.stderr.hasPrefix("kpeer: cannot watch with kprobes: ") && kprobe.stderr.filter { $0 == "\n" }.count == 1,
                    "\(kprobe.stderr)")
        } else if kprobe.status == 0 {
            // A kernel with kprobes: every hook it attached is a kprobe.
            let last = try #require(kprobe.stdout.split(separator: "\n").last)
            #expect(last.contains("\"source\":\"ebpf\",\"attach\":\"kprobe\""), "\(last)")
        } else {
            #expect(kprobe.status == 69 && kprobe.stderr.filter { $0 == "\n" }.count == 1, "\(kprobe.stderr)")
        }
    }

    @Test(.tags(.root)) func aNameWithNothingBoundIsNotFound() throws {
        let r = try Self.kpeer(["--watch", "--duration", "0.1", "@kpeer-watch-nothing-\(getpid())"])
        #expect(r.status == 2)
        #expect(r.stderr.hasPrefix("kpeer: nothing is bound to @kpeer-watch-nothing-"))
    }
}
