// churn_check: runs kpeer while churn runs, then judges every answer against
// churn's logs. Plain C so the same program works on the host and, static,
// in the VM guest (busybox only).
//
//   churn_check run DIR N KIND SECONDS CMD ARGS...
//       runs CMD with stdout to DIR/run.N.out and stderr to DIR/run.N.err,
//       killing it after SECONDS; writes DIR/run.N.meta "KIND START END STATUS"
//       (CLOCK_REALTIME ns; STATUS 124 when killed for time, 128+sig for a
//       signal). KIND is dump (kpeer --dump) or all (kpeer --all).
//   churn_check pace WORKERS CMD ARGS...
//       runs CMD (a kpeer run like the ones to be judged) 3 times and prints
//       "RATE SETTLE FLOOR LIMIT T": the churn rate (rounds a second per
//       worker) at which a churn socket lives PACE_LIVES times the slowest
//       of those runs, so most sockets outlive a run while a 1/PACE_LIVES of
//       them turns over during it, on a slow machine or a fast one; how long
//       to let churn fill its sockets first (s); the fewest answers about
//       churn's sockets each successful run must give (judge's FLOOR); the
//       time after which a run counts as hung (s); and the measured T (s).
//   churn_check judge DIR [FLOOR]
//       exit 0 iff every run ended with a documented status (one stderr
//       line and no stdout when not 0), and every link a run reported
//       between sockets churn made is one churn made, alive at some moment of
//       that run: --dump's socket:peer_socket pairs (or, while pending,
//       peer_socket 0 and the listener's holder as peer_pid), and --all's
//       peer processes (a process holding a socket that was connected to
//       that row's socket, or the listener it waited on);
//       and each kind (dump, all) had a successful run, with at least FLOOR
//       answers about churn's sockets per successful run on average (FLOOR
//       0: a stress run, judged on correctness alone; default 1).
//   churn_check signal [-w] SIG CMD ARGS...
//       runs CMD under ptrace (every signal at its default, which an `&` in
//       sh would not give) from system call to system call until
//       kernel.kptr_restrict reads 1 while it is stopped, detaches
//       delivering SIG (INT, TERM, HUP, ALRM, USR1, XFSZ, RTMIN+N, a number)
//       and exits 0 iff CMD died of SIG and kptr_restrict reads 0 again.
//       -w: prints "raised PID" and keeps CMD stopped there until a line or
//       EOF on stdin; then exits 0 iff CMD died of SIG (the caller judges
//       kptr_restrict, which it may have changed meanwhile).
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "churn.h"

#define FOREVER UINT64_MAX

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

// ---- run ----

static int run(const char *dir, const char *n, const char *kind, double seconds, char **cmd) {
    char out[4096], err[4096], meta[4096];
    snprintf(out, sizeof out, "%s/run.%s.out", dir, n);
    snprintf(err, sizeof err, "%s/run.%s.err", dir, n);
    snprintf(meta, sizeof meta, "%s/run.%s.meta", dir, n);
    uint64_t start = now_ns();
    pid_t pid = fork();
    if (pid < 0) return 1;
    if (pid == 0) {
        int o = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int e = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (o < 0 || e < 0) _exit(127);
        dup2(o, 1);
        dup2(e, 2);
        execvp(cmd[0], cmd);
        _exit(127);
    }
    int st = 0, timed_out = 0;
    uint64_t limit = start + (uint64_t)(seconds * 1e9);
    for (;;) {
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid) break;
        if (r < 0 && errno != EINTR) return 1;
        if (now_ns() > limit && !timed_out) {
            kill(pid, SIGKILL);
            timed_out = 1;
        }
        usleep(2000);
    }
    uint64_t end = now_ns();
    int status = timed_out ? 124 : WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    FILE *m = fopen(meta, "w");
    if (!m) return 1;
    fprintf(m, "%s %llu %llu %d\n", kind, (unsigned long long)start, (unsigned long long)end, status);
    fclose(m);
    return 0;
}

