/* membw.c — memory copy floor for the benchmarks (built on first use by lib.sh).
 *
 *   membw BYTES     copy BYTES with memcpy, 64 MiB per call, between two buffers
 *                   that were touched first (page faults are not timed), and print
 *                   "bench-seconds: S" on stderr (S = the copies alone).
 *
 * lib.sh reads that line instead of the wall time ("self-timed" side), so the
 * figure is the copy bandwidth, not the cost of faulting fresh memory in.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int main(int argc, char **argv)
{
    char *end = NULL;
    unsigned long long total = argc == 2 ? strtoull(argv[1], &end, 10) : 0;
    if (argc != 2 || !end || *end || total == 0) {
        fprintf(stderr, "Usage: membw BYTES\n");
        return 1;
    }
    size_t buf = (size_t)64 << 20;
    unsigned char *a = malloc(buf), *b = malloc(buf);
    if (!a || !b) {
        fprintf(stderr, "membw: out of memory\n");
        return 1;
    }
    memset(a, 0x5a, buf);
    memset(b, 0xa5, buf);
    double t0 = now();
    for (unsigned long long done = 0; done < total;) {
        size_t n = total - done < buf ? (size_t)(total - done) : buf;
        memcpy(b, a, n);
        a[done % buf] ^= b[n - 1]; /* keep the copies observable */
        done += n;
    }
    double t1 = now();
    fprintf(stderr, "bench-seconds: %.6f\n", t1 - t0);
    printf("%u\n", (unsigned)a[0]);
    free(a);
    free(b);
    return 0;
}
