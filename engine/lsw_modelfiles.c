#include "lsw_modelfiles.h"

#include <stdlib.h>
#include <string.h>

#include "lsw_error.h"
#include "lsw_hfconfig.h"
#include "lsw_io.h"
#include "lsw_json.h"
#include "lsw_strbuf.h"

const char *const lsw_model_file_names[] = {
    "config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
    "special_tokens_map.json", "tokenizer.model", "vocab.json", "merges.txt", "added_tokens.json",
    "chat_template.jinja", "chat_template.json", NULL};

typedef struct span { size_t off, len; } span;

static int cmp_span(const void *a, const void *b)
{
    const span *x = a, *y = b;
    return x->off < y->off ? -1 : x->off > y->off;
}

/* Torch names of floating-point dtypes, as nested configs write them. */
static int is_float_dtype_name(const lsw_json *v)
{
    static const char *const names[] = {"float16", "bfloat16", "float32", "float64", "half", "float", "double",
                                        "torch.float16", "torch.bfloat16", "torch.float32", NULL};
    size_t len;
    const char *s = lsw_json_type_of(v) == LSW_JSON_STRING ? lsw_json_str(v, &len) : NULL;
    for (const char *const *n = names; s && *n; n++)
        if (strlen(*n) == len && !memcmp(*n, s, len))
            return 1;
    return 0;
}

typedef struct spans { span *v; size_t n, cap; } spans;

/* Collect the values to replace: the top-level "dtype"/"torch_dtype" values
 * whatever they hold, and below the top level (text_config, vision_config,
 * ... of multimodal models) those that name a floating-point dtype. */
static int collect(const lsw_json *obj, int top, spans *sp, int depth)
{
    if (depth > 64)
        return 0;
    for (size_t i = 0; i < lsw_json_count(obj); i++) {
        size_t kl;
        const char *k = lsw_json_key(obj, i, &kl);
        const lsw_json *v = lsw_json_at(obj, i);
        int dkey = (kl == 5 && !memcmp(k, "dtype", 5)) || (kl == 11 && !memcmp(k, "torch_dtype", 11));
        if (dkey && (top || is_float_dtype_name(v))) {
            if (sp->n == sp->cap) {
                size_t cap = sp->cap ? 2 * sp->cap : 8;
                span *nv = realloc(sp->v, cap * sizeof *nv);
                if (!nv)
                    return -1;
                sp->v = nv;
                sp->cap = cap;
            }
            lsw_json_span(v, &sp->v[sp->n].off, &sp->v[sp->n].len);
            sp->n++;
        } else if (lsw_json_type_of(v) == LSW_JSON_OBJECT && collect(v, 0, sp, depth + 1)) {
            return -1;
        }
    }
    return 0;
}

int lsw_config_json_set_dtype(const char *text, size_t len, const char *torch_name, const char *path, char **out,
                              size_t *outlen)
{
    char why[256];
    lsw_json_doc *doc;
    if (lsw_json_parse(text, len, &doc, why, sizeof why) != 0)
        return lsw_err_set(LSW_E_INPUT, "%s: not valid JSON: %s", path, why);
    const lsw_json *root = lsw_json_root(doc);
    if (lsw_json_type_of(root) != LSW_JSON_OBJECT) {
        lsw_json_free(doc);
        return lsw_err_set(LSW_E_INPUT, "%s: not a JSON object", path);
    }
    if (!torch_name) {   /* a check only */
        lsw_json_free(doc);
        return 0;
    }
    spans sp = {0};
    int bad = collect(root, 1, &sp, 0);
    lsw_json_free(doc);
    if (bad) {
        free(sp.v);
        return lsw_err_set(LSW_E_NOMEM, "out of memory");
    }
    if (sp.n > 1)   /* sp.v is NULL when no dtype field was found */
        qsort(sp.v, sp.n, sizeof *sp.v, cmp_span);
    lsw_strbuf b = {0};
    size_t at = 0;
    for (size_t i = 0; i < sp.n; i++) {
        lsw_sb_put(&b, text + at, sp.v[i].off - at);
        lsw_sb_json_string(&b, torch_name);
        at = sp.v[i].off + sp.v[i].len;
    }
    lsw_sb_put(&b, text + at, len - at);
    free(sp.v);
    if (lsw_sb_failed(&b)) {
        lsw_sb_free(&b);
        return lsw_err_set(LSW_E_NOMEM, "out of memory");
    }
    *out = b.p;
    *outlen = b.len;
    return 0;
}

int lsw_check_model_files(const char *src_folder)
{
    if (!src_folder)
        return 0;
    char *p = lsw_path_join(src_folder, "config.json"), *text = NULL;
    size_t len = 0;
    if (!p)
        return lsw_err_set(LSW_E_NOMEM, "out of memory");
    int rc = 0;
    if (lsw_is_file(p) && !(rc = lsw_read_file(p, &text, &len)))
        rc = lsw_config_json_set_dtype(text, len, NULL, p, NULL, NULL);
    free(text);
    free(p);
    return rc;
}

int lsw_copy_model_files(const char *src_folder, lsw_outdir *o, lsw_dtype dtype)
{
    if (!src_folder)
        return 0;
    int rc = 0;
    for (const char *const *n = lsw_model_file_names; *n && !rc; n++) {
        char *p = lsw_path_join(src_folder, *n), *text = NULL, *edited = NULL;
        size_t len = 0, elen = 0;
        if (!p)
            return lsw_err_set(LSW_E_NOMEM, "out of memory");
        if (lsw_is_file(p)) {
            rc = lsw_read_file(p, &text, &len);
            if (!rc && strcmp(*n, "config.json") == 0) /* slices that restack layers (lsw_hfconfig) */
                rc = lsw_hfconfig_restack(&text, &len, p);
            if (!rc && strcmp(*n, "config.json") == 0 && lsw_dtype_torch_name(dtype))
                rc = lsw_config_json_set_dtype(text, len, lsw_dtype_torch_name(dtype), p, &edited, &elen);
            if (!rc)
                rc = edited ? lsw_outdir_put(o, *n, edited, elen) : lsw_outdir_put(o, *n, text, len);
        }
        free(edited);
        free(text);
        free(p);
    }
    return rc;
}
