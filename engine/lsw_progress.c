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
    *p = (lsw_progress){0};
    p->what = what;
    p->interval = interval;
    p->t0 = p->last = lsw_now();
    p->total_bytes = total_bytes;
    p->total_items = total_items;
    p->scale = 1;
    p->tty = isatty(2);
    p->enabled = interval > 0;
}

void lsw_progress_set_scale(lsw_progress *p, int ranks) { p->scale = ranks > 0 ? ranks : 1; }

static void estimate(lsw_progress *p)
{
    uint64_t b = p->base_bytes + p->local_bytes * (uint64_t)p->scale;
    size_t i = p->base_items + p->local_items * (size_t)p->scale;
    p->done_bytes = b < p->total_bytes ? b : p->total_bytes;
    p->done_items = i < p->total_items ? i : p->total_items;
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
    p->local_bytes += bytes;
    p->local_items += items;
    estimate(p);
    if (!p->enabled)
        return;
    double now = lsw_now();
    if (now - p->last >= p->interval) {
        p->last = now;
        line(p, now);
    }
}

void lsw_progress_local(const lsw_progress *p, uint64_t *bytes, size_t *items)
{
    *bytes = p->local_bytes;
    *items = p->local_items;
}

void lsw_progress_sync(lsw_progress *p, uint64_t global_bytes, size_t global_items)
{
    p->base_bytes += global_bytes;
    p->base_items += global_items;
    p->local_bytes = 0;
    p->local_items = 0;
    estimate(p);
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

void lsw_progress_close(lsw_progress *p)
{
    if (p->drew && p->tty)
        fprintf(stderr, "\n");
    p->drew = 0;
    fflush(stderr);
}

void lsw_summary_line(const char *what, const char *detail, double seconds, uint64_t bytes)
{
    fprintf(stderr, "layerswap %s: %s in %.2f s (%.2f GB/s)\n", what, detail, seconds,
            seconds > 0 ? (double)bytes / seconds / 1e9 : 0.0);
    fflush(stderr);
}
