#include "lsw_strbuf.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void lsw_sb_put(lsw_strbuf *b, const void *s, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
}

void lsw_sb_str(lsw_strbuf *b, const char *s) { lsw_sb_put(b, s, strlen(s)); }

void lsw_sb_u64(lsw_strbuf *b, uint64_t v)
{
    char tmp[24];
    int n = snprintf(tmp, sizeof tmp, "%" PRIu64, v);
    lsw_sb_put(b, tmp, (size_t)n);
}

void lsw_sb_printf(lsw_strbuf *b, const char *fmt, ...)
{
    char tmp[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n < sizeof tmp) {
        lsw_sb_put(b, tmp, (size_t)n);
        return;
    }
    char *big = malloc((size_t)n + 1);
    if (!big) {
        b->oom = 1;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    lsw_sb_put(b, big, (size_t)n);
    free(big);
}

void lsw_sb_json_string(lsw_strbuf *b, const char *s)
{
    lsw_sb_put(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') {
            char esc[2] = {'\\', (char)*p};
            lsw_sb_put(b, esc, 2);
        } else if (*p < 0x20) {
            char esc[8];
            snprintf(esc, sizeof esc, "\\u%04x", *p);
            lsw_sb_put(b, esc, 6);
        } else {
            lsw_sb_put(b, p, 1);
        }
    }
    lsw_sb_put(b, "\"", 1);
}

void lsw_sb_json_f64(lsw_strbuf *b, double v)
{
    if (!isfinite(v)) {
        lsw_sb_str(b, "null");
        return;
    }
    lsw_sb_printf(b, "%.17g", v);
}

int lsw_sb_failed(const lsw_strbuf *b) { return b->oom; }

void lsw_sb_free(lsw_strbuf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
    b->oom = 0;
}
