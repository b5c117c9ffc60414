#include "lsw_manifest.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lsw_error.h"
#include "lsw_io.h"
#include "lsw_json.h"

struct lsw_manifest {
    uint64_t plan_hash;
    char *tool;
    size_t n;
    lsw_manifest_file *files;
};

void lsw_manifest_free(lsw_manifest *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->n; i++)
        free(m->files[i].name);
    free(m->files);
    free(m->tool);
    free(m);
}

/* "<hex digits>" of at most `digits` into *v; -1 if not that. */
static int hex(const char *s, int digits, uint64_t *v)
{
    size_t l = s ? strlen(s) : 0;
    if (l == 0 || l > (size_t)digits || strspn(s, "0123456789abcdefABCDEF") != l)
        return -1;
    *v = strtoull(s, NULL, 16);
    return 0;
}

/* Entry i of "files": a plain name, an exact byte count, a CRC; not listed before. */
static int read_entry(lsw_manifest *m, const lsw_json *files, size_t i, const char *mp)
{
    const lsw_json *f = lsw_json_at(files, i);
    const char *name = lsw_json_str(lsw_json_get(f, "name"), NULL);
    uint64_t bytes, crc;
    if (!name || lsw_json_str_has_nul(lsw_json_get(f, "name")) || !lsw_plain_name(name) ||
        lsw_json_u64(lsw_json_get(f, "bytes"), &bytes) || hex(lsw_json_str(lsw_json_get(f, "crc32c"), NULL), 8, &crc))
        return lsw_err_set(LSW_E_VERIFY, "%s: files[%zu] is malformed (a plain file name, a byte count and an "
                           "8-digit crc32c are needed)", mp, i);
    for (size_t j = 0; j < m->n; j++)
        if (!strcmp(m->files[j].name, name))
            return lsw_err_set(LSW_E_VERIFY, "%s: files[%zu] and files[%zu] both list \"%s\"", mp, j, i, name);
    if (!(m->files[m->n].name = strdup(name)))
        return lsw_err_set(LSW_E_NOMEM, "out of memory");
    m->files[m->n].bytes = bytes;
    m->files[m->n].crc = (uint32_t)crc;
    m->n++;
    return 0;
}

static int parse(lsw_manifest *m, const char *text, size_t len, const char *mp)
{
    char why[256];
    lsw_json_doc *doc = NULL;
    if (lsw_json_parse(text, len, &doc, why, sizeof why) != 0)
        return lsw_err_set(LSW_E_VERIFY, "%s: manifest is not valid JSON: %s", mp, why);
    const lsw_json *root = lsw_json_root(doc), *files = lsw_json_get(root, "files");
    int rc = 0;
    const char *tool = lsw_json_str(lsw_json_get(root, "tool"), NULL);
    if (hex(lsw_json_str(lsw_json_get(root, "plan_hash"), NULL), 16, &m->plan_hash))
        m->plan_hash = 0;
    if (!(m->tool = strdup(tool ? tool : "")))
        rc = lsw_err_set(LSW_E_NOMEM, "out of memory");
    else if (!files || lsw_json_type_of(files) != LSW_JSON_ARRAY)
        rc = lsw_err_set(LSW_E_VERIFY, "%s: manifest has no \"files\" array", mp);
    else if (!(m->files = calloc(lsw_json_count(files) + 1, sizeof *m->files)))
        rc = lsw_err_set(LSW_E_NOMEM, "out of memory");
    for (size_t i = 0; !rc && i < lsw_json_count(files); i++)
        rc = read_entry(m, files, i, mp);
    lsw_json_free(doc);
    return rc;
}

int lsw_manifest_read(const char *dir, lsw_manifest **out)
{
    *out = NULL;
    char *mp = lsw_path_join(dir, LSW_MANIFEST_NAME), *text = NULL;
    size_t len = 0;
    lsw_manifest *m = calloc(1, sizeof *m);
    if (!mp || !m) {
        free(mp);
        free(m);
        return lsw_err_set(LSW_E_NOMEM, "out of memory");
    }
    int rc = lsw_is_file(mp) ? lsw_read_file(mp, &text, &len) : LSW_E_NOTFOUND;
    if (rc) {
        lsw_err_clear();
        rc = lsw_err_set(LSW_E_NOTFOUND, "%s: no manifest: the output is incomplete (interrupted, or still being "
                         "written)", mp);
    } else {
        rc = parse(m, text, len, mp);
    }
    free(text);
    free(mp);
    if (rc) {
        lsw_manifest_free(m);
        return rc;
    }
    *out = m;
    return 0;
}

uint64_t lsw_manifest_plan_hash(const lsw_manifest *m) { return m->plan_hash; }
const char *lsw_manifest_tool(const lsw_manifest *m) { return m->tool; }
size_t lsw_manifest_count(const lsw_manifest *m) { return m->n; }
const lsw_manifest_file *lsw_manifest_at(const lsw_manifest *m, size_t i) { return i < m->n ? &m->files[i] : NULL; }

uint64_t lsw_manifest_hash_of(const char *dir)
{
    lsw_manifest *m = NULL;
    uint64_t h = lsw_manifest_read(dir, &m) == 0 ? m->plan_hash : 0;
    lsw_manifest_free(m);
    lsw_err_clear();
    return h;
}

int lsw_manifest_text(uint64_t plan_hash, const char *tool, lsw_manifest_extra_fn extra, const void *arg,
                      const lsw_manifest_file *files, size_t n, char **text, size_t *len)
{
    lsw_jw *w = lsw_jw_create();
    lsw_jw_node *r = lsw_jw_root(w);
    lsw_jw_str(w, r, "format", "layerswap-manifest");
    lsw_jw_u64(w, r, "version", 1);
    lsw_jw_hex64(w, r, "plan_hash", plan_hash);
    if (tool)
        lsw_jw_str(w, r, "tool", tool);
    if (extra && r)
        extra(arg, w, r);
    lsw_jw_node *list = lsw_jw_arr(w, r, "files");
    for (size_t i = 0; i < n; i++) {
        lsw_jw_node *f = lsw_jw_obj(w, list, NULL);
        lsw_jw_str(w, f, "name", files[i].name);
        lsw_jw_u64(w, f, "bytes", files[i].bytes);
        lsw_jw_hex32(w, f, "crc32c", files[i].crc);
    }
    int rc = lsw_jw_print(w, text, len);
    lsw_jw_free(w);
    return rc;
}
