// glibc functions whose prototypes or constants Swift's Glibc module does
// not carry: setns(2) and CLONE_NEWNET need _GNU_SOURCE, mallopt <malloc.h>.
#define _GNU_SOURCE
#include "ckpeer.h"

#include <malloc.h>
#include <sched.h>

int kp_setns_net(int fd) { return setns(fd, CLONE_NEWNET); }

int kp_fixed_mmap_threshold(int bytes) { return mallopt(M_MMAP_THRESHOLD, bytes); }

// kcmp(2) has no glibc wrapper, and Swift cannot call the variadic syscall().
#include <errno.h>
#include <linux/kcmp.h>
#include <sys/syscall.h>
#include <unistd.h>

long kp_getdents64(int fd, void *buf, unsigned long size) {
    long r = syscall(SYS_getdents64, fd, buf, size);
    return r < 0 ? -errno : r;
}

int kp_same_files(int pid, int tid) {
    long r = syscall(SYS_kcmp, (pid_t)pid, (pid_t)tid, KCMP_FILES, 0UL, 0UL);
    return r == 0 ? 1 : (r > 0 ? 0 : -errno);
}

// A copy of descriptor `fd` of `pid`, taken with pidfd_getfd(2) (Linux 5.6;
// needs PTRACE_MODE_ATTACH, which root has) and checked to be the socket of
// `inode` (the descriptor may have been closed and reused meanwhile): the
// copy, or -errno (-ESTALE: no longer that socket; -ENOSYS: no pidfd_getfd).
#include <fcntl.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>

static int socket_copy(int pid, int fd, uint64_t inode) {
#if defined(SYS_pidfd_open) && defined(SYS_pidfd_getfd)
    int pidfd = (int)syscall(SYS_pidfd_open, (pid_t)pid, 0);
    if (pidfd < 0) return -errno;
    int copy = (int)syscall(SYS_pidfd_getfd, pidfd, fd, 0);
    int e = errno;
    close(pidfd);
    if (copy < 0) return -e;
    struct stat st;
    if (fstat(copy, &st) != 0 || !S_ISSOCK(st.st_mode) || (uint64_t)st.st_ino != inode) {
        close(copy);
        return -ESTALE;
    }
    return copy;
#else
    (void)pid, (void)fd, (void)inode;
    return -ENOSYS;
#endif
}

// SO_PEERCRED of a socket another process holds, asked on a socket_copy.
int kp_peercred(int pid, int fd, uint64_t inode, int *cred_pid, uint32_t *uid, uint32_t *gid) {
    int copy = socket_copy(pid, fd, inode);
    if (copy < 0) return copy;
    struct ucred c;
    socklen_t len = sizeof c;
    int rc = getsockopt(copy, SOL_SOCKET, SO_PEERCRED, &c, &len) != 0 ? -errno : 0;
    close(copy);
    if (rc == 0) {
        *cred_pid = c.pid;
        *uid = c.uid;
        *gid = c.gid;
    }
    return rc;
}

// The network namespace of a unix socket another process holds, as lsfd
// finds it: SIOCGSKNS (Linux 4.9; CAP_NET_ADMIN over that namespace) on a
// socket_copy. A new O_CLOEXEC descriptor of the namespace, or -errno.
int kp_socket_netns(int pid, int fd, uint64_t inode) {
#ifdef SIOCGSKNS
    int copy = socket_copy(pid, fd, inode);
    if (copy < 0) return copy;
    int domain = 0;
    socklen_t len = sizeof domain;
    int rc;
    if (getsockopt(copy, SOL_SOCKET, SO_DOMAIN, &domain, &len) != 0) rc = -errno;
    else if (domain != AF_UNIX) rc = -EAFNOSUPPORT;
    else if ((rc = ioctl(copy, SIOCGSKNS)) < 0) rc = -errno;
    else if (fcntl(rc, F_SETFD, FD_CLOEXEC) != 0) {
        close(rc);
        rc = -errno;
    }
    close(copy);
    return rc;
#else
    (void)pid, (void)fd, (void)inode;
    return -ENOSYS;
#endif
}

// Is descriptor `fd` of `pid` a unix socket? sockfs names a socket's
// protocol in the xattr system.sockprotoname ("UNIX"), read through the
// /proc link without taking a copy of the descriptor. 1, 0, or -errno.
#include <stdio.h>
#include <string.h>
#include <sys/xattr.h>

int kp_is_unix_socket(int pid, int fd) {
    char path[64], name[32];
    snprintf(path, sizeof path, "/proc/%d/fd/%d", pid, fd);
    ssize_t n = getxattr(path, "system.sockprotoname", name, sizeof name - 1);
    if (n < 0) return -errno;
    name[n] = 0;
    return strncmp(name, "UNIX", 4) == 0 ? 1 : 0;
}
