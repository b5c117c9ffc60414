#include "lsw_checkpoint.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "lsw_crc32c.h"
#include "lsw_error.h"
#include "lsw_h5layout.h"
#ifdef LSW_HAVE_HDF5
#include "lsw_hdf5.h"
#endif
#include "lsw_io.h"
#include "lsw_json.h"
#include "lsw_safetensors.h"

struct lsw_ckpt {
    char *path;
    char *folder;
    size_t nfiles;
    lsw_st_file **files;
    size_t n;
    lsw_tensor_desc *t; /* sorted by name */
    int layers;
    uint64_t data_bytes;
    uint64_t identity;
    void *h5;          /* lsw_h5_input of a model.h5 checkpoint; NULL for safetensors */
    char *h5_path;
    lsw_ckpt_read_fn view_read; /* a view (derived model): reads computed by the engine */
    void *view_user;
    void (*view_free)(void *);
};

int lsw_layer_of(const char *name)
{
    for (const char *p = strstr(name, "layers."); p; p = strstr(p + 1, "layers.")) {
        const char *d = p + 7;
        long v = 0;
        int nd = 0;
        while (*d >= '0' && *d <= '9') {
            if (v <= LSW_MAX_LAYER)
                v = v * 10 + (*d - '0');
            d++;
            nd++;
        }
        if (nd > 0 && *d == '.')
            return v > LSW_MAX_LAYER ? LSW_LAYER_TOO_BIG : (int)v;
    }
    return -1;
}

/* d->layer set from its name, and the checkpoint's layer count updated;
 * LSW_E_INPUT for an index beyond LSW_MAX_LAYER. */
static int set_layer(lsw_ckpt *c, lsw_tensor_desc *d, const char *file)
{
    d->layer = lsw_layer_of(d->name);
    if (d->layer == LSW_LAYER_TOO_BIG)
        return lsw_err_set(LSW_E_INPUT, "%s: tensor '%s': layer index in the name is larger than %d", file, d->name,
                           LSW_MAX_LAYER);
    if (d->layer + 1 > c->layers)
        c->layers = d->layer + 1;
    return 0;
}

static int ends_with(const char *s, const char *suf)
{
    size_t ls = strlen(s), lf = strlen(suf);
    return ls >= lf && strcmp(s + ls - lf, suf) == 0;
}

static int is_pickle(const char *p)
{
    return ends_with(p, ".bin") || ends_with(p, ".pt") || ends_with(p, ".pth") || ends_with(p, ".ckpt") ||
           ends_with(p, ".pkl");
}

int lsw_is_weight_file_name(const char *name)
{
    return ends_with(name, ".safetensors") || ends_with(name, ".safetensors.index.json") ||
           strcmp(name, "model.h5") == 0 || ends_with(name, ".bin.index.json") || is_pickle(name);
}

static int cmp_size(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return x < y ? -1 : x > y;
}

static int cmp_desc(const void *a, const void *b)
{
    return strcmp(((const lsw_tensor_desc *)a)->name, ((const lsw_tensor_desc *)b)->name);
}

static int add_file(lsw_ckpt *c, const char *path)
{
    lsw_st_file **nf = realloc(c->files, (c->nfiles + 1) * sizeof *nf);
    if (!nf)
        return lsw_err_set(LSW_E_NOMEM, "out of memory");
    c->files = nf;
    int rc = lsw_st_open(path, &c->files[c->nfiles]);
    if (rc)
        return rc;
    c->nfiles++;
    return 0;
}

/* An index entry while the shards are worked out: its shard name, its
 * position in the weight_map, and the shard number it gets. */
typedef struct ientry { const char *shard; size_t at; size_t sid; } ientry;

static int cmp_ientry_name(const void *a, const void *b)
{
    const ientry *x = a, *y = b;
    int c = strcmp(x->shard, y->shard);
    return c ? c : (x->at < y->at ? -1 : x->at > y->at);
}

static int cmp_ientry_at(const void *a, const void *b)
{
    const ientry *x = a, *y = b;
    return x->at < y->at ? -1 : x->at > y->at;
}

/* Validate an index and open the shards it names, in order of first mention.
 * `direct`: the path was given as the model (not found in a folder).
 * O(n log n) in the entries: a crafted index of 10^6 entries naming as many
 * shards must fail fast, not after hours of quadratic name searches. */
