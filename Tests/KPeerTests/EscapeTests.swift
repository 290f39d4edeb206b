import Foundation
import Glibc
import KPeerSystem
@testable import Rendering
@testable import SocketInventory
import Testing

/// Escaping for every text output but JSON: a name or path may not forge a
/// separator, break a line, move the cursor or reorder what a terminal
/// shows. The expected strings are written out by hand from the UTF-8
/// encoding of each character (the truth), not computed by the code under test.
@Suite(.layered) struct OutputEscapeTests {
    static func esc(_ s: String, also: UInt8? = nil) -> String { Escape.bytes(Array(s.utf8), also: also) }

    /// Characters any output must never carry raw, by class, with their
    /// UTF-8 bytes as `\xNN`.
    static let hostile: [(String, Unicode.Scalar, String)] = [
        ("C1 first", "\u{80}", "\\xc2\\x80"),
        ("NEL", "\u{85}", "\\xc2\\x85"),
        ("CSI", "\u{9B}", "\\xc2\\x9b"),
        ("C1 last", "\u{9F}", "\\xc2\\x9f"),
        ("no-break space", "\u{A0}", "\\xc2\\xa0"),
        ("soft hyphen", "\u{AD}", "\\xc2\\xad"),
        ("arabic letter mark", "\u{61C}", "\\xd8\\x9c"),
        ("ogham space", "\u{1680}", "\\xe1\\x9a\\x80"),
        ("en quad", "\u{2000}", "\\xe2\\x80\\x80"),
        ("figure space", "\u{2007}", "\\xe2\\x80\\x87"),
        ("hair space", "\u{200A}", "\\xe2\\x80\\x8a"),
        ("zero width space", "\u{200B}", "\\xe2\\x80\\x8b"),
        ("ZWNJ", "\u{200C}", "\\xe2\\x80\\x8c"),
        ("ZWJ", "\u{200D}", "\\xe2\\x80\\x8d"),
        ("LRM", "\u{200E}", "\\xe2\\x80\\x8e"),
        ("RLM", "\u{200F}", "\\xe2\\x80\\x8f"),
        ("line separator", "\u{2028}", "\\xe2\\x80\\xa8"),
        ("paragraph separator", "\u{2029}", "\\xe2\\x80\\xa9"),
        ("LRE", "\u{202A}", "\\xe2\\x80\\xaa"),
        ("RLE", "\u{202B}", "\\xe2\\x80\\xab"),
        ("PDF", "\u{202C}", "\\xe2\\x80\\xac"),
        ("LRO", "\u{202D}", "\\xe2\\x80\\xad"),
        ("RLO", "\u{202E}", "\\xe2\\x80\\xae"),
        ("narrow no-break space", "\u{202F}", "\\xe2\\x80\\xaf"),
        ("medium math space", "\u{205F}", "\\xe2\\x81\\x9f"),
        ("word joiner", "\u{2060}", "\\xe2\\x81\\xa0"),
        ("LRI", "\u{2066}", "\\xe2\\x81\\xa6"),
        ("RLI", "\u{2067}", "\\xe2\\x81\\xa7"),
        ("FSI", "\u{2068}", "\\xe2\\x81\\xa8"),
        ("PDI", "\u{2069}", "\\xe2\\x81\\xa9"),
        ("ideographic space", "\u{3000}", "\\xe3\\x80\\x80"),
        ("hangul filler", "\u{3164}", "\\xe3\\x85\\xa4"),
        ("BOM", "\u{FEFF}", "\\xef\\xbb\\xbf"),
        ("noncharacter", "\u{FFFF}", "\\xef\\xbf\\xbf"),
    ]

    static var hostileScalars: Set<UInt32> { Set(hostile.map(\.1.value)) }

    /// True when `text` holds a raw character of the hostile list, or an
    /// ASCII control other than the newline ending a line.
    static func hasRawHostile(_ text: String) -> Bool {
        let bad = hostileScalars
        return text.unicodeScalars.contains { c in
            (c.value < 0x20 && c != "\n") || c.value == 0x7F || (0x80...0x9F).contains(c.value) || bad.contains(c.value)
        }
    }

    /// Back from `\xNN` to bytes: the escaping loses nothing.
    static func unescape(_ s: String) -> [UInt8] {
        let b = Array(s.utf8)
        var out: [UInt8] = []
        var i = 0
        while i < b.count {
            if b[i] == 0x5C, i + 3 < b.count, b[i + 1] == 0x78, let v = UInt8(String(decoding: b[i + 2...i + 3], as: UTF8.self), radix: 16) {
                out.append(v)
                i += 4
            } else {
                out.append(b[i])
                i += 1
            }
        }
        return out
    }

