#include "lsw_stats_h5.h"

#include "lsw_error.h"
#include "lsw_mav.h"

#ifdef LSW_HAVE_HDF5

#include <hdf5.h>
#include <string.h>

int lsw_stats_h5_available(void) { return 1; }

static int str_attr(hid_t obj, const char *name, const char *value)
{
    hid_t t = H5Tcopy(H5T_C_S1), sp = H5Screate(H5S_SCALAR), a = -1;
    int ok = t >= 0 && sp >= 0 && H5Tset_size(t, strlen(value) + 1) >= 0 && H5Tset_cset(t, H5T_CSET_UTF8) >= 0 &&
             (a = H5Acreate2(obj, name, t, sp, H5P_DEFAULT, H5P_DEFAULT)) >= 0 && H5Awrite(a, t, value) >= 0;
    if (a >= 0)
        H5Aclose(a);
    if (sp >= 0)
        H5Sclose(sp);
    if (t >= 0)
        H5Tclose(t);
    return ok ? 0 : -1;
}

static int f64_attr(hid_t obj, const char *name, double value)
{
    hid_t sp = H5Screate(H5S_SCALAR), a = -1;
    int ok = sp >= 0 && (a = H5Acreate2(obj, name, H5T_IEEE_F64LE, sp, H5P_DEFAULT, H5P_DEFAULT)) >= 0 &&
             H5Awrite(a, H5T_NATIVE_DOUBLE, &value) >= 0;
    if (a >= 0)
        H5Aclose(a);
    if (sp >= 0)
        H5Sclose(sp);
    return ok ? 0 : -1;
}

static int write_dataset(hid_t grp, hid_t lcpl, const char *name, const double *v, uint64_t n)
{
    hsize_t dims[1] = {(hsize_t)n}, chunk[1] = {(hsize_t)(n < 65536 ? n : 65536)};
    hid_t sp = H5Screate_simple(1, dims, NULL), dcpl = H5Pcreate(H5P_DATASET_CREATE), d = -1;
    /* no modification times: the same row MAVs give the same bytes */
    int ok = sp >= 0 && dcpl >= 0 && H5Pset_obj_track_times(dcpl, 0) >= 0 && H5Pset_chunk(dcpl, 1, chunk) >= 0 &&
             H5Pset_shuffle(dcpl) >= 0 && H5Pset_deflate(dcpl, 4) >= 0 &&
             (d = H5Dcreate2(grp, name, H5T_IEEE_F64LE, sp, lcpl, dcpl, H5P_DEFAULT)) >= 0 &&
             H5Dwrite(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) >= 0;
    if (d >= 0)
        H5Dclose(d);
    if (dcpl >= 0)
        H5Pclose(dcpl);
    if (sp >= 0)
        H5Sclose(sp);
    return ok ? 0 : -1;
}

int lsw_stats_h5_write(const char *path, const lsw_ckpt *base, const char *base_path, size_t nexperts,
                       const char *const *names, const char *const *paths, const double *model_mav,
                       const uint64_t *row_off, const double *const *rows)
{
    /* errors are reported through our own codes, not HDF5's stack printer */
    H5E_auto2_t old_func;
    void *old_data;
    H5Eget_auto2(H5E_DEFAULT, &old_func, &old_data);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    int rc = 0;
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE), gcpl = H5Pcreate(H5P_GROUP_CREATE);
    if (f < 0 || lcpl < 0 || gcpl < 0 || H5Pset_obj_track_times(gcpl, 0) < 0 ||
        H5Pset_create_intermediate_group(lcpl, 1) < 0 ||
        H5Pset_char_encoding(lcpl, H5T_CSET_UTF8) < 0 || str_attr(f, "base", base_path) ||
        str_attr(f, "tool", "layerswap stats"))
        rc = lsw_err_set(LSW_E_IO, "%s: cannot create the HDF5 file", path);
    for (size_t e = 0; e < nexperts && !rc; e++) {
        hid_t g = H5Gcreate2(f, names[e], lcpl, gcpl, H5P_DEFAULT);
        if (g < 0 || f64_attr(g, "model_mav", model_mav[e]) || str_attr(g, "path", paths[e])) {
            rc = lsw_err_set(LSW_E_IO, "%s: cannot create group '/%s'", path, names[e]);
        }
        for (size_t i = 0; i < lsw_ckpt_count(base) && !rc; i++) {
            if (row_off[i] == UINT64_MAX)
                continue;
            const lsw_tensor_desc *t = lsw_ckpt_at(base, i);
            uint64_t nr, rl;
            lsw_mav_rows(t, &nr, &rl);
            if (write_dataset(g, lcpl, t->name, rows[e] + row_off[i], nr))
                rc = lsw_err_set(LSW_E_IO, "%s: cannot write dataset '/%s/%s'", path, names[e], t->name);
        }
        if (g >= 0)
            H5Gclose(g);
    }
    if (lcpl >= 0)
        H5Pclose(lcpl);
    if (gcpl >= 0)
        H5Pclose(gcpl);
    if (f >= 0 && H5Fclose(f) < 0 && !rc)
        rc = lsw_err_set(LSW_E_IO, "%s: cannot close the HDF5 file", path);
    H5Eset_auto2(H5E_DEFAULT, old_func, old_data);
    return rc;
}

#else

int lsw_stats_h5_available(void) { return 0; }

int lsw_stats_h5_write(const char *path, const lsw_ckpt *base, const char *base_path, size_t nexperts,
                       const char *const *names, const char *const *paths, const double *model_mav,
                       const uint64_t *row_off, const double *const *rows)
{
    (void)base; (void)base_path; (void)nexperts; (void)names; (void)paths; (void)model_mav; (void)row_off; (void)rows;
    return lsw_err_set(LSW_E_INTERNAL, "%s: this build has no HDF5", path);
}

#endif
