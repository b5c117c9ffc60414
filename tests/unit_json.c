/* unit_json — tests of the strict JSON reader (io/lsw_json.h). */
#include "lsw_array.h"
#include "lsw_error.h"
#include "lsw_json.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int n_pass, n_fail;

#define CHECK(cond) check_at(__FILE__, __LINE__, (cond) ? 1 : 0, #cond)
static void check_at(const char *file, int line, int ok, const char *what)
{
    if (ok)
        n_pass++;
    else {
        n_fail++;
        fprintf(stderr, "%s:%d: CHECK failed: %s\n", file, line, what);
    }
}

/* Parse n bytes copied into a buffer of exactly n bytes (so a sanitizer sees
 * any read past the end), then free that buffer: the document must not
 * depend on the text. */
static int parse_n(const char *s, size_t n, lsw_json_doc **doc, char *why, size_t whylen)
{
    char *buf = malloc(n ? n : 1);
    if (!buf)
        abort();
    memcpy(buf, s, n);
    *doc = (lsw_json_doc *)buf; /* garbage: parse must overwrite it */
    int rc = lsw_json_parse(buf, n, doc, why, whylen);
    memset(buf, 'X', n);
    free(buf);
    return rc;
}

/* String literals with embedded NULs keep their length through sizeof. */
#define LIT(s) (s), (sizeof(s) - 1)

/* Must parse; returns the document (NULL and a failure if it does not). */
#define OK(s) ok_at(__FILE__, __LINE__, LIT(s))
static lsw_json_doc *ok_at(const char *file, int line, const char *s, size_t n)
{
    lsw_json_doc *doc;
    char why[256];
    int rc = parse_n(s, n, &doc, why, sizeof why);
    if (rc != 0 || !doc) {
        char what[400];
        snprintf(what, sizeof what, "parse should succeed (rc %d: %s)", rc, why);
        check_at(file, line, 0, what);
        return NULL;
    }
    check_at(file, line, 1, "parse ok");
    return doc;
}

/* Must fail with LSW_E_INPUT, *out NULL and a "line L, column C (byte B): ..."
 * message containing `sub`. */
#define BAD(s, sub) bad_at(__FILE__, __LINE__, LIT(s), sub)
static void bad_at(const char *file, int line, const char *s, size_t n, const char *sub)
{
    lsw_json_doc *doc;
    char why[256];
    int rc = parse_n(s, n, &doc, why, sizeof why);
    char what[600];
    int ok = rc == LSW_E_INPUT && doc == NULL && strncmp(why, "line ", 5) == 0 && strstr(why, ", column ") &&
             strstr(why, " (byte ") && strstr(why, sub);
    snprintf(what, sizeof what, "parse should fail with \"%s\" (rc %d, why \"%s\")", sub, rc, why);
    check_at(file, line, ok, what);
    lsw_json_free(doc);
}

/* Exact error message. */
#define BADMSG(s, msg) badmsg_at(__FILE__, __LINE__, LIT(s), msg)
static void badmsg_at(const char *file, int line, const char *s, size_t n, const char *msg)
{
    lsw_json_doc *doc;
    char why[256];
    int rc = parse_n(s, n, &doc, why, sizeof why);
    char what[600];
    snprintf(what, sizeof what, "message should be \"%s\" (rc %d, why \"%s\")", msg, rc, why);
    check_at(file, line, rc == LSW_E_INPUT && strcmp(why, msg) == 0, what);
    lsw_json_free(doc);
}

static int span_is(const char *src, const lsw_json *v, const char *want)
{
    size_t off, len;
    lsw_json_span(v, &off, &len);
    return len == strlen(want) && memcmp(src + off, want, len) == 0;
}

static int str_is(const lsw_json *v, const char *want, size_t wantlen)
{
    size_t len = 12345;
    const char *s = lsw_json_str(v, &len);
    return s && len == wantlen && memcmp(s, want, len) == 0 && s[len] == '\0';
}

/* ---- valid values ---------------------------------------------------- */

static void test_scalars(void)
{
    lsw_json_doc *d;
    const lsw_json *r;

    d = OK("null");
    r = lsw_json_root(d);
    CHECK(lsw_json_type_of(r) == LSW_JSON_NULL);
    CHECK(lsw_json_count(r) == 0 && lsw_json_at(r, 0) == NULL && lsw_json_get(r, "a") == NULL);
    CHECK(lsw_json_str(r, NULL) == NULL);
    lsw_json_free(d);

    d = OK("true");
    CHECK(lsw_json_type_of(lsw_json_root(d)) == LSW_JSON_TRUE);
    lsw_json_free(d);
    d = OK("false");
    CHECK(lsw_json_type_of(lsw_json_root(d)) == LSW_JSON_FALSE);
    lsw_json_free(d);

    d = OK(" \t\r\n 42 \n\t\r ");
    r = lsw_json_root(d);
    CHECK(lsw_json_type_of(r) == LSW_JSON_NUMBER);
    {
        uint64_t u = 0;
        int64_t i = 0;
        double f = 0;
        size_t off, len;
        CHECK(lsw_json_u64(r, &u) == 0 && u == 42);
        CHECK(lsw_json_i64(r, &i) == 0 && i == 42);
        CHECK(lsw_json_f64(r, &f) == 0 && f == 42.0);
        lsw_json_span(r, &off, &len);
        CHECK(off == 5 && len == 2);
    }
    lsw_json_free(d);

    d = OK("\"hello\"");
    r = lsw_json_root(d);
    CHECK(lsw_json_type_of(r) == LSW_JSON_STRING);
    CHECK(str_is(r, "hello", 5));
    CHECK(lsw_json_str_has_nul(r) == 0);
    CHECK(lsw_json_u64(r, NULL) == -1 && lsw_json_f64(r, NULL) == -1);
    lsw_json_free(d);

    d = OK("\"\"");
    CHECK(str_is(lsw_json_root(d), "", 0));
    lsw_json_free(d);

    /* Accessors on NULL are harmless. */
    CHECK(lsw_json_root(NULL) == NULL);
    CHECK(lsw_json_type_of(NULL) == LSW_JSON_NULL);
    CHECK(lsw_json_count(NULL) == 0 && lsw_json_at(NULL, 0) == NULL && lsw_json_get(NULL, "a") == NULL);
    CHECK(lsw_json_key(NULL, 0, NULL) == NULL && lsw_json_str(NULL, NULL) == NULL);
    CHECK(lsw_json_u64(NULL, NULL) == -1 && lsw_json_i64(NULL, NULL) == -1 && lsw_json_f64(NULL, NULL) == -1);
    CHECK(lsw_json_str_has_nul(NULL) == 0 && lsw_json_key_has_nul(NULL, 0) == 0);
    lsw_json_free(NULL);
}

