// The C side of kpeer: only what needs C.
//
// - libelf: the PT_LOAD map of an ELF core (/proc/kcore) and GNU build-ids.
// - libdw:  a struct member's offset from DWARF (a vmlinux with debug info).
// - libbpf: a struct member's offset from BTF (/sys/kernel/btf/vmlinux).
// - the kernel.kptr_restrict guard, whose restore must run in signal handlers.
// - the linux netlink / sock_diag / unix_diag structs, for Swift to use as is.
//
// Every fallible call returns 0 or a negative KP_E* code and, on failure, a
// one-line reason in `err` (which Swift turns into a KPeerError).
#ifndef CKPEER_H
#define CKPEER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/socket.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <linux/unix_diag.h>

enum {
    KP_OK = 0,
    KP_EIO = -1,         // open/read failed: errno is kept in *err_errno
    KP_ENOTELF = -2,     // not an ELF file at all
    KP_ENOTCORE = -3,    // ELF, but not ET_CORE
    KP_ENODEBUG = -4,    // ELF without the debug info / BTF asked for
    KP_ENOTYPE = -5,     // no such struct
    KP_ENOMEMBER = -6,   // struct has no such member
    KP_ENOBUILDID = -7,  // no GNU build-id note
    KP_EFORMAT = -8,     // malformed input (bad BTF, bad DWARF)
};

typedef struct kp_segment {
    uint64_t vaddr;
    uint64_t memsz;
    uint64_t filesz;
    uint64_t offset;
} kp_segment;

typedef struct kp_error {
    int code;
    int err_errno;
    char message[256];
} kp_error;

// PT_LOAD segments of the ELF core open on `fd` (read-only; nothing is
// mapped). On success *segments is malloc'ed; free it with free().
int kp_core_segments(int fd, kp_segment **segments, size_t *count, kp_error *err);

// GNU build-id of an ELF file (from its SHT_NOTE sections or PT_NOTE segments).
int kp_elf_build_id(const char *path, uint8_t *buf, size_t buflen, size_t *len, kp_error *err);

// Offset in bytes of `member` inside `struct type`, and the struct's size,
// from DWARF. Members of anonymous structs/unions are found too. CUs whose
// name contains `prefer_cu` (may be NULL) are searched first: a vmlinux has
// thousands of CUs.
int kp_dwarf_member_offset(const char *path, const char *type, const char *member,
                           const char *prefer_cu, uint64_t *offset, uint64_t *struct_size,
                           kp_error *err);

// Same from BTF (raw BTF such as /sys/kernel/btf/vmlinux, or an ELF with .BTF).
// The kernel's own BTF on sysfs is streamed (below); everything else, and
// whatever the stream cannot settle, is libbpf's full parse.
int kp_btf_member_offset(const char *path, const char *type, const char *member,
                         uint64_t *offset, uint64_t *struct_size, kp_error *err);
// The same, and the offset of a second member `also` of the struct from the
// same read (*also_offset is UINT64_MAX when it has none; never an error).
int kp_btf_member_offsets(const char *path, const char *type, const char *member, const char *also,
                          uint64_t *offset, uint64_t *also_offset, uint64_t *struct_size, kp_error *err);
// libbpf alone: btf__parse, then the struct and member, anonymous members included.
int kp_btf_member_offset_libbpf(const char *path, const char *type, const char *member,
                                uint64_t *offset, uint64_t *struct_size, kp_error *err);
// Raw BTF open on `fd`, read only up to the first struct `type`, whose
// direct member `member` it must be. Checks only what it reads.
int kp_btf_stream_member_offset(int fd, const char *type, const char *member,
                                uint64_t *offset, uint64_t *struct_size, kp_error *err);
int kp_btf_stream_member_offsets(int fd, const char *type, const char *member, const char *also,
                                 uint64_t *offset, uint64_t *also_offset, uint64_t *struct_size, kp_error *err);

// kernel.kptr_restrict: raise 0 → 1 so /proc/net/unix shows real addresses
// to root, and put it back. While raised, every signal whose default action
// ends the process restores it first; concurrent runs take turns (flock).
// *previous receives the value found (0, 1 or 2). Returns 0 or -errno.
int kp_kptr_raise(int *previous);
// Restores the value kp_kptr_raise found, if it changed it. Idempotent.
int kp_kptr_restore(void);
// For tests: the sysctl file used (default /proc/sys/kernel/kptr_restrict).
void kp_kptr_set_path(const char *path);

// glibc calls Swift's Glibc module cannot see (_GNU_SOURCE, <malloc.h>).
// Enters the network namespace open on `fd` (this thread only). 0 or -1/errno.
int kp_setns_net(int fd);
// A fixed mmap threshold (M_MMAP_THRESHOLD): large freed blocks go back to
// the kernel instead of staying resident. 1 on success.
int kp_fixed_mmap_threshold(int bytes);

#endif
