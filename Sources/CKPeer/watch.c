// `kpeer --watch`: loading the BPF program (Sources/Watch/BPF), attaching it
// hook by hook, and handing its events to Swift; and the signals that end a
// watch.
//
// Each hook is tried as fentry/fexit first (one BTF trampoline per
// function, the cheapest), then as kprobe/kretprobe where fentry is not to
// be had. The kprobe programs live in a second bpf_object that shares the
// first one's maps (bpf_map__reuse_fd), so every event still comes through
// one ring buffer. A hook that attaches neither way is reported, never
// fatal; the Swift side decides whether what is left is worth watching with.
//
// Detaching needs no cleanup code of ours on any exit path: programs and
// links are file descriptors, and the kernel drops them when the process
// ends, however it ends. kprobes are only ever made through the kprobe PMU
// (perf_event_open), never through tracefs's kprobe_events, whose entries
// would outlive a killed kpeer.
#define _GNU_SOURCE  // pipe2
#include "ckpeer.h"
#include "kpwatch_event.h"

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#define MAX_PROGS 2

struct hook {
    const char *name;                 // what the user would miss without it
    const char *fentry[MAX_PROGS];    // its fentry/fexit programs
    const char *kprobe[MAX_PROGS];    // its kprobe/kretprobe programs
};

static const struct hook hooks[KPW_HOOKS] = {
    {"stream connects", {"kpw_connect"}, {"kpwk_connect_in", "kpwk_connect_out"}},
    {"accepts", {"kpw_accept"}, {"kpwk_accept_in", "kpwk_accept_out"}},
    {"closes", {"kpw_release"}, {"kpwk_release"}},
    {"socketpairs", {"kpw_pair"}, {"kpwk_pair"}},
    {"datagram connects", {"kpw_dconnect"}, {"kpwk_dconnect_in", "kpwk_dconnect_out"}},
    {"first datagram sends", {"kpw_maysend", "kpw_sent"}, {"kpwk_maysend", "kpwk_sent"}},
};

struct kp_watch {
    void *image;                      // the object's bytes, alive as long as the objects
    size_t image_size;
    struct bpf_object *fobj, *kobj;   // fentry flavour, kprobe flavour
    struct bpf_link *links[KPW_HOOKS][MAX_PROGS];
    int state[KPW_HOOKS];
    char why[KPW_HOOKS][512];
    struct ring_buffer *ring;
    int lost_fd;
    int epfd;
    struct kp_watch_event *batch;
    size_t batch_len, batch_cap;
    uint64_t dropped;                 // events that found no room in the batch
};

// libbpf talks on stderr by default; kpeer says things its own way (each
// failure is one line, from the errno libbpf returns).
static int quiet_print(enum libbpf_print_level level, const char *fmt, va_list args) {
    (void)level, (void)fmt, (void)args;
    return 0;
}

int kp_watch_hook_count(void) { return KPW_HOOKS; }
const char *kp_watch_hook_name(int i) { return i >= 0 && i < KPW_HOOKS ? hooks[i].name : ""; }
int kp_watch_hook_state(const kp_watch *w, int i) { return i >= 0 && i < KPW_HOOKS ? w->state[i] : KPW_HOOK_NONE; }
const char *kp_watch_hook_error(const kp_watch *w, int i) { return i >= 0 && i < KPW_HOOKS ? w->why[i] : ""; }

// Kernel-internal errnos that strerror does not know.
static const char *reason(int e) {
    if (e < 0) e = -e;
    switch (e) {
    case 524: return "not supported by this kernel (ENOTSUPP)";
    case 0: return "failed";
    default: return strerror(e);
    }
}

static void set_error(kp_error *err, int code, int e, const char *fmt, ...) {
    if (!err) return;
    err->code = code;
    err->err_errno = e < 0 ? -e : e;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
}

// Adds "; text" (or just text) to hook h's reason.
static void add_why(kp_watch *w, int h, const char *fmt, ...) {
    size_t used = strlen(w->why[h]);
    if (used && used + 2 < sizeof w->why[h]) {
        memcpy(w->why[h] + used, "; ", 3);
        used += 2;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w->why[h] + used, sizeof w->why[h] - used, fmt, ap);
    va_end(ap);
}

// The kernel function a program attaches to: its section name after the '/'.
static const char *target_of(const struct bpf_program *p) {
    const char *sec = bpf_program__section_name(p);
    const char *slash = sec ? strchr(sec, '/') : NULL;
    return slash ? slash + 1 : "";
}

