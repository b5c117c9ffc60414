#include "lsw_hfconfig.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lsw_array.h"
#include "lsw_error.h"
#include "lsw_json.h"
#include "lsw_strbuf.h"


typedef struct edit { size_t off, len; const lsw_json *arr; int set_layers; } edit;
typedef struct edits { edit *v; size_t n, cap; } edits;

static int push(edits *e, edit x)
{
    if (lsw_array_reserve(&e->v, &e->cap, e->n + 1, sizeof *e->v))
        return -1;
    e->v[e->n++] = x;
    return 0;
}

/* Objects with "num_hidden_layers": that value and the lists of that length. */
static int collect(const lsw_json *obj, edits *e, int depth)
{
    if (depth > 16)
        return 0;
    const lsw_json *nl = lsw_json_get(obj, "num_hidden_layers");
    uint64_t L = 0;
    if (nl && lsw_json_u64(nl, &L) == 0) {
        edit x = {0, 0, NULL, 1};
        lsw_json_span(nl, &x.off, &x.len);
        if (push(e, x))
            return -1;
    }
    for (size_t i = 0; i < lsw_json_count(obj); i++) {
        const lsw_json *v = lsw_json_at(obj, i);
        if (nl && L > 0 && lsw_json_type_of(v) == LSW_JSON_ARRAY && lsw_json_count(v) == L) {
            edit x = {0, 0, v, 0};
            lsw_json_span(v, &x.off, &x.len);
            if (push(e, x))
                return -1;
        } else if (lsw_json_type_of(v) == LSW_JSON_OBJECT && collect(v, e, depth + 1)) {
            return -1;
        }
    }
    return 0;
}

static int cmp_edit(const void *a, const void *b)
{
    const edit *x = a, *y = b;
    return x->off < y->off ? -1 : x->off > y->off;
}

int lsw_hfconfig_rewrite(const char *text, size_t len, const int *map, int n_out, const char *path, char **out,
                         size_t *outlen)
{
    char why[256];
    lsw_json_doc *doc;
    if (lsw_json_parse(text, len, &doc, why, sizeof why) != 0)
        return lsw_err_set(LSW_E_INPUT, "%s: not valid JSON: %s", path, why);
    edits e = {0};
    int rc = lsw_json_type_of(lsw_json_root(doc)) != LSW_JSON_OBJECT ? lsw_err_set(LSW_E_INPUT, "%s: not a JSON object", path)
           : collect(lsw_json_root(doc), &e, 0) ? lsw_err_set(LSW_E_NOMEM, "out of memory") : 0;
    if (e.n > 1)
        qsort(e.v, e.n, sizeof *e.v, cmp_edit);
    lsw_strbuf b = {0};
    size_t at = 0;
    for (size_t i = 0; i < e.n && !rc; i++) {
        lsw_sb_put(&b, text + at, e.v[i].off - at);
        if (e.v[i].set_layers) {
            lsw_sb_printf(&b, "%d", n_out);
        } else {
            lsw_sb_put(&b, "[", 1);
            for (int k = 0; k < n_out && !rc; k++) {
                size_t eo, el;
                if ((size_t)map[k] >= lsw_json_count(e.v[i].arr)) {
                    rc = lsw_err_set(LSW_E_INPUT, "%s: a per-layer list has %zu entries but the merge reads layer %d",
                                     path, lsw_json_count(e.v[i].arr), map[k]);
                    break;
                }
                lsw_json_span(lsw_json_at(e.v[i].arr, (size_t)map[k]), &eo, &el);
                if (k)
                    lsw_sb_put(&b, ", ", 2);
                lsw_sb_put(&b, text + eo, el);
            }
            lsw_sb_put(&b, "]", 1);
        }
        at = e.v[i].off + e.v[i].len;
    }
    lsw_sb_put(&b, text + at, len - at);
    free(e.v);
    lsw_json_free(doc);
    if (!rc && lsw_sb_failed(&b))
        rc = lsw_err_set(LSW_E_NOMEM, "out of memory");
    if (rc) {
        lsw_sb_free(&b);
        return rc;
    }
    *out = b.p;
    *outlen = b.len;
    return 0;
}

int lsw_hfconfig_restack(char **text, size_t *len, const int *map, int n_out, const char *path)
{
    if (!map)
        return 0;
    char *out;
    size_t olen;
    int rc = lsw_hfconfig_rewrite(*text, *len, map, n_out, path, &out, &olen);
    if (rc)
        return rc;
    free(*text);
    *text = out;
    *len = olen;
    return 0;
}
