/* lsw_commit — the output folder protocol: nothing incomplete under a final name.
 *
 * Files are written as `DIR/.NAME.lsw-tmp`, fsync'd and renamed to
 * `DIR/NAME`; the folder is fsync'd once before the manifest.  A journal `DIR/.layerswap-state` records the run's
 * plan hash and each file finished:
 *     layerswap-state 1 <plan hash, 16 hex>
 *     done <name> <bytes> <crc32c, 8 hex>
 * so that a rerun of an interrupted run (same plan hash) keeps the finished
 * files (re-checking size and CRC) and redoes the rest.
 * `layerswap-manifest.json` is written last and lists every file with its
 * size and CRC-32C; a folder without it is incomplete.
 */
#ifndef LSW_COMMIT_H
#define LSW_COMMIT_H

#include <stddef.h>
#include <stdint.h>

#include "lsw_manifest.h"

#define LSW_STATE_NAME ".layerswap-state"

typedef struct lsw_outdir lsw_outdir; /* opaque */

typedef enum lsw_out_state { LSW_OUT_FRESH, LSW_OUT_RESUME, LSW_OUT_COMPLETE } lsw_out_state;

/* Prepare `dir` (created if missing) for a run with `plan_hash` that will
 * write the files `names[0..n)`.  First of all it takes the folder's lock
 * (lsw_lock_dir: LSW_E_LOCKED, exit 1, if another run holds it), so that no
 * file is removed or written in a folder another run owns.
 *  - manifest present with the same plan hash: *state = LSW_OUT_COMPLETE;
 *  - journal present with the same plan hash: LSW_OUT_RESUME;
 *  - otherwise LSW_OUT_FRESH.  Any of our file names (or a manifest or
 *    journal of another plan) already present is LSW_E_EXISTS unless
 *    `overwrite`, which removes them first.
 * Stale temporaries are removed. */
/* Size and CRC-32C of a whole file, read in 4 MiB blocks (memory stays
 * bounded whatever the file's size).  -1 if it cannot be opened or read. */
int lsw_file_crc32c(const char *path, uint64_t *size, uint32_t *crc);

int lsw_outdir_open(const char *dir, uint64_t plan_hash, const char *const *names, size_t n, int overwrite,
                    lsw_outdir **out, lsw_out_state *state);
void lsw_outdir_free(lsw_outdir *o); /* accepts NULL; does not delete anything */
/* Remove the temporaries (".*.lsw-tmp") a killed run left in `dir`, a
 * folder this process holds the lock of (lsw_lock_dir; otherwise nothing
 * is removed).  lsw_outdir_open does it for its folder; this is for
 * folders without an lsw_outdir, such as a sweep's (sweep.json). */
void lsw_outdir_remove_temporaries(const char *dir);
/* 1 if `dir` already holds the finished output of `plan_hash` (its manifest
 * says so); touches nothing.  Lets a rerun skip work done before any output. */
int lsw_outdir_complete(const char *dir, uint64_t plan_hash);
const char *lsw_outdir_path(const lsw_outdir *o);

/* 1 if a previous run of this plan finished `name` and the file still has
 * the journal's size and CRC (re-read); records it for the manifest. */
int lsw_outdir_reuse(lsw_outdir *o, const char *name);
/* Size and CRC of a file finished (or reused) in this run; -1 if none. */
int lsw_outdir_recorded(const lsw_outdir *o, const char *name, uint64_t *bytes, uint32_t *crc);
/* Open `DIR/.NAME.lsw-tmp` for writing (truncated). */
int lsw_outdir_tmp_open(lsw_outdir *o, const char *name, int *fd);
/* fsync and close `fd`, rename the temporary to `name`, journal it with
 * `bytes` and `crc`.  On failure the temporary is removed. */
int lsw_outdir_tmp_commit(lsw_outdir *o, const char *name, int fd, uint64_t bytes, uint32_t crc);
/* Close `fd` and remove the temporary of `name`. */
void lsw_outdir_tmp_abort(lsw_outdir *o, const char *name, int fd);
typedef enum lsw_dedup { LSW_DEDUP_REFLINK, LSW_DEDUP_HARDLINK, LSW_DEDUP_COPY } lsw_dedup;

/* Put a finished file with identical bytes (`src`, another output's final
 * file of `bytes` bytes and CRC `crc`) under `name`: a reflink (FICLONE),
 * falling back to a copy where the file system cannot clone; a hard link;
 * or a copy.  Atomic like every other file (temporary, rename) and journaled.
 * *how gets the mode actually used. */
int lsw_outdir_adopt(lsw_outdir *o, const char *name, const char *src, lsw_dedup mode, uint64_t bytes, uint32_t crc,
                     lsw_dedup *how);
/* Write a whole small file atomically and journal it. */
int lsw_outdir_put(lsw_outdir *o, const char *name, const void *buf, size_t n);
/* Bytes still to write of the files names[i] of sizes[i]: those a previous
 * run of this plan journaled with that size, and that are there with it,
 * count as done (lsw_outdir_reuse re-checks their CRC later).  Reads only. */
uint64_t lsw_outdir_remaining(const lsw_outdir *o, const char *const *names, const uint64_t *sizes, size_t n);
/* Before the first byte of data: LSW_E_NOSPACE (exit 4) with both numbers
 * if the file system of `o` has less free space (statvfs f_bavail) than
 * `bytes` plus a block per file of `nfiles` (and a few for the journal and
 * manifest).  `what` says what the figure holds, for the message.  On
 * failure a journal this open created is removed again (the folder holds
 * nothing of the run).
 * LSW_NO_SPACE_CHECK=1 in the environment skips it.  Rank 0 (the owner of
 * `o`); not collective. */
int lsw_outdir_check_space(lsw_outdir *o, uint64_t bytes, size_t nfiles, const char *what);
/* Write the manifest (lsw_manifest: `tool`, the members `extra` adds, and
 * the files in the order of the names given to lsw_outdir_open, then any
 * others in the order recorded), then remove the journal. */
int lsw_outdir_finish(lsw_outdir *o, const char *tool, lsw_manifest_extra_fn extra, const void *arg);

#endif