static int open_index(lsw_ckpt *c, const char *index_path, int direct)
{
    char *text = NULL;
    size_t len = 0;
    struct stat st;
    if (stat(index_path, &st) == 0 && st.st_size > (off_t)LSW_ST_MAX_HEADER)
        return lsw_err_set(LSW_E_INPUT, "%s: index of %lld bytes is larger than %llu bytes", index_path,
                           (long long)st.st_size, (unsigned long long)LSW_ST_MAX_HEADER);
    int rc = lsw_read_file(index_path, &text, &len);
    if (rc)
        return rc;
    char why[256];
    lsw_json_doc *doc = NULL;
    ientry *e = NULL;
    size_t *first = NULL;   /* per shard number: the entry that names it first */
    if (lsw_json_parse(text, len, &doc, why, sizeof why) != 0) {
        rc = lsw_err_set(LSW_E_INPUT, "%s: index is not valid JSON: %s", index_path, why);
        goto out;
    }
    const lsw_json *root = lsw_json_root(doc), *wm = lsw_json_get(root, "weight_map");
    if (lsw_json_type_of(root) != LSW_JSON_OBJECT || !wm || lsw_json_type_of(wm) != LSW_JSON_OBJECT) {
        if (direct && !wm && !ends_with(index_path, ".index.json"))
            rc = lsw_err_set(LSW_E_INPUT, "%s: not a checkpoint: a JSON file without \"weight_map\" (a config or "
                             "tokenizer file?); give the model's folder, a .safetensors file, a "
                             "model.safetensors.index.json or a model.h5", index_path);
        else
            rc = lsw_err_set(LSW_E_INPUT, "%s: index has no \"weight_map\" object", index_path);
        goto out;
    }
    size_t n = lsw_json_count(wm), nshards = 0;
    e = malloc((n ? n : 1) * sizeof *e);
    first = malloc((n ? n : 1) * sizeof *first);
    if (!e || !first) {
        rc = lsw_err_set(LSW_E_NOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n && !rc; i++) {
        const char *tname = lsw_json_key(wm, i, NULL);
        size_t sl;
        const char *s = lsw_json_str(lsw_json_at(wm, i), &sl);
        if (lsw_json_key_has_nul(wm, i))
            rc = lsw_err_set(LSW_E_INPUT, "%s: tensor '%s': the name contains a NUL character", index_path, tname);
        else if (!s)
            rc = lsw_err_set(LSW_E_INPUT, "%s: tensor '%s': weight_map value is not a string", index_path, tname);
        else if (lsw_json_str_has_nul(lsw_json_at(wm, i)) || !lsw_plain_name(s))
            rc = lsw_err_set(LSW_E_INPUT, "%s: tensor '%s': shard \"%s\" is not a plain file name in the index's folder",
                             index_path, tname, s);
        else if (is_pickle(s))
            rc = lsw_err_set(LSW_E_INPUT, "%s: tensor '%s': shard \"%s\" is a pickle file; pickle checkpoints are refused",
                             index_path, tname, s);
        else
            e[i] = (ientry){s, i, 0};
    }
    if (rc)
        goto out;
    /* Distinct shard names: sorted by name, each group's first entry is the
     * earliest mention; shard numbers then go by first mention. */
    qsort(e, n, sizeof *e, cmp_ientry_name);
    for (size_t i = 0; i < n; i++)
        if (i == 0 || strcmp(e[i - 1].shard, e[i].shard) != 0)
            first[nshards++] = e[i].at;
    qsort(first, nshards, sizeof *first, cmp_size);
    for (size_t i = 0, g = 0; i < n; i++) {
        if (i > 0 && strcmp(e[i - 1].shard, e[i].shard) != 0)
            g = i;
        /* the group's number: the rank of its first mention among all first mentions */
        size_t lo = 0, hi = nshards;
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (first[mid] < e[g].at)
                lo = mid + 1;
            else
                hi = mid;
        }
        e[i].sid = lo;
    }
    qsort(e, n, sizeof *e, cmp_ientry_at);
    for (size_t k = 0, i = 0; k < nshards && !rc; k++) {
        while (e[i].sid != k)   /* the entry that names shard k first */
            i++;
        char *p = lsw_path_join(c->folder, e[i].shard);
        if (!p)
            rc = lsw_err_set(LSW_E_NOMEM, "out of memory");
        else if (lsw_path_kind(p))
            rc = lsw_err_set(LSW_E_INPUT, "%s: shard \"%s\" named by the index is %s, not a regular file", index_path,
                             e[i].shard, lsw_path_kind(p));
        else if (!lsw_is_file(p))
            rc = lsw_err_set(LSW_E_INPUT, "%s: shard \"%s\" named by the index does not exist", index_path, e[i].shard);
        else
            rc = add_file(c, p);
        free(p);
    }
    /* Every listed tensor must be in the shard the index names. */
    for (size_t i = 0; i < n && !rc; i++) {
        const char *tname = lsw_json_key(wm, i, NULL);
        if (!lsw_st_find(c->files[e[i].sid], tname))
            rc = lsw_err_set(LSW_E_INPUT, "%s: tensor '%s': listed in shard \"%s\" but not present there",
                             index_path, tname, e[i].shard);
    }
out:
    free(e);
    free(first);
    lsw_json_free(doc);
    free(text);
    return rc;
}