    @Test func asciiControlsSpaceDELAndBackslash() {
        #expect(Self.esc("x\n1 init") == "x\\x0a1\\x20init")
        #expect(Self.esc("a\tb\rc\u{1B}[2Jd\u{7F}e\\f") == "a\\x09b\\x0dc\\x1b[2Jd\\x7fe\\x5cf")
        #expect(Self.esc("\u{0}") == "\\x00")
        #expect(Self.esc("kpf-alpha") == "kpf-alpha")  // the usual name, untouched
    }

    @Test(arguments: OutputEscapeTests.hostile.map { [$0.0, String($0.1), $0.2] })
    func everyHostileCharacterIsEscaped(_ c: [String]) {
        let (what, char, bytes) = (c[0], c[1], c[2])
        #expect(Self.esc("a" + char + "b") == "a" + bytes + "b", "\(what)")
        // Everywhere a name is printed: the answers, --all, --dump.
        let o = Owner(pid: 42, name: "x" + char, fd: 3)
        #expect(o.escapedName == "x" + bytes, "\(what)")
        #expect(o.label == "42/x" + bytes, "\(what)")
        #expect(Escape.dumpField(o.name) == "x" + bytes, "\(what)")
    }

    @Test func printableCharactersStay() {
        for s in ["é", "naïve", "日本語", "Ωmega", "😀", "ß-ü", "ẞ", "\u{301}"] {  // U+0301: a combining mark, visible
            #expect(Self.esc(s) == s, "\(s)")
        }
    }

    @Test func eachSeparatorIsEscapedWhereItSeparates() {
        let o = Owner(pid: 7, name: "x,1/sshd", fd: 3)
        #expect(o.label == "7/x\\x2c1/sshd")
        #expect(o.label.split(separator: ",").count == 1)
        // `/` stays: the pid, all digits, ends at the first one.
        #expect(o.label.split(separator: "/", maxSplits: 1).first == "7")
        #expect(Escape.dumpField("a:b,c") == "a\\x3ab,c")
        #expect(Escape.ownerName("a:b,c") == "a:b\\x2cc")
        #expect(Owner(pid: 7, name: "a b", fd: 3).escapedName == "a\\x20b")  // INODE and PATH answers
    }

    @Test func invalidUTF8IsEscapedByteByByte() {
        #expect(Escape.bytes([0x61, 0xFF, 0x62]) == "a\\xffb")
        #expect(Escape.bytes([0xC0, 0xAF]) == "\\xc0\\xaf")             // overlong '/'
        #expect(Escape.bytes([0xE0, 0x80, 0xAF]) == "\\xe0\\x80\\xaf")  // overlong '/', 3 bytes
        #expect(Escape.bytes([0xED, 0xA0, 0x80]) == "\\xed\\xa0\\x80")  // a surrogate
        #expect(Escape.bytes([0xF4, 0x90, 0x80, 0x80]) == "\\xf4\\x90\\x80\\x80")  // past U+10FFFF
        #expect(Escape.bytes([0xE2, 0x80]) == "\\xe2\\x80")            // cut short
        #expect(Escape.bytes([0xC3, 0xA9, 0xFF]) == "é\\xff")          // valid text around a bad byte stays
        #expect(Escape.bytes([0x80, 0x2C], also: 0x2C) == "\\x80\\x2c")
    }

    /// Unicode scalars: escaped output is plain ASCII or a character
    /// not in the hostile list, never holds a raw line break, and decodes
    /// back to exactly the input.
    @Test func everyScalarRoundTrips() {
        var failures: [UInt32] = []
        // The BMP, the emoji plane, tags and variation selectors (plane 14)
        // and the last code points: all of them in a debug build costs ~17 s.
        let ranges: [ClosedRange<UInt32>] = [0...0xFFFF, 0x1F000...0x1FFFF, 0xE0000...0xE0FFF, 0x10FFF0...0x10FFFF]
        for v in ranges.joined() {
            guard let c = Unicode.Scalar(v) else { continue }
            let raw = Array(String(c).utf8)
            let e = Escape.bytes(raw)
            if Self.unescape(e) != raw || Self.hasRawHostile(e) || e.contains(" ") { failures.append(v) }
        }
        #expect(failures.isEmpty, "\(failures.prefix(10).map { String($0, radix: 16) })")
    }

    /// A socket path goes through the same escaping.
    @Test func pathsAreEscapedToo() {
        #expect(SocketPath(bytes: Array("/tmp/a\u{202E}b\nc".utf8), isAbstract: false).display == "/tmp/a\\xe2\\x80\\xaeb\\x0ac")
        #expect(SocketPath(bytes: [0x78, 0xFF], isAbstract: true).display == "@x\\xff")
    }

