/*
 * kpeer test scenes: what users hit on real machines, made small.
 *
 *   scenes shared N     a socketpair whose both ends N processes hold (the
 *                       first creates it and forks N-1 workers), as forked
 *                       servers share their sockets
 *   scenes twin DIR     listeners on a file and on the abstract name with
 *                       the same bytes, in one process, as the X server:
 *                         DIR/X0  no client; @DIR/X0  2 accepted, 1 pending
 *                         DIR/Z0  1 accepted; @DIR/Z0 1 accepted
 *                         DIR/Y0  no client; @DIR/Y0 held by another
 *                                 process (a stranger), 1 accepted
 *   scenes closed       a connected stream socket whose peer has closed
 *
 * Output: `proc PID NAME` per process, `sock INODE ROLE PID` per socket
 * (inode from fstat), then `ready`. Runs until EOF on stdin; its children
 * die with it (PR_SET_PDEATHSIG). Its forked children hold only their own
 * sockets; the first process also keeps what it inherited.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static int ready[2];
static int children;

static void die(const char *what)
{
    fprintf(stderr, "scenes: %s: %s\n", what, strerror(errno));
    exit(1);
}

static unsigned long inode(int fd)
{
    struct stat st;
    if (fstat(fd, &st) < 0)
        die("fstat");
    return (unsigned long)st.st_ino;
}

static void sock(int fd, const char *role, pid_t pid)
{
    printf("sock %lu %s %d\n", inode(fd), role, (int)pid);
}

/* A process named `name` holding `keep` (fds, -1 ends the list) and no
 * other socket; the caller keeps its own copies. */
static pid_t spawn(const char *name, int keep0, int keep1)
{
    pid_t pid = fork();
    if (pid < 0)
        die("fork");
    if (pid > 0) {
        children++;
        printf("proc %d %s\n", (int)pid, name);
        return pid;
    }
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    for (int fd = 3; fd < 1024; fd++)
        if (fd != keep0 && fd != keep1 && fd != ready[1])
            close(fd);
    prctl(PR_SET_NAME, name);
    if (write(ready[1], "x", 1) != 1)
        _exit(1);
    close(ready[1]);
    for (;;)
        pause();
}

static socklen_t address(struct sockaddr_un *sa, const char *name, int abstract)
{
    memset(sa, 0, sizeof *sa);
    sa->sun_family = AF_UNIX;
    size_t n = strlen(name);
    if (n + 1 >= sizeof sa->sun_path) {
        errno = ENAMETOOLONG;
        die(name);
    }
    memcpy(sa->sun_path + (abstract ? 1 : 0), name, n);
    return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
}

static int listener(const char *name, int abstract)
{
    struct sockaddr_un sa;
    socklen_t len = address(&sa, name, abstract);
    int l = socket(AF_UNIX, SOCK_STREAM, 0);
    if (l < 0 || bind(l, (struct sockaddr *)&sa, len) < 0 || listen(l, 8) < 0)
        die(name);
    return l;
}

/* A client of `name` in a process of its own, accepted by `l` unless l < 0. */
static void client(const char *name, int abstract, int l, const char *pname, const char *role)
{
    struct sockaddr_un sa;
    socklen_t len = address(&sa, name, abstract);
    int c = socket(AF_UNIX, SOCK_STREAM, 0);
    if (c < 0 || connect(c, (struct sockaddr *)&sa, len) < 0)
        die("connect");
    if (l >= 0 && accept(l, NULL, NULL) < 0)
        die("accept");
    sock(c, role, spawn(pname, c, -1));
    close(c);
}

static void twin(const char *dir)
{
    static char x[108], y[108], z[108];
    snprintf(x, sizeof x, "%s/X0", dir);
    snprintf(y, sizeof y, "%s/Y0", dir);
    snprintf(z, sizeof z, "%s/Z0", dir);
    pid_t me = getpid();
    int lx = listener(x, 0), ax = listener(x, 1);
    sock(lx, "xfile", me);
    sock(ax, "xabstract", me);
    client(x, 1, ax, "kps-xclient", "xclient");
    client(x, 1, ax, "kps-xclient", "xclient");
    client(x, 1, -1, "kps-xpending", "xpending");

    int lz = listener(z, 0), az = listener(z, 1);
    sock(lz, "zfile", me);
    sock(az, "zabstract", me);
    client(z, 0, lz, "kps-zfile", "zfileclient");
    client(z, 1, az, "kps-zabs", "zabsclient");

    int ly = listener(y, 0);
    sock(ly, "yfile", me);
    int ay = listener(y, 1);
    sock(ay, "yabstract", spawn("kps-stranger", ay, -1));
    close(ay);
    client(y, 1, -1, "kps-yclient", "yclient"); /* waits on the stranger's listener */
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: scenes shared N | twin DIR | closed\n");
        return 64;
    }
    /* Descriptors inherited from the test runner stay open here: Foundation's
     * Process learns that its child exited when the child's copy of one of
     * them closes. The forked children close every one (spawn). */
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (pipe(ready) < 0)
        die("pipe");
    int sv[2];
    if (strcmp(argv[1], "shared") == 0 && argc > 2) {
        int n = atoi(argv[2]);
        if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
            die("socketpair");
        prctl(PR_SET_NAME, "kps-worker");
        printf("proc %d kps-worker\n", (int)getpid());
        for (int i = 1; i < n; i++)
            spawn("kps-worker", sv[0], sv[1]);
        sock(sv[0], "a", getpid());
        sock(sv[1], "b", getpid());
    } else if (strcmp(argv[1], "twin") == 0 && argc > 2) {
        prctl(PR_SET_NAME, "kps-xserver");
        printf("proc %d kps-xserver\n", (int)getpid());
        twin(argv[2]);
    } else if (strcmp(argv[1], "closed") == 0) {
        if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
            die("socketpair");
        close(sv[1]);
        prctl(PR_SET_NAME, "kps-survivor");
        printf("proc %d kps-survivor\n", (int)getpid());
        sock(sv[0], "survivor", getpid());
    } else {
        fprintf(stderr, "scenes: unknown scene %s\n", argv[1]);
        return 64;
    }
    close(ready[1]);
    char c;
    for (int got = 0; got < children;) {
        ssize_t n = read(ready[0], &c, 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            die("children did not start");
        got++;
    }
    printf("ready\n");
    char buf[64];
    for (;;) {
        ssize_t n = read(0, buf, sizeof buf);
        if (n == 0 || (n < 0 && errno != EINTR))
            break;
    }
    if (strcmp(argv[1], "twin") == 0) {
        char path[108];
        for (const char *s = "XYZ"; *s; s++) {
            snprintf(path, sizeof path, "%s/%c0", argv[2], *s);
            unlink(path);
        }
    }
    return 0;
}
