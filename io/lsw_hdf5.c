#include "lsw_hdf5.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <hdf5.h>
#include <zstd.h>

#include "lsw_array.h"
#include "lsw_error.h"

#ifndef LSW_VERSION
#define LSW_VERSION "unknown"
#endif

_Static_assert(LSW_H5Z_FLAG_REVERSE == H5Z_FLAG_REVERSE, "lsw_zstd_filter.h disagrees with H5Zpublic.h");
_Static_assert(LSW_H5_MAX_RANK == H5S_MAX_RANK, "lsw_h5layout.h disagrees with H5Spublic.h");

/* ---- common ----------------------------------------------------------- */

int lsw_h5z_register(void)
{
    static const H5Z_class2_t cls = {
        H5Z_CLASS_T_VERS, (H5Z_filter_t)LSW_H5Z_ZSTD_ID, 1, 1, "zstd", NULL, NULL, lsw_h5z_zstd,
    };
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    if (H5Zregister(&cls) < 0)
        return lsw_err_set(LSW_E_INTERNAL, "HDF5: cannot register the zstd filter %d", LSW_H5Z_ZSTD_ID);
    return 0;
}

static int h5_init(void)
{
    static int done;
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL); /* again: another module may have restored the printer */
    if (done)
        return 0;
    int rc = lsw_h5z_register();
    if (rc == 0)
        done = 1;
    return rc;
}

static void close_id(hid_t *id, herr_t (*fn)(hid_t))
{
    if (*id >= 0)
        fn(*id);
    *id = -1;
}

static char *dup_str(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p)
        memcpy(p, s, n);
    return p;
}

/* File type of each dtype (a new type id: close it) or -1. */
static hid_t make_type(lsw_dtype dt)
{
    hid_t t = -1;
    switch (dt) {
    case LSW_DT_BF16:
    case LSW_DT_F16:
        t = H5Tcopy(H5T_IEEE_F32LE);
        if (t < 0)
            return -1;
        if ((dt == LSW_DT_BF16 ? H5Tset_fields(t, 15, 7, 8, 0, 7) : H5Tset_fields(t, 15, 10, 5, 0, 10)) < 0 ||
            H5Tset_size(t, 2) < 0 || H5Tset_precision(t, 16) < 0 || H5Tset_offset(t, 0) < 0 ||
            H5Tset_ebias(t, dt == LSW_DT_BF16 ? 127 : 15) < 0) {
            H5Tclose(t);
            return -1;
        }
        return t;
    case LSW_DT_F32: return H5Tcopy(H5T_IEEE_F32LE);
    case LSW_DT_F64: return H5Tcopy(H5T_IEEE_F64LE);
    case LSW_DT_BOOL:
    case LSW_DT_U8:
    case LSW_DT_F8_E5M2:
    case LSW_DT_F8_E4M3:
    case LSW_DT_F8_E8M0: return H5Tcopy(H5T_STD_U8LE);
    case LSW_DT_I8: return H5Tcopy(H5T_STD_I8LE);
    case LSW_DT_I16: return H5Tcopy(H5T_STD_I16LE);
    case LSW_DT_U16: return H5Tcopy(H5T_STD_U16LE);
    case LSW_DT_I32: return H5Tcopy(H5T_STD_I32LE);
    case LSW_DT_U32: return H5Tcopy(H5T_STD_U32LE);
    case LSW_DT_I64: return H5Tcopy(H5T_STD_I64LE);
    case LSW_DT_U64: return H5Tcopy(H5T_STD_U64LE);
    case LSW_DT_C64:
        t = H5Tcreate(H5T_COMPOUND, 8);
        if (t < 0)
            return -1;
        if (H5Tinsert(t, "r", 0, H5T_IEEE_F32LE) < 0 || H5Tinsert(t, "i", 4, H5T_IEEE_F32LE) < 0) {
            H5Tclose(t);
            return -1;
        }
        return t;
    default: return -1;
    }
}

static int float_is(hid_t t, size_t size, size_t spos, size_t epos, size_t esize, size_t mpos, size_t msize,
                    size_t ebias)
{
    size_t a, b, c, d, e;
    return H5Tget_class(t) == H5T_FLOAT && H5Tget_size(t) == size && H5Tget_order(t) == H5T_ORDER_LE &&
           H5Tget_precision(t) == 8 * size && H5Tget_offset(t) == 0 && H5Tget_fields(t, &a, &b, &c, &d, &e) >= 0 &&
           a == spos && b == epos && c == esize && d == mpos && e == msize && H5Tget_ebias(t) == ebias;
}