    /// DOT: Graphviz turns `&#x202e;` in a label into U+202E, so `&` is
    /// `&amp;`. Checked with Graphviz itself when it is installed.
    @Test func dotLabelsCarryNoEntities() throws {
        let label = Dot.quote(["12", Self.esc("&#x202e;a\"b\\c")])
        #expect(label == "\"12\\n&amp;#x202e;a\\\"b\\\\x5cc\"")
        guard let dot = Support.which("dot") else { return }
        let dir = Support.tempDir()
        try "digraph { p [label=\(label)]; }\n".write(toFile: dir + "/g.dot", atomically: true, encoding: .utf8)
        let r = try Support.run(dot, ["-Tplain", dir + "/g.dot"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(!r.stdout.unicodeScalars.contains("\u{202E}"))
        #expect(r.stdout.contains("&#x202e;a"), "\(r.stdout)")
    }
}

/// End to end: processes that name themselves to forge an owner, a field,
/// or reorder a line, holding the two ends of a socketpair.
@Suite(.serialized, .tags(.binary, .fixture), .layered) struct HostileOwnerOutputTests {
    /// Parent `x,1/sshd` holds one end, a child `a<RLO>:b<LS>` the other.
    /// Prints `INODE_A INODE_B CHILD_PID` once the child has renamed itself.
    static let source = """
        import ctypes, os, socket, sys
        libc = ctypes.CDLL(None)
        a, b = socket.socketpair()
        r, w = os.pipe()
        child = os.fork()
        if child == 0:
            a.close()
            libc.prctl(15, "a\\u202e:b\\u2028".encode(), 0, 0, 0)  # PR_SET_NAME
            os.write(w, b"x")
            sys.stdin.read()
            os._exit(0)
        b_ino = os.fstat(b.fileno()).st_ino
        b.close()
        libc.prctl(15, b"x,1/sshd", 0, 0, 0)
        os.read(r, 1)
        print(os.fstat(a.fileno()).st_ino, b_ino, child, flush=True)
        sys.stdin.read()
        os.waitpid(child, 0)
        """

    final class Pair {
        let process = Process()
        let input = Pipe()
        var fields: [String] = []

        init() throws {
            let output = Pipe()
            process.executableURL = URL(fileURLWithPath: Support.which("python3")!)
            process.arguments = ["-c", HostileOwnerOutputTests.source]
            process.standardInput = input
            process.standardOutput = output
            try process.run()
            var text = ""
            while !text.hasSuffix("\n") {
                let chunk = output.fileHandleForReading.availableData
                if chunk.isEmpty { break }
                text += String(decoding: chunk, as: UTF8.self)
            }
            fields = text.split(whereSeparator: \.isWhitespace).map(String.init)
        }

        deinit {
            try? input.fileHandleForWriting.close()
            process.waitUntilExit()
        }
    }

    static let childName = "a\\xe2\\x80\\xae:b\\xe2\\x80\\xa8"

    @Test(.enabled(if: Support.which("python3") != nil, "needs python3 to rename processes"))
    func forgedOwnersFieldsAndBidiAreEscaped() throws {
        let p = try Pair()
        try #require(p.fields.count == 3, "\(p.fields)")
        let (a, b, child) = (p.fields[0], p.fields[1], p.fields[2])
        let parent = String(p.process.processIdentifier)
        let kpeer = Support.kpeerBinary

        let all = try Support.run(kpeer, ["--method", "netlink", "--all"])
        #expect(all.status == 0, "\(all.stderr)")
        let row = try #require(all.stdout.split(separator: "\n").first { $0.split(separator: " ").contains(Substring(a)) })
        let tokens = row.split(separator: " ").map(String.init)
        let at = try #require(tokens.firstIndex(of: a))
        try #require(tokens.count == at + 3, "owner, peer, and no path: \(row)")
        let owner = tokens[at + 1], peer = tokens[at + 2]
        #expect(owner.split(separator: ",").count == 1, "one owner: \(owner)")
        #expect(owner == "\(parent)/x\\x2c1/sshd")
        #expect(peer == "\(child)/\(Self.childName)")
        let other = try #require(all.stdout.split(separator: "\n").first { $0.split(separator: " ").contains(Substring(b)) })
        #expect(other.split(separator: " ").suffix(2) == ["\(child)/\(Self.childName)", "\(parent)/x\\x2c1/sshd"])

        // Each process also holds what Foundation's Process gave it (a
        // socket to the test runner): only the lines of the pair's sockets.
        let dump = try Support.run(kpeer, ["--method", "netlink", "--dump"])
        #expect(dump.status == 0, "\(dump.stderr)")
        let lines = dump.stdout.split(separator: "\n").filter { $0.contains(":\(a):") || $0.contains(":\(b):") }
        #expect(lines.count == 2, "\(lines)")
        for line in lines { #expect(line.split(separator: ":", omittingEmptySubsequences: false).count == 6, "\(line)") }
        #expect(lines.contains("x,1/sshd:\(parent):\(a):\(b):\(child):a\\xe2\\x80\\xae\\x3ab\\xe2\\x80\\xa8"))
        #expect(lines.contains("a\\xe2\\x80\\xae\\x3ab\\xe2\\x80\\xa8:\(child):\(b):\(a):\(parent):x,1/sshd"))

        let one = try Support.run(kpeer, ["--method", "netlink", a])
        #expect(one.stdout == "\(child) \(Self.childName)\n")

        let dot = try Support.run(kpeer, ["--method", "netlink", "--all", "--format", "dot"])
        #expect(dot.stdout.contains("p\(child) [label=\"\(child)\\n\(Self.childName.replacingOccurrences(of: "\\", with: "\\\\"))\"]"))
        for (form, text) in [("--all", all.stdout), ("--dump", dump.stdout), ("INODE", one.stdout), ("dot", dot.stdout)] {
            #expect(!text.isEmpty, "\(form)")
            #expect(!OutputEscapeTests.hasRawHostile(text), "\(form) carries a raw control or bidi character")
        }
    }
}

/// The rest of the issue's characters, end to end and in every text form:
/// NEL (U+0085), CSI (U+009B) and a no-break space (U+00A0) in a process
/// name, and in the path of the socket it listens on.
@Suite(.serialized, .tags(.binary, .fixture), .layered) struct HostileOwnerFormsTests {
    /// Binds DIR/l<NEL><CSI><NBSP>.sock, listens, connects to it, accepts;
    /// prints `LISTENER CLIENT ACCEPTED` inodes once renamed.
    static let source = """
        import ctypes, os, socket, sys
        libc = ctypes.CDLL(None)
        libc.prctl(15, "n\\u0085c\\u009bs\\u00a0".encode(), 0, 0, 0)  # PR_SET_NAME
        path = os.fsencode(sys.argv[1]) + "/l\\u0085\\u009b\\u00a0.sock".encode()
        l = socket.socket(socket.AF_UNIX); l.bind(path); l.listen(4)
        c = socket.socket(socket.AF_UNIX); c.connect(path)
        s, _ = l.accept()
        print(*(os.fstat(x.fileno()).st_ino for x in (l, c, s)), flush=True)
        sys.stdin.read()
        """

    @Test(.enabled(if: Support.which("python3") != nil, "needs python3 to rename processes"))
    func everyTextFormEscapesThem() throws {
        let dir = Support.tempDir()
        let input = Pipe(), output = Pipe()
        let p = Process()
        p.executableURL = URL(fileURLWithPath: Support.which("python3")!)
        p.arguments = ["-c", Self.source, dir]
        p.standardInput = input
        p.standardOutput = output
        try p.run()
        defer { try? input.fileHandleForWriting.close(); p.waitUntilExit() }
        var text = ""
        while !text.hasSuffix("\n") {
            let chunk = output.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            text += String(decoding: chunk, as: UTF8.self)
        }
        let inodes = text.split(whereSeparator: \.isWhitespace).map(String.init)
        try #require(inodes.count == 3, "\(text)")
        let name = "n\\xc2\\x85c\\xc2\\x9bs\\xc2\\xa0"
        let path = dir + "/l\u{85}\u{9B}\u{A0}.sock"
        let shownPath = dir + "/l\\xc2\\x85\\xc2\\x9b\\xc2\\xa0.sock"
        let kpeer = Support.kpeerBinary
        let pid = String(p.processIdentifier)
        let forms: [(String, [String])] = [
            ("--all", ["--all"]), ("--all -e", ["--all", "-e"]), ("--dump", ["--dump"]),
            ("INODE", [inodes[1]]), ("INODE -v", ["-v", inodes[1]]), ("PATH", [path]), ("PATH -v", ["-v", path]),
            ("dot", ["--all", "--format", "dot"])]
        for (form, args) in forms {
            let r = try Support.run(kpeer, ["--method", "netlink"] + args)
            #expect(r.status == 0, "\(form): \(r.stderr)")
            let mine = r.stdout.split(separator: "\n").filter { line in inodes.contains { line.contains($0) } || line.contains(pid) }
            #expect(!mine.isEmpty || form.hasPrefix("INODE") || form.hasPrefix("PATH"), "\(form): \(r.stdout)")
            #expect(!OutputEscapeTests.hasRawHostile(r.stdout + r.stderr), "\(form) carries a raw NEL, CSI or no-break space")
            let shown = form == "dot" ? name.replacingOccurrences(of: "\\", with: "\\\\") : name  // DOT doubles backslashes
            #expect(r.stdout.contains(shown), "\(form) does not name \(pid) escaped: \(r.stdout)")
            if form.hasPrefix("--all") { #expect(r.stdout.contains(shownPath), "\(form): \(r.stdout)") }
        }
    }
}
