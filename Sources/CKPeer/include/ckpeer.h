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
    KP_ENOTREG = -9,     // not a regular file (a FIFO, a device, a directory)
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
// A file named by the user (--dwarf), opened once: read-only, O_NONBLOCK
// (a FIFO's open does not wait), and refused unless fstat says it is a
// regular file. The descriptor, or -1 with `err` set. The _fd readers below
// read only through it, so a path swapped after the check is never read.
int kp_open_checked(const char *path, kp_error *err);
// kp_elf_build_id of the ELF file open on `fd` (`path` names it in messages).
int kp_elf_build_id_fd(int fd, const char *path, uint8_t *buf, size_t buflen, size_t *len, kp_error *err);

// Offset in bytes of `member` inside `struct type`, and the struct's size,
// from DWARF. Members of anonymous structs/unions are found too. CUs whose
// name contains `prefer_cu` (may be NULL) are searched first: a vmlinux has
// thousands of CUs.
int kp_dwarf_member_offset(const char *path, const char *type, const char *member,
                           const char *prefer_cu, uint64_t *offset, uint64_t *struct_size,
                           kp_error *err);
// The same from the ELF file open on `fd` (kp_open_checked): with
// kp_elf_build_id_fd on the same descriptor, the build-id checked and the
// DWARF read are one file's.
int kp_dwarf_member_offset_fd(int fd, const char *path, const char *type, const char *member,
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
// libbpf on the file open on `fd` (`path` names it in messages): refused
// unless fstat says it is a regular file, then parsed through
// /proc/self/fd/N, never by `path`. kp_btf_member_offsets opens a file
// other than the kernel's own BTF once and reads it through this.
int kp_btf_fd_member_offsets(int fd, const char *path, const char *type, const char *member, const char *also,
                             uint64_t *offset, uint64_t *also_offset, uint64_t *struct_size, kp_error *err);
// Raw BTF open on `fd`, read only up to the first struct `type`, whose
// direct member `member` it must be. Checks only what it reads.
int kp_btf_stream_member_offset(int fd, const char *type, const char *member,
                                uint64_t *offset, uint64_t *struct_size, kp_error *err);
int kp_btf_stream_member_offsets(int fd, const char *type, const char *member, const char *also,
                                 uint64_t *offset, uint64_t *also_offset, uint64_t *struct_size, kp_error *err);

// kernel.kptr_restrict: raise 0 → 1 so /proc/net/unix shows real addresses
// to root, and put it back. While raised, every signal whose default action
// ends the process restores it first; concurrent runs take turns (flock on
// kp_kptr_lock_path(), waiting at most KP_KPTR_LOCK_WAIT_MS).
// *previous receives the value found (0, 1 or 2). Returns 0, -errno (the
// sysctl), KP_KPTR_BUSY or KP_KPTR_BADLOCK.
enum {
    KP_KPTR_BUSY = -10001,     // another run held the lock for the whole wait: kp_kptr_lock_holder()
    KP_KPTR_BADLOCK = -10002,  // the lock file is not a regular file of root's, writable by root only
};
#define KP_KPTR_LOCK_WAIT_MS 10000
#define KP_KPTR_LOCK_POLL_MS 10
int kp_kptr_raise(int *previous);
// Puts 0 back if kp_kptr_raise changed it and the sysctl still reads 1 (a
// value someone else set meanwhile stays). Idempotent.
int kp_kptr_restore(void);
// For tests: the sysctl file used (default /proc/sys/kernel/kptr_restrict).
void kp_kptr_set_path(const char *path);
// The lock file (default /run/kpeer-kptr.lock; settable for tests), and the
// pid its holder wrote there when kp_kptr_raise gave up (0: unknown).
void kp_kptr_set_lock_path(const char *path);
const char *kp_kptr_lock_path(void);
int kp_kptr_lock_holder(void);
// The longest wait for the lock, in ms (default KP_KPTR_LOCK_WAIT_MS;
// settable for tests, 0 restores the default).
void kp_kptr_set_lock_wait(int ms);
int kp_kptr_lock_wait(void);

// glibc calls Swift's Glibc module cannot see (_GNU_SOURCE, <malloc.h>).
// Enters the network namespace open on `fd` (this thread only). 0 or -1/errno.
int kp_setns_net(int fd);
// A fixed mmap threshold (M_MMAP_THRESHOLD): large freed blocks go back to
// the kernel instead of staying resident. 1 on success.
int kp_fixed_mmap_threshold(int bytes);
// Do task `tid` and process `pid` share one file-descriptor table?
// 1 yes, 0 no, -errno when kcmp(2) cannot tell (no CONFIG_KCMP, no ptrace
// access): the caller then reads the task's table anyway.
int kp_same_files(int pid, int tid);
// getdents64(2) on an open directory: bytes of linux_dirent64 records put
// in `buf`, 0 at the end, -errno on error.
long kp_getdents64(int fd, void *buf, unsigned long size);
// How many signals kpeer has handled and returned from (--watch's stop
// signals; the others end the process): a syscall they interrupted may
// have returned short.
int kp_signals_handled(void);
// SO_PEERCRED of the socket `inode` that process `pid` holds as `fd`, read
// on a copy taken with pidfd_getfd(2). 0, or -errno (-ESTALE: that fd is no
// longer that socket; -ENOSYS: no pidfd_getfd).
int kp_peercred(int pid, int fd, uint64_t inode, int *cred_pid, uint32_t *uid, uint32_t *gid);
// The network namespace of the unix socket of `inode` that `pid` holds as
// `fd` (SIOCGSKNS on a pidfd_getfd copy): a new descriptor, or -errno.
int kp_socket_netns(int pid, int fd, uint64_t inode);
// 1 when descriptor `fd` of `pid` is a unix socket (sockfs's
// system.sockprotoname), 0 when another kind, or -errno.
int kp_is_unix_socket(int pid, int fd);

// Struct layouts for the kernel-object reader (types.c): BTF through
// libbpf, or a vmlinux's DWARF through libdw, behind one handle.
enum {
    KP_KIND_OTHER = 0,
    KP_KIND_INT = 1,     // integers (and bool, char)
    KP_KIND_PTR = 2,
    KP_KIND_STRUCT = 3,
    KP_KIND_UNION = 4,
    KP_KIND_ARRAY = 5,
    KP_KIND_ENUM = 6,
};
#define KP_TYPE_NAME_MAX 64

typedef struct kp_member {
    uint64_t offset;       // bytes from the start of the outer struct
    uint64_t size;         // bytes of the member's type (typedefs and qualifiers peeled)
    int kind;              // KP_KIND_* of that type
    int target_kind;       // PTR: the kind pointed to
    char target[KP_TYPE_NAME_MAX];  // STRUCT/UNION: its name; PTR: the pointee struct's; ARRAY: the element struct's
    uint64_t target_size;  // PTR: sizeof the pointee (0 when only declared)
    uint64_t count;        // ARRAY: elements
    uint64_t elem_size;    // ARRAY: bytes of one element
    int elem_kind;         // ARRAY: kind of an element
} kp_member;

typedef struct kp_types kp_types;
// dwarf = 0: BTF (raw, such as /sys/kernel/btf/vmlinux, or an ELF's .BTF);
// 1: DWARF of an ELF file. The file is opened once and checked regular.
int kp_types_open(const char *path, int dwarf, kp_types **out, kp_error *err);
// The same from a descriptor the handle takes over (closed on failure too):
// read only through it, never by `path`, which names it in messages.
int kp_types_open_fd(int fd, const char *path, int dwarf, kp_types **out, kp_error *err);
void kp_types_close(kp_types *types);
int kp_types_struct_size(kp_types *types, const char *type, uint64_t *size, kp_error *err);
// `path` is dotted ("sk.__sk_common.skc_net"); anonymous members are looked
// through. A bit field anywhere on the path is KP_EFORMAT.
int kp_types_member(kp_types *types, const char *type, const char *path, kp_member *out, kp_error *err);

#endif

// ---- kpeer --watch (watch.c): the BPF program, its hooks, its events ----
// (After the guard above, so with one of its own.)
#ifndef CKPEER_WATCH_H
#define CKPEER_WATCH_H
#include <stddef.h>
#include <stdint.h>
// kp_watch_open loads the object (the bytes of Sources/Watch/BPF's program)
// and attaches each hook as fentry, else as kprobe, as `allow` permits.
// 0 with *out set when anything loaded, whatever attached (see the hook
// states); KP_EIO and a one-line reason in `err` when nothing could load.
// ring_bytes: the ring buffer's size (a power of 2 of pages; 0: the default).
enum {
    KPW_ATTACH_FENTRY = 1,
    KPW_ATTACH_KPROBE = 2,
};
enum {
    KPW_HOOK_NONE = 0,
    KPW_HOOK_FENTRY = 1,
    KPW_HOOK_KPROBE = 2,
};
#define KPW_HOOKS 6
typedef struct kp_watch kp_watch;
struct kp_watch_event;
int kp_watch_open(const void *object, size_t size, int allow, uint32_t ring_bytes, kp_watch **out, kp_error *err);
void kp_watch_close(kp_watch *w);
int kp_watch_hook_count(void);
// What hook i lets kpeer see ("accepts"), how it is attached (KPW_HOOK_*),
// and why it is not (one line; "" when attached).
const char *kp_watch_hook_name(int i);
int kp_watch_hook_state(const kp_watch *w, int i);
const char *kp_watch_hook_error(const kp_watch *w, int i);
// Events the kernel holds, waiting up to timeout_ms (-1: for ever) for the
// first ones or for stop_fd to be readable. *events stays valid until the
// next call. 0 or -errno.
int kp_watch_consume(kp_watch *w, int timeout_ms, int stop_fd, const struct kp_watch_event **events, size_t *count);
// Events the ring buffer had no room for, so far.
uint64_t kp_watch_lost(const kp_watch *w);
// SIGINT, SIGTERM and SIGHUP end a watch: the handler records the signal
// and makes kp_watch_stop_fd() readable (a pipe), which every wait of the
// watch includes. restore puts the previous handlers back.
int kp_watch_signals_install(void);
void kp_watch_signals_restore(void);
int kp_watch_stop_fd(void);
int kp_watch_stop_asked(void);
int kp_watch_stop_signal(void);  // the signal that asked (0: kp_watch_request_stop)
void kp_watch_request_stop(void);
void kp_watch_reset_stop(void);
// Waits up to timeout_ms for a stop: 1 stopped, 0 timed out, -errno.
int kp_watch_wait_stop(int timeout_ms);
#endif
