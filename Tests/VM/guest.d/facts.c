// The fixture for what only kernel memory tells (SocketFacts), built static
// for the guest. It makes, and prints the truth about:
//
//   a path listener of backlog 4 with 3 clients waiting, never accepted
//     backlog INODE PENDING MAX           (listen(2)'s numbers)
//     file INODE INO MAJOR MINOR          (stat(2) of the socket file)
//   a datagram receiver no one reads, filled by 3 senders in 3 processes:
//   two connected, one sendto() only, each with its own count and size
//     sender RECEIVER_INODE SENDER_INODE PID DATAGRAMS BYTES
//     queue INODE SKBS BYTES               (SIOCINQ is the first datagram only)
//   a stream connection whose client was made by a process that passed it
//   over SCM_RIGHTS to another and exited
//     connector INODE PID UID GID          (SO_PEERCRED, for every socket here)
//     holder INODE PID
//   1000 bytes written and not read on that connection
//     inq INODE BYTES / outq INODE BYTES   (SIOCINQ, SIOCOUTQ)
//   one end of a socketpair in flight: sent over SCM_RIGHTS to a socket no
//   one reads, and closed by its sender
//     inflight SOCKET RECEIVER OTHER_END
//
// then "ready", and waits for EOF on stdin.
#define _GNU_SOURCE
#include <errno.h>
#include <linux/sockios.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

static void die(const char *what) {
    fprintf(stderr, "facts: %s: %s\n", what, strerror(errno));
    exit(1);
}

static unsigned long ino_of(int fd) {
    struct stat st;
    if (fstat(fd, &st) != 0) die("fstat");
    return (unsigned long)st.st_ino;
}

static socklen_t addr(struct sockaddr_un *a, const char *path) {
    memset(a, 0, sizeof *a);
    a->sun_family = AF_UNIX;
    snprintf(a->sun_path, sizeof a->sun_path, "%s", path);
    return (socklen_t)sizeof *a;
}

static void connector(int fd) {
    struct ucred c;
    socklen_t len = sizeof c;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &c, &len) != 0) die("SO_PEERCRED");
    printf("connector %lu %d %u %u\n", ino_of(fd), (int)c.pid, c.uid, c.gid);
}

static pid_t kids[8];
static int nkids;

