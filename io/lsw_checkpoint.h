/* lsw_checkpoint — one input model, whatever its files.
 *
 * A checkpoint is a single `.safetensors` file, a folder holding
 * `model.safetensors`, a layerswap `model.h5` (the file, or a folder holding
 * it; read through lsw_hdf5), or a folder holding
 * `model.safetensors.index.json` plus the shards it names:
 *   {"metadata": {...}, "weight_map": {"<tensor>": "<shard file name>", ...}}
 * Shard names must be plain file names of the same folder; every listed
 * tensor must be in its shard and no tensor may be in two shards.  Pickle
 * checkpoints (*.bin, *.pt, *.pth, *.ckpt, *.pkl) are refused.
 *
 * All headers are validated at open; tensor data is read later, by range.
 */
#ifndef LSW_CHECKPOINT_H
#define LSW_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "lsw_dtype.h"

typedef struct lsw_tensor_desc {
    const char *name;
    lsw_dtype dtype;
    size_t ndim;
    const uint64_t *shape;
    uint64_t numel;
    uint64_t nbytes;
    int layer;       /* i of "layers.<i>." in the name, or -1 */
    unsigned file;   /* which file of the checkpoint holds it */
    uint64_t offset; /* absolute offset of its first byte in that file (HDF5: the reader's tensor index) */
} lsw_tensor_desc;

typedef struct lsw_ckpt lsw_ckpt; /* opaque */

/* Open and validate the checkpoint at `path`.  Errors: LSW_E_NOTFOUND,
 * LSW_E_INPUT (recorded with file, tensor and rule), LSW_E_NOMEM. */
int lsw_ckpt_open(const char *path, lsw_ckpt **out);
void lsw_ckpt_close(lsw_ckpt *c); /* accepts NULL */

const char *lsw_ckpt_path(const lsw_ckpt *c);
/* The folder of a folder checkpoint (config and tokenizer files live there); NULL for a single file. */
const char *lsw_ckpt_folder(const lsw_ckpt *c);
size_t lsw_ckpt_count(const lsw_ckpt *c);
/* Tensor i in name order (byte-wise). */
const lsw_tensor_desc *lsw_ckpt_at(const lsw_ckpt *c, size_t i);
const lsw_tensor_desc *lsw_ckpt_find(const lsw_ckpt *c, const char *name);
/* Number of layers: 1 + the largest layer index, 0 if none. */
int lsw_ckpt_layers(const lsw_ckpt *c);
/* LSW_E_INPUT unless every layer 0..L-1 has a tensor.  A whole model passes;
 * one shard of it need not (it is still a valid checkpoint), but statistics
 * of it per layer would be meaningless, and a stray "layers.999999." would
 * make tables of a million empty layers. */
int lsw_ckpt_check_layers(const lsw_ckpt *c);
size_t lsw_ckpt_file_count(const lsw_ckpt *c);
const char *lsw_ckpt_file_path(const lsw_ckpt *c, unsigned file);
/* Total bytes of all tensor data. */
uint64_t lsw_ckpt_data_bytes(const lsw_ckpt *c);
/* 64-bit identity of the checkpoint: its headers, file sizes and modification times. */
uint64_t lsw_ckpt_identity(const lsw_ckpt *c);
/* 1 if writing into folder `dir` could touch the input at `path` (a model
 * path as a config gives it: folder, .safetensors, index or .h5): `dir`, as it
 * will be once created (lsw_path_resolve_future), is by device and inode the
 * model's folder, the folder of a file it names, or the folder a symlink
 * among those files resolves to (the Hugging Face cache's snapshots/ ->
 * blobs/).  Symlinks, "..", trailing slashes and bind mounts all compare
 * equal.  0 when either does not exist.  Reads only folder entries; local. */
int lsw_input_in_folder(const char *path, const char *dir);
/* lsw_input_in_folder of an opened checkpoint's path (0 for NULL). */
int lsw_ckpt_in_folder(const lsw_ckpt *c, const char *dir);
/* A view: a checkpoint whose tensor list is ref's (names, dtypes, shapes;
 * ref must stay open while the view is) but whose bytes are computed by
 * `read` (a derived model, engine/lsw_derived): lsw_ckpt_read on the view
 * calls read(user, view, t, off, buf, n).  Its path is "derived model
 * 'NAME'", its folder ref's (config and tokenizer files), it has no files
 * of its own, and `identity` is its identity.  Close it before ref. */
typedef int (*lsw_ckpt_read_fn)(void *user, const lsw_ckpt *view, const lsw_tensor_desc *t, uint64_t off, void *buf,
                                size_t n);
int lsw_ckpt_open_view(const lsw_ckpt *ref, const char *name, uint64_t identity, lsw_ckpt_read_fn read, void *user,
                       lsw_ckpt **out);
/* lsw_ckpt_close of the view calls fn(user) (the view owns its user data). */
void lsw_ckpt_set_view_free(lsw_ckpt *c, void (*fn)(void *));
/* The user pointer of a view; NULL for an ordinary checkpoint. */
void *lsw_ckpt_view_user(const lsw_ckpt *c);
/* Position of tensor t (one of c's descriptors) in c's name order. */
size_t lsw_ckpt_index_of(const lsw_ckpt *c, const lsw_tensor_desc *t);

/* The checks on data that a merge's reads make and headers cannot: for a
 * model.h5, every chunk of every tensor is read and decoded (zstd frames
 * with their checksum, sizes), in blocks of at most 4 MiB; a safetensors
 * checkpoint is fully checked by its headers at open and reads nothing
 * here.  LSW_E_READ / LSW_E_INPUT naming file and tensor, as a merge gives. */
int lsw_ckpt_check_data(const lsw_ckpt *c);
/* Read bytes [off, off + n) of tensor t.  LSW_E_READ names file and tensor. */
int lsw_ckpt_read(const lsw_ckpt *c, const lsw_tensor_desc *t, uint64_t off, void *buf, size_t n);

/* 1 if a file name is one a model loader would take for weights: *.safetensors,
 * *.safetensors.index.json, model.h5, pickle checkpoints and their indexes.
 * An output folder must hold no such file that its manifest does not list.
 * (stats.h5 is not one: a stats folder writes no weights.) */
int lsw_is_weight_file_name(const char *name);

/* The largest layer index a tensor name may carry; a larger one is a bad
 * input (it would otherwise turn into a non-layer tensor, or a model with
 * billions of empty layers). */
#define LSW_MAX_LAYER 999999
#define LSW_LAYER_TOO_BIG (-2)
/* A check run on every model.h5 before this process opens it with HDF5;
 * 0 lets it open the file.  NULL (the default): none.  layerswap sets one
 * that opens the file in a child process first (engine/lsw_h5probe.h). */
typedef int (*lsw_h5_probe_fn)(const char *path);
void lsw_ckpt_set_h5_probe(lsw_h5_probe_fn fn);

/* Layer index of a tensor name (i of "layers.<i>."), -1 if none, or
 * LSW_LAYER_TOO_BIG if i > LSW_MAX_LAYER. */
int lsw_layer_of(const char *name);

#endif
