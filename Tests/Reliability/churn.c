// churn: opens and closes unix connections as fast as it can, across
// processes, for a bounded time, and logs every one it makes — the truth the
// churn checker judges kpeer's answers against.
//
//   churn DIR SECONDS [WORKERS [RATE]]
//
// RATE (default 1000) paces each worker to that many rounds a second; a
// round makes one connection to the next worker and one socketpair, so a
// worker holds 4 new sockets a round and each lives HOLD/4 rounds
// (churn_check pace chooses RATE from a measured kpeer run). Workers stop
// after SECONDS, or earlier once DIR/stop exists (the test says when it has
// run kpeer enough, instead of guessing how long that takes).
// WORKERS processes form a ring: each listens on an abstract name, connects
// to the next one's listener and accepts the previous one's connections, and
// makes socketpairs (stream, datagram, seqpacket) of its own. Each keeps a
// bounded FIFO of open sockets and closes the oldest. Every worker writes
// DIR/log.PID with lines (times are CLOCK_REALTIME ns):
//
//   S listener_ino pid                 a listener
//   P client_ino listener_ino t pid    a client connected to a listener at t
//                                      (before connect()); until accepted it
//                                      is pending on that listener
//   L a_ino b_ino t a_pid b_pid        a and b connected to each other at t
//   X ino t                            ino closed by t (after close())
//
// A link (a, b) was real from its L time until the later X of a and b (or
// for ever, when an X is missing). The parent prints "ready" once every
// worker runs and exits 0 when all of them did.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAXW 16
#include "churn.h"
#define HOLD CHURN_HOLD

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t ino_of(int fd) {
    struct stat st;
    return fstat(fd, &st) == 0 ? (uint64_t)st.st_ino : 0;
}

static socklen_t name_for(struct sockaddr_un *a, int parent, int i) {
    memset(a, 0, sizeof *a);
    a->sun_family = AF_UNIX;
    // Abstract: nothing to clean up, and unique to this run.
    int n = snprintf(a->sun_path + 1, sizeof a->sun_path - 1, "kpeer-churn-%d-%d", parent, i);
    return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n);
}

struct msg {
    uint64_t ino, t, pid;
};

static FILE *logfp;
static int fifo[HOLD];
static uint64_t fifo_ino[HOLD];
static int fifo_len, fifo_head;

static void close_one(void) {
    int fd = fifo[fifo_head];
    uint64_t ino = fifo_ino[fifo_head];
    fifo_head = (fifo_head + 1) % HOLD;
    fifo_len--;
    close(fd);
    fprintf(logfp, "X %llu %llu\n", (unsigned long long)ino, (unsigned long long)now_ns());
}

static void hold(int fd, uint64_t ino) {
    if (fifo_len == HOLD) close_one();
    int at = (fifo_head + fifo_len) % HOLD;
    fifo[at] = fd;
    fifo_ino[at] = ino;
    fifo_len++;
}