static void test_nesting(void)
{
    static const char src[] = "{\"a\":[1,{\"b\":null},[]],\"c\":{},\"d\":\"s\",\"e\":[true,false]}";
    lsw_json_doc *d = OK("{\"a\":[1,{\"b\":null},[]],\"c\":{},\"d\":\"s\",\"e\":[true,false]}");
    const lsw_json *r = lsw_json_root(d), *a, *c, *e;
    size_t kl;
    CHECK(lsw_json_type_of(r) == LSW_JSON_OBJECT && lsw_json_count(r) == 4);
    CHECK(strcmp(lsw_json_key(r, 0, &kl), "a") == 0 && kl == 1);
    CHECK(strcmp(lsw_json_key(r, 1, NULL), "c") == 0);
    CHECK(strcmp(lsw_json_key(r, 2, NULL), "d") == 0);
    CHECK(strcmp(lsw_json_key(r, 3, NULL), "e") == 0);
    CHECK(lsw_json_key(r, 4, &kl) == NULL);
    CHECK(lsw_json_at(r, 4) == NULL);
    a = lsw_json_get(r, "a");
    CHECK(a == lsw_json_at(r, 0));
    CHECK(lsw_json_type_of(a) == LSW_JSON_ARRAY && lsw_json_count(a) == 3);
    CHECK(lsw_json_type_of(lsw_json_at(a, 0)) == LSW_JSON_NUMBER);
    CHECK(lsw_json_type_of(lsw_json_at(a, 1)) == LSW_JSON_OBJECT);
    CHECK(lsw_json_type_of(lsw_json_get(lsw_json_at(a, 1), "b")) == LSW_JSON_NULL);
    CHECK(lsw_json_get(lsw_json_at(a, 1), "b") != NULL);
    CHECK(lsw_json_type_of(lsw_json_at(a, 2)) == LSW_JSON_ARRAY && lsw_json_count(lsw_json_at(a, 2)) == 0);
    CHECK(lsw_json_at(a, 3) == NULL);
    CHECK(lsw_json_key(a, 0, NULL) == NULL); /* not an object */
    CHECK(lsw_json_get(a, "0") == NULL);
    c = lsw_json_get(r, "c");
    CHECK(lsw_json_type_of(c) == LSW_JSON_OBJECT && lsw_json_count(c) == 0);
    CHECK(lsw_json_get(c, "") == NULL && lsw_json_at(c, 0) == NULL && lsw_json_key(c, 0, NULL) == NULL);
    CHECK(str_is(lsw_json_get(r, "d"), "s", 1));
    e = lsw_json_get(r, "e");
    CHECK(lsw_json_type_of(lsw_json_at(e, 0)) == LSW_JSON_TRUE && lsw_json_type_of(lsw_json_at(e, 1)) == LSW_JSON_FALSE);
    CHECK(lsw_json_get(r, "f") == NULL && lsw_json_get(r, "") == NULL && lsw_json_get(r, NULL) == NULL);
    CHECK(span_is(src, r, src));
    lsw_json_free(d);

    d = OK("{}");
    CHECK(lsw_json_type_of(lsw_json_root(d)) == LSW_JSON_OBJECT && lsw_json_count(lsw_json_root(d)) == 0);
    lsw_json_free(d);
    d = OK("{ \n\t}");
    CHECK(lsw_json_count(lsw_json_root(d)) == 0);
    lsw_json_free(d);
    d = OK("[ ]");
    CHECK(lsw_json_type_of(lsw_json_root(d)) == LSW_JSON_ARRAY && lsw_json_count(lsw_json_root(d)) == 0);
    lsw_json_free(d);
    d = OK("[[[]],[{}],{\"x\":[[]]}]");
    r = lsw_json_root(d);
    CHECK(lsw_json_count(r) == 3);
    CHECK(lsw_json_count(lsw_json_at(lsw_json_at(r, 0), 0)) == 0);
    CHECK(lsw_json_count(lsw_json_at(lsw_json_get(lsw_json_at(r, 2), "x"), 0)) == 0);
    lsw_json_free(d);
}

/* ---- strings --------------------------------------------------------- */