static struct bpf_object *open_image(kp_watch *w, uint32_t ring_bytes, int *e) {
    LIBBPF_OPTS(bpf_object_open_opts, opts, .object_name = "kpeer_watch");
    struct bpf_object *obj = bpf_object__open_mem(w->image, w->image_size, &opts);
    if (!obj) {
        *e = errno ? errno : EINVAL;
        return NULL;
    }
    struct bpf_program *p;
    bpf_object__for_each_program(p, obj) bpf_program__set_autoload(p, false);
    struct bpf_map *ring = bpf_object__find_map_by_name(obj, "events");
    if (ring && ring_bytes) bpf_map__set_max_entries(ring, ring_bytes);
    return obj;
}

static int load_programs(struct bpf_object *obj, const char *const *names, int on) {
    for (int i = 0; i < MAX_PROGS && names[i]; i++) {
        struct bpf_program *p = bpf_object__find_program_by_name(obj, names[i]);
        if (!p) return -ENOENT;
        bpf_program__set_autoload(p, on);
    }
    return 0;
}

// Attaches a hook's programs; on any failure detaches those it did attach.
static int attach_hook(kp_watch *w, struct bpf_object *obj, int h, const char *const *names, const char *how) {
    for (int i = 0; i < MAX_PROGS && names[i]; i++) {
        struct bpf_program *p = bpf_object__find_program_by_name(obj, names[i]);
        struct bpf_link *link = p ? bpf_program__attach(p) : NULL;
        if (!link) {
            int e = p ? errno : ENOENT;
            add_why(w, h, "%s on %s: %s", how, p ? target_of(p) : names[i], reason(e));
            for (int j = 0; j < i; j++) {
                bpf_link__destroy(w->links[h][j]);
                w->links[h][j] = NULL;
            }
            return -e;
        }
        w->links[h][i] = link;
    }
    return 0;
}

// Why bpf_object__load failed, in a user's words.
static void refused(char *buf, size_t size, int rc) {
    int e = rc < 0 ? -rc : rc;
    if (e == EPERM || e == EACCES)
        snprintf(buf, size, "the kernel refused the program (%s: lockdown, no CAP_BPF and CAP_PERFMON, or no tracing programs allowed)", strerror(e));
    else if (e == ESRCH || e == ENOENT)
        snprintf(buf, size, "the program does not fit this kernel (%s; no BTF?)", reason(e));
    else
        snprintf(buf, size, "the kernel refused the program (%s)", reason(e));
}

// Kprobes through the PMU only: without it libbpf would write tracefs
// kprobe_events, which a killed process leaves behind.
static int kprobe_pmu(void) { return access("/sys/bus/event_source/devices/kprobe/type", R_OK) == 0; }

static int on_sample(void *ctx, void *data, size_t size) {
    kp_watch *w = ctx;
    if (size < sizeof(struct kp_watch_event)) return 0;
    if (w->batch_len == w->batch_cap) {
        size_t cap = w->batch_cap ? w->batch_cap * 2 : 1024;
        struct kp_watch_event *b = realloc(w->batch, cap * sizeof *b);
        if (!b) {
            w->dropped++;
            return 0;  // counted as lost
        }
        w->batch = b;
        w->batch_cap = cap;
    }
    memcpy(&w->batch[w->batch_len++], data, sizeof(struct kp_watch_event));
    return 0;
}

void kp_watch_close(kp_watch *w) {
    if (!w) return;
    if (w->ring) ring_buffer__free(w->ring);
    if (w->epfd >= 0) close(w->epfd);
    for (int h = 0; h < KPW_HOOKS; h++)
        for (int i = 0; i < MAX_PROGS; i++)
            if (w->links[h][i]) bpf_link__destroy(w->links[h][i]);
    if (w->kobj) bpf_object__close(w->kobj);
    if (w->fobj) bpf_object__close(w->fobj);
    free(w->batch);
    free(w->image);
    free(w);
}

