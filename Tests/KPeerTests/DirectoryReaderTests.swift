import Foundation
import Glibc
import Testing
@testable import KPeerSystem

/// DirectoryReader against directories this test fills itself (the names it
/// created, and what FileManager lists), and against /proc for this
/// process's own pid, thread and descriptor.
@Suite(.layered) struct DirectoryReaderTests {
    /// Fixed seed: the names are the same every run.
    static let seed: UInt64 = 0x6469_7265_6e74_7336

    /// `count` unique names: pid-like numbers, ten-digit numbers, ASCII and
    /// UTF-8 names up to the 255-byte limit, printable punctuation, names
    /// that begin or end with dots.
    static func names(_ count: Int, _ rng: inout SplitMix64) -> [[UInt8]] {
        let pieces = ["é", "e\u{301}", "日本", "🙂", "ß", "Ω", "\u{200B}", " ", "-"].map { Array($0.utf8) }
        var out = (0..<count).map { i -> [UInt8] in
            let tag = Array(String(i).utf8)
            switch i % 6 {
            case 0: return tag
            case 1: return Array(String(1_000_000_000 + i).utf8)
            case 2:
                let length = i % 12 == 2 ? 255 : 200 + Int(rng.next() % 56)
                return Array("L\(i)-".utf8) + [UInt8](repeating: UInt8(ascii: "x"), count: length - tag.count - 2)
            case 3:
                let length = i % 12 == 3 ? 255 : tag.count + 1 + Int(rng.next() % UInt64(255 - tag.count))
                var name = tag
                while true {
                    let p = pieces[Int(rng.next() % UInt64(pieces.count))]
                    if name.count + p.count > length { break }
                    name += p
                }
                return name + [UInt8](repeating: UInt8(ascii: "a"), count: length - name.count)
            case 4:
                let extra = (0..<Int(rng.next() % 12)).map { _ -> UInt8 in
                    let b = UInt8(0x21 + rng.next() % 94)
                    return b == UInt8(ascii: "/") ? UInt8(ascii: "_") : b
                }
                return Array("r\(i)-".utf8) + extra
            default:
                return Array([".\(i)", "..\(i)", "\(i)."][i % 3].utf8)
            }
        }
        // The same text composed and decomposed: two names, equal Strings.
        out += ["café", "cafe\u{301}"].map { Array($0.utf8) }
        return out
    }

    /// Makes an empty file of each name in a fresh directory.
    static func fill(_ names: [[UInt8]]) throws -> String {
        let dir = Support.tempDir()
        for name in names {
            let path = Array(dir.utf8) + [UInt8(ascii: "/")] + name + [0]
            let fd = path.withUnsafeBufferPointer {
                $0.withMemoryRebound(to: CChar.self) { open($0.baseAddress!, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0o600) }
            }
            guard fd >= 0 else { throw Support.Failure("cannot create \(String(decoding: name, as: UTF8.self)): errno \(errno)") }
            close(fd)
        }
        return dir
    }

    static func bytes(_ p: UnsafePointer<UInt8>) -> [UInt8] {
        var n = 0
        while p[n] != 0 { n += 1 }
        return Array(UnsafeBufferPointer(start: p, count: n))
    }

    struct Listing {
        var ok: Bool
        var names: [[UInt8]]
        var errno: Int32
    }

