/*
 * crowd: a benchmark population of unix sockets.
 *
 *   crowd [-n PROCS] [-s SOCKETS] [-w]   (defaults: 40 processes, 20000 sockets)
 *
 * Forks PROCS children named crowd-N. The parent makes SOCKETS/2 socketpairs
 * and hands the two ends of each to two different children over SCM_RIGHTS
 * (child i and child i+1+k mod PROCS, k varying, so peers spread over many
 * processes), closing its own copies: every socket is held by exactly one
 * process and its peer by another. Children raise RLIMIT_NOFILE as far as
 * the hard limit allows. Output on stdout:
 *
 *   sample INODE PEER_PID PEER_NAME    a few sockets and who holds their peer
 *   sockets N                          how many sockets the children hold
 *   ready
 *
 * Then it waits for EOF on stdin, SIGTERM or SIGINT (with -w: for a signal
 * only, stdin unread, for shells that cannot keep a pipe open without a
 * process of their own) and kills its children (they also die with it:
 * PR_SET_PDEATHSIG). Builds static for the VM.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define BATCH 200 /* fds per SCM_RIGHTS message, below SCM_MAX_FD (253) */

static volatile sig_atomic_t stop;
static void on_signal(int sig) { (void)sig; stop = 1; }

static void die(const char *what)
{
    fprintf(stderr, "crowd: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void raise_nofile(rlim_t want)
{
    struct rlimit r;
    if (getrlimit(RLIMIT_NOFILE, &r) != 0) return;
    r.rlim_cur = want < r.rlim_max ? want : r.rlim_max;
    setrlimit(RLIMIT_NOFILE, &r);
}

/* One child: receive fds until the parent says "done" (a zero-fd message),
 * report how many it holds, then wait to be killed. */
static void child(int ctl, int index, long expect)
{
    char name[16];
    snprintf(name, sizeof name, "crowd-%d", index);
    prctl(PR_SET_NAME, name);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    raise_nofile((rlim_t)expect + 64);
    long held = 0;
    for (;;) {
        char byte;
        char cbuf[CMSG_SPACE(sizeof(int) * BATCH)];
        struct iovec iov = { &byte, 1 };
        struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof cbuf };
        ssize_t n = recvmsg(ctl, &m, MSG_CMSG_CLOEXEC);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) _exit(1);
        if (m.msg_flags & MSG_CTRUNC) {
            fprintf(stderr, "crowd-%d: descriptors truncated (RLIMIT_NOFILE too low?)\n", index);
            _exit(1);
        }
        if (byte == 'D') break;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c))
            if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
                held += (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    }
    if (write(ctl, &held, sizeof held) != sizeof held) _exit(1);
    for (;;) pause();
}

struct pending { int fds[BATCH]; int n; };

static void flush(int ctl, struct pending *p)
{
    if (p->n == 0) return;
    char byte = 'F';
    char cbuf[CMSG_SPACE(sizeof(int) * BATCH)];
    memset(cbuf, 0, sizeof cbuf);
    struct iovec iov = { &byte, 1 };
    struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
                        .msg_controllen = CMSG_SPACE(sizeof(int) * p->n) };
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * p->n);
    memcpy(CMSG_DATA(c), p->fds, sizeof(int) * p->n);
    while (sendmsg(ctl, &m, 0) < 0)
        if (errno != EINTR) die("sendmsg");
    for (int i = 0; i < p->n; i++) close(p->fds[i]);
    p->n = 0;
}

int main(int argc, char **argv)
{
    int nproc = 40;
    long nsock = 20000;
    int opt, signal_only = 0;
    while ((opt = getopt(argc, argv, "n:s:w")) != -1) {
        if (opt == 'n') nproc = atoi(optarg);
        else if (opt == 's') nsock = atol(optarg);
        else if (opt == 'w') signal_only = 1;
        else { fprintf(stderr, "usage: crowd [-n PROCS] [-s SOCKETS] [-w]\n"); return 64; }
    }
    if (nproc < 2 || nproc > 10000 || nsock < 2) { fprintf(stderr, "crowd: need PROCS >= 2, SOCKETS >= 2\n"); return 64; }
    long pairs = nsock / 2;
    /* The parent holds up to `batch` fds per child before sending them. */
    raise_nofile((rlim_t)nproc * BATCH + 2 * (rlim_t)nproc + 64);
    struct rlimit lim;
    getrlimit(RLIMIT_NOFILE, &lim);
    long batch = ((long)lim.rlim_cur - 2L * nproc - 64) / nproc;
    if (batch > BATCH) batch = BATCH;
    if (batch < 1) { fprintf(stderr, "crowd: RLIMIT_NOFILE too low for %d processes\n", nproc); return 1; }

    pid_t *pids = calloc(nproc, sizeof *pids);
    int *ctl = calloc(nproc, sizeof *ctl);
    struct pending *pend = calloc(nproc, sizeof *pend);
    if (!pids || !ctl || !pend) die("calloc");
    long per = (2 * pairs + nproc - 1) / nproc;
    for (int i = 0; i < nproc; i++) {
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) die("socketpair (control)");
        pid_t pid = fork();
        if (pid < 0) die("fork");
        if (pid == 0) {
            close(sv[0]);
            for (int j = 0; j < i; j++) close(ctl[j]);
            child(sv[1], i, per * 2);
        }
        close(sv[1]);
        ctl[i] = sv[0];
        pids[i] = pid;
    }

    /* Samples: a few pairs' inodes and where their other end goes. */
    int samples = 0;
    for (long k = 0; k < pairs; k++) {
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) die("socketpair");
        int a = (int)(k % nproc);
        int b = (int)((a + 1 + (k / nproc) % (nproc - 1)) % nproc);
        if (samples < 3 && (k == 0 || k == pairs / 2 || k == pairs - 1)) {
            struct stat st;
            if (fstat(sv[0], &st) == 0)
                printf("sample %lu %d crowd-%d\n", (unsigned long)st.st_ino, (int)pids[b], b);
            samples++;
        }
        pend[a].fds[pend[a].n++] = sv[0];
        if (pend[a].n == batch) flush(ctl[a], &pend[a]);
        pend[b].fds[pend[b].n++] = sv[1];
        if (pend[b].n == batch) flush(ctl[b], &pend[b]);
    }
    long total = 0;
    for (int i = 0; i < nproc; i++) {
        flush(ctl[i], &pend[i]);
        char done = 'D';
        if (send(ctl[i], &done, 1, 0) != 1) die("send");
    }
    for (int i = 0; i < nproc; i++) {
        long held;
        if (read(ctl[i], &held, sizeof held) != sizeof held) die("child report");
        total += held;
    }
    printf("sockets %ld\nready\n", total);
    fflush(stdout);

    /* Blocked until the wait: a signal between the check of `stop` and
     * the wait would otherwise be lost. */
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);
    sigprocmask(SIG_BLOCK, &block, &old);
    struct sigaction sa = { .sa_handler = on_signal };
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    if (signal_only) {
        while (!stop) sigsuspend(&old);
    } else {
        sigprocmask(SIG_SETMASK, &old, NULL);
        char buf[64];
        while (!stop) {
            ssize_t n = read(0, buf, sizeof buf);
            if (n == 0 || (n < 0 && errno != EINTR)) break;
        }
    }
    for (int i = 0; i < nproc; i++) kill(pids[i], SIGKILL);
    for (int i = 0; i < nproc; i++) waitpid(pids[i], NULL, 0);
    return 0;
}
