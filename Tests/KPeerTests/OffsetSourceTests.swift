import BTFSample
import CKPeer
import Foundation
import Testing
@testable import KPeerSystem
@testable import TypeOffsets

/// DWARF from a C file compiled here; BTF from this machine's kernel,
/// checked against pahole.
@Suite(.layered) struct DWARFTests {
    static let source = """
        #include <stddef.h>
        #include <stdio.h>
        struct sock { char opaque[776]; };
        struct unix_address;
        struct path { void *mnt, *dentry; };
        struct unix_sock {
            struct sock sk;
            struct unix_address *addr;
            struct path path;
            char iolock[32], bindlock[32];
            struct sock *peer;
            struct { int x; union { long y; void *inner; }; };
        };
        struct unix_sock example;  /* gcc emits DWARF only for types in use */
        int main(void) {
            printf("%zu %zu %zu\\n", offsetof(struct unix_sock, peer), sizeof(struct unix_sock),
                   offsetof(struct unix_sock, inner));
            return 0;
        }
        """

    /// Builds the program with `flags`; returns its path and what it prints.
    static func build(_ flags: [String]) throws -> (path: String, truth: [Int]) {
        let dir = Support.tempDir()
        try source.write(toFile: dir + "/unix_sock.c", atomically: true, encoding: .utf8)
        try Support.gcc([dir + "/unix_sock.c"], output: dir + "/unix_sock", flags: flags + ["-Wl,--build-id"])
        let out = try Support.run(dir + "/unix_sock", [])
        return (dir + "/unix_sock", out.stdout.split(whereSeparator: \.isWhitespace).compactMap { Int($0) })
    }

    @Test(arguments: [["-g", "-gdwarf-4"], ["-g", "-gdwarf-5"], ["-g", "-O2"]])
    func memberOffsetsEqualWhatTheCompilerSays(flags: [String]) throws {
        let (path, truth) = try Self.build(flags)
        let peer = try DWARF.memberOffset(path: path)
        #expect(peer.value == truth[0])
        #expect(peer.structSize == truth[1])
        #expect(peer.source == .dwarf)
        let inner = try DWARF.memberOffset(path: path, member: "inner")  // inside anonymous struct + union
        #expect(inner.value == truth[2])
    }

    @Test func wrongFilesAreRefused() throws {
        let dir = Support.tempDir()
        try Data("garbage".utf8).write(to: URL(fileURLWithPath: dir + "/garbage"))
        #expect(kindOf { _ = try DWARF.memberOffset(path: dir + "/garbage") } == .badFile)
        let (noDebug, _) = try Self.build(["-g0", "-s"])
        #expect(kindOf { _ = try DWARF.memberOffset(path: noDebug) } == .badFile)
        #expect(kindOf { _ = try DWARF.memberOffset(path: "/bin/true") } == .badFile)
        let (path, _) = try Self.build(["-g"])
        #expect(kindOf { _ = try DWARF.memberOffset(path: path, type: "no_such_struct") } == .badFile)
        #expect(kindOf { _ = try DWARF.memberOffset(path: path, member: "no_such_member") } == .badFile)
    }

    @Test func buildIDsMatchReadelfAndGateTheOffset() throws {
        let (path, truth) = try Self.build(["-g"])
        let readelf = try Support.run("/usr/bin/readelf", ["-n", path]).stdout
        let line = try #require(readelf.split(separator: "\n").first { $0.contains("Build ID:") })
        let expected = String(line.split(separator: " ").last!)
        let id = try BuildID.ofFile(path)
        #expect(BuildID.hex(id) == expected)
        #expect(try DWARF.checkedMemberOffset(path: path, force: false, runningBuildID: id).value == truth[0])
        var other = id
        other[0] ^= 0xFF
        #expect(kindOf { _ = try DWARF.checkedMemberOffset(path: path, force: false, runningBuildID: other) } == .badFile)
        #expect(try DWARF.checkedMemberOffset(path: path, force: true, runningBuildID: other).value == truth[0])
    }

    @Test func notesParserFindsTheGNUBuildID() {
        // An unrelated note first, then NT_GNU_BUILD_ID, as /sys/kernel/notes has them.
        func le32(_ v: UInt32) -> [UInt8] { withUnsafeBytes(of: v.littleEndian) { Array($0) } }
        let xen = le32(4) + le32(4) + le32(1) + Array("Xen\0".utf8) + [1, 2, 3, 4]
        let gnu = le32(4) + le32(20) + le32(3) + Array("GNU\0".utf8) + Array(1...20)
        #expect(BuildID.fromNotes(xen + gnu) == Array(1...20))
        #expect(BuildID.fromNotes(xen) == nil)
        #expect(BuildID.fromNotes(Array(gnu.prefix(20))) == nil)
    }
}

@Suite(.layered) struct BTFTests {
    static let vmlinux = BTF.defaultPath
    static var available: Bool { FileManager.default.isReadableFile(atPath: vmlinux) && Support.which("pahole") != nil }

