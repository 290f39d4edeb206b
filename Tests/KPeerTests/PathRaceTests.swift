import CKPeer
import Foundation
import Glibc
import Testing
@testable import KPeerSystem
@testable import TypeOffsets

/// Files a user names (--btf, --dwarf) are opened once, checked, and read
/// through that descriptor: the path may be swapped for something else
/// (a FIFO, another file) right after the check. The race itself is not
/// timed here: each test swaps the path after the descriptor is open, so
/// reading by path again would read the swapped-in file, deterministically.
@Suite(.serialized, .layered) struct PathRaceTests {
    /// `path` replaced by a FIFO (rename over it: the open descriptor keeps
    /// the old file).
    static func swapForFIFO(_ path: String) throws {
        let fifo = path + ".fifo"
        try #require(mkfifo(fifo, 0o600) == 0)
        try #require(rename(fifo, path) == 0)
    }

    /// The DWARF fixture built from `source` (DWARFTests.source unless given).
    static func build(_ source: String = DWARFTests.source) throws -> (path: String, truth: [Int]) {
        let dir = Support.tempDir()
        try source.write(toFile: dir + "/unix_sock.c", atomically: true, encoding: .utf8)
        try Support.gcc([dir + "/unix_sock.c"], output: dir + "/unix_sock", flags: ["-g", "-Wl,--build-id"])
        let out = try Support.run(dir + "/unix_sock", [])
        return (dir + "/unix_sock", out.stdout.split(whereSeparator: \.isWhitespace).compactMap { Int($0) })
    }

    /// The same struct with another layout: `peer` elsewhere.
    static let otherSource = DWARFTests.source.replacingOccurrences(of: "char opaque[776]", with: "char opaque[1000]")

    /// The raw BTF of a fixture (pahole -J, then .BTF dumped).
    static func rawBTF(_ source: String = DWARFTests.source) throws -> (path: String, truth: [Int]) {
        let (elf, truth) = try build(source)
        _ = try Support.run(Support.which("pahole")!, ["-J", elf])
        let raw = elf + ".btf"
        _ = try Support.run(Support.which("objcopy")!, ["--dump-section", ".BTF=" + raw, elf, elf + ".junk"])
        return (raw, truth)
    }

    static var hasPahole: Bool { Support.which("pahole") != nil && Support.which("objcopy") != nil }