static void cleanup(void) {
    for (int i = 0; i < nkids; i++) kill(kids[i], SIGKILL);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: facts DIR\n");
        return 64;
    }
    atexit(cleanup);
    char lpath[80], dpath[80], spath[80];
    snprintf(lpath, sizeof lpath, "%s/facts-listen.sock", argv[1]);
    snprintf(dpath, sizeof dpath, "%s/facts-dgram.sock", argv[1]);
    snprintf(spath, sizeof spath, "%s/facts-stream.sock", argv[1]);
    unlink(lpath), unlink(dpath), unlink(spath);
    struct sockaddr_un a;

    // A listener of backlog 4 with 3 clients waiting.
    int l = socket(AF_UNIX, SOCK_STREAM, 0);
    if (l < 0 || bind(l, (struct sockaddr *)&a, addr(&a, lpath)) || listen(l, 4)) die("listener");
    int clients[3];
    for (int i = 0; i < 3; i++) {
        clients[i] = socket(AF_UNIX, SOCK_STREAM, 0);
        if (clients[i] < 0 || connect(clients[i], (struct sockaddr *)&a, addr(&a, lpath))) die("client");
        connector(clients[i]);
    }
    struct stat st;
    if (stat(lpath, &st) != 0) die("stat");
    printf("backlog %lu 3 4\n", ino_of(l));
    printf("file %lu %lu %u %u\n", ino_of(l), (unsigned long)st.st_ino, major(st.st_dev), minor(st.st_dev));

    // A datagram receiver no one reads, and three senders.
    int d = socket(AF_UNIX, SOCK_DGRAM, 0);
    if (d < 0 || bind(d, (struct sockaddr *)&a, addr(&a, dpath))) die("dgram receiver");
    if (stat(dpath, &st) != 0) die("stat");
    printf("file %lu %lu %u %u\n", ino_of(d), (unsigned long)st.st_ino, major(st.st_dev), minor(st.st_dev));
    static const int counts[3] = {2, 3, 4}, sizes[3] = {100, 200, 300};
    int total = 0, bytes = 0;
    for (int i = 0; i < 3; i++) {
        int report[2];
        if (pipe(report)) die("pipe");
        pid_t pid = fork();
        if (pid < 0) die("fork");
        if (pid == 0) {
            int s = socket(AF_UNIX, SOCK_DGRAM, 0);
            if (s < 0) die("sender");
            char buf[300];
            memset(buf, 'a' + i, sizeof buf);
            if (i < 2 && connect(s, (struct sockaddr *)&a, addr(&a, dpath))) die("connect");
            for (int k = 0; k < counts[i]; k++) {
                ssize_t n = i < 2 ? send(s, buf, (size_t)sizes[i], 0)
                                  : sendto(s, buf, (size_t)sizes[i], 0, (struct sockaddr *)&a, addr(&a, dpath));
                if (n != sizes[i]) die("send");
            }
            unsigned long ino = ino_of(s);
            if (write(report[1], &ino, sizeof ino) != sizeof ino) die("report");
            for (;;) pause();
        }
        kids[nkids++] = pid;
        unsigned long ino;
        if (read(report[0], &ino, sizeof ino) != sizeof ino) die("sender report");
        close(report[0]), close(report[1]);
        printf("sender %lu %lu %d %d %d\n", ino_of(d), ino, (int)pid, counts[i], counts[i] * sizes[i]);
        total += counts[i];
        bytes += counts[i] * sizes[i];
    }
    printf("queue %lu %d %d\n", ino_of(d), total, bytes);

    // A stream connection made by a process that handed its end over
    // SCM_RIGHTS to another (the fixture) and exited.
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    if (s < 0 || bind(s, (struct sockaddr *)&a, addr(&a, spath)) || listen(s, 4)) die("stream listener");
    int pass[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, pass)) die("socketpair");
    pid_t maker = fork();
    if (maker < 0) die("fork");
    if (maker == 0) {
        int c = socket(AF_UNIX, SOCK_STREAM, 0);
        if (c < 0 || connect(c, (struct sockaddr *)&a, addr(&a, spath))) die("connect");
        char dummy = 'x';
        struct iovec iov = {&dummy, 1};
        char ctl[CMSG_SPACE(sizeof(int))];
        struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl, .msg_controllen = sizeof ctl};
        struct cmsghdr *cm = CMSG_FIRSTHDR(&m);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(cm), &c, sizeof c);
        if (sendmsg(pass[1], &m, 0) != 1) die("sendmsg");
        _exit(0);
    }
    char dummy;
    struct iovec iov = {&dummy, 1};
    char ctl[CMSG_SPACE(sizeof(int))];
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl, .msg_controllen = sizeof ctl};
    if (recvmsg(pass[0], &m, 0) != 1) die("recvmsg");
    int c;
    memcpy(&c, CMSG_DATA(CMSG_FIRSTHDR(&m)), sizeof c);
    waitpid(maker, NULL, 0);
    int acc = accept(s, NULL, NULL);
    if (acc < 0) die("accept");
    connector(acc);  // the maker, gone
    connector(c);    // the listener's creator: this process
    printf("holder %lu %d\n", ino_of(c), (int)getpid());
    char buf[1000];
    memset(buf, 'z', sizeof buf);
    if (write(c, buf, sizeof buf) != (ssize_t)sizeof buf) die("write");
    int inq = 0, outq = 0;
    if (ioctl(acc, SIOCINQ, &inq) || ioctl(c, SIOCOUTQ, &outq)) die("ioctl");
    printf("inq %lu %d\n", ino_of(acc), inq);
    printf("outq %lu %d\n", ino_of(c), outq);

    // A socket in flight: one end of a pair sent over SCM_RIGHTS to a
    // socket no one reads, then closed here. Only the message holds it.
    int pair[2], carrier[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, pair) || socketpair(AF_UNIX, SOCK_DGRAM, 0, carrier)) die("socketpair");
    {
        char x = 'x';
        struct iovec v = {&x, 1};
        char cm[CMSG_SPACE(sizeof(int))];
        struct msghdr h = {.msg_iov = &v, .msg_iovlen = 1, .msg_control = cm, .msg_controllen = sizeof cm};
        struct cmsghdr *c1 = CMSG_FIRSTHDR(&h);
        c1->cmsg_level = SOL_SOCKET;
        c1->cmsg_type = SCM_RIGHTS;
        c1->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c1), &pair[0], sizeof(int));
        if (sendmsg(carrier[0], &h, 0) != 1) die("sendmsg in flight");
    }
    printf("inflight %lu %lu %lu\n", ino_of(pair[0]), ino_of(carrier[1]), ino_of(pair[1]));
    close(pair[0]);

    printf("ready\n");
    fflush(stdout);
    while (read(0, buf, sizeof buf) > 0) {}
    return 0;
}