/* 1 if file type t stores dtype dt bit for bit. */
static int type_matches(hid_t t, lsw_dtype dt)
{
    size_t size = lsw_dtype_size(dt);
    if (!size || H5Tget_size(t) != size)
        return 0;
    H5T_class_t cls = H5Tget_class(t);
    switch (dt) {
    case LSW_DT_BF16: return float_is(t, 2, 15, 7, 8, 0, 7, 127);
    case LSW_DT_F16: return float_is(t, 2, 15, 10, 5, 0, 10, 15);
    case LSW_DT_F32: return float_is(t, 4, 31, 23, 8, 0, 23, 127);
    case LSW_DT_F64: return float_is(t, 8, 63, 52, 11, 0, 52, 1023);
    case LSW_DT_BOOL:
        if (cls == H5T_ENUM) /* h5py writes numpy bool as an enum of int8 */
            return 1;
        /* fall through */
    case LSW_DT_F8_E5M2:
    case LSW_DT_F8_E4M3:
    case LSW_DT_F8_E8M0: return cls == H5T_INTEGER;
    case LSW_DT_I8:
    case LSW_DT_I16:
    case LSW_DT_I32:
    case LSW_DT_I64:
    case LSW_DT_U8:
    case LSW_DT_U16:
    case LSW_DT_U32:
    case LSW_DT_U64: {
        int is_signed = dt == LSW_DT_I8 || dt == LSW_DT_I16 || dt == LSW_DT_I32 || dt == LSW_DT_I64;
        return cls == H5T_INTEGER && (size == 1 || H5Tget_order(t) == H5T_ORDER_LE) &&
               H5Tget_precision(t) == 8 * size && H5Tget_offset(t) == 0 &&
               H5Tget_sign(t) == (is_signed ? H5T_SGN_2 : H5T_SGN_NONE);
    }
    case LSW_DT_C64: {
        if (cls != H5T_COMPOUND || H5Tget_nmembers(t) != 2)
            return 0;
        int ok = 1;
        for (unsigned m = 0; m < 2 && ok; m++) {
            hid_t mt = H5Tget_member_type(t, m);
            ok = mt >= 0 && H5Tget_member_offset(t, m) == 4 * m && float_is(mt, 4, 31, 23, 8, 0, 23, 127);
            if (mt >= 0)
                H5Tclose(mt);
        }
        return ok;
    }
    default: return 0;
    }
}

/* Scalar variable-length UTF-8 string attribute: h5py returns it as `str`
 * (a fixed-length one comes back as bytes).  get_str_attr reads both. */
static int put_str_attr(hid_t obj, const char *name, const char *value)
{
    hid_t t = H5Tcopy(H5T_C_S1), sp = H5Screate(H5S_SCALAR), a = -1;
    int ok = t >= 0 && sp >= 0 && H5Tset_size(t, H5T_VARIABLE) >= 0 && H5Tset_cset(t, H5T_CSET_UTF8) >= 0 &&
             (a = H5Acreate2(obj, name, t, sp, H5P_DEFAULT, H5P_DEFAULT)) >= 0 && H5Awrite(a, t, &value) >= 0;
    close_id(&a, H5Aclose);
    close_id(&sp, H5Sclose);
    close_id(&t, H5Tclose);
    return ok ? 0 : -1;
}

static int put_u8_attr(hid_t obj, const char *name, unsigned char v)
{
    hid_t sp = H5Screate(H5S_SCALAR), a = -1;
    int ok = sp >= 0 && (a = H5Acreate2(obj, name, H5T_STD_U8LE, sp, H5P_DEFAULT, H5P_DEFAULT)) >= 0 &&
             H5Awrite(a, H5T_NATIVE_UCHAR, &v) >= 0;
    close_id(&a, H5Aclose);
    close_id(&sp, H5Sclose);
    return ok ? 0 : -1;
}

/* Read a scalar string attribute (fixed or variable length) of at most
 * `maxlen` bytes.  1 and *out (malloc'd) if present, 0 if absent, -1 if it
 * is not such a string, -2 out of memory. */
static int get_str_attr(hid_t obj, const char *name, size_t maxlen, char **out)
{
    *out = NULL;
    htri_t ex = H5Aexists(obj, name);
    if (ex == 0)
        return 0;
    if (ex < 0)
        return -1;
    int rc = -1;
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT), t = -1, sp = -1, mt = -1;
    if (a < 0 || (t = H5Aget_type(a)) < 0 || (sp = H5Aget_space(a)) < 0 || H5Tget_class(t) != H5T_STRING ||
        H5Sget_simple_extent_npoints(sp) != 1 || (mt = H5Tcopy(H5T_C_S1)) < 0 ||
        H5Tset_cset(mt, H5Tget_cset(t)) < 0) /* HDF5 does not convert between ASCII and UTF-8 */
        goto done;
    htri_t vl = H5Tis_variable_str(t);
    if (vl > 0) {
        char *s = NULL;
        if (H5Tset_size(mt, H5T_VARIABLE) < 0 || H5Aread(a, mt, &s) < 0)
            goto done;
        if (s && strlen(s) <= maxlen) {
            *out = dup_str(s);
            rc = *out ? 1 : -2;
        }
        if (s)
            H5free_memory(s);
    } else if (vl == 0) {
        size_t size = H5Tget_size(t);
        if (size == 0 || size > maxlen + 1 || H5Tset_size(mt, size) < 0 || H5Tset_strpad(mt, H5T_STR_NULLPAD) < 0)
            goto done;
        char *s = calloc(size + 1, 1);
        if (!s) {
            rc = -2;
            goto done;
        }
        if (H5Aread(a, mt, s) < 0) {
            free(s);
            goto done;
        }
        *out = s; /* NUL padded: HDF5 strips the spaces of a space-padded string */
        rc = 1;
    }
done:
    close_id(&mt, H5Tclose);
    close_id(&sp, H5Sclose);
    close_id(&t, H5Tclose);
    close_id(&a, H5Aclose);
    return rc;
}

/* ---- writer ----------------------------------------------------------- */

typedef struct w_dset {
    hid_t id;
    char *name;
    uint64_t rows, rpc, nchunks, ndone;
    unsigned char *done; /* one bit per chunk */
} w_dset;

struct lsw_h5_writer {
    char *path;
    hid_t file, tensors, lcpl;
    int level, shuffle;
    w_dset *d;
    size_t n, cap;
};

/* An HDF5 call failed: the system's reason where it left one in errno
 * (a full disk, `ulimit -f`), which HDF5's own message does not give. */
