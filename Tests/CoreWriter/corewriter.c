#include "corewriter.h"

#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static int fail(char *err, size_t errlen, const char *what) {
    snprintf(err, errlen, "%s: %s", what, elf_errmsg(-1));
    return -1;
}

int cw_write_core(const char *path, const cw_segment *segs, size_t n, char *err, size_t errlen) {
    if (elf_version(EV_CURRENT) == EV_NONE) return fail(err, errlen, "elf_version");
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        snprintf(err, errlen, "open %s failed", path);
        return -1;
    }
    Elf *elf = elf_begin(fd, ELF_C_WRITE, NULL);
    if (!elf) { close(fd); return fail(err, errlen, "elf_begin"); }
    Elf64_Ehdr *eh = elf64_newehdr(elf);
    if (!eh) goto bad;
    eh->e_ident[EI_DATA] = ELFDATA2LSB;
    eh->e_type = ET_CORE;
    eh->e_machine = EM_X86_64;
    eh->e_version = EV_CURRENT;
    Elf64_Phdr *ph = elf64_newphdr(elf, n);
    eh->e_phoff = sizeof(Elf64_Ehdr);  // ELF_F_LAYOUT: every offset is ours to set
    if (!ph && n) goto bad;
    // We lay the file out ourselves: segment data page-aligned after the
    // headers, section headers last (the data lives in nameless sections).
    uint64_t off = (sizeof(Elf64_Ehdr) + n * sizeof(Elf64_Phdr) + 4095) & ~4095ULL;
    for (size_t i = 0; i < n; i++) {
        Elf_Scn *scn = elf_newscn(elf);
        Elf_Data *d = scn ? elf_newdata(scn) : NULL;
        Elf64_Shdr *sh = scn ? elf64_getshdr(scn) : NULL;
        if (!d || !sh) goto bad;
        d->d_buf = (void *)segs[i].data;
        d->d_size = segs[i].filesz;
        d->d_type = ELF_T_BYTE;
        d->d_align = 1;
        d->d_off = 0;
        sh->sh_type = SHT_PROGBITS;
        sh->sh_offset = off;
        sh->sh_size = segs[i].filesz;
        sh->sh_addralign = 1;
        ph[i].p_type = PT_LOAD;
        ph[i].p_flags = PF_R | PF_W | PF_X;
        ph[i].p_offset = off;
        ph[i].p_vaddr = segs[i].vaddr;
        ph[i].p_paddr = 0;
        ph[i].p_filesz = segs[i].filesz;
        ph[i].p_memsz = segs[i].memsz;
        ph[i].p_align = 4096;
        off = (off + segs[i].filesz + 4095) & ~4095ULL;
    }
    eh->e_shoff = off;
    elf_flagelf(elf, ELF_C_SET, ELF_F_LAYOUT);
    if (elf_update(elf, ELF_C_WRITE) < 0) goto bad;
    elf_end(elf);
    close(fd);
    return 0;
bad:
    fail(err, errlen, "libelf");
    elf_end(elf);
    close(fd);
    return -1;
}
