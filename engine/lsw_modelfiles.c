#include "lsw_modelfiles.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lsw_array.h"
#include "lsw_crc32c.h"
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
            if (lsw_array_reserve(&sp->v, &sp->cap, sp->n + 1, sizeof *sp->v))
                return -1;
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

/* config.json is read whole (its dtype fields are rewritten); a larger one
 * is not a model config. */
#define LSW_CONFIG_JSON_MAX (64u << 20)

/* Read src/config.json whole into *text (NULL and 0 if absent).  LSW_E_INPUT
 * if it is not a regular file or larger than LSW_CONFIG_JSON_MAX. */
static int read_config_json(const char *p, char **text, size_t *len)
{
    *text = NULL;
    *len = 0;
    struct stat st;
    if (stat(p, &st) != 0)
        return 0;
    const char *kind = NULL;
    int fd = lsw_open_regular(p, &kind);
    if (fd < 0 && kind)
        return lsw_err_set(LSW_E_INPUT, "%s: is %s, not a regular file", p, kind);
    if (fd < 0)
        return lsw_err_set(LSW_E_NOTFOUND, "%s: cannot open: %s", p, strerror(errno));
    int rc = 0;
    if (fstat(fd, &st) != 0)
        rc = lsw_err_set(LSW_E_READ, "%s: cannot stat: %s", p, strerror(errno));
    else if ((uint64_t)st.st_size > LSW_CONFIG_JSON_MAX)
        rc = lsw_err_set(LSW_E_INPUT, "%s: %lld bytes, larger than the %u MiB a model config may have", p,
                         (long long)st.st_size, LSW_CONFIG_JSON_MAX >> 20);
    else if (!(*text = malloc((size_t)st.st_size + 1)))
        rc = lsw_err_set(LSW_E_NOMEM, "%s: out of memory", p);
    else if (!(rc = lsw_pread_full(fd, *text, (size_t)st.st_size, 0, p))) {
        (*text)[st.st_size] = 0;
        *len = (size_t)st.st_size;
    }
    close(fd);
    if (rc) {
        free(*text);
        *text = NULL;
    }
    return rc;
}

/* config.json of `src_folder`, if present, parses as a JSON object.
 * *present says whether there is one. */
static int check_config(const char *src_folder, int *present)
{
    char *p = lsw_path_join(src_folder, "config.json"), *text = NULL;
    size_t len = 0;
    if (!p)
        return lsw_err_set(LSW_E_NOMEM, "out of memory");
    struct stat st;
    *present = stat(p, &st) == 0;
    int rc = read_config_json(p, &text, &len);
    if (!rc && text)
        rc = lsw_config_json_set_dtype(text, len, NULL, p, NULL, NULL);
    free(text);
    free(p);
    return rc;
}

int lsw_check_model_files(const char *src_folder)
{
    int present;
    return src_folder ? check_config(src_folder, &present) : 0;
}

int lsw_check_reference_files(const char *src_folder, const char *model)
{
    if (!src_folder)
        return 0;
    int present = 0, rc = check_config(src_folder, &present);
    if (!rc && !present)
        rc = lsw_err_set(LSW_E_INPUT,
                         "%s: no config.json: the output copies its config from this model ('%s'), and without one "
                         "transformers cannot load it; add the model's config.json (or give the model as a single "
                         ".safetensors file, whose output gets no config files)",
                         src_folder, model ? model : "?");
    return rc;
}

/* Copy the regular file open as `in` (path `src`) into the output as `name`,
 * in blocks: memory stays bounded whatever its size. */
static int copy_stream(int in, const char *src, lsw_outdir *o, const char *name)
{
    struct stat st;
    if (fstat(in, &st) != 0)
        return lsw_err_set(LSW_E_READ, "%s: cannot stat: %s", src, strerror(errno));
    size_t bs = 1u << 20;
    char *buf = malloc(bs), *dst = NULL;
    int fd = -1, rc = buf ? lsw_outdir_tmp_open(o, name, &fd) : lsw_err_set(LSW_E_NOMEM, "out of memory");
    size_t dl = strlen(lsw_outdir_path(o)) + strlen(name) + 16;
    if (!rc && !(dst = malloc(dl)))
        rc = lsw_err_set(LSW_E_NOMEM, "out of memory");
    if (dst)
        snprintf(dst, dl, "%s/.%s.lsw-tmp", lsw_outdir_path(o), name);
    uint32_t crc = 0;
    uint64_t size = (uint64_t)st.st_size;
    for (uint64_t off = 0; !rc && off < size; off += bs) {
        size_t n = size - off < bs ? (size_t)(size - off) : bs;
        rc = lsw_pread_full(in, buf, n, off, src);
        if (!rc)
            rc = lsw_pwrite_full(fd, buf, n, off, dst);
        if (!rc)
            crc = lsw_crc32c(crc, buf, n);
    }
    free(buf);
    free(dst);
    if (rc) {
        if (fd >= 0)
            lsw_outdir_tmp_abort(o, name, fd);
        return rc;
    }
    return lsw_outdir_tmp_commit(o, name, fd, size, crc);
}

/* One side file: config.json (dtype fields rewritten when `torch` is set)
 * read whole, any other streamed.  Not a regular file: a warning. */
static int copy_one(const char *src_folder, const char *name, lsw_outdir *o, const char *torch, const int *map,
                    int n_out)
{
    char *p = lsw_path_join(src_folder, name);
    if (!p)
        return lsw_err_set(LSW_E_NOMEM, "out of memory");
    int rc = 0;
    struct stat st;
    const char *kind = NULL;
    int fd = stat(p, &st) == 0 ? lsw_open_regular(p, &kind) : -2;
    if (fd == -2 && lstat(p, &st) == 0)
        fprintf(stderr, "layerswap: warning: %s is a symlink to nothing: not copied to %s\n", p, lsw_outdir_path(o));
    if (fd == -1 && kind) {
        fprintf(stderr, "layerswap: warning: %s is %s, not a regular file: not copied to %s\n", p, kind,
                lsw_outdir_path(o));
    } else if (fd == -1) {
        rc = lsw_err_set(LSW_E_NOTFOUND, "%s: cannot open: %s", p, strerror(errno));
    } else if (fd >= 0 && !strcmp(name, "config.json")) {
        close(fd);
        char *text = NULL, *edited = NULL;
        size_t len = 0, elen = 0;
        rc = read_config_json(p, &text, &len);
        if (!rc && text) /* slices that restack layers (lsw_hfconfig) */
            rc = lsw_hfconfig_restack(&text, &len, map, n_out, p);
        if (!rc && text && torch)
            rc = lsw_config_json_set_dtype(text, len, torch, p, &edited, &elen);
        if (!rc && text)
            rc = edited ? lsw_outdir_put(o, name, edited, elen) : lsw_outdir_put(o, name, text, len);
        free(edited);
        free(text);
    } else if (fd >= 0) {
        rc = copy_stream(fd, p, o, name);
        close(fd);
    }
    free(p);
    return rc;
}

int lsw_copy_model_files(const char *src_folder, lsw_outdir *o, lsw_dtype dtype, const int *layer_map, int n_out)
{
    if (!src_folder)
        return 0;
    int rc = 0;
    for (const char *const *n = lsw_model_file_names; *n && !rc; n++)
        rc = copy_one(src_folder, *n, o, lsw_dtype_torch_name(dtype), layer_map, n_out);
    return rc;
}
