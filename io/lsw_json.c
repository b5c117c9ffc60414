/* lsw_json — strict JSON (RFC 8259) reader; the contract is in lsw_json.h.
 *
 * Memory layout (built for headers of ~100 MB with ~1e6 keys):
 *   - Every value is one 40-byte node in a single growing array.  The
 *     children of a container are contiguous and lie before the container:
 *     while a container is open its children wait on a scratch stack, and
 *     when it closes they are moved to the end of the node array in one
 *     block.  A container finds its first child by a relative offset, so the
 *     array may be reallocated at will (no pointer fix-up pass).
 *   - Decoded strings, keys and the source text of numbers are copied,
 *     NUL-terminated, into one arena allocated up front.  The arena never
 *     grows: a string of n source bytes (quotes included) decodes to at most
 *     n - 2 bytes plus a NUL, and a number of n bytes needs n + 1, where the
 *     extra byte is paid for by the delimiter that must follow every number
 *     but the root.  So len + 1 bytes always suffice, and pointers into the
 *     arena stay valid.
 *   - Each object keeps a sorted index of its members in the `ord` fields of
 *     its children (child j's `ord` is the member index of the j-th smallest
 *     key, bytes compared as unsigned).  It is built when the object closes
 *     (see lsw_jp_rsort), finds duplicate keys (equal keys end up adjacent),
 *     and serves lsw_json_get() for binary search.
 *   - Offsets and counts are 32 bits: texts of 4 GiB or more are refused.
 *
 * Errors: the first error stops the parse; its position is turned into
 * "line L, column C (byte B)" only then (L and C 1-based, C counted in
 * characters; B a 0-based byte offset).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* strtod_l */
#endif

#include "lsw_json.h"
#include "lsw_array.h"
#include "lsw_error.h"

#include <locale.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { LSW_JF_STR_NUL = 1, LSW_JF_KEY_NUL = 2 };

struct lsw_json {
    union {
        const char *s; /* string: decoded bytes; number: its source text (arena, NUL-terminated) */
        uint32_t kid;  /* container: while on the scratch stack, index of its first child in the
                        * node array; once placed in the node array, its own index minus that */
    } u;
    const char *key;   /* member of an object: decoded key (arena, NUL-terminated) */
    uint32_t off, len; /* byte span in the source */
    uint32_t n;        /* string/number: byte length; array/object: number of children */
    uint32_t keylen;
    uint32_t ord;      /* sorted index of the parent object, see above */
    uint8_t type, flags;
};

struct lsw_json_doc {
    lsw_json *nodes; /* the root is the last node */
    size_t nn;
    char *arena;
};

typedef struct lsw_jp {
    const unsigned char *t;
    size_t len, pos;
    int depth;
    lsw_json *nodes; /* placed nodes */
    size_t nn, ncap;
    lsw_json *stk;   /* children of the containers still open */
    size_t sn, scap;
    char *arena;
    size_t apos;
    struct lsw_jp_ent *tmp; /* merge-sort buffers */
    size_t tcap;
    char *why;
    size_t whylen;
} lsw_jp;

/* ---- errors ------------------------------------------------------------ */

static void lsw_jp_where(const lsw_jp *p, size_t pos, size_t *line, size_t *col)
{
    size_t l = 1, start = 0, c = 1;
    if (pos > p->len)
        pos = p->len;
    if (pos > 0) {
        const unsigned char *q = p->t, *end = p->t + pos;
        while ((q = memchr(q, '\n', (size_t)(end - q))) != NULL) {
            l++;
            start = (size_t)(++q - p->t);
        }
        for (size_t i = start; i < pos; i++)
            c += (p->t[i] & 0xC0) != 0x80; /* count characters, not continuation bytes */
    }
    *line = l;
    *col = c;
}

static int lsw_jp_msg(lsw_jp *p, int code, size_t pos, const char *rule)
{
    if (p->why && p->whylen) {
        size_t line, col;
        lsw_jp_where(p, pos, &line, &col);
        snprintf(p->why, p->whylen, "line %zu, column %zu (byte %zu): %s", line, col, pos, rule);
    }
    return code;
}