static int build_table(lsw_ckpt *c)
{
    size_t n = 0;
    for (size_t f = 0; f < c->nfiles; f++)
        n += lsw_st_count(c->files[f]);
    c->t = calloc(n ? n : 1, sizeof *c->t);
    if (!c->t)
        return lsw_err_set(LSW_E_NOMEM, "out of memory");
    uint64_t id = LSW_FNV1A64_INIT;
    for (size_t f = 0; f < c->nfiles; f++) {
        size_t hl;
        const char *h = lsw_st_header(c->files[f], &hl);
        uint64_t sz[2] = {lsw_st_file_size(c->files[f]), lsw_st_mtime_ns(c->files[f])};
        id = lsw_fnv1a64(id, h, hl);
        id = lsw_fnv1a64(id, sz, sizeof sz);
        for (size_t i = 0; i < lsw_st_count(c->files[f]); i++) {
            const lsw_st_tensor *s = lsw_st_at(c->files[f], i);
            lsw_tensor_desc *d = &c->t[c->n++];
            d->name = s->name;
            d->dtype = s->dtype;
            d->ndim = s->ndim;
            d->shape = s->shape;
            d->numel = s->numel;
            d->nbytes = s->nbytes;
            d->file = (unsigned)f;
            d->offset = s->offset;
            int rc = set_layer(c, d, lsw_st_path(c->files[f]));
            if (rc)
                return rc;
            c->data_bytes += d->nbytes;
        }
    }
    c->identity = id;
    qsort(c->t, c->n, sizeof *c->t, cmp_desc);
    for (size_t i = 1; i < c->n; i++)
        if (strcmp(c->t[i - 1].name, c->t[i].name) == 0)
            return lsw_err_set(LSW_E_INPUT, "%s: tensor '%s': present in two shards (%s and %s)", c->path,
                               c->t[i].name, lsw_st_path(c->files[c->t[i - 1].file]),
                               lsw_st_path(c->files[c->t[i].file]));
    return 0;
}

int lsw_ckpt_check_layers(const lsw_ckpt *c)
{
    if (c->layers <= 0)
        return 0;
    unsigned char *seen = calloc((size_t)c->layers, 1);
    if (!seen)
        return lsw_err_set(LSW_E_NOMEM, "out of memory");
    const lsw_tensor_desc *last = NULL;
    for (size_t i = 0; i < c->n; i++)
        if (c->t[i].layer >= 0) {
            seen[c->t[i].layer] = 1;
            if (c->t[i].layer == c->layers - 1)
                last = &c->t[i];
        }
    int rc = 0;
    for (int l = 0; l < c->layers && !rc; l++)
        if (!seen[l])
            rc = lsw_err_set(LSW_E_INPUT, "%s: tensor '%s': layer %d exists but layer %d has no tensor (layer "
                             "numbers must run from 0 without a gap)", c->path, last ? last->name : "?",
                             c->layers - 1, l);
    free(seen);
    return rc;
}

/* A layerswap model.h5 as input: tensors from lsw_hdf5's reader; `offset`
 * holds the reader's tensor index. */
static lsw_h5_probe_fn h5_probe;

void lsw_ckpt_set_h5_probe(lsw_h5_probe_fn fn) { h5_probe = fn; }