static int w_fail(const lsw_h5_writer *w, const char *tensor, const char *what)
{
    int e = errno;
    int code = e == ENOSPC || e == EDQUOT || e == EFBIG ? LSW_E_NOSPACE : LSW_E_IO;
    const char *why = e ? strerror(e) : "HDF5 reports a failure";
    if (tensor)
        return lsw_err_set(code, "%s: tensor '%s': %s: %s", w->path, tensor, what, why);
    return lsw_err_set(code, "%s: %s: %s", w->path, what, why);
}

static void w_free(lsw_h5_writer *w)
{
    for (size_t i = 0; i < w->n; i++) {
        close_id(&w->d[i].id, H5Dclose);
        free(w->d[i].name);
        free(w->d[i].done);
    }
    free(w->d);
    close_id(&w->lcpl, H5Pclose);
    close_id(&w->tensors, H5Gclose);
    close_id(&w->file, H5Fclose);
    free(w->path);
    free(w);
}

int lsw_h5_create(const char *path, const char *config_text, const char *plan_text, int level, int shuffle,
                  lsw_h5_writer **out)
{
    *out = NULL;
    if (level < ZSTD_minCLevel() || level > ZSTD_maxCLevel())
        return lsw_err_set(LSW_E_CONFIG, "%s: zstd level %d outside [%d, %d]", path, level, ZSTD_minCLevel(),
                           ZSTD_maxCLevel());
    int rc = h5_init();
    if (rc)
        return rc;
    lsw_h5_writer *w = calloc(1, sizeof *w);
    if (!w || !(w->path = dup_str(path))) {
        free(w);
        return lsw_err_set(LSW_E_NOMEM, "%s: out of memory", path);
    }
    w->file = w->tensors = w->lcpl = -1;
    w->level = level;
    w->shuffle = shuffle != 0;

    /* Deterministic bytes: a pinned format (1.8 objects: dense attribute
     * storage for config/plan texts over 64 KiB, v1 B-tree chunk index that
     * H5Dwrite_chunk has used the longest) and no time stamps on the root
     * group (fcpl), /tensors (gcpl) and each dataset (dcpl). */
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS), fcpl = H5Pcreate(H5P_FILE_CREATE), gcpl = H5Pcreate(H5P_GROUP_CREATE);
    int ok = fapl >= 0 && fcpl >= 0 && gcpl >= 0 && H5Pset_fapl_sec2(fapl) >= 0 &&
             H5Pset_libver_bounds(fapl, H5F_LIBVER_V18, H5F_LIBVER_V18) >= 0 &&
             H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG) >= 0 && H5Pset_file_locking(fapl, 1, 1) >= 0 &&
             H5Pset_obj_track_times(fcpl, 0) >= 0 && H5Pset_obj_track_times(gcpl, 0) >= 0;
    if (!ok) {
        rc = lsw_err_set(LSW_E_INTERNAL, "%s: cannot set up HDF5 property lists", path);
    } else {
        errno = 0;
        w->file = H5Fcreate(path, H5F_ACC_TRUNC, fcpl, fapl);
        if (w->file < 0)
            rc = w_fail(w, NULL, "cannot create the HDF5 file");
        else if (put_str_attr(w->file, "config", config_text ? config_text : "") < 0 ||
                 put_str_attr(w->file, "plan", plan_text ? plan_text : "") < 0 ||
                 put_str_attr(w->file, "layerswap_version", LSW_VERSION) < 0)
            rc = w_fail(w, NULL, "cannot write the root attributes");
        else if ((w->lcpl = H5Pcreate(H5P_LINK_CREATE)) < 0 || H5Pset_char_encoding(w->lcpl, H5T_CSET_UTF8) < 0 ||
                 (w->tensors = H5Gcreate2(w->file, "tensors", w->lcpl, gcpl, H5P_DEFAULT)) < 0)
            rc = w_fail(w, NULL, "cannot create group /tensors");
    }
    if (gcpl >= 0)
        H5Pclose(gcpl);
    if (fcpl >= 0)
        H5Pclose(fcpl);
    if (fapl >= 0)
        H5Pclose(fapl);
    if (rc) {
        w_free(w);
        return rc;
    }
    *out = w;
    return 0;
}

