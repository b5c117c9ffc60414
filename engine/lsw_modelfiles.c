#include "lsw_modelfiles.h"

#include <stdlib.h>
#include <string.h>

#include "lsw_error.h"
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
    span sp[2];
    size_t ns = 0;
    const char *keys[2] = {"dtype", "torch_dtype"};
    for (int k = 0; k < 2; k++) {
        const lsw_json *v = lsw_json_get(root, keys[k]);
        if (v)
            lsw_json_span(v, &sp[ns].off, &sp[ns].len), ns++;
    }
    lsw_json_free(doc);
    qsort(sp, ns, sizeof *sp, cmp_span);
    lsw_strbuf b = {0};
    size_t at = 0;
    for (size_t i = 0; i < ns; i++) {
        lsw_sb_put(&b, text + at, sp[i].off - at);
        lsw_sb_json_string(&b, torch_name);
        at = sp[i].off + sp[i].len;
    }
    lsw_sb_put(&b, text + at, len - at);
    if (lsw_sb_failed(&b)) {
        lsw_sb_free(&b);
        return lsw_err_set(LSW_E_NOMEM, "out of memory");
    }
    *out = b.p;
    *outlen = b.len;
    return 0;
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
