import Foundation

/// Tests/Fixture/fixture.c, running: processes with known names holding
/// sockets it connected itself, and the truth it printed about them.
class Fixture {
    struct Socket {
        var inode: UInt64
        var role: String
        var pids: [Int32]
    }

    let process: Process
    let input: Pipe
    /// Where the fixture bound its socket files.
    let dir: String
    var names: [Int32: String] = [:]
    var sockets: [Socket] = []
    /// The `--dump` lines the fixture expects for its own sockets.
    var dump: [String] = []
    /// Every link, in the dump's six fields: each (holder, peer holder)
    /// pair; a pending client's peer socket is its listener.
    var links: [String] = []

    var inodes: Set<UInt64> { Set(sockets.map(\.inode)) }

    func sockets(_ role: String) -> [Socket] { sockets.filter { $0.role == role } }

    /// `PID NAME` lines expected from `kpeer INODE`, from the truth's links.
    func expectedAnswer(_ inode: UInt64) -> [String] {
        var seen = Set<String>()
        return links.compactMap { line -> String? in
            let f = line.split(separator: ":", omittingEmptySubsequences: false)
            guard f.count == 6, UInt64(f[2]) == inode else { return nil }
            return "\(f[4]) \(f[5])"
        }.filter { seen.insert($0).inserted }.sorted { Int($0.split(separator: " ")[0])! < Int($1.split(separator: " ")[0])! }
    }

    /// The owner column `--all` shows for a socket of the fixture: its
    /// lowest-pid holder, `,+N` for N more.
    func ownerColumn(_ inode: UInt64) -> String? {
        guard let pids = sockets.first(where: { $0.inode == inode })?.pids.sorted(), let first = pids.first else { return nil }
        return "\(first)/\(names[first] ?? "?")" + (pids.count > 1 ? ",+\(pids.count - 1)" : "")
    }

    /// The fixture compiled once per test run.
    static func binary() throws -> String {
        try Support.program("Tests/Fixture/fixture.c", named: "kpeer-fixture")
    }

    /// `launcher` runs the fixture under another program (`unshare -n`).
    init(launcher: [String] = []) throws {
        dir = Support.tempDir()
        let started = try Support.startUntilReady(launcher + [try Self.binary(), dir], what: "fixture")
        process = started.process
        input = started.input
        let text = started.text
        for line in text.split(separator: "\n") {
            let f = line.split(separator: " ", maxSplits: 3)
            switch f.first {
            case "proc": names[Int32(f[1])!] = String(f[2])
            case "sock": sockets.append(Socket(inode: UInt64(f[1])!, role: String(f[2]),
                                               pids: f[3].split(separator: ",").map { Int32($0)! }))
            case "dump": dump.append(String(line.dropFirst(5)))
            case "link": links.append(String(line.dropFirst(5)))
            default: break
            }
        }
    }

    deinit {
        try? input.fileHandleForWriting.close()  // EOF: the fixture cleans up and exits
        process.waitUntilExit()
    }
}
