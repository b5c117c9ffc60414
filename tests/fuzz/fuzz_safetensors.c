/* build: sh tests/fuzz/build.sh fuzz_safetensors
 *   (= clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -D_FILE_OFFSET_BITS=64 -Iio -Iengine -Impi
 *      $(mpicc -showme:compile) tests/fuzz/fuzz_safetensors.c build-fuzz/liblsw-fuzz.a -lhdf5 -lmpi -lzstd -lcjson -lm)
 * run:   build-fuzz/fuzz_safetensors -max_len=65536 -timeout=10 CORPUS_DIR tests/fuzz/seeds/safetensors
 *
 * Input: a whole safetensors file.  lsw_st_open only takes a path, so the
 * bytes go to a file in /dev/shm first.  After a successful open the
 * accepted table is checked against docs/input-validation.md (tiling, bounds, sorted unique
 * names, sizes) so that a validator that accepts a bad file aborts too. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fz_util.h"
#include "lsw_checkpoint.h"
#include "lsw_error.h"
#include "lsw_safetensors.h"

static char path[64];

static void check(int cond, const char *what)
{
    if (!cond) {
        fprintf(stderr, "INVARIANT BROKEN: %s\n", what);
        abort();
    }
}

static int cmp_u64p(const void *a, const void *b)
{
    const lsw_st_tensor *x = *(const lsw_st_tensor *const *)a, *y = *(const lsw_st_tensor *const *)b;
    if (x->offset != y->offset)
        return x->offset < y->offset ? -1 : 1;
    return (x->nbytes > y->nbytes) - (x->nbytes < y->nbytes);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!path[0])
        snprintf(path, sizeof path, "/dev/shm/fz-st-%d.safetensors", (int)getpid());
    fz_write_file(path, data, size);

    lsw_err_clear();
    lsw_st_file *st = NULL;
    int rc = lsw_st_open(path, &st);
    if (rc) {
        check(st == NULL, "failed open returned a handle");
        check(rc == LSW_E_INPUT || rc == LSW_E_NOMEM || rc == LSW_E_NOTFOUND || rc == LSW_E_READ,
              "unexpected error code");
        check(lsw_err_detail()[0] != 0, "error without a message");
        return 0;
    }
    /* accepted: docs/input-validation.md must hold */
    check(size >= 8, "accepted a file shorter than 8 bytes");
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--)
        n = n << 8 | data[i];
    check(n <= 100000000ULL && n <= size - 8, "header length");
    size_t hl;
    const char *h = lsw_st_header(st, &hl);
    check(hl == n && memcmp(h, data + 8, hl) == 0, "header bytes");
    check(!(hl >= 3 && (unsigned char)h[0] == 0xEF && (unsigned char)h[1] == 0xBB && (unsigned char)h[2] == 0xBF),
          "BOM accepted");
    size_t cnt = lsw_st_count(st);
    uint64_t start = 8 + n, total = 0;
    const lsw_st_tensor **by = malloc((cnt ? cnt : 1) * sizeof *by);
    for (size_t i = 0; i < cnt; i++) {
        const lsw_st_tensor *t = lsw_st_at(st, i);
        check(t && t->name && t->name[0], "empty name");
        check(strcmp(t->name, "__metadata__") != 0, "__metadata__ as tensor");
        if (i)
            check(strcmp(lsw_st_at(st, i - 1)->name, t->name) < 0, "names not sorted/unique");
        check(lsw_st_find(st, t->name) == t, "find");
        check(lsw_dtype_size(t->dtype) > 0, "dtype");
        uint64_t ne = 1;
        for (size_t d = 0; d < t->ndim; d++)
            ne *= t->shape[d]; /* validated not to overflow (or contains 0) */
        check(ne == t->numel, "numel");
        check(t->nbytes == t->numel * lsw_dtype_size(t->dtype), "nbytes");
        check(t->offset >= start && t->offset <= size && t->nbytes <= size - t->offset, "tensor outside the file");
        total += t->nbytes;
        (void)lsw_layer_of(t->name);
        by[i] = t;
    }
    check(lsw_st_at(st, cnt) == NULL, "at past end");
    qsort(by, cnt, sizeof *by, cmp_u64p);
    uint64_t cur = start;
    for (size_t i = 0; i < cnt; i++) {
        check(by[i]->offset == cur, "hole or overlap");
        cur += by[i]->nbytes;
    }
    check(cur == size, "data area does not end at end of file");
    check(total == size - start, "total");
    free(by);
    lsw_st_close(st);
    return 0;
}
