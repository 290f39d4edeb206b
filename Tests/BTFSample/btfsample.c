#include "btfsample.h"

#include <bpf/btf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *bs_sample(const char *path, unsigned stride) {
    struct btf *btf = btf__parse(path, NULL);
    if (!btf) return NULL;
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    unsigned seen = 0;
    for (__u32 id = 1; id < btf__type_cnt(btf); id++) {
        const struct btf_type *t = btf__type_by_id(btf, id);
        if (!btf_is_struct(t) || !t->name_off) continue;
        const char *name = btf__name_by_offset(btf, t->name_off);
        if (btf__find_by_name_kind(btf, name, BTF_KIND_STRUCT) != (int)id) continue;
        int pick = -1;
        for (__u16 i = 0; i < btf_vlen(t); i++) {
            const struct btf_member *m = btf_members(t) + i;
            if (m->name_off && btf_member_bit_offset(t, i) % 8 == 0 && btf_member_bitfield_size(t, i) == 0) pick = i;
        }
        if (pick < 0 || seen++ % stride) continue;
        fprintf(f, "%s %s %u %u\n", name, btf__name_by_offset(btf, btf_members(t)[pick].name_off),
                btf_member_bit_offset(t, pick) / 8, t->size);
    }
    fclose(f);
    btf__free(btf);
    return out;
}
