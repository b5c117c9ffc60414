/* lsw_manifest — layerswap-manifest.json, the file an output folder gets last.
 *
 * Layout: one JSON object, members in this order
 *   "format":    "layerswap-manifest"
 *   "version":   1
 *   "plan_hash": "<16 hex digits>"   identity of config, inputs and layout
 *   "tool":      "layerswap 0.1.0" (a merge) | "layerswap stats" | "layerswap synth"
 *   ...          members the writer adds (a merge: "config_hash", "inputs")
 *   "files":     [{"name": "<file>", "bytes": N, "crc32c": "<8 hex digits>"}, ...]
 * with the files in the order the folder's names were planned.  A folder
 * without a manifest is incomplete.
 *
 * This module writes it (through lsw_jsonw) and reads it back for every
 * user: the output folder protocol (lsw_commit: is this plan done, what did
 * an earlier run write), `verify`, and stats' clean-up of an earlier stats
 * folder.  Reading is strict (lsw_json) because a manifest decides what
 * --overwrite removes and what `verify` trusts: every name must be a plain
 * file name of the folder (never a path out of it), listed once, with an
 * exact byte count and an 8-digit CRC.  No MPI.
 */
#ifndef LSW_MANIFEST_H
#define LSW_MANIFEST_H

#include <stddef.h>
#include <stdint.h>

#include "lsw_jsonw.h"

#define LSW_MANIFEST_NAME "layerswap-manifest.json"

typedef struct lsw_manifest_file {
    char *name;
    uint64_t bytes;
    uint32_t crc;
} lsw_manifest_file;

typedef struct lsw_manifest lsw_manifest; /* opaque: a manifest read back */

/* Read DIR's manifest.  LSW_E_NOTFOUND when there is none; LSW_E_VERIFY
 * naming the manifest and the rule when it is not one (not JSON, no "files"
 * array, an entry without a plain name, a byte count or a CRC, a name
 * listed twice).  *out owned by the caller (lsw_manifest_free). */
int lsw_manifest_read(const char *dir, lsw_manifest **out);
void lsw_manifest_free(lsw_manifest *m); /* accepts NULL */

/* The recorded plan hash (0 when absent or malformed) and tool ("" if none). */
uint64_t lsw_manifest_plan_hash(const lsw_manifest *m);
const char *lsw_manifest_tool(const lsw_manifest *m);
size_t lsw_manifest_count(const lsw_manifest *m);
const lsw_manifest_file *lsw_manifest_at(const lsw_manifest *m, size_t i);

/* The plan hash DIR's manifest records, 0 without a readable manifest. */
uint64_t lsw_manifest_hash_of(const char *dir);

/* Members a writer adds after "tool" (on `root`). */
typedef void (*lsw_manifest_extra_fn)(const void *arg, lsw_jw *w, lsw_jw_node *root);

/* The manifest's text: malloc'd *text of *len bytes.  `extra` may be NULL.
 * LSW_E_NOMEM. */
int lsw_manifest_text(uint64_t plan_hash, const char *tool, lsw_manifest_extra_fn extra, const void *arg,
                      const lsw_manifest_file *files, size_t n, char **text, size_t *len);

#endif
