// libbpf: a struct member's offset from BTF.
#include "error.h"

#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <stdio.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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

int kp_btf_member_offset(const char *path, const char *type, const char *member,
                         uint64_t *offset, uint64_t *struct_size, kp_error *err) {
    *offset = 0;
    *struct_size = 0;
    libbpf_set_print(quiet);
    if (access(path, R_OK) != 0)
        return kp_fail(err, KP_EIO, errno, "cannot read %s: %s", path, strerror(errno));
    struct stat st;  // a FIFO would block libbpf's read forever
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
        return kp_fail(err, KP_EFORMAT, 0, "%s is not a regular file", path);
    struct btf *btf = btf__parse(path, NULL);
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
    btf__free(btf);
    return KP_OK;
}
