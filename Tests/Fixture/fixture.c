/*
 * kpeer test fixture: processes with known names holding unix sockets this
 * program connected itself, and the truth about them on stdout.
 *
 *   fixture [DIR]        DIR holds the bound socket files (default /tmp)
 *   fixture --run-as UID PROG ARGS...
 *                        run PROG as UID (gid UID, no groups): the VM test's
 *                        non-root case, as busybox has no setuidgid
 *
 * The parent creates every socket, then forks one child per role; each child
 * keeps only its own sockets, names itself (PR_SET_NAME) and waits. The parent
 * closes all of its socket fds, so only the children hold them. Output:
 *
 *   proc PID NAME                      one per child
 *   sock INODE ROLE PID[,PID]          one per socket, inode from fstat
 *   link NAME:PID:SOCK:PEERSOCK:PEERPID:PEERNAME
 *                                      every link: both ends of every
 *                                      connection, every (holder, peer
 *                                      holder) pair; a pending client's
 *                                      PEERSOCK is its listener
 *   dump NAME:PID:SOCK:PEERSOCK:PEERPID:PEERNAME
 *                                      what `kpeer --dump` must print for
 *                                      these sockets: a line per holder of
 *                                      each end, the peer's lowest-pid
 *                                      holder; PEERSOCK 0 while pending
 *   ready
 *
 * It then waits for EOF on stdin, SIGTERM or SIGINT, kills its children and
 * removes its socket files. Works as a static binary (the VM test uses one).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <grp.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAXPROC 32
#define MAXSOCK 64

struct proc {
    const char *name;
    pid_t pid;
    int fds[8];
    int nfds;
    int fork_kid;               /* also fork a second holder named kid_name */
    const char *kid_name;
    pid_t kid;
};

struct sock {
    int fd;
    unsigned long inode;
    const char *role;
    struct proc *owner;
};

static struct proc procs[MAXPROC];
static int nprocs;
static struct sock socks[MAXSOCK];
static int nsocks;
static char dgram_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
static char stream_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
static volatile sig_atomic_t stop;

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("fixture: ", stderr);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, ": %s\n", strerror(errno));
    va_end(ap);
    exit(1);
}

static struct proc *proc(const char *name)
{
    struct proc *p = &procs[nprocs++];
    p->name = name;
    return p;
}

static struct sock *track(int fd, const char *role, struct proc *owner)
{
    struct stat st;
    if (fd < 0)
        die("socket for %s", role);
    if (fstat(fd, &st) < 0)
        die("fstat");
    struct sock *s = &socks[nsocks++];
    s->fd = fd;
    s->inode = (unsigned long)st.st_ino;
    s->role = role;
    s->owner = owner;
    owner->fds[owner->nfds++] = fd;
    return s;
}

static socklen_t address(struct sockaddr_un *sa, const char *path, int abstract)
{
    memset(sa, 0, sizeof *sa);
    sa->sun_family = AF_UNIX;
    size_t n = strlen(path);
    if (abstract) {
        memcpy(sa->sun_path + 1, path, n);
        return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n);
    }
    memcpy(sa->sun_path, path, n);
    return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
}

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

/* A child: keep only its own sockets (and the ready pipe), name itself, report, wait. */
static void become(struct proc *p, const char *name, int ready)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    for (int i = 0; i < nsocks; i++) {
        int mine = 0;
        for (int j = 0; j < p->nfds; j++)
            mine |= socks[i].fd == p->fds[j];
        if (!mine)
            close(socks[i].fd);
    }
    int devnull = open("/dev/null", O_RDWR);
    if (devnull >= 0) {
        dup2(devnull, 0);
        dup2(devnull, 1);
        close(devnull);
    }
    prctl(PR_SET_NAME, name);
    if (write(ready, "x", 1) != 1)
        _exit(1);
    close(ready);
    for (;;)
        pause();
}

static void start(struct proc *p, int ready)
{
    p->pid = fork();
    if (p->pid < 0)
        die("fork");
    if (p->pid > 0)
        return;
    if (p->fork_kid) {
        /* The kid inherits the same open sockets: one socket, two holders. */
        pid_t kid = fork();
        if (kid < 0)
            die("fork");
        if (kid == 0)
            become(p, p->kid_name, ready);
        /* Tell the parent the kid's pid through the ready pipe. */
        char buf[32];
        int n = snprintf(buf, sizeof buf, "k%d;", (int)kid);
        if (write(ready, buf, (size_t)n) != n)
            _exit(1);
    }
    become(p, p->name, ready);
}