static int open_h5(lsw_ckpt *c, const char *path)
{
#ifdef LSW_HAVE_HDF5
    lsw_h5_input *h;
    int rc = h5_probe ? h5_probe(path) : 0;
    if (rc)
        return rc;
    rc = lsw_h5_open_input(path, &h);
    if (rc)
        return rc;
    c->h5 = h;
    if (!(c->h5_path = strdup(path)))
        return lsw_err_set(LSW_E_NOMEM, "out of memory");
    size_t n = lsw_h5_input_count(h);
    c->t = calloc(n ? n : 1, sizeof *c->t);
    if (!c->t)
        return lsw_err_set(LSW_E_NOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        const lsw_h5_tensor *ht = lsw_h5_input_at(h, i);
        lsw_tensor_desc *d = &c->t[c->n++];
        *d = (lsw_tensor_desc){ht->name, ht->dtype, ht->ndim, ht->shape, ht->numel, ht->nbytes, -1, 0, (uint64_t)i};
        if ((rc = set_layer(c, d, path)))
            return rc;
        c->data_bytes += d->nbytes;
    }
    struct stat st;
    uint64_t id[2] = {0, 0};
    if (stat(path, &st) == 0) {
        id[0] = (uint64_t)st.st_size;
        id[1] = (uint64_t)st.st_mtim.tv_sec * 1000000000ULL + (uint64_t)st.st_mtim.tv_nsec;
    }
    c->identity = lsw_fnv1a64(LSW_FNV1A64_INIT, id, sizeof id);
    return 0;
#else
    return lsw_err_set(LSW_E_INPUT, "%s: an HDF5 checkpoint; this build has no HDF5 (configure with LSW_WITH_HDF5=ON)",
                       path);
#endif
}

int lsw_ckpt_open(const char *path, lsw_ckpt **out)
{
    *out = NULL;
    lsw_ckpt *c = calloc(1, sizeof *c);
    if (!c || !(c->path = strdup(path))) {
        free(c);
        return lsw_err_set(LSW_E_NOMEM, "out of memory");
    }
    int rc = 0;
    char *p1 = NULL, *p2 = NULL, *p3 = NULL;
    if (lsw_is_dir(path)) {
        c->folder = strdup(path);
        p1 = lsw_path_join(path, "model.safetensors");
        p2 = lsw_path_join(path, "model.safetensors.index.json");
        p3 = lsw_path_join(path, "pytorch_model.bin");
        char *p4 = lsw_path_join(path, "model.h5");
        if (!c->folder || !p1 || !p2 || !p3 || !p4)
            rc = lsw_err_set(LSW_E_NOMEM, "out of memory");
        else if (lsw_is_file(p1))
            rc = add_file(c, p1);
        else if (lsw_is_file(p2))
            rc = open_index(c, p2, 0);
        else if (lsw_is_file(p4))
            rc = open_h5(c, p4);
        else if (lsw_is_file(p3))
            rc = lsw_err_set(LSW_E_INPUT, "%s: holds only a pickle checkpoint (pytorch_model.bin); pickle checkpoints are refused, convert to safetensors",
                             path);
        else if (lsw_path_kind(p1) || lsw_path_kind(p2) || lsw_path_kind(p4)) {
            const char *bad = lsw_path_kind(p1) ? p1 : lsw_path_kind(p2) ? p2 : p4;
            rc = lsw_err_set(LSW_E_INPUT, "%s: is %s, not a regular file", bad, lsw_path_kind(bad));
        }
        else
            rc = lsw_err_set(LSW_E_INPUT, "%s: folder has neither model.safetensors, model.safetensors.index.json nor model.h5",
                             path);
        free(p4);
    } else if (lsw_is_file(path)) {
        if (is_pickle(path))
            rc = lsw_err_set(LSW_E_INPUT, "%s: pickle checkpoints are refused (they can run code); convert to safetensors", path);
        else if (lsw_h5_sniff(path) == 1)
            rc = open_h5(c, path);
        else if (ends_with(path, ".h5"))
            rc = lsw_err_set(LSW_E_INPUT, "%s: named .h5 but has no HDF5 signature (not an HDF5 file, or damaged)", path);
        else if (ends_with(path, ".json")) {
            c->folder = lsw_dirname(path);
            rc = c->folder ? open_index(c, path, 1) : lsw_err_set(LSW_E_NOMEM, "out of memory");
        } else
            rc = add_file(c, path);
    } else {
        struct stat st;
        if (stat(path, &st) == 0)
            rc = lsw_err_set(LSW_E_INPUT, "%s: is %s, not a regular file or a folder (a checkpoint is one of those)",
                             path, lsw_path_kind(path) ? lsw_path_kind(path) : "neither a regular file nor a folder");
        else
            rc = lsw_err_set(LSW_E_NOTFOUND, "%s: %s", path, errno == ENOENT ? "no such file or folder" : strerror(errno));
    }
    if (!rc && !c->h5)
        rc = build_table(c);
    free(p1);
    free(p2);
    free(p3);
    if (rc) {
        lsw_ckpt_close(c);
        return rc;
    }
    *out = c;
    return 0;
}

