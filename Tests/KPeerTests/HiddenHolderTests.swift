import Foundation
import Glibc
import Testing

/// Sockets that /proc/PID/fd does not show: held by a thread of a process
/// whose main thread has exited (pthread_exit), or by a thread that
/// unshared its descriptor table (unshare(CLONE_FILES)) and then made them.
/// Only /proc/PID/task/TID/fd lists them; kpeer must still name the holder.
@Suite(.serialized, .tags(.binary, .fixture, .root), .layered) struct HiddenHolderTests {
    static let source = """
        #define _GNU_SOURCE
        #include <pthread.h>
        #include <sched.h>
        #include <stdio.h>
        #include <stdlib.h>
        #include <string.h>
        #include <sys/socket.h>
        #include <sys/stat.h>
        #include <unistd.h>

        static int unshare_files;
        static pthread_barrier_t made;

        static unsigned long inode(int fd) {
            struct stat st;
            return fstat(fd, &st) == 0 ? (unsigned long)st.st_ino : 0;
        }

        /* The main thread is a zombie once /proc/self/stat says Z (at most 10 s). */
        static void wait_main_gone(void) {
            char path[64], buf[512];
            snprintf(path, sizeof path, "/proc/%d/stat", (int)getpid());
            for (int i = 0; i < 1000; i++) {
                FILE *f = fopen(path, "r");
                if (f) {
                    size_t n = fread(buf, 1, sizeof buf - 1, f);
                    fclose(f);
                    buf[n] = 0;
                    char *p = strrchr(buf, ')');
                    if (p && p[1] == ' ' && (p[2] == 'Z' || p[2] == 'X')) return;
                }
                usleep(10000);
            }
            fprintf(stderr, "the main thread never exited\\n");
            exit(2);
        }

        static void *holder(void *arg) {
            (void)arg;
            if (unshare_files && unshare(CLONE_FILES) != 0) { perror("unshare"); exit(2); }
            int sv[2];
            if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) { perror("socketpair"); exit(2); }
            pthread_barrier_wait(&made);
            if (!unshare_files) wait_main_gone();
            printf("%d %lu %lu\\n", (int)getpid(), inode(sv[0]), inode(sv[1]));
            fflush(stdout);
            char c;
            while (read(0, &c, 1) > 0) {}  /* until the test closes stdin */
            exit(0);
        }

        int main(int argc, char **argv) {
            unshare_files = argc > 1 && strcmp(argv[1], "unshare") == 0;
            pthread_barrier_init(&made, NULL, 2);
            pthread_t t;
            if (pthread_create(&t, NULL, holder, NULL) != 0) return 2;
            pthread_barrier_wait(&made);
            if (unshare_files) {
                pthread_join(t, NULL);
                return 0;
            }
            pthread_exit(NULL);  /* main thread gone; the process lives on */
        }
        """

    static let binary: String? = {
        let dir = Support.tempDir()
        try? source.write(toFile: dir + "/hiddenholder.c", atomically: true, encoding: .utf8)
        do {
            try Support.gcc([dir + "/hiddenholder.c"], output: dir + "/hiddenholder", flags: ["-O2", "-Wall", "-pthread"])
        } catch {
            return nil
        }
        return dir + "/hiddenholder"
    }()

    /// The program running in `mode`: its pid and its socketpair's inodes,
    /// held until `finish`.
    final class Holder {
        let process = Process()
        let input = Pipe()
        var pid: Int32 = 0
        var inodes: [UInt64] = []

        init(_ binary: String, _ mode: String) throws {
            let output = Pipe()
            process.executableURL = URL(fileURLWithPath: binary)
            process.arguments = [mode]
            process.standardInput = input
            process.standardOutput = output
            try process.run()
            var text = ""
            while !text.hasSuffix("\n") {
                let chunk = output.fileHandleForReading.availableData
                if chunk.isEmpty { break }
                text += String(decoding: chunk, as: UTF8.self)
            }
            let fields = text.split(whereSeparator: \.isWhitespace)
            if fields.count == 3, let p = Int32(fields[0]) {
                pid = p
                inodes = fields.dropFirst().compactMap { UInt64($0) }
            }
        }

        deinit {
            try? input.fileHandleForWriting.close()
            process.waitUntilExit()
        }
    }

    @Test(.enabled(if: getuid() == 0 && HiddenHolderTests.binary != nil, "needs root and gcc"),
          arguments: ["exit-main", "unshare"])
    func aHolderOnlyATaskShowsIsNamed(_ mode: String) throws {
        let h = try Holder(HiddenHolderTests.binary!, mode)
        try #require(h.pid > 0 && h.inodes.count == 2 && !h.inodes.contains(0), "the helper did not start")
        // What makes these holders hidden: /proc/PID/fd does not list them.
        let visible = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(h.pid)/fd")) ?? []
        let links = visible.compactMap { try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(h.pid)/fd/\($0)") }
        #expect(!links.contains("socket:[\(h.inodes[0])]"), "\(mode): /proc/PID/fd shows it after all")

        // kpeer INODE: the peer's holder, "PID NAME".
        let one = try Support.run(Support.kpeerBinary, ["--method", "netlink", String(h.inodes[0])])
        #expect(one.status == 0, "\(mode): \(one.stderr)")
        #expect(one.stdout == "\(h.pid) hiddenholder\n", "\(mode): \(one.stdout) \(one.stderr)")

        // kpeer --all: both rows name it, as holder and as peer.
        let all = try Support.run(Support.kpeerBinary, ["--method", "netlink", "--all"])
        #expect(all.status == 0, "\(mode): \(all.stderr)")
        for inode in h.inodes {
            let row = all.stdout.split(separator: "\n").first { $0.split(separator: " ", omittingEmptySubsequences: true).contains { $0 == String(inode) } }
            let fields = row?.split(separator: " ", omittingEmptySubsequences: true).map(String.init) ?? []
            #expect(fields.filter { $0 == "\(h.pid)/hiddenholder" }.count == 2, "\(mode): row of \(inode): \(row ?? "none")")
        }
    }
}
