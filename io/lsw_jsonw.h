/* lsw_jsonw — the one JSON emitter: every JSON file layerswap writes
 * (manifest, index, --summary, sweep.json, stats summary.json, proposals)
 * is a cJSON tree built through these calls and printed by cJSON.
 *
 * Why a layer over cJSON: numbers.  cJSON keeps numbers as doubles, so a
 * 64-bit byte count above 2^53 would be rounded; here integers and doubles
 * are added as cJSON raw numbers whose text is exact ("%llu", and for a
 * double the shortest "%.{15,16,17}g" that reads back as the same bits;
 * NaN and infinities, which JSON lacks, become null).  Failure is sticky:
 * an add that cannot allocate marks the writer, every later add is a
 * no-op, and lsw_jw_print reports LSW_E_NOMEM once.
 *
 * Reading stays with lsw_json (strict, untrusted input); this module only
 * writes text we produce ourselves.
 *
 * Ownership: a writer owns its whole tree; node pointers it hands out live
 * until lsw_jw_free.  Not thread-safe; no MPI.
 */
#ifndef LSW_JSONW_H
#define LSW_JSONW_H

#include <stddef.h>
#include <stdint.h>

typedef struct lsw_jw lsw_jw;       /* opaque writer */
typedef struct cJSON lsw_jw_node;   /* an object or array inside a writer */

/* A writer whose root is an empty object.  NULL on OOM. */
lsw_jw *lsw_jw_create(void);
void lsw_jw_free(lsw_jw *w); /* accepts NULL */
lsw_jw_node *lsw_jw_root(lsw_jw *w);

/* Every add takes the parent and a key; with an array parent the key is
 * ignored (pass NULL) and the value is appended.  A NULL parent (from a
 * failed add) makes the call a no-op. */
lsw_jw_node *lsw_jw_obj(lsw_jw *w, lsw_jw_node *parent, const char *key);
lsw_jw_node *lsw_jw_arr(lsw_jw *w, lsw_jw_node *parent, const char *key);
void lsw_jw_str(lsw_jw *w, lsw_jw_node *parent, const char *key, const char *s);
void lsw_jw_u64(lsw_jw *w, lsw_jw_node *parent, const char *key, uint64_t v);
void lsw_jw_i64(lsw_jw *w, lsw_jw_node *parent, const char *key, int64_t v);
void lsw_jw_f64(lsw_jw *w, lsw_jw_node *parent, const char *key, double v);
void lsw_jw_bool(lsw_jw *w, lsw_jw_node *parent, const char *key, int v);
void lsw_jw_null(lsw_jw *w, lsw_jw_node *parent, const char *key);
/* JSON text this program produced itself (e.g. a generated config),
 * inserted as it is. */
void lsw_jw_raw(lsw_jw *w, lsw_jw_node *parent, const char *key, const char *json_text);
/* A 64-bit value as a 16-digit lower-case hex string (hashes). */
void lsw_jw_hex64(lsw_jw *w, lsw_jw_node *parent, const char *key, uint64_t v);
/* A 32-bit value as an 8-digit lower-case hex string (CRC-32C). */
void lsw_jw_hex32(lsw_jw *w, lsw_jw_node *parent, const char *key, uint32_t v);

/* Print the tree (cJSON's indented form, a newline at the end) into a
 * malloc'd NUL-terminated *text of *len bytes.  LSW_E_NOMEM if any add
 * failed or printing cannot allocate. */
int lsw_jw_print(lsw_jw *w, char **text, size_t *len);

/* The shortest decimal text ("%.15g" to "%.17g") that strtod reads back as
 * exactly `v`; "null" when v is not finite.  `buf` holds at least 32 bytes. */
void lsw_jw_format_f64(double v, char *buf, size_t len);

#endif
