#include "lsw_commit.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <linux/fs.h>
#include <unistd.h>

#include "lsw_checkpoint.h"
#include "lsw_crc32c.h"
#include "lsw_error.h"
#include "lsw_io.h"
#include "lsw_json.h"
#include "lsw_lock.h"
#include "lsw_manifest.h"
#include "lsw_strbuf.h"

typedef lsw_manifest_file rec; /* a file and its size and CRC, as the manifest lists it */

static void remove_temporaries(const char *dir);

struct lsw_outdir {
    char *dir;
    uint64_t hash;
    rec *journal;   /* finished by an earlier run of this plan */
    size_t njournal;
    rec *files;     /* finished in this run (or reused) */
    size_t nfiles;
    int jfd;        /* journal, append */
    char **order;   /* the names given to lsw_outdir_open: the manifest lists files in this order */
    size_t norder;
    int fresh;      /* this open created the journal (nothing else written yet) */
};

/* Position of `name` in the planned order (files not planned go last). */
static size_t order_of(const lsw_outdir *o, const char *name)
{
    for (size_t i = 0; i < o->norder; i++)
        if (!strcmp(o->order[i], name))
            return i;
    return o->norder;
}

/* Files in planned order, whatever order they were finished in (resumed,
 * cloned or written by ranks in another order): the manifest's bytes are
 * those of an uninterrupted run. */
static void sort_files(lsw_outdir *o)
{
    for (size_t i = 1; i < o->nfiles; i++) { /* insertion sort: stable, few files */
        rec r = o->files[i];
        size_t pos = order_of(o, r.name), j = i;
        while (j > 0 && order_of(o, o->files[j - 1].name) > pos) {
            o->files[j] = o->files[j - 1];
            j--;
        }
        o->files[j] = r;
    }
}

static char *pathf(const char *dir, const char *prefix, const char *name, const char *suffix)
{
    size_t n = strlen(dir) + strlen(prefix) + strlen(name) + strlen(suffix) + 2;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s/%s%s%s", dir, prefix, name, suffix);
    return p;
}

static int add_rec(rec **arr, size_t *n, const char *name, uint64_t bytes, uint32_t crc)
{
    rec *r = realloc(*arr, (*n + 1) * sizeof *r);
    if (!r)
        return lsw_err_set(LSW_E_NOMEM, "out of memory");
    *arr = r;
    if (!(r[*n].name = strdup(name)))
        return lsw_err_set(LSW_E_NOMEM, "out of memory");
    r[*n].bytes = bytes;
    r[*n].crc = crc;
    (*n)++;
    return 0;
}

/* Read the journal; returns its plan hash (0 if absent). */
static uint64_t read_journal(lsw_outdir *o)
{
    char *p = pathf(o->dir, "", LSW_STATE_NAME, ""), *text = NULL;
    size_t len;
    uint64_t h = 0;
    if (p && lsw_read_file(p, &text, &len) == 0) {
        char *save = NULL;
        for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
            char name[512];
            unsigned long long bytes, hh;
            unsigned crc;
            if (sscanf(line, "layerswap-state 1 %llx", &hh) == 1)
                h = hh;
            else if (h && sscanf(line, "done %511s %llu %x", name, &bytes, &crc) == 3)
                add_rec(&o->journal, &o->njournal, name, bytes, crc);
        }
    }
    lsw_err_clear();
    free(text);
    free(p);
    return h;
}

/* Remove dir/name; a name that is not a plain file name (it came from a
 * manifest or journal someone else may have written) is never joined to the
 * folder, so nothing outside it can be removed. */
static int remove_name(const char *dir, const char *name)
{
    if (!lsw_plain_name(name))
        return 0;
    char *p = pathf(dir, "", name, "");
    if (!p)
        return lsw_err_set(LSW_E_NOMEM, "out of memory");
    int rc = 0;
    if (unlink(p) != 0 && errno != ENOENT)
        rc = lsw_err_set(LSW_E_IO, "%s: cannot remove: %s", p, strerror(errno));
    free(p);
    return rc;
}

