/* build: sh tests/fuzz/build.sh fuzz_index
 *   (= clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -D_FILE_OFFSET_BITS=64 -Iio -Iengine -Impi
 *      $(mpicc -showme:compile) tests/fuzz/fuzz_index.c build-fuzz/liblsw-fuzz.a -lhdf5 -lmpi -lzstd -lcjson -lm)
 * run:   build-fuzz/fuzz_index -max_len=16384 -timeout=10 CORPUS_DIR tests/fuzz/seeds/index
 *
 * Input: the text of model.safetensors.index.json.  At start-up a fixture
 * folder /dev/shm/fz-idx-PID/ is filled with the five real shards of
 * tests/data/llama-bf16-sharded/base (FZ_SHARDS overrides the source folder),
 * two small shards a.safetensors / b.safetensors (b repeats a tensor of a),
 * a sub-folder, a symlink to /dev/zero and a FIFO; each input is written as
 * the index there and opened with lsw_ckpt_open.  An accepted checkpoint is
 * checked: names sorted and unique, every tensor inside its file. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fz_util.h"
#include "lsw_checkpoint.h"
#include "lsw_error.h"

static char dir[64], idx[128];

static void put(const char *name, const void *b, size_t n)
{
    char p[256];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "wb");
    if (!f || (n && fwrite(b, 1, n, f) != n))
        abort();
    fclose(f);
}

static void st(const char *name, const char *hdr, size_t data)
{
    size_t hl = strlen(hdr);
    unsigned char *b = calloc(1, 8 + hl + data);
    for (int i = 0; i < 8; i++)
        b[i] = (unsigned char)(hl >> (8 * i));
    memcpy(b + 8, hdr, hl);
    put(name, b, 8 + hl + data);
    free(b);
}

static void setup(void)
{
    snprintf(dir, sizeof dir, "/dev/shm/fz-idx-%d", (int)getpid());
    snprintf(idx, sizeof idx, "%s/model.safetensors.index.json", dir);
    mkdir(dir, 0755);
    const char *src = getenv("FZ_SHARDS") ? getenv("FZ_SHARDS") : "tests/data/llama-bf16-sharded/base";
    DIR *d = opendir(src);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (l < 12 || strcmp(e->d_name + l - 12, ".safetensors"))
            continue;
        char p[512];
        snprintf(p, sizeof p, "%s/%s", src, e->d_name);
        FILE *f = fopen(p, "rb");
        if (!f)
            continue;
        fseek(f, 0, SEEK_END);
        long n = ftell(f);
        fseek(f, 0, SEEK_SET);
        char *b = malloc((size_t)n);
        if (fread(b, 1, (size_t)n, f) != (size_t)n)
            abort();
        fclose(f);
        put(e->d_name, b, (size_t)n);
        free(b);
    }
    if (d)
        closedir(d);
    st("a.safetensors", "{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                        "\"model.layers.7.y\":{\"dtype\":\"BF16\",\"shape\":[],\"data_offsets\":[8,10]}}", 10);
    st("b.safetensors", "{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                        "\"z\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[4,4]}}", 4);
    char p[256];
    snprintf(p, sizeof p, "%s/sub", dir);
    mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/zero.safetensors", dir);
    if (symlink("/dev/zero", p) != 0) { /* exists already */ }
    snprintf(p, sizeof p, "%s/fifo.safetensors", dir);
    mkfifo(p, 0644);
}

static void check(int c, const char *what)
{
    if (!c) {
        fprintf(stderr, "INVARIANT BROKEN: %s\n", what);
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!dir[0])
        setup();
    fz_write_file(idx, data, size);
    lsw_err_clear();
    lsw_ckpt *c = NULL;
    int rc = lsw_ckpt_open(idx, &c);
    if (rc) {
        check(!c, "handle on failure");
        check(lsw_err_exit_code(rc) == 2 || rc == LSW_E_NOMEM, "exit code of a bad index is not 2");
        return 0;
    }
    size_t n = lsw_ckpt_count(c);
    for (size_t i = 0; i < n; i++) {
        const lsw_tensor_desc *t = lsw_ckpt_at(c, i);
        check(t->file < lsw_ckpt_file_count(c), "file index");
        if (i)
            check(strcmp(lsw_ckpt_at(c, i - 1)->name, t->name) < 0, "names sorted/unique");
        check(lsw_ckpt_find(c, t->name) == t, "find");
        struct stat sb;
        check(stat(lsw_ckpt_file_path(c, t->file), &sb) == 0 && t->offset + t->nbytes <= (uint64_t)sb.st_size,
              "tensor outside its file");
        check(t->layer == lsw_layer_of(t->name), "layer");
    }
    lsw_ckpt_close(c);
    return 0;
}
