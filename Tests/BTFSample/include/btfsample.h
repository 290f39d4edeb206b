// Test-only: a sample of struct members from a BTF file, by libbpf's full
// parse, as the truth the streaming BTF reader is checked against.
#ifndef BTFSAMPLE_H
#define BTFSAMPLE_H
#include <stddef.h>

// Every `stride`-th struct (first of its name) with a named, byte-aligned
// direct member, as lines "struct member offset size\n" (its last such
// member). Returns a malloc'ed string, or NULL if libbpf cannot parse it.
char *bs_sample(const char *path, unsigned stride);
#endif
