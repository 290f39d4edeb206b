// libdw: a struct member's offset from DWARF debug info.
#include "error.h"

#include <dwarf.h>
#include <elfutils/libdw.h>
#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <string.h>
#include <unistd.h>

// Names from a malformed file may run off the end of their section: libdw
// hands out pointers into section data without checking that a NUL follows
// (found by fuzzing). A name is used only when it ends inside a .debug_*
// section of this file.
typedef struct { const char *start; size_t size; } str_range;
static _Thread_local str_range ranges[32];  // per call; thread-local for parallel tests
static _Thread_local size_t nranges;

static void collect_ranges(Elf *elf) {
    nranges = 0;
    size_t shstrndx;
    if (elf_getshdrstrndx(elf, &shstrndx) != 0) return;
    Elf_Scn *scn = NULL;
    while ((scn = elf_nextscn(elf, scn)) != NULL && nranges < sizeof ranges / sizeof *ranges) {
        GElf_Shdr sh;
        if (!gelf_getshdr(scn, &sh)) continue;
        const char *name = elf_strptr(elf, shstrndx, sh.sh_name);
        if (!name || strncmp(name, ".debug_", 7) != 0) continue;
        Elf_Data *d = elf_getdata(scn, NULL);  // decompressed by libdw, if it was
        if (d && d->d_buf && d->d_size) ranges[nranges++] = (str_range){d->d_buf, d->d_size};
    }
}

static const char *checked_name(const char *name) {
    if (!name) return NULL;
    for (size_t i = 0; i < nranges; i++) {
        const char *end = ranges[i].start + ranges[i].size;
        if (name >= ranges[i].start && name < end) return memchr(name, 0, (size_t)(end - name)) ? name : NULL;
    }
    return NULL;
}

static const char *die_name(Dwarf_Die *die) { return checked_name(dwarf_diename(die)); }

