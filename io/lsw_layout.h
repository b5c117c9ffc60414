/* lsw_layout — where each tensor of an output checkpoint goes.
 *
 * Given tensors in output order, fixes the shard files
 * ("model-0000k-of-0000N.safetensors", or "model.safetensors" when there is
 * one), each shard's header, and each tensor's absolute byte offset.  Pure:
 * the same list and settings give the same layout on every rank.
 *   by size : a new shard starts when the next tensor would take a non-empty
 *             shard past `shard_size` (a larger tensor gets a shard alone);
 *   by layer: a new shard starts whenever the layer index changes.
 */
#ifndef LSW_LAYOUT_H
#define LSW_LAYOUT_H

#include <stddef.h>
#include <stdint.h>

#include "lsw_dtype.h"
#include "lsw_strbuf.h"

typedef struct lsw_layout_item {
    const char *name;     /* borrowed */
    lsw_dtype dtype;
    size_t ndim;
    const uint64_t *shape; /* borrowed */
    uint64_t numel, nbytes;
    int layer;
    unsigned shard;       /* out */
    uint64_t offset;      /* out: absolute offset in its shard file */
} lsw_layout_item;

typedef struct lsw_layout_shard {
    char name[64];
    size_t first, count;  /* items [first, first + count) */
    char *header;         /* 8-byte length + JSON header + padding (owned) */
    uint64_t data_start;  /* header bytes */
    uint64_t size;        /* file size */
} lsw_layout_shard;

/* Natural order of names: digit runs compared by value (layers.2 < layers.10). */
int lsw_natural_cmp(const char *a, const char *b);

/* Lay out `items[0..n)` (filled in place); *shards is malloc'd (free with
 * lsw_layout_free_shards). */
int lsw_layout_build(lsw_layout_item *items, size_t n, uint64_t shard_size, int by_layer,
                     lsw_layout_shard **shards, size_t *nshards);
void lsw_layout_free_shards(lsw_layout_shard *shards, size_t nshards);
/* model.safetensors.index.json text for the layout: malloc'd *text of *len
 * bytes.  LSW_E_NOMEM. */
int lsw_layout_index_json(const lsw_layout_item *items, size_t n, const lsw_layout_shard *shards, char **text,
                          size_t *len);
/* Write that index into output folder `od` (atomically, journaled). */
struct lsw_outdir;
int lsw_layout_put_index(const lsw_layout_item *items, size_t n, const lsw_layout_shard *shards, struct lsw_outdir *od);
#define LSW_INDEX_NAME "model.safetensors.index.json"

#endif