// ---- pace: churn's rate from a measured run ----

// A churn socket lives this many times the slowest measured kpeer run.
#define PACE_LIVES 4

static int pace(int workers, char **cmd) {
    if (workers < 1) { fprintf(stderr, "churn_check: pace needs WORKERS >= 1\n"); return 64; }
    uint64_t slowest = 0;
    for (int i = 0; i < 3; i++) {
        uint64_t start = now_ns();
        pid_t pid = fork();
        if (pid < 0) return 1;
        if (pid == 0) {
            int null = open("/dev/null", O_WRONLY);
            if (null < 0) _exit(127);
            dup2(null, 1);
            dup2(null, 2);
            execvp(cmd[0], cmd);
            _exit(127);
        }
        int st = 0;
        while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {}
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            fprintf(stderr, "churn_check: pace: %s failed (status 0x%x)\n", cmd[0], st);
            return 1;
        }
        uint64_t took = now_ns() - start;
        if (took > slowest) slowest = took;
    }
    double t = (double)slowest / 1e9;
    double rounds_per_life = (double)CHURN_HOLD / CHURN_SOCKETS_PER_ROUND;
    double rate = rounds_per_life / (PACE_LIVES * t);
    if (rate > 1000) rate = 1000;  // churn's own ceiling: a round takes microseconds
    double life = rounds_per_life / rate;
    // Full FIFOs after one lifetime; half as much again for the accept side.
    double settle = 1.5 * life;
    // Of WORKERS*HOLD sockets, about (1 - 1/PACE_LIVES) outlive a run and
    // each gives an answer; an eighth of the population leaves room for
    // the rest (listeners, sockets between two owners' scans).
    long floor = (long)workers * CHURN_HOLD / 8;
    double limit = 30 * t + 30;
    printf("%.3f %.3f %ld %.0f %.3f\n", rate, settle, floor, limit, t);
    return 0;
}

// ---- the truth: churn's logs ----

typedef struct { uint64_t ino, v; } kv;              // X: close time; owner pid
typedef struct { uint64_t ino, other, t; int pending; } edge;

static kv *closes, *pids;
static size_t nclose, npid, cclose, cpid;
static edge *edges;
static size_t nedge, cedge;

#define PUSH(arr, n, cap, val)                                              \
    do {                                                                    \
        if (n == cap) {                                                     \
            cap = cap ? cap * 2 : 4096;                                     \
            arr = realloc(arr, cap * sizeof *arr);                          \
            if (!arr) { perror("churn_check"); exit(2); }                   \
        }                                                                   \
        arr[n++] = val;                                                     \
    } while (0)

static int cmp_kv(const void *a, const void *b) {
    const kv *x = a, *y = b;
    return x->ino < y->ino ? -1 : x->ino > y->ino;
}

static int cmp_edge(const void *a, const void *b) {
    const edge *x = a, *y = b;
    if (x->ino != y->ino) return x->ino < y->ino ? -1 : 1;
    return x->other < y->other ? -1 : x->other > y->other;
}

static const kv *find_kv(const kv *arr, size_t n, uint64_t ino) {
    kv key = {ino, 0};
    return bsearch(&key, arr, n, sizeof *arr, cmp_kv);
}

static uint64_t close_of(uint64_t ino) {
    const kv *k = find_kv(closes, nclose, ino);
    return k ? k->v : FOREVER;
}

static uint64_t pid_of(uint64_t ino) {
    const kv *k = find_kv(pids, npid, ino);
    return k ? k->v : 0;
}

static int is_churn(uint64_t ino) { return ino && find_kv(pids, npid, ino) != NULL; }

