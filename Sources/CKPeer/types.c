// Struct layouts for the kernel-object reader: a member found by a dotted
// path ("sk.__sk_common.skc_net.net"), through anonymous structs and unions,
// with its offset, size, kind and, for a pointer, the struct it points to.
// Two sources behind one handle: BTF through libbpf's type API, and a
// vmlinux's DWARF through libdw. Swift asks; C only walks the type graph.
#include "error.h"

#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <dwarf.h>
#include <elfutils/libdw.h>
#include <errno.h>
#include <fcntl.h>
#include <libelf.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct kp_types {
    int dwarf;
    struct btf *btf;
    int fd;
    Elf *elf;
    Dwarf *dbg;
    char path[256];
};

static int quiet(enum libbpf_print_level level, const char *fmt, va_list ap) {
    (void)level, (void)fmt, (void)ap;
    return 0;
}

static void set_name(char *dst, const char *src) {
    snprintf(dst, KP_TYPE_NAME_MAX, "%s", src ? src : "");
}

// ---- BTF ----

static const struct btf_type *btf_strip(const struct btf *btf, __u32 id, __u32 *out_id) {
    const struct btf_type *t = btf__type_by_id(btf, id);
    for (int depth = 0; t && depth < 16 && (btf_is_mod(t) || btf_is_typedef(t)); depth++) {
        id = t->type;
        t = btf__type_by_id(btf, id);
    }
    if (out_id) *out_id = id;
    return t;
}

static int btf_kind_of(const struct btf_type *t) {
    if (!t) return KP_KIND_OTHER;
    if (btf_is_int(t)) return KP_KIND_INT;
    if (btf_is_ptr(t)) return KP_KIND_PTR;
    if (btf_is_struct(t)) return KP_KIND_STRUCT;
    if (btf_is_union(t)) return KP_KIND_UNION;
    if (btf_is_array(t)) return KP_KIND_ARRAY;
    if (btf_is_enum(t) || btf_is_enum64(t)) return KP_KIND_ENUM;
    return KP_KIND_OTHER;
}

static uint64_t btf_size_of(const struct btf *btf, __u32 id) {
    __s64 s = btf__resolve_size(btf, id);
    return s > 0 ? (uint64_t)s : 0;
}

// Member `name` of struct/union `t`, through anonymous members. 1 found.
static int btf_find(const struct btf *btf, const struct btf_type *t, const char *name, uint64_t base_bits,
                    uint64_t *bits, __u32 *type_id, uint32_t *bitfield, int depth) {
    if (depth > 8 || !(btf_is_struct(t) || btf_is_union(t))) return 0;
    const struct btf_member *m = btf_members(t);
    for (__u16 i = 0; i < btf_vlen(t); i++, m++) {
        const char *n = btf__name_by_offset(btf, m->name_off);
        uint64_t here = base_bits + btf_member_bit_offset(t, i);
        if (n && *n) {
            if (strcmp(n, name) == 0) {
                *bits = here;
                *type_id = m->type;
                *bitfield = btf_member_bitfield_size(t, i);
                return 1;
            }
        } else {
            const struct btf_type *inner = btf_strip(btf, m->type, NULL);
            if (inner && btf_find(btf, inner, name, here, bits, type_id, bitfield, depth + 1)) return 1;
        }
    }
    return 0;
}

