// A struct member's offset from BTF: libbpf's full parse for any file, and
// for the kernel's own /sys/kernel/btf/vmlinux a read that stops at the
// struct (kp_btf_stream_member_offset).
#include "error.h"

#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#ifndef SYSFS_MAGIC
#define SYSFS_MAGIC 0x62656572
#endif

// libbpf prints its own warnings to stderr; kpeer reports errors itself.
static int quiet(enum libbpf_print_level level, const char *fmt, va_list ap) {
    (void)level, (void)fmt, (void)ap;
    return 0;
}

static const struct btf_type *skip_mods(const struct btf *btf, __u32 id) {
    const struct btf_type *t = btf__type_by_id(btf, id);
    for (int depth = 0; t && depth < 16 && (btf_is_mod(t) || btf_is_typedef(t)); depth++)
        t = btf__type_by_id(btf, t->type);
    return t;
}

static int find_member(const struct btf *btf, const struct btf_type *t, const char *member,
                       uint64_t base_bits, uint64_t *bits, int depth) {
    if (depth > 8 || !(btf_is_struct(t) || btf_is_union(t))) return 0;
    const struct btf_member *m = btf_members(t);
    for (__u16 i = 0; i < btf_vlen(t); i++, m++) {
        const char *name = btf__name_by_offset(btf, m->name_off);
        uint64_t here = base_bits + btf_member_bit_offset(t, i);
        if (name && *name) {
            if (strcmp(name, member) == 0) {
                *bits = here;
                return 1;
            }
        } else {
            const struct btf_type *inner = skip_mods(btf, m->type);
            if (inner && find_member(btf, inner, member, here, bits, depth + 1)) return 1;
        }
    }
    return 0;
}

// ---- Streaming: the kernel's own BTF, read only as far as needed.
//
// sysfs hands out /sys/kernel/btf/vmlinux 4 KiB per read(): 1000-1400
// syscalls for the 4-6 MB file, which libbpf reads whole and indexes before
// it answers (45 ms of a 150 ms run in the VM). The strings come first here
// (the two names' offsets), then the types up to the struct: usually a
// fraction of the file. Anything unexpected answers "not here" and the
// caller falls back to libbpf. Names are matched by string offset, which is
// exact for deduplicated strings (pahole's, so every kernel's); BTF that
// stores a name twice could lead it to a later struct than libbpf picks.

// One section of the file, read on demand into a growing buffer.
typedef struct {
    int fd;
    uint64_t at;   // file offset of the section
    uint32_t len;  // its length
    uint8_t *buf;
    uint32_t have; // bytes read so far
} section;

// Makes at least `want` bytes (clipped to the section) available; reads in
// 64 KiB steps. 0, or -1 on a read error or a short file.
static int section_fill(section *s, uint64_t want) {
    if (want > s->len) want = s->len;
    if (want <= s->have) return 0;
    uint64_t target = want + 65536 > s->len ? s->len : want + 65536;
    if (!s->buf) {
        s->buf = malloc(s->len ? s->len : 1);  // the whole section at most
        if (!s->buf) return -1;
    }
    while (s->have < target) {
        ssize_t n = pread(s->fd, s->buf + s->have, target - s->have, (off_t)(s->at + s->have));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return -1;
        s->have += (uint32_t)n;
    }
    return 0;
}

// Offset of the string `name` in the string section (which starts with ""),
// searching as it reads. 0 when absent.
static uint32_t find_string(section *strs, const char *name, uint32_t *scanned) {
    size_t len = strlen(name);
    for (;;) {
        // A match is "\0name\0": a whole string, not the tail of a longer one.
        uint32_t from = *scanned > len + 1 ? *scanned - (uint32_t)len - 1 : 0;
        for (uint32_t i = from; i + len + 2 <= strs->have; i++) {
            const uint8_t *p = memchr(strs->buf + i, 0, strs->have - i);
            if (!p) break;
            i = (uint32_t)(p - strs->buf);
            if (i + len + 2 <= strs->have && memcmp(p + 1, name, len) == 0 && p[len + 1] == 0)
                return i + 1;
        }
        *scanned = strs->have;
        if (strs->have == strs->len || section_fill(strs, (uint64_t)strs->have + 1) != 0) return 0;
    }
}