static int lsw_jp_fail(lsw_jp *p, size_t pos, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
static int lsw_jp_fail(lsw_jp *p, size_t pos, const char *fmt, ...)
{
    char rule[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(rule, sizeof rule, fmt, ap);
    va_end(ap);
    return lsw_jp_msg(p, LSW_E_INPUT, pos, rule);
}

/* Out of memory is not the input's fault: LSW_E_NOMEM, not LSW_E_INPUT. */
static int lsw_jp_nomem(lsw_jp *p)
{
    return lsw_jp_msg(p, LSW_E_NOMEM, p->pos, "out of memory");
}

/* "'x'" for a printable ASCII byte, "byte 0xNN" otherwise. */
static const char *lsw_jp_show(unsigned char c, char buf[16])
{
    if (c > 0x20 && c < 0x7F)
        snprintf(buf, 16, "'%c'", c);
    else
        snprintf(buf, 16, "byte 0x%02X", c);
    return buf;
}

/* A decoded key for an error message: quoted, escaped, shortened. */
static void lsw_jp_show_key(char *buf, size_t cap, const char *k, size_t kl)
{
    size_t o = 0;
    for (size_t i = 0; i < kl && o + 8 < cap; i++) {
        unsigned char c = (unsigned char)k[i];
        if (i >= 40 && (c & 0xC0) != 0x80) { /* stop at a character boundary */
            o += (size_t)snprintf(buf + o, cap - o, "...");
            break;
        }
        if (c == '"' || c == '\\')
            o += (size_t)snprintf(buf + o, cap - o, "\\%c", c);
        else if (c < 0x20 || c == 0x7F)
            o += (size_t)snprintf(buf + o, cap - o, "\\u%04X", c);
        else
            buf[o++] = (char)c;
    }
    buf[o < cap ? o : cap - 1] = '\0';
}

/* ---- growing arrays ---------------------------------------------------- */

/* Returns `buf` grown to hold `need` elements (lsw_array_reserve), or NULL. */
static void *lsw_jp_grow(void *buf, size_t *cap, size_t need, size_t elsize)
{
    return lsw_array_reserve(&buf, cap, need, elsize) ? NULL : buf;
}

static int lsw_jp_push(lsw_jp *p, const lsw_json *v)
{
    lsw_json *s = lsw_jp_grow(p->stk, &p->scap, p->sn + 1, sizeof *s);
    if (!s)
        return lsw_jp_nomem(p);
    p->stk = s;
    s[p->sn++] = *v;
    return 0;
}

/* Copy n nodes to the end of the node array, turning each container's
 * absolute first-child index into an offset relative to its new place. */
static int lsw_jp_place(lsw_jp *p, const lsw_json *src, size_t n)
{
    if (n == 0) /* an empty container; src may be NULL */
        return 0;
    lsw_json *d = lsw_jp_grow(p->nodes, &p->ncap, p->nn + n, sizeof *d);
    if (!d)
        return lsw_jp_nomem(p);
    p->nodes = d;
    d += p->nn;
    memcpy(d, src, n * sizeof *d);
    for (size_t j = 0; j < n; j++)
        if (d[j].type == LSW_JSON_ARRAY || d[j].type == LSW_JSON_OBJECT)
            d[j].u.kid = (uint32_t)(p->nn + j - d[j].u.kid);
    p->nn += n;
    return 0;
}

/* ---- lexical pieces ---------------------------------------------------- */

static int lsw_jp_isdigit(unsigned char c) { return c >= '0' && c <= '9'; }

static void lsw_jp_skip_ws(lsw_jp *p)
{
    while (p->pos < p->len) {
        unsigned char c = p->t[p->pos];
        if (c != ' ' && c != '\n' && c != '\r' && c != '\t')
            break;
        p->pos++;
    }
}

/* Length of the valid UTF-8 sequence at s (RFC 3629 table: no overlong
 * forms, no surrogates, nothing above U+10FFFF), 0 if invalid or truncated. */
static size_t lsw_jp_utf8(const unsigned char *s, size_t avail)
{
    unsigned char c = s[0], lo = 0x80, hi = 0xBF;
    size_t n;
    if (c < 0x80)
        return 1;
    if (c < 0xC2)
        return 0;
    if (c < 0xE0)
        n = 2;
    else if (c < 0xF0) {
        n = 3;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else if (c < 0xF5) {
        n = 4;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else
        return 0;
    if (avail < n || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if ((s[i] & 0xC0) != 0x80)
            return 0;
    return n;
}

static int lsw_jp_hex4(const unsigned char *t, size_t i, size_t end, uint32_t *out)
{
    uint32_t v = 0;
    if (i > end || end - i < 4)
        return -1;
    for (size_t k = 0; k < 4; k++) {
        unsigned char c = t[i + k];
        uint32_t d;
        if (c >= '0' && c <= '9') d = (uint32_t)(c - '0');
        else if (c >= 'a' && c <= 'f') d = (uint32_t)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') d = (uint32_t)(c - 'A' + 10);
        else return -1;
        v = v << 4 | d;
    }
    *out = v;
    return 0;
}

static size_t lsw_jp_put_utf8(uint32_t cp, char *d)
{
    if (cp < 0x80) {
        d[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        d[0] = (char)(0xC0 | cp >> 6);
        d[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        d[0] = (char)(0xE0 | cp >> 12);
        d[1] = (char)(0x80 | (cp >> 6 & 0x3F));
        d[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    d[0] = (char)(0xF0 | cp >> 18);
    d[1] = (char)(0x80 | (cp >> 12 & 0x3F));
    d[2] = (char)(0x80 | (cp >> 6 & 0x3F));
    d[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* The string at p->pos (on its opening quote), decoded into the arena. */
static int lsw_jp_string(lsw_jp *p, const char **out, uint32_t *outlen, int *has_nul)
{
    const unsigned char *t = p->t;
    const size_t open = p->pos, end = p->len;
    size_t i = open + 1;
    char *const d0 = p->arena + p->apos;
    char *d = d0;
    char b[16];
    int nul = 0;

    for (;;) {
        size_t run = i; /* copy runs of plain printable ASCII in one go */
        while (i < end && t[i] >= 0x20 && t[i] < 0x80 && t[i] != '"' && t[i] != '\\')
            i++;
        memcpy(d, t + run, i - run);
        d += i - run;
        if (i >= end)
            return lsw_jp_fail(p, open, "unterminated string");
        unsigned char c = t[i];
        if (c == '"') {
            i++;
            break;
        }
        if (c < 0x20)
            return lsw_jp_fail(p, i, "control character U+%04X in a string must be escaped", c);
        if (c >= 0x80) {
            size_t k = lsw_jp_utf8(t + i, end - i);
            if (!k)
                return lsw_jp_fail(p, i, "invalid UTF-8 in string (%s)", lsw_jp_show(c, b));
            memcpy(d, t + i, k);
            d += k;
            i += k;
            continue;
        }
        /* backslash */
        const size_t esc = i++;
        if (i >= end)
            return lsw_jp_fail(p, open, "unterminated string");
        switch (t[i++]) {
        case '"': *d++ = '"'; break;
        case '\\': *d++ = '\\'; break;
        case '/': *d++ = '/'; break;
        case 'b': *d++ = '\b'; break;
        case 'f': *d++ = '\f'; break;
        case 'n': *d++ = '\n'; break;
        case 'r': *d++ = '\r'; break;
        case 't': *d++ = '\t'; break;
        case 'u': {
            uint32_t cp, lo;
            if (lsw_jp_hex4(t, i, end, &cp))
                return lsw_jp_fail(p, esc, "invalid \\u escape (four hex digits expected)");
            i += 4;
            if (cp >= 0xDC00 && cp <= 0xDFFF)
                return lsw_jp_fail(p, esc, "lone surrogate \\u%04X (low surrogate without a high one before it)", cp);
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                if (end - i < 2 || t[i] != '\\' || t[i + 1] != 'u' || lsw_jp_hex4(t, i + 2, end, &lo) ||
                    lo < 0xDC00 || lo > 0xDFFF)
                    return lsw_jp_fail(p, esc, "lone surrogate \\u%04X (high surrogate without a low one after it)", cp);
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                i += 6;
            }
            nul |= cp == 0;
            d += lsw_jp_put_utf8(cp, d);
            break;
        }
        default:
            return lsw_jp_fail(p, esc, "invalid escape sequence (backslash followed by %s)", lsw_jp_show(t[i - 1], b));
        }
    }
    *d = '\0';
    *out = d0;
    *outlen = (uint32_t)(d - d0);
    *has_nul = nul;
    p->apos += (size_t)(d - d0) + 1;
    p->pos = i;
    return 0;
}

/* RFC 8259: -? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)? */
static int lsw_jp_number(lsw_jp *p, lsw_json *v)
{
    const unsigned char *t = p->t;
    const size_t start = p->pos, end = p->len;
    size_t i = start;
    char b[16];

    if (t[i] == '-')
        i++;
    if (i >= end || !lsw_jp_isdigit(t[i]))
        return lsw_jp_fail(p, i, "invalid number: digit expected after '-'");
    if (t[i] == '0') {
        if (++i < end && lsw_jp_isdigit(t[i]))
            return lsw_jp_fail(p, i - 1, "invalid number: leading zero");
    } else
        while (i < end && lsw_jp_isdigit(t[i]))
            i++;
    if (i < end && t[i] == '.') {
        if (++i >= end || !lsw_jp_isdigit(t[i]))
            return lsw_jp_fail(p, i, "invalid number: digit expected after '.'");
        while (i < end && lsw_jp_isdigit(t[i]))
            i++;
    }
    if (i < end && (t[i] == 'e' || t[i] == 'E')) {
        if (++i < end && (t[i] == '+' || t[i] == '-'))
            i++;
        if (i >= end || !lsw_jp_isdigit(t[i]))
            return lsw_jp_fail(p, i, "invalid number: digit expected in exponent");
        while (i < end && lsw_jp_isdigit(t[i]))
            i++;
    }
    /* "0x1F", "1.2.3", "1e5e5", "12abc": say "number" rather than "expected ','". */
    if (i < end) {
        unsigned char c = t[i];
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '.' || c == '+' || c == '-' || c == '_')
            return lsw_jp_fail(p, i, "invalid number: unexpected %s", lsw_jp_show(c, b));
    }
    char *d = p->arena + p->apos;
    memcpy(d, t + start, i - start);
    d[i - start] = '\0';
    p->apos += i - start + 1;
    v->type = LSW_JSON_NUMBER;
    v->u.s = d;
    v->n = (uint32_t)(i - start);
    p->pos = i;
    return 0;
}

static int lsw_jp_literal(lsw_jp *p, lsw_json *v, const char *word, lsw_json_type type)
{
    size_t wl = strlen(word);
    if (p->len - p->pos < wl || memcmp(p->t + p->pos, word, wl) != 0)
        return lsw_jp_fail(p, p->pos, "invalid literal (expected %s)", word);
    p->pos += wl;
    v->type = (uint8_t)type;
    return 0;
}

/* ---- object member index ----------------------------------------------- */

static int lsw_jp_keycmp(const char *a, size_t al, const char *b, size_t bl)
{
    int c = memcmp(a, b, al < bl ? al : bl);
    if (c)
        return c;
    return (al > bl) - (al < bl);
}

/* Sorting a million keys that share long prefixes ("model.layers.12.mlp.")
 * with memcmp alone spends its time re-reading cache-cold keys.  So the sort
 * is an MSD radix sort on 8-byte digits: skip the prefix all keys of a run
 * share, cache the next 8 bytes of each key as a big-endian integer `w`
 * (zero-padded), merge sort the 24-byte entries by (w, r) where r =
 * min(bytes left, 9), then do the same for each run still tied with r == 9.
 * Ties with r <= 8 are equal keys.  After LSW_JP_LEVELS digits a run is
 * finished by a plain memcmp merge sort, which bounds recursion and keeps
 * the whole O(n log n) comparisons for any input. */
enum { LSW_JP_RUN = 16, LSW_JP_LEVELS = 8 };

typedef struct lsw_jp_ent {
    uint64_t w;     /* digit: key bytes [d, d + 8), big-endian, zero-padded */
    const char *k;  /* key */
    uint32_t len;   /* key length */
    uint32_t i;     /* member index */
} lsw_jp_ent;

static uint32_t lsw_jp_left(const lsw_jp_ent *e, size_t d)
{
    size_t r = e->len - d; /* every key of a run at depth d has >= d bytes */
    return r > 8 ? 9 : (uint32_t)r;
}

/* Order at depth d: by digit (full == 0) or by the remaining bytes (full == 1). */
static int lsw_jp_entcmp(const lsw_jp_ent *a, const lsw_jp_ent *b, size_t d, int full)
{
    if (full)
        return lsw_jp_keycmp(a->k + d, a->len - d, b->k + d, b->len - d);
    if (a->w != b->w)
        return a->w < b->w ? -1 : 1;
    uint32_t ra = lsw_jp_left(a, d), rb = lsw_jp_left(b, d);
    return (ra > rb) - (ra < rb);
}

/* Stable merge sort of a[0, n) (b: scratch of n entries); result in a. */
static void lsw_jp_msort(lsw_jp_ent *a, lsw_jp_ent *b, size_t n, size_t d, int full)
{
    for (size_t lo = 0; lo < n; lo += LSW_JP_RUN) {
        size_t hi = lo + LSW_JP_RUN < n ? lo + LSW_JP_RUN : n;
        for (size_t i = lo + 1; i < hi; i++) {
            lsw_jp_ent x = a[i];
            size_t j = i;
            for (; j > lo && lsw_jp_entcmp(&a[j - 1], &x, d, full) > 0; j--)
                a[j] = a[j - 1];
            a[j] = x;
        }
    }
    lsw_jp_ent *src = a, *dst = b;
    for (size_t w = LSW_JP_RUN; w < n; w *= 2) {
        for (size_t lo = 0; lo < n; lo += 2 * w) {
            size_t mid = lo + w < n ? lo + w : n, hi = lo + 2 * w < n ? lo + 2 * w : n;
            if (mid >= hi || lsw_jp_entcmp(&src[mid - 1], &src[mid], d, full) <= 0) {
                memcpy(dst + lo, src + lo, (hi - lo) * sizeof *src); /* already in order */
                continue;
            }
            size_t i = lo, j = mid, o = lo;
            while (i < mid && j < hi)
                dst[o++] = lsw_jp_entcmp(&src[i], &src[j], d, full) <= 0 ? src[i++] : src[j++];
            while (i < mid)
                dst[o++] = src[i++];
            while (j < hi)
                dst[o++] = src[j++];
        }
        lsw_jp_ent *t = src;
        src = dst;
        dst = t;
    }
    if (src != a)
        memcpy(a, src, n * sizeof *a);
}

/* a[0, n) all hold the same key: note its second occurrence in source order. */
static void lsw_jp_dups(const lsw_jp_ent *a, size_t n, size_t *dup)
{
    uint32_t m1 = UINT32_MAX, m2 = UINT32_MAX;
    for (size_t j = 0; j < n; j++) {
        if (a[j].i < m1) {
            m2 = m1;
            m1 = a[j].i;
        } else if (a[j].i < m2)
            m2 = a[j].i;
    }
    if (m2 < *dup)
        *dup = m2;
}

/* Sort a[0, n), whose keys share their first d bytes (b: scratch); the
 * smallest member index that repeats an earlier key goes into *dup. */
static void lsw_jp_rsort(lsw_jp_ent *a, lsw_jp_ent *b, size_t n, size_t d, int level, size_t *dup)
{
    if (n < 2)
        return;
    size_t lcp = a[0].len; /* skip the prefix the whole run shares */
    for (size_t j = 1; j < n && lcp > d; j++) {
        size_t m = a[j].len < lcp ? a[j].len : lcp, q = d;
        if (memcmp(a[0].k + d, a[j].k + d, m - d) == 0)
            q = m;
        else
            while (a[0].k[q] == a[j].k[q])
                q++;
        lcp = q;
    }
    d = lcp;
    if (level >= LSW_JP_LEVELS) {
        lsw_jp_msort(a, b, n, d, 1);
        for (size_t s = 0, e; s < n; s = e) {
            for (e = s + 1; e < n && lsw_jp_entcmp(&a[s], &a[e], d, 1) == 0; e++)
                ;
            if (e - s > 1)
                lsw_jp_dups(a + s, e - s, dup);
        }
        return;
    }
    for (size_t j = 0; j < n; j++) {
        unsigned char c[8] = {0};
        size_t m = a[j].len - d < 8 ? a[j].len - d : 8;
        if (m)
            memcpy(c, a[j].k + d, m);
        a[j].w = (uint64_t)c[0] << 56 | (uint64_t)c[1] << 48 | (uint64_t)c[2] << 40 | (uint64_t)c[3] << 32 |
                 (uint64_t)c[4] << 24 | (uint64_t)c[5] << 16 | (uint64_t)c[6] << 8 | (uint64_t)c[7];
    }
    lsw_jp_msort(a, b, n, d, 0);
    for (size_t s = 0, e; s < n; s = e) {
        for (e = s + 1; e < n && lsw_jp_entcmp(&a[s], &a[e], d, 0) == 0; e++)
            ;
        if (e - s < 2)
            continue;
        if (lsw_jp_left(&a[s], d) == 9)
            lsw_jp_rsort(a + s, b + s, e - s, d + 8, level + 1, dup);
        else
            lsw_jp_dups(a + s, e - s, dup);
    }
}

/* Offset of the opening quote of the key of the member whose value starts
 * at `voff`: back over whitespace, ':', whitespace to the closing quote, then
 * to the first quote not escaped by an odd run of backslashes.  Only used for
 * error messages, so keys need not store their offset. */
static size_t lsw_jp_key_offset(const lsw_jp *p, size_t voff)
{
    const unsigned char *t = p->t;
    size_t i = voff;
    while (i > 0 && t[i - 1] != ':')
        i--;
    if (i == 0)
        return voff;
    i--;
    while (i > 0 && t[i - 1] != '"')
        i--;
    if (i == 0)
        return voff;
    i--; /* closing quote */
    while (i > 0) {
        i--;
        if (t[i] == '"') {
            size_t bs = 0;
            while (bs < i && t[i - 1 - bs] == '\\')
                bs++;
            if (bs % 2 == 0)
                return i;
        }
    }
    return voff;
}

/* Sort the members of the object whose n children start at node `first`
 * by key bytes, store the order in the children's `ord` fields and reject
 * duplicate keys. */
static int lsw_jp_index(lsw_jp *p, size_t first, size_t n)
{
    lsw_json *kids = p->nodes + first;
    if (n < 2) {
        if (n == 1)
            kids[0].ord = 0;
        return 0;
    }
    /* Keys are often sorted in the source already (writers of safetensors
     * and index files commonly sort them); then one pass over adjacent keys
     * does it all, cache-friendly. */
    size_t j = 1;
    while (j < n && lsw_jp_keycmp(kids[j - 1].key, kids[j - 1].keylen, kids[j].key, kids[j].keylen) < 0)
        j++;
    if (j == n) {
        for (j = 0; j < n; j++)
            kids[j].ord = (uint32_t)j;
        return 0;
    }
    lsw_jp_ent *a = lsw_jp_grow(p->tmp, &p->tcap, 2 * n, sizeof *a);
    if (!a)
        return lsw_jp_nomem(p);
    p->tmp = a;
    for (size_t i = 0; i < n; i++) {
        a[i].k = kids[i].key;
        a[i].len = kids[i].keylen;
        a[i].i = (uint32_t)i;
    }
    size_t dup = SIZE_MAX;
    lsw_jp_rsort(a, a + n, n, 0, 0, &dup);
    if (dup != SIZE_MAX) {
        char k[320];
        lsw_jp_show_key(k, sizeof k, kids[dup].key, kids[dup].keylen);
        return lsw_jp_fail(p, lsw_jp_key_offset(p, kids[dup].off), "duplicate key \"%s\"", k);
    }
    for (j = 0; j < n; j++)
        kids[j].ord = a[j].i;
    return 0;
}

/* ---- values ------------------------------------------------------------ */

static int lsw_jp_value(lsw_jp *p, lsw_json *v);

/* Move the children [base, sn) of the scratch stack into the node array. */
static int lsw_jp_close(lsw_jp *p, lsw_json *v, size_t base)
{
    size_t n = p->sn - base, first = p->nn;
    int rc = lsw_jp_place(p, n ? p->stk + base : NULL, n); /* stk is NULL before the first push */
    if (rc)
        return rc;
    p->sn = base;
    v->u.kid = (uint32_t)first;
    v->n = (uint32_t)n;
    return v->type == LSW_JSON_OBJECT ? lsw_jp_index(p, first, n) : 0;
}

static int lsw_jp_array(lsw_jp *p, lsw_json *v)
{
    const size_t base = p->sn;
    char b[16];
    int rc;
    v->type = LSW_JSON_ARRAY;
    p->pos++;
    lsw_jp_skip_ws(p);
    if (p->pos < p->len && p->t[p->pos] == ']') {
        p->pos++;
        return lsw_jp_close(p, v, base);
    }
    for (;;) {
        lsw_json el;
        if ((rc = lsw_jp_value(p, &el)) || (rc = lsw_jp_push(p, &el)))
            return rc;
        lsw_jp_skip_ws(p);
        if (p->pos >= p->len)
            return lsw_jp_fail(p, p->pos, "unexpected end of input in array");
        unsigned char c = p->t[p->pos++];
        if (c == ']')
            return lsw_jp_close(p, v, base);
        if (c != ',')
            return lsw_jp_fail(p, p->pos - 1, "expected ',' or ']' in array, found %s", lsw_jp_show(c, b));
        lsw_jp_skip_ws(p);
    }
}

static int lsw_jp_object(lsw_jp *p, lsw_json *v)
{
    const size_t base = p->sn;
    char b[16];
    int rc;
    v->type = LSW_JSON_OBJECT;
    p->pos++;
    lsw_jp_skip_ws(p);
    if (p->pos < p->len && p->t[p->pos] == '}') {
        p->pos++;
        return lsw_jp_close(p, v, base);
    }
    for (;;) {
        const char *key;
        uint32_t keylen;
        int knul;
        lsw_json m;
        if (p->pos >= p->len)
            return lsw_jp_fail(p, p->pos, "unexpected end of input in object");
        if (p->t[p->pos] != '"')
            return lsw_jp_fail(p, p->pos, "expected a string key, found %s", lsw_jp_show(p->t[p->pos], b));
        if ((rc = lsw_jp_string(p, &key, &keylen, &knul)))
            return rc;
        lsw_jp_skip_ws(p);
        if (p->pos >= p->len)
            return lsw_jp_fail(p, p->pos, "unexpected end of input in object");
        if (p->t[p->pos] != ':')
            return lsw_jp_fail(p, p->pos, "expected ':' after object key, found %s", lsw_jp_show(p->t[p->pos], b));
        p->pos++;
        lsw_jp_skip_ws(p);
        if ((rc = lsw_jp_value(p, &m)))
            return rc;
        m.key = key;
        m.keylen = keylen;
        if (knul)
            m.flags |= LSW_JF_KEY_NUL;
        if ((rc = lsw_jp_push(p, &m)))
            return rc;
        lsw_jp_skip_ws(p);
        if (p->pos >= p->len)
            return lsw_jp_fail(p, p->pos, "unexpected end of input in object");
        unsigned char c = p->t[p->pos++];
        if (c == '}')
            return lsw_jp_close(p, v, base);
        if (c != ',')
            return lsw_jp_fail(p, p->pos - 1, "expected ',' or '}' in object, found %s", lsw_jp_show(c, b));
        lsw_jp_skip_ws(p);
    }
}

/* The value at p->pos (whitespace already skipped) into *v. */
static int lsw_jp_value(lsw_jp *p, lsw_json *v)
{
    char b[16];
    int rc, nul;
    memset(v, 0, sizeof *v);
    v->off = (uint32_t)p->pos;
    if (p->pos >= p->len)
        return lsw_jp_fail(p, p->pos, "unexpected end of input, expected a value");
    switch (p->t[p->pos]) {
    case '{':
    case '[':
        if (p->depth >= LSW_JSON_MAX_DEPTH)
            return lsw_jp_fail(p, p->pos, "nesting deeper than %d levels", LSW_JSON_MAX_DEPTH);
        p->depth++;
        rc = p->t[p->pos] == '{' ? lsw_jp_object(p, v) : lsw_jp_array(p, v);
        p->depth--;
        break;
    case '"':
        v->type = LSW_JSON_STRING;
        rc = lsw_jp_string(p, &v->u.s, &v->n, &nul);
        if (nul)
            v->flags |= LSW_JF_STR_NUL;
        break;
    case 't': rc = lsw_jp_literal(p, v, "true", LSW_JSON_TRUE); break;
    case 'f': rc = lsw_jp_literal(p, v, "false", LSW_JSON_FALSE); break;
    case 'n': rc = lsw_jp_literal(p, v, "null", LSW_JSON_NULL); break;
    case '-': case '0': case '1': case '2': case '3': case '4':
    case '5': case '6': case '7': case '8': case '9':
        rc = lsw_jp_number(p, v);
        break;
    default:
        return lsw_jp_fail(p, p->pos, "expected a value, found %s", lsw_jp_show(p->t[p->pos], b));
    }
    v->len = (uint32_t)(p->pos - v->off);
    return rc;
}

/* ---- public ------------------------------------------------------------ */

int lsw_json_parse(const char *text, size_t len, lsw_json_doc **out, char *why, size_t whylen)
{
    lsw_jp P;
    lsw_json root;
    lsw_json_doc *doc = NULL;
    lsw_json *shrunk;
    char b[16];
    int rc;

    memset(&P, 0, sizeof P);
    P.t = (const unsigned char *)text;
    P.len = text ? len : 0;
    P.why = why;
    P.whylen = whylen;
    if (why && whylen)
        why[0] = '\0';
    if (out)
        *out = NULL;
    else
        return lsw_jp_fail(&P, 0, "no output pointer");

    if (P.len >= UINT32_MAX)
        return lsw_jp_fail(&P, 0, "JSON text of 4 GiB or more is not supported");
    if (P.len >= 3 && P.t[0] == 0xEF && P.t[1] == 0xBB && P.t[2] == 0xBF)
        return lsw_jp_fail(&P, 0, "byte-order mark not allowed");

    /* Never grows, see the top of the file. */
    P.arena = malloc(P.len + 1);
    P.ncap = P.len / 16 + 16;
    P.nodes = malloc(P.ncap * sizeof *P.nodes);
    if (!P.arena || !P.nodes) {
        rc = lsw_jp_nomem(&P);
        goto done;
    }

    lsw_jp_skip_ws(&P);
    if ((rc = lsw_jp_value(&P, &root)))
        goto done;
    lsw_jp_skip_ws(&P);
    if (P.pos < P.len) {
        rc = lsw_jp_fail(&P, P.pos, "trailing characters after the JSON value (%s)", lsw_jp_show(P.t[P.pos], b));
        goto done;
    }
    if ((rc = lsw_jp_place(&P, &root, 1)))
        goto done;

    doc = malloc(sizeof *doc);
    if (!doc) {
        rc = lsw_jp_nomem(&P);
        goto done;
    }
    /* Nodes hold no pointers into their own array, so shrinking may move them. */
    shrunk = realloc(P.nodes, P.nn * sizeof *P.nodes);
    doc->nodes = shrunk ? shrunk : P.nodes;
    doc->nn = P.nn;
    doc->arena = P.arena;
    P.nodes = NULL;
    P.arena = NULL;
    *out = doc;
done:
    free(P.nodes);
    free(P.arena);
    free(P.stk);
    free(P.tmp);
    return rc;
}

void lsw_json_free(lsw_json_doc *doc)
{
    if (!doc)
        return;
    free(doc->nodes);
    free(doc->arena);
    free(doc);
}

const lsw_json *lsw_json_root(const lsw_json_doc *doc)
{
    return doc && doc->nn ? &doc->nodes[doc->nn - 1] : NULL;
}

lsw_json_type lsw_json_type_of(const lsw_json *v)
{
    return v ? (lsw_json_type)v->type : LSW_JSON_NULL;
}

static int lsw_json_is_container(const lsw_json *v)
{
    return v && (v->type == LSW_JSON_ARRAY || v->type == LSW_JSON_OBJECT);
}

/* First child of a placed container (children lie before it in the array). */
static const lsw_json *lsw_json_kids(const lsw_json *v)
{
    return v - v->u.kid;
}

size_t lsw_json_count(const lsw_json *v)
{
    return lsw_json_is_container(v) ? v->n : 0;
}

const lsw_json *lsw_json_at(const lsw_json *v, size_t i)
{
    return lsw_json_is_container(v) && i < v->n ? lsw_json_kids(v) + i : NULL;
}

const char *lsw_json_key(const lsw_json *obj, size_t i, size_t *len)
{
    if (!obj || obj->type != LSW_JSON_OBJECT || i >= obj->n) {
        if (len)
            *len = 0;
        return NULL;
    }
    const lsw_json *m = lsw_json_kids(obj) + i;
    if (len)
        *len = m->keylen;
    return m->key;
}

const lsw_json *lsw_json_get(const lsw_json *obj, const char *key)
{
    if (!obj || obj->type != LSW_JSON_OBJECT || !key)
        return NULL;
    const lsw_json *kids = lsw_json_kids(obj);
    size_t kl = strlen(key), lo = 0, hi = obj->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const lsw_json *m = kids + kids[mid].ord;
        int c = lsw_jp_keycmp(m->key, m->keylen, key, kl);
        if (c == 0)
            return m;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

const char *lsw_json_str(const lsw_json *v, size_t *len)
{
    if (!v || v->type != LSW_JSON_STRING) {
        if (len)
            *len = 0;
        return NULL;
    }
    if (len)
        *len = v->n;
    return v->u.s;
}

int lsw_json_str_has_nul(const lsw_json *v)
{
    return v && v->type == LSW_JSON_STRING && (v->flags & LSW_JF_STR_NUL);
}

int lsw_json_key_has_nul(const lsw_json *obj, size_t i)
{
    return obj && obj->type == LSW_JSON_OBJECT && i < obj->n && (lsw_json_kids(obj)[i].flags & LSW_JF_KEY_NUL);
}

/* Magnitude of an unsigned decimal literal; -1 unless all digits and <= max. */
static int lsw_json_digits(const char *s, size_t n, uint64_t max, uint64_t *out)
{
    uint64_t x = 0;
    if (n == 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        uint64_t d = (uint64_t)(s[i] - '0');
        if (x > (max - d) / 10)
            return -1;
        x = x * 10 + d;
    }
    *out = x;
    return 0;
}

int lsw_json_u64(const lsw_json *v, uint64_t *out)
{
    uint64_t x;
    if (!v || v->type != LSW_JSON_NUMBER || lsw_json_digits(v->u.s, v->n, UINT64_MAX, &x))
        return -1;
    if (out)
        *out = x;
    return 0;
}

int lsw_json_i64(const lsw_json *v, int64_t *out)
{
    uint64_t x;
    if (!v || v->type != LSW_JSON_NUMBER)
        return -1;
    int neg = v->u.s[0] == '-';
    if (lsw_json_digits(v->u.s + neg, v->n - (size_t)neg, neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX, &x))
        return -1;
    if (out)
        *out = !neg ? (int64_t)x : x == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)x;
    return 0;
}

int lsw_json_f64(const lsw_json *v, double *out)
{
    if (!v || v->type != LSW_JSON_NUMBER)
        return -1;
    /* strtod in the C locale whatever setlocale() did (glibc returns its
     * static C locale object here, without allocating). */
    locale_t c = newlocale(LC_ALL_MASK, "C", (locale_t)0);
    double d = c ? strtod_l(v->u.s, NULL, c) : strtod(v->u.s, NULL);
    if (c)
        freelocale(c);
    if (out)
        *out = d;
    return 0;
}

void lsw_json_span(const lsw_json *v, size_t *off, size_t *len)
{
    if (off)
        *off = v ? v->off : 0;
    if (len)
        *len = v ? v->len : 0;
}
