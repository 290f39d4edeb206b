// A socketpair in a network namespace no process is left in: a child
// (unshare(CLONE_NEWNET)) makes it, passes both ends to its parent in
// SCM_RIGHTS and exits. Prints "pair A B", "netns N" (the namespace the
// kernel says the pair lives in, SIOCGSKNS) and "ready", then holds both ends
// until EOF on stdin. Used by OrphanNamespaceTests and the VM (guest.d/orphan.sh).
#define _GNU_SOURCE
#include <linux/sockios.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
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
    // The namespace the kernel says the pair lives in (SIOCGSKNS).
    int ns = ioctl(fds[0], SIOCGSKNS);
    if (ns < 0) return 6;
    printf("pair %lu %lu\nnetns %lu\nready\n", ino(fds[0]), ino(fds[1]), ino(ns));
    fflush(stdout);
    while (read(0, &c, 1) > 0) {}
    return 0;
}
