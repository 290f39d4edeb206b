// kernel.kptr_restrict: raised 0 → 1 only while kpeer reads /proc/net/unix,
// and put back on every path, including death by signal. This lives in C
// because the restore runs inside signal handlers.
#include "ckpeer.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *kptr_path = "/proc/sys/kernel/kptr_restrict";
static volatile sig_atomic_t raised = 0;
static const int guarded[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE, SIGUSR1, SIGUSR2,
                              SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGTRAP, SIGXCPU};
#define NGUARDED (sizeof guarded / sizeof guarded[0])
static struct sigaction previous_actions[NGUARDED];

void kp_kptr_set_path(const char *path) { kptr_path = path; }

static int read_value(void) {
    int fd = open(kptr_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -errno;
    char c = 0;
    ssize_t n = read(fd, &c, 1);
    int e = errno;
    close(fd);
    if (n != 1) return n < 0 ? -e : -EIO;
    if (c < '0' || c > '9') return -EINVAL;
    return c - '0';
}

// Async-signal-safe: open, write, close.
static int write_value(char v) {
    int fd = open(kptr_path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return -errno;
    char buf[2] = {v, '\n'};
    ssize_t n = write(fd, buf, 2);
    int e = errno;
    close(fd);
    return n == 2 ? 0 : (n < 0 ? -e : -EIO);
}

static void put_back_handlers(void) {
    for (size_t i = 0; i < NGUARDED; i++) sigaction(guarded[i], &previous_actions[i], NULL);
}

static void on_signal(int sig) {
    int saved_errno = errno;
    if (raised) {
        write_value('0');
        raised = 0;
    }
    // Give the signal back to whatever handled it before, then deliver it
    // again: it is blocked inside this handler, so it arrives on return.
    for (size_t i = 0; i < NGUARDED; i++)
        if (guarded[i] == sig) sigaction(sig, &previous_actions[i], NULL);
    raise(sig);
    errno = saved_errno;
}

int kp_kptr_raise(int *previous) {
    int v = read_value();
    if (v < 0) return v;
    *previous = v;
    if (v != 0 || raised) return 0;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigfillset(&sa.sa_mask);
    // Armed before the write: a signal in between only rewrites the 0.
    raised = 1;
    for (size_t i = 0; i < NGUARDED; i++) {
        sigaction(guarded[i], &sa, &previous_actions[i]);
        // An ignored signal cannot end the run: leave it ignored, rather
        // than lower kptr_restrict and carry on with hashed addresses.
        if (previous_actions[i].sa_handler == SIG_IGN) sigaction(guarded[i], &previous_actions[i], NULL);
    }
    int rc = write_value('1');
    if (rc != 0) {
        raised = 0;
        put_back_handlers();
        return rc;
    }
    // Test hook: KPEER_TEST_HOLD_KPTR=N keeps kptr_restrict raised for N
    // seconds, so the signal tests (Tests/KPeerTests/SignalTests.swift, the
    // VM's x_signal_* runs) can deliver a signal while it is raised.
    const char *hold = getenv("KPEER_TEST_HOLD_KPTR");
    for (unsigned left = hold ? (unsigned)atoi(hold) : 0; left > 0;) left = sleep(left);
    return 0;
}

int kp_kptr_restore(void) {
    if (!raised) return 0;
    int rc = write_value('0');
    raised = 0;
    put_back_handlers();
    return rc;
}
