/* h5zstd_plugin — the zstd filter (32015) of model.h5 as an HDF5 plugin.
 *
 * Layout of the plugin: libh5zstd.so in build/plugins/ (installed to
 * lib/hdf5/plugins/), found by HDF5 through HDF5_PLUGIN_PATH; it exports
 *   H5PLget_plugin_type() -> H5PL_TYPE_FILTER
 *   H5PLget_plugin_info() -> H5Z_class2_t {id 32015, "zstd", encoder and
 *                            decoder present, filter lsw_h5z_zstd}
 * and nothing else.  The chunk format is in io/lsw_zstd_filter.h.
 *
 * HDF5 headers are used for types and constants only: the plugin references
 * no HDF5 symbol, because h5py loads libhdf5 with RTLD_LOCAL and a plugin
 * that needs HDF5 symbols fails to load there.  It links libzstd and libc
 * only (checked by the test hdf5_plugin_symbols).
 */
#include <H5PLextern.h>

#include "lsw_zstd_filter.h"

_Static_assert(LSW_H5Z_FLAG_REVERSE == H5Z_FLAG_REVERSE, "lsw_zstd_filter.h disagrees with H5Zpublic.h");

static const H5Z_class2_t zstd_class = {
    H5Z_CLASS_T_VERS,               /* version of this struct */
    (H5Z_filter_t)LSW_H5Z_ZSTD_ID,  /* filter id */
    1,                              /* encoder present */
    1,                              /* decoder present */
    "zstd",                         /* name for error messages */
    NULL,                           /* can_apply */
    NULL,                           /* set_local */
    lsw_h5z_zstd,                   /* the filter */
};

H5PL_type_t H5PLget_plugin_type(void)
{
    return H5PL_TYPE_FILTER;
}

const void *H5PLget_plugin_info(void)
{
    return &zstd_class;
}