int lsw_h5_define(lsw_h5_writer *w, const char *name, lsw_dtype dt, size_t ndim, const uint64_t *shape,
                  size_t *index)
{
    if (!lsw_h5_name_ok(name))
        return lsw_err_set(LSW_E_INPUT, "%s: tensor '%s': an HDF5 dataset name cannot be empty, \".\" or contain '/'",
                           w->path, name ? name : "");
    if (!lsw_dtype_size(dt))
        return lsw_err_set(LSW_E_INPUT, "%s: tensor '%s': unknown dtype", w->path, name);
    if (ndim > LSW_H5_MAX_RANK)
        return lsw_err_set(LSW_E_INPUT, "%s: tensor '%s': %zu dimensions, HDF5 allows %d", w->path, name, ndim,
                           LSW_H5_MAX_RANK);
    uint64_t rpc = lsw_h5_rows_per_chunk(dt, ndim, shape);
    if (!rpc)
        return lsw_err_set(LSW_E_INPUT, "%s: tensor '%s': a row of the tensor exceeds HDF5's 4 GiB chunk limit",
                           w->path, name);
    htri_t ex = H5Lexists(w->tensors, name, H5P_DEFAULT);
    if (ex != 0)
        return ex > 0 ? lsw_err_set(LSW_E_INPUT, "%s: tensor '%s': defined twice", w->path, name)
                      : w_fail(w, name, "cannot look up the dataset name");
    if (lsw_array_reserve(&w->d, &w->cap, w->n + 1, sizeof *w->d))
        return lsw_err_set(LSW_E_NOMEM, "%s: tensor '%s': out of memory", w->path, name);

    uint64_t nchunks = lsw_h5_chunk_count(dt, ndim, shape), chunk_bytes = lsw_h5_chunk_bytes(dt, ndim, shape);
    int rank = ndim ? (int)ndim : 1;
    hsize_t dims[LSW_H5_MAX_RANK], chunk[LSW_H5_MAX_RANK];
    for (int i = 0; i < rank; i++)
        dims[i] = chunk[i] = ndim ? (hsize_t)shape[i] : 1;
    if (ndim >= 2)
        chunk[0] = (hsize_t)rpc;

    w_dset *d = &w->d[w->n];
    memset(d, 0, sizeof *d);
    d->id = -1;
    d->rows = lsw_h5_rows(ndim, shape);
    d->rpc = rpc;
    d->nchunks = nchunks;
    d->name = dup_str(name);
    d->done = calloc(nchunks / 8 + 1, 1);
    if (!d->name || !d->done) {
        free(d->name);
        free(d->done);
        return lsw_err_set(LSW_E_NOMEM, "%s: tensor '%s': out of memory", w->path, name);
    }

    int rc = 0;
    hid_t ft = make_type(dt), sp = H5Screate_simple(rank, dims, NULL), dcpl = H5Pcreate(H5P_DATASET_CREATE);
    int ok = ft >= 0 && sp >= 0 && dcpl >= 0 && H5Pset_obj_track_times(dcpl, 0) >= 0;
    if (ok && nchunks) {
        unsigned cd[2] = {(unsigned)w->level, (unsigned)chunk_bytes};
        ok = H5Pset_chunk(dcpl, rank, chunk) >= 0 && (!w->shuffle || H5Pset_shuffle(dcpl) >= 0) &&
             H5Pset_filter(dcpl, (H5Z_filter_t)LSW_H5Z_ZSTD_ID, H5Z_FLAG_OPTIONAL, 2, cd) >= 0;
    } else if (ok) {
        ok = H5Pset_layout(dcpl, H5D_CONTIGUOUS) >= 0;
    }
    if (!ok) {
        rc = lsw_err_set(LSW_E_INTERNAL, "%s: tensor '%s': cannot set up the HDF5 dataset properties", w->path, name);
    } else {
        errno = 0;
        d->id = H5Dcreate2(w->tensors, name, ft, sp, w->lcpl, dcpl, H5P_DEFAULT);
        if (d->id < 0)
            rc = w_fail(w, name, "cannot create the dataset");
        else if (put_str_attr(d->id, "dtype", lsw_dtype_name(dt)) < 0 ||
                 (ndim == 0 && put_u8_attr(d->id, "scalar", 1) < 0))
            rc = w_fail(w, name, "cannot write the dataset attributes");
    }
    close_id(&dcpl, H5Pclose);
    close_id(&sp, H5Sclose);
    close_id(&ft, H5Tclose);
    if (rc) { /* the file is unusable now: the caller aborts */
        close_id(&d->id, H5Dclose);
        free(d->name);
        free(d->done);
        return rc;
    }
    if (index)
        *index = w->n;
    w->n++;
    return rc;
}

int lsw_h5_write_chunk(lsw_h5_writer *w, size_t index, uint64_t chunk_row0, const void *compressed, size_t n)
{
    if (index >= w->n)
        return lsw_err_set(LSW_E_INTERNAL, "%s: chunk for undefined dataset index %zu", w->path, index);
    w_dset *d = &w->d[index];
    if (!d->nchunks || chunk_row0 >= d->rows || chunk_row0 % d->rpc)
        return lsw_err_set(LSW_E_INTERNAL, "%s: tensor '%s': no chunk starts at row %llu", w->path, d->name,
                           (unsigned long long)chunk_row0);
    if (!compressed || n == 0 || n > LSW_H5_CHUNK_MAX)
        return lsw_err_set(LSW_E_INTERNAL, "%s: tensor '%s': bad chunk size %zu", w->path, d->name, n);
    uint64_t k = chunk_row0 / d->rpc;
    if (d->done[k / 8] & (1u << (k % 8)))
        return lsw_err_set(LSW_E_INTERNAL, "%s: tensor '%s': chunk at row %llu written twice", w->path, d->name,
                           (unsigned long long)chunk_row0);
    hsize_t off[LSW_H5_MAX_RANK] = {0};
    off[0] = (hsize_t)chunk_row0;
    errno = 0;
    if (H5Dwrite_chunk(d->id, H5P_DEFAULT, 0, off, n, compressed) < 0)
        return w_fail(w, d->name, "cannot write a chunk");
    d->done[k / 8] |= (unsigned char)(1u << (k % 8));
    d->ndone++;
    return 0;
}

int lsw_h5_close(lsw_h5_writer *w)
{
    int rc = 0;
    for (size_t i = 0; i < w->n && !rc; i++)
        if (w->d[i].ndone != w->d[i].nchunks)
            rc = lsw_err_set(LSW_E_INTERNAL, "%s: tensor '%s': %llu of %llu chunks were never written", w->path,
                             w->d[i].name, (unsigned long long)(w->d[i].nchunks - w->d[i].ndone),
                             (unsigned long long)w->d[i].nchunks);
    errno = 0;
    if (H5Fflush(w->file, H5F_SCOPE_LOCAL) < 0 && !rc)
        rc = w_fail(w, NULL, "cannot flush the HDF5 file");
    for (size_t i = 0; i < w->n; i++) {
        if (w->d[i].id >= 0 && H5Dclose(w->d[i].id) < 0 && !rc)
            rc = w_fail(w, w->d[i].name, "cannot close the dataset");
        w->d[i].id = -1;
    }
    if (H5Gclose(w->tensors) < 0 && !rc)
        rc = w_fail(w, NULL, "cannot close group /tensors");
    w->tensors = -1;
    errno = 0;
    if (H5Fclose(w->file) < 0 && !rc)
        rc = w_fail(w, NULL, "cannot close the HDF5 file");
    w->file = -1;
    w_free(w);
    return rc;
}

