// An unprivileged user's attack on root's kpeer (run as uid 65534 in the
// guest, built static): /proc/net/unix prints abstract names raw, so a name
// with a newline makes lines that parse as rows of the table.
//
//   forge DIR INODE FLOOD
//
// binds one name whose second line is a row with INODE (root's listener)
// and address 0 (the "listed twice" attack: it used to make kpeer drop the
// real row), and FLOOD names each carrying a row at address 0 (it used to
// make the kcore method take the addresses for hashed and give up). Prints
// "ready" and waits for EOF on stdin.
#include <stddef.h>
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

int main(int argc, char **argv) {
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