static void test_strings(void)
{
    lsw_json_doc *d;

    d = OK("\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"");
    CHECK(str_is(lsw_json_root(d), "\"\\/\b\f\n\r\t", 8));
    lsw_json_free(d);

    d = OK("\"\\u0041\\u00e9\\u00E9\\u20AC\\uD83D\\uDE00\\uffff\\uD800\\uDC00\\uDBFF\\uDFFF\"");
    CHECK(str_is(lsw_json_root(d), LIT("A\xC3\xA9\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80\xEF\xBF\xBF\xF0\x90\x80\x80\xF4\x8F\xBF\xBF")));
    CHECK(lsw_json_str_has_nul(lsw_json_root(d)) == 0);
    lsw_json_free(d);

    /* Raw UTF-8 at every boundary of the RFC 3629 table. */
    d = OK("\"\xC2\x80|\xDF\xBF|\xE0\xA0\x80|\xED\x9F\xBF|\xEE\x80\x80|\xEF\xBF\xBF|\xF0\x90\x80\x80|\xF4\x8F\xBF\xBF|\x7F\"");
    CHECK(str_is(lsw_json_root(d), LIT("\xC2\x80|\xDF\xBF|\xE0\xA0\x80|\xED\x9F\xBF|\xEE\x80\x80|\xEF\xBF\xBF|"
                                       "\xF0\x90\x80\x80|\xF4\x8F\xBF\xBF|\x7F")));
    lsw_json_free(d);

    /* A byte-order mark inside a string is just U+FEFF. */
    d = OK("\"\xEF\xBB\xBF\"");
    CHECK(str_is(lsw_json_root(d), "\xEF\xBB\xBF", 3));
    lsw_json_free(d);

    /* Embedded NUL, by escape, in string and key. */
    d = OK("{\"a\\u0000b\":\"x\\u0000y\",\"plain\":\"p\",\"\\u0000\":\"\\u0000\"}");
    {
        const lsw_json *r = lsw_json_root(d);
        size_t kl;
        const char *k = lsw_json_key(r, 0, &kl);
        CHECK(k && kl == 3 && memcmp(k, "a\0b", 4) == 0);
        CHECK(lsw_json_key_has_nul(r, 0) == 1);
        CHECK(lsw_json_key_has_nul(r, 1) == 0);
        CHECK(lsw_json_key_has_nul(r, 2) == 1);
        CHECK(lsw_json_key_has_nul(r, 3) == 0); /* out of range */
        CHECK(str_is(lsw_json_at(r, 0), "x\0y", 3));
        CHECK(lsw_json_str_has_nul(lsw_json_at(r, 0)) == 1);
        CHECK(lsw_json_str_has_nul(lsw_json_at(r, 1)) == 0);
        CHECK(str_is(lsw_json_at(r, 2), "\0", 1) && lsw_json_str_has_nul(lsw_json_at(r, 2)) == 1);
        CHECK(lsw_json_str_has_nul(r) == 0); /* not a string */
        /* A C-string lookup never matches a key with a NUL in it. */
        CHECK(lsw_json_get(r, "a") == NULL);
        CHECK(lsw_json_get(r, "") == NULL);
        CHECK(lsw_json_get(r, "plain") == lsw_json_at(r, 1));
    }
    lsw_json_free(d);
}

static void test_bad_strings(void)
{
    /* Control characters must be escaped (DEL is fine, see above). */
    BAD("\"a\x01\"", "control character U+0001");
    BAD("\"\x1F\"", "control character U+001F");
    BAD("\"a\tb\"", "control character U+0009");
    BAD("\"a\nb\"", "control character");
    BAD("\"a\rb\"", "control character");
    BAD("\"a\0b\"", "control character U+0000");
    BAD("{\"k\x02\":1}", "control character");

    /* Only the RFC escapes. */
    BAD("\"\\x41\"", "invalid escape");
    BAD("\"\\a\"", "invalid escape");
    BAD("\"\\U0041\"", "invalid escape");
    BAD("\"\\'\"", "invalid escape");
    BAD("\"\\0\"", "invalid escape");
    BAD("\"\\\x01\"", "invalid escape");
    BAD("\"\\\xC3\xA9\"", "invalid escape");
    BAD("\"\\u12\"", "invalid \\u escape");
    BAD("\"\\u12G4\"", "invalid \\u escape");
    BAD("\"\\u-123\"", "invalid \\u escape");
    BAD("\"\\u 123\"", "invalid \\u escape");
    BAD("\"\\u", "invalid \\u escape");
    BAD("\"\\u004", "invalid \\u escape");

    /* Lone surrogates. */
    BAD("\"\\uD800\"", "lone surrogate");
    BAD("\"\\uDBFF\"", "lone surrogate");
    BAD("\"\\uDC00\"", "lone surrogate");
    BAD("\"\\uDFFF\"", "lone surrogate");
    BAD("\"\\uD800x\"", "lone surrogate");
    BAD("\"\\uD800\\u0041\"", "lone surrogate");
    BAD("\"\\uD800\\uD800\"", "lone surrogate");
    BAD("\"\\uD800\\uE000\"", "lone surrogate");
    BAD("\"\\uDC00\\uD800\"", "lone surrogate");
    BAD("\"\\uD800\\n\"", "lone surrogate");
    BAD("\"\\uD800\\\"", "lone surrogate");
    BAD("\"\\uD800\\u", "lone surrogate");
    BAD("\"\\uD800\\uDC0", "lone surrogate");
    BAD("{\"\\uDE00\":1}", "lone surrogate");

    /* Invalid UTF-8. */
    BAD("\"\x80\"", "invalid UTF-8");          /* lone continuation */
    BAD("\"\xBF\"", "invalid UTF-8");
    BAD("\"\xC0\x80\"", "invalid UTF-8");      /* overlong NUL */
    BAD("\"\xC1\xBF\"", "invalid UTF-8");      /* overlong */
    BAD("\"\xE0\x80\x80\"", "invalid UTF-8");  /* overlong */
    BAD("\"\xE0\x9F\xBF\"", "invalid UTF-8");  /* overlong */
    BAD("\"\xF0\x80\x80\x80\"", "invalid UTF-8");
    BAD("\"\xF0\x8F\xBF\xBF\"", "invalid UTF-8");
    BAD("\"\xED\xA0\x80\"", "invalid UTF-8");  /* U+D800 encoded */
    BAD("\"\xED\xBF\xBF\"", "invalid UTF-8");  /* U+DFFF encoded */
    BAD("\"\xED\xA0\xBD\xED\xB8\x80\"", "invalid UTF-8"); /* CESU-8 pair */
    BAD("\"\xF4\x90\x80\x80\"", "invalid UTF-8"); /* U+110000 */
    BAD("\"\xF5\x80\x80\x80\"", "invalid UTF-8");
    BAD("\"\xF8\x88\x80\x80\x80\"", "invalid UTF-8");
    BAD("\"\xFE\"", "invalid UTF-8");
    BAD("\"\xFF\"", "invalid UTF-8");
    BAD("\"\xC2\"", "invalid UTF-8");          /* truncated before the quote */
    BAD("\"\xE2\x82\"", "invalid UTF-8");
    BAD("\"\xF0\x9F\x98\"", "invalid UTF-8");
    BAD("\"\xC2\x41\"", "invalid UTF-8");      /* bad continuation */
    BAD("\"\xE2\x28\xA1\"", "invalid UTF-8");
    BAD("\"\xE2\x82\x28\"", "invalid UTF-8");
    BAD("\"\xF0\x9F\x28\x80\"", "invalid UTF-8");
    BAD("\"\xC2", "invalid UTF-8");            /* truncated at end of text */
    BAD("\"\xF0\x9F\x98", "invalid UTF-8");
    BAD("{\"k\xC0\xAF\":1}", "invalid UTF-8");

    /* Raw non-ASCII outside strings. */
    BAD("[\xC3\xA9]", "expected a value");
    BAD("[1,\xC2\xA0" "2]", "expected a value"); /* NBSP is not whitespace */

    /* Unterminated. */
    BAD("\"abc", "unterminated string");
    BAD("\"abc\\", "unterminated string");
    BAD("\"abc\\\"", "unterminated string");
    BAD("\"", "unterminated string");
    BAD("{\"a", "unterminated string");
}

/* ---- numbers --------------------------------------------------------- */

static void num_ok_at(int line, const char *s, double want)
{
    lsw_json_doc *d = ok_at(__FILE__, line, s, strlen(s));
    double f = -12345;
    int ok = d && lsw_json_type_of(lsw_json_root(d)) == LSW_JSON_NUMBER && lsw_json_f64(lsw_json_root(d), &f) == 0 &&
             f == want;
    check_at(__FILE__, line, ok, s);
    if (d) {
        size_t off, len;
        lsw_json_span(lsw_json_root(d), &off, &len);
        check_at(__FILE__, line, off == 0 && len == strlen(s), "number span");
    }
    lsw_json_free(d);
}
#define NUM_OK(s, want) num_ok_at(__LINE__, s, want)

static void test_numbers(void)
{
    NUM_OK("0", 0.0);
    NUM_OK("-0", -0.0);
    NUM_OK("1", 1.0);
    NUM_OK("-1", -1.0);
    NUM_OK("123", 123.0);
    NUM_OK("1.0", 1.0);
    NUM_OK("0.5", 0.5);
    NUM_OK("-0.5", -0.5);
    NUM_OK("0.1", 0.1);
    NUM_OK("1e3", 1e3);
    NUM_OK("1E3", 1e3);
    NUM_OK("1e+3", 1e3);
    NUM_OK("1e-3", 1e-3);
    NUM_OK("-1.5E-10", -1.5e-10);
    NUM_OK("0e0", 0.0);
    NUM_OK("0E-0", 0.0);
    NUM_OK("1e007", 1e7); /* leading zeros are allowed in exponents */
    NUM_OK("2.5e400", HUGE_VAL);
    NUM_OK("-2.5e400", -HUGE_VAL);
    NUM_OK("123456789012345678901234567890", 123456789012345678901234567890.0);
    NUM_OK("0.30000000000000004", 0.30000000000000004);

    BAD("01", "leading zero");
    BAD("-01", "leading zero");
    BAD("00", "leading zero");
    BAD("[01]", "leading zero");
    BAD("{\"a\":007}", "leading zero");
    BAD("+1", "expected a value");
    BAD(".5", "expected a value");
    BAD("-.5", "digit expected after '-'");
    BAD("1.", "digit expected after '.'");
    BAD("1.e3", "digit expected after '.'");
    BAD("[1.]", "digit expected after '.'");
    BAD("-", "digit expected after '-'");
    BAD("--1", "digit expected after '-'");
    BAD("- 1", "digit expected after '-'");
    BAD("1e", "digit expected in exponent");
    BAD("1e+", "digit expected in exponent");
    BAD("1E-", "digit expected in exponent");
    BAD("1e+-1", "digit expected in exponent");
    BAD("1e.5", "digit expected in exponent");
    BAD("NaN", "expected a value");
    BAD("nan", "invalid literal");
    BAD("Infinity", "expected a value");
    BAD("-Infinity", "digit expected after '-'");
    BAD("0x10", "invalid number");
    BAD("0X1F", "invalid number");
    BAD("1.2.3", "invalid number");
    BAD("1e5e5", "invalid number");
    BAD("1_000", "invalid number");
    BAD("12abc", "invalid number");
    BAD("1-2", "invalid number");
    BAD("1+2", "invalid number");
    BAD("[1 2]", "expected ',' or ']'");
    BAD("1 2", "trailing characters");
}

static void test_integers(void)
{
    static const struct {
        const char *text;
        int u_ok;
        uint64_t u;
        int i_ok;
        int64_t i;
    } cases[] = {
        {"0", 1, 0, 1, 0},
        {"-0", 0, 0, 1, 0},
        {"7", 1, 7, 1, 7},
        {"18446744073709551615", 1, UINT64_MAX, 0, 0},
        {"18446744073709551616", 0, 0, 0, 0},
        {"18446744073709551620", 0, 0, 0, 0},
        {"99999999999999999999", 0, 0, 0, 0},
        {"184467440737095516150", 0, 0, 0, 0},
        {"9223372036854775807", 1, 9223372036854775807ull, 1, INT64_MAX},
        {"9223372036854775808", 1, 9223372036854775808ull, 0, 0},
        {"-9223372036854775807", 0, 0, 1, -INT64_MAX},
        {"-9223372036854775808", 0, 0, 1, INT64_MIN},
        {"-9223372036854775809", 0, 0, 0, 0},
        {"-18446744073709551615", 0, 0, 0, 0},
        {"-1", 0, 0, 1, -1},
        {"1.0", 0, 0, 0, 0},
        {"0.0", 0, 0, 0, 0},
        {"1e3", 0, 0, 0, 0},
        {"1E3", 0, 0, 0, 0},
        {"-1e3", 0, 0, 0, 0},
        {"100", 1, 100, 1, 100},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        lsw_json_doc *d = ok_at(__FILE__, __LINE__, cases[k].text, strlen(cases[k].text));
        const lsw_json *r = lsw_json_root(d);
        uint64_t u = 0xdead;
        int64_t i = 0xbeef;
        double f;
        char what[200];
        int urc = lsw_json_u64(r, &u), irc = lsw_json_i64(r, &i);
        snprintf(what, sizeof what, "u64 of %s", cases[k].text);
        check_at(__FILE__, __LINE__, cases[k].u_ok ? urc == 0 && u == cases[k].u : urc == -1, what);
        snprintf(what, sizeof what, "i64 of %s", cases[k].text);
        check_at(__FILE__, __LINE__, cases[k].i_ok ? irc == 0 && i == cases[k].i : irc == -1, what);
        snprintf(what, sizeof what, "f64 of %s", cases[k].text);
        check_at(__FILE__, __LINE__, lsw_json_f64(r, &f) == 0, what);
        lsw_json_free(d);
    }
    /* Not numbers. */
    lsw_json_doc *d = OK("[\"1\",true,null,[1],{\"a\":1}]");
    for (size_t k = 0; k < 5; k++) {
        const lsw_json *v = lsw_json_at(lsw_json_root(d), k);
        uint64_t u;
        int64_t i;
        double f;
        CHECK(lsw_json_u64(v, &u) == -1 && lsw_json_i64(v, &i) == -1 && lsw_json_f64(v, &f) == -1);
    }
    lsw_json_free(d);
}

/* ---- objects --------------------------------------------------------- */

static void test_objects(void)
{
    lsw_json_doc *d;
    const lsw_json *r;

    BAD("{\"a\":1,\"a\":2}", "duplicate key \"a\"");
    BADMSG("{\"a\":1,\"a\":2}", "line 1, column 8 (byte 7): duplicate key \"a\"");
    BAD("{\"a\":1,\"\\u0061\":2}", "duplicate key \"a\"");
    BADMSG("{\"\\u0061\" : 1,\n  \"a\" :2}", "line 2, column 3 (byte 17): duplicate key \"a\"");
    BAD("{\"\xC3\xA9\":1,\"\\u00e9\":2}", "duplicate key \"\xC3\xA9\"");
    BAD("{\"\\/\":1,\"/\":2}", "duplicate key \"/\"");
    BAD("{\"a\\u0000b\":1,\"a\\u0000b\":2}", "duplicate key \"a\\u0000b\"");
    BAD("{\"\":1,\"\":2}", "duplicate key \"\"");
    BADMSG("{\"x\\\"\\\\\":1, \"x\\\"\\\\\":2}", "line 1, column 13 (byte 12): duplicate key \"x\\\"\\\\\"");
    BAD("{\"a\":1,\"b\":2,\"c\":3,\"b\":4}", "duplicate key \"b\"");
    BAD("{\"a\":{\"b\":1,\"b\":1}}", "duplicate key \"b\"");
    BAD("[{\"a\":1},{\"b\":1,\"c\":1,\"b\":2}]", "duplicate key \"b\"");
    BADMSG("{\"a\":1,\n \"a\" \t:\r\n [2]}", "line 2, column 2 (byte 9): duplicate key \"a\"");
    /* The earliest repeat is reported. */
    BADMSG("{\"z\":1,\"y\":1,\"y\":2,\"z\":2}", "line 1, column 14 (byte 13): duplicate key \"y\"");

    /* Keys differing by case, length, a NUL, or escaping only are distinct. */
    d = OK("{\"A\":1,\"a\":2,\"aa\":3,\"a\\u0000\":4,\"\\u00e9\":5,\"e\\u0301\":6}");
    r = lsw_json_root(d);
    {
        uint64_t u;
        CHECK(lsw_json_u64(lsw_json_get(r, "A"), &u) == 0 && u == 1);
        CHECK(lsw_json_u64(lsw_json_get(r, "a"), &u) == 0 && u == 2);
        CHECK(lsw_json_u64(lsw_json_get(r, "aa"), &u) == 0 && u == 3);
        CHECK(lsw_json_u64(lsw_json_get(r, "\xC3\xA9"), &u) == 0 && u == 5);
        CHECK(lsw_json_u64(lsw_json_get(r, "e\xCC\x81"), &u) == 0 && u == 6);
        CHECK(lsw_json_get(r, "AA") == NULL && lsw_json_get(r, "b") == NULL && lsw_json_get(r, "") == NULL);
        CHECK(lsw_json_get(r, "e") == NULL);
    }
    lsw_json_free(d);

    BAD("{\"a\"}", "expected ':'");
    BAD("{\"a\" 1}", "expected ':'");
    BAD("{\"a\":}", "expected a value");
    BAD("{\"a\":1,}", "expected a string key");
    BAD("{,}", "expected a string key");
    BAD("{a:1}", "expected a string key");
    BAD("{'a':1}", "expected a string key");
    BAD("{1:1}", "expected a string key");
    BAD("{\"a\":1 \"b\":2}", "expected ',' or '}'");
    BAD("{\"a\":1;\"b\":2}", "expected ',' or '}'");
    BAD("{\"a\":1]", "expected ',' or '}'");
    BAD("{", "unexpected end of input in object");
    BAD("{\"a\"", "unexpected end of input in object");
    BAD("{\"a\":", "unexpected end of input, expected a value");
    BAD("{\"a\":1", "unexpected end of input in object");
    BAD("{\"a\":1,", "unexpected end of input in object");
    BAD("[", "expected a value");
    BAD("[1", "unexpected end of input in array");
    BAD("[1,", "unexpected end of input, expected a value");
    BAD("[1,]", "expected a value");
    BAD("[,1]", "expected a value");
    BAD("[1}", "expected ',' or ']'");
    BAD("]", "expected a value");
    BAD("}", "expected a value");
}

/* An object with many keys: every lookup must find its own member. */
static void test_large_object(void)
{
    enum { N = 50000 };
    size_t cap = (size_t)N * 32 + 16, n = 0;
    char *s = malloc(cap);
    s[n++] = '{';
    for (int i = 0; i < N; i++) {
        /* a permutation of 0..N-1: scrambled order, shared prefixes, varying lengths */
        int k = (int)((size_t)i * 7919 % N);
        n += (size_t)sprintf(s + n, "%s\"key%d\":%d", i ? "," : "", k, k);
    }
    s[n++] = '}';
    lsw_json_doc *d = ok_at(__FILE__, __LINE__, s, n);
    const lsw_json *r = lsw_json_root(d);
    int bad = 0;
    CHECK(lsw_json_count(r) == N);
    for (int k = 0; k < N; k++) {
        char key[32];
        uint64_t u;
        sprintf(key, "key%d", k);
        if (lsw_json_u64(lsw_json_get(r, key), &u) != 0 || u != (uint64_t)k)
            bad++;
    }
    for (size_t i = 0; i < N; i++)
        if (lsw_json_get(r, lsw_json_key(r, i, NULL)) != lsw_json_at(r, i))
            bad++;
    CHECK(bad == 0);
    CHECK(lsw_json_get(r, "key") == NULL && lsw_json_get(r, "key50000") == NULL && lsw_json_get(r, "kez") == NULL);
    lsw_json_free(d);

    /* Same with a duplicate added at the end. */
    n--;
    n += (size_t)sprintf(s + n, ",\"key77\":0}");
    bad_at(__FILE__, __LINE__, s, n, "duplicate key \"key77\"");
    free(s);
}

/* Random objects whose keys share long prefixes, contain NULs, non-ASCII
 * bytes and escapes: duplicates must be found exactly (the earliest repeat is
 * reported at its key), and every NUL-free key must be found by
 * lsw_json_get.  Keys of up to ten 8-byte blocks drive the member sort
 * through all its levels. */
struct tkey {
    char dec[128]; /* decoded */
    size_t dlen;
    char enc[512]; /* as written in JSON, without quotes */
};

static int tkey_cmp(const void *x, const void *y)
{
    const struct tkey *a = x, *b = y;
    size_t m = a->dlen < b->dlen ? a->dlen : b->dlen;
    int c = memcmp(a->dec, b->dec, m);
    return c ? c : (a->dlen > b->dlen) - (a->dlen < b->dlen);
}

static uint32_t rng(void);

static void test_key_order(void)
{
    static const struct { const char *enc, *dec; size_t dlen; } tok[] = {
        {"a", "a", 1}, {"b", "b", 1}, {"\\u0000", "\0", 1}, {"\xC3\xA9", "\xC3\xA9", 2},
        {"\\u00e9", "\xC3\xA9", 2}, {"\\u0061", "a", 1}, {"AAAAAAAA", "AAAAAAAA", 8}, {"BBBBBBBB", "BBBBBBBB", 8},
        {"\\uFFFF", "\xEF\xBF\xBF", 3}, {"z", "z", 1},
    };
    enum { ITER = 300, MAXM = 400 };
    static struct tkey keys[MAXM];
    static size_t keyoff[MAXM];
    char *text = malloc(MAXM * 600 + 16);
    int bad = 0;
    for (int it = 0; it < ITER; it++) {
        size_t m = 1 + rng() % (it % 3 == 0 ? MAXM : 40), n = 0;
        int blocks = it % 2; /* half the objects use the 8-byte blocks only */
        for (size_t j = 0; j < m; j++) {
            struct tkey *k = &keys[j];
            size_t ntok = rng() % (blocks ? 11 : 8), e = 0;
            k->dlen = 0;
            k->enc[0] = '\0';
            for (size_t t = 0; t < ntok; t++) {
                size_t w = blocks ? 6 + rng() % 2 : rng() % (sizeof tok / sizeof tok[0]);
                memcpy(k->dec + k->dlen, tok[w].dec, tok[w].dlen);
                k->dlen += tok[w].dlen;
                e += (size_t)sprintf(k->enc + e, "%s", tok[w].enc);
            }
        }
        if (it % 4 == 1) /* sorted input: the fast path */
            qsort(keys, m, sizeof keys[0], tkey_cmp);
        size_t want_dup = SIZE_MAX;
        for (size_t j = 0; j < m && want_dup == SIZE_MAX; j++)
            for (size_t i = 0; i < j; i++)
                if (tkey_cmp(&keys[i], &keys[j]) == 0) {
                    want_dup = j;
                    break;
                }
        text[n++] = '{';
        for (size_t j = 0; j < m; j++) {
            if (j)
                text[n++] = ',';
            keyoff[j] = n;
            n += (size_t)sprintf(text + n, "\"%s\":%zu", keys[j].enc, j);
        }
        text[n++] = '}';

        lsw_json_doc *d;
        char why[256];
        int rc = parse_n(text, n, &d, why, sizeof why);
        if (want_dup != SIZE_MAX) {
            char at[64];
            snprintf(at, sizeof at, "(byte %zu): duplicate key", keyoff[want_dup]);
            if (rc != LSW_E_INPUT || !strstr(why, at)) {
                bad++;
                fprintf(stderr, "key order: iteration %d: want \"%s\", got rc %d \"%s\"\n", it, at, rc, why);
            }
            continue;
        }
        if (rc != 0) {
            bad++;
            fprintf(stderr, "key order: iteration %d: rc %d \"%s\"\n", it, rc, why);
            continue;
        }
        const lsw_json *r = lsw_json_root(d);
        for (size_t j = 0; j < m; j++) {
            size_t kl;
            const char *k = lsw_json_key(r, j, &kl);
            uint64_t u;
            if (!k || kl != keys[j].dlen || memcmp(k, keys[j].dec, kl) != 0 ||
                lsw_json_key_has_nul(r, j) != (memchr(keys[j].dec, 0, keys[j].dlen) != NULL))
                bad++;
            if (!lsw_json_key_has_nul(r, j) && (lsw_json_u64(lsw_json_get(r, k), &u) != 0 || u != j))
                bad++;
        }
        lsw_json_free(d);
    }
    CHECK(bad == 0);
    free(text);
}

/* ---- whole-text rules ------------------------------------------------ */

static void test_text_rules(void)
{
    lsw_json_doc *d;

    BAD("\xEF\xBB\xBF{}", "byte-order mark");
    BADMSG("\xEF\xBB\xBF{}", "line 1, column 1 (byte 0): byte-order mark not allowed");
    BAD("\xEF\xBB\xBF", "byte-order mark");
    BAD(" \xEF\xBB\xBF{}", "expected a value");
    BAD("\xEF\xBB{}", "expected a value");

    BAD("", "unexpected end of input");
    BAD(" \t\r\n", "unexpected end of input");
    BAD("{}x", "trailing characters after the JSON value");
    BAD("{} {}", "trailing characters after the JSON value");
    BADMSG("{} {}", "line 1, column 4 (byte 3): trailing characters after the JSON value ('{')");
    BAD("[]]", "trailing characters");
    BAD("1,", "trailing characters");
    BAD("null null", "trailing characters");
    BAD("\"a\"\"b\"", "trailing characters");
    BAD("{}\0", "trailing characters");
    BAD("{}\f", "trailing characters");
    BAD("\f{}", "expected a value");
    BAD("\v1", "expected a value");
    BAD("[1,\v2]", "expected a value");
    BAD("{}\x1A", "trailing characters");

    d = OK("{} \t\r\n");
    CHECK(d != NULL);
    lsw_json_free(d);
    d = OK("\r\n\t {\"a\" \n:\r 1 \t,\n\"b\":[ 1 , 2 ] } \n");
    CHECK(lsw_json_count(lsw_json_get(lsw_json_root(d), "b")) == 2);
    lsw_json_free(d);

    BAD("tru", "invalid literal");
    BAD("t", "invalid literal");
    BAD("True", "expected a value");
    BAD("nul", "invalid literal");
    BAD("fals", "invalid literal");
    BAD("truefalse", "trailing characters");
    BAD("[truex]", "expected ',' or ']'");
    BAD("undefined", "expected a value");
    BAD("'a'", "expected a value");
    BAD("/* c */ 1", "expected a value");
    BAD("1 // c", "trailing characters");

    /* Positions: line and column are 1-based (columns count characters), the byte offset is 0-based. */
    BADMSG("[\n1,\n  x]", "line 3, column 3 (byte 7): expected a value, found 'x'");
    BADMSG("[\"\xC3\xA9\xE2\x82\xAC\", x]", "line 1, column 8 (byte 10): expected a value, found 'x'");
    BADMSG("\r\n\r\n{", "line 3, column 2 (byte 5): unexpected end of input in object");
    BADMSG("[\"a\", \"b\xFF\"]", "line 1, column 9 (byte 8): invalid UTF-8 in string (byte 0xFF)");

    /* why: NULL, zero-length and short buffers. */
    {
        lsw_json_doc *doc = (lsw_json_doc *)&doc;
        char why[8];
        CHECK(lsw_json_parse("x", 1, &doc, NULL, 0) == LSW_E_INPUT && doc == NULL);
        doc = (lsw_json_doc *)&doc;
        why[0] = 'Q';
        CHECK(lsw_json_parse("x", 1, &doc, why, 0) == LSW_E_INPUT && doc == NULL && why[0] == 'Q');
        memset(why, 'Q', sizeof why);
        CHECK(lsw_json_parse("x", 1, &doc, why, 5) == LSW_E_INPUT && strcmp(why, "line") == 0 && why[5] == 'Q');
        CHECK(lsw_json_parse("1", 1, &doc, why, sizeof why) == 0 && doc != NULL && why[0] == '\0');
        lsw_json_free(doc);
        CHECK(lsw_json_parse(NULL, 0, &doc, why, sizeof why) == LSW_E_INPUT && doc == NULL);
    }
}

static void test_depth(void)
{
    char buf[2 * (LSW_JSON_MAX_DEPTH + 2) * 8];
    size_t n;
    lsw_json_doc *d;

    /* Exactly LSW_JSON_MAX_DEPTH nested arrays: fine. */
    n = 0;
    for (int i = 0; i < LSW_JSON_MAX_DEPTH; i++)
        buf[n++] = '[';
    buf[n++] = '7';
    for (int i = 0; i < LSW_JSON_MAX_DEPTH; i++)
        buf[n++] = ']';
    d = ok_at(__FILE__, __LINE__, buf, n);
    {
        const lsw_json *v = lsw_json_root(d);
        for (int i = 0; i < LSW_JSON_MAX_DEPTH; i++)
            v = lsw_json_at(v, 0);
        uint64_t u;
        CHECK(lsw_json_u64(v, &u) == 0 && u == 7);
    }
    lsw_json_free(d);

    /* One more: error, at the offending bracket. */
    n = 0;
    for (int i = 0; i <= LSW_JSON_MAX_DEPTH; i++)
        buf[n++] = '[';
    for (int i = 0; i <= LSW_JSON_MAX_DEPTH; i++)
        buf[n++] = ']';
    bad_at(__FILE__, __LINE__, buf, n, "nesting deeper than");
    bad_at(__FILE__, __LINE__, buf, n, "(byte 64)");

    /* Objects count too. */
    n = 0;
    for (int i = 0; i < LSW_JSON_MAX_DEPTH; i++)
        n += (size_t)sprintf(buf + n, "{\"k\":");
    buf[n++] = '1';
    for (int i = 0; i < LSW_JSON_MAX_DEPTH; i++)
        buf[n++] = '}';
    d = ok_at(__FILE__, __LINE__, buf, n);
    lsw_json_free(d);
    n = 0;
    for (int i = 0; i < LSW_JSON_MAX_DEPTH; i++)
        n += (size_t)sprintf(buf + n, "{\"k\":");
    buf[n++] = '[';
    buf[n++] = ']';
    for (int i = 0; i < LSW_JSON_MAX_DEPTH; i++)
        buf[n++] = '}';
    bad_at(__FILE__, __LINE__, buf, n, "nesting deeper than");

    /* Very deep input is refused without recursing through it. */
    {
        size_t big = 1000000;
        char *deep = malloc(big);
        memset(deep, '[', big);
        bad_at(__FILE__, __LINE__, deep, big, "nesting deeper than");
        free(deep);
    }
}

static void test_spans(void)
{
    static const char src[] = "  {\"a\": [1, {\"b\" : \"x\\\"y\"}, []], \"c\":-1.5e3 ,\"d\":{ } ,\"e\":true}  ";
    lsw_json_doc *d = ok_at(__FILE__, __LINE__, src, sizeof src - 1);
    const lsw_json *r = lsw_json_root(d), *a = lsw_json_get(r, "a");
    CHECK(span_is(src, r, "{\"a\": [1, {\"b\" : \"x\\\"y\"}, []], \"c\":-1.5e3 ,\"d\":{ } ,\"e\":true}"));
    CHECK(span_is(src, a, "[1, {\"b\" : \"x\\\"y\"}, []]"));
    CHECK(span_is(src, lsw_json_at(a, 0), "1"));
    CHECK(span_is(src, lsw_json_at(a, 1), "{\"b\" : \"x\\\"y\"}"));
    CHECK(span_is(src, lsw_json_get(lsw_json_at(a, 1), "b"), "\"x\\\"y\""));
    CHECK(str_is(lsw_json_get(lsw_json_at(a, 1), "b"), "x\"y", 3));
    CHECK(span_is(src, lsw_json_at(a, 2), "[]"));
    CHECK(span_is(src, lsw_json_get(r, "c"), "-1.5e3"));
    CHECK(span_is(src, lsw_json_get(r, "d"), "{ }"));
    CHECK(span_is(src, lsw_json_get(r, "e"), "true"));
    {
        double f;
        CHECK(lsw_json_f64(lsw_json_get(r, "c"), &f) == 0 && f == -1500.0);
    }
    lsw_json_free(d);

    /* Rewriting one value keeps every other byte (the use case of spans). */
    static const char hdr[] = "{\"__metadata__\":{\"format\":\"pt\"},\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]}}";
    d = ok_at(__FILE__, __LINE__, hdr, sizeof hdr - 1);
    {
        size_t off, len;
        lsw_json_span(lsw_json_get(lsw_json_get(lsw_json_root(d), "w"), "dtype"), &off, &len);
        char out[256];
        snprintf(out, sizeof out, "%.*s\"BF16\"%s", (int)off, hdr, hdr + off + len);
        CHECK(strcmp(out, "{\"__metadata__\":{\"format\":\"pt\"},\"w\":{\"dtype\":\"BF16\",\"shape\":[2,3],\"data_offsets\":[0,24]}}") == 0);
    }
    lsw_json_free(d);
}

/* Only `len` bytes are read: the bytes after them would change the result. */
static void test_len_only(void)
{
    lsw_json_doc *d;
    char why[256];
    uint64_t u;
    static const char t1[] = "[1,2]garbage";
    CHECK(lsw_json_parse(t1, 5, &d, why, sizeof why) == 0);
    CHECK(lsw_json_count(lsw_json_root(d)) == 2);
    lsw_json_free(d);

    static const char t2[] = "123456";
    CHECK(lsw_json_parse(t2, 3, &d, why, sizeof why) == 0);
    CHECK(lsw_json_u64(lsw_json_root(d), &u) == 0 && u == 123);
    lsw_json_free(d);

    static const char t3[] = "true";
    CHECK(lsw_json_parse(t3, 3, &d, why, sizeof why) == LSW_E_INPUT && d == NULL);
    static const char t4[] = "[1,2]";
    CHECK(lsw_json_parse(t4, 4, &d, why, sizeof why) == LSW_E_INPUT && strstr(why, "unexpected end of input"));
    static const char t5[] = "\"abc\"";
    CHECK(lsw_json_parse(t5, 4, &d, why, sizeof why) == LSW_E_INPUT && strstr(why, "unterminated string"));
    static const char t6[] = "1.5";
    CHECK(lsw_json_parse(t6, 2, &d, why, sizeof why) == LSW_E_INPUT && strstr(why, "digit expected after '.'"));
    static const char t7[] = "\"\\u0041\"";
    CHECK(lsw_json_parse(t7, 6, &d, why, sizeof why) == LSW_E_INPUT && strstr(why, "invalid \\u escape"));
    static const char t8[] = "\"\xC3\xA9\"";
    CHECK(lsw_json_parse(t8, 2, &d, why, sizeof why) == LSW_E_INPUT && strstr(why, "invalid UTF-8"));
    static const char t9[] = "{\"a\":1}}}";
    CHECK(lsw_json_parse(t9, 7, &d, why, sizeof why) == 0);
    lsw_json_free(d);
    static const char t10[] = "\xEF\xBB\xBF";
    CHECK(lsw_json_parse(t10, 2, &d, why, sizeof why) == LSW_E_INPUT && !strstr(why, "byte-order mark"));
    static const char t11[] = "1e5";
    CHECK(lsw_json_parse(t11, 2, &d, why, sizeof why) == LSW_E_INPUT && strstr(why, "exponent"));
    static const char t12[] = "-1";
    CHECK(lsw_json_parse(t12, 1, &d, why, sizeof why) == LSW_E_INPUT && strstr(why, "digit expected after '-'"));
    static const char t13[] = "\"\\uD83D\\uDE00\"";
    CHECK(lsw_json_parse(t13, 12, &d, why, sizeof why) == LSW_E_INPUT && strstr(why, "lone surrogate"));
    /* A number ending exactly at len, with a digit after it. */
    static const char t14[] = "[7]";
    CHECK(lsw_json_parse(t14 + 1, 1, &d, why, sizeof why) == 0);
    CHECK(lsw_json_u64(lsw_json_root(d), &u) == 0 && u == 7);
    lsw_json_free(d);
}

/* ---- robustness ------------------------------------------------------ */

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint32_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 16);
}

