#include "lsw_progress.h"

#include <stdio.h>
#include <time.h>
#include <unistd.h>

double lsw_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void lsw_progress_start(lsw_progress *p, const char *what, double interval, uint64_t total_bytes, size_t total_items)
{
    p->what = what;
    p->interval = interval;
    p->t0 = p->last = lsw_now();
    p->total_bytes = total_bytes;
    p->total_items = total_items;
    p->done_bytes = 0;
    p->done_items = 0;
    p->tty = isatty(2);
    p->enabled = interval > 0;
    p->drew = 0;
}

static void line(lsw_progress *p, double now)
{
    double el = now - p->t0, rate = el > 0 ? (double)p->done_bytes / el : 0;
    double pct = p->total_bytes ? 100.0 * (double)p->done_bytes / (double)p->total_bytes : 100.0;
    double eta = rate > 0 ? (double)(p->total_bytes - p->done_bytes) / rate : 0;
    fprintf(stderr, "%slayerswap %s: %zu/%zu tensors, %.2f/%.2f GB (%.0f%%), %.2f GB/s, ETA %.0f s%s",
            p->tty ? "\r" : "", p->what, p->done_items, p->total_items, (double)p->done_bytes / 1e9,
            (double)p->total_bytes / 1e9, pct, rate / 1e9, eta, p->tty ? "\033[K" : "\n");
    fflush(stderr);
    p->drew = 1;
}

void lsw_progress_add(lsw_progress *p, uint64_t bytes, size_t items)
{
    p->done_bytes += bytes;
    p->done_items += items;
    if (!p->enabled)
        return;
    double now = lsw_now();
    if (now - p->last >= p->interval) {
        p->last = now;
        line(p, now);
    }
}

void lsw_progress_end(lsw_progress *p, const char *detail, int quiet)
{
    double el = lsw_now() - p->t0;
    if (p->drew && p->tty)
        fprintf(stderr, "\n");
    if (!quiet)
        fprintf(stderr, "layerswap %s: %s in %.2f s (%.2f GB/s)\n", p->what, detail, el,
                el > 0 ? (double)p->done_bytes / el / 1e9 : 0.0);
    fflush(stderr);
}
