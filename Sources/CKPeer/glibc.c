// glibc functions whose prototypes or constants Swift's Glibc module does
// not carry: setns(2) and CLONE_NEWNET need _GNU_SOURCE, mallopt <malloc.h>.
#define _GNU_SOURCE
#include "ckpeer.h"

#include <malloc.h>
#include <sched.h>

int kp_setns_net(int fd) { return setns(fd, CLONE_NEWNET); }

int kp_fixed_mmap_threshold(int bytes) { return mallopt(M_MMAP_THRESHOLD, bytes); }