/* Remove the files the folder's manifest and journal list, then both. */
static int remove_previous(const char *dir)
{
    int rc = 0;
    lsw_manifest *m = NULL;
    if (lsw_manifest_read(dir, &m) == 0)
        for (size_t i = 0; i < lsw_manifest_count(m) && !rc; i++)
            rc = remove_name(dir, lsw_manifest_at(m, i)->name);
    lsw_manifest_free(m);
    lsw_err_clear();
    /* the journal of an interrupted run */
    lsw_outdir tmp = {0};
    tmp.dir = (char *)dir;
    read_journal(&tmp);
    for (size_t i = 0; i < tmp.njournal; i++) {
        if (!rc)
            rc = remove_name(dir, tmp.journal[i].name);
        free(tmp.journal[i].name);
    }
    free(tmp.journal);
    if (!rc)
        rc = remove_name(dir, LSW_MANIFEST_NAME);
    if (!rc)
        rc = remove_name(dir, LSW_STATE_NAME);
    return rc;
}

/* --overwrite of a folder that receives a checkpoint: every weight file goes
 * (lsw_is_weight_file_name), whoever wrote it. */
static int remove_weight_files(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return lsw_err_set(LSW_E_IO, "%s: cannot list the folder: %s", dir, strerror(errno));
    int rc = 0;
    for (struct dirent *e; !rc && (e = readdir(d));)
        if (e->d_name[0] != '.' && lsw_is_weight_file_name(e->d_name))
            rc = remove_name(dir, e->d_name);
    closedir(d);
    return rc;
}

void lsw_outdir_remove_temporaries(const char *dir)
{
    if (lsw_lock_held(dir))
        remove_temporaries(dir);
}

static void remove_temporaries(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (e->d_name[0] == '.' && l > 8 && strcmp(e->d_name + l - 8, ".lsw-tmp") == 0)
            remove_name(dir, e->d_name);
    }
    closedir(d);
}

/* Open the journal for appending; a fresh one is created whole first (its
 * header written to a temporary, made durable and renamed), so a run killed
 * at any moment leaves either no journal or one that names its plan. */
static int journal_start(lsw_outdir *o, int keep)
{
    char *p = pathf(o->dir, "", LSW_STATE_NAME, ""), *tmp = pathf(o->dir, ".", LSW_STATE_NAME, ".lsw-tmp");
    int rc = (!p || !tmp) ? lsw_err_set(LSW_E_NOMEM, "out of memory") : 0;
    if (!rc && !keep) {
        char line[64];
        int n = snprintf(line, sizeof line, "layerswap-state 1 %016" PRIx64 "\n", o->hash);
        int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
        if (fd < 0)
            rc = lsw_err_set(errno == ENOSPC ? LSW_E_NOSPACE : LSW_E_IO, "%s: cannot create the journal: %s", tmp,
                             strerror(errno));
        else if (write(fd, line, (size_t)n) != n)
            rc = lsw_err_set(errno == ENOSPC ? LSW_E_NOSPACE : LSW_E_IO, "%s: cannot write the journal: %s", tmp,
                             strerror(errno));
        if (fd >= 0 && !rc)
            rc = lsw_fsync_fd(fd, tmp);
        if (fd >= 0)
            close(fd);
        if (!rc && rename(tmp, p) != 0)
            rc = lsw_err_set(LSW_E_IO, "%s: cannot rename the journal into place: %s", p, strerror(errno));
        if (rc && tmp)
            unlink(tmp);
        if (!rc)
            rc = lsw_fsync_dir(o->dir);
        o->fresh = !rc;
    }
    if (!rc && (o->jfd = open(p, O_WRONLY | O_APPEND | O_CLOEXEC | O_NOFOLLOW)) < 0)
        rc = lsw_err_set(LSW_E_IO, "%s: cannot open the journal: %s", p, strerror(errno));
    free(p);
    free(tmp);
    return rc;
}

int lsw_outdir_complete(const char *dir, uint64_t plan_hash)
{
    return lsw_manifest_hash_of(dir) == plan_hash;
}

