/* lsw_json — a strict JSON (RFC 8259) reader for untrusted input.
 *
 * Used for every JSON text layerswap reads: safetensors headers, index files,
 * merge and sweep configs, manifests.  cJSON, the project's JSON library,
 * writes everything layerswap emits (lsw_jsonw) but is too lenient to read
 * untrusted input; measured with cJSON 1.7.15 (Debian 12), even through
 * cJSON_ParseWithLengthOpts(..., require_null_terminated = 1): it accepts a
 * byte-order mark, duplicate keys, leading zeros ("01"), "1.", raw control
 * bytes in strings and invalid UTF-8; it truncates "x\u0000y" to "x"; it
 * keeps numbers only as doubles, so integers above 2^53 (offsets of large
 * tensors) come back rounded.  So this reader:
 *   - validates UTF-8 (no overlong forms, no surrogates, nothing above U+10FFFF)
 *     and rejects a byte-order mark;
 *   - accepts exactly one value with only JSON whitespace (space, tab, LF, CR)
 *     after it;
 *   - rejects duplicate keys in an object (keys compared byte for byte after
 *     unescaping), in O(n log n);
 *   - keeps each number's source text, so integers are read exactly as 64-bit
 *     values (lsw_json_u64) and never through a double;
 *   - records whether a decoded string contains a NUL byte;
 *   - limits nesting depth to LSW_JSON_MAX_DEPTH;
 *   - records the byte span of every value in the source, so a caller can
 *     rewrite one value of a file and keep every other byte.
 *
 * A document owns all its nodes; node pointers live until lsw_json_free().
 */
#ifndef LSW_JSON_H
#define LSW_JSON_H

#include <stddef.h>
#include <stdint.h>

#define LSW_JSON_MAX_DEPTH 64

typedef enum lsw_json_type {
    LSW_JSON_NULL, LSW_JSON_FALSE, LSW_JSON_TRUE, LSW_JSON_NUMBER,
    LSW_JSON_STRING, LSW_JSON_ARRAY, LSW_JSON_OBJECT
} lsw_json_type;

typedef struct lsw_json_doc lsw_json_doc; /* opaque */
typedef struct lsw_json lsw_json;         /* opaque node, owned by its document */

/* Parse `len` bytes of `text` (need not be NUL-terminated).  On success stores
 * a new document in *out (caller frees with lsw_json_free) and returns 0.  On
 * failure returns LSW_E_INPUT, sets *out = NULL and writes into `why` (may be
 * NULL) a message "line L, column C (byte B): RULE", e.g. "duplicate key
 * \"a\"", "trailing characters after the JSON value", "invalid UTF-8",
 * "byte-order mark not allowed".  Does not call lsw_err_set: the caller knows
 * the file name and records the error itself. */
int lsw_json_parse(const char *text, size_t len, lsw_json_doc **out, char *why, size_t whylen);
void lsw_json_free(lsw_json_doc *doc); /* accepts NULL */

const lsw_json *lsw_json_root(const lsw_json_doc *doc);
lsw_json_type lsw_json_type_of(const lsw_json *v);
/* Number of elements (array) or members (object); 0 for other types. */
size_t lsw_json_count(const lsw_json *v);
/* Element i of an array, or the value of member i of an object, in source order; NULL if out of range. */
const lsw_json *lsw_json_at(const lsw_json *v, size_t i);
/* Key of member i of an object (decoded, NUL-terminated; *len gets its byte length, may be NULL). */
const char *lsw_json_key(const lsw_json *obj, size_t i, size_t *len);
/* Member value by exact, case-sensitive key; NULL if absent or `obj` is not an object. O(log n). */
const lsw_json *lsw_json_get(const lsw_json *obj, const char *key);
/* Decoded string (NUL-terminated; *len gets its byte length, may be NULL); NULL if not a string. */
const char *lsw_json_str(const lsw_json *v, size_t *len);
/* 1 if a string (or key, via lsw_json_key_has_nul) contains a NUL byte after unescaping. */
int lsw_json_str_has_nul(const lsw_json *v);
int lsw_json_key_has_nul(const lsw_json *obj, size_t i);
/* Exact non-negative integer: 0 and *out set if `v` is a number whose text is an
 * integer literal without minus, fraction or exponent and fits in uint64; else -1. */
int lsw_json_u64(const lsw_json *v, uint64_t *out);
/* Exact signed integer likewise (minus allowed, fits in int64); else -1. */
int lsw_json_i64(const lsw_json *v, int64_t *out);
/* Any number as a double (strtod of its text, C locale); 0 on success, -1 if not a number. */
int lsw_json_f64(const lsw_json *v, double *out);
/* Byte span [*off, *off + *len) of the value's text in the parsed source. */
void lsw_json_span(const lsw_json *v, size_t *off, size_t *len);

#endif
