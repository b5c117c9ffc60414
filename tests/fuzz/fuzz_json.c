/* build: sh tests/fuzz/build.sh fuzz_json
 *   (= clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -Iio -Iengine -Impi $(mpicc -showme:compile)
 *      tests/fuzz/fuzz_json.c build-fuzz/liblsw-fuzz.a -lhdf5 -lmpi -lzstd -lcjson -lm)
 * run:   build-fuzz/fuzz_json -max_len=4096 -timeout=10 -dict=tests/fuzz/json.dict CORPUS_DIR tests/fuzz/seeds/json
 *
 * Input: any JSON text.  Parses with lsw_json_parse, walks the whole tree
 * (keys, get by every key must find that member, numbers through u64/i64/f64,
 * spans inside the text), then runs lsw_config_json_set_dtype (the rewrite
 * of a checkpoint's untrusted config.json) and re-parses its output, which
 * must stay valid JSON with "torch_dtype"/"dtype" replaced. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lsw_error.h"
#include "lsw_json.h"
#include "lsw_modelfiles.h"

static void check(int c, const char *what)
{
    if (!c) {
        fprintf(stderr, "INVARIANT BROKEN: %s\n", what);
        abort();
    }
}

static size_t len_g;

static void walk(const lsw_json *v, int depth)
{
    check(depth <= LSW_JSON_MAX_DEPTH + 1, "depth");
    size_t off, len;
    lsw_json_span(v, &off, &len);
    check(off <= len_g && len <= len_g - off, "span outside the text");
    lsw_json_type t = lsw_json_type_of(v);
    if (t == LSW_JSON_NUMBER) {
        uint64_t u;
        int64_t i;
        double d;
        (void)lsw_json_u64(v, &u);
        (void)lsw_json_i64(v, &i);
        check(lsw_json_f64(v, &d) == 0, "f64 of a number");
    } else if (t == LSW_JSON_STRING) {
        size_t sl;
        const char *s = lsw_json_str(v, &sl);
        check(s && s[sl] == 0, "string not NUL-terminated");
        check(!!memchr(s, 0, sl) == !!lsw_json_str_has_nul(v), "has_nul flag");
    }
    size_t n = lsw_json_count(v);
    for (size_t i = 0; i < n; i++) {
        const lsw_json *c = lsw_json_at(v, i);
        check(c != NULL, "child");
        if (t == LSW_JSON_OBJECT) {
            size_t kl;
            const char *k = lsw_json_key(v, i, &kl);
            check(k && k[kl] == 0, "key");
            if (!lsw_json_key_has_nul(v, i))
                check(lsw_json_get(v, k) == c, "get(key) does not find the member");
        }
        walk(c, depth + 1);
    }
    check(lsw_json_at(v, n) == NULL, "at past the end");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char why[256];
    lsw_json_doc *doc = NULL;
    lsw_err_clear();
    len_g = size;
    if (lsw_json_parse((const char *)data, size, &doc, why, sizeof why) != 0) {
        check(doc == NULL && why[0], "failure without message");
        return 0;
    }
    walk(lsw_json_root(doc), 0);
    int is_obj = lsw_json_type_of(lsw_json_root(doc)) == LSW_JSON_OBJECT;
    lsw_json_free(doc);
    char *out = NULL;
    size_t outlen = 0;
    int rc = lsw_config_json_set_dtype((const char *)data, size, "bfloat16", "config.json", &out, &outlen);
    check((rc == 0) == is_obj, "set_dtype accepts exactly the objects");
    if (rc == 0) {
        lsw_json_doc *d2 = NULL;
        check(lsw_json_parse(out, outlen, &d2, why, sizeof why) == 0, "set_dtype produced invalid JSON");
        const lsw_json *r = lsw_json_root(d2);
        const char *keys[2] = {"dtype", "torch_dtype"};
        for (int k = 0; k < 2; k++) {
            const lsw_json *v = lsw_json_get(r, keys[k]);
            if (v)
                check(lsw_json_str(v, NULL) && !strcmp(lsw_json_str(v, NULL), "bfloat16"), "dtype not replaced");
        }
        lsw_json_free(d2);
        free(out);
    }
    return 0;
}