int lsw_outdir_open(const char *dir, uint64_t plan_hash, const char *const *names, size_t n, int overwrite,
                    lsw_outdir **out, lsw_out_state *state)
{
    *out = NULL;
    /* the folder's owner first: nothing below (not even the removal of
     * stale temporaries, which may be a running merge's) happens without it */
    int rc = lsw_lock_dir(dir, lsw_lock_command());
    if (rc)
        return rc;
    lsw_outdir *o = calloc(1, sizeof *o);
    if (!o || !(o->dir = strdup(dir))) {
        free(o);
        return lsw_err_set(LSW_E_NOMEM, "out of memory");
    }
    o->hash = plan_hash;
    o->jfd = -1;
    if (!(o->order = calloc(n ? n : 1, sizeof *o->order))) {
        lsw_outdir_free(o);
        return lsw_err_set(LSW_E_NOMEM, "out of memory");
    }
    for (size_t i = 0; i < n; i++, o->norder++)
        if (!(o->order[i] = strdup(names[i]))) {
            lsw_outdir_free(o);
            return lsw_err_set(LSW_E_NOMEM, "out of memory");
        }
    remove_temporaries(dir);
    uint64_t mh = lsw_manifest_hash_of(dir);
    uint64_t jh = read_journal(o);
    if (!overwrite && mh == plan_hash) {
        *state = LSW_OUT_COMPLETE;
        *out = o;
        return 0;
    }
    int resume = !overwrite && jh == plan_hash && mh == 0;
    if (!resume) {
        for (size_t i = 0; i < o->njournal; i++)
            free(o->journal[i].name);
        o->njournal = 0;
        /* Anything of ours already there? */
        const char *conflict = NULL;
        char *mp = pathf(dir, "", LSW_MANIFEST_NAME, ""), *jp = pathf(dir, "", LSW_STATE_NAME, "");
        if (mp && lsw_is_file(mp))
            conflict = LSW_MANIFEST_NAME;
        else if (jp && lsw_is_file(jp))
            conflict = LSW_STATE_NAME;
        for (size_t i = 0; i < n && !conflict; i++) {
            char *p = pathf(dir, "", names[i], "");
            if (p && (lsw_is_file(p) || lsw_is_dir(p)))
                conflict = names[i];
            free(p);
        }
        free(mp);
        free(jp);
        /* A run that writes a checkpoint: weight files of another model in
         * the folder would be loaded with ours (and fail `verify`). */
        int writes_weights = 0;
        for (size_t i = 0; i < n; i++)
            writes_weights |= lsw_is_weight_file_name(names[i]);
        char *foreign = NULL;
        DIR *d = writes_weights && !conflict ? opendir(dir) : NULL;
        for (struct dirent *e; d && !foreign && (e = readdir(d));)
            if (e->d_name[0] != '.' && lsw_is_weight_file_name(e->d_name))
                foreign = strdup(e->d_name);
        if (d)
            closedir(d);
        if (foreign)
            conflict = foreign;
        if (conflict && !overwrite && !strcmp(conflict, LSW_STATE_NAME)) {
            rc = lsw_err_set(LSW_E_EXISTS,
                             "%s: output folder holds the journal (%s) of an interrupted run of another plan: the config "
                             "or an input changed since; use --overwrite to start afresh, or another -o",
                             dir, LSW_STATE_NAME);
        } else if (conflict && !overwrite) {
            rc = lsw_err_set(LSW_E_EXISTS, "%s: output folder already holds \"%s\", which this merge did not write; use --overwrite (it removes "
                             "it) or another -o",
                             dir, conflict);
        } else if (conflict) {
            /* Remove everything of the previous run: its manifest's files,
             * its journal's, and every name this run will write. */
            rc = remove_previous(dir);
            for (size_t i = 0; i < n && !rc; i++)
                rc = remove_name(dir, names[i]);
            if (writes_weights)
                rc = rc ? rc : remove_weight_files(dir);
        }
        free(foreign);
    }
    if (!rc)
        rc = journal_start(o, resume);
    if (rc) {
        lsw_outdir_free(o);
        return rc;
    }
    *state = resume ? LSW_OUT_RESUME : LSW_OUT_FRESH;
    *out = o;
    return 0;
}

