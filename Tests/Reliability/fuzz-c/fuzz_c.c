// libFuzzer targets for the C shim's file readers (clang -fsanitize=fuzzer).
// Each input is written to a memfd and handed over by its /proc/self/fd path,
// as kpeer hands over a --kcore, --btf or --dwarf file.
//
//   FUZZ_ELFCORE: kp_core_segments (the kcore segment map) and kp_elf_build_id
//   FUZZ_BTF:     kp_btf_member_offset and kp_btf_stream_member_offset (unix_sock.peer from BTF)
//   FUZZ_DWARF:   kp_dwarf_member_offset (unix_sock.peer from DWARF)
#define _GNU_SOURCE
#include "ckpeer.h"

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

static int as_file(const uint8_t *data, size_t size, char *path, size_t len) {
    int fd = memfd_create("fuzz", MFD_CLOEXEC);
    if (fd < 0) abort();
    if (size && write(fd, data, size) != (ssize_t)size) abort();
    snprintf(path, len, "/proc/self/fd/%d", fd);
    return fd;
}

#if defined(FUZZ_BTF)
static int twice(const uint8_t *data, size_t size, const char *needle, size_t len) {
    const uint8_t *first = memmem(data, size, needle, len);
    return first && memmem(first + 1, size - (size_t)(first + 1 - data), needle, len) != NULL;
}
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[64];
    int fd = as_file(data, size, path, sizeof path);
    kp_error err;
    memset(&err, 0, sizeof err);
#if defined(FUZZ_ELFCORE)
    kp_segment *segs = NULL;
    size_t n = 0;
    int rd = open(path, O_RDONLY | O_CLOEXEC);
    if (kp_core_segments(rd, &segs, &n, &err) == KP_OK) {
        // What KernelMemory does with them: ends and file ranges.
        volatile uint64_t sum = 0;
        for (size_t i = 0; i < n; i++) sum += segs[i].vaddr + segs[i].memsz + segs[i].offset + segs[i].filesz;
        free(segs);
    }
    close(rd);
    uint8_t id[64];
    size_t idlen = 0;
    if (kp_elf_build_id(path, id, sizeof id, &idlen, &err) == KP_OK && idlen > sizeof id) abort();
#elif defined(FUZZ_BTF)
    // Both readers: libbpf's full parse, and the stream kpeer uses on the
    // kernel's own BTF. Where both answer, they must agree.
    uint64_t off = 0, sz = 0, soff = 0, ssz = 0, aoff = 0, saoff = 0;
    int full = kp_btf_member_offsets(path, "unix_sock", "peer", "addr", &off, &aoff, &sz, &err);
    kp_error serr;
    memset(&serr, 0, sizeof serr);
    int rd = open(path, O_RDONLY | O_CLOEXEC);
    int streamed = kp_btf_stream_member_offsets(rd, "unix_sock", "peer", "addr", &soff, &saoff, &ssz, &serr);
    close(rd);
    // Known, and documented in btf.c: the stream matches names by string
    // offset, so BTF with a name stored twice, or pointed into as the tail
    // of a longer string (never the kernel's, whose strings are stored
    // once each), may send it to another struct or member.
    // addr: the stream sees direct members only, libbpf anonymous ones too.
    if (full == KP_OK && streamed == KP_OK && (off != soff || sz != ssz || (saoff != UINT64_MAX && saoff != aoff)) &&
        !twice(data, size, "unix_sock\0", 10) && !twice(data, size, "peer\0", 5) &&
        !twice(data, size, "addr\0", 5))
        abort();
    if (memchr(serr.message, 0, sizeof serr.message) == NULL || strchr(serr.message, '\n')) abort();
#elif defined(FUZZ_DWARF)
    uint64_t off = 0, sz = 0;
    kp_dwarf_member_offset(path, "unix_sock", "peer", "af_unix.c", &off, &sz, &err);
#else
#error define FUZZ_ELFCORE, FUZZ_BTF or FUZZ_DWARF
#endif
    // Every failure leaves a one-line, terminated message.
    if (memchr(err.message, 0, sizeof err.message) == NULL || strchr(err.message, '\n')) abort();
    close(fd);
    return 0;
}