static void read_log(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) return;
    char line[256];
    unsigned long long a, b, t, p, q;
    while (fgets(line, sizeof line, f)) {
        if (sscanf(line, "L %llu %llu %llu %llu %llu", &a, &b, &t, &p, &q) == 5) {
            PUSH(edges, nedge, cedge, ((edge){a, b, t, 0}));
            PUSH(edges, nedge, cedge, ((edge){b, a, t, 0}));
            PUSH(pids, npid, cpid, ((kv){a, p}));
            PUSH(pids, npid, cpid, ((kv){b, q}));
        } else if (sscanf(line, "P %llu %llu %llu %llu", &a, &b, &t, &p) == 4) {
            PUSH(edges, nedge, cedge, ((edge){a, b, t, 1}));
            PUSH(pids, npid, cpid, ((kv){a, p}));
        } else if (sscanf(line, "S %llu %llu", &a, &p) == 2) {
            PUSH(pids, npid, cpid, ((kv){a, p}));
        } else if (sscanf(line, "X %llu %llu", &a, &t) == 2) {
            PUSH(closes, nclose, cclose, ((kv){a, t}));
        }
    }
    fclose(f);
}

// Was `ino` linked to `other` (or pending on it) at some moment of [s, e]?
// With other == 0: to any socket held by process `pid`.
static int linked(uint64_t ino, uint64_t other, uint64_t pid, uint64_t s, uint64_t e) {
    edge key = {ino, 0, 0, 0};
    size_t lo = 0, hi = nedge;
    while (lo < hi) {  // first edge of ino
        size_t mid = (lo + hi) / 2;
        if (cmp_edge(&edges[mid], &key) < 0) lo = mid + 1; else hi = mid;
    }
    for (size_t i = lo; i < nedge && edges[i].ino == ino; i++) {
        const edge *g = &edges[i];
        if (other && g->other != other) continue;
        if (!other && pid_of(g->other) != pid) continue;
        uint64_t end = close_of(ino);
        if (!g->pending) {
            uint64_t e2 = close_of(g->other);
            if (e2 > end) end = e2;
        }
        if (g->t <= e && end >= s) return 1;
    }
    return 0;
}

// ---- judging the runs ----

static long checked, foreign, bad, runs, statuses[256];

static void complain(const char *run, const char *what, const char *line) {
    bad++;
    if (bad <= 10) fprintf(stderr, "churn_check: %s: %s: %s", run, what, line);
}

static void judge_dump(const char *name, FILE *f, uint64_t s, uint64_t e) {
    char line[4096];
    while (fgets(line, sizeof line, f)) {
        char *fields[8];
        int n = 0;
        char copy[4096];
        memcpy(copy, line, sizeof copy);
        for (char *p = copy, *tok; n < 8 && (tok = strsep(&p, ":")) != NULL;) fields[n++] = tok;
        if (n != 6) { complain(name, "not a --dump line", line); continue; }
        uint64_t x = strtoull(fields[2], NULL, 10), y = strtoull(fields[3], NULL, 10);
        if (!is_churn(x) && !is_churn(y)) { foreign++; continue; }
        checked++;
        // peer_socket 0: a client still pending, peer_pid its listener's holder.
        int ok = y ? linked(x, y, 0, s, e) : linked(x, 0, strtoull(fields[4], NULL, 10), s, e);
        if (!ok) complain(name, "a link churn never made", line);
    }
}

