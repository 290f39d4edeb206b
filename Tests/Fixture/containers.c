// The fixture of ContainerTests: one process making, in one mode, the case a
// test asks about, and printing what it made as `key value...` lines, then
// `ready`. It keeps everything until its stdin reaches EOF.
//
//   hold             a socketpair (pair INODE INODE)
//   uring            an io_uring ring (raw syscalls) with one end of a
//                    socketpair registered as fixed file 0 and its fd closed
//                    (ring FD, registered INODE, other INODE, and `named 1`
//                    when the ring's fdinfo names the socket's inode)
//   thread           a thread that unshares its fd table, then makes a
//                    socketpair (tid TID, pair INODE INODE)
//   leaderexit       a thread makes a socketpair and the main thread exits
//                    (tid TID, pair INODE INODE)
//   abstract NAME    a listener on @NAME and a client connected to it
//                    (listener, client, accepted INODE)
//   netns FILE NAME  the same inside the network namespace FILE (setns, then
//                    back: the sockets stay there, the process does not);
//                    and @NAME in its own namespace too (home_listener ...)
// Every mode also prints `pid PID` (getpid(), the pid in its own pid
// namespace) and `pidns INODE` (its pid namespace).
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/io_uring.h>
#include <pthread.h>
#include <sched.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

static unsigned long ino(int fd) {
    struct stat st;
    if (fstat(fd, &st) != 0) { perror("fstat"); exit(2); }
    return (unsigned long)st.st_ino;
}

static void die(const char *what) { perror(what); exit(2); }

static void wait_eof(void) {
    char c;
    while (read(0, &c, 1) > 0) {}
}

static void pair(int sv[2]) {
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) die("socketpair");
}

static void abstract(const char *name, const char *prefix) {
    struct sockaddr_un a = { .sun_family = AF_UNIX };
    size_t n = strlen(name);
    if (n + 1 > sizeof a.sun_path) { fprintf(stderr, "name too long\n"); exit(2); }
    memcpy(a.sun_path + 1, name, n);
    socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n);
    int l = socket(AF_UNIX, SOCK_STREAM, 0), c = socket(AF_UNIX, SOCK_STREAM, 0);
    if (l < 0 || c < 0) die("socket");
    if (bind(l, (struct sockaddr *)&a, len) != 0) die("bind");
    if (listen(l, 8) != 0) die("listen");
    if (connect(c, (struct sockaddr *)&a, len) != 0) die("connect");
    int s = accept(l, NULL, NULL);
    if (s < 0) die("accept");
    printf("%slistener %lu\n%sclient %lu\n%saccepted %lu\n", prefix, ino(l), prefix, ino(c), prefix, ino(s));
}

static pthread_barrier_t made;
static int unshare_files;
static unsigned long pair_ino[2];
static pid_t thread_id;

static void *holder(void *arg) {
    (void)arg;
    if (unshare_files && unshare(CLONE_FILES) != 0) die("unshare");
    int sv[2];
    pair(sv);
    pair_ino[0] = ino(sv[0]);
    pair_ino[1] = ino(sv[1]);
    thread_id = (pid_t)syscall(SYS_gettid);
    pthread_barrier_wait(&made);
    wait_eof();
    exit(0);
}

/* The main thread of `leaderexit` is a zombie once its state says so. */
static void wait_zombie(pid_t pid) {
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    for (;;) {
        int fd = open(path, O_RDONLY);
        if (fd < 0) die("open stat");
        ssize_t n = read(fd, buf, sizeof buf - 1);
        close(fd);
        if (n <= 0) die("read stat");
        buf[n] = 0;
        char *p = strrchr(buf, ')');
        if (p && (p[2] == 'Z' || p[2] == 'X')) return;
        sched_yield();  /* an event with no descriptor to wait on: the exit of a thread */
    }
}

static void *leader_watch(void *arg) {
    pid_t pid = *(pid_t *)arg;
    pthread_barrier_wait(&made);
    wait_zombie(pid);
    printf("tid %d\npair %lu %lu\nready\n", (int)thread_id, pair_ino[0], pair_ino[1]);
    fflush(stdout);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 2) { fprintf(stderr, "usage: containers MODE ...\n"); return 2; }
    const char *mode = argv[1];
    struct stat st;
    printf("pid %d\npidns %lu\n", (int)getpid(), stat("/proc/self/ns/pid", &st) == 0 ? (unsigned long)st.st_ino : 0UL);
    if (strcmp(mode, "hold") == 0) {
        int sv[2];
        pair(sv);
        printf("pair %lu %lu\n", ino(sv[0]), ino(sv[1]));
    } else if (strcmp(mode, "uring") == 0) {
        struct io_uring_params p;
        memset(&p, 0, sizeof p);
        int ring = (int)syscall(__NR_io_uring_setup, 4, &p);
        if (ring < 0) die("io_uring_setup");
        int sv[2];
        pair(sv);
        unsigned long reg = ino(sv[0]), other = ino(sv[1]);
        int files[1] = { sv[0] };
        if (syscall(__NR_io_uring_register, ring, IORING_REGISTER_FILES, files, 1) != 0) die("io_uring_register");
        close(sv[0]);  /* the ring's table is now its only holder */
        printf("ring %d\nregistered %lu\nother %lu\n", ring, reg, other);
        /* Does this kernel name it? Its own fdinfo says. */
        char path[64], want[64], buf[8192];
        snprintf(path, sizeof path, "/proc/self/fdinfo/%d", ring);
        snprintf(want, sizeof want, ": socket:[%lu]\n", reg);
        int fd = open(path, O_RDONLY);
        if (fd < 0) die("open fdinfo");
        ssize_t n = read(fd, buf, sizeof buf - 1);
        close(fd);
        buf[n > 0 ? n : 0] = 0;
        printf("named %d\n", strstr(buf, want) != NULL);
    } else if (strcmp(mode, "thread") == 0 || strcmp(mode, "leaderexit") == 0) {
        unshare_files = strcmp(mode, "thread") == 0;
        pthread_barrier_init(&made, NULL, unshare_files ? 2 : 3);
        pthread_t t, w;
        if (pthread_create(&t, NULL, holder, NULL) != 0) return 2;
        if (!unshare_files) {
            static pid_t me;
            me = getpid();
            if (pthread_create(&w, NULL, leader_watch, &me) != 0) return 2;
            pthread_barrier_wait(&made);
            pthread_exit(NULL);  /* leader_watch says ready once this thread is gone */
        }
        pthread_barrier_wait(&made);
        printf("tid %d\npair %lu %lu\nready\n", (int)thread_id, pair_ino[0], pair_ino[1]);
        fflush(stdout);
        pthread_join(t, NULL);
        return 0;
    } else if (strcmp(mode, "abstract") == 0 && argc == 3) {
        abstract(argv[2], "");
    } else if (strcmp(mode, "netns") == 0 && argc == 4) {
        int home = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
        int there = open(argv[2], O_RDONLY | O_CLOEXEC);
        if (home < 0 || there < 0) die("open netns");
        if (setns(there, CLONE_NEWNET) != 0) die("setns");
        abstract(argv[3], "");
        if (setns(home, CLONE_NEWNET) != 0) die("setns back");
        abstract(argv[3], "home_");
    } else {
        fprintf(stderr, "unknown mode %s\n", mode);
        return 2;
    }
    printf("ready\n");
    fflush(stdout);
    wait_eof();
    return 0;
}
