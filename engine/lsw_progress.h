/* lsw_progress — progress lines on stderr for long work.
 * Every `interval` seconds one line "layerswap WHAT: i/n items, x/y GB (p%),
 * r GB/s, ETA s": flushed lines when stderr is not a terminal, one redrawn
 * line when it is.  lsw_progress_end prints the summary line. */
#ifndef LSW_PROGRESS_H
#define LSW_PROGRESS_H

#include <stddef.h>
#include <stdint.h>

typedef struct lsw_progress {
    const char *what;
    double interval, t0, last;
    uint64_t total_bytes, done_bytes;
    size_t total_items, done_items;
    int tty, enabled, drew;
} lsw_progress;

double lsw_now(void); /* monotonic seconds */
void lsw_progress_start(lsw_progress *p, const char *what, double interval, uint64_t total_bytes, size_t total_items);
void lsw_progress_add(lsw_progress *p, uint64_t bytes, size_t items);
/* Summary line "layerswap WHAT: DETAIL in T s (R GB/s)" unless `quiet`. */
void lsw_progress_end(lsw_progress *p, const char *detail, int quiet);

#endif