static void judge_all(const char *name, FILE *f, uint64_t s, uint64_t e) {
    char line[4096];
    int first = 1;
    while (fgets(line, sizeof line, f)) {
        if (first) {
            first = 0;
            if (strncmp(line, "Proto ", 6) != 0) complain(name, "no header", line);
            continue;
        }
        // Columns are fixed up to the inode (Docs/CONTRACT.md): it starts at 51.
        if (strlen(line) < 60) { complain(name, "short --all row", line); continue; }
        char copy[4096];
        memcpy(copy, line + 50, sizeof copy - 50);
        char *save = NULL;
        char *ino_s = strtok_r(copy, " \n", &save);
        char *owners = strtok_r(NULL, " \n", &save);
        char *peers = strtok_r(NULL, " \n", &save);
        if (!ino_s || !owners || !peers) { complain(name, "unreadable --all row", line); continue; }
        uint64_t x = strtoull(ino_s, NULL, 10);
        if (!is_churn(x)) { foreign++; continue; }
        if (strcmp(peers, "-") == 0) continue;
        checked++;
        for (char *p = peers, *tok; (tok = strsep(&p, ",")) != NULL;) {
            if (tok[0] == '+') continue;  // `,+N`: N more holders, not a pid
            uint64_t pid = strtoull(tok, NULL, 10);
            if (!linked(x, 0, pid, s, e)) { complain(name, "a peer process churn never linked", line); break; }
        }
    }
}

static int count_lines(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    int n = 0, c, last = '\n';
    while ((c = fgetc(f)) != EOF) {
        if (c == '\n') n++;
        last = c;
    }
    fclose(f);
    return n + (last != '\n');
}

// May root not read PID's descriptors here (a sandbox's pid 1)?
static int hidden_pid(long pid) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%ld/fd", pid);
    DIR *d = opendir(path);
    if (!d) return errno == EACCES || errno == EPERM;
    // Listed, maybe, but its links refused.
    struct dirent *de;
    int hidden = 0;
    while (!hidden && (de = readdir(d))) {
        if (de->d_name[0] == '.') continue;
        char fd[320], link[64];
        snprintf(fd, sizeof fd, "%s/%s", path, de->d_name);
        hidden = readlink(fd, link, sizeof link) < 0 && (errno == EACCES || errno == EPERM);
    }
    closedir(d);
    return hidden;
}

// The lines of a run's stderr other than kpeer's note that some processes'
// descriptors could not be read, when that is true here: where the machine
// hides a process even from root (a sandbox's pid 1), every answer that
// stands says so, and rightly. The note counts only if its first pid is
// really hidden from this (root) process too.
static int other_err_lines(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    char line[2048];
    int n = 0;
    static const char note[] = "kpeer: the descriptors of ";
    while (fgets(line, sizeof line, f)) {
        const char *pid = strstr(line, "could not be read (pid ");
        if (strncmp(line, note, sizeof note - 1) == 0 && pid && hidden_pid(strtol(pid + 23, NULL, 10))) continue;
        n++;
    }
    fclose(f);
    return n;
}