static void btf_describe(const struct btf *btf, __u32 id, kp_member *out) {
    __u32 sid;
    const struct btf_type *t = btf_strip(btf, id, &sid);
    out->kind = btf_kind_of(t);
    out->size = btf_size_of(btf, sid);
    if (!t) return;
    if (out->kind == KP_KIND_STRUCT || out->kind == KP_KIND_UNION) {
        set_name(out->target, btf__name_by_offset(btf, t->name_off));
    } else if (out->kind == KP_KIND_PTR) {
        __u32 tid;
        const struct btf_type *p = btf_strip(btf, t->type, &tid);
        out->target_kind = btf_kind_of(p);
        if (p && (btf_is_struct(p) || btf_is_union(p))) set_name(out->target, btf__name_by_offset(btf, p->name_off));
        // A pointer to a forward declaration (BTF_KIND_FWD): the name, to look up.
        if (p && btf_is_fwd(p)) {
            set_name(out->target, btf__name_by_offset(btf, p->name_off));
            out->target_kind = btf_kflag(p) ? KP_KIND_UNION : KP_KIND_STRUCT;
        }
        out->target_size = btf_size_of(btf, tid);
    } else if (out->kind == KP_KIND_ARRAY) {
        const struct btf_array *a = btf_array(t);
        __u32 eid;
        const struct btf_type *e = btf_strip(btf, a->type, &eid);
        out->count = a->nelems;
        out->elem_kind = btf_kind_of(e);
        out->elem_size = btf_size_of(btf, eid);
        if (e && (btf_is_struct(e) || btf_is_union(e))) set_name(out->target, btf__name_by_offset(btf, e->name_off));
    }
}

static int btf_struct(struct kp_types *h, const char *type, __u32 *id, const struct btf_type **t, kp_error *err) {
    __s32 sid = btf__find_by_name_kind(h->btf, type, BTF_KIND_STRUCT);
    if (sid < 0) sid = btf__find_by_name_kind(h->btf, type, BTF_KIND_UNION);
    if (sid < 0) return kp_fail(err, KP_ENOTYPE, 0, "the BTF in %s has no struct %s", h->path, type);
    *id = (__u32)sid;
    *t = btf__type_by_id(h->btf, *id);
    return KP_OK;
}

static int btf_member(struct kp_types *h, const char *type, const char *path, kp_member *out, kp_error *err) {
    __u32 id;
    const struct btf_type *t;
    int rc = btf_struct(h, type, &id, &t, err);
    if (rc) return rc;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", path);
    uint64_t bits = 0;
    __u32 mid = id;
    char *save = NULL;
    for (char *part = strtok_r(buf, ".", &save); part; part = strtok_r(NULL, ".", &save)) {
        const struct btf_type *cur = btf_strip(h->btf, mid, NULL);
        uint64_t here = 0;
        uint32_t bitfield = 0;
        if (!cur || !btf_find(h->btf, cur, part, 0, &here, &mid, &bitfield, 0))
            return kp_fail(err, KP_ENOMEMBER, 0, "struct %s has no member %s (BTF of %s)", type, path, h->path);
        if (bitfield || here % 8)
            return kp_fail(err, KP_EFORMAT, 0, "%s.%s is a bit field, which kpeer does not read", type, path);
        bits += here;
    }
    memset(out, 0, sizeof *out);
    out->offset = bits / 8;
    btf_describe(h->btf, mid, out);
    return KP_OK;
}

// ---- DWARF ----

// libdw hands out names as pointers into section data; a malformed file
// could leave one unterminated (dwarf.c checks against the sections; here
// the vmlinux is one the build-id check accepted, and names are copied
// bounded).
static const char *die_name(Dwarf_Die *die) { return dwarf_diename(die); }

static Dwarf_Die *dw_strip(Dwarf_Die *die, Dwarf_Die *mem) {
    for (int depth = 0; depth < 16; depth++) {
        int tag = dwarf_tag(die);
        if (tag != DW_TAG_typedef && tag != DW_TAG_const_type && tag != DW_TAG_volatile_type &&
            tag != DW_TAG_restrict_type && tag != DW_TAG_atomic_type)
            return die;
        Dwarf_Attribute at;
        if (!dwarf_attr_integrate(die, DW_AT_type, &at) || !dwarf_formref_die(&at, mem)) return NULL;
        die = mem;
    }
    return NULL;
}

static int dw_type_of(Dwarf_Die *die, Dwarf_Die *out) {
    Dwarf_Attribute at;
    return dwarf_attr_integrate(die, DW_AT_type, &at) && dwarf_formref_die(&at, out) ? 0 : -1;
}

