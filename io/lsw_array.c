#include "lsw_array.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int lsw_array_reserve(void *parray, size_t *cap, size_t need, size_t elem)
{
    void *a;
    memcpy(&a, parray, sizeof a); /* T ** read as void ** without aliasing it */
    if (a && need <= *cap)
        return 0;
    size_t c = *cap ? *cap : 16;
    while (c < need) {
        if (c > SIZE_MAX / 2)
            return -1;
        c *= 2;
    }
    if (elem && c > SIZE_MAX / elem)
        return -1;
    size_t bytes = c * elem;
    void *q = realloc(a, bytes ? bytes : 1);
    if (!q)
        return -1;
    memcpy(parray, &q, sizeof q);
    *cap = c;
    return 0;
}