int kp_watch_open(const void *object, size_t size, int allow, uint32_t ring_bytes, kp_watch **out, kp_error *err) {
    *out = NULL;
    libbpf_set_print(quiet_print);
    kp_watch *w = calloc(1, sizeof *w);
    if (!w || !(w->image = malloc(size))) {
        free(w);
        set_error(err, KP_EIO, ENOMEM, "out of memory");
        return KP_EIO;
    }
    memcpy(w->image, object, size);
    w->image_size = size;
    w->epfd = -1;
    w->lost_fd = -1;

    // fentry: only for functions the kernel's BTF has (a missing one would
    // fail the whole load); the others go straight to kprobes.
    int want_kprobe[KPW_HOOKS] = {0};
    int any_fentry = 0;
    struct btf *vmlinux = (allow & KPW_ATTACH_FENTRY) ? btf__load_vmlinux_btf() : NULL;
    int e = 0;
    struct bpf_object *fobj = NULL;
    if (vmlinux) fobj = open_image(w, ring_bytes, &e);
    for (int h = 0; h < KPW_HOOKS; h++) {
        int ok = fobj != NULL;
        for (int i = 0; ok && i < MAX_PROGS && hooks[h].fentry[i]; i++) {
            struct bpf_program *p = bpf_object__find_program_by_name(fobj, hooks[h].fentry[i]);
            if (!p || btf__find_by_name_kind(vmlinux, target_of(p), BTF_KIND_FUNC) < 0) {
                snprintf(w->why[h], sizeof w->why[h], "fentry: %s is not in the kernel's BTF", p ? target_of(p) : "?");
                ok = 0;
            }
        }
        if (ok) {
            load_programs(fobj, hooks[h].fentry, 1);
            any_fentry = 1;
        } else {
            want_kprobe[h] = 1;
        }
    }
    if (allow & KPW_ATTACH_FENTRY && !vmlinux)
        for (int h = 0; h < KPW_HOOKS; h++)
            snprintf(w->why[h], sizeof w->why[h], "fentry: no kernel BTF (/sys/kernel/btf/vmlinux)");
    btf__free(vmlinux);
    char load_error[200] = "";
    if (fobj && any_fentry) {
        int rc = bpf_object__load(fobj);
        if (rc != 0) {
            refused(load_error, sizeof load_error, rc);
            for (int h = 0; h < KPW_HOOKS; h++) {
                snprintf(w->why[h], sizeof w->why[h], "fentry: %s", load_error);
                want_kprobe[h] = 1;
            }
            bpf_object__close(fobj);
            fobj = NULL;
        }
    } else if (fobj) {
        bpf_object__close(fobj);
        fobj = NULL;
    }
    w->fobj = fobj;
    if (fobj) {
        for (int h = 0; h < KPW_HOOKS; h++) {
            if (want_kprobe[h]) continue;
            if (attach_hook(w, fobj, h, hooks[h].fentry, "fentry") == 0)
                w->state[h] = KPW_HOOK_FENTRY;
            else
                want_kprobe[h] = 1;
        }
    }

    // kprobes for the rest, in a second object sharing the first one's maps.
    int any_kprobe = 0;
    for (int h = 0; h < KPW_HOOKS; h++) any_kprobe |= want_kprobe[h];
    if (!(allow & KPW_ATTACH_KPROBE)) any_kprobe = 0;
    if (any_kprobe && !kprobe_pmu()) {
        for (int h = 0; h < KPW_HOOKS; h++)
            if (want_kprobe[h])
                add_why(w, h, "kprobe: this kernel has no kprobes (no kprobe PMU)");
        any_kprobe = 0;
    }
    if (any_kprobe) {
        struct bpf_object *kobj = open_image(w, ring_bytes, &e);
        int rc = kobj ? 0 : -e;
        if (kobj) {
            for (int h = 0; h < KPW_HOOKS; h++)
                if (want_kprobe[h]) load_programs(kobj, hooks[h].kprobe, 1);
            if (fobj) {
                struct bpf_map *m;
                bpf_object__for_each_map(m, kobj) {
                    struct bpf_map *shared = bpf_object__find_map_by_name(fobj, bpf_map__name(m));
                    if (shared && bpf_map__fd(shared) >= 0) bpf_map__reuse_fd(m, bpf_map__fd(shared));
                }
            }
                    rc = bpf_object__load(kobj);
        }
        if (rc != 0) {
            refused(load_error, sizeof load_error, rc);
            for (int h = 0; h < KPW_HOOKS; h++)
                if (want_kprobe[h])
                    add_why(w, h, "kprobe: %s", load_error);
            if (kobj) bpf_object__close(kobj);
        } else {
            w->kobj = kobj;
            for (int h = 0; h < KPW_HOOKS; h++)
                if (want_kprobe[h] && attach_hook(w, kobj, h, hooks[h].kprobe, "kprobe") == 0) w->state[h] = KPW_HOOK_KPROBE;
        }
    }

    struct bpf_object *owner = w->fobj ? w->fobj : w->kobj;
    if (!owner) {
        // Nothing loaded at all: the reason is the first hook's.
        set_error(err, KP_EIO, EPERM, "%s", w->why[0][0] ? w->why[0] : (load_error[0] ? load_error : "cannot load"));
        kp_watch_close(w);
        return KP_EIO;
    }
    for (int h = 0; h < KPW_HOOKS; h++)
        if (w->state[h] != KPW_HOOK_NONE) w->why[h][0] = 0;
    struct bpf_map *events = bpf_object__find_map_by_name(owner, "events");
    struct bpf_map *lost = bpf_object__find_map_by_name(owner, "lost");
    w->lost_fd = lost ? bpf_map__fd(lost) : -1;
    w->ring = events ? ring_buffer__new(bpf_map__fd(events), on_sample, w, NULL) : NULL;
    if (!w->ring) {
        set_error(err, KP_EIO, errno, "cannot read the BPF ring buffer: %s", reason(errno));
        kp_watch_close(w);
        return KP_EIO;
    }
    w->epfd = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = ring_buffer__epoll_fd(w->ring)};
    if (w->epfd < 0 || epoll_ctl(w->epfd, EPOLL_CTL_ADD, ring_buffer__epoll_fd(w->ring), &ev) != 0) {
        set_error(err, KP_EIO, errno, "epoll: %s", reason(errno));
        kp_watch_close(w);
        return KP_EIO;
    }
    *out = w;
    return 0;
}

