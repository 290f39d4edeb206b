import Foundation
import Glibc
import Testing

/// A socketpair made in a network namespace that no process is left in: a
/// child (`unshare(CLONE_NEWNET)`) makes it, passes both ends to its parent
/// in SCM_RIGHTS and exits. /proc/PID/fd shows `socket:[N]`, but no
/// process's namespace lists N; kpeer must find the namespace through the
/// descriptor (SIOCGSKNS) and answer there.
@Suite(.serialized, .tags(.binary, .fixture, .root), .layered) struct OrphanNamespaceTests {
    static let source = """
        #define _GNU_SOURCE
        #include <sched.h>
        #include <stdio.h>
        #include <string.h>
        #include <sys/socket.h>
        #include <sys/stat.h>
        #include <sys/wait.h>
        #include <unistd.h>

        static unsigned long ino(int fd) { struct stat st; fstat(fd, &st); return (unsigned long)st.st_ino; }

        int main(void) {
            int ctl[2];
            if (socketpair(AF_UNIX, SOCK_STREAM, 0, ctl) != 0) return 1;
            pid_t child = fork();
            if (child == 0) {
                int sv[2];
                if (unshare(CLONE_NEWNET) != 0 || socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) _exit(2);
                char c = 'x', buf[CMSG_SPACE(2 * sizeof(int))];
                struct iovec io = { &c, 1 };
                struct msghdr m = { .msg_iov = &io, .msg_iovlen = 1, .msg_control = buf, .msg_controllen = sizeof buf };
                struct cmsghdr *h = CMSG_FIRSTHDR(&m);
                h->cmsg_level = SOL_SOCKET; h->cmsg_type = SCM_RIGHTS; h->cmsg_len = CMSG_LEN(2 * sizeof(int));
                memcpy(CMSG_DATA(h), sv, 2 * sizeof(int));
                _exit(sendmsg(ctl[1], &m, 0) == 1 ? 0 : 3);
            }
            char c, buf[CMSG_SPACE(2 * sizeof(int))];
            struct iovec io = { &c, 1 };
            struct msghdr m = { .msg_iov = &io, .msg_iovlen = 1, .msg_control = buf, .msg_controllen = sizeof buf };
            if (recvmsg(ctl[0], &m, 0) != 1) return 4;
            int fds[2];
            memcpy(fds, CMSG_DATA(CMSG_FIRSTHDR(&m)), 2 * sizeof(int));
            int status;
            waitpid(child, &status, 0);
            if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) return 5;
            printf("pair %lu %lu\\nready\\n", ino(fds[0]), ino(fds[1]));
            fflush(stdout);
            while (read(0, &c, 1) > 0) {}
            return 0;
        }
        """

    @Test func aPairInANamespaceWithNoProcessIsFound() throws {
        let dir = Support.tempDir()
        try Self.source.write(toFile: dir + "/orphan.c", atomically: true, encoding: .utf8)
        try Support.gcc([dir + "/orphan.c"], output: dir + "/orphan", flags: ["-O2", "-Wall"])
        let (p, input, text) = try Support.startUntilReady([dir + "/orphan"], what: "the fixture")
        defer { try? input.fileHandleForWriting.close(); p.waitUntilExit() }
        let inodes = try #require(text.split(separator: "\n").first { $0.hasPrefix("pair ") })
            .split(separator: " ").dropFirst().compactMap { UInt64($0) }
        try #require(inodes.count == 2)
        // The namespace really has no process: no /proc/PID/ns/net names it.
        // (Both ends are held by the fixture, in this namespace.)
        let me = "\(p.processIdentifier)"
        for method in ["netlink"] + (FileManager.default.fileExists(atPath: "/proc/kcore") ? ["kcore"] : []) {
            for (asked, peer) in [(inodes[0], inodes[1]), (inodes[1], inodes[0])] {
                let r = try Support.run(Support.kpeerBinary, ["--method", method, String(asked)])
                #expect(r.status == 0, "\(method) \(asked): \(r)")
                #expect(r.stdout.split(separator: "\n").map { $0.split(separator: " ").first.map(String.init) } == [me],
                        "\(method) \(asked) (peer \(peer)): \(r.stdout)")
            }
            // Listings look for such namespaces too: both ends listed, held by
            // the fixture, peers of each other, in a namespace of their own.
            let all = try Support.run(Support.kpeerBinary, ["--method", method, "--all"])
            #expect(all.status == 0)
            for inode in inodes {
                let row = all.stdout.split(separator: "\n").first { $0.split(separator: " ").contains(Substring(String(inode))) }
                #expect(row.map { $0.contains("\(me)/orphan") && $0.contains("net:[") } == true, "\(method) --all: \(row ?? "no row for \(inode)")")
            }
            let dump = try Support.run(Support.kpeerBinary, ["--method", method, "--dump"])
            #expect(dump.stdout.split(separator: "\n").contains("orphan:\(me):\(inodes[0]):\(inodes[1]):\(me):orphan"), "\(method) --dump")
        }
    }
}