// Bytes a type record takes after its struct btf_type; -1 for kinds this
// reader does not know (a newer kernel: libbpf decides).
static long record_extra(const struct btf_type *t) {
    __u16 vlen = btf_vlen(t);
    switch (btf_kind(t)) {
    case BTF_KIND_INT: return 4;
    case BTF_KIND_PTR: case BTF_KIND_FWD: case BTF_KIND_TYPEDEF: case BTF_KIND_VOLATILE:
    case BTF_KIND_CONST: case BTF_KIND_RESTRICT: case BTF_KIND_FUNC: case BTF_KIND_FLOAT:
    case BTF_KIND_TYPE_TAG: return 0;
    case BTF_KIND_ARRAY: return sizeof(struct btf_array);
    case BTF_KIND_STRUCT: case BTF_KIND_UNION: return (long)vlen * sizeof(struct btf_member);
    case BTF_KIND_ENUM: return (long)vlen * sizeof(struct btf_enum);
    case BTF_KIND_ENUM64: return (long)vlen * sizeof(struct btf_enum64);
    case BTF_KIND_FUNC_PROTO: return (long)vlen * sizeof(struct btf_param);
    case BTF_KIND_VAR: return sizeof(struct btf_var);
    case BTF_KIND_DATASEC: return (long)vlen * sizeof(struct btf_var_secinfo);
    case BTF_KIND_DECL_TAG: return sizeof(struct btf_decl_tag);
    default: return -1;
    }
}

// Does libbpf see a name at `off` (not NULL, not empty)? Otherwise it
// takes the member for anonymous and looks inside it.
static int named(section *strs, uint32_t off) {
    return off != 0 && off < strs->len && section_fill(strs, (uint64_t)off + 1) == 0 && off < strs->have &&
           strs->buf[off] != 0;
}

