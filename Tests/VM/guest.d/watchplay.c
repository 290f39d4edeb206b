// watchplay: one of each event `kpeer --watch` reports, made on purpose, and
// the line each must produce, as the truth for guest.d/watch.sh:
//
//   KIND INODE PEER_INODE PID      (PEER_INODE 0: none expected)
//
// A stream connection (connect, accept, both closes), a seqpacket one, a
// socketpair, a datagram socket connect()ed then sending, and one sending
// with sendto() twice (one first-send event, not two). The process is named
// "w p\nx" (a space and a newline in its comm): text output must escape it.
#define _GNU_SOURCE
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static unsigned long ino(int fd) {
    struct stat st;
    return fstat(fd, &st) == 0 ? (unsigned long)st.st_ino : 0;
}

static socklen_t name(struct sockaddr_un *a, const char *n) {
    memset(a, 0, sizeof *a);
    a->sun_family = AF_UNIX;
    strcpy(a->sun_path + 1, n);
    return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + strlen(n));
}

static int connection(int type, const char *n, int pid) {
    struct sockaddr_un a;
    socklen_t len = name(&a, n);
    int l = socket(AF_UNIX, type, 0);
    if (l < 0 || bind(l, (struct sockaddr *)&a, len) != 0 || listen(l, 4) != 0) return 1;
    int c = socket(AF_UNIX, type, 0);
    if (c < 0 || connect(c, (struct sockaddr *)&a, len) != 0) return 1;
    int s = accept(l, NULL, NULL);
    if (s < 0) return 1;
    printf("connect %lu 0 %d\naccept %lu %lu %d\n", ino(c), pid, ino(s), ino(c), pid);
    printf("close %lu %lu %d\nclose %lu %lu %d\nclose %lu 0 %d\n", ino(c), ino(s), pid, ino(s), ino(c), pid, ino(l), pid);
    close(c);
    close(s);
    close(l);
    return 0;
}

int main(void) {
    prctl(PR_SET_NAME, "w p\nx");
    int pid = (int)getpid();
    if (connection(SOCK_STREAM, "watchplay-stream", pid) || connection(SOCK_SEQPACKET, "watchplay-seq", pid)) {
        perror("watchplay");
        return 1;
    }
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) return 1;
    printf("pair %lu %lu %d\n", ino(sv[0]), ino(sv[1]), pid);
    printf("close %lu %lu %d\nclose %lu %lu %d\n", ino(sv[0]), ino(sv[1]), pid, ino(sv[1]), ino(sv[0]), pid);
    close(sv[0]);
    close(sv[1]);

    struct sockaddr_un d;
    socklen_t dlen = name(&d, "watchplay-dgram");
    int r = socket(AF_UNIX, SOCK_DGRAM, 0);
    int to = socket(AF_UNIX, SOCK_DGRAM, 0);
    int cd = socket(AF_UNIX, SOCK_DGRAM, 0);
    if (r < 0 || to < 0 || cd < 0 || bind(r, (struct sockaddr *)&d, dlen) != 0) return 1;
    if (sendto(to, "a", 1, 0, (struct sockaddr *)&d, dlen) != 1 || sendto(to, "b", 1, 0, (struct sockaddr *)&d, dlen) != 1)
        return 1;
    if (connect(cd, (struct sockaddr *)&d, dlen) != 0 || send(cd, "c", 1, 0) != 1) return 1;
    printf("send %lu %lu %d\nconnect %lu %lu %d\nsend %lu %lu %d\n", ino(to), ino(r), pid, ino(cd), ino(r), pid, ino(cd),
           ino(r), pid);
    // The receiver never acted, so only its senders' closes are events.
    printf("close %lu 0 %d\nclose %lu %lu %d\n", ino(to), pid, ino(cd), ino(r), pid);
    close(to);
    close(cd);
    close(r);
    return 0;
}