static struct sock *find(const char *role, int nth)
{
    for (int i = 0; i < nsocks; i++)
        if (strcmp(socks[i].role, role) == 0 && nth-- == 0)
            return &socks[i];
    return NULL;
}

static int holders(const struct sock *s, pid_t *pids, const char **names)
{
    int n = 0;
    pids[n] = s->owner->pid;
    names[n++] = s->owner->name;
    if (s->owner->fork_kid) {
        pids[n] = s->owner->kid;
        names[n++] = s->owner->kid_name;
    }
    return n;
}

/* "a's peer is b" (b the listener a waits on, when pending): link lines,
 * one per (holder of a, holder of b); dump lines, one per holder of a. */
static void linked_to(const struct sock *a, const struct sock *b, int pending)
{
    pid_t ap[2], bp[2];
    const char *an[2], *bn[2];
    int na = holders(a, ap, an), nb = holders(b, bp, bn);
    int first = 0;
    for (int j = 1; j < nb; j++)
        if (bp[j] < bp[first])
            first = j;
    for (int i = 0; i < na; i++) {
        for (int j = 0; j < nb; j++)
            printf("link %s:%d:%lu:%lu:%d:%s\n", an[i], (int)ap[i], a->inode, b->inode, (int)bp[j], bn[j]);
        printf("dump %s:%d:%lu:%lu:%d:%s\n", an[i], (int)ap[i], a->inode, pending ? 0UL : b->inode,
               (int)bp[first], bn[first]);
    }
}

static void link_to(const struct sock *a, const struct sock *b)
{
    linked_to(a, b, 0);
}

static void both(const struct sock *a, const struct sock *b)
{
    link_to(a, b);
    link_to(b, a);
}

