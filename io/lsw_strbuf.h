/* lsw_strbuf — a growing byte string for building headers, JSON and reports.
 * Allocation failure is sticky: appends become no-ops and lsw_sb_failed()
 * says so once, at the end. */
#ifndef LSW_STRBUF_H
#define LSW_STRBUF_H

#include <stddef.h>
#include <stdint.h>

typedef struct lsw_strbuf {
    char *p;     /* NUL-terminated while len > 0; owned, free with lsw_sb_free */
    size_t len, cap;
    int oom;
} lsw_strbuf;

void lsw_sb_put(lsw_strbuf *b, const void *s, size_t n);
void lsw_sb_str(lsw_strbuf *b, const char *s);
void lsw_sb_u64(lsw_strbuf *b, uint64_t v);
void lsw_sb_printf(lsw_strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A JSON string literal: quote, backslash and control characters escaped. */
void lsw_sb_json_string(lsw_strbuf *b, const char *s);
/* A JSON number that reads back as exactly the float/double `v` ("NaN"/"Infinity" are not JSON: null). */
void lsw_sb_json_f64(lsw_strbuf *b, double v);
int lsw_sb_failed(const lsw_strbuf *b);
void lsw_sb_free(lsw_strbuf *b);

#endif