static int worker(const char *dir, int parent, int i, int n, int listener, const uint64_t *lino,
                  uint64_t deadline, double rate) {
    char path[4096];
    snprintf(path, sizeof path, "%s/log.%d", dir, (int)getpid());
    logfp = fopen(path, "w");
    if (!logfp) return 1;
    setvbuf(logfp, NULL, _IOFBF, 1 << 20);
    uint64_t pid = (uint64_t)getpid();
    fprintf(logfp, "S %llu %llu\n", (unsigned long long)lino[i], (unsigned long long)pid);
    struct sockaddr_un next;
    socklen_t nextlen = name_for(&next, parent, (i + 1) % n);
    static const int pair_types[] = {SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET};
    unsigned long iter = 0;
    uint64_t begin = now_ns();
    char stop[4096];
    snprintf(stop, sizeof stop, "%s/stop", dir);
    while (now_ns() < deadline && access(stop, F_OK) != 0) {
        iter++;
        // Ahead of the pace: wait (a round takes microseconds).
        while ((double)(now_ns() - begin) * rate / 1e9 < (double)iter) usleep(500);
        // A connection to the next worker, which it accepts.
        uint64_t t = now_ns();
        int c = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (c >= 0 && connect(c, (struct sockaddr *)&next, nextlen) == 0) {
            struct msg m = {ino_of(c), t, pid};
            fprintf(logfp, "P %llu %llu %llu %llu\n", (unsigned long long)m.ino,
                    (unsigned long long)lino[(i + 1) % n], (unsigned long long)t, (unsigned long long)pid);
            // MSG_NOSIGNAL: the listener may close meanwhile (churn stopping),
            // and SIGPIPE would end the worker.
            if (send(c, &m, sizeof m, MSG_NOSIGNAL) != (ssize_t)sizeof m) { /* the peer may be gone */ }
            hold(c, m.ino);
        } else if (c >= 0) {
            close(c);  // backlog full or the next worker finished: try again later
        }
        // Connections from the previous worker.
        for (;;) {
            int s = accept4(listener, NULL, NULL, SOCK_CLOEXEC);
            if (s < 0) break;
            struct msg m;
            struct pollfd p = {s, POLLIN, 0};
            uint64_t sino = ino_of(s);
            if (poll(&p, 1, 1000) == 1 && read(s, &m, sizeof m) == (ssize_t)sizeof m)
                fprintf(logfp, "L %llu %llu %llu %llu %llu\n", (unsigned long long)m.ino, (unsigned long long)sino,
                        (unsigned long long)m.t, (unsigned long long)m.pid, (unsigned long long)pid);
            hold(s, sino);
        }
        // A pair of our own.
        int sv[2];
        t = now_ns();
        if (socketpair(AF_UNIX, pair_types[iter % 3] | SOCK_CLOEXEC, 0, sv) == 0) {
            uint64_t a = ino_of(sv[0]), b = ino_of(sv[1]);
            fprintf(logfp, "L %llu %llu %llu %llu %llu\n", (unsigned long long)a, (unsigned long long)b,
                    (unsigned long long)t, (unsigned long long)pid, (unsigned long long)pid);
            hold(sv[0], a);
            hold(sv[1], b);
        }
    }
    while (fifo_len > 0) close_one();
    close(listener);
    fprintf(logfp, "X %llu %llu\n", (unsigned long long)lino[i], (unsigned long long)now_ns());
    return fclose(logfp) == 0 ? 0 : 1;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: churn DIR SECONDS [WORKERS [RATE]]\n");
        return 64;
    }
    const char *dir = argv[1];
    double seconds = atof(argv[2]);
    int n = argc > 3 ? atoi(argv[3]) : 4;
    double rate = argc > 4 ? atof(argv[4]) : 1000;
    if (n < 1 || n > MAXW || seconds <= 0 || rate <= 0) {
        fprintf(stderr, "churn: 1 to %d workers, a positive time\n", MAXW);
        return 64;
    }
    int parent = (int)getpid();
    int listeners[MAXW];
    uint64_t lino[MAXW];
    for (int i = 0; i < n; i++) {
        struct sockaddr_un a;
        socklen_t len = name_for(&a, parent, i);
        listeners[i] = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (listeners[i] < 0 || bind(listeners[i], (struct sockaddr *)&a, len) != 0 ||
            listen(listeners[i], 256) != 0) {
            perror("churn: listen");
            return 1;
        }
        lino[i] = ino_of(listeners[i]);
    }
    uint64_t deadline = now_ns() + (uint64_t)(seconds * 1e9);
    pid_t kids[MAXW];
    for (int i = 0; i < n; i++) {
        kids[i] = fork();
        if (kids[i] < 0) {
            perror("churn: fork");
            return 1;
        }
        if (kids[i] == 0) {
            for (int j = 0; j < n; j++)
                if (j != i) close(listeners[j]);
            _exit(worker(dir, parent, i, n, listeners[i], lino, deadline, rate));
        }
    }
    for (int i = 0; i < n; i++) close(listeners[i]);
    printf("ready\n");
    fflush(stdout);
    int bad = 0;
    for (int i = 0; i < n; i++) {
        int st;
        if (waitpid(kids[i], &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            fprintf(stderr, "churn: worker %d ended with wait status 0x%x\n", i, st);
            bad++;
        }
    }
    return bad ? 1 : 0;
}
