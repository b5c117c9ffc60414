#include "lsw_verify.h"

#include <dirent.h>
#include <stdlib.h>
#include <string.h>

#include "lsw_checkpoint.h"
#include "lsw_commit.h"
#include "lsw_error.h"
#include "lsw_io.h"
#include "lsw_json.h"
#include "lsw_manifest.h"
#include "lsw_modelfiles.h"

/* An output's index lists every tensor of its shards (a loader ignores the
 * others); LSW_E_INPUT otherwise.  No index: nothing to check. */
static int index_lists_all(const char *dir, const lsw_ckpt *c)
{
    char *p = lsw_path_join(dir, "model.safetensors.index.json"), *text = NULL;
    size_t len = 0;
    int rc = 0;
    if (!p)
        return lsw_err_set(LSW_E_NOMEM, "out of memory");
    if (lsw_is_file(p) && !(rc = lsw_read_file(p, &text, &len))) {
        lsw_json_doc *doc = NULL;
        size_t listed = 0;
        if (lsw_json_parse(text, len, &doc, NULL, 0) == 0)
            listed = lsw_json_count(lsw_json_get(lsw_json_root(doc), "weight_map"));
        if (listed != lsw_ckpt_count(c))
            rc = lsw_err_set(LSW_E_INPUT, "%s: lists %zu tensors but the shards hold %zu", p, listed,
                             lsw_ckpt_count(c));
        lsw_json_free(doc);
    }
    free(text);
    free(p);
    return rc;
}

/* Count a problem; the first one is kept for the message. */
static void problem(size_t *bad, char *first, size_t len, const char *dir, const char *name, const char *what)
{
    if (!(*bad)++)
        snprintf(first, len, "%s/%s: %s", dir, name, what);
}

/* Every listed file there with its size and CRC. */
static void check_files(const char *dir, const lsw_manifest *m, FILE *report, size_t *bad, char *first, size_t len)
{
    for (size_t i = 0; i < lsw_manifest_count(m); i++) {
        const lsw_manifest_file *f = lsw_manifest_at(m, i);
        char *p = lsw_path_join(dir, f->name);
        uint64_t size = 0;
        uint32_t crc = 0;
        const char *what = NULL;
        if (!p || lsw_file_crc32c(p, &size, &crc) != 0)
            what = "missing or unreadable";
        else if (size != f->bytes)
            what = "size differs from the manifest";
        else if (crc != f->crc)
            what = "CRC-32C differs from the manifest";
        lsw_err_clear();
        if (report)
            fprintf(report, "%s\t%s\n", f->name, what ? what : "ok");
        if (what)
            problem(bad, first, len, dir, f->name, what);
        free(p);
    }
}

/* No weight file the manifest does not list: transformers would load it as
 * part of the model (a file left by another run). */
static void check_strays(const char *dir, const lsw_manifest *m, FILE *report, size_t *bad, char *first, size_t len)
{
    DIR *d = opendir(dir);
    for (struct dirent *de; d && (de = readdir(d));) {
        if (!lsw_is_weight_file_name(de->d_name) || de->d_name[0] == '.')
            continue;
        int listed = 0;
        for (size_t i = 0; i < lsw_manifest_count(m) && !listed; i++)
            listed = !strcmp(lsw_manifest_at(m, i)->name, de->d_name);
        if (listed)
            continue;
        if (report)
            fprintf(report, "%s\tnot listed in the manifest\n", de->d_name);
        problem(bad, first, len, dir, de->d_name, "checkpoint file not listed in the manifest (left by another run?)");
    }
    if (d)
        closedir(d);
}

/* The folder opens as a checkpoint: headers, index, config.json. */
static int check_checkpoint(const char *dir)
{
    lsw_ckpt *c = NULL;
    int rc = lsw_ckpt_open(dir, &c);
    if (!rc)
        rc = index_lists_all(dir, c);
    if (!rc)
        rc = lsw_check_model_files(dir);
    lsw_ckpt_close(c);
    return rc ? lsw_err_recode(LSW_E_VERIFY) : 0;
}

int lsw_verify_dir(const char *dir, FILE *report)
{
    if (!lsw_is_dir(dir))
        return lsw_err_set(LSW_E_NOTFOUND, "%s: no such folder", dir);
    lsw_manifest *m = NULL;
    int rc = lsw_manifest_read(dir, &m);
    if (rc)
        return lsw_err_recode(LSW_E_VERIFY);
    size_t bad = 0;
    char first[768] = "";
    check_files(dir, m, report, &bad, first, sizeof first);
    check_strays(dir, m, report, &bad, first, sizeof first);
    if (bad)
        rc = lsw_err_set(LSW_E_VERIFY, "%s%s", first, bad > 1 ? " (and more, listed on stdout)" : "");
    /* a stats folder holds statistics, not a checkpoint: its files are all there is to check */
    if (!rc && strcmp(lsw_manifest_tool(m), "layerswap stats") != 0)
        rc = check_checkpoint(dir);
    lsw_manifest_free(m);
    return rc;
}
