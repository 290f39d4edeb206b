// Test support: writes synthetic ELF core files (ET_CORE with PT_LOAD
// segments) with libelf, the shape /proc/kcore has.
#ifndef COREWRITER_H
#define COREWRITER_H
#include <stddef.h>
#include <stdint.h>

typedef struct cw_segment {
    uint64_t vaddr;
    const void *data;
    uint64_t filesz;  // bytes of data in the file
    uint64_t memsz;   // >= filesz; the rest reads as zeroes
} cw_segment;

// Returns 0, or -1 with a reason in err.
int cw_write_core(const char *path, const cw_segment *segments, size_t count, char *err, size_t errlen);
#endif
