/* lsw_hfconfig — config.json of a restacked model ("frankenmerge" slices).
 *
 * When slices change the layer stack, the output config.json must say so
 * or transformers cannot load the folder: in every object of config.json
 * that has "num_hidden_layers" (the top level, and nested text configs of
 * multimodal models), that value becomes the output's layer count and every
 * list in the same object with exactly the old num_hidden_layers entries (a
 * per-layer list such as "layer_types" or "no_rope_layers") is restacked:
 * entry i of the new list is entry map[i] of the old one.  Every other byte
 * of the file is kept.
 *
 * The plan that restacks holds its map (lsw_plan.layer_map); the copy of
 * config.json into the output (lsw_copy_model_files) is given it.  No MPI.
 */
#ifndef LSW_HFCONFIG_H
#define LSW_HFCONFIG_H

#include <stddef.h>

/* With a map (output layer i comes from source layer map[i], i < n_out),
 * replace *text (malloc'd, *len bytes, read from `path`) by its rewritten
 * form (the old buffer is freed); map NULL: do nothing.  LSW_E_INPUT if
 * config.json is not JSON or a per-layer list is shorter than the map
 * needs. */
int lsw_hfconfig_restack(char **text, size_t *len, const int *map, int n_out, const char *path);

/* The rewrite itself, pure: *out malloc'd (caller frees). */
int lsw_hfconfig_rewrite(const char *text, size_t len, const int *map, int n_out, const char *path, char **out,
                         size_t *outlen);

#endif