static int dw_kind_of(Dwarf_Die *t) {
    if (!t) return KP_KIND_OTHER;
    switch (dwarf_tag(t)) {
    case DW_TAG_base_type: return KP_KIND_INT;
    case DW_TAG_pointer_type: return KP_KIND_PTR;
    case DW_TAG_structure_type: return KP_KIND_STRUCT;
    case DW_TAG_union_type: return KP_KIND_UNION;
    case DW_TAG_array_type: return KP_KIND_ARRAY;
    case DW_TAG_enumeration_type: return KP_KIND_ENUM;
    default: return KP_KIND_OTHER;
    }
}

static uint64_t dw_size_of(Dwarf_Die *t) {
    if (!t) return 0;
    if (dwarf_tag(t) == DW_TAG_pointer_type) {
        Dwarf_Attribute at;
        Dwarf_Word w;
        return dwarf_attr_integrate(t, DW_AT_byte_size, &at) && dwarf_formudata(&at, &w) == 0 ? w : 8;
    }
    if (dwarf_tag(t) == DW_TAG_array_type) {
        Dwarf_Word w;
        return dwarf_aggregate_size(t, &w) == 0 ? w : 0;
    }
    int s = dwarf_bytesize(t);
    return s > 0 ? (uint64_t)s : 0;
}

static int dw_location(Dwarf_Die *member, uint64_t *off) {
    Dwarf_Attribute at;
    if (!dwarf_attr_integrate(member, DW_AT_data_member_location, &at)) {
        *off = 0;
        return 0;
    }
    Dwarf_Word w;
    if (dwarf_formudata(&at, &w) == 0) {
        *off = w;
        return 0;
    }
    Dwarf_Op *ops;
    size_t nops;
    if (dwarf_getlocation(&at, &ops, &nops) == 0 && nops == 1 && ops[0].atom == DW_OP_plus_uconst) {
        *off = ops[0].number;
        return 0;
    }
    return -1;
}

static int dw_find(Dwarf_Die *st, const char *name, uint64_t base, uint64_t *off, Dwarf_Die *found, int depth) {
    if (depth > 8) return 0;
    Dwarf_Die child;
    if (dwarf_child(st, &child) != 0) return 0;
    do {
        if (dwarf_tag(&child) != DW_TAG_member) continue;
        uint64_t here;
        if (dw_location(&child, &here) != 0) continue;
        const char *n = die_name(&child);
        if (n && strcmp(n, name) == 0) {
            *off = base + here;
            *found = child;
            return 1;
        }
        if (!n) {
            Dwarf_Die tmem, *t;
            if (dw_type_of(&child, &tmem) == 0 && (t = dw_strip(&tmem, &tmem)) != NULL &&
                (dwarf_tag(t) == DW_TAG_structure_type || dwarf_tag(t) == DW_TAG_union_type)) {
                Dwarf_Die inner = *t;
                if (dw_find(&inner, name, base + here, off, found, depth + 1)) return 1;
            }
        }
    } while (dwarf_siblingof(&child, &child) == 0);
    return 0;
}

// The complete definition of struct (or union) `type`: af_unix.c's CU
// first, where every struct kpeer reads is defined in full; then the rest.
static int dw_struct(struct kp_types *h, const char *type, Dwarf_Die *out, kp_error *err) {
    for (int pass = 0; pass < 2; pass++) {
        Dwarf_CU *cu = NULL;
        Dwarf_Die cudie;
        uint8_t unit_type;
        while (dwarf_get_units(h->dbg, cu, &cu, NULL, &unit_type, &cudie, NULL) == 0) {
            if (unit_type != DW_UT_compile && unit_type != DW_UT_partial) continue;
            const char *cuname = die_name(&cudie);
            int preferred = cuname && strstr(cuname, "net/unix/af_unix.c") != NULL;
            if (preferred != (pass == 0)) continue;
            Dwarf_Die die;
            if (dwarf_child(&cudie, &die) != 0) continue;
            do {
                int tag = dwarf_tag(&die);
                if ((tag != DW_TAG_structure_type && tag != DW_TAG_union_type) ||
                    dwarf_hasattr(&die, DW_AT_declaration))
                    continue;
                const char *n = die_name(&die);
                if (n && strcmp(n, type) == 0) {
                    *out = die;
                    return KP_OK;
                }
            } while (dwarf_siblingof(&die, &die) == 0);
        }
    }
    return kp_fail(err, KP_ENOTYPE, 0, "%s defines no struct %s", h->path, type);
}

