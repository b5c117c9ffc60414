/* lsw_mkyaml — a mergekit YAML config translated into the equivalent native
 * JSON config (docs/mergekit.md), which lsw_config then parses as any other.
 *
 * Accepted keys: merge_method, base_model, models (each {model, parameters}),
 * slices (each {sources: [{model, layer_range: [a, b], parameters}],
 * parameters}), parameters, dtype, out_dtype, tokenizer_source (base or a
 * model), name (ignored).  Parameter values: a number, a gradient list, or a
 * list of {filter: substring, value: ...} (filter "*" or none: every
 * tensor); parameters of one model given at slice or top level are folded
 * into every source, in mergekit's precedence (source, slice, top level).
 *
 * Refused, exit 1 with line, column and the key: hub ids that are not local
 * paths, "model+lora" paths, int8_mask: true, tokenizer_source: union,
 * tokenizer / chat_template / modules, methods and keys not listed, a
 * parameter a method does not have.  The YAML itself is untrusted
 * (lsw_yaml).  No MPI.
 */
#ifndef LSW_MKYAML_H
#define LSW_MKYAML_H

#include <stddef.h>

/* 1 if `path` ends in ".yml" or ".yaml". */
int lsw_mkyaml_is_yaml_name(const char *path);

/* Translate `len` bytes of YAML read from `file` (in folder `dir`, which
 * relative model paths refer to) into native JSON text: *json is malloc'd
 * (NUL-terminated, *jlen bytes), owned by the caller.  Errors: LSW_E_CONFIG
 * ("FILE: line L, column C: key 'K': RULE"), LSW_E_NOMEM. */
int lsw_mkyaml_to_json(const char *text, size_t len, const char *file, const char *dir, char **json, size_t *jlen);

#endif
