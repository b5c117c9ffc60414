#include "lsw_jsonw.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lsw_error.h"

struct lsw_jw {
    cJSON *root;
    int oom;
};

lsw_jw *lsw_jw_create(void)
{
    lsw_jw *w = calloc(1, sizeof *w);
    if (w && !(w->root = cJSON_CreateObject())) {
        free(w);
        w = NULL;
    }
    return w;
}

void lsw_jw_free(lsw_jw *w)
{
    if (!w)
        return;
    cJSON_Delete(w->root);
    free(w);
}

lsw_jw_node *lsw_jw_root(lsw_jw *w) { return w ? w->root : NULL; }

/* Attach `v` under `parent` (by key for an object, appended to an array);
 * returns v, or NULL (and marks the writer) when anything failed. */
static cJSON *attach(lsw_jw *w, cJSON *parent, const char *key, cJSON *v)
{
    if (!w || w->oom || !parent || !v) {
        if (w && parent)
            w->oom = 1;
        cJSON_Delete(v);
        return NULL;
    }
    cJSON_bool ok = cJSON_IsArray(parent) ? cJSON_AddItemToArray(parent, v)
                                          : cJSON_AddItemToObject(parent, key ? key : "", v);
    if (!ok) {
        w->oom = 1;
        cJSON_Delete(v);
        return NULL;
    }
    return v;
}

lsw_jw_node *lsw_jw_obj(lsw_jw *w, lsw_jw_node *parent, const char *key)
{
    return attach(w, parent, key, cJSON_CreateObject());
}

lsw_jw_node *lsw_jw_arr(lsw_jw *w, lsw_jw_node *parent, const char *key)
{
    return attach(w, parent, key, cJSON_CreateArray());
}

void lsw_jw_str(lsw_jw *w, lsw_jw_node *parent, const char *key, const char *s)
{
    attach(w, parent, key, cJSON_CreateString(s ? s : ""));
}

static void raw(lsw_jw *w, cJSON *parent, const char *key, const char *text)
{
    attach(w, parent, key, cJSON_CreateRaw(text));
}

void lsw_jw_raw(lsw_jw *w, lsw_jw_node *parent, const char *key, const char *json_text)
{
    raw(w, parent, key, json_text ? json_text : "null");
}

void lsw_jw_u64(lsw_jw *w, lsw_jw_node *parent, const char *key, uint64_t v)
{
    char t[24];
    snprintf(t, sizeof t, "%" PRIu64, v);
    raw(w, parent, key, t);
}

void lsw_jw_i64(lsw_jw *w, lsw_jw_node *parent, const char *key, int64_t v)
{
    char t[24];
    snprintf(t, sizeof t, "%" PRId64, v);
    raw(w, parent, key, t);
}

void lsw_jw_format_f64(double v, char *buf, size_t len)
{
    if (!isfinite(v)) {
        snprintf(buf, len, "null");
        return;
    }
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, len, "%.*g", prec, v);
        if (strtod(buf, NULL) == v)
            return;
    }
}

void lsw_jw_f64(lsw_jw *w, lsw_jw_node *parent, const char *key, double v)
{
    char t[40];
    lsw_jw_format_f64(v, t, sizeof t);
    raw(w, parent, key, t);
}

void lsw_jw_bool(lsw_jw *w, lsw_jw_node *parent, const char *key, int v)
{
    attach(w, parent, key, cJSON_CreateBool(v ? 1 : 0));
}

void lsw_jw_null(lsw_jw *w, lsw_jw_node *parent, const char *key) { attach(w, parent, key, cJSON_CreateNull()); }

void lsw_jw_hex64(lsw_jw *w, lsw_jw_node *parent, const char *key, uint64_t v)
{
    char t[20];
    snprintf(t, sizeof t, "%016" PRIx64, v);
    lsw_jw_str(w, parent, key, t);
}

void lsw_jw_hex32(lsw_jw *w, lsw_jw_node *parent, const char *key, uint32_t v)
{
    char t[12];
    snprintf(t, sizeof t, "%08" PRIx32, v);
    lsw_jw_str(w, parent, key, t);
}

int lsw_jw_print(lsw_jw *w, char **text, size_t *len)
{
    *text = NULL;
    *len = 0;
    if (!w || w->oom)
        return lsw_err_set(LSW_E_NOMEM, "out of memory while building JSON");
    char *s = cJSON_Print(w->root);
    if (!s)
        return lsw_err_set(LSW_E_NOMEM, "out of memory while printing JSON");
    size_t n = strlen(s);
    char *out = malloc(n + 2);
    if (!out) {
        cJSON_free(s);
        return lsw_err_set(LSW_E_NOMEM, "out of memory while printing JSON");
    }
    memcpy(out, s, n);
    out[n] = '\n';
    out[n + 1] = 0;
    cJSON_free(s);
    *text = out;
    *len = n + 1;
    return 0;
}
