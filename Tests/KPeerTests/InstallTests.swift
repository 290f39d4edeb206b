import Foundation
import Testing

/// `make install` into a temporary DESTDIR, with the kpeer these tests
/// built (KPEER_BIN), so nothing is compiled here.
@Suite(.serialized, .tags(.binary), .layered) struct InstallTests {
    /// swift-argument-parser's generate-manual tool, built next to kpeer by
    /// the GenerateManual plugin (`swift package plugin generate-manual`).
    static var generateManual: String? {
        let dir = URL(fileURLWithPath: Support.kpeerBinary).deletingLastPathComponent().path
        let tool = dir + "/generate-manual-tool"
        return FileManager.default.isExecutableFile(atPath: tool) ? tool : nil
    }

    @Test(.enabled(if: Support.which("make") != nil && generateManual != nil,
                   "needs make and the generate-manual plugin's tool (swift package plugin generate-manual)"))
    func installsBinaryManPageAndCompletionsUnderDestdir() throws {
        let dest = Support.tempDir()
        let r = try Support.run(Support.which("make")!, [
            "-s", "-C", Support.packageRoot, "install", "DESTDIR=\(dest)", "PREFIX=/usr/local",
            "KPEER_BIN=\(Support.kpeerBinary)", "GENERATE_MANUAL=\(Self.generateManual!)",
        ])
        #expect(r.status == 0, "\(r.stderr)")
        let root = dest + "/usr/local"
        let fm = FileManager.default
        // The binary: a copy of ours, executable, answering --version.
        let bin = root + "/bin/kpeer"
        #expect(fm.isExecutableFile(atPath: bin))
        #expect(fm.contents(atPath: bin) == fm.contents(atPath: Support.kpeerBinary))
        let version = try Support.run(bin, ["--version"])
        #expect(version.status == 0 && version.stdout.hasPrefix("kpeer "))
        // The man page, from the ArgumentParser definitions: every option is in it.
        let man = try String(contentsOfFile: root + "/share/man/man1/kpeer.1", encoding: .utf8)
        #expect(man.contains(".Dt KPEER 1"))
        for option in ["all", "dump", "json", "format", "pid", "type", "listening", "find-offset", "method"] {
            #expect(man.contains("Fl -\(option)"), "\(option)")
        }
        #expect(man.contains("socket_peer INODE"))
        // Completions, as kpeer generates them, where each shell looks.
        for (shell, path) in [("bash", "/share/bash-completion/completions/kpeer"),
                              ("zsh", "/share/zsh/site-functions/_kpeer"),
                              ("fish", "/share/fish/vendor_completions.d/kpeer.fish")] {
            let installed = try String(contentsOfFile: root + path, encoding: .utf8)
            let generated = try Support.run(Support.kpeerBinary, ["--generate-completion-script", shell])
            #expect(!installed.isEmpty && installed == generated.stdout, "\(shell)")
            #expect(installed.contains("listening") && installed.contains("find-offset"), "\(shell)")
        }
    }

    @Test func versionAndHelp() throws {
        let v = try Support.run(Support.kpeerBinary, ["--version"])
        #expect(v.status == 0)
        #expect(!Support.versionLine.isEmpty && v.stdout == Support.versionLine)
        let h = try Support.run(Support.kpeerBinary, ["--help"])
        #expect(h.status == 0)
        for line in ["socket_peer INODE        kpeer INODE", "netstat_unix             kpeer --all",
                     "netstat_unix --dump      kpeer --dump", "find_gdb_offset INODE    kpeer --find-offset [INODE]",
                     "kpeer PATH | @NAME", "--format dot"] {
            #expect(h.stdout.contains(line), "\(line)")
        }
    }
}