    /// Every name of the directory at `path`, with `reader`.
    static func list(_ path: String, _ reader: DirectoryReader) throws -> Listing {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw Support.Failure("cannot open \(path): errno \(errno)") }
        defer { close(fd) }
        var names: [[UInt8]] = []
        errno = 0
        let ok = reader.forEach(fd) { names.append(bytes($0)); return true }
        return Listing(ok: ok, names: names, errno: errno)
    }

    static let dots: Set<[UInt8]> = [Array(".".utf8), Array("..".utf8)]

    @Test func listsEveryNameOnceAtAnyBufferSize() throws {
        var rng = SplitMix64(seed: Self.seed)
        let created = Self.names(3000, &rng)
        #expect(Set(created).count == created.count)
        let dir = try Self.fill(created)
        // What FileManager lists, as bytes (as Strings, café and cafe\u{301}
        // would be one).
        let fileManager = try FileManager.default.contentsOfDirectory(atPath: dir).map { Array($0.utf8) }
        #expect(Set(fileManager) == Set(created), "FileManager disagrees with the fixture; the fixture is wrong")
        let truth = Set(created).union(Self.dots)

        // 280 bytes: exactly one record of a 255-byte name; 512: a few
        // records a call; the default: the whole directory in a few calls.
        for reader in [DirectoryReader(capacity: 280), DirectoryReader(capacity: 512), DirectoryReader()] {
            // Twice with one reader: its buffer is reused.
            for round in 0..<2 {
                let got = try Self.list(dir, reader)
                #expect(got.ok, "round \(round): forEach failed, errno \(got.errno)")
                #expect(got.names.count == truth.count, "round \(round): \(got.names.count) entries, \(truth.count) in the directory")
                let seen = Set(got.names)
                #expect(seen == truth,
                        "round \(round): missing \(truth.subtracting(seen).prefix(3).map { String(decoding: $0, as: UTF8.self) }), extra \(seen.subtracting(truth).prefix(3).map { String(decoding: $0, as: UTF8.self) })")
            }
        }
    }

    @Test func namesAreBytesNotText() throws {
        // Names that are not UTF-8 come back byte for byte.
        var rng = SplitMix64(seed: Self.seed ^ 1)
        let created: [[UInt8]] = (0..<300).map { i in
            Array("b\(i)-".utf8) + (0..<(1 + Int(rng.next() % 40))).map { _ -> UInt8 in
                let b = UInt8(1 + rng.next() % 255)
                return b == UInt8(ascii: "/") ? 0xff : b
            }
        }
        let dir = try Self.fill(created)
        let got = try Self.list(dir, DirectoryReader(capacity: 512))
        #expect(got.ok)
        #expect(got.names.count == created.count + 2)
        #expect(Set(got.names) == Set(created).union(Self.dots))
    }

    @Test func stopsWhenTheBodySaysSo() throws {
        var rng = SplitMix64(seed: Self.seed ^ 2)
        let created = Self.names(600, &rng)
        let dir = try Self.fill(created)
        let total = created.count + 2
        for capacity in [280, 512, 32 * 1024] {
            let reader = DirectoryReader(capacity: capacity)
            for stopAt in [1, 2, 3, 17, 333, total - 1, total] {
                let fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
                try #require(fd >= 0)
                defer { close(fd) }
                var calls = 0
                let ok = reader.forEach(fd) { _ in
                    calls += 1
                    return calls < stopAt
                }
                #expect(ok, "capacity \(capacity) stop at \(stopAt)")
                #expect(calls == stopAt, "capacity \(capacity): body returned false at call \(stopAt), called \(calls) times")
            }
        }
    }

    @Test func failsOnWhatIsNotADirectory() throws {
        let dir = try Self.fill([Array("plain".utf8)])
        let fd = open(dir + "/plain", O_RDONLY | O_CLOEXEC)
        try #require(fd >= 0)
        defer { close(fd) }
        var calls = 0
        errno = 0
        let ok = DirectoryReader().forEach(fd) { _ in calls += 1; return true }
        let code = errno
        #expect(!ok)
        #expect(code == ENOTDIR, "errno \(code)")
        #expect(calls == 0)

        errno = 0
        let bad = DirectoryReader().forEach(-1) { _ in calls += 1; return true }
        let badCode = errno
        #expect(!bad)
        #expect(badCode == EBADF, "errno \(badCode)")
        #expect(calls == 0)
    }

    @Test func aBufferTooSmallForARecordIsAFailure() throws {
        // A 255-byte name needs a 280-byte record: getdents64 refuses a
        // 64-byte buffer, and the listing must not end as if complete.
        let dir = try Self.fill([[UInt8](repeating: UInt8(ascii: "n"), count: 255)])
        let got = try Self.list(dir, DirectoryReader(capacity: 64))
        #expect(!got.ok, "listed \(got.names.count) names as if complete")
        #expect(got.errno == EINVAL, "errno \(got.errno)")
    }

    @Test func procListsThisProcess() throws {
        let reader = DirectoryReader(capacity: 512)
        let proc = try Self.list("/proc", reader)
        #expect(proc.ok)
        let pids = proc.names.compactMap(Self.number)
        #expect(pids.contains(getpid()), "pid \(getpid()) not among \(pids.count) numbers in /proc")
        #expect(Set(proc.names).isSuperset(of: Self.dots.union([Array("self".utf8)])))

        // This thread in /proc/self/task, a descriptor it holds in /proc/self/fd.
        // The thread's id as the kernel names it: /proc/thread-self is a
        // link to PID/task/TID.
        var link = [CChar](repeating: 0, count: 64)
        let n = readlink("/proc/thread-self", &link, link.count - 1)
        try #require(n > 0)
        let tid = try #require(String(decoding: link.prefix(n).map { UInt8(bitPattern: $0) }, as: UTF8.self).split(separator: "/").last.flatMap { Int32($0) })
        let tasks = try Self.list("/proc/self/task", reader)
        #expect(tasks.ok)
        #expect(tasks.names.compactMap(Self.number).contains(tid), "tid \(tid) not in /proc/self/task")

        let fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC)
        try #require(fd >= 0)
        defer { close(fd) }
        let fds = try Self.list("/proc/self/fd", reader)
        #expect(fds.ok)
        #expect(fds.names.compactMap(Self.number).contains(fd), "fd \(fd) not in /proc/self/fd")
    }

    /// DirectoryReader.number over a name's bytes.
    static func number(_ name: [UInt8]) -> Int32? {
        (name + [0]).withUnsafeBufferPointer { DirectoryReader.number($0.baseAddress!) }
    }

    /// The truth for number(): one to nine ASCII digits, read in decimal.
    static func expectedNumber(_ name: [UInt8]) -> Int32? {
        guard (1...9).contains(name.count), name.allSatisfy({ (0x30...0x39).contains($0) }) else { return nil }
        return Int32(String(decoding: name, as: UTF8.self))
    }

    @Test func numberTakesOneToNineDigits() {
        let fixed = ["0", "123", "999999999", "000000001", "214748364",
                     "1234567890", "", "12a", "-1", "+1", " 1", "1 ", "a", "1.0", "٣", "99999999999999999999"]
        for s in fixed {
            let name = Array(s.utf8)
            #expect(Self.number(name) == Self.expectedNumber(name), "\"\(s)\"")
        }
        // The documented bounds, as the truth function states them.
        #expect(Self.expectedNumber(Array("999999999".utf8)) != nil && Self.expectedNumber(Array("1234567890".utf8)) == nil)

        // Random names over digits and their neighbours in ASCII.
        var rng = SplitMix64(seed: Self.seed ^ 3)
        let alphabet = Array("0123456789/:a-".utf8)
        var wrong: [String] = []
        for _ in 0..<20000 {
            let digitsOnly = rng.next() % 2 == 0
            let name = (0..<Int(rng.next() % 12)).map { _ in alphabet[Int(rng.next() % UInt64(digitsOnly ? 10 : alphabet.count))] }
            if Self.number(name) != Self.expectedNumber(name) { wrong.append(String(decoding: name, as: UTF8.self)) }
        }
        #expect(wrong.isEmpty, "seed \(Self.seed ^ 3): wrong for \(wrong.prefix(5))")
    }
}