int kp_btf_stream_member_offsets(int fd, const char *type, const char *member, const char *also,
                                 uint64_t *offset, uint64_t *also_offset, uint64_t *struct_size, kp_error *err) {
    *offset = 0;
    *struct_size = 0;
    if (also_offset) *also_offset = UINT64_MAX;
    struct btf_header h;
    if (pread(fd, &h, sizeof h, 0) != (ssize_t)sizeof h || h.magic != BTF_MAGIC || h.version != BTF_VERSION ||
        h.hdr_len < sizeof h || h.hdr_len > 4096)
        return kp_fail(err, KP_EFORMAT, 0, "not raw BTF in this machine's byte order");
    struct stat st;
    uint64_t size = fstat(fd, &st) == 0 ? (uint64_t)st.st_size : 0;
    uint64_t types_end = (uint64_t)h.hdr_len + h.type_off + h.type_len;
    uint64_t strs_end = (uint64_t)h.hdr_len + h.str_off + h.str_len;
    if (h.type_len % 4 || h.str_len == 0 || (size && (types_end > size || strs_end > size)))
        return kp_fail(err, KP_EFORMAT, 0, "BTF sections lie outside the file");
    section strs = {fd, (uint64_t)h.hdr_len + h.str_off, h.str_len, NULL, 0};
    section types = {fd, (uint64_t)h.hdr_len + h.type_off, h.type_len, NULL, 0};
    int rc = KP_ENOTYPE;
    uint32_t scanned = 0;
    if (section_fill(&strs, 1) != 0 || strs.buf[0] != 0) {
        rc = kp_fail(err, KP_EFORMAT, 0, "the BTF string section does not start with an empty string");
        goto out;
    }
    uint32_t type_name = find_string(&strs, type, &scanned);
    scanned = 0;
    uint32_t member_name = type_name ? find_string(&strs, member, &scanned) : 0;
    scanned = 0;
    uint32_t also_name = type_name && member_name && also && also_offset ? find_string(&strs, also, &scanned) : 0;
    if (!type_name || !member_name) {
        rc = kp_fail(err, KP_ENOTYPE, 0, "no string %s", type_name ? member : type);
        goto out;
    }
    for (uint64_t at = 0; at < h.type_len;) {
        if (section_fill(&types, at + sizeof(struct btf_type)) != 0 || at + sizeof(struct btf_type) > types.have) {
            rc = kp_fail(err, KP_EFORMAT, 0, "truncated BTF type section");
            goto out;
        }
        const struct btf_type *t = (const struct btf_type *)(types.buf + at);
        long extra = record_extra(t);
        if (extra < 0) {
            rc = kp_fail(err, KP_EFORMAT, 0, "BTF kind %u is new to kpeer", btf_kind(t));
            goto out;
        }
        uint64_t next = at + sizeof(struct btf_type) + (uint64_t)extra;
        if (section_fill(&types, next) != 0 || next > types.have) {
            rc = kp_fail(err, KP_EFORMAT, 0, "truncated BTF type section");
            goto out;
        }
        t = (const struct btf_type *)(types.buf + at);  // the buffer may have moved
        if (btf_kind(t) == BTF_KIND_STRUCT && t->name_off == type_name) {
            // The first struct of that name, as btf__find_by_name_kind takes.
            // Only direct members: anything else is libbpf's to find.
            // libbpf searches in declaration order and looks into
            // anonymous members (no name, or a name offset that resolves to
            // none) as it meets them: a name found after one may be a second
            // one (fuzzed BTF; never a C struct's), so past one the answer is
            // libbpf's.
            const struct btf_member *m = btf_members(t);
            for (__u16 i = 0; also_name && i < btf_vlen(t) && named(&strs, m[i].name_off); i++) {
                __u32 bits = btf_member_bit_offset(t, i);
                if (m[i].name_off == also_name) {
                    if (bits % 8 == 0 && !btf_member_bitfield_size(t, i)) *also_offset = bits / 8;
                    break;
                }
            }
            for (__u16 i = 0; i < btf_vlen(t); i++) {
                if (!named(&strs, m[i].name_off)) {
                    rc = kp_fail(err, KP_ENOMEMBER, 0, "struct %s has an anonymous member before %s", type, member);
                    goto out;
                }
                if (m[i].name_off != member_name) continue;
                __u32 bits = btf_member_bit_offset(t, i);
                if (bits % 8 || btf_member_bitfield_size(t, i)) {
                    rc = kp_fail(err, KP_EFORMAT, 0, "%s.%s is a bit field", type, member);
                } else {
                    *offset = bits / 8;
                    *struct_size = t->size;
                    rc = KP_OK;
                }
                goto out;
            }
            rc = kp_fail(err, KP_ENOMEMBER, 0, "struct %s has no direct member %s", type, member);
            goto out;
        }
        at = next;
    }
    rc = kp_fail(err, KP_ENOTYPE, 0, "no struct %s", type);
out:
    free(strs.buf);
    free(types.buf);
    return rc;
}

int kp_btf_stream_member_offset(int fd, const char *type, const char *member,
                                uint64_t *offset, uint64_t *struct_size, kp_error *err) {
    return kp_btf_stream_member_offsets(fd, type, member, NULL, offset, NULL, struct_size, err);
}

static int libbpf_member_offsets(const char *path, const char *type, const char *member, const char *also,
                                 uint64_t *offset, uint64_t *also_offset, uint64_t *struct_size, kp_error *err);

int kp_btf_member_offset(const char *path, const char *type, const char *member,
                         uint64_t *offset, uint64_t *struct_size, kp_error *err) {
    return kp_btf_member_offsets(path, type, member, NULL, offset, NULL, struct_size, err);
}

int kp_btf_member_offset_libbpf(const char *path, const char *type, const char *member,
                                uint64_t *offset, uint64_t *struct_size, kp_error *err) {
    return libbpf_member_offsets(path, type, member, NULL, offset, NULL, struct_size, err);
}