/* Walk a parsed tree checking invariants; returns the number of violations. */
static int walk(const lsw_json *v, size_t lo, size_t hi, int depth)
{
    int bad = 0;
    size_t off, len;
    lsw_json_span(v, &off, &len);
    if (off < lo || off + len > hi || len == 0 || depth > LSW_JSON_MAX_DEPTH)
        bad++;
    switch (lsw_json_type_of(v)) {
    case LSW_JSON_STRING: {
        size_t n;
        const char *s = lsw_json_str(v, &n);
        if (!s || s[n] != '\0' || (strlen(s) != n) != lsw_json_str_has_nul(v) || n + 2 > len)
            bad++;
        break;
    }
    case LSW_JSON_NUMBER: {
        double f;
        if (lsw_json_f64(v, &f) != 0)
            bad++;
        break;
    }
    case LSW_JSON_ARRAY:
    case LSW_JSON_OBJECT: {
        size_t n = lsw_json_count(v), prev = off;
        for (size_t i = 0; i < n; i++) {
            const lsw_json *c = lsw_json_at(v, i);
            size_t coff, clen;
            lsw_json_span(c, &coff, &clen);
            if (coff <= prev)
                bad++;
            prev = coff;
            bad += walk(c, off + 1, off + len - 1, depth + 1);
            if (lsw_json_type_of(v) == LSW_JSON_OBJECT) {
                size_t kl;
                const char *k = lsw_json_key(v, i, &kl);
                if (!k || k[kl] != '\0' || (strlen(k) != kl) != lsw_json_key_has_nul(v, i))
                    bad++;
                else if (!lsw_json_key_has_nul(v, i) && lsw_json_get(v, k) != c)
                    bad++;
            }
        }
        if (lsw_json_at(v, n) != NULL)
            bad++;
        break;
    }
    default:
        break;
    }
    return bad;
}

