/* lsw_progress — progress lines on stderr for long work.
 * Every `interval` seconds one line "layerswap WHAT: i/n tensors, x/y GB (p%),
 * r GB/s, ETA s": flushed lines when stderr is not a terminal, one redrawn
 * line when it is.  lsw_progress_end prints the summary line.
 *
 * Under MPI every rank counts its own work; at synchronisation points the
 * caller passes the global totals (lsw_progress_sync).  Between them the
 * printing rank extrapolates: global = last total + own work since x ranks. */
#ifndef LSW_PROGRESS_H
#define LSW_PROGRESS_H

#include <stddef.h>
#include <stdint.h>

typedef struct lsw_progress {
    const char *what;
    double interval, t0, last;
    uint64_t total_bytes, done_bytes;   /* done: global estimate, as printed */
    size_t total_items, done_items;
    uint64_t base_bytes, local_bytes;   /* last global total; own work since */
    size_t base_items, local_items;
    int scale;                          /* ranks working alike (1 alone) */
    int tty, enabled, drew;
} lsw_progress;

double lsw_now(void); /* monotonic seconds */
void lsw_progress_start(lsw_progress *p, const char *what, double interval, uint64_t total_bytes, size_t total_items);
/* Extrapolate own work x `ranks` between syncs. */
void lsw_progress_set_scale(lsw_progress *p, int ranks);
void lsw_progress_add(lsw_progress *p, uint64_t bytes, size_t items);
/* Own work since the last sync (to be summed over ranks by the caller). */
void lsw_progress_local(const lsw_progress *p, uint64_t *bytes, size_t *items);
/* Add the work of all ranks since the last sync (the sum over ranks of
 * lsw_progress_local) to the global total; resets the extrapolation. */
void lsw_progress_sync(lsw_progress *p, uint64_t global_bytes, size_t global_items);
/* Summary line "layerswap WHAT: DETAIL in T s (R GB/s)" unless `quiet`. */
void lsw_progress_end(lsw_progress *p, const char *detail, int quiet);
/* End a progress display without a summary line (a redrawn terminal line
 * gets its newline). */
void lsw_progress_close(lsw_progress *p);
/* The summary line alone: "layerswap WHAT: DETAIL in T s (R GB/s)", R =
 * bytes / seconds. */
void lsw_summary_line(const char *what, const char *detail, double seconds, uint64_t bytes);

#endif
