// libelf: the PT_LOAD map of an ELF core file, and GNU build-ids.
#include "error.h"

#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int ensure_libelf(kp_error *err) {
    if (elf_version(EV_CURRENT) == EV_NONE)
        return kp_fail(err, KP_EFORMAT, 0, "libelf is too old: %s", elf_errmsg(-1));
    return KP_OK;
}

int kp_core_segments(int fd, kp_segment **segments, size_t *count, kp_error *err) {
    *segments = NULL;
    *count = 0;
    int rc = ensure_libelf(err);
    if (rc) return rc;
    // ELF_C_READ reads the headers lazily with pread: /proc/kcore claims a
    // size of 128 TiB and must never be read or mapped whole.
    Elf *elf = elf_begin(fd, ELF_C_READ, NULL);
    if (!elf) return kp_fail(err, KP_ENOTELF, 0, "cannot read it as ELF: %s", elf_errmsg(-1));
    if (elf_kind(elf) != ELF_K_ELF) {
        elf_end(elf);
        return kp_fail(err, KP_ENOTELF, 0, "not an ELF file");
    }
    GElf_Ehdr ehdr;
    if (!gelf_getehdr(elf, &ehdr)) {
        elf_end(elf);
        return kp_fail(err, KP_ENOTELF, 0, "no ELF header: %s", elf_errmsg(-1));
    }
    if (ehdr.e_type != ET_CORE) {
        elf_end(elf);
        return kp_fail(err, KP_ENOTCORE, 0, "an ELF file, but not a core file (e_type %u)",
                       (unsigned)ehdr.e_type);
    }
    size_t phnum = 0;
    if (elf_getphdrnum(elf, &phnum) != 0) {
        elf_end(elf);
        return kp_fail(err, KP_EFORMAT, 0, "unreadable program headers: %s", elf_errmsg(-1));
    }
    kp_segment *out = calloc(phnum ? phnum : 1, sizeof *out);
    if (!out) {
        elf_end(elf);
        return kp_fail(err, KP_EIO, ENOMEM, "out of memory");
    }
    size_t n = 0;
    for (size_t i = 0; i < phnum; i++) {
        GElf_Phdr ph;
        if (!gelf_getphdr(elf, (int)i, &ph)) continue;
        if (ph.p_type != PT_LOAD || ph.p_memsz == 0) continue;
        // File ranges must be pread-able (off_t) and address ranges must not
        // wrap: anything else is a corrupt header (found by fuzzing).
        if (ph.p_offset > INT64_MAX || ph.p_filesz > INT64_MAX - ph.p_offset ||
            ph.p_memsz - 1 > UINT64_MAX - ph.p_vaddr) {
            free(out);
            elf_end(elf);
            return kp_fail(err, KP_EFORMAT, 0, "program header %zu is corrupt (offset 0x%llx, size 0x%llx at 0x%llx)",
                           i, (unsigned long long)ph.p_offset, (unsigned long long)ph.p_filesz,
                           (unsigned long long)ph.p_vaddr);
        }
        out[n].vaddr = ph.p_vaddr;
        out[n].memsz = ph.p_memsz;
        out[n].filesz = ph.p_filesz;
        out[n].offset = ph.p_offset;
        n++;
    }
    elf_end(elf);
    *segments = out;
    *count = n;
    return KP_OK;
}

// Looks for NT_GNU_BUILD_ID in one note data block.
static int find_build_id(Elf_Data *data, uint8_t *buf, size_t buflen, size_t *len) {
    size_t off = 0, name_off, desc_off;
    GElf_Nhdr nh;
    while ((off = gelf_getnote(data, off, &nh, &name_off, &desc_off)) > 0) {
        if (nh.n_type == NT_GNU_BUILD_ID && nh.n_namesz == 4 &&
            memcmp((char *)data->d_buf + name_off, "GNU", 4) == 0 && nh.n_descsz > 0) {
            size_t n = nh.n_descsz < buflen ? nh.n_descsz : buflen;
            memcpy(buf, (char *)data->d_buf + desc_off, n);
            *len = n;
            return 1;
        }
    }
    return 0;
}

int kp_open_checked(const char *path, kp_error *err) {
    return kp_open_regular(path, err);
}

int kp_elf_build_id(const char *path, uint8_t *buf, size_t buflen, size_t *len, kp_error *err) {
    *len = 0;
    int rc = ensure_libelf(err);
    if (rc) return rc;
    int fd = kp_open_regular(path, err);
    if (fd < 0) return err ? err->code : KP_EIO;
    rc = kp_elf_build_id_fd(fd, path, buf, buflen, len, err);
    close(fd);
    return rc;
}

int kp_elf_build_id_fd(int fd, const char *path, uint8_t *buf, size_t buflen, size_t *len, kp_error *err) {
    *len = 0;
    int rc = ensure_libelf(err);
    if (rc) return rc;
    Elf *elf = elf_begin(fd, ELF_C_READ, NULL);
    if (!elf || elf_kind(elf) != ELF_K_ELF) {
        if (elf) elf_end(elf);
        return kp_fail(err, KP_ENOTELF, 0, "%s is not an ELF file", path);
    }
    int found = 0;
    Elf_Scn *scn = NULL;
    while (!found && (scn = elf_nextscn(elf, scn)) != NULL) {
        GElf_Shdr sh;
        if (!gelf_getshdr(scn, &sh) || sh.sh_type != SHT_NOTE) continue;
        Elf_Data *data = elf_getdata(scn, NULL);
        if (data) found = find_build_id(data, buf, buflen, len);
    }
    size_t phnum = 0;
    if (!found && elf_getphdrnum(elf, &phnum) == 0) {
        for (size_t i = 0; !found && i < phnum; i++) {
            GElf_Phdr ph;
            if (!gelf_getphdr(elf, (int)i, &ph) || ph.p_type != PT_NOTE) continue;
            Elf_Data *data = elf_getdata_rawchunk(elf, (int64_t)ph.p_offset, ph.p_filesz, ELF_T_NHDR);
            if (data) found = find_build_id(data, buf, buflen, len);
        }
    }
    elf_end(elf);
    if (!found) return kp_fail(err, KP_ENOBUILDID, 0, "%s has no GNU build-id note", path);
    return KP_OK;
}