static void test_fuzz(void)
{
    static const char *seeds[] = {
        ("{\"__metadata__\":{\"format\":\"pt\"},\"model.layers.0.mlp.down_proj.weight\":{\"dtype\":\"BF16\","
         "\"shape\":[4096,14336],\"data_offsets\":[0,117440512]},\"b\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[117440512,117440516]}}"),
        "[1,-2.5e+10,0.0001,true,false,null,\"\\u00e9\\uD83D\\uDE00\\n\\\"\",{\"a\":[[]],\"b\":{}},\"\xC3\xA9\xF0\x9F\x98\x80\"]",
        "{\"weight_map\":{\"a\":\"model-00001-of-00002.safetensors\",\"b\":\"model-00002-of-00002.safetensors\"},\"metadata\":{\"total_size\":123}}",
        " { \"x\" : [ 1 , 2 , { \"y\" : \"\\\\z\" } ] , \"A\":-0 } ",
        "[[[[[[[[[[\"deep\"]]]]]]]]]]",
        "\"\\u0000\\b\\f\\r\\t\\/\"",
    };
    static const char interesting[] = "{}[]\",:\\0123456789eE.-+tfnu \t\n\r\x00\x01\x1F\x7F\x80\xBF\xC2\xC3\xE0\xED\xEF\xF0\xF4\xFF";
    enum { ITER = 6000, MAX = 1024 };
    int bad = 0, accepted = 0;
    char why[256];

    for (int it = 0; it < ITER; it++) {
        const char *seed = seeds[rng() % (sizeof seeds / sizeof seeds[0])];
        char buf[MAX];
        size_t n = strlen(seed);
        memcpy(buf, seed, n);
        int ops = 1 + (int)(rng() % 4);
        for (int o = 0; o < ops; o++) {
            size_t at = n ? rng() % n : 0;
            char c = rng() % 2 ? (char)(rng() & 0xFF) : interesting[rng() % (sizeof interesting - 1)];
            switch (rng() % 5) {
            case 0: /* replace */
                if (n)
                    buf[at] = c;
                break;
            case 1: /* insert */
                if (n < MAX) {
                    memmove(buf + at + 1, buf + at, n - at);
                    buf[at] = c;
                    n++;
                }
                break;
            case 2: /* delete */
                if (n) {
                    memmove(buf + at, buf + at + 1, n - at - 1);
                    n--;
                }
                break;
            case 3: /* truncate */
                n = at;
                break;
            default: { /* duplicate a chunk */
                size_t len = rng() % 16;
                if (at + len <= n && n + len <= MAX) {
                    memmove(buf + at + len, buf + at, n - at);
                    n += len;
                }
                break;
            }
            }
        }
        lsw_json_doc *d;
        int rc = parse_n(buf, n, &d, why, sizeof why);
        if (rc == 0) {
            accepted++;
            if (!d)
                bad++;
            else
                bad += walk(lsw_json_root(d), 0, n, 0);
            lsw_json_free(d);
        } else if (rc != LSW_E_INPUT || d != NULL || strncmp(why, "line ", 5) != 0) {
            bad++;
            fprintf(stderr, "fuzz: rc %d why \"%s\"\n", rc, why);
        }
    }
    CHECK(bad == 0);
    CHECK(accepted > 0 && accepted < ITER); /* the mutations do both */
    printf("fuzz: %d mutated documents, %d accepted\n", ITER, accepted);
}

