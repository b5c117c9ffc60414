/* build: sh tests/fuzz/build.sh fuzz_sweep
 *   (= clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -D_FILE_OFFSET_BITS=64 -Iio -Iengine -Impi
 *      $(mpicc -showme:compile) tests/fuzz/fuzz_sweep.c build-fuzz/liblsw-fuzz.a -lhdf5 -lmpi -lzstd -lcjson -lm)
 * run:   build-fuzz/fuzz_sweep -max_len=8192 -timeout=20 -dict=tests/fuzz/config.dict CORPUS_DIR tests/fuzz/seeds/sweep
 *
 * Input: SWEEP.json text (docs/sweep.md).  lsw_sweep_load only takes a path, so the
 * bytes go to /dev/shm/fz-sweep-PID.json first.  Accepted sweeps: every
 * merge has a name, an output under the sweep's path and a config. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fz_util.h"
#include "lsw_error.h"
#include "lsw_sweep.h"

static char path[64];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!path[0])
        snprintf(path, sizeof path, "/dev/shm/fz-sweep-%d.json", (int)getpid());
    fz_write_file(path, data, size);
    lsw_err_clear();
    lsw_sweep *s = NULL;
    int rc = lsw_sweep_load(path, NULL, &s);
    if (rc) {
        if (s || (rc != LSW_E_CONFIG && rc != LSW_E_NOMEM))
            abort();
        return 0;
    }
    for (size_t k = 0; k < lsw_sweep_count(s); k++)
        if (!lsw_sweep_name(s, k) || !lsw_sweep_output(s, k) || !lsw_sweep_config(s, k))
            abort();
    lsw_sweep_free(s);
    return 0;
}
