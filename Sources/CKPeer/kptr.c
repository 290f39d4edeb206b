// kernel.kptr_restrict: raised 0 → 1 only while kpeer reads /proc/net/unix,
// and put back on every path, including death by signal. This lives in C
// because the restore runs inside signal handlers.
#include "ckpeer.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

static const char *kptr_path = "/proc/sys/kernel/kptr_restrict";
static volatile sig_atomic_t raised = 0;
// Every signal whose default action ends the process, real-time ones
// included: any of them arriving while kptr_restrict is raised must put it
// back first. Stop, continue and the ignored-by-default ones cannot end it.
#define NSIGS 65
static struct sigaction previous_actions[NSIGS];
static volatile sig_atomic_t guarded[NSIGS];

static int ends_process(int sig) {
    switch (sig) {
    case SIGKILL: case SIGSTOP: case SIGCHLD: case SIGCONT: case SIGURG:
    case SIGWINCH: case SIGTSTP: case SIGTTIN: case SIGTTOU:
        return 0;
    default:
        return 1;
    }
}

void kp_kptr_set_path(const char *path) { kptr_path = path; }

// Two kpeer runs at once: A raises 0 → 1, B finds 1 and leaves it, A puts 0
// back while B still reads, and B sees hashed addresses. A lock held from
// the read of the old value to the restore makes B wait for A instead.
// Where /run is missing (a bare initramfs) runs go unserialised, as before.
static const char *lock_path = "/run/kpeer-kptr.lock";
static int lock_fd = -1;

static void take_lock(void) {
    if (lock_fd >= 0) return;  // already ours: never wait on ourselves
    lock_fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (lock_fd < 0) return;
    while (flock(lock_fd, LOCK_EX) != 0) {
        if (errno != EINTR) {
            close(lock_fd);
            lock_fd = -1;
            return;
        }
    }
}

static void drop_lock(void) {
    if (lock_fd < 0) return;
    close(lock_fd);  // releases the flock
    lock_fd = -1;
}

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

static void on_signal(int sig) {
    int saved_errno = errno;
    if (raised) {
        write_value('0');
        raised = 0;
    }
    // Give the signal back to whatever handled it before, then deliver it
    // again: it is blocked inside this handler, so it arrives on return.
    if (sig > 0 && sig < NSIGS && guarded[sig]) {
        sigaction(sig, &previous_actions[sig], NULL);
        guarded[sig] = 0;
    }
    raise(sig);
    errno = saved_errno;
}

// The guard: installed at the first raise and left in place, since kpeer
// reads /proc/net/unix at least twice a run and 60-odd sigaction calls per
// raise and restore are measurable in a VM. While kptr_restrict is not
// raised the handler only hands the signal back (below).
static int handlers_installed = 0;
// Signals the guard covers: the first install decides, and one handed back
// to a handler that returned (on_signal) is covered again at the next raise.
static int eligible[NSIGS];

static void guard(int sig) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_ONSTACK;  // a stack overflow must still reach it
    sigfillset(&sa.sa_mask);
    if (sigaction(sig, &sa, &previous_actions[sig]) == 0) guarded[sig] = 1;
}

static void install_handlers(void) {
    if (handlers_installed) {
        for (int sig = 1; sig < NSIGS; sig++)
            if (eligible[sig] && !guarded[sig]) guard(sig);
        return;
    }
    handlers_installed = 1;
    for (int sig = 1; sig < NSIGS && sig <= SIGRTMAX; sig++) {
        // glibc keeps a few real-time signals for itself (EINVAL here).
        if (!ends_process(sig)) continue;
        guard(sig);
        if (!guarded[sig]) continue;
        // An ignored signal cannot end the run: leave it ignored, rather
        // than lower kptr_restrict and carry on with hashed addresses.
        if (previous_actions[sig].sa_handler == SIG_IGN) {
            sigaction(sig, &previous_actions[sig], NULL);
            guarded[sig] = 0;
            continue;
        }
        eligible[sig] = 1;
    }
}

int kp_kptr_raise(int *previous) {
    take_lock();
    int v = read_value();
    if (v < 0) {
        drop_lock();
        return v;
    }
    *previous = v;
    if (v != 0 || raised) return 0;
    // Armed before the write: a signal in between only rewrites the 0.
    install_handlers();
    raised = 1;
    int rc = write_value('1');
    if (rc != 0) {
        raised = 0;
        drop_lock();
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
    if (!raised) {
        drop_lock();
        return 0;
    }
    int rc = write_value('0');
    raised = 0;
    drop_lock();
    return rc;
}