static int judge(const char *dir, long floor) {
    DIR *d = opendir(dir);
    if (!d) { perror(dir); return 2; }
    struct dirent *de;
    char path[4096];
    while ((de = readdir(d)) != NULL)
        if (strncmp(de->d_name, "log.", 4) == 0) {
            snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
            read_log(path);
        }
    qsort(edges, nedge, sizeof *edges, cmp_edge);
    qsort(pids, npid, sizeof *pids, cmp_kv);
    qsort(closes, nclose, sizeof *closes, cmp_kv);
    if (npid == 0) { fprintf(stderr, "churn_check: no churn logs in %s\n", dir); return 2; }

    rewinddir(d);
    long dump_checked = 0, all_checked = 0, dump_ok = 0, all_ok = 0;
    while ((de = readdir(d)) != NULL) {
        size_t len = strlen(de->d_name);
        if (strncmp(de->d_name, "run.", 4) != 0 || len < 9 || strcmp(de->d_name + len - 5, ".meta") != 0) continue;
        char stem[1024];
        snprintf(stem, sizeof stem, "%s/%.*s", dir, (int)(len - 5), de->d_name);
        snprintf(path, sizeof path, "%s.meta", stem);
        FILE *m = fopen(path, "r");
        char kind[16];
        unsigned long long s, e;
        int status;
        if (!m || fscanf(m, "%15s %llu %llu %d", kind, &s, &e, &status) != 4) {
            if (m) fclose(m);
            complain(de->d_name, "unreadable", "\n");
            continue;
        }
        fclose(m);
        runs++;
        statuses[status & 255]++;
        char line[600];
        char path_err[4096];
        snprintf(path_err, sizeof path_err, "%s.err", stem);
        int errlines = count_lines(path_err);
        snprintf(path, sizeof path, "%s.out", stem);
        int outlines = count_lines(path);
        // Documented statuses (Docs/CONTRACT.md); a timeout (124) or a
        // signal (128+) is a hang or a crash.
        static const int documented[] = {0, 1, 2, 3, 64, 65, 69, 70, 74, 77};
        int ok = 0;
        for (size_t i = 0; i < sizeof documented / sizeof *documented; i++) ok |= status == documented[i];
        snprintf(line, sizeof line, "status %d, %d stdout lines, %d stderr lines\n", status, outlines, errlines);
        if (!ok) complain(de->d_name, "undocumented status (hang or crash)", line);
        else if (status != 0 && (outlines != 0 || errlines != 1)) complain(de->d_name, "a failure must be one stderr line", line);
        else if (status == 0 && errlines != 0 && other_err_lines(path_err) != 0) complain(de->d_name, "stderr on success", line);
        if (status != 0) continue;
        FILE *f = fopen(path, "r");
        if (!f) continue;
        long before = checked;
        if (strcmp(kind, "dump") == 0) judge_dump(de->d_name, f, s, e);
        else if (strcmp(kind, "all") == 0) judge_all(de->d_name, f, s, e);
        else complain(de->d_name, "unknown kind", kind);
        fclose(f);
        if (strcmp(kind, "dump") == 0) dump_checked += checked - before, dump_ok++;
        else all_checked += checked - before, all_ok++;
    }
    closedir(d);
    size_t links = 0;
    for (size_t i = 0; i < nedge; i++) links += !edges[i].pending;
    printf("churn_check: churn made %zu links and %zu connections to listeners; %ld kpeer runs (status 0: %ld);"
           " %ld answers about churn's sockets checked (dump %ld, all %ld), %ld about others not judged; %ld wrong\n",
           links / 2, nedge - links, runs, statuses[0], checked, dump_checked, all_checked, foreign, bad);
    for (int i = 1; i < 256; i++)
        if (statuses[i]) printf("churn_check: %ld runs exited %d\n", statuses[i], i);
    printf("churn_check: answers about churn's sockets per successful run: dump %.1f (%ld runs), all %.1f (%ld runs);"
           " floor %ld\n", dump_ok ? (double)dump_checked / dump_ok : 0.0, dump_ok,
           all_ok ? (double)all_checked / all_ok : 0.0, all_ok, floor);
    // FLOOR 0: a stress run, judged on correctness alone.
    if (floor == 0) return runs == 0 || bad ? 1 : 0;
    // A test that saw nothing proves nothing; nor does one that saw little.
    if (runs == 0 || dump_checked == 0 || all_checked == 0) {
        fprintf(stderr, "churn_check: kpeer reported nothing about churn's sockets; the test proves nothing\n");
        return 1;
    }
    if (dump_checked < floor * dump_ok || all_checked < floor * all_ok) {
        fprintf(stderr, "churn_check: fewer answers about churn's sockets than the pacing promises"
                        " (at least %ld a run); kpeer drops answers it should give\n", floor);
        return 1;
    }
    return bad ? 1 : 0;
}

// ---- signals while kptr_restrict is raised ----

// Driven from outside: kpeer runs under ptrace and is stopped at the first
// system call after it wrote 1 (kpeer has no hook for this: nothing in the
// product waits for a test).
#include <sys/ptrace.h>

// Syscall stops to wait through for the raise: a kpeer run makes a few
// thousand; this only bounds a run that never raises.
#define SIGNAL_MAX_STOPS 10000000L

