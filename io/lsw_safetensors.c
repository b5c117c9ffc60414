#include "lsw_safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lsw_error.h"
#include "lsw_io.h"
#include "lsw_json.h"
#include "lsw_strbuf.h"

struct lsw_st_file {
    char *path;
    int fd;
    uint64_t size;
    uint64_t mtime_ns;
    char *header;
    size_t header_len;
    size_t n;
    lsw_st_tensor *t;  /* sorted by name */
    uint64_t *shapes;  /* all shape entries */
    char *names;       /* all names, NUL-separated */
};

static int bad(const lsw_st_file *f, const char *tensor, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int bad(const lsw_st_file *f, const char *tensor, const char *fmt, ...)
{
    char rule[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(rule, sizeof rule, fmt, ap);
    va_end(ap);
    if (tensor)
        return lsw_err_set(LSW_E_INPUT, "%s: tensor '%s': %s", f->path, tensor, rule);
    return lsw_err_set(LSW_E_INPUT, "%s: %s", f->path, rule);
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(((const lsw_st_tensor *)a)->name, ((const lsw_st_tensor *)b)->name);
}

static int cmp_begin(const void *a, const void *b)
{
    const lsw_st_tensor *x = *(const lsw_st_tensor *const *)a, *y = *(const lsw_st_tensor *const *)b;
    if (x->offset != y->offset)
        return x->offset < y->offset ? -1 : 1;
    if (x->nbytes != y->nbytes)
        return x->nbytes < y->nbytes ? -1 : 1;
    return 0;
}

/* Validate one tensor entry; fills *t (offset relative to the data area). */
static int parse_entry(lsw_st_file *f, const char *name, const lsw_json *v, lsw_st_tensor *t,
                       uint64_t **shape_cursor)
{
    if (lsw_json_type_of(v) != LSW_JSON_OBJECT)
        return bad(f, name, "entry is not a JSON object");
    const lsw_json *jd = lsw_json_get(v, "dtype");
    const lsw_json *js = lsw_json_get(v, "shape");
    const lsw_json *jo = lsw_json_get(v, "data_offsets");
    if (!jd)
        return bad(f, name, "missing \"dtype\"");
    if (!js)
        return bad(f, name, "missing \"shape\"");
    if (!jo)
        return bad(f, name, "missing \"data_offsets\"");
    size_t dlen;
    const char *ds = lsw_json_str(jd, &dlen);
    if (!ds)
        return bad(f, name, "\"dtype\" is not a string");
    t->dtype = lsw_dtype_from_name(ds, dlen);
    if (t->dtype == LSW_DT_INVALID || lsw_json_str_has_nul(jd))
        return bad(f, name, "unknown dtype \"%s\"", ds);
    if (lsw_json_type_of(js) != LSW_JSON_ARRAY)
        return bad(f, name, "\"shape\" is not an array");
    t->ndim = lsw_json_count(js);
    t->shape = *shape_cursor;
    int has_zero = 0;
    for (size_t i = 0; i < t->ndim; i++) {
        uint64_t d;
        if (lsw_json_u64(lsw_json_at(js, i), &d) != 0)
            return bad(f, name, "shape[%zu] is not a non-negative 64-bit integer", i);
        (*shape_cursor)[i] = d;
        has_zero |= d == 0;
    }
    /* The product only has to fit in 64 bits: a zero anywhere makes it 0. */
    uint64_t numel = has_zero ? 0 : 1;
    for (size_t i = 0; i < t->ndim && !has_zero; i++) {
        uint64_t d = (*shape_cursor)[i];
        if (numel > UINT64_MAX / d)
            return bad(f, name, "shape product overflows 64 bits");
        numel *= d;
    }
    *shape_cursor += t->ndim;
    uint64_t es = lsw_dtype_size(t->dtype);
    if (numel > UINT64_MAX / es)
        return bad(f, name, "byte size (shape product x %" PRIu64 ") overflows 64 bits", es);
    t->numel = numel;
    t->nbytes = numel * es;
    if (lsw_json_type_of(jo) != LSW_JSON_ARRAY || lsw_json_count(jo) != 2)
        return bad(f, name, "\"data_offsets\" is not an array of exactly two integers");
    uint64_t b, e;
    if (lsw_json_u64(lsw_json_at(jo, 0), &b) != 0 || lsw_json_u64(lsw_json_at(jo, 1), &e) != 0)
        return bad(f, name, "\"data_offsets\" entries are not non-negative 64-bit integers");
    if (b > e)
        return bad(f, name, "data_offsets begin %" PRIu64 " > end %" PRIu64, b, e);
    if (e - b != t->nbytes)
        return bad(f, name, "data_offsets span %" PRIu64 " bytes but dtype and shape need %" PRIu64,
                   e - b, t->nbytes);
    t->offset = b;
    return 0;
}

static int validate_header(lsw_st_file *f)
{
    char why[256];
    lsw_json_doc *doc = NULL;
    if (lsw_json_parse(f->header, f->header_len, &doc, why, sizeof why) != 0)
        return bad(f, NULL, "header is not valid JSON: %s", why);
    int rc = 0;
    const lsw_json *root = lsw_json_root(doc);
    if (lsw_json_type_of(root) != LSW_JSON_OBJECT) {
        rc = bad(f, NULL, "header is not a JSON object");
        goto out;
    }
    size_t members = lsw_json_count(root), total_dims = 0;
    for (size_t i = 0; i < members; i++) {
        const lsw_json *v = lsw_json_at(root, i);
        if (lsw_json_type_of(v) == LSW_JSON_OBJECT) {
            const lsw_json *s = lsw_json_get(v, "shape");
            if (s && lsw_json_type_of(s) == LSW_JSON_ARRAY)
                total_dims += lsw_json_count(s);
        }
    }
    f->t = calloc(members ? members : 1, sizeof *f->t);
    f->shapes = calloc(total_dims ? total_dims : 1, sizeof *f->shapes);
    size_t names_len = 0;
    for (size_t i = 0; i < members; i++) {
        size_t kl;
        lsw_json_key(root, i, &kl);
        names_len += kl + 1;
    }
    f->names = malloc(names_len ? names_len : 1);
    if (!f->t || !f->shapes || !f->names) {
        rc = lsw_err_set(LSW_E_NOMEM, "%s: out of memory reading the header", f->path);
        goto out;
    }
    uint64_t *shape_cursor = f->shapes;
    char *name_cursor = f->names;
    for (size_t i = 0; i < members; i++) {
        size_t kl;
        const char *key = lsw_json_key(root, i, &kl);
        const lsw_json *v = lsw_json_at(root, i);
        if (strcmp(key, "__metadata__") == 0 && !lsw_json_key_has_nul(root, i)) {
            if (lsw_json_type_of(v) != LSW_JSON_OBJECT) {
                rc = bad(f, NULL, "\"__metadata__\" is not an object of strings");
                goto out;
            }
            for (size_t j = 0; j < lsw_json_count(v); j++)
                if (lsw_json_type_of(lsw_json_at(v, j)) != LSW_JSON_STRING) {
                    rc = bad(f, NULL, "\"__metadata__\" value of \"%s\" is not a string",
                             lsw_json_key(v, j, NULL));
                    goto out;
                }
            continue;
        }
        if (kl == 0) {
            rc = bad(f, "", "empty tensor name");
            goto out;
        }
        if (lsw_json_key_has_nul(root, i)) {
            rc = bad(f, key, "tensor name contains a NUL character");
            goto out;
        }
        memcpy(name_cursor, key, kl + 1);
        lsw_st_tensor *t = &f->t[f->n];
        t->name = name_cursor;
        name_cursor += kl + 1;
        if ((rc = parse_entry(f, t->name, v, t, &shape_cursor)) != 0)
            goto out;
        f->n++;
    }
    /* Tiling: sorted by begin, each tensor starts where the previous ended. */
    lsw_st_tensor **by_begin = malloc((f->n ? f->n : 1) * sizeof *by_begin);
    if (!by_begin) {
        rc = lsw_err_set(LSW_E_NOMEM, "%s: out of memory", f->path);
        goto out;
    }
    for (size_t i = 0; i < f->n; i++)
        by_begin[i] = &f->t[i];
    qsort(by_begin, f->n, sizeof *by_begin, cmp_begin);
    uint64_t cursor = 0, area = f->size - 8 - f->header_len;
    for (size_t i = 0; i < f->n && rc == 0; i++) {
        const lsw_st_tensor *t = by_begin[i];
        if (t->offset > cursor)
            rc = bad(f, t->name, "hole in the data area: bytes [%" PRIu64 ", %" PRIu64 ") belong to no tensor",
                     cursor, t->offset);
        else if (t->offset < cursor)
            rc = bad(f, t->name, "data_offsets [%" PRIu64 ", %" PRIu64 ") overlap the previous tensor (ends at %" PRIu64 ")",
                     t->offset, t->offset + t->nbytes, cursor);
        else if (t->nbytes > area - cursor)
            rc = bad(f, t->name, "data_offsets end %" PRIu64 " lies beyond the data area of %" PRIu64 " bytes",
                     t->offset + t->nbytes, area);
        cursor = t->offset + t->nbytes;
    }
    if (rc == 0 && cursor != area)
        rc = bad(f, NULL, "data area is %" PRIu64 " bytes but the tensors cover %" PRIu64 " (file size must end exactly at the last tensor)",
                 area, cursor);
    free(by_begin);
    if (rc)
        goto out;
    for (size_t i = 0; i < f->n; i++)
        f->t[i].offset += 8 + f->header_len;
    qsort(f->t, f->n, sizeof *f->t, cmp_name);
out:
    lsw_json_free(doc);
    return rc;
}

int lsw_st_open(const char *path, lsw_st_file **out)
{
    *out = NULL;
    lsw_st_file *f = calloc(1, sizeof *f);
    if (!f || !(f->path = strdup(path))) {
        free(f);
        return lsw_err_set(LSW_E_NOMEM, "%s: out of memory", path);
    }
    f->fd = open(path, O_RDONLY | O_CLOEXEC);
    int rc = 0;
    if (f->fd < 0) {
        rc = lsw_err_set(LSW_E_NOTFOUND, "%s: cannot open: %s", path, strerror(errno));
        goto fail;
    }
    struct stat st;
    if (fstat(f->fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        rc = lsw_err_set(LSW_E_NOTFOUND, "%s: not a regular file", path);
        goto fail;
    }
    f->size = (uint64_t)st.st_size;
    f->mtime_ns = (uint64_t)st.st_mtim.tv_sec * 1000000000ULL + (uint64_t)st.st_mtim.tv_nsec;
    if (f->size < 8) {
        rc = bad(f, NULL, "file is %" PRIu64 " bytes, shorter than the 8-byte header length", f->size);
        goto fail;
    }
    unsigned char len8[8];
    if ((rc = lsw_pread_full(f->fd, len8, 8, 0, path)) != 0)
        goto fail;
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--)
        n = (n << 8) | len8[i];
    if (n > LSW_ST_MAX_HEADER) {
        rc = bad(f, NULL, "header length %" PRIu64 " exceeds the limit of %llu bytes", n, LSW_ST_MAX_HEADER);
        goto fail;
    }
    if (n > f->size - 8) {
        rc = bad(f, NULL, "header length %" PRIu64 " runs past the end of the %" PRIu64 "-byte file", n, f->size);
        goto fail;
    }
    f->header_len = (size_t)n;
    f->header = malloc(n ? n : 1);
    if (!f->header) {
        rc = lsw_err_set(LSW_E_NOMEM, "%s: out of memory for a %" PRIu64 "-byte header", path, n);
        goto fail;
    }
    if ((rc = lsw_pread_full(f->fd, f->header, n, 8, path)) != 0)
        goto fail;
    if ((rc = validate_header(f)) != 0)
        goto fail;
    *out = f;
    return 0;
fail:
    lsw_st_close(f);
    return rc;
}

void lsw_st_close(lsw_st_file *f)
{
    if (!f)
        return;
    if (f->fd >= 0)
        close(f->fd);
    free(f->path);
    free(f->header);
    free(f->t);
    free(f->shapes);
    free(f->names);
    free(f);
}

const char *lsw_st_path(const lsw_st_file *f) { return f->path; }
int lsw_st_fd(const lsw_st_file *f) { return f->fd; }
uint64_t lsw_st_file_size(const lsw_st_file *f) { return f->size; }
uint64_t lsw_st_mtime_ns(const lsw_st_file *f) { return f->mtime_ns; }
size_t lsw_st_count(const lsw_st_file *f) { return f->n; }
const lsw_st_tensor *lsw_st_at(const lsw_st_file *f, size_t i) { return i < f->n ? &f->t[i] : NULL; }

const char *lsw_st_header(const lsw_st_file *f, size_t *len)
{
    *len = f->header_len;
    return f->header;
}

static int cmp_key_name(const void *key, const void *elem)
{
    return strcmp((const char *)key, ((const lsw_st_tensor *)elem)->name);
}

const lsw_st_tensor *lsw_st_find(const lsw_st_file *f, const char *name)
{
    return f->n ? bsearch(name, f->t, f->n, sizeof *f->t, cmp_key_name) : NULL;
}

/* ---- header building ---------------------------------------------------- */

int lsw_st_build_header(const lsw_st_entry *e, size_t n, char **out, uint64_t *data_start)
{
    lsw_strbuf b = {0};
    lsw_sb_put(&b, "\0\0\0\0\0\0\0\0", 8);
    lsw_sb_str(&b, "{\"__metadata__\":{\"format\":\"pt\"}");
    uint64_t off = 0;
    for (size_t i = 0; i < n; i++) {
        lsw_sb_put(&b, ",", 1);
        lsw_sb_json_string(&b, e[i].name);
        lsw_sb_str(&b, ":{\"dtype\":\"");
        lsw_sb_str(&b, lsw_dtype_name(e[i].dtype));
        lsw_sb_str(&b, "\",\"shape\":[");
        for (size_t d = 0; d < e[i].ndim; d++) {
            if (d)
                lsw_sb_put(&b, ",", 1);
            lsw_sb_u64(&b, e[i].shape[d]);
        }
        lsw_sb_str(&b, "],\"data_offsets\":[");
        lsw_sb_u64(&b, off);
        lsw_sb_put(&b, ",", 1);
        if (e[i].nbytes > UINT64_MAX - off) {
            free(b.p);
            return lsw_err_set(LSW_E_INTERNAL, "output shard larger than 2^64 bytes");
        }
        off += e[i].nbytes;
        lsw_sb_u64(&b, off);
        lsw_sb_str(&b, "]}");
    }
    lsw_sb_put(&b, "}", 1);
    while (b.len % 8)
        lsw_sb_put(&b, " ", 1);
    if (lsw_sb_failed(&b)) {
        free(b.p);
        return lsw_err_set(LSW_E_NOMEM, "out of memory building a safetensors header");
    }
    uint64_t hl = b.len - 8;
    for (int i = 0; i < 8; i++)
        b.p[i] = (char)((hl >> (8 * i)) & 0xff);
    *out = b.p;
    *data_start = b.len;
    return 0;
}