void lsw_h5_abort(lsw_h5_writer *w)
{
    if (w)
        w_free(w);
}

/* ---- reader ----------------------------------------------------------- */

typedef struct r_tensor {
    lsw_h5_tensor pub;
    uint64_t *shape;
    int scalar_space; /* an HDF5 scalar dataspace (not written by layerswap) */
    uint64_t units;   /* extent of the dataset's dim 0 (1 for a scalar dataspace) */
    uint64_t chunk_bytes;
} r_tensor;

struct lsw_h5_input {
    char *path;
    hid_t file, tensors;
    r_tensor *t;
    size_t n, cap;
    char *config, *plan, *version;
    int iter_rc; /* error of collect_link */
    size_t cur;  /* the tensor whose dataset is open */
    hid_t cur_d, cur_space, cur_type;
};

const char *lsw_h5_input_path(const lsw_h5_input *in) { return in->path; }
size_t lsw_h5_input_count(const lsw_h5_input *in) { return in->n; }

const lsw_h5_tensor *lsw_h5_input_at(const lsw_h5_input *in, size_t i)
{
    return i < in->n ? &in->t[i].pub : NULL;
}

size_t lsw_h5_input_find(const lsw_h5_input *in, const char *name)
{
    size_t lo = 0, hi = in->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(in->t[mid].pub.name, name);
        if (c == 0)
            return mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return (size_t)-1;
}

const char *lsw_h5_input_attr(const lsw_h5_input *in, const char *name)
{
    if (!strcmp(name, "config"))
        return in->config;
    if (!strcmp(name, "plan"))
        return in->plan;
    if (!strcmp(name, "layerswap_version"))
        return in->version;
    return NULL;
}

static void r_close_cur(lsw_h5_input *in)
{
    close_id(&in->cur_type, H5Tclose);
    close_id(&in->cur_space, H5Sclose);
    close_id(&in->cur_d, H5Dclose);
    in->cur = (size_t)-1;
}

void lsw_h5_input_close(lsw_h5_input *in)
{
    if (!in)
        return;
    r_close_cur(in);
    for (size_t i = 0; i < in->n; i++) {
        free((char *)in->t[i].pub.name);
        free(in->t[i].shape);
    }
    free(in->t);
    free(in->config);
    free(in->plan);
    free(in->version);
    close_id(&in->tensors, H5Gclose);
    close_id(&in->file, H5Fclose);
    free(in->path);
    free(in);
}

static herr_t collect_link(hid_t g, const char *name, const H5L_info_t *info, void *data)
{
    (void)g;
    lsw_h5_input *in = data;
    if (info->type != H5L_TYPE_HARD) {
        in->iter_rc = lsw_err_set(LSW_E_INPUT, "%s: tensor '%s': /tensors/%s is a soft or external link, not a dataset",
                                  in->path, name, name);
        return -1;
    }
    if (lsw_array_reserve(&in->t, &in->cap, in->n + 1, sizeof *in->t)) {
        in->iter_rc = lsw_err_set(LSW_E_NOMEM, "%s: out of memory", in->path);
        return -1;
    }
    r_tensor *t = &in->t[in->n];
    memset(t, 0, sizeof *t);
    if (!(t->pub.name = dup_str(name))) {
        in->iter_rc = lsw_err_set(LSW_E_NOMEM, "%s: out of memory", in->path);
        return -1;
    }
    in->n++;
    return 0;
}

static int cmp_tensor(const void *a, const void *b)
{
    return strcmp(((const r_tensor *)a)->pub.name, ((const r_tensor *)b)->pub.name);
}

/* Validate dataset t (open as d) and fill in its description. */
/* The dtype attribute names a known dtype that the HDF5 element type stores. */
static int r_check_dtype(lsw_h5_input *in, r_tensor *t, hid_t d)
{
    const char *name = t->pub.name;
    char *dts = NULL;
    hid_t ft = -1;
    int rc = 0, g = get_str_attr(d, "dtype", 64, &dts);
    lsw_dtype dt = g == 1 ? lsw_dtype_from_name(dts, strlen(dts)) : LSW_DT_INVALID;
    if (g == -2)
        rc = lsw_err_set(LSW_E_NOMEM, "%s: out of memory", in->path);
    else if (g != 1)
        rc = lsw_err_set(LSW_E_INPUT, "%s: tensor '%s': %s", in->path, name,
                         g == 0 ? "no dtype attribute" : "the dtype attribute is not a short scalar string");
    else if (dt == LSW_DT_INVALID)
        rc = lsw_err_set(LSW_E_INPUT, "%s: tensor '%s': unknown dtype '%s'", in->path, name, dts);
    else if ((ft = H5Dget_type(d)) < 0 || !type_matches(ft, dt))
        rc = lsw_err_set(LSW_E_INPUT, "%s: tensor '%s': the HDF5 element type does not store dtype %s", in->path,
                         name, dts);
    else
        t->pub.dtype = dt;
    close_id(&ft, H5Tclose);
    free(dts);
    return rc;
}