static int read_kptr(void) {
    int fd = open("/proc/sys/kernel/kptr_restrict", O_RDONLY);
    char c = 0;
    if (fd < 0) return -1;
    int n = (int)read(fd, &c, 1);
    close(fd);
    return n == 1 ? c - '0' : -1;
}

// INT, SIGINT, TERM, HUP, ALRM, USR1, USR2, XFSZ, QUIT, PIPE, RTMIN+N, or a number.
static int signal_number(const char *name) {
    static const struct { const char *name; int sig; } names[] = {
        {"INT", SIGINT}, {"TERM", SIGTERM}, {"HUP", SIGHUP}, {"ALRM", SIGALRM}, {"USR1", SIGUSR1},
        {"USR2", SIGUSR2}, {"XFSZ", SIGXFSZ}, {"QUIT", SIGQUIT}, {"PIPE", SIGPIPE}, {"XCPU", SIGXCPU},
    };
    if (strncmp(name, "SIG", 3) == 0) name += 3;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(name, names[i].name) == 0) return names[i].sig;
    if (strncmp(name, "RTMIN+", 6) == 0) {
        int n = atoi(name + 6);
        return SIGRTMIN + n <= SIGRTMAX ? SIGRTMIN + n : 0;
    }
    char *end;
    long n = strtol(name, &end, 10);
    return *name && !*end && n > 0 && n < NSIG && n != SIGKILL && n != SIGSTOP ? (int)n : 0;
}

// Starts CMD traced (stdout to /dev/null, every signal at its default and
// unblocked, which an `&` in sh would not give) and runs it from syscall
// stop to syscall stop until kernel.kptr_restrict reads 1 at one of them.
// Returns the pid, stopped there, or -1 (said why; CMD is gone).
static pid_t run_until_raised(char **cmd, long *stops) {
    pid_t pid = fork();
    if (pid < 0) { perror("churn_check: fork"); return -1; }
    if (pid == 0) {
        struct sigaction dfl;
        memset(&dfl, 0, sizeof dfl);
        dfl.sa_handler = SIG_DFL;
        for (int s = 1; s < NSIG; s++) sigaction(s, &dfl, NULL);  // EINVAL for KILL, STOP: fine
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        int null = open("/dev/null", O_WRONLY);
        if (null >= 0) dup2(null, 1);
        if (ptrace(PTRACE_TRACEME, 0, NULL, NULL) != 0) { perror("churn_check: PTRACE_TRACEME"); _exit(126); }
        execvp(cmd[0], cmd);  // stops here with SIGTRAP for the tracer
        _exit(127);
    }
    int st = 0;
    if (waitpid(pid, &st, 0) != pid || !WIFSTOPPED(st) || WSTOPSIG(st) != SIGTRAP) {
        fprintf(stderr, "churn_check: %s did not start traced (status 0x%x)\n", cmd[0], st);
        if (!WIFEXITED(st) && !WIFSIGNALED(st)) { kill(pid, SIGKILL); waitpid(pid, &st, 0); }
        return -1;
    }
    // EXITKILL: should churn_check die, so does CMD. TRACEEXEC: kpeer's own
    // re-exec (a clean environment) is an event stop, not a SIGTRAP.
    long opts = PTRACE_O_TRACESYSGOOD | PTRACE_O_TRACEEXEC | PTRACE_O_EXITKILL;
    if (ptrace(PTRACE_SETOPTIONS, pid, NULL, (void *)opts) != 0) {
        perror("churn_check: PTRACE_SETOPTIONS");
        kill(pid, SIGKILL);
        waitpid(pid, &st, 0);
        return -1;
    }
    int deliver = 0;
    for (*stops = 0; *stops < SIGNAL_MAX_STOPS;) {
        if (ptrace(PTRACE_SYSCALL, pid, NULL, (void *)(long)deliver) != 0) { perror("churn_check: PTRACE_SYSCALL"); break; }
        deliver = 0;
        if (waitpid(pid, &st, 0) != pid) { perror("churn_check: waitpid"); break; }
        if (WIFEXITED(st) || WIFSIGNALED(st)) {
            fprintf(stderr, "churn_check: %s ended (status 0x%x) before raising kptr_restrict, after %ld syscall stops\n",
                    cmd[0], st, *stops);
            return -1;
        }
        if (WSTOPSIG(st) == (SIGTRAP | 0x80)) {  // a syscall stop (TRACESYSGOOD)
            ++*stops;
            if (read_kptr() == 1) return pid;
        } else if (st >> 16 == 0) {
            deliver = WSTOPSIG(st);  // a signal for CMD: pass it on
        }                            // an event stop (exec): nothing to pass
    }
    if (*stops >= SIGNAL_MAX_STOPS)
        fprintf(stderr, "churn_check: kptr_restrict never read 1 in %ld syscall stops of %s\n", *stops, cmd[0]);
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
    return -1;
}