// Peels typedefs and qualifiers off a type DIE.
static Dwarf_Die *strip_type(Dwarf_Die *die, Dwarf_Die *mem) {
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

static int member_location(Dwarf_Die *member, uint64_t *off) {
    Dwarf_Attribute at;
    if (!dwarf_attr_integrate(member, DW_AT_data_member_location, &at)) {
        *off = 0;  // union members and some bit fields carry none: offset 0
        return 0;
    }
    Dwarf_Word w;
    if (dwarf_formudata(&at, &w) == 0) {
        *off = w;
        return 0;
    }
    // DWARF 2 style: a location expression DW_OP_plus_uconst N.
    Dwarf_Op *ops;
    size_t nops;
    if (dwarf_getlocation(&at, &ops, &nops) == 0 && nops == 1 && ops[0].atom == DW_OP_plus_uconst) {
        *off = ops[0].number;
        return 0;
    }
    return -1;
}

// Searches `member` among the members of struct/union DIE `st`, descending
// into anonymous structs and unions. Returns 1 when found.
static int find_member(Dwarf_Die *st, const char *member, uint64_t base, uint64_t *off, int depth) {
    if (depth > 8) return 0;
    Dwarf_Die child;
    if (dwarf_child(st, &child) != 0) return 0;
    do {
        if (dwarf_tag(&child) != DW_TAG_member) continue;
        uint64_t here;
        if (member_location(&child, &here) != 0) continue;
        const char *name = die_name(&child);
        if (name && strcmp(name, member) == 0) {
            *off = base + here;
            return 1;
        }
        if (!name) {
            Dwarf_Attribute at;
            Dwarf_Die tmem, *t;
            if (dwarf_attr_integrate(&child, DW_AT_type, &at) && dwarf_formref_die(&at, &tmem) &&
                (t = strip_type(&tmem, &tmem)) != NULL &&
                (dwarf_tag(t) == DW_TAG_structure_type || dwarf_tag(t) == DW_TAG_union_type) &&
                find_member(t, member, base + here, off, depth + 1))
                return 1;
        }
    } while (dwarf_siblingof(&child, &child) == 0);
    return 0;
}

// Looks for the complete definition of `struct type` among the top-level
// DIEs of one CU. 1 found, 0 no such struct, -1 struct found without member.
static int search_cu(Dwarf_Die *cudie, const char *type, const char *member, uint64_t *off,
                     uint64_t *size) {
    Dwarf_Die die;
    if (dwarf_child(cudie, &die) != 0) return 0;
    int seen_type = 0;
    do {
        if (dwarf_tag(&die) != DW_TAG_structure_type || dwarf_hasattr(&die, DW_AT_declaration))
            continue;
        const char *name = die_name(&die);
        if (!name || strcmp(name, type) != 0) continue;
        seen_type = 1;
        if (find_member(&die, member, 0, off, 0)) {
            int sz = dwarf_bytesize(&die);
            *size = sz > 0 ? (uint64_t)sz : 0;
            return 1;
        }
    } while (dwarf_siblingof(&die, &die) == 0);
    return seen_type ? -1 : 0;
}

int kp_dwarf_member_offset(const char *path, const char *type, const char *member,
                           const char *prefer_cu, uint64_t *offset, uint64_t *struct_size,
                           kp_error *err) {
    *offset = 0;
    *struct_size = 0;
    if (elf_version(EV_CURRENT) == EV_NONE)
        return kp_fail(err, KP_EFORMAT, 0, "libelf is too old: %s", elf_errmsg(-1));
    int fd = kp_open_regular(path, err);
    if (fd < 0) return err ? err->code : KP_EIO;
    int rc = kp_dwarf_member_offset_fd(fd, path, type, member, prefer_cu, offset, struct_size, err);
    close(fd);
    return rc;
}

int kp_dwarf_member_offset_fd(int fd, const char *path, const char *type, const char *member,
                              const char *prefer_cu, uint64_t *offset, uint64_t *struct_size,
                              kp_error *err) {
    *offset = 0;
    *struct_size = 0;
    if (elf_version(EV_CURRENT) == EV_NONE)
        return kp_fail(err, KP_EFORMAT, 0, "libelf is too old: %s", elf_errmsg(-1));
    Elf *elf = elf_begin(fd, ELF_C_READ, NULL);
    if (!elf || elf_kind(elf) != ELF_K_ELF) {
        if (elf) elf_end(elf);
        return kp_fail(err, KP_ENOTELF, 0, "%s is not an ELF file", path);
    }
    Dwarf *dbg = dwarf_begin_elf(elf, DWARF_C_READ, NULL);
    if (!dbg) {
        elf_end(elf);
        return kp_fail(err, KP_ENODEBUG, 0, "%s has no DWARF debug info (%s)", path, dwarf_errmsg(-1));
    }
    collect_ranges(elf);
    int found = 0, member_missing = 0;
    // Pass 0: the preferred CUs only; pass 1: all the others.
    for (int pass = (prefer_cu ? 0 : 1); pass < 2 && !found; pass++) {
        Dwarf_CU *cu = NULL;
        Dwarf_Die cudie;
        uint8_t unit_type;
        while (!found && dwarf_get_units(dbg, cu, &cu, NULL, &unit_type, &cudie, NULL) == 0) {
            if (unit_type != DW_UT_compile && unit_type != DW_UT_partial) continue;
            if (prefer_cu) {
                const char *name = die_name(&cudie);
                int preferred = name && strstr(name, prefer_cu) != NULL;
                if (preferred != (pass == 0)) continue;
            }
            int r = search_cu(&cudie, type, member, offset, struct_size);
            if (r == 1) found = 1;
            else if (r == -1) member_missing = 1;
        }
    }
    dwarf_end(dbg);
    elf_end(elf);
    if (found) return KP_OK;
    if (member_missing)
        return kp_fail(err, KP_ENOMEMBER, 0, "struct %s in %s has no member %s", type, path, member);
    return kp_fail(err, KP_ENOTYPE, 0, "%s defines no struct %s", path, type);
}
