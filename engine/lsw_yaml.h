/* lsw_yaml — YAML text (untrusted) as a small read-only tree, through libyaml.
 *
 * libyaml tokenises and parses; this module builds a tree of scalars,
 * sequences and mappings and refuses what a config never needs but an
 * attacker could use:
 *   - more than one document, explicit tags (!!python/..., !foo);
 *   - mapping keys that are not scalars, and duplicate keys (compared byte
 *     for byte, found by sorting: O(n log n));
 *   - nesting deeper than LSW_YAML_MAX_DEPTH;
 *   - a tree larger than LSW_YAML_MAX_NODES nodes *after* expanding every
 *     alias (an alias shares its anchor's nodes, but counts them again at
 *     each use: the "billion laughs" document is refused, not built);
 *   - an alias to an anchor that is not complete (recursion) or undefined;
 *   - text longer than LSW_YAML_MAX_BYTES.
 * Every node keeps the line and column (1-based) where it starts, so callers
 * can name the place of a bad value.
 *
 * A document owns all its nodes; node pointers live until lsw_yaml_free.
 * No MPI; not thread-safe per document (independent documents are fine).
 */
#ifndef LSW_YAML_H
#define LSW_YAML_H

#include <stddef.h>

#define LSW_YAML_MAX_DEPTH 32
#define LSW_YAML_MAX_NODES 100000
#define LSW_YAML_MAX_BYTES (4u << 20)

typedef enum lsw_ykind { LSW_Y_SCALAR, LSW_Y_SEQ, LSW_Y_MAP } lsw_ykind;

typedef struct lsw_yaml_doc lsw_yaml_doc; /* opaque */
typedef struct lsw_ynode lsw_ynode;       /* opaque, owned by its document */

/* Parse `len` bytes.  0 and *out (caller frees with lsw_yaml_free) on
 * success; else -1, *out = NULL and "line L, column C: RULE" in `why`.
 * Does not call lsw_err_set: the caller names the file. */
int lsw_yaml_parse(const char *text, size_t len, lsw_yaml_doc **out, char *why, size_t whylen);
void lsw_yaml_free(lsw_yaml_doc *d); /* accepts NULL */

/* The document's root node (never NULL after a successful parse). */
const lsw_ynode *lsw_yaml_root(const lsw_yaml_doc *d);
lsw_ykind lsw_ynode_kind(const lsw_ynode *n);
unsigned lsw_ynode_line(const lsw_ynode *n);
unsigned lsw_ynode_col(const lsw_ynode *n);
/* Items of a sequence, entries of a mapping; 0 for a scalar. */
size_t lsw_ynode_count(const lsw_ynode *n);
/* Item i of a sequence, or the value of entry i of a mapping (source order). */
const lsw_ynode *lsw_ynode_at(const lsw_ynode *n, size_t i);
/* Key node of entry i of a mapping (a scalar). */
const lsw_ynode *lsw_ynode_keynode(const lsw_ynode *n, size_t i);
/* Value of key `key` in a mapping; NULL if absent or not a mapping. */
const lsw_ynode *lsw_ynode_get(const lsw_ynode *map, const char *key);
/* A scalar's text (NUL-terminated; *len its length, may be NULL); NULL for
 * a collection.  lsw_ynode_plain: 1 if it was written unquoted (only plain
 * scalars may be numbers, booleans or null, as in YAML's core schema). */
const char *lsw_ynode_str(const lsw_ynode *n, size_t *len);
int lsw_ynode_plain(const lsw_ynode *n);
/* 1 if a scalar holds a NUL byte (YAML's "\0" escape). */
int lsw_ynode_has_nul(const lsw_ynode *n);

#endif