int main(int argc, char **argv)
{
    if (argc > 3 && strcmp(argv[1], "--run-as") == 0) {
        uid_t id = (uid_t)atoi(argv[2]);
        if (setgroups(0, NULL) < 0 || setgid(id) < 0 || setuid(id) < 0)
            die("cannot become uid %u", (unsigned)id);
        execvp(argv[3], argv + 3);
        die("exec %s", argv[3]);
    }
    const char *dir = argc > 1 ? argv[1] : "/tmp";
    setvbuf(stdout, NULL, _IOLBF, 0);
    struct sockaddr_un sa;
    socklen_t len;
    int sv[2];

    snprintf(stream_path, sizeof stream_path, "%s/kpf-%d-stream.sock", dir, (int)getpid());
    snprintf(dgram_path, sizeof dgram_path, "%s/kpf-%d-dgram.sock", dir, (int)getpid());
    unlink(stream_path);
    unlink(dgram_path);

    /* Two stream socketpairs, each end in another process. */
    struct proc *alpha = proc("kpf-alpha"), *bravo = proc("kpf-bravo");
    for (int i = 0; i < 2; i++) {
        if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
            die("socketpair");
        track(sv[0], "pair", alpha);
        track(sv[1], "pair", bravo);
    }

    /* A named stream listener, two accepted clients, one never accepted. */
    struct proc *server = proc("kpf-server"), *client1 = proc("kpf-client1"),
                *client2 = proc("kpf-client2"), *pending = proc("kpf-pending");
    int l = socket(AF_UNIX, SOCK_STREAM, 0);
    len = address(&sa, stream_path, 0);
    if (l < 0 || bind(l, (struct sockaddr *)&sa, len) < 0 || listen(l, 16) < 0)
        die("stream listener %s", stream_path);
    track(l, "listener", server);
    struct proc *cl[2] = {client1, client2};
    for (int i = 0; i < 2; i++) {
        int c = socket(AF_UNIX, SOCK_STREAM, 0);
        if (c < 0 || connect(c, (struct sockaddr *)&sa, len) < 0)
            die("connect");
        track(c, "client", cl[i]);
        track(accept(l, NULL, NULL), "accepted", server);
    }
    int p = socket(AF_UNIX, SOCK_STREAM, 0);
    if (p < 0 || connect(p, (struct sockaddr *)&sa, len) < 0)
        die("connect pending");
    track(p, "pending", pending);

    /* An abstract seqpacket listener and an accepted client. */
    struct proc *seqsrv = proc("kpf-seqsrv"), *seqcli = proc("kpf-seqcli");
    char abstract[64];
    snprintf(abstract, sizeof abstract, "kpeer-fixture-%d", (int)getpid());
    l = socket(AF_UNIX, SOCK_SEQPACKET, 0);
    len = address(&sa, abstract, 1);
    if (l < 0 || bind(l, (struct sockaddr *)&sa, len) < 0 || listen(l, 4) < 0)
        die("seqpacket listener");
    track(l, "seqlistener", seqsrv);
    int c = socket(AF_UNIX, SOCK_SEQPACKET, 0);
    if (c < 0 || connect(c, (struct sockaddr *)&sa, len) < 0)
        die("seqpacket connect");
    track(c, "seqclient", seqcli);
    track(accept(l, NULL, NULL), "seqaccepted", seqsrv);

    /* A bound dgram socket and a client connect()ed to it. */
    struct proc *dgsrv = proc("kpf-dgsrv"), *dgcli = proc("kpf-dgcli");
    int d = socket(AF_UNIX, SOCK_DGRAM, 0);
    len = address(&sa, dgram_path, 0);
    if (d < 0 || bind(d, (struct sockaddr *)&sa, len) < 0)
        die("dgram bind %s", dgram_path);
    track(d, "dgserver", dgsrv);
    c = socket(AF_UNIX, SOCK_DGRAM, 0);
    if (c < 0 || connect(c, (struct sockaddr *)&sa, len) < 0)
        die("dgram connect");
    track(c, "dgclient", dgcli);

    /* One end held by two processes (fork), the other by a third. */
    struct proc *share = proc("kpf-share"), *other = proc("kpf-other");
    share->fork_kid = 1;
    share->kid_name = "kpf-sharekid";
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
        die("socketpair");
    track(sv[0], "shared", share);
    track(sv[1], "sharedpeer", other);

    /* A socket nobody connected. */
    struct proc *lonely = proc("kpf-lonely");
    track(socket(AF_UNIX, SOCK_STREAM, 0), "lonely", lonely);

    /* Fork the holders; each reports through the pipe once it has its name. */
    int rp[2];
    if (pipe(rp) < 0)
        die("pipe");
    for (int i = 0; i < nprocs; i++)
        start(&procs[i], rp[1]);
    close(rp[1]);
    int want = nprocs + 1; /* + the shared kid */
    int got = 0;
    char buf[256];
    size_t have = 0;
    while (got < want) {
        ssize_t n = read(rp[0], buf + have, sizeof buf - 1 - have);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            die("children did not start");
        have += (size_t)n;
        buf[have] = 0;
        /* Consume "kPID;" records and "x" tokens. */
        char *s = buf;
        while (*s) {
            if (*s == 'x') {
                got++;
                s++;
            } else if (*s == 'k') {
                char *end = strchr(s, ';');
                if (!end)
                    break;
                share->kid = (pid_t)atoi(s + 1);
                s = end + 1;
            } else {
                s++;
            }
        }
        have = strlen(s);
        memmove(buf, s, have + 1);
    }
    close(rp[0]);
    for (int i = 0; i < nsocks; i++)
        close(socks[i].fd);
    prctl(PR_SET_NAME, "kpf-main");

    for (int i = 0; i < nprocs; i++) {
        printf("proc %d %s\n", (int)procs[i].pid, procs[i].name);
        if (procs[i].fork_kid)
            printf("proc %d %s\n", (int)procs[i].kid, procs[i].kid_name);
    }
    for (int i = 0; i < nsocks; i++) {
        struct proc *o = socks[i].owner;
        if (o->fork_kid)
            printf("sock %lu %s %d,%d\n", socks[i].inode, socks[i].role, (int)o->pid, (int)o->kid);
        else
            printf("sock %lu %s %d\n", socks[i].inode, socks[i].role, (int)o->pid);
    }
    for (int i = 0; i < 2; i++)
        both(find("pair", 2 * i), find("pair", 2 * i + 1));
    for (int i = 0; i < 2; i++)
        both(find("client", i), find("accepted", i));
    linked_to(find("pending", 0), find("listener", 0), 1); /* waits in the listener's queue */
    both(find("seqclient", 0), find("seqaccepted", 0));
    link_to(find("dgclient", 0), find("dgserver", 0)); /* one-way: the server has no peer */
    both(find("shared", 0), find("sharedpeer", 0));
    printf("ready\n");

    struct sigaction act = {.sa_handler = on_signal};
    sigaction(SIGTERM, &act, NULL);
    sigaction(SIGINT, &act, NULL);
    while (!stop) {
        ssize_t n = read(0, buf, sizeof buf);
        if (n == 0 || (n < 0 && errno != EINTR))
            break;
    }
    for (int i = 0; i < nprocs; i++) {
        kill(procs[i].pid, SIGKILL);
        if (procs[i].fork_kid)
            kill(procs[i].kid, SIGKILL);
    }
    while (wait(NULL) > 0 || errno == EINTR)
        ;
    unlink(stream_path);
    unlink(dgram_path);
    return 0;
}
