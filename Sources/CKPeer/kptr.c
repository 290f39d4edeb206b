// kernel.kptr_restrict: raised 0 → 1 only while kpeer reads /proc/net/unix,
// and put back on every path, including death by signal. This lives in C
// because the restore runs inside signal handlers.
//
// Put back means: 0 again, but only if the sysctl still reads the 1 kpeer
// wrote. An administrator who set it meanwhile (to 2, say) keeps that value.
#include "ckpeer.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
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
//
// The wait is bounded (KP_KPTR_LOCK_WAIT_MS): a run stopped while holding
// the lock (SIGSTOP, a debugger) must not hang every later one. The holder
// writes its pid into the file, so the one that gives up can name it.
static const char *lock_path = "/run/kpeer-kptr.lock";
static int lock_fd = -1;
static int lock_holder = 0;

static int lock_wait_ms = KP_KPTR_LOCK_WAIT_MS;

void kp_kptr_set_lock_path(const char *path) { lock_path = path; }
const char *kp_kptr_lock_path(void) { return lock_path; }
int kp_kptr_lock_holder(void) { return lock_holder; }
void kp_kptr_set_lock_wait(int ms) { lock_wait_ms = ms > 0 ? ms : KP_KPTR_LOCK_WAIT_MS; }
int kp_kptr_lock_wait(void) { return lock_wait_ms; }

static uint64_t monotonic_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

// The pid the holder wrote, 0 when there is none (yet) or it is garbage.
static int read_holder(int fd) {
    char buf[16];
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    if (n <= 0) return 0;
    buf[n] = 0;
    long pid = 0;
    for (ssize_t i = 0; i < n && buf[i] != '\n'; i++) {
        if (buf[i] < '0' || buf[i] > '9' || pid > 4194304) return 0;
        pid = pid * 10 + (buf[i] - '0');
    }
    // A holder killed before it could clear the file left its pid: only a
    // live process is named.
    if (pid <= 0 || (kill((pid_t)pid, 0) != 0 && errno != EPERM)) return 0;
    return (int)pid;
}

static void write_holder(int fd) {
    char buf[16];
    int len = snprintf(buf, sizeof buf, "%d\n", (int)getpid());
    if (ftruncate(fd, 0) == 0 && len > 0) {
        if (pwrite(fd, buf, (size_t)len, 0) != len) {}  // only a courtesy to the next run
    }
}

// 0: locked, or no lock to be had here (unserialised, as before);
// KP_KPTR_BUSY: another run held it for the whole wait (kp_kptr_lock_holder);
// KP_KPTR_BADLOCK: the file is not one kpeer may trust (not a regular file
// of root's that only root can write, with one link): never written to.
static int take_lock(void) {
    if (lock_fd >= 0) return 0;  // already ours: never wait on ourselves
    lock_holder = 0;
    int fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0600);
    if (fd < 0) {
        // A symlink (O_NOFOLLOW) or a directory where the lock should be:
        // someone put it there; say so rather than follow or ignore it.
        if (errno == ELOOP || errno == EISDIR || errno == ENXIO) return KP_KPTR_BADLOCK;
        return 0;  // no /run (initramfs), read-only: unserialised
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_uid != 0 || (st.st_mode & (S_IWGRP | S_IWOTH)) ||
        st.st_nlink != 1) {
        close(fd);
        return KP_KPTR_BADLOCK;
    }
    uint64_t start = monotonic_ms();
    // Count-bounded too: a clock that does not advance cannot stretch it.
    const struct timespec pause = {0, KP_KPTR_LOCK_POLL_MS * 1000000L};
    for (long tries = 0;; tries++) {
        if (flock(fd, LOCK_EX | LOCK_NB) == 0) break;
        if (errno != EWOULDBLOCK && errno != EINTR) {
            close(fd);
            return 0;  // a filesystem without flock: unserialised
        }
        if (monotonic_ms() - start >= (uint64_t)lock_wait_ms || tries >= 2 * (lock_wait_ms / KP_KPTR_LOCK_POLL_MS) + 2) {
            lock_holder = read_holder(fd);
            close(fd);
            return KP_KPTR_BUSY;
        }
        nanosleep(&pause, NULL);  // EINTR only shortens one pause
    }
    write_holder(fd);
    lock_fd = fd;
    return 0;
}

static void drop_lock(void) {
    if (lock_fd < 0) return;
    if (ftruncate(lock_fd, 0) != 0) {}  // no pid: nobody holds it now
    close(lock_fd);  // releases the flock
    lock_fd = -1;
}

// Async-signal-safe: open, read, close.
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

// 0 again, if it still reads the 1 kpeer wrote; anything else was set by
// someone else since, and stays. Async-signal-safe (open, read, write,
// close). Between the read and the write an administrator's change can
// still be lost: the window is two syscalls wide, not the whole run.
static int put_back(void) {
    int v = read_value();
    if (v != 1) return v < 0 ? v : 0;
    return write_value('0');
}

static void on_signal(int sig) {
    int saved_errno = errno;
    if (raised) {
        put_back();
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
    int lock = take_lock();
    if (lock != 0) return lock;
    int v = read_value();
    if (v < 0) {
        drop_lock();
        return v;
    }
    *previous = v;
    if (v != 0 || raised) return 0;
    // Armed before the write: a signal in between finds 0 and leaves it.
    install_handlers();
    raised = 1;
    int rc = write_value('1');
    if (rc != 0) {
        raised = 0;
        drop_lock();
        return rc;
    }
    return 0;
}

int kp_kptr_restore(void) {
    if (!raised) {
        drop_lock();
        return 0;
    }
    int rc = put_back();
    raised = 0;
    drop_lock();
    return rc;
}