void lsw_outdir_free(lsw_outdir *o)
{
    if (!o)
        return;
    if (o->jfd >= 0)
        close(o->jfd);
    for (size_t i = 0; i < o->njournal; i++)
        free(o->journal[i].name);
    for (size_t i = 0; i < o->nfiles; i++)
        free(o->files[i].name);
    for (size_t i = 0; i < o->norder; i++)
        free(o->order[i]);
    free(o->order);
    free(o->journal);
    free(o->files);
    free(o->dir);
    free(o);
}

const char *lsw_outdir_path(const lsw_outdir *o) { return o->dir; }

int lsw_file_crc32c(const char *path, uint64_t *size, uint32_t *crc)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        close(fd);
        return -1;
    }
    size_t bs = 1 << 22;
    char *buf = malloc(bs);
    uint32_t c = 0;
    uint64_t off = 0;
    int rc = buf ? 0 : -1;
    while (!rc && off < (uint64_t)st.st_size) {
        size_t n = (uint64_t)st.st_size - off < bs ? (size_t)((uint64_t)st.st_size - off) : bs;
        if (lsw_pread_full(fd, buf, n, off, path) != 0)
            rc = -1;
        else
            c = lsw_crc32c(c, buf, n);
        off += n;
    }
    lsw_err_clear();
    free(buf);
    close(fd);
    *size = (uint64_t)st.st_size;
    *crc = c;
    return rc;
}

int lsw_outdir_reuse(lsw_outdir *o, const char *name)
{
    for (size_t i = 0; i < o->njournal; i++) {
        if (strcmp(o->journal[i].name, name) != 0)
            continue;
        char *p = pathf(o->dir, "", name, "");
        uint64_t size;
        uint32_t crc;
        int ok = p && lsw_file_crc32c(p, &size, &crc) == 0 && size == o->journal[i].bytes && crc == o->journal[i].crc;
        free(p);
        if (ok && add_rec(&o->files, &o->nfiles, name, size, crc) == 0)
            return 1;
        return 0;
    }
    return 0;
}

int lsw_outdir_recorded(const lsw_outdir *o, const char *name, uint64_t *bytes, uint32_t *crc)
{
    for (size_t i = 0; i < o->nfiles; i++)
        if (!strcmp(o->files[i].name, name)) {
            *bytes = o->files[i].bytes;
            *crc = o->files[i].crc;
            return 0;
        }
    return -1;
}

