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

int kp_same_files(int pid, int tid) {
    long r = syscall(SYS_kcmp, (pid_t)pid, (pid_t)tid, KCMP_FILES, 0UL, 0UL);
    return r == 0 ? 1 : (r > 0 ? 0 : -errno);
}
