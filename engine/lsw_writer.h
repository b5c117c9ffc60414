/* lsw_writer — write-behind: one thread per rank that performs the output
 * writes (and the checksums of what is written) while the block loop
 * computes the next blocks.
 *
 * Jobs run in the order they were queued: "write these bytes at this offset
 * of this file" (with a writeback kick every LSW_WRITER_KICK bytes of a
 * file's run, so the disk works from the first block and the commit's fsync
 * is short) and "extend this CRC-32C with these bytes" (CRCs are order
 * dependent: queued in order, computed in order).  A caller that reuses a
 * buffer first waits until the jobs queued before a mark are done
 * (lsw_writer_wait).  The first failure is kept; later jobs are skipped and
 * lsw_writer_wait returns it (with its detail message) on the caller's
 * thread.
 *
 * With `threads` 0 every job runs at once on the caller's thread: the same
 * results, no overlap.  The writer never calls MPI.
 */
#ifndef LSW_WRITER_H
#define LSW_WRITER_H

#include <stddef.h>
#include <stdint.h>

#define LSW_WRITER_KICK (32ULL << 20)

typedef struct lsw_writer lsw_writer; /* opaque */

/* A writer holding at most `depth` queued jobs; threads 0 or 1. */
int lsw_writer_create(int threads, size_t depth, lsw_writer **out);
/* Waits for every queued job, stops the thread, frees.  Accepts NULL. */
void lsw_writer_free(lsw_writer *w);

/* Queue a write of buf[0..n) at offset `off` of fd (`name` for messages);
 * `buf` must stay unchanged until a wait covers the job. */
int lsw_writer_write(lsw_writer *w, int fd, const void *buf, size_t n, uint64_t off, const char *name);
/* Queue *crc = lsw_crc32c(*crc, buf, n). */
int lsw_writer_crc(lsw_writer *w, uint32_t *crc, const void *buf, size_t n);
/* A mark: the number of jobs queued so far. */
uint64_t lsw_writer_mark(const lsw_writer *w);
/* Wait until every job queued before `mark` is done; 0 or the first failure. */
int lsw_writer_wait(lsw_writer *w, uint64_t mark);
/* A file is done with (closing it): forget its writeback run. */
void lsw_writer_forget(lsw_writer *w, int fd);
/* Bytes written so far. */
uint64_t lsw_writer_bytes(const lsw_writer *w);

#endif