int kp_btf_member_offsets(const char *path, const char *type, const char *member, const char *also,
                          uint64_t *offset, uint64_t *also_offset, uint64_t *struct_size, kp_error *err) {
    // The kernel's own BTF, which it checked when it booted, is streamed:
    // /sys/kernel/btf/vmlinux on sysfs, never a module's split BTF beside it
    // (its name offsets continue vmlinux's). Any other file, and any doubt,
    // goes to libbpf. stat first: opening some devices has side effects.
    struct stat st;
    if (strcmp(path, "/sys/kernel/btf/vmlinux") == 0 && stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
        int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
        if (fd >= 0) {
            struct statfs fs;
            int ok = fstatfs(fd, &fs) == 0 && fs.f_type == SYSFS_MAGIC &&
                     kp_btf_stream_member_offsets(fd, type, member, also, offset, also_offset, struct_size, NULL) == KP_OK;
            close(fd);
            if (ok) return KP_OK;
        }
    }
    return libbpf_member_offsets(path, type, member, also, offset, also_offset, struct_size, err);
}

static int libbpf_member_offsets(const char *path, const char *type, const char *member, const char *also,
                                 uint64_t *offset, uint64_t *also_offset, uint64_t *struct_size, kp_error *err) {
    *offset = 0;
    *struct_size = 0;
    if (also_offset) *also_offset = UINT64_MAX;
    // Opened once, checked, and read through that descriptor: a path that
    // is checked and then parsed by name again could be swapped in between
    // (for a FIFO, which would block libbpf's read forever). O_NONBLOCK: the
    // open itself never waits for a FIFO's writer.
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) return kp_fail(err, KP_EIO, errno, "cannot read %s: %s", path, strerror(errno));
    int rc = kp_btf_fd_member_offsets(fd, path, type, member, also, offset, also_offset, struct_size, err);
    close(fd);
    return rc;
}

int kp_btf_fd_member_offsets(int fd, const char *path, const char *type, const char *member, const char *also,
                             uint64_t *offset, uint64_t *also_offset, uint64_t *struct_size, kp_error *err) {
    *offset = 0;
    *struct_size = 0;
    if (also_offset) *also_offset = UINT64_MAX;
    libbpf_set_print(quiet);
    int rc = kp_check_regular(fd, path, err);  // a FIFO would block libbpf's read forever
    if (rc != 0) return rc;
    // libbpf parses only by name: /proc/self/fd/N is this descriptor's own
    // file (even unlinked or renamed since), never what the path names now.
    char self[64];
    snprintf(self, sizeof self, "/proc/self/fd/%d", fd);
    struct btf *btf = btf__parse(self, NULL);
    if (!btf) {
        int e = errno;
        // libbpf has errnos of its own (4000+); ENOENT from an ELF means no .BTF section.
        char why[128];
        if (e == ENOENT)
            snprintf(why, sizeof why, "no .BTF section");
        else if (libbpf_strerror(e, why, sizeof why) != 0)
            snprintf(why, sizeof why, "%s", strerror(e));
        return kp_fail(err, KP_EFORMAT, e, "%s is not BTF data (%s)", path, why);
    }
    __s32 id = btf__find_by_name_kind(btf, type, BTF_KIND_STRUCT);
    if (id < 0) {
        btf__free(btf);
        return kp_fail(err, KP_ENOTYPE, 0, "the BTF in %s has no struct %s", path, type);
    }
    const struct btf_type *t = btf__type_by_id(btf, (__u32)id);
    uint64_t bits = 0;
    if (!t || !find_member(btf, t, member, 0, &bits, 0)) {
        btf__free(btf);
        return kp_fail(err, KP_ENOMEMBER, 0, "struct %s in %s has no member %s", type, path, member);
    }
    if (bits % 8) {
        btf__free(btf);
        return kp_fail(err, KP_EFORMAT, 0, "%s.%s is a bit field", type, member);
    }
    *offset = bits / 8;
    *struct_size = t->size;
    uint64_t also_bits = 0;
    if (also && also_offset && find_member(btf, t, also, 0, &also_bits, 0) && also_bits % 8 == 0)
        *also_offset = also_bits / 8;
    btf__free(btf);
    return KP_OK;
}
