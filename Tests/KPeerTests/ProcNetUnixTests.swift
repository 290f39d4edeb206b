import KPeerSystem
@testable import SocketInventory
import Testing

/// The /proc/net/unix parser, on text captured from real kernels.
@Suite(.layered) struct ProcNetUnixTests {
    // Captured as root with kptr_restrict=1 (real addresses), plus lines
    // from kptr_restrict=0 (hashed: upper 32 bits zero).
    static let sample = Array("""
        Num       RefCount Protocol Flags    Type St Inode Path
        ffff8880054d6c00: 00000002 00000000 00010000 0001 01 17395 /run/systemd/private
        ffff8880054d7400: 00000003 00000000 00000000 0001 03 17402 @/org/freedesktop/systemd1/notify
        ffff8880054d2000: 00000002 00000000 00000000 0002 01 17410 /tmp/dir with spaces/s.sock
        ffff8880054d3800: 00000003 00000000 00000000 0005 03 205101
        0000000062d40516: 00000003 00000000 00000000 0001 03  1588
        ffff888005a1e400: 00000002 00000000 00000000 0001 03     0 /tmp/.X11-unix/X0
        ffff888005a1f000: 00000002 00000000 00000000 0001 01 99999 /tmp/new
        line

        """.utf8)

    @Test func parsesEveryRecord() {
        let e = ProcNetUnix.parse(Self.sample)
        #expect(e.count == 7)
        #expect(e[0].address == 0xffff_8880_054d_6c00)
        #expect(e[0].refCount == 2)
        #expect(e[0].isListening)
        #expect(e[0].state == .listening)
        #expect(e[0].type == .stream)
        #expect(e[0].inode == 17395)
        #expect(e[0].path == SocketPath(bytes: Array("/run/systemd/private".utf8), isAbstract: false))
    }

    /// What came before each row: the kernel's header, a record with no
    /// name, or one with a name (which a forged record could follow).
    @Test func eachRowKnowsTheLineBeforeIt() {
        let e = ProcNetUnix.parse(Self.sample)
        #expect(e.map(\.preceding) == [.header, .named, .named, .named, .pathless, .pathless, .named])
        // A line that is no record after a row with no name: nothing is known after it.
        let odd = ProcNetUnix.parse(Array("""
            Num       RefCount Protocol Flags    Type St Inode Path
            ffff8880054d3800: 00000003 00000000 00000000 0005 03 205101
            garbage
            ffff8880054d3c00: 00000003 00000000 00000000 0005 03 205102

            """.utf8))
        #expect(odd.map(\.preceding) == [.header, .unknown])
        // No header first: not the kernel's table as it prints it.
        #expect(ProcNetUnix.parse(Array("x\nffff8880054d3800: 00000003 00000000 00000000 0005 03 205101\n".utf8))
                    .map(\.preceding) == [.unknown])
    }

    @Test func abstractNamesDropTheAt() {
        let e = ProcNetUnix.parse(Self.sample)
        #expect(e[1].path?.isAbstract == true)
        #expect(e[1].path?.bytes == Array("/org/freedesktop/systemd1/notify".utf8))
        #expect(e[1].path?.display == "@/org/freedesktop/systemd1/notify")
        #expect(e[1].state == .connected)
    }

    @Test func pathsWithSpacesAreKeptAndEscapedOnOutput() {
        let e = ProcNetUnix.parse(Self.sample)
        #expect(e[2].path?.bytes == Array("/tmp/dir with spaces/s.sock".utf8))
        #expect(e[2].path?.display == "/tmp/dir\\x20with\\x20spaces/s.sock")
        #expect(e[2].type == .dgram)
        #expect(e[2].state == .unconnected)
    }

    @Test func unboundAndHashedAndPadded() {
        let e = ProcNetUnix.parse(Self.sample)
        #expect(e[3].path == nil)
        #expect(e[3].type == .seqpacket)
        #expect(e[3].inode == 205101)
        #expect(e[4].address == 0x62d40516)  // hashed: below 2^32
        #expect(e[4].inode == 1588)           // %5lu padding
        #expect(e[5].isEmbryo)
        #expect(e[5].path?.display == "/tmp/.X11-unix/X0")
    }

    @Test func aNewlineInAPathContinuesTheRecord() {
        let e = ProcNetUnix.parse(Self.sample)
        #expect(e[6].path?.bytes == Array("/tmp/new\nline".utf8))
        #expect(e[6].path?.display == "/tmp/new\\x0aline")
    }

    @Test func garbageNeverCrashes() {
        let inputs: [String] = ["", "\n", "Num\nzz: 1 2 3\n", "Num\nffff: 00000002 00000000\n",
                                "Num\nffffffffffffffffff: 00000002 00000000 00010000 0001 01 1\n",
                                "Num\n1: 00000002 00000000 00010000 0001 01 99999999999999999999999\n",
                                "Num\n1: 1 2 3 4 5 6x\n", "\n\n\n@@@"]
        for text in inputs {
            #expect(ProcNetUnix.parse(Array(text.utf8)).count == 0)
        }
    }
}

@Suite(.layered) struct EscapeTests {
    @Test func plainNamesPassUnchanged() {
        #expect(Escape.bytes(Array("/tmp/.X11-unix/X0".utf8)) == "/tmp/.X11-unix/X0")
        #expect(Escape.bytes(Array("/run/ünïcode".utf8)) == "/run/ünïcode")
    }

    @Test func oddBytesBecomeHex() {
        #expect(Escape.bytes([0x61, 0x00, 0x62]) == "a\\x00b")
        #expect(Escape.bytes([0x61, 0x5C]) == "a\\x5c")
        #expect(Escape.bytes([0x61, 0xFF]) == "a\\xff")  // not UTF-8
        #expect(Escape.dumpField("a:b") == "a\\x3ab")
    }

    @Test func diagNamesSplitAbstract() {
        #expect(SocketPath(sunPath: [0, 0x61, 0, 0x62]).display == "@a\\x00b")
        #expect(SocketPath(sunPath: Array("/x".utf8) + [0, 0]).display == "/x")
    }
}