    /// `pahole -C unix_sock` prints `struct sock *  peer;  /*  OFFSET  SIZE */`.
    static func paholeOffset(_ member: String) throws -> Int {
        let out = try Support.run(Support.which("pahole")!, ["-C", "unix_sock", vmlinux]).stdout
        for line in out.split(separator: "\n") where line.contains(" \(member);") || line.contains("*\(member);") {
            if let comment = line.range(of: "/*") {
                let numbers = line[comment.upperBound...].split(whereSeparator: { !$0.isNumber }).compactMap { Int($0) }
                if let first = numbers.first { return first }
            }
        }
        throw Support.Failure("pahole printed no \(member): \(out)")
    }

    @Test(.enabled(if: BTFTests.available, "needs /sys/kernel/btf/vmlinux and pahole (dwarves)"))
    func agreesWithPahole() throws {
        let offset = try BTF.memberOffset()
        #expect(offset.value == (try Self.paholeOffset("peer")))
        #expect(offset.addrOffset == (try Self.paholeOffset("addr")))
        #expect(offset.source == .btf)
        #expect((offset.structSize ?? 0) > offset.value)
    }

    /// The streaming reader (what kpeer uses on the kernel's own BTF) against
    /// libbpf's full parse, for structs spread over this kernel's BTF.
    @Test(.enabled(if: FileManager.default.isReadableFile(atPath: BTFTests.vmlinux), "needs /sys/kernel/btf/vmlinux"))
    func streamingAgreesWithLibbpfAcrossTheKernel() throws {
        guard let raw = bs_sample(Self.vmlinux, 100) else { throw Support.Failure("libbpf cannot parse \(Self.vmlinux)") }
        defer { free(raw) }
        let sample = String(cString: raw).split(separator: "\n").map { $0.split(separator: " ").map(String.init) }
        #expect(sample.count >= 20)
        let fd = open(Self.vmlinux, O_RDONLY | O_CLOEXEC)
        defer { close(fd) }
        var streamed = 0
        for row in sample {
            var offset: UInt64 = 0, size: UInt64 = 0
            var err = kp_error()
            let rc = kp_btf_stream_member_offset(fd, row[0], row[1], &offset, &size, &err)
            if rc == KP_OK { streamed += 1 }
            if rc != KP_OK {
                // A member after an anonymous one is libbpf's to find (the
                // stream cannot tell a second member of that name inside
                // it): the stream says so, and kpeer's entry point, which
                // then asks libbpf, must give libbpf's answer.
                #expect(rc == KP_ENOMEMBER && KPeerError(err).problem.contains("anonymous member"),
                        "\(row[0]).\(row[1]): \(KPeerError(err).problem)")
                var err2 = kp_error()
                #expect(kp_btf_member_offset(Self.vmlinux, row[0], row[1], &offset, &size, &err2) == KP_OK)
            }
            #expect("\(offset) \(size)" == "\(row[2]) \(row[3])", "\(row[0]).\(row[1])")
        }
        // Most members follow no anonymous one: the stream answers those itself.
        #expect(streamed * 2 > sample.count, "\(streamed) of \(sample.count) streamed")
    }

    /// BTF that pahole made from the DWARF fixture: direct members are
    /// streamed; a member inside anonymous structs is not, and kpeer's own
    /// entry point finds it through libbpf.
    @Test(.enabled(if: Support.which("pahole") != nil && Support.which("objcopy") != nil, "needs pahole and objcopy"))
    func membersOfAnonymousStructsFallBackToLibbpf() throws {
        let (elf, truth) = try DWARFTests.build(["-g"])
        _ = try Support.run(Support.which("pahole")!, ["-J", elf])
        let raw = elf + ".btf"
        _ = try Support.run(Support.which("objcopy")!, ["--dump-section", ".BTF=" + raw, elf, elf + ".junk"])
        let fd = open(raw, O_RDONLY | O_CLOEXEC)
        defer { close(fd) }
        var offset: UInt64 = 0, size: UInt64 = 0
        var err = kp_error()
        #expect(kp_btf_stream_member_offset(fd, "unix_sock", "peer", &offset, &size, &err) == KP_OK)
        #expect(Int(offset) == truth[0] && Int(size) == truth[1])
        #expect(kp_btf_stream_member_offset(fd, "unix_sock", "inner", &offset, &size, &err) == KP_ENOMEMBER)
        #expect(kp_btf_stream_member_offset(fd, "no_such_struct", "peer", &offset, &size, &err) == KP_ENOTYPE)
        #expect(try BTF.memberOffset(path: raw).value == truth[0])
        #expect(try BTF.memberOffset(path: raw, member: "inner").value == truth[2])
    }

    @Test func garbageIsRefused() throws {
        let dir = Support.tempDir()
        try Data(repeating: 0x5A, count: 4096).write(to: URL(fileURLWithPath: dir + "/btf"))
        #expect(kindOf { _ = try BTF.memberOffset(path: dir + "/btf") } == .badFile)
        #expect(kindOf { _ = try BTF.memberOffset(path: dir + "/missing") } == .badFile)
        #expect(kindOf { _ = try BTF.memberOffset(path: "/bin/true") } == .badFile)
    }

    @Test func implausibleOptionOffsetsAreUsageErrors() {
        for bad in [-8, 0, 3, 100_000] {
            #expect(kindOf { _ = try UnixSockPeer.fromOption(bad) } == .usage)
        }
    }
}