/* lsw_array_reserve (the growth rule behind the parser's node arrays):
 * doubles from 16, keeps the array on an overflowing request. */
static void test_array_reserve(void)
{
    int *v = NULL;
    size_t cap = 0;
    CHECK(lsw_array_reserve(&v, &cap, 1, sizeof *v) == 0 && v && cap == 16);
    v[15] = 7;
    CHECK(lsw_array_reserve(&v, &cap, 16, sizeof *v) == 0 && cap == 16);
    CHECK(lsw_array_reserve(&v, &cap, 17, sizeof *v) == 0 && cap == 32 && v[15] == 7);
    int *before = v;
    CHECK(lsw_array_reserve(&v, &cap, SIZE_MAX / 2, sizeof *v) == -1 && v == before && cap == 32);
    CHECK(lsw_array_reserve(&v, &cap, SIZE_MAX, 1) == -1 && v == before && cap == 32);
    free(v);
}

int main(void)
{
    test_scalars();
    test_nesting();
    test_strings();
    test_bad_strings();
    test_numbers();
    test_integers();
    test_objects();
    test_large_object();
    test_key_order();
    test_text_rules();
    test_depth();
    test_spans();
    test_len_only();
    test_fuzz();
    test_array_reserve();
    printf("%d passed, %d failed\n", n_pass, n_fail);
    return n_fail ? 1 : 0;
}
