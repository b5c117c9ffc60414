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
 * copy).  `dtype` LSW_DT_INVALID keeps config.json as it is. */
int lsw_copy_model_files(const char *src_folder, lsw_outdir *o, lsw_dtype dtype);

/* Before anything is written: LSW_E_INPUT (naming the file and the rule) if
 * `src_folder`'s config.json exists but cannot be read or is not a JSON
 * object, so that a merge does not fail at its very end. */
int lsw_check_model_files(const char *src_folder);

/* config.json text with its dtype fields (see above) set to `torch_name`;
 * malloc'd into *out.  LSW_E_INPUT if the text is not a JSON object.  A NULL
 * `torch_name` only checks the text (out and outlen are not touched). */
int lsw_config_json_set_dtype(const char *text, size_t len, const char *torch_name, const char *path, char **out,
                              size_t *outlen);

#endif
