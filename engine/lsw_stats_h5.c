#include "lsw_stats_h5.h"

#include "lsw_error.h"
#include "lsw_mav.h"

#ifdef LSW_HAVE_HDF5

#include <hdf5.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int lsw_stats_h5_available(void) { return 1; }

/* Variable-length UTF-8 strings: h5py reads them as `str`. */
static hid_t vstr_type(void)
{
    hid_t t = H5Tcopy(H5T_C_S1);
    if (t >= 0 && (H5Tset_size(t, H5T_VARIABLE) < 0 || H5Tset_cset(t, H5T_CSET_UTF8) < 0)) {
        H5Tclose(t);
        t = -1;
    }
    return t;
}

/* A string attribute: scalar (n == SIZE_MAX, value v[0]) or an array of n
 * strings (an empty array has a null dataspace). */
static int str_attr(hid_t obj, const char *name, const char *const *v, size_t n)
{
    hsize_t dims[1] = {(hsize_t)n};
    hid_t t = vstr_type(), a = -1;
    hid_t sp = n == SIZE_MAX ? H5Screate(H5S_SCALAR) : n ? H5Screate_simple(1, dims, NULL) : H5Screate(H5S_NULL);
    int ok = t >= 0 && sp >= 0 && (a = H5Acreate2(obj, name, t, sp, H5P_DEFAULT, H5P_DEFAULT)) >= 0 &&
             (n == 0 || H5Awrite(a, t, v) >= 0);
    if (a >= 0)
        H5Aclose(a);
    if (sp >= 0)
        H5Sclose(sp);
    if (t >= 0)
        H5Tclose(t);
    return ok ? 0 : -1;
}

static int str1_attr(hid_t obj, const char *name, const char *value)
{
    const char *v[1] = {value};
    return str_attr(obj, name, v, SIZE_MAX);
}

static int num_attr(hid_t obj, const char *name, hid_t ftype, hid_t mtype, const void *value)
{
    hid_t sp = H5Screate(H5S_SCALAR), a = -1;
    int ok = sp >= 0 && (a = H5Acreate2(obj, name, ftype, sp, H5P_DEFAULT, H5P_DEFAULT)) >= 0 &&
             H5Awrite(a, mtype, value) >= 0;
    if (a >= 0)
        H5Aclose(a);
    if (sp >= 0)
        H5Sclose(sp);
    return ok ? 0 : -1;
}

static int f64_attr(hid_t obj, const char *name, double v)
{
    return num_attr(obj, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &v);
}

/* A contiguous dataset of `rank` dims; returns its id (the caller closes it) or -1. */
static hid_t write_ds(hid_t grp, hid_t lcpl, const char *name, int rank, const hsize_t *dims, hid_t ftype,
                      hid_t mtype, const void *v)
{
    hid_t sp = H5Screate_simple(rank, dims, NULL), dcpl = H5Pcreate(H5P_DATASET_CREATE), d = -1;
    /* no modification times: the same results give the same bytes */
    int ok = sp >= 0 && dcpl >= 0 && H5Pset_obj_track_times(dcpl, 0) >= 0 &&
             (d = H5Dcreate2(grp, name, ftype, sp, lcpl, dcpl, H5P_DEFAULT)) >= 0 &&
             H5Dwrite(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) >= 0;
    if (!ok && d >= 0) {
        H5Dclose(d);
        d = -1;
    }
    if (dcpl >= 0)
        H5Pclose(dcpl);
    if (sp >= 0)
        H5Sclose(sp);
    return d;
}

static hid_t new_group(hid_t parent, const char *name, hid_t lcpl)
{
    hid_t gcpl = H5Pcreate(H5P_GROUP_CREATE), g = -1;
    if (gcpl >= 0 && H5Pset_obj_track_times(gcpl, 0) >= 0)
        g = H5Gcreate2(parent, name, lcpl, gcpl, H5P_DEFAULT);
    if (gcpl >= 0)
        H5Pclose(gcpl);
    return g;
}

/* /<expert>: the row MAVs of every tensor, with the tensor's squared norms. */
static int expert_rows(const char *path, hid_t f, hid_t lcpl, const lsw_stats_h5_in *in, size_t e)
{
    const lsw_stats_expert *x = &in->s->experts[e];
    hid_t g = new_group(f, x->name, lcpl);
    int rc = 0;
    if (g < 0 || f64_attr(g, "model_mav", x->model_mav) || str1_attr(g, "path", in->paths[e]))
        rc = lsw_err_set(LSW_E_IO, "%s: cannot create group '/%s'", path, x->name);
    for (size_t i = 0; i < lsw_ckpt_count(in->base) && !rc; i++) {
        if (in->row_off[i] == UINT64_MAX)
            continue;
        const lsw_tensor_desc *t = lsw_ckpt_at(in->base, i);
        uint64_t nr, rl;
        lsw_mav_rows(t, &nr, &rl);
        hsize_t dims[1] = {(hsize_t)nr};
        hid_t d = write_ds(g, lcpl, t->name, 1, dims, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, in->rows[e] + in->row_off[i]);
        if (d < 0 || (in->bsq && (f64_attr(d, "sumsq_base", in->bsq[i]) || f64_attr(d, "sumsq_delta", in->dsq[e][i]))))
            rc = lsw_err_set(LSW_E_IO, "%s: cannot write dataset '/%s/%s'", path, x->name, t->name);
        if (d >= 0)
            H5Dclose(d);
    }
    if (g >= 0)
        H5Gclose(g);
    return rc;
}

