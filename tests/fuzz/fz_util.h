/* fz_util — what several harnesses share: the input written to a file,
 * for parsers that only take a path. */
#ifndef FZ_UTIL_H
#define FZ_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* Write size bytes of data to path (replaced); abort on any failure. */
static inline void fz_write_file(const char *path, const uint8_t *data, size_t size)
{
    FILE *f = fopen(path, "wb");
    if (!f || (size && fwrite(data, 1, size, f) != size))
        abort();
    if (fclose(f) != 0)
        abort();
}

#endif
