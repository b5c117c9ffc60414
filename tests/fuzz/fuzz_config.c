/* build: sh tests/fuzz/build.sh fuzz_config
 *   (= clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -D_FILE_OFFSET_BITS=64 -Iio -Iengine -Impi
 *      $(mpicc -showme:compile) tests/fuzz/fuzz_config.c build-fuzz/liblsw-fuzz.a -lhdf5 -lmpi -lzstd -lcjson -lm)
 * run:   build-fuzz/fuzz_config -max_len=8192 -timeout=10 -dict=tests/fuzz/config.dict CORPUS_DIR tests/fuzz/seeds/config
 *
 * Input: merge config JSON text (docs/config.md), parsed with lsw_config_parse (no
 * file, no checkpoint is touched).  An accepted config is checked for the
 * invariants the planner relies on: model indices in range, rule model
 * counts, explicit weights finite, task-vector k <= 63, zstd level 1..22. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lsw_config.h"
#include "lsw_error.h"

static void check(int c, const char *what)
{
    if (!c) {
        fprintf(stderr, "INVARIANT BROKEN: %s\n", what);
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lsw_err_clear();
    lsw_config *c = NULL;
    int rc = lsw_config_parse((const char *)data, size, "fuzz.json", "/fz-nonexistent", &c);
    if (rc) {
        check(!c, "handle on failure");
        check(rc == LSW_E_CONFIG || rc == LSW_E_NOMEM, "error code of a bad config");
        return 0;
    }
    check(c->nmodels > 0, "no models");
    check(c->base >= -1 && c->base < (int)c->nmodels, "base index");
    check(c->first_model >= 0 && c->first_model < (int)c->nmodels, "first_model index");
    for (size_t i = 0; i < c->nmodels; i++)
        check(c->model_names[i] && c->model_names[i][0] && c->model_paths[i], "model name/path");
    if (c->method != LSW_METHOD_LAYER_SWAP)
        check(c->nrules > 0, "no rules");
    for (size_t i = 0; i < c->nrules; i++) {
        const lsw_rule *r = &c->rules[i];
        check(r->nmodels > 0 && r->models, "rule without models");
        for (size_t j = 0; j < r->nmodels; j++)
            check(r->models[j] >= 0 && r->models[j] < (int)c->nmodels, "rule model index");
        if (r->weighting == LSW_W_EXPLICIT)
            for (size_t j = 0; j < r->nmodels; j++)
                check(isfinite(r->weights[j]), "weight not finite");
        if (r->sel == LSW_SEL_RANGE)
            check(r->lo >= 0 && r->lo < r->hi, "layer range");
        if (r->action == LSW_ACT_TASKVEC)
            check(c->tv.k >= 1 && c->tv.k <= 63 && r->nmodels == c->tv.k + 1, "taskvec k");
    }
    if (c->method == LSW_METHOD_LAYER_SWAP)
        check(c->ls.task != c->ls.lang && c->ls.task >= 0 && c->ls.lang >= 0 && c->ls.task < (int)c->nmodels &&
                  c->ls.lang < (int)c->nmodels && c->ls.bottom >= 0 && c->ls.top >= 0,
              "layer_swap fields");
    check(c->out.zstd_level >= 1 && c->out.zstd_level <= 22, "zstd level");
    check(c->out.shard_size > 0, "shard size");
    lsw_config_free(c);
    return 0;
}
