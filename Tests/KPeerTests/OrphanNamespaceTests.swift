import Foundation
import Glibc
import Testing
import KPeerSystem

/// A socketpair made in a network namespace that no process is left in: a
/// child (`unshare(CLONE_NEWNET)`) makes it, passes both ends to its parent
/// in SCM_RIGHTS and exits. /proc/PID/fd shows `socket:[N]`, but no
/// process's namespace lists N; kpeer must find the namespace through the
/// descriptor (SIOCGSKNS) and answer there.
@Suite(.serialized, .tags(.binary, .fixture, .root), .layered) struct OrphanNamespaceTests {
    @Test func aPairInANamespaceWithNoProcessIsFound() throws {
        // The VM runs the same program (guest.d/orphan.sh).
        let orphan = try Support.program("Tests/VM/guest.d/orphan.c", named: "orphan")
        let (p, input, text) = try Support.startUntilReady([orphan], what: "the fixture")
        defer { try? input.fileHandleForWriting.close(); p.waitUntilExit() }
        let inodes = try #require(text.split(separator: "\n").first { $0.hasPrefix("pair ") })
            .split(separator: " ").dropFirst().compactMap { UInt64($0) }
        try #require(inodes.count == 2)
        let netns = try #require(text.split(separator: "\n").first { $0.hasPrefix("netns ") }.flatMap { UInt64($0.dropFirst(6)) })
        // Not this process's namespace: the fixture's child made it and left.
        #expect(netns != Files.identity("/proc/self/ns/net")?.inode)
        // The namespace really has no process: no /proc/PID/ns/net names it.
        // (Both ends are held by the fixture, in this namespace.)
        let pids = try FileManager.default.contentsOfDirectory(atPath: "/proc").filter { Int32($0) != nil }
        #expect(!pids.contains { Files.identity("/proc/\($0)/ns/net")?.inode == netns })
        let me = "\(p.processIdentifier)"
        for method in ["netlink"] + (FileManager.default.fileExists(atPath: "/proc/kcore") ? ["kcore"] : []) {
            for (asked, peer) in [(inodes[0], inodes[1]), (inodes[1], inodes[0])] {
                let r = try Support.run(Support.kpeerBinary, ["--method", method, String(asked)])
                #expect(r.status == 0, "\(method) \(asked): \(r)")
                #expect(r.stdout.split(separator: "\n").map { $0.split(separator: " ").first.map(String.init) } == [me],
                        "\(method) \(asked) (peer \(peer)): \(r.stdout)")
            }
            // Listings look for such namespaces too: both ends listed, held by
            // the fixture, peers of each other, in a namespace of their own.
            let all = try Support.run(Support.kpeerBinary, ["--method", method, "--all"])
            #expect(all.status == 0)
            for inode in inodes {
                let row = all.stdout.split(separator: "\n").first { $0.split(separator: " ").contains(Substring(String(inode))) }
                #expect(row.map { $0.contains("\(me)/orphan") && $0.contains("net:[") } == true, "\(method) --all: \(row ?? "no row for \(inode)")")
            }
            let dump = try Support.run(Support.kpeerBinary, ["--method", method, "--dump"])
            #expect(dump.stdout.split(separator: "\n").contains("orphan:\(me):\(inodes[0]):\(inodes[1]):\(me):orphan"), "\(method) --dump")
            // --json, the listing and INODE: each end with that namespace,
            // its holder and its peer.
            let listing = try CLIContractTests.json(try Support.run(Support.kpeerBinary, ["--method", method, "--json"]).stdout)
            for (asked, peer) in [(inodes[0], inodes[1]), (inodes[1], inodes[0])] {
                let one = try Support.run(Support.kpeerBinary, ["--method", method, "--json", String(asked)])
                #expect(one.status == 0, "\(method) --json \(asked): \(one.stderr)")
                for doc in [listing, try CLIContractTests.json(one.stdout)] {
                    let s = try #require(CLIContractTests.socket(doc, asked), "\(method) --json: no socket \(asked)")
                    #expect((s["netns"] as? NSNumber)?.uint64Value == netns, "\(method) --json \(asked)")
                    let pids = (s["owners"] as? [[String: Any]])?.compactMap { ($0["pid"] as? NSNumber)?.int32Value }
                    #expect(pids == [p.processIdentifier], "\(method) --json \(asked)")
                    #expect(((s["peer"] as? [String: Any])?["inode"] as? NSNumber)?.uint64Value == peer)
                }
            }
        }
    }
}
