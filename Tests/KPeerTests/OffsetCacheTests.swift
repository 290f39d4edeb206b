import Foundation
import Testing
@testable import KPeerSystem
@testable import TypeOffsets

/// The remembered offset: what is stored is what comes back, for the same
/// build only, and nothing doubtful is believed.
@Suite(.tags(.root), .layered) struct OffsetCacheTests {
    static let build: [UInt8] = Array(0..<20)
    static let other: [UInt8] = Array(1...20)

    static func cache() -> OffsetCache { OffsetCache(path: Support.tempDir() + "/kpeer/offsets") }

    @Test(.enabled(if: Host.isRoot, "the cache believes root-owned files only"))
    func whatIsStoredComesBackForTheSameBuildOnly() throws {
        let c = Self.cache()
        #expect(c.lookup(buildID: Self.build) == nil)
        let o = MemberOffset(value: 864, structSize: 1024, source: .btf, origin: "/sys/kernel/btf/vmlinux", addrOffset: 776)
        c.store(o, buildID: Self.build)
        var back = try #require(c.lookup(buildID: Self.build))
        #expect(back.remembered)
        back.remembered = false
        #expect(back == o)
        #expect(c.lookup(buildID: Self.other) == nil)
        // A path with spaces is the rest of the line.
        let d = MemberOffset(value: 856, source: .dwarf, origin: "/usr/lib/debug/boot/vmlinux 6.1")
        c.store(d, buildID: Self.build)
        #expect(c.lookup(buildID: Self.build).map { ($0.value, $0.structSize, $0.origin) } ?? (0, 0, "")
                == (856, nil, "/usr/lib/debug/boot/vmlinux 6.1"))
        c.forget()
        #expect(c.lookup(buildID: Self.build) == nil)
    }

    @Test(.enabled(if: Host.isRoot, "the cache believes root-owned files only"))
    func onlySymbolsAreRemembered() {
        let c = Self.cache()
        for o in [MemberOffset(value: 864, source: .calibration, origin: "socketpair"),
                  MemberOffset(value: 864, source: .option, origin: "--offset"),
                  MemberOffset(value: 864, source: .btf, origin: "x", remembered: true)] {
            c.store(o, buildID: Self.build)
            #expect(!FileManager.default.fileExists(atPath: c.path), "\(o.source)")
        }
        c.store(MemberOffset(value: 864, source: .btf, origin: "x"), buildID: [])
        #expect(!FileManager.default.fileExists(atPath: c.path))
    }

    @Test(.enabled(if: Host.isRoot, "the cache believes root-owned files only"))
    func doubtfulFilesAreNotBelieved() throws {
        let c = Self.cache()
        let hex = BuildID.hex(Self.build)
        let bad = ["\(hex) unix_sock.peer 12 1024 776 btf x\n",       // not a multiple of 8
                   "\(hex) unix_sock.peer 100000 - - btf x\n",        // implausible
                   "\(hex) unix_sock.peer 864 800 776 btf x\n",       // struct smaller than the offset
                   "\(hex) unix_sock.peer 864 1024 864 btf x\n",      // addr where peer is
                   "\(hex) unix_sock.peer 864 1024 2000 btf x\n",     // addr outside the struct
                   "\(hex) unix_sock.peer 864 1024 776 calibration x\n",
                   "\(hex) unix_sock.sk 864 1024 776 btf x\n",
                   "\(hex) unix_sock.peer 864 1024 776 btf x",        // no newline: cut short
                   "\(hex) unix_sock.peer 864 1024 btf x\n",          // the old format
                   "\(hex) unix_sock.peer 864 1024 776 btf\n", ""]
        for text in bad {
            #expect(Files.replace(c.path, with: Array(text.utf8)))
            #expect(c.lookup(buildID: Self.build) == nil, "\(text)")
        }
        #expect(Files.replace(c.path, with: Array("\(hex) unix_sock.peer 864 1024 - btf x\n".utf8)))
        #expect(c.lookup(buildID: Self.build)?.value == 864)
        chmod(c.path, 0o664)  // group-writable
        #expect(c.lookup(buildID: Self.build) == nil)
        chmod(c.path, 0o644)
        let link = c.path + ".link"
        symlink(c.path, link)
        #expect(OffsetCache(path: link).lookup(buildID: Self.build) == nil)
    }
}