int kp_watch_consume(kp_watch *w, int timeout_ms, int stop_fd, const struct kp_watch_event **events, size_t *count) {
    w->batch_len = 0;
    *events = NULL;
    *count = 0;
    if (stop_fd >= 0) {
        struct epoll_event ev = {.events = EPOLLIN, .data.fd = stop_fd};
        epoll_ctl(w->epfd, EPOLL_CTL_ADD, stop_fd, &ev);  // EEXIST after the first call
    }
    // Whatever is there already first: a stop must not lose what came before it.
    int rc = ring_buffer__consume(w->ring);
    if (rc == 0 && timeout_ms != 0) {
        struct epoll_event ev[2];
        int n = epoll_wait(w->epfd, ev, 2, timeout_ms);
        if (n < 0 && errno != EINTR) return -errno;
        rc = ring_buffer__consume(w->ring);
    }
    if (rc < 0 && rc != -EINTR) return rc;
    *events = w->batch;
    *count = w->batch_len;
    return 0;
}

uint64_t kp_watch_lost(const kp_watch *w) {
    uint32_t zero = 0;
    uint64_t n = 0;
    if (w->lost_fd < 0 || bpf_map_lookup_elem(w->lost_fd, &zero, &n) != 0) n = 0;
    return n + w->dropped;
}

// ---- Ending a watch: SIGINT, SIGTERM, SIGHUP ----
// The handler only records the signal and writes a byte into a pipe that
// every wait of the watch also waits on, so the watch wakes at once,
// drains what the kernel still holds, prints its summary and returns.

static int stop_pipe[2] = {-1, -1};
static volatile sig_atomic_t stop_signal = 0;
static volatile sig_atomic_t stop_asked = 0;
static struct sigaction saved[3];
static const int stop_signals[3] = {SIGINT, SIGTERM, SIGHUP};
static int installed = 0;

static volatile sig_atomic_t handled_signals = 0;
int kp_signals_handled(void) { return handled_signals; }

static void on_stop(int sig) {
    int saved_errno = errno;
    handled_signals = handled_signals + 1;
    stop_signal = sig;
    stop_asked = 1;
    if (stop_pipe[1] >= 0) {
        char c = 1;
        if (write(stop_pipe[1], &c, 1) < 0) {}  // full: a wake-up is pending anyway
    }
    errno = saved_errno;
}

int kp_watch_signals_install(void) {
    if (installed) return 0;
    if (stop_pipe[0] < 0 && pipe2(stop_pipe, O_CLOEXEC | O_NONBLOCK) != 0) return -errno;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop;
    sigfillset(&sa.sa_mask);
    for (int i = 0; i < 3; i++) {
        sigaction(stop_signals[i], NULL, &saved[i]);
        // An ignored SIGHUP (nohup) stays ignored.
        if (stop_signals[i] == SIGHUP && saved[i].sa_handler == SIG_IGN) continue;
        sigaction(stop_signals[i], &sa, NULL);
    }
    installed = 1;
    return 0;
}

void kp_watch_signals_restore(void) {
    if (!installed) return;
    for (int i = 0; i < 3; i++) sigaction(stop_signals[i], &saved[i], NULL);
    installed = 0;
}

int kp_watch_stop_fd(void) { return stop_pipe[0]; }
int kp_watch_stop_signal(void) { return stop_signal; }
int kp_watch_stop_asked(void) { return stop_asked; }

void kp_watch_request_stop(void) { on_stop(0); }

void kp_watch_reset_stop(void) {
    stop_signal = 0;
    stop_asked = 0;
    char buf[64];
    if (stop_pipe[0] >= 0)
        while (read(stop_pipe[0], buf, sizeof buf) > 0) {}
}

int kp_watch_wait_stop(int timeout_ms) {
    struct pollfd p = {stop_pipe[0], POLLIN, 0};
    int n = poll(&p, stop_pipe[0] >= 0 ? 1 : 0, timeout_ms);
    return n < 0 ? -errno : n;
}