#define NSTAT 8
static const char *const stat_names[NSTAT] = {"mean", "max", "p50", "p90", "p99", "unchanged", "rel_change", "share"};

static double stat_of(const lsw_stats_cell *c, int k)
{
    if (!c->rows)
        return NAN;
    switch (k) {
    case 0: return c->mean;
    case 1: return c->max;
    case 2: return c->p50;
    case 3: return c->p90;
    case 4: return c->p99;
    case 5: return c->unchanged;
    case 6: return c->rel_change;
    default: return c->share;
    }
}

/* The statistics of n cells as datasets of `rank` dims under g. */
static int cell_sets(hid_t g, hid_t lcpl, const lsw_stats_cell *cells, size_t n, int rank, const hsize_t *dims)
{
    if (!n)
        return 0;
    double *v = malloc(n * sizeof *v);
    uint64_t *r = malloc(n * sizeof *r);
    int ok = v && r;
    for (int k = 0; k < NSTAT && ok; k++) {
        for (size_t c = 0; c < n; c++)
            v[c] = stat_of(&cells[c], k);
        hid_t d = write_ds(g, lcpl, stat_names[k], rank, dims, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, v);
        ok = d >= 0;
        if (d >= 0)
            H5Dclose(d);
    }
    for (size_t c = 0; c < n && ok; c++)
        r[c] = cells[c].rows;
    if (ok) {
        hid_t d = write_ds(g, lcpl, "rows", rank, dims, H5T_STD_U64LE, H5T_NATIVE_UINT64, r);
        ok = d >= 0;
        if (d >= 0)
            H5Dclose(d);
    }
    free(v);
    free(r);
    return ok ? 0 : -1;
}

/* /cells: the layer × type matrices of summary.json. */
static int cell_matrices(const char *path, hid_t f, hid_t lcpl, const lsw_stats_summary *s)
{
    hid_t cg = new_group(f, "cells", lcpl);
    int rc = 0;
    if (cg < 0 || str_attr(cg, "types", (const char *const *)s->types, s->ntypes) ||
        str_attr(cg, "non_layer_types", (const char *const *)s->nl_types, s->nnl))
        rc = lsw_err_set(LSW_E_IO, "%s: cannot create group '/cells'", path);
    hsize_t grid[2] = {(hsize_t)s->layers, (hsize_t)s->ntypes}, nl[1] = {(hsize_t)s->nnl};
    for (size_t e = 0; e < s->nexperts && !rc; e++) {
        const lsw_stats_expert *x = &s->experts[e];
        hid_t g = new_group(cg, x->name, lcpl), n = -1;
        if (g < 0 || cell_sets(g, lcpl, x->grid, (size_t)s->layers * s->ntypes, 2, grid) ||
            (s->nnl && ((n = new_group(g, "non_layer", lcpl)) < 0 || cell_sets(n, lcpl, x->nl, s->nnl, 1, nl))))
            rc = lsw_err_set(LSW_E_IO, "%s: cannot write the cell matrices of '/cells/%s'", path, x->name);
        if (n >= 0)
            H5Gclose(n);
        if (g >= 0)
            H5Gclose(g);
    }
    if (cg >= 0)
        H5Gclose(cg);
    return rc;
}

int lsw_stats_h5_write(const char *path, const lsw_stats_h5_in *in)
{
    /* errors are reported through our own codes, not HDF5's stack printer */
    H5E_auto2_t old_func;
    void *old_data;
    H5Eget_auto2(H5E_DEFAULT, &old_func, &old_data);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    int rc = 0;
    int64_t layers = in->s->layers;
    hid_t fcpl = H5Pcreate(H5P_FILE_CREATE), f = -1, lcpl = H5Pcreate(H5P_LINK_CREATE);
    if (fcpl >= 0 && H5Pset_obj_track_times(fcpl, 0) >= 0)
        f = H5Fcreate(path, H5F_ACC_TRUNC, fcpl, H5P_DEFAULT);
    if (f < 0 || lcpl < 0 || H5Pset_create_intermediate_group(lcpl, 1) < 0 ||
        H5Pset_char_encoding(lcpl, H5T_CSET_UTF8) < 0 || str1_attr(f, "base", in->base_path) ||
        str1_attr(f, "tool", "layerswap stats") || num_attr(f, "layers", H5T_STD_I64LE, H5T_NATIVE_INT64, &layers))
        rc = lsw_err_set(LSW_E_IO, "%s: cannot create the HDF5 file", path);
    for (size_t e = 0; e < in->s->nexperts && !rc; e++)
        rc = expert_rows(path, f, lcpl, in, e);
    if (!rc)
        rc = cell_matrices(path, f, lcpl, in->s);
    if (lcpl >= 0)
        H5Pclose(lcpl);
    if (fcpl >= 0)
        H5Pclose(fcpl);
    if (f >= 0 && H5Fclose(f) < 0 && !rc)
        rc = lsw_err_set(LSW_E_IO, "%s: cannot close the HDF5 file", path);
    H5Eset_auto2(H5E_DEFAULT, old_func, old_data);
    return rc;
}

#else

int lsw_stats_h5_available(void) { return 0; }

int lsw_stats_h5_write(const char *path, const lsw_stats_h5_in *in)
{
    (void)in;
    return lsw_err_set(LSW_E_INTERNAL, "%s: this build has no HDF5", path);
}

#endif