static void dw_describe(Dwarf_Die *type_die, kp_member *out) {
    Dwarf_Die mem, *t = dw_strip(type_die, &mem);
    out->kind = dw_kind_of(t);
    out->size = dw_size_of(t);
    if (!t) return;
    if (out->kind == KP_KIND_STRUCT || out->kind == KP_KIND_UNION) {
        set_name(out->target, die_name(t));
    } else if (out->kind == KP_KIND_PTR) {
        Dwarf_Die pmem, pm2, *p = NULL;
        if (dw_type_of(t, &pmem) == 0) p = dw_strip(&pmem, &pm2);
        out->target_kind = p ? dw_kind_of(p) : KP_KIND_OTHER;
        if (p && (out->target_kind == KP_KIND_STRUCT || out->target_kind == KP_KIND_UNION)) {
            set_name(out->target, die_name(p));
            out->target_size = dwarf_hasattr(p, DW_AT_declaration) ? 0 : dw_size_of(p);
        } else if (p) {
            out->target_size = dw_size_of(p);
        }
    } else if (out->kind == KP_KIND_ARRAY) {
        Dwarf_Die emem, em2, *e = NULL;
        if (dw_type_of(t, &emem) == 0) e = dw_strip(&emem, &em2);
        out->elem_kind = dw_kind_of(e);
        out->elem_size = dw_size_of(e);
        if (e && (out->elem_kind == KP_KIND_STRUCT || out->elem_kind == KP_KIND_UNION)) set_name(out->target, die_name(e));
        out->count = out->elem_size ? out->size / out->elem_size : 0;
    }
}

static int dw_member(struct kp_types *h, const char *type, const char *path, kp_member *out, kp_error *err) {
    Dwarf_Die st;
    int rc = dw_struct(h, type, &st, err);
    if (rc) return rc;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", path);
    uint64_t total = 0;
    Dwarf_Die cur = st, member, tmem;
    int have_member = 0;
    char *save = NULL;
    for (char *part = strtok_r(buf, ".", &save); part; part = strtok_r(NULL, ".", &save)) {
        if (have_member) {
            Dwarf_Die *t;
            if (dw_type_of(&member, &tmem) != 0 || (t = dw_strip(&tmem, &tmem)) == NULL)
                return kp_fail(err, KP_ENOMEMBER, 0, "struct %s has no member %s (DWARF of %s)", type, path, h->path);
            cur = *t;
        }
        int tag = dwarf_tag(&cur);
        uint64_t here = 0;
        if ((tag != DW_TAG_structure_type && tag != DW_TAG_union_type) || !dw_find(&cur, part, 0, &here, &member, 0))
            return kp_fail(err, KP_ENOMEMBER, 0, "struct %s has no member %s (DWARF of %s)", type, path, h->path);
        if (dwarf_hasattr(&member, DW_AT_bit_size) || dwarf_hasattr(&member, DW_AT_data_bit_offset))
            return kp_fail(err, KP_EFORMAT, 0, "%s.%s is a bit field, which kpeer does not read", type, path);
        total += here;
        have_member = 1;
    }
    if (!have_member) return kp_fail(err, KP_ENOMEMBER, 0, "an empty member path of struct %s", type);
    memset(out, 0, sizeof *out);
    out->offset = total;
    if (dw_type_of(&member, &tmem) == 0) dw_describe(&tmem, out);
    return KP_OK;
}