/* "scalar" = 1 marks a 0-d tensor stored as [1]; *scalar gets it (0 absent). */
static int r_scalar_attr(lsw_h5_input *in, const char *name, hid_t d, int rank, const hsize_t *dims,
                         unsigned char *scalar)
{
    *scalar = 0;
    htri_t has = H5Aexists(d, "scalar");
    if (has < 0)
        return lsw_err_set(LSW_E_INPUT, "%s: tensor '%s': cannot read attributes", in->path, name);
    if (!has)
        return 0;
    hid_t sa = -1, st = -1, ss = -1;
    int ok = (sa = H5Aopen(d, "scalar", H5P_DEFAULT)) >= 0 && (st = H5Aget_type(sa)) >= 0 &&
             H5Tget_class(st) == H5T_INTEGER && (ss = H5Aget_space(sa)) >= 0 &&
             H5Sget_simple_extent_npoints(ss) == 1 && H5Aread(sa, H5T_NATIVE_UCHAR, scalar) >= 0;
    close_id(&ss, H5Sclose);
    close_id(&st, H5Tclose);
    close_id(&sa, H5Aclose);
    if (!ok || (*scalar && !(rank == 1 && dims[0] == 1)))
        return lsw_err_set(LSW_E_INPUT, "%s: tensor '%s': bad scalar attribute (must be an integer, on shape [1])",
                           in->path, name);
    return 0;
}

/* The dataspace: simple or scalar, not extendible; the shape and its byte
 * size, with checked arithmetic.  dims[0..*rank) get the extent. */
static int r_check_shape(lsw_h5_input *in, r_tensor *t, hid_t d, int *rank, hsize_t *dims)
{
    const char *name = t->pub.name;
    hsize_t maxdims[LSW_H5_MAX_RANK];
    hid_t sp = H5Dget_space(d);
    H5S_class_t sc = sp >= 0 ? H5Sget_simple_extent_type(sp) : H5S_NO_CLASS;
    *rank = sc == H5S_SIMPLE ? H5Sget_simple_extent_ndims(sp) : 0;
    int bad = (sc != H5S_SIMPLE && sc != H5S_SCALAR) || *rank < 0 || *rank > LSW_H5_MAX_RANK ||
              (*rank && H5Sget_simple_extent_dims(sp, dims, maxdims) != *rank);
    close_id(&sp, H5Sclose);
    if (bad)
        return lsw_err_set(LSW_E_INPUT, "%s: tensor '%s': dataspace is neither simple nor scalar", in->path, name);
    /* the storage must be what layerswap writes (lsw_h5layout.h) */
    for (int i = 0; i < *rank; i++)
        if (maxdims[i] != dims[i])
            return lsw_err_set(LSW_E_INPUT, "%s: tensor '%s': an extendible dataset is not a layerswap tensor",
                               in->path, name);
    unsigned char scalar;
    int rc = r_scalar_attr(in, name, d, *rank, dims, &scalar);
    if (rc)
        return rc;
    size_t ndim = scalar ? 0 : (size_t)*rank;
    t->scalar_space = sc == H5S_SCALAR;
    t->units = *rank ? dims[0] : 1;
    if (!(t->shape = malloc((ndim ? ndim : 1) * sizeof *t->shape)))
        return lsw_err_set(LSW_E_NOMEM, "%s: out of memory", in->path);
    uint64_t numel = 1, es = lsw_dtype_size(t->pub.dtype);
    int over = 0;
    for (size_t i = 0; i < ndim; i++) {
        t->shape[i] = dims[i];
        if (dims[i] && numel > UINT64_MAX / dims[i])
            over = 1;
        numel *= dims[i];
    }
    if (over || (numel && es > UINT64_MAX / numel) || numel * es > (uint64_t)INT64_MAX)
        return lsw_err_set(LSW_E_INPUT, "%s: tensor '%s': shape too large (byte size overflows)", in->path, name);
    t->pub.ndim = ndim;
    t->pub.shape = t->shape;
    t->pub.numel = numel;
    t->pub.nbytes = numel * es;
    return 0;
}

/* Chunked storage: any chunking other writers (h5py) choose, as long as a
 * chunk is no larger than the tensor and than HDF5's 4 GiB limit (the
 * decoded size is then bounded by data the file really holds). */
static int r_check_chunks(lsw_h5_input *in, r_tensor *t, hid_t dcpl, int rank, const hsize_t *dims)
{
    hsize_t cd[LSW_H5_MAX_RANK];
    int cr = H5Pget_chunk(dcpl, LSW_H5_MAX_RANK, cd);
    uint64_t cb = lsw_dtype_size(t->pub.dtype);
    int ok = rank > 0 && cr == rank;
    for (int i = 0; ok && i < cr; i++) {
        ok = cd[i] >= 1 && cd[i] <= dims[i] && cb <= LSW_H5_CHUNK_MAX / cd[i];
        cb = ok ? cb * cd[i] : 0;
    }
    if (!ok || cb > LSW_H5_CHUNK_MAX)
        return lsw_err_set(LSW_E_INPUT, "%s: tensor '%s': a chunk is larger than the tensor or than 4 GiB", in->path,
                           t->pub.name);
    t->chunk_bytes = cb;
    return 0;
}

/* The filter pipeline: [shuffle,] zstd with cd_values[1] = the chunk size,
 * every filter available now rather than half way through a merge. */