int lsw_outdir_tmp_open(lsw_outdir *o, const char *name, int *fd)
{
    char *p = pathf(o->dir, ".", name, ".lsw-tmp");
    if (!p)
        return lsw_err_set(LSW_E_NOMEM, "out of memory");
    *fd = open(p, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
    int rc = 0;
    if (*fd < 0)
        rc = lsw_err_set(errno == ENOSPC ? LSW_E_NOSPACE : LSW_E_IO, "%s: cannot create: %s", p, strerror(errno));
    free(p);
    return rc;
}

void lsw_outdir_tmp_abort(lsw_outdir *o, const char *name, int fd)
{
    if (fd >= 0)
        close(fd);
    char *p = pathf(o->dir, ".", name, ".lsw-tmp");
    if (p)
        unlink(p);
    free(p);
}

int lsw_outdir_tmp_commit(lsw_outdir *o, const char *name, int fd, uint64_t bytes, uint32_t crc)
{
    char *tmp = pathf(o->dir, ".", name, ".lsw-tmp"), *fin = pathf(o->dir, "", name, "");
    int rc = 0;
    if (!tmp || !fin)
        rc = lsw_err_set(LSW_E_NOMEM, "out of memory");
    if (!rc)
        rc = lsw_fsync_fd(fd, tmp);
    if (close(fd) != 0 && !rc)
        rc = lsw_err_set(LSW_E_IO, "%s: close failed: %s", tmp, strerror(errno));
    if (!rc && rename(tmp, fin) != 0)
        rc = lsw_err_set(LSW_E_IO, "%s: rename failed: %s", fin, strerror(errno));
    if (rc && tmp)
        unlink(tmp);
    /* The data was made durable before the rename, so a file under a final
     * name is always complete.  The rename and the journal line are made
     * durable once, in lsw_outdir_finish: after a crash a journaled file is
     * only reused once its size and CRC check out (lsw_outdir_reuse), so a
     * lost rename or line only costs redoing that file. */
    if (!rc) {
        char line[600];
        int n = snprintf(line, sizeof line, "done %s %" PRIu64 " %08x\n", name, bytes, crc);
        if (write(o->jfd, line, (size_t)n) != n)
            rc = lsw_err_set(LSW_E_IO, "%s/%s: cannot write the journal: %s", o->dir, LSW_STATE_NAME, strerror(errno));
    }
    if (!rc)
        rc = add_rec(&o->files, &o->nfiles, name, bytes, crc);
    free(tmp);
    free(fin);
    return rc;
}

/* Copy `src` into `fd` in the kernel (copy_file_range), falling back to read/write. */
static int copy_into(int fd, const char *src, const char *dst, uint64_t bytes)
{
    int in = open(src, O_RDONLY | O_CLOEXEC);
    if (in < 0)
        return lsw_err_set(LSW_E_IO, "%s: cannot open: %s", src, strerror(errno));
    int rc = 0;
    uint64_t done = 0;
    while (done < bytes) {
        ssize_t r = copy_file_range(in, NULL, fd, NULL, bytes - done > (1u << 30) ? (1u << 30) : bytes - done, 0);
        if (r <= 0) {
            if (r < 0 && (errno == ENOSYS || errno == EXDEV || errno == EINVAL || errno == EOPNOTSUPP) && done == 0) {
                /* plain copy */
                char *buf = malloc(1 << 20);
                if (!buf) {
                    rc = lsw_err_set(LSW_E_NOMEM, "out of memory");
                    break;
                }
                for (uint64_t off = 0; off < bytes && !rc; off += 1 << 20) {
                    size_t n = bytes - off < (1 << 20) ? (size_t)(bytes - off) : (1 << 20);
                    rc = lsw_pread_full(in, buf, n, off, src);
                    if (!rc)
                        rc = lsw_pwrite_full(fd, buf, n, off, dst);
                }
                free(buf);
                done = bytes;
                break;
            }
            rc = lsw_err_set(errno == ENOSPC ? LSW_E_NOSPACE : LSW_E_IO, "%s: copy from %s failed: %s", dst, src,
                             r < 0 ? strerror(errno) : "source ended early");
            break;
        }
        done += (uint64_t)r;
    }
    close(in);
    return rc;
}

int lsw_outdir_adopt(lsw_outdir *o, const char *name, const char *src, lsw_dedup mode, uint64_t bytes, uint32_t crc,
                     lsw_dedup *how)
{
    char *tmp = pathf(o->dir, ".", name, ".lsw-tmp");
    if (!tmp)
        return lsw_err_set(LSW_E_NOMEM, "out of memory");
    unlink(tmp);
    int rc = 0;
    if (mode == LSW_DEDUP_HARDLINK) {
        *how = LSW_DEDUP_HARDLINK;
        if (link(src, tmp) != 0)
            rc = lsw_err_set(LSW_E_IO, "%s: cannot hard-link %s: %s", tmp, src, strerror(errno));
        else {
            int fd = open(tmp, O_RDONLY | O_CLOEXEC);
            rc = fd < 0 ? lsw_err_set(LSW_E_IO, "%s: cannot open: %s", tmp, strerror(errno))
                        : lsw_outdir_tmp_commit(o, name, fd, bytes, crc);
        }
        free(tmp);
        return rc;
    }
    int fd;
    free(tmp);
    if ((rc = lsw_outdir_tmp_open(o, name, &fd)))
        return rc;
    tmp = pathf(o->dir, ".", name, ".lsw-tmp");
    *how = LSW_DEDUP_COPY;
#ifdef FICLONE
    if (mode == LSW_DEDUP_REFLINK) {
        int in = open(src, O_RDONLY | O_CLOEXEC);
        if (in >= 0 && ioctl(fd, FICLONE, in) == 0)
            *how = LSW_DEDUP_REFLINK;
        if (in >= 0)
            close(in);
    }
#endif
    if (*how == LSW_DEDUP_COPY)
        rc = tmp ? copy_into(fd, src, tmp, bytes) : lsw_err_set(LSW_E_NOMEM, "out of memory");
    free(tmp);
    if (rc) {
        lsw_outdir_tmp_abort(o, name, fd);
        return rc;
    }
    return lsw_outdir_tmp_commit(o, name, fd, bytes, crc);
}

int lsw_outdir_put(lsw_outdir *o, const char *name, const void *buf, size_t n)
{
    int fd, rc = lsw_outdir_tmp_open(o, name, &fd);
    if (rc)
        return rc;
    char *tmp = pathf(o->dir, ".", name, ".lsw-tmp");
    rc = tmp ? lsw_pwrite_full(fd, buf, n, 0, tmp) : lsw_err_set(LSW_E_NOMEM, "out of memory");
    free(tmp);
    if (rc) {
        lsw_outdir_tmp_abort(o, name, fd);
        return rc;
    }
    return lsw_outdir_tmp_commit(o, name, fd, n, lsw_crc32c(0, buf, n));
}

int lsw_outdir_finish(lsw_outdir *o, const char *tool, lsw_manifest_extra_fn extra, const void *arg)
{
    /* every rename of this run durable before the manifest names the files */
    int rc = lsw_fsync_dir(o->dir);
    if (rc)
        return rc;
    sort_files(o);
    char *text = NULL;
    size_t len = 0;
    rc = lsw_manifest_text(o->hash, tool, extra, arg, o->files, o->nfiles, &text, &len);
    if (!rc)
        rc = lsw_write_file_atomic(o->dir, LSW_MANIFEST_NAME, text, len);
    free(text);
    if (!rc) {
        if (o->jfd >= 0)
            close(o->jfd);
        o->jfd = -1;
        rc = remove_name(o->dir, LSW_STATE_NAME);
        if (!rc)
            rc = lsw_fsync_dir(o->dir);
    }
    return rc;
}

uint64_t lsw_outdir_remaining(const lsw_outdir *o, const char *const *names, const uint64_t *sizes, size_t n)
{
    uint64_t sum = 0;
    for (size_t i = 0; i < n; i++) {
        int kept = 0;
        for (size_t j = 0; j < o->njournal && !kept; j++) {
            if (strcmp(o->journal[j].name, names[i]) != 0 || o->journal[j].bytes != sizes[i])
                continue;
            char *p = pathf(o->dir, "", names[i], "");
            struct stat st;
            kept = p && stat(p, &st) == 0 && S_ISREG(st.st_mode) && (uint64_t)st.st_size == sizes[i];
            free(p);
        }
        if (!kept)
            sum += sizes[i];
    }
    return sum;
}

int lsw_outdir_check_space(lsw_outdir *o, uint64_t bytes, size_t nfiles, const char *what)
{
    const char *skip = getenv("LSW_NO_SPACE_CHECK");
    if (skip && *skip && strcmp(skip, "0") != 0)
        return 0;
    struct statvfs v;
    if (statvfs(o->dir, &v) != 0 || v.f_frsize == 0)
        return 0; /* cannot tell: the writes will say */
    /* every file ends in a partly used block, and the folder, journal and
     * manifest take a few more */
    uint64_t need = bytes + ((uint64_t)nfiles + 8) * (uint64_t)v.f_frsize;
    uint64_t avail = (uint64_t)v.f_bavail * (uint64_t)v.f_frsize;
    if (v.f_bavail > UINT64_MAX / v.f_frsize)
        avail = UINT64_MAX;
    if (need <= avail)
        return 0;
    if (o->fresh && o->nfiles == 0) { /* leave the folder as it was: no journal of a run that never started */
        close(o->jfd);
        o->jfd = -1;
        remove_name(o->dir, LSW_STATE_NAME);
        o->fresh = 0;
    }
    return lsw_err_set(LSW_E_NOSPACE,
                       "%s: the run still has to write %" PRIu64 " bytes (%.3f GB%s%s) but the file system has only %"
                       PRIu64 " bytes (%.3f GB) free; nothing was written: free space or choose another -o, then run "
                       "the same command",
                       o->dir, need, (double)need / 1e9, what && *what ? ": " : "", what ? what : "", avail,
                       (double)avail / 1e9);
}
