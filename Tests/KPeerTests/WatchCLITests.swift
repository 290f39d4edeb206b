import Foundation
import Testing

/// `kpeer --watch` from the command line: usage errors, and a bounded watch
/// on this host (where eBPF cannot load: the polling fallback and its notice).
@Suite(.serialized)
struct WatchCLITests {
    static func kpeer(_ args: [String]) throws -> Support.Result { try Support.run(Support.kpeerBinary, args) }

    @Test(arguments: [
        ["--count", "3"], ["--duration", "1"], ["--interval", "0.1"],
        ["--watch", "--all"], ["--watch", "--dump"], ["--watch", "--listening"], ["--watch", "--method", "netlink"],
        ["--watch", "--count", "0"], ["--watch", "--duration", "0"], ["--watch", "--duration", "-1"],
        ["--watch", "--interval", "0"], ["--watch", "--pid", "0"], ["--watch", "--format", "dot"],
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
    @Test func durationEndsAWatchWithItsSummary() throws {
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

    @Test func aNameWithNothingBoundIsNotFound() throws {
        let r = try Self.kpeer(["--watch", "--duration", "0.1", "@kpeer-watch-nothing-\(getpid())"])
        #expect(r.status == 2)
        #expect(r.stderr.hasPrefix("kpeer: nothing is bound to @kpeer-watch-nothing-"))
    }
}