// ---- the handle ----

int kp_types_open(const char *path, int dwarf, kp_types **out, kp_error *err) {
    *out = NULL;
    // One descriptor, checked and then read: a path swapped meanwhile (to a
    // FIFO, say) is never opened a second time.
    int fd = kp_open_regular(path, err);
    if (fd < 0) return err ? err->code : KP_EIO;
    return kp_types_open_fd(fd, path, dwarf, out, err);
}

int kp_types_open_fd(int fd, const char *path, int dwarf, kp_types **out, kp_error *err) {
    *out = NULL;
    struct kp_types *h = calloc(1, sizeof *h);
    if (!h) {
        close(fd);
        return kp_fail(err, KP_EIO, ENOMEM, "out of memory");
    }
    h->fd = -1;
    h->dwarf = dwarf;
    snprintf(h->path, sizeof h->path, "%s", path);
    int rc = kp_check_regular(fd, path, err);  // a FIFO would block the parsers' reads forever
    if (rc != 0) {
        close(fd);
        free(h);
        return rc;
    }
    if (!dwarf) {
        libbpf_set_print(quiet);
        // libbpf parses only by name: /proc/self/fd/N is this descriptor's
        // own file, never what the path names now.
        char self[64];
        snprintf(self, sizeof self, "/proc/self/fd/%d", fd);
        h->btf = btf__parse(self, NULL);
        int e = errno;
        close(fd);
        if (!h->btf) {
            free(h);
            char why[128];
            if (e == ENOENT) snprintf(why, sizeof why, "no .BTF section");
            else if (libbpf_strerror(e, why, sizeof why) != 0) snprintf(why, sizeof why, "%s", strerror(e));
            return kp_fail(err, KP_EFORMAT, e, "%s is not BTF data (%s)", path, why);
        }
        *out = h;
        return KP_OK;
    }
    if (elf_version(EV_CURRENT) == EV_NONE) {
        close(fd);
        free(h);
        return kp_fail(err, KP_EFORMAT, 0, "libelf is too old: %s", elf_errmsg(-1));
    }
    h->fd = fd;
    h->elf = elf_begin(fd, ELF_C_READ, NULL);
    if (!h->elf || elf_kind(h->elf) != ELF_K_ELF) {
        kp_types_close(h);
        return kp_fail(err, KP_ENOTELF, 0, "%s is not an ELF file", path);
    }
    h->dbg = dwarf_begin_elf(h->elf, DWARF_C_READ, NULL);
    if (!h->dbg) {
        kp_types_close(h);
        return kp_fail(err, KP_ENODEBUG, 0, "%s has no DWARF debug info (%s)", path, dwarf_errmsg(-1));
    }
    *out = h;
    return KP_OK;
}

void kp_types_close(kp_types *h) {
    if (!h) return;
    if (h->btf) btf__free(h->btf);
    if (h->dbg) dwarf_end(h->dbg);
    if (h->elf) elf_end(h->elf);
    if (h->fd >= 0) close(h->fd);
    free(h);
}

int kp_types_struct_size(kp_types *h, const char *type, uint64_t *size, kp_error *err) {
    *size = 0;
    if (!h->dwarf) {
        __u32 id;
        const struct btf_type *t;
        int rc = btf_struct(h, type, &id, &t, err);
        if (rc) return rc;
        *size = t->size;
        return KP_OK;
    }
    Dwarf_Die st;
    int rc = dw_struct(h, type, &st, err);
    if (rc) return rc;
    *size = dw_size_of(&st);
    return KP_OK;
}

int kp_types_member(kp_types *h, const char *type, const char *path, kp_member *out, kp_error *err) {
    memset(out, 0, sizeof *out);
    return h->dwarf ? dw_member(h, type, path, out, err) : btf_member(h, type, path, out, err);
}