    /// The descriptor is opened, then another BTF (another layout) is
    /// renamed over the path, then the path is unlinked: each parse still
    /// reads the first file. Parsing by path would read the second file's
    /// offset, then find nothing.
    @Test(.enabled(if: PathRaceTests.hasPahole, "needs pahole and objcopy"))
    func btfIsParsedThroughTheCheckedDescriptor() throws {
        let (raw, truth) = try Self.rawBTF()
        let (other, otherTruth) = try Self.rawBTF(Self.otherSource)
        try #require(otherTruth[0] != truth[0])
        let fd = open(raw, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        try #require(fd >= 0)
        defer { close(fd) }
        try #require(rename(other, raw) == 0)  // the swap, after the check
        var offset: UInt64 = 0, also: UInt64 = 0, size: UInt64 = 0
        var err = kp_error()
        let rc = kp_btf_fd_member_offsets(fd, raw, "unix_sock", "peer", "addr", &offset, &also, &size, &err)
        #expect(rc == KP_OK, "\(KPeerError(err).problem)")
        #expect(Int(offset) == truth[0] && Int(size) == truth[1])
        #expect(also == 776)  // the fixture's addr: after struct sock's 776 bytes
        unlink(raw)
        #expect(kp_btf_fd_member_offsets(fd, raw, "unix_sock", "peer", nil, &offset, nil, &size, &err) == KP_OK)
        #expect(Int(offset) == truth[0])
    }

    /// A descriptor that is not a regular file is refused before anything
    /// reads it: a FIFO with no writer would block the read for ever.
    @Test func btfOfANonRegularDescriptorIsRefused() throws {
        let dir = Support.tempDir()
        try #require(mkfifo(dir + "/fifo", 0o600) == 0)
        for path in [dir + "/fifo", dir, "/dev/null"] {
            let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
            try #require(fd >= 0, "\(path)")
            var offset: UInt64 = 0, size: UInt64 = 0
            var err = kp_error()
            #expect(kp_btf_fd_member_offsets(fd, path, "unix_sock", "peer", nil, &offset, nil, &size, &err) == KP_ENOTREG, "\(path)")
            #expect(KPeerError(err).problem == "\(path) is not a regular file")
            #expect(KPeerError(err).kind == .badFile)
            close(fd)
        }
        // The path-based entry refuses them the same way (it opens, then checks the descriptor).
        #expect(kindOf { _ = try BTF.memberOffset(path: dir + "/fifo") } == .badFile)
        // kp_open_checked, which --dwarf uses.
        var err = kp_error()
        #expect(kp_open_checked(dir + "/fifo", &err) == -1)
        #expect(err.code == KP_ENOTREG)
        #expect(KPeerError(err).problem == "\(dir)/fifo is not a regular file")
        #expect(kindOf { _ = try DWARF.checkedMemberOffset(path: dir + "/fifo", force: false, runningBuildID: [1]) } == .badFile)
    }

    /// The build-id checked and the DWARF read are the same file's: after
    /// the check the path is swapped for another build (other build-id,
    /// other offset), and both reads still give the first file's.
    @Test func dwarfBuildIDAndOffsetComeFromOneDescriptor() throws {
        let (first, truth) = try Self.build()
        let firstID = try BuildID.ofFile(first)
        let (other, _) = try Self.build(Self.otherSource)
        let otherOffset = try DWARF.memberOffset(path: other).value
        try #require(otherOffset != truth[0])
        try #require(try BuildID.ofFile(other) != firstID)

        var err = kp_error()
        let fd = kp_open_checked(first, &err)
        try #require(fd >= 0)
        defer { close(fd) }
        try #require(rename(other, first) == 0)  // the swap, after the open
        var id = [UInt8](repeating: 0, count: 64)
        var len = 0
        #expect(kp_elf_build_id_fd(fd, first, &id, id.count, &len, &err) == KP_OK)
        #expect(Array(id.prefix(len)) == firstID)
        var offset: UInt64 = 0, size: UInt64 = 0
        #expect(kp_dwarf_member_offset_fd(fd, first, "unix_sock", "peer", nil, &offset, &size, &err) == KP_OK)
        #expect(Int(offset) == truth[0])
        // And a FIFO swapped in: the descriptor's reads neither block nor change.
        try Self.swapForFIFO(first)
        #expect(kp_elf_build_id_fd(fd, first, &id, id.count, &len, &err) == KP_OK)
        #expect(kp_dwarf_member_offset_fd(fd, first, "unix_sock", "peer", nil, &offset, &size, &err) == KP_OK)
        #expect(Int(offset) == truth[0] && Array(id.prefix(len)) == firstID)
    }

    /// What --dwarf gives the kcore method: the build-id check, the peer
    /// offset and the struct layouts (KernelTypes) all read the one
    /// descriptor SymbolFile opened. The path is swapped for another build,
    /// then for a FIFO, after the open: every read still gives the first
    /// file's answers, and none blocks.
    @Test func dwarfOffsetAndLayoutsComeFromOneOpen() throws {
        let (first, truth) = try Self.build()
        let firstID = try BuildID.ofFile(first)
        let (other, _) = try Self.build(Self.otherSource)
        try #require(try DWARF.memberOffset(path: other).value != truth[0])
        let file = try SymbolFile(path: first, dwarf: true, runningBuildID: firstID)
        try #require(rename(other, first) == 0)
        #expect(try KernelTypes(file).peerOffset().value == truth[0])
        #expect(try KernelTypes(file).member("unix_sock", "peer").offset == truth[0])
        try Self.swapForFIFO(first)
        #expect(try KernelTypes(file).peerOffset().value == truth[0])
        #expect(try KernelTypes(file).member("unix_sock", "peer").offset == truth[0])
        // Another build is refused at the open, before anything is read.
        let (third, _) = try Self.build(Self.otherSource)
        #expect(kindOf { _ = try SymbolFile(path: third, dwarf: true, runningBuildID: firstID) } == .badFile)
        #expect(try KernelTypes(SymbolFile(path: third, dwarf: true, force: true, runningBuildID: firstID)).peerOffset().value != truth[0])
    }

    /// kpeer itself: `--btf` or `--dwarf` given a FIFO is status 65, one line.
    @Test(.tags(.binary)) func aFIFOGivenAsBTFOrDWARFIsABadFile() throws {
        let dir = Support.tempDir()
        try #require(mkfifo(dir + "/fifo", 0o600) == 0)
        for option in ["--btf", "--dwarf"] {
            let r = try Support.run(Support.kpeerBinary, [option, dir + "/fifo", "1"])
            #expect(r.status == 65, "\(option): \(r.stderr)")
            #expect(r.stderr.hasPrefix("kpeer: \(dir)/fifo is not a regular file — "), "\(option): \(r.stderr)")
            #expect(r.stdout.isEmpty)
        }
    }

    // MARK: the offset cache's directory

    static let build: [UInt8] = Array(0..<20)
    static let line = "\(BuildID.hex(build)) unix_sock.peer 864 1024 - btf /sys/kernel/btf/vmlinux\n"

    /// A directory holding a valid, root-owned cache file, as kpeer would
    /// have written it.
    static func directoryWithCache() throws -> String {
        let dir = Support.tempDir() + "/kpeer"
        try #require(mkdir(dir, 0o755) == 0)
        try #require(chmod(dir, 0o755) == 0)  // whatever the umask
        try Data(line.utf8).write(to: URL(fileURLWithPath: dir + "/offsets"))
        try #require(chmod(dir + "/offsets", 0o644) == 0)
        return dir
    }

    static func contents(_ path: String) -> String? {
        FileManager.default.contents(atPath: path).map { String(decoding: $0, as: UTF8.self) }
    }

    static let other = MemberOffset(value: 872, structSize: 1024, source: .btf, origin: "planted")

    /// The control: in a proper directory the file is read, replaced and
    /// forgotten. Each untrusted kind below differs from it in one respect.
    @Test(.tags(.root), .enabled(if: Host.isRoot, "the cache believes root-owned files only"))
    func aProperDirectoryIsUsed() throws {
        let dir = try Self.directoryWithCache()
        let c = OffsetCache(path: dir + "/offsets")
        #expect(c.lookup(buildID: Self.build)?.value == 864)
        c.store(Self.other, buildID: Self.build)
        #expect(c.lookup(buildID: Self.build)?.value == 872)
        c.forget()
        #expect(!FileManager.default.fileExists(atPath: dir + "/offsets"))
    }

    @Test(.tags(.root), .enabled(if: Host.isRoot, "chown needs root"), arguments: ["symlink", "other uid", "mode 0777", "mode 0775"])
    func anUntrustedDirectoryIsNeitherReadNorWritten(_ kind: String) throws {
        let real = try Self.directoryWithCache()
        var dir = real
        switch kind {
        case "symlink":
            dir = Support.tempDir() + "/kpeer"
            try #require(symlink(real, dir) == 0)
        case "other uid": try #require(chown(real, 65534, 65534) == 0)
        case "mode 0777": try #require(chmod(real, 0o777) == 0)
        default: try #require(chmod(real, 0o775) == 0)
        }
        let c = OffsetCache(path: dir + "/offsets")
        #expect(c.lookup(buildID: Self.build) == nil, "read through a \(kind) directory")
        c.store(Self.other, buildID: Self.build)
        #expect(Self.contents(real + "/offsets") == Self.line, "written through a \(kind) directory")
        let entries = try FileManager.default.contentsOfDirectory(atPath: real)
        #expect(entries == ["offsets"], "a temporary file was left: \(entries)")
        c.forget()
        #expect(Self.contents(real + "/offsets") == Self.line, "deleted through a \(kind) directory")
        // Files.replace, which the layout cache uses too, refuses it as well.
        #expect(!Files.replace(dir + "/offsets", with: Array("x\n".utf8)))
        #expect(Self.contents(real + "/offsets") == Self.line)
    }

    /// A missing directory is created (by root, 0755) and then used.
    @Test(.tags(.root), .enabled(if: Host.isRoot, "the cache believes root-owned files only"))
    func aMissingDirectoryIsCreatedAndUsed() throws {
        let c = OffsetCache(path: Support.tempDir() + "/run/offsets")
        c.store(Self.other, buildID: Self.build)
        #expect(c.lookup(buildID: Self.build)?.value == 872)
    }
}
