/* bench_kernels — throughput of the per-row MAV kernel (docs/statistics.md) on every
 * instruction set this CPU has, against the memory bandwidth measured in the
 * same run and against the portable C version ("generic", the baseline).
 *
 *   build/benchmarks/bench_kernels [MiB per model, default 64] [repetitions, default 15]
 *
 * For each dtype and E = 1, 2, 4 experts it times lsw_absdiff_sum_multi over
 * a base and E experts of MiB each (in memory, not cache), best of the
 * repetitions, in chunks of LSW_MAV_CHUNK elements as `stats` calls it.
 * GB/s counts the bytes of base + experts read; of_membw divides by the read
 * bandwidth (memset-free sum over one 1 GiB array, best of 5).  It also checks
 * that every instruction set returns the same bits as the generic one. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lsw_kernels.h"
#include "lsw_mav.h"

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static uint64_t rng = 0x9E3779B97F4A7C15u;
static uint32_t next32(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 16);
}

/* weights-like values: small normal numbers near ±0.02 */
static void fill(lsw_dtype dt, void *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        float f = ((float)(next32() % 20001) - 10000.0f) * 2e-6f;
        if (dt == LSW_DT_BF16) {
            uint16_t h = lsw_f32_to_bf16(f);
            memcpy((char *)p + 2 * i, &h, 2);
        } else if (dt == LSW_DT_F16) {
            uint16_t h = lsw_f32_to_f16(f);
            memcpy((char *)p + 2 * i, &h, 2);
        } else {
            memcpy((char *)p + 4 * i, &f, 4);
        }
    }
}

/* read bandwidth: sum of 64-bit words of a 1 GiB array, best of 5 */
static double read_bw(void)
{
    size_t n = (size_t)1 << 27;
    uint64_t *a = malloc(n * sizeof *a);
    if (!a)
        return 0;
    for (size_t i = 0; i < n; i++)
        a[i] = i;
    double best = 1e30;
    volatile uint64_t sink = 0;
    for (int r = 0; r < 5; r++) {
        double t = now();
        uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        for (size_t i = 0; i < n; i += 4) {
            s0 += a[i];
            s1 += a[i + 1];
            s2 += a[i + 2];
            s3 += a[i + 3];
        }
        sink += s0 + s1 + s2 + s3;
        t = now() - t;
        if (t < best)
            best = t;
    }
    (void)sink;
    free(a);
    return (double)(n * sizeof(uint64_t)) / best / 1e9;
}

static void run(lsw_dtype dt, size_t n, size_t E, char *b, char **e, double *out)
{
    size_t es = lsw_dtype_size(dt);
    const void *ep[4];
    double part[4];
    for (size_t j = 0; j < E; j++)
        out[j] = 0;
    for (size_t c = 0; c < n; c += LSW_MAV_CHUNK) {
        size_t m = n - c < LSW_MAV_CHUNK ? n - c : LSW_MAV_CHUNK;
        for (size_t j = 0; j < E; j++)
            ep[j] = e[j] + c * es;
        lsw_absdiff_sum_multi(dt, b + c * es, ep, E, m, part);
        for (size_t j = 0; j < E; j++)
            out[j] += part[j];
    }
}

int main(int argc, char **argv)
{
    size_t mib = argc > 1 ? strtoull(argv[1], NULL, 10) : 64;
    int reps = argc > 2 ? atoi(argv[2]) : 15;
    if (mib == 0 || reps < 1) {
        fprintf(stderr, "Usage: bench_kernels [MiB per model] [repetitions]\n");
        return 1;
    }
    size_t bytes = mib << 20;
    char *b = malloc(bytes), *e[4];
    for (int j = 0; j < 4; j++)
        e[j] = malloc(bytes);
    double bw = read_bw();
    printf("# memory read bandwidth: %.1f GB/s (best of 5, 1 GiB)\n", bw);
    printf("# %zu MiB per model, best of %d; GB/s = bytes of base + experts per second\n", mib, reps);
    printf("%-5s %-2s %-8s %-8s %-9s %-9s %s\n", "dtype", "E", "isa", "GB/s", "of_membw", "x_generic", "bits");
    static const lsw_dtype dts[] = {LSW_DT_BF16, LSW_DT_F16, LSW_DT_F32};
    static const size_t Es[] = {1, 2, 4};
    int bad = 0;
    for (size_t d = 0; d < 3; d++) {
        lsw_dtype dt = dts[d];
        size_t n = bytes / lsw_dtype_size(dt);
        fill(dt, b, n);
        for (int j = 0; j < 4; j++)
            fill(dt, e[j], n);
        for (size_t q = 0; q < 3; q++) {
            size_t E = Es[q];
            double ref[4], got[4], gen_gbs = 0;
            for (int isa = LSW_ISA_GENERIC; isa <= LSW_ISA_AVX512; isa++) {
                if (lsw_kernels_set_isa((lsw_isa)isa) != 0)
                    continue;
                double best = 1e30;
                for (int r = 0; r < reps; r++) {
                    double t = now();
                    run(dt, n, E, b, e, got);
                    t = now() - t;
                    if (t < best)
                        best = t;
                }
                if (isa == LSW_ISA_GENERIC)
                    memcpy(ref, got, sizeof ref);
                int same = memcmp(ref, got, E * sizeof(double)) == 0;
                bad |= !same;
                double gbs = (double)(bytes * (E + 1)) / best / 1e9;
                if (isa == LSW_ISA_GENERIC)
                    gen_gbs = gbs;
                printf("%-5s %-2zu %-8s %-8.2f %-9.3f %-9.2f %s\n", lsw_dtype_name(dt), E,
                       lsw_isa_name((lsw_isa)isa), gbs, gbs / bw, gbs / gen_gbs, same ? "same" : "DIFFERENT");
            }
        }
    }
    lsw_kernels_set_isa(LSW_ISA_AUTO);
    free(b);
    for (int j = 0; j < 4; j++)
        free(e[j]);
    return bad ? 1 : 0;
}