static int r_check_filters(lsw_h5_input *in, r_tensor *t, hid_t dcpl, H5D_layout_t layout)
{
    const char *name = t->pub.name;
    int nf = H5Pget_nfilters(dcpl), seen_shuffle = 0, seen_zstd = 0;
    for (int i = 0; i < nf; i++) {
        unsigned flags = 0, cdv[8];
        size_t ncd = 8;
        char fname[64] = "";
        H5Z_filter_t id = H5Pget_filter2(dcpl, (unsigned)i, &flags, &ncd, cdv, sizeof fname, fname, NULL);
        if (id < 0 || H5Zfilter_avail(id) <= 0)
            return lsw_err_set(LSW_E_INPUT,
                               "%s: tensor '%s': compressed with HDF5 filter %d (%s), which is not available in this "
                               "build (is HDF5_PLUGIN_PATH set?)",
                               in->path, name, (int)id, fname[0] ? fname : "unnamed");
        if (layout != H5D_CHUNKED || (id != H5Z_FILTER_SHUFFLE && id != LSW_H5Z_ZSTD_ID) ||
            (id == H5Z_FILTER_SHUFFLE && (seen_shuffle++ || seen_zstd)) || (id == LSW_H5Z_ZSTD_ID && seen_zstd++))
            return lsw_err_set(LSW_E_INPUT, "%s: tensor '%s': filter pipeline is not [shuffle,] zstd (%d at %d)",
                               in->path, name, (int)id, i);
        if (id == LSW_H5Z_ZSTD_ID && (ncd < 2 || (uint64_t)cdv[1] != t->chunk_bytes))
            return lsw_err_set(LSW_E_INPUT, "%s: tensor '%s': zstd filter parameters %s the chunk size %llu", in->path,
                               name, ncd < 2 ? "lack" : "do not match", (unsigned long long)t->chunk_bytes);
    }
    return 0;
}

/* One dataset of /tensors: dtype, shape, then its storage, which the reader
 * trusts in nothing (HDF5 1.10 copies a whole chunk out of whatever a filter
 * returns, so chunk geometry and filter parameters are checked first). */
static int r_check(lsw_h5_input *in, r_tensor *t, hid_t d)
{
    int rank = 0;
    hsize_t dims[LSW_H5_MAX_RANK];
    int rc = r_check_dtype(in, t, d);
    if (!rc)
        rc = r_check_shape(in, t, d, &rank, dims);
    if (rc)
        return rc;
    hid_t dcpl = H5Dget_create_plist(d);
    if (dcpl < 0)
        return lsw_err_set(LSW_E_INPUT, "%s: tensor '%s': cannot read the dataset properties", in->path, t->pub.name);
    H5D_layout_t layout = H5Pget_layout(dcpl);
    if (layout == H5D_CHUNKED)
        rc = r_check_chunks(in, t, dcpl, rank, dims);
    else if (layout != H5D_CONTIGUOUS && layout != H5D_COMPACT)
        rc = lsw_err_set(LSW_E_INPUT, "%s: tensor '%s': unknown storage layout", in->path, t->pub.name);
    if (!rc)
        rc = r_check_filters(in, t, dcpl, layout);
    close_id(&dcpl, H5Pclose);
    return rc;
}

int lsw_h5_open_input(const char *path, lsw_h5_input **out)
{
    *out = NULL;
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
        return lsw_err_set(LSW_E_NOTFOUND, "%s: not found or not a regular file", path);
    int rc = h5_init();
    if (rc)
        return rc;
    lsw_h5_input *in = calloc(1, sizeof *in);
    if (!in || !(in->path = dup_str(path))) {
        free(in);
        return lsw_err_set(LSW_E_NOMEM, "%s: out of memory", path);
    }
    in->file = in->tensors = in->cur_d = in->cur_space = in->cur_type = -1;
    in->cur = (size_t)-1;

    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl < 0 || H5Pset_fapl_sec2(fapl) < 0 || H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG) < 0 ||
        H5Pset_file_locking(fapl, 1, 1) < 0) {
        rc = lsw_err_set(LSW_E_INTERNAL, "%s: cannot set up HDF5 file access", path);
        goto fail;
    }
    in->file = H5Fopen(path, H5F_ACC_RDONLY, fapl);
    if (in->file < 0) {
        rc = lsw_err_set(LSW_E_INPUT, "%s: not a readable HDF5 file", path);
        goto fail;
    }
    H5L_info_t li;
    if (H5Lexists(in->file, "tensors", H5P_DEFAULT) <= 0 || H5Lget_info(in->file, "tensors", &li, H5P_DEFAULT) < 0 ||
        li.type != H5L_TYPE_HARD || (in->tensors = H5Gopen2(in->file, "tensors", H5P_DEFAULT)) < 0) {
        rc = lsw_err_set(LSW_E_INPUT, "%s: no group /tensors", path);
        goto fail;
    }
    int g;
    if ((g = get_str_attr(in->file, "config", (size_t)1 << 30, &in->config)) < 0 ||
        (g = get_str_attr(in->file, "plan", (size_t)1 << 30, &in->plan)) < 0 ||
        (g = get_str_attr(in->file, "layerswap_version", 256, &in->version)) < 0) {
        rc = g == -2 ? lsw_err_set(LSW_E_NOMEM, "%s: out of memory", path)
                     : lsw_err_set(LSW_E_INPUT, "%s: root attributes config, plan, layerswap_version must be strings",
                                   path);
        goto fail;
    }
    hsize_t idx = 0;
    if (H5Literate(in->tensors, H5_INDEX_NAME, H5_ITER_INC, &idx, collect_link, in) < 0) {
        rc = in->iter_rc ? in->iter_rc : lsw_err_set(LSW_E_INPUT, "%s: cannot list group /tensors", path);
        goto fail;
    }
    qsort(in->t, in->n, sizeof *in->t, cmp_tensor);
    for (size_t i = 0; i < in->n; i++) {
        r_tensor *t = &in->t[i];
        if (!lsw_h5_name_ok(t->pub.name) || (i && !strcmp(t->pub.name, in->t[i - 1].pub.name))) {
            rc = lsw_err_set(LSW_E_INPUT, "%s: tensor '%s': bad or duplicate name", path, t->pub.name);
            goto fail;
        }
        hid_t d = H5Dopen2(in->tensors, t->pub.name, H5P_DEFAULT);
        if (d < 0) {
            rc = lsw_err_set(LSW_E_INPUT, "%s: tensor '%s': /tensors/%s is not a dataset", path, t->pub.name,
                             t->pub.name);
            goto fail;
        }
        rc = r_check(in, t, d);
        H5Dclose(d);
        if (rc)
            goto fail;
    }
    H5Pclose(fapl);
    *out = in;
    return 0;
