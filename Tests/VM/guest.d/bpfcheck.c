// bpfcheck: are kpeer's BPF programs (named kpw*) loaded, and links to them?
// The kernel's own list, through bpf(2): BPF_PROG_GET_NEXT_ID and
// BPF_LINK_GET_NEXT_ID, each object's info by a descriptor from its id.
//
//   bpfcheck present    exit 0 when at least one kpw* program is attached
//   bpfcheck absent     exit 0 when no kpw* program and no link to one is left
//
// Prints "programs N links M" either way.
#define _GNU_SOURCE
#include <linux/bpf.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static long sys_bpf(int cmd, union bpf_attr *attr) { return syscall(SYS_bpf, cmd, attr, sizeof *attr); }

static int next_id(int cmd, unsigned id, unsigned *next) {
    union bpf_attr a;
    memset(&a, 0, sizeof a);
    a.start_id = id;
    if (sys_bpf(cmd, &a) != 0) return -1;
    *next = a.next_id;
    return 0;
}

static int fd_by_id(int cmd, unsigned id) {
    union bpf_attr a;
    memset(&a, 0, sizeof a);
    if (cmd == BPF_PROG_GET_FD_BY_ID) a.prog_id = id;
    else a.link_id = id;
    return (int)sys_bpf(cmd, &a);
}

static int info(int fd, void *buf, unsigned len) {
    union bpf_attr a;
    memset(&a, 0, sizeof a);
    a.info.bpf_fd = fd;
    a.info.info_len = len;
    a.info.info = (unsigned long)buf;
    return (int)sys_bpf(BPF_OBJ_GET_INFO_BY_FD, &a);
}

static int ours(unsigned prog_id) {
    int fd = fd_by_id(BPF_PROG_GET_FD_BY_ID, prog_id);
    if (fd < 0) return 0;
    struct bpf_prog_info p;
    memset(&p, 0, sizeof p);
    int mine = info(fd, &p, sizeof p) == 0 && strncmp(p.name, "kpw", 3) == 0;
    close(fd);
    return mine;
}

int main(int argc, char **argv) {
    if (argc != 2 || (strcmp(argv[1], "present") && strcmp(argv[1], "absent"))) {
        fprintf(stderr, "usage: bpfcheck present|absent\n");
        return 2;
    }
    int programs = 0, links = 0;
    unsigned id = 0, next;
    while (next_id(BPF_PROG_GET_NEXT_ID, id, &next) == 0) {
        if (ours(next)) programs++;
        id = next;
    }
    id = 0;
    while (next_id(BPF_LINK_GET_NEXT_ID, id, &next) == 0) {
        int fd = fd_by_id(BPF_LINK_GET_FD_BY_ID, next);
        if (fd >= 0) {
            struct bpf_link_info l;
            memset(&l, 0, sizeof l);
            if (info(fd, &l, sizeof l) == 0 && ours(l.prog_id)) links++;
            close(fd);
        }
        id = next;
    }
    printf("programs %d links %d\n", programs, links);
    if (!strcmp(argv[1], "present")) return programs > 0 ? 0 : 1;
    return programs == 0 && links == 0 ? 0 : 1;
}
