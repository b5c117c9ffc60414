#include "lsw_layout.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lsw_commit.h"
#include "lsw_error.h"
#include "lsw_jsonw.h"
#include "lsw_safetensors.h"

int lsw_natural_cmp(const char *a, const char *b)
{
    while (*a && *b) {
        if (*a >= '0' && *a <= '9' && *b >= '0' && *b <= '9') {
            const char *ea = a, *eb = b;
            while (*a == '0' && a[1] >= '0' && a[1] <= '9')
                a++;
            while (*b == '0' && b[1] >= '0' && b[1] <= '9')
                b++;
            ea = a;
            eb = b;
            while (*ea >= '0' && *ea <= '9')
                ea++;
            while (*eb >= '0' && *eb <= '9')
                eb++;
            if (ea - a != eb - b)
                return (ea - a) < (eb - b) ? -1 : 1;
            int c = strncmp(a, b, (size_t)(ea - a));
            if (c)
                return c;
            a = ea;
            b = eb;
            continue;
        }
        if (*a != *b)
            return (unsigned char)*a < (unsigned char)*b ? -1 : 1;
        a++;
        b++;
    }
    if (*a || *b)
        return *a ? 1 : -1;
    return 0;
}

int lsw_layout_build(lsw_layout_item *items, size_t n, uint64_t shard_size, int by_layer,
                     lsw_layout_shard **shards_out, size_t *nshards_out)
{
    size_t ns = 0;
    uint64_t cur = 0;
    for (size_t i = 0; i < n; i++) {
        lsw_layout_item *t = &items[i];
        int newshard;
        if (i == 0)
            newshard = 1;
        else if (by_layer)
            newshard = t->layer != items[i - 1].layer;
        else /* would this tensor take a non-empty shard past shard_size? (overflow-free) */
            newshard = cur > 0 && t->nbytes > shard_size - (cur < shard_size ? cur : shard_size);
        if (newshard) {
            ns++;
            cur = 0;
        }
        t->shard = (unsigned)(ns - 1);
        cur += t->nbytes;
    }
    lsw_layout_shard *shards = calloc(ns ? ns : 1, sizeof *shards);
    lsw_st_entry *e = calloc(n ? n : 1, sizeof *e);
    if (!shards || !e) {
        free(shards);
        free(e);
        return lsw_err_set(LSW_E_NOMEM, "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        lsw_layout_shard *s = &shards[items[i].shard];
        if (s->count == 0)
            s->first = i;
        s->count++;
    }
    int rc = 0;
    for (size_t k = 0; k < ns && !rc; k++) {
        lsw_layout_shard *s = &shards[k];
        if (ns == 1)
            snprintf(s->name, sizeof s->name, "model.safetensors");
        else
            snprintf(s->name, sizeof s->name, "model-%05zu-of-%05zu.safetensors", k + 1, ns);
        for (size_t j = 0; j < s->count; j++) {
            const lsw_layout_item *t = &items[s->first + j];
            e[j] = (lsw_st_entry){t->name, t->dtype, t->ndim, t->shape, t->nbytes};
        }
        rc = lsw_st_build_header(e, s->count, &s->header, &s->data_start);
        uint64_t off = s->data_start;
        for (size_t j = 0; j < s->count && !rc; j++) {
            items[s->first + j].offset = off;
            off += items[s->first + j].nbytes;
        }
        s->size = off;
    }
    free(e);
    if (rc) {
        lsw_layout_free_shards(shards, ns);
        return rc;
    }
    *shards_out = shards;
    *nshards_out = ns;
    return 0;
}

void lsw_layout_free_shards(lsw_layout_shard *shards, size_t nshards)
{
    if (!shards)
        return;
    for (size_t k = 0; k < nshards; k++)
        free(shards[k].header);
    free(shards);
}

int lsw_layout_index_json(const lsw_layout_item *items, size_t n, const lsw_layout_shard *shards, char **text,
                          size_t *len)
{
    uint64_t params = 0, bytes = 0;
    for (size_t i = 0; i < n; i++) {
        params += items[i].numel;
        bytes += items[i].nbytes;
    }
    lsw_jw *w = lsw_jw_create();
    lsw_jw_node *meta = lsw_jw_obj(w, lsw_jw_root(w), "metadata");
    lsw_jw_u64(w, meta, "total_parameters", params);
    lsw_jw_u64(w, meta, "total_size", bytes);
    lsw_jw_node *map = lsw_jw_obj(w, lsw_jw_root(w), "weight_map");
    for (size_t i = 0; i < n; i++)
        lsw_jw_str(w, map, items[i].name, shards[items[i].shard].name);
    int rc = lsw_jw_print(w, text, len);
    lsw_jw_free(w);
    return rc;
}

int lsw_layout_put_index(const lsw_layout_item *items, size_t n, const lsw_layout_shard *shards, struct lsw_outdir *od)
{
    char *text = NULL;
    size_t len = 0;
    int rc = lsw_layout_index_json(items, n, shards, &text, &len);
    if (!rc)
        rc = lsw_outdir_put(od, LSW_INDEX_NAME, text, len);
    free(text);
    return rc;
}
