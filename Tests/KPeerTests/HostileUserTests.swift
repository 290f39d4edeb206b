import Foundation
import Glibc
import Testing

/// An unprivileged local user (a uid of the test's own, no groups) attacks root's kpeer on
/// this machine (the netlink method: this kernel may have no /proc/kcore;
/// the VM's forge.sh runs the same attacks against the kcore method). The
/// attacker is Tests/VM/guest.d/forge.c, run through the fixture's
/// `--run-as`. Every answer after the attack must equal the answer before.
@Suite(.serialized, .tags(.binary, .fixture, .root), .layered) struct HostileUserTests {
    /// A user of the test's own: a uid no account has and no process runs
    /// as (nothing of it exists on this machine before the test).
    static let attacker: UInt32 = {
        let busy = Set((try? FileManager.default.contentsOfDirectory(atPath: "/proc"))?.compactMap { pid -> UInt32? in
            var st = stat()
            guard Int32(pid) != nil, stat("/proc/\(pid)", &st) == 0 else { return nil }
            return st.st_uid
        } ?? [])
        var uid: UInt32 = 61_000
        while getpwuid(uid) != nil || busy.contains(uid) { uid += 1 }
        return uid
    }()

    static func forge() throws -> String {
        let out = Support.tempDir() + "/forge"
        try Support.gcc([Support.packageRoot + "/Tests/VM/guest.d/forge.c"], output: out, flags: ["-O2", "-Wall"])
        // The attacker must be able to run it.
        chmod(out, 0o755)
        chmod((out as NSString).deletingLastPathComponent, 0o755)
        return out
    }

    /// The attacker's program, running until this value is dropped.
    final class Attack {
        let process: Process
        let input: Pipe
        let lines: [String]

        init(_ args: [String]) throws {
            let started = try Support.startUntilReady([try Fixture.binary(), "--run-as", String(HostileUserTests.attacker)] + args,
                                                      what: "the attacker")
            process = started.process
            input = started.input
            lines = started.text.split(separator: "\n").map(String.init)
        }

        deinit {
            try? input.fileHandleForWriting.close()
            process.waitUntilExit()
        }
    }

    /// Only the lines about the fixture's sockets: other tests make and
    /// close sockets on this machine meanwhile.
    static func mine(_ r: Support.Result, _ f: Fixture) -> [String] {
        r.stdout.split(separator: "\n").map(String.init).filter { line in
            line.split(separator: ":").contains { UInt64($0).map(f.inodes.contains) ?? false }
        }.sorted()
    }

    static func kpeer(_ args: [String]) throws -> Support.Result {
        try Support.run(Support.kpeerBinary, ["--method", "netlink"] + args)
    }

    /// A twin of root's listener (its inode, at address 0) and 480 rows more,
    /// each inside a bound abstract name after a newline. The listener
    /// stays, with its clients; no forged inode appears anywhere.
    @Test func forgedRowsChangeNoAnswer() throws {
        let f = try Fixture()
        let listener = try #require(f.sockets("listener").first).inode
        let path = f.dir + "/kpf-\(f.process.processIdentifier)-stream.sock"
        let questions = [[path], [String(listener)]]
        let before = try questions.map { try Self.kpeer($0) }
        let dumpBefore = Self.mine(try Self.kpeer(["--dump"]), f)
        #expect(before.allSatisfy { $0.status == 0 }, "\(before)")
        #expect(!dumpBefore.isEmpty)

        let attack = try Attack([try Self.forge(), "/tmp", String(listener), "480"])
        // The forgery is in place: root reading the table sees the twin row.
        // (procfs files report size 0: read to the end, not by size)
        let data = try #require(FileHandle(forReadingAtPath: "/proc/net/unix")).readDataToEndOfFile()
        let table = String(decoding: data, as: UTF8.self)
        let twin = table.split(separator: "\n").filter { $0.hasPrefix("0000000000000000:") && $0.hasSuffix(" \(listener)") }
        try #require(twin.count == 1, "no forged twin of \(listener) in /proc/net/unix")
        #expect(table.split(separator: "\n").filter { $0.hasPrefix("0000000000000000:") }.count >= 481)

        for (q, was) in zip(questions, before) {
            let now = try Self.kpeer(q)
            #expect(now.status == was.status && now.stdout == was.stdout, "kpeer \(q): \(now) after, \(was) before")
        }
        #expect(Self.mine(try Self.kpeer(["--dump"]), f) == dumpBefore)
        let all = try Self.kpeer(["--all"])
        #expect(all.status == 0)
        for n in 0..<480 { #expect(!all.stdout.contains(" \(9_000_000 + n) ")) }
        withExtendedLifetime(attack) {}
    }

    /// The attacker binds the fixture's abstract listener name, a newline
    /// and a record: the table prints the attacker's row as bound to that
    /// name. `kpeer @NAME` still lists the fixture's listener and its one
    /// client, text and JSON; the attacker's socket is listed by its whole
    /// name (sock_diag's), newline and all.
    @Test func aNameCutShortImpersonatesNoService() throws {
        let f = try Fixture()
        let listener = try #require(f.sockets("seqlistener").first).inode
        let client = try #require(f.sockets("seqclient").first)
        let name = "@kpeer-fixture-\(f.process.processIdentifier)"
        let before = try Self.kpeer([name])
        #expect(before.status == 0 && client.pids.allSatisfy { before.stdout.contains("\($0)") }, "\(before)")
        let attack = try Attack([try Self.forge(), "cut", String(name.dropFirst())])
        let cut = try #require(attack.lines.first { $0.hasPrefix("cut ") }.flatMap { UInt64($0.dropFirst(4)) })
        // The table does print the attacker's socket under the fixture's name.
        let data = try #require(FileHandle(forReadingAtPath: "/proc/net/unix")).readDataToEndOfFile()
        let printed = String(decoding: data, as: UTF8.self).split(separator: "\n")
            .filter { $0.hasSuffix(" \(name)") }.compactMap { $0.split(separator: " ").dropFirst(6).first }
        try #require(printed.contains(Substring(String(cut))), "the attack's row is not in /proc/net/unix: \(printed)")

        let after = try Self.kpeer([name])
        #expect(after.status == before.status && after.stdout == before.stdout, "\(after), before \(before)")
        let json = try Self.kpeer(["--json", name])
        let doc = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
        let l = try #require(doc["listener"] as? [String: Any], "\(json.stdout)")
        #expect((l["inode"] as? NSNumber)?.uint64Value == listener)
        func inodes(_ v: Any) -> [UInt64] {
            if let d = v as? [String: Any] {
                return d.flatMap { k, x in k == "inode" ? [(x as? NSNumber)?.uint64Value ?? 0] : inodes(x) }
            }
            return (v as? [Any])?.flatMap(inodes) ?? []
        }
        #expect(!inodes(doc).contains(cut), "the attacker's socket \(cut) is in the answer")
        let all = try Self.kpeer(["--all"])
        let row = all.stdout.split(separator: "\n").first { $0.split(separator: " ").contains(Substring(String(cut))) }
        #expect(row?.contains("\(name)\\x0a0000000000000000:") == true, "\(row ?? "no row")")
        withExtendedLifetime(attack) {}

        // A name no socket has: the cut row does not make it a service.
        let vacant = "@kpeer-vacant-\(getpid())"
        let none = try Self.kpeer([vacant])
        let squatter = try Attack([try Self.forge(), "cut", String(vacant.dropFirst())])
        let still = try Self.kpeer([vacant])
        #expect(none.status == 2 && still.status == 2 && still.stdout.isEmpty, "\(still), before \(none)")
        withExtendedLifetime(squatter) {}
    }

    /// A twin of the socket root's listener accepted (its inode, at address
    /// 0): the listener still lists its client, and the client its peer.
    @Test func anAcceptedTwinHidesNoClient() throws {
        let f = try Fixture()
        let accepted = try #require(f.sockets("seqaccepted").first).inode
        let client = try #require(f.sockets("seqclient").first).inode
        let questions = [["@kpeer-fixture-\(f.process.processIdentifier)"], [String(client)], [String(accepted)],
                         ["--json", String(client)]]
        let before = try questions.map { try Self.kpeer($0) }
        #expect(before.allSatisfy { $0.status == 0 }, "\(before)")
        let attack = try Attack([try Self.forge(), "/tmp", String(accepted), "0"])
        let data = try #require(FileHandle(forReadingAtPath: "/proc/net/unix")).readDataToEndOfFile()
        let rows = String(decoding: data, as: UTF8.self).split(separator: "\n").filter { line in
            let f = line.split(separator: " ")
            return f.count > 6 && f[6] == Substring(String(accepted))
        }
        try #require(rows.count == 2, "no forged twin of \(accepted): \(rows)")
        for (q, was) in zip(questions, before) {
            let now = try Self.kpeer(q)
            #expect(now.status == was.status && now.stdout == was.stdout, "kpeer \(q): \(now) after, \(was) before")
        }
        withExtendedLifetime(attack) {}
    }

    /// The relabel aimed at a live service: the attacker's pair, from its
    /// own namespaces, passed off as bound to the fixture's abstract name.
    /// The service's answer does not move.
    @Test func aRelabelledPairJoinsNoService() throws {
        let f = try Fixture()
        let name = "kpeer-fixture-\(f.process.processIdentifier)"
        let questions = [["@" + name], ["--json", "@" + name]]
        let before = try questions.map { try Self.kpeer($0) }
        #expect(before.allSatisfy { $0.status == 0 }, "\(before)")
        let attack = try Attack([try Self.forge(), "relabel", name])
        let pair = try #require(attack.lines.first { $0.hasPrefix("pair ") }.flatMap { UInt64($0.dropFirst(5)) })
        for (q, was) in zip(questions, before) {
            let now = try Self.kpeer(q)
            #expect(now.status == was.status && now.stdout == was.stdout, "kpeer \(q): \(now) after, \(was) before")
            #expect(!now.stdout.contains(String(pair)))
        }
        withExtendedLifetime(attack) {}
    }

    /// A socketpair in the attacker's own user and network namespaces, and a
    /// forged row in ours that calls it `@NAME`: `kpeer @NAME` finds
    /// nothing, and the pair is listed in its own namespace, nameless.
    @Test func aPairIsNotRelabelled() throws {
        let name = "victim-svc-\(getpid())"
        let attack = try Attack([try Self.forge(), "relabel", name])
        let pair = try #require(attack.lines.first { $0.hasPrefix("pair ") }.flatMap { UInt64($0.dropFirst(5)) })
        let r = try Self.kpeer(["@" + name])
        #expect(r.status == 2 && r.stdout.isEmpty, "\(r)")
        let all = try Self.kpeer(["--all"])
        let rows = all.stdout.split(separator: "\n").filter { $0.split(separator: " ").contains(Substring(String(pair))) }
        #expect(!rows.isEmpty, "the attacker's pair \(pair) is not listed")
        #expect(rows.allSatisfy { !$0.contains(name) && $0.contains("net:[") }, "\(rows)")
    }
}
