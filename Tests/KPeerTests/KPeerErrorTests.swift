import CKPeer
import Foundation
import Testing
@testable import KernelMemory
@testable import KPeerSystem

/// The error's structure: errno and path kept beside the words, errno made
/// a kind in one place, by what the file is to kpeer. The truth: what the
/// kernel's calls say about files the test makes (and the statuses
/// Docs/CONTRACT.md gives each case).
@Suite(.layered) struct KPeerErrorTests {
    /// Missing is "unavailable here" for a file kpeer looks for itself (69),
    /// a bad file for one given to --kcore/--btf/--dwarf (65), no such socket
    /// for the one asked about (2); a refusal is permission (77) whatever
    /// the file.
    @Test func errnoIsAKindByWhatTheFileIsToKpeer() {
        let roles: [KPeerError.FileRole] = [.system, .input, .target]
        #expect(roles.map { KPeerError.kind(errno: ENOENT, of: $0) } == [.unavailable, .badFile, .notFound])
        #expect(roles.map { KPeerError.kind(errno: EACCES, of: $0) } == [.permission, .permission, .permission])
        #expect(roles.map { KPeerError.kind(errno: EPERM, of: $0) } == [.permission, .permission, .permission])
        #expect(roles.map { KPeerError.kind(errno: EIO, of: $0) } == [.io, .io, .notFound])
    }

    /// A failed open keeps its errno and path; the words stay as they were.
    @Test func aFailedOpenKeepsItsErrnoAndPath() throws {
        let missing = Support.tempDir() + "/absent"
        let e = try #require(errorOf { _ = try Files.read(missing) })
        #expect(e.errno == ENOENT && e.path == missing && e.kind == .unavailable)
        #expect(e.description == "cannot open \(missing): No such file or directory")
        let denied = KPeerError.cannotOpen("/x", errno: EACCES)
        #expect(denied.kind == .permission && denied.errno == EACCES && denied.path == "/x")
        #expect(denied.description == "cannot open /x: Permission denied — run kpeer as root")
    }

    /// The C shim: a file it cannot open carries the open's errno; a file
    /// that is not a regular one has its own code, and no errno (no call
    /// failed), and is a bad file.
    @Test func theCShimsFailuresCarryErrnoOrTheirOwnCode() throws {
        let dir = Support.tempDir()
        var err = kp_error()
        #expect(kp_open_checked(dir + "/absent", &err) == -1)
        #expect(err.code == KP_EIO && err.err_errno == ENOENT)
        let missing = KPeerError(err, path: dir + "/absent")
        #expect(missing.kind == .badFile && missing.errno == ENOENT && missing.path == dir + "/absent")
        err = kp_error()
        #expect(kp_open_checked(dir, &err) == -1)
        #expect(err.code == KP_ENOTREG)
        let directory = KPeerError(err)
        #expect(directory.kind == .badFile && directory.errno == nil && directory.problem == "\(dir) is not a regular file")
    }

    /// --kcore: missing is a bad file (65) with its errno; a directory is
    /// said to be one.
    @Test func aKcoreFileThatCannotBeOpenedSaysWhy() throws {
        let dir = Support.tempDir()
        let missing = try #require(errorOf { _ = try KernelMemory(path: dir + "/absent") })
        #expect(missing.kind == .badFile && missing.errno == ENOENT && missing.path == dir + "/absent")
        #expect(missing.problem == "\(dir)/absent does not exist")
        let directory = try #require(errorOf { _ = try KernelMemory(path: dir) })
        #expect(directory.kind == .badFile && directory.path == dir && directory.problem == "\(dir) is a directory")
    }
}