static int signal_test(const char *name, char **cmd) {
    // -w: hold CMD stopped with kptr_restrict raised, print "raised PID",
    // and go on only once stdin has a line or ends; the caller judges the
    // sysctl (it may change it meanwhile).
    int hold = strcmp(name, "-w") == 0;
    if (hold) name = *cmd++;
    int sig = name ? signal_number(name) : 0;
    if (!sig || !cmd[0]) {
        fprintf(stderr, "churn_check: signal [-w] SIG CMD... (SIG: INT, TERM, HUP, ..., RTMIN+N or a number)\n");
        return 64;
    }
    if (read_kptr() != 0) { fprintf(stderr, "churn_check: kptr_restrict is not 0 to begin with\n"); return 1; }
    // A backstop: a CMD stuck in a system call must not hang the test
    // (EXITKILL takes it along).
    alarm(hold ? 600 : 120);
    long stops = 0;
    pid_t pid = run_until_raised(cmd, &stops);
    if (pid < 0) return 1;
    if (hold) {
        printf("raised %d\n", (int)pid);
        fflush(stdout);
        char c;
        while (read(0, &c, 1) == 1 && c != '\n') {}
    }
    // The signal goes with the detach, into the stopped system call.
    if (ptrace(PTRACE_DETACH, pid, NULL, (void *)(long)sig) != 0) {
        perror("churn_check: PTRACE_DETACH");
        kill(pid, SIGKILL);
    }
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {}
    int after = read_kptr();
    int died = WIFSIGNALED(st) && WTERMSIG(st) == sig;
    printf("signal %s: %s, kptr_restrict %d afterwards (raised at syscall stop %ld)\n", name,
           died ? "died of it" : WIFEXITED(st) ? "exited" : "died of another signal", after, stops);
    if (hold) return died ? 0 : 1;
    if (after != 0) {
        // Leave the machine as we found it, but fail.
        int fd = open("/proc/sys/kernel/kptr_restrict", O_WRONLY);
        if (fd >= 0) { if (write(fd, "0\n", 2) != 2) {} close(fd); }
    }
    return died && after == 0 ? 0 : 1;
}

int main(int argc, char **argv) {
    if (argc >= 7 && strcmp(argv[1], "run") == 0) return run(argv[2], argv[3], argv[4], atof(argv[5]), argv + 6);
    if ((argc == 3 || argc == 4) && strcmp(argv[1], "judge") == 0) return judge(argv[2], argc == 4 ? atol(argv[3]) : 1);
    if (argc >= 4 && strcmp(argv[1], "pace") == 0) return pace(atoi(argv[2]), argv + 3);
    if (argc >= 4 && strcmp(argv[1], "signal") == 0) return signal_test(argv[2], argv + 3);
    fprintf(stderr, "usage: churn_check run DIR N KIND SECONDS CMD...\n       churn_check pace WORKERS CMD...\n"
                    "       churn_check judge DIR [FLOOR]\n"
                    "       churn_check signal [-w] SIG CMD...\n");
    return 64;
}
