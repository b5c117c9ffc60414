/* lsw_io — whole reads and writes, durable files and folders.
 *
 * Every function names the path in its error detail.  Reads fail with
 * LSW_E_READ (an input problem, exit 2), writes with LSW_E_IO or, for ENOSPC
 * and EDQUOT, LSW_E_NOSPACE (exit 4).
 *
 * Fault injection (tests only): LSW_FAULT_WRITE_AFTER=BYTES makes writes of
 * this process fail with ENOSPC once BYTES bytes have been written through
 * lsw_pwrite_full; LSW_FAULT_READ_AFTER=BYTES makes reads fail with EIO
 * likewise; LSW_FAULT_STOP_AFTER=BYTES raises SIGUSR1 (a stop request) once
 * BYTES bytes have been read, so tests interrupt a run at a reproducible
 * point; LSW_FAULT_KILL_WRITE_AFTER=BYTES and LSW_FAULT_KILL_READ_AFTER=BYTES
 * make the process kill itself with SIGKILL instead (the kill-at-random
 * tests: a crash at a byte count); LSW_FAULT_RANK=R limits all of them to
 * MPI rank R (set by the caller through lsw_io_set_rank).
 */
#ifndef LSW_IO_H
#define LSW_IO_H

#include <stddef.h>
#include <stdint.h>

int lsw_pread_full(int fd, void *buf, size_t n, uint64_t off, const char *path);
int lsw_pwrite_full(int fd, const void *buf, size_t n, uint64_t off, const char *path);
/* Start writeback of [off, off + n) without waiting (sync_file_range), so
 * disk writes overlap computation and the final fsync is short; a no-op
 * where the file system does not support it. */
void lsw_writeback(int fd, uint64_t off, uint64_t n);
/* fsync a file descriptor / the folder holding `path` / a folder. */
int lsw_fsync_fd(int fd, const char *path);
int lsw_fsync_dir(const char *dir);
/* mkdir -p; existing folders are fine. */
int lsw_mkdir_p(const char *dir);
/* Read a whole (small) file into a malloc'd, NUL-terminated buffer. */
int lsw_read_file(const char *path, char **out, size_t *len);
/* Write `n` bytes to `dir/name` atomically: `dir/.name.PID.lsw-tmp`, fsync,
 * rename, fsync of the folder. */
int lsw_write_file_atomic(const char *dir, const char *name, const void *buf, size_t n);
/* The same for a whole path ("dir/name"; "name" is in the current folder). */
int lsw_write_path_atomic(const char *path, const void *buf, size_t n);
/* malloc'd "a/b" (b unchanged when absolute); NULL on OOM. */
char *lsw_path_join(const char *a, const char *b);
/* 1 if `name` is a plain file name of a folder: not empty, no '/' or '\\',
 * not "." or "..".  Names read from files (an index, a manifest, a journal)
 * must pass before they are joined to a folder. */
int lsw_plain_name(const char *name);
/* malloc'd folder part of a path ("." when none). */
char *lsw_dirname(const char *path);
int lsw_is_dir(const char *path);
int lsw_is_file(const char *path);
/* What `path` is when it exists but is neither a regular file nor a folder
 * (after following symlinks): "a FIFO", "a character device", "a block
 * device", "a socket"; NULL otherwise.  For messages. */
const char *lsw_path_kind(const char *path);
/* Open `path` read-only if it is a regular file after following symlinks,
 * without ever blocking (a FIFO is opened non-blocking, then refused).
 * Returns the descriptor, or -1 with errno set (EINVAL and *kind from
 * lsw_path_kind when it is not a regular file).  `kind` may be NULL. */
int lsw_open_regular(const char *path, const char **kind);
/* The absolute path `path` will name once lsw_mkdir_p(path) has created every
 * missing folder on it: the longest existing prefix resolved by the kernel
 * (symlinks, "..", bind mounts), the rest applied as text ("x/.." cancels).
 * malloc'd; NULL on OOM or when the current folder cannot be read. */
char *lsw_path_resolve_future(const char *path);
/* The stop and kill hooks above for bytes that do not pass through
 * lsw_pread_full / lsw_pwrite_full: mapped inputs (stats), HDF5 chunks
 * (stored by HDF5, or sent to the rank that stores them). */
void lsw_io_count_read(size_t n);
void lsw_io_count_write(size_t n);
/* MPI rank for fault injection. */
void lsw_io_set_rank(int rank);

#endif