void lsw_ckpt_close(lsw_ckpt *c)
{
    if (!c)
        return;
    if (c->view_free)
        c->view_free(c->view_user);
#ifdef LSW_HAVE_HDF5
    lsw_h5_input_close(c->h5);
#endif
    free(c->h5_path);
    for (size_t f = 0; f < c->nfiles; f++)
        lsw_st_close(c->files[f]);
    free(c->files);
    free(c->t);
    free(c->folder);
    free(c->path);
    free(c);
}

int lsw_ckpt_open_view(const lsw_ckpt *ref, const char *name, uint64_t identity, lsw_ckpt_read_fn read, void *user,
                       lsw_ckpt **out)
{
    *out = NULL;
    lsw_ckpt *c = calloc(1, sizeof *c);
    if (!c)
        return lsw_err_set(LSW_E_NOMEM, "out of memory");
    size_t pl = strlen(name) + sizeof "derived model ''";
    c->path = malloc(pl);
    c->folder = ref->folder ? strdup(ref->folder) : NULL;
    c->t = malloc((ref->n ? ref->n : 1) * sizeof *c->t);
    if (!c->path || (ref->folder && !c->folder) || !c->t) {
        lsw_ckpt_close(c);
        return lsw_err_set(LSW_E_NOMEM, "out of memory");
    }
    snprintf(c->path, pl, "derived model '%s'", name);
    memcpy(c->t, ref->t, ref->n * sizeof *c->t);
    c->n = ref->n;
    c->layers = ref->layers;
    c->data_bytes = ref->data_bytes;
    c->identity = identity;
    c->view_read = read;
    c->view_user = user;
    *out = c;
    return 0;
}

void lsw_ckpt_set_view_free(lsw_ckpt *c, void (*fn)(void *)) { c->view_free = fn; }

void *lsw_ckpt_view_user(const lsw_ckpt *c) { return c && c->view_read ? c->view_user : NULL; }

size_t lsw_ckpt_index_of(const lsw_ckpt *c, const lsw_tensor_desc *t) { return (size_t)(t - c->t); }

const char *lsw_ckpt_path(const lsw_ckpt *c) { return c->path; }
const char *lsw_ckpt_folder(const lsw_ckpt *c) { return c->folder; }
size_t lsw_ckpt_count(const lsw_ckpt *c) { return c->n; }
const lsw_tensor_desc *lsw_ckpt_at(const lsw_ckpt *c, size_t i) { return i < c->n ? &c->t[i] : NULL; }
int lsw_ckpt_layers(const lsw_ckpt *c) { return c->layers; }
size_t lsw_ckpt_file_count(const lsw_ckpt *c) { return c->h5 ? 1 : c->nfiles; }
const char *lsw_ckpt_file_path(const lsw_ckpt *c, unsigned f) { return c->h5 ? c->h5_path : lsw_st_path(c->files[f]); }
uint64_t lsw_ckpt_data_bytes(const lsw_ckpt *c) { return c->data_bytes; }
uint64_t lsw_ckpt_identity(const lsw_ckpt *c) { return c->identity; }

static int cmp_key_desc(const void *key, const void *elem)
{
    return strcmp((const char *)key, ((const lsw_tensor_desc *)elem)->name);
}

const lsw_tensor_desc *lsw_ckpt_find(const lsw_ckpt *c, const char *name)
{
    return c->n ? bsearch(name, c->t, c->n, sizeof *c->t, cmp_key_desc) : NULL;
}