fail:
    if (fapl >= 0)
        H5Pclose(fapl);
    lsw_h5_input_close(in);
    return rc;
}

static int r_open(lsw_h5_input *in, size_t i)
{
    if (in->cur == i)
        return 0;
    r_close_cur(in);
    r_tensor *t = &in->t[i];
    hid_t dapl = H5Pcreate(H5P_DATASET_ACCESS);
    /* two decoded chunks stay cached, so ranges that split a chunk decode it once */
    uint64_t cache = t->chunk_bytes <= (256u << 20) ? 2 * t->chunk_bytes : t->chunk_bytes + (1u << 20);
    if (cache < (1u << 20))
        cache = 1u << 20;
    if (dapl < 0 || H5Pset_chunk_cache(dapl, 521, (size_t)cache, 1.0) < 0 ||
        (in->cur_d = H5Dopen2(in->tensors, t->pub.name, dapl)) < 0 || (in->cur_space = H5Dget_space(in->cur_d)) < 0 ||
        (in->cur_type = H5Dget_type(in->cur_d)) < 0) {
        if (dapl >= 0)
            H5Pclose(dapl);
        r_close_cur(in);
        return lsw_err_set(LSW_E_READ, "%s: tensor '%s': cannot open the dataset", in->path, t->pub.name);
    }
    H5Pclose(dapl);
    in->cur = i;
    return 0;
}

/* Read units [u0, u0 + cnt) of dim 0 (the whole dataset for a scalar dataspace) into dst. */
static int r_units(lsw_h5_input *in, r_tensor *t, uint64_t u0, uint64_t cnt, void *dst)
{
    int ok;
    if (t->scalar_space) {
        ok = H5Dread(in->cur_d, in->cur_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, dst) >= 0;
    } else {
        int rank = H5Sget_simple_extent_ndims(in->cur_space);
        hsize_t start[LSW_H5_MAX_RANK] = {0}, count[LSW_H5_MAX_RANK];
        if (rank < 1 || H5Sget_simple_extent_dims(in->cur_space, count, NULL) != rank)
            return lsw_err_set(LSW_E_READ, "%s: tensor '%s': cannot read the dataspace", in->path, t->pub.name);
        start[0] = u0;
        count[0] = cnt;
        /* memory space of the selection's own shape: a flat one makes HDF5
         * 1.10 map elements one by one, ten times slower */
        hid_t fs = H5Scopy(in->cur_space), ms = H5Screate_simple(rank, count, NULL);
        ok = fs >= 0 && ms >= 0 && H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL) >= 0 &&
             H5Dread(in->cur_d, in->cur_type, ms, fs, H5P_DEFAULT, dst) >= 0;
        if (ms >= 0)
            H5Sclose(ms);
        if (fs >= 0)
            H5Sclose(fs);
    }
    if (!ok)
        return lsw_err_set(LSW_E_READ, "%s: tensor '%s': HDF5 read failed (damaged chunk, I/O error or missing filter)",
                           in->path, t->pub.name);
    return 0;
}

int lsw_h5_input_read(lsw_h5_input *in, size_t i, uint64_t off, void *buf, size_t n)
{
    if (i >= in->n)
        return lsw_err_set(LSW_E_INTERNAL, "%s: no tensor %zu", in->path, i);
    r_tensor *t = &in->t[i];
    if (off > t->pub.nbytes || n > t->pub.nbytes - off)
        return lsw_err_set(LSW_E_INTERNAL, "%s: tensor '%s': read [%llu, +%zu) outside its %llu bytes", in->path,
                           t->pub.name, (unsigned long long)off, n, (unsigned long long)t->pub.nbytes);
    if (n == 0)
        return 0;
    int rc = r_open(in, i);
    if (rc)
        return rc;
    uint64_t ub = t->pub.nbytes / t->units; /* bytes per unit of dim 0 */
    unsigned char *dst = buf, *tmp = NULL;
    uint64_t end = off + n;
    if (off % ub || end % ub) {
        if (!(tmp = malloc(ub)))
            return lsw_err_set(LSW_E_NOMEM, "%s: tensor '%s': out of memory", in->path, t->pub.name);
    }
    uint64_t u = off / ub;
    if (off % ub) { /* head: part of one unit */
        uint64_t skip = off % ub, take = ub - skip < n ? ub - skip : n;
        if ((rc = r_units(in, t, u, 1, tmp)))
            goto done;
        memcpy(dst, tmp + skip, take);
        dst += take;
        off += take;
        u++;
    }
    if (end - off >= ub) { /* whole units straight into the caller's buffer */
        uint64_t cnt = (end - off) / ub;
        if ((rc = r_units(in, t, u, cnt, dst)))
            goto done;
        dst += cnt * ub;
        off += cnt * ub;
        u += cnt;
    }
    if (off < end) { /* tail */
        if ((rc = r_units(in, t, u, 1, tmp)))
            goto done;
        memcpy(dst, tmp, end - off);
    }
done:
    free(tmp);
    return rc;
}
