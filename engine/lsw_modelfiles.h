/* lsw_modelfiles — the non-weight files of a Hugging Face model folder.
 * config.json, generation_config.json and the tokenizer files are copied
 * from a source folder into an output folder (docs/output.md).  In config.json the
 * top-level "dtype" and "torch_dtype" values, and those of nested objects
 * (text_config, vision_config, ... of multimodal models) that name a
 * floating-point dtype, are replaced by the output dtype; every other byte
 * is kept. */
#ifndef LSW_MODELFILES_H
#define LSW_MODELFILES_H

#include <stddef.h>

#include "lsw_commit.h"
#include "lsw_dtype.h"

/* NULL-terminated list of the file names that may be copied. */
extern const char *const lsw_model_file_names[];

/* Copy those of the files present in `src_folder` (may be NULL: nothing to
 * copy) into `o` (rank 0, the folder's owner).  Side files are untrusted:
 * each is copied only if it is a regular file after following symlinks (the
 * Hugging Face cache's snapshots/ -> blobs/ links are followed); a FIFO,
 * device or socket is named in a warning on stderr and skipped, never
 * opened for a blocking read.  Every file but config.json is streamed in
 * 1 MiB blocks (memory stays bounded whatever its size); config.json is read
 * whole, up to 64 MiB.  `dtype` LSW_DT_INVALID keeps config.json as it is.
 * `layer_map` (n_out entries; NULL: none) restacks config.json's layers
 * (lsw_hfconfig_restack) for slices that change the layer stack. */
int lsw_copy_model_files(const char *src_folder, lsw_outdir *o, lsw_dtype dtype, const int *layer_map, int n_out);

/* LSW_E_INPUT (naming the file and the rule) if `src_folder`'s config.json
 * exists but is not a regular file, is larger than 64 MiB, or is not a JSON
 * object.  A missing one is fine (verify of an output whose reference was
 * a single file). */
int lsw_check_model_files(const char *src_folder);

/* Before anything is written, for the model the output copies its config
 * from (`model`: its name, for the message): lsw_check_model_files, and
 * LSW_E_INPUT if a folder model has no config.json at all (the output would
 * not load in transformers).  A single-file model (NULL folder) passes. */
int lsw_check_reference_files(const char *src_folder, const char *model);

/* config.json text with its dtype fields (see above) set to `torch_name`;
 * malloc'd into *out.  LSW_E_INPUT if the text is not a JSON object.  A NULL
 * `torch_name` only checks the text (out and outlen are not touched). */
int lsw_config_json_set_dtype(const char *text, size_t len, const char *torch_name, const char *path, char **out,
                              size_t *outlen);

#endif