int lsw_ckpt_read(const lsw_ckpt *c, const lsw_tensor_desc *t, uint64_t off, void *buf, size_t n)
{
    if (off > t->nbytes || n > t->nbytes - off)
        return lsw_err_set(LSW_E_INTERNAL, "%s: tensor '%s': read of [%llu, +%zu) outside the tensor", c->path,
                           t->name, (unsigned long long)off, n);
    if (c->view_read)
        return c->view_read(c->view_user, c, t, off, buf, n);
    int rc;
#ifdef LSW_HAVE_HDF5
    if (c->h5) {
        /* the HDF5 library is not thread-safe: one reader at a time */
        static pthread_mutex_t h5_mu = PTHREAD_MUTEX_INITIALIZER;
        pthread_mutex_lock(&h5_mu);
        rc = lsw_h5_input_read((lsw_h5_input *)c->h5, (size_t)t->offset, off, buf, n);
        pthread_mutex_unlock(&h5_mu);
        return rc;
    }
#endif
    lsw_st_file *f = c->files[t->file];
    rc = lsw_pread_full(lsw_st_fd(f), buf, n, t->offset + off, lsw_st_path(f));
    if (rc) {
        /* Add the tensor to the detail the low-level read recorded. */
        char d[1024];
        snprintf(d, sizeof d, "%s (tensor '%s')", lsw_err_detail(), t->name);
        lsw_err_clear();
        lsw_err_set(rc, "%s", d);
    }
    return rc;
}

int lsw_ckpt_check_data(const lsw_ckpt *c)
{
    if (!c->h5)
        return 0;
    size_t cap = 4u << 20;
    char *buf = malloc(cap);
    if (!buf)
        return lsw_err_set(LSW_E_NOMEM, "out of memory");
    int rc = 0;
    for (size_t i = 0; i < c->n && !rc; i++)
        for (uint64_t off = 0; off < c->t[i].nbytes && !rc; off += cap) {
            size_t n = c->t[i].nbytes - off < cap ? (size_t)(c->t[i].nbytes - off) : cap;
            rc = lsw_ckpt_read(c, &c->t[i], off, buf, n);
        }
    free(buf);
    return rc;
}

/* A folder or file identity, after following symlinks. */
typedef struct fid { dev_t dev; ino_t ino; } fid;

static int same_as(const char *path, const fid *f)
{
    struct stat st;
    return path && stat(path, &st) == 0 && st.st_dev == f->dev && st.st_ino == f->ino;
}

/* 1 if the folder of `file` (as named, and after resolving `file` itself
 * when it is a symlink) is `out`. */
static int file_folder_is(const char *file, const fid *out)
{
    char *d = lsw_dirname(file);
    int hit = same_as(d, out);
    free(d);
    if (hit)
        return 1;
    char *r = realpath(file, NULL);
    if (r) {
        d = lsw_dirname(r);
        hit = same_as(d, out);
        free(d);
        free(r);
    }
    return hit;
}

/* 1 if folder `dir` is `out`, or holds a symlink to a file in `out`. */
static int folder_is(const char *dir, const fid *out)
{
    if (same_as(dir, out))
        return 1;
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    int hit = 0;
    for (struct dirent *e; !hit && (e = readdir(d));) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        char *p = lsw_path_join(dir, e->d_name);
        struct stat st, target;
        if (p && lstat(p, &st) == 0 && S_ISLNK(st.st_mode) && stat(p, &target) == 0 && S_ISREG(target.st_mode))
            hit = file_folder_is(p, out);
        free(p);
    }
    closedir(d);
    return hit;
}

int lsw_input_in_folder(const char *path, const char *dir)
{
    if (!path || !dir)
        return 0;
    char *r = lsw_path_resolve_future(dir);
    struct stat st;
    int exists = r && stat(r, &st) == 0;
    free(r);
    if (!exists)
        return 0; /* not there (yet): cannot hold an input */
    fid out = {st.st_dev, st.st_ino};
    struct stat in;
    if (stat(path, &in) != 0)
        return 0;
    if (S_ISDIR(in.st_mode))
        return folder_is(path, &out);
    if (file_folder_is(path, &out))
        return 1;
    /* an index names shards in its own folder, which may be symlinks */
    if (ends_with(path, ".json")) {
        char *d = lsw_dirname(path);
        int hit = d && folder_is(d, &out);
        free(d);
        return hit;
    }
    return 0;
}

int lsw_ckpt_in_folder(const lsw_ckpt *c, const char *dir)
{
    return c ? lsw_input_in_folder(c->path, dir) : 0;
}
