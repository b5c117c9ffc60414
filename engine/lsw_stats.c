#include "lsw_stats.h"

#include <getopt.h>
#include <limits.h>
#include <mpi.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lsw_checkpoint.h"
#include "lsw_commit.h"
#include "lsw_config.h"
#include "lsw_crc32c.h"
#include "lsw_error.h"
#include "lsw_kernels.h"
#include "lsw_execute.h"
#include "lsw_io.h"
#include "lsw_json.h"
#include "lsw_lock.h"
#include "lsw_mav.h"
#include "lsw_progress.h"
#include "lsw_stats_h5.h"
#include "lsw_stats_rows.h"
#include "lsw_stats_summary.h"
#include "lsw_stats_svg.h"
#include "lsw_strbuf.h"

#define NAME_MAX_CHARS 100
/* doubles per message when gathering row MAVs (int counts stay far from INT_MAX) */
#define GATHER_PIECE ((size_t)1 << 24)
#define TAG_ROWS 7101
/* largest read per model and block: 2 MiB (whole chunks of every dtype) */
#define LSW_STATS_PART_MAX ((uint64_t)2 << 20)

static const char usage_stats[] =
    "Usage: layerswap stats --base DIR EXPERT... [-o DIR] [--progress SECS] [--mem BYTES]\n"
    "                       [--task NAME,...] [--language NAME,...] [--overwrite] [--quiet]\n"
    "Per-row MAV (SPEC section 4) of every expert against the base, all experts in one pass\n"
    "over the base, with per layer x tensor type statistics, heatmaps, profile similarity\n"
    "and a proposed layer swap (engine/STATS.md).\n"
    "An EXPERT is PATH or NAME=PATH; NAME defaults to the folder's base name and may hold\n"
    "letters, digits and . _ + - (at most 100).\n"
    "  --base DIR          the base checkpoint (folder, .safetensors file or index)\n"
    "  -o, --output DIR    output folder (default ./stats)\n"
    "  --mem BYTES         read-buffer budget per rank, e.g. 256M, 2G (default 512M)\n"
    "  --progress SECS     print a progress line every SECS seconds on stderr (rank 0's share)\n"
    "  --task NAMES        comma-separated task experts for the proposal\n"
    "  --language NAMES    comma-separated language experts for the proposal; with only one\n"
    "                      of the two, the other experts form the other side; with neither,\n"
    "                      the sides are chosen from the similarity groups\n"
    "  --overwrite         replace an output folder that holds other results\n"
    "  --quiet             no summary line\n"
    "Writes DIR/stats.h5 (/<expert>/<tensor> = f64 row MAVs), summary.json, heatmap_<expert>.svg,\n"
    "report.html, proposed-layer-swap.json, and layerswap-manifest.json last. Every expert must\n"
    "have the base's tensors and shapes, in its dtype or another of BF16/F16/F32 (else exit 2,\n"
    "before any data is read).\n"
    "Runs alone or under mpirun -n N; the outputs are identical for every N. Each rank reads\n"
    "with its CPUs less one reader threads (1 to 4); LSW_STATS_READERS=n sets it (0: none).\n";

static int rank = 0, nranks = 1;

static int fail(int rc)
{
    if (rank == 0) {
        const char *d = lsw_err_detail();
        fprintf(stderr, "layerswap stats: error: %s [%s, exit %d]\n", d[0] ? d : lsw_err_message(rc),
                lsw_err_message(rc), lsw_err_exit_code(rc));
    }
    return lsw_err_exit_code(rc);
}

static int usage_error(const char *fmt, const char *arg)
{
    if (rank == 0) {
        fprintf(stderr, "layerswap stats: ");
        fprintf(stderr, fmt, arg);
        fprintf(stderr, "\n%s", usage_stats);
    }
    return lsw_err_exit_code(LSW_E_USAGE);
}

/* Every rank learns the most negative code of all ranks and, where rank 0
 * did not fail itself, the detail recorded by the lowest rank with that code.
 * Collective over MPI_COMM_WORLD. */
static int agree(int rc)
{
    struct { int code, rank; } mine = {rc, rank}, all;
    MPI_Allreduce(&mine, &all, 1, MPI_2INT, MPI_MINLOC, MPI_COMM_WORLD);
    if (all.code == 0)
        return 0;
    char detail[1024];
    snprintf(detail, sizeof detail, "%s", rank == all.rank ? lsw_err_detail() : "");
    MPI_Bcast(detail, (int)sizeof detail, MPI_CHAR, all.rank, MPI_COMM_WORLD);
    if (rank != all.rank || rc != all.code) {
        lsw_err_clear();
        lsw_err_set(all.code, "%s", detail);
    }
    return all.code;
}

/* ---- arguments ------------------------------------------------------------ */

static int name_ok(const char *s, size_t n)
{
    if (n == 0 || n > NAME_MAX_CHARS)
        return 0;
    if ((n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.'))
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
              c == '+' || c == '-'))
            return 0;
    }
    return 1;
}

/* Default name of a checkpoint path: the folder's base name (for a .safetensors file or an index, the
 * file name without ".safetensors", or the folder's name for model.safetensors / the index). */
static char *default_name(const char *path)
{
    char *p = strdup(path);
    if (!p)
        return NULL;
    size_t n = strlen(p);
    while (n > 1 && p[n - 1] == '/')
        p[--n] = 0;
    char *base = strrchr(p, '/');
    base = base ? base + 1 : p;
    if (!strcmp(base, "model.safetensors") || !strcmp(base, "model.safetensors.index.json")) {
        if (base == p) { /* in the current folder */
            char cwd[PATH_MAX];
            free(p);
            if (!getcwd(cwd, sizeof cwd))
                return strdup("");
            return default_name(cwd);
        }
        base[-1] = 0;
        char *r = default_name(p);
        free(p);
        return r;
    }
    size_t bl = strlen(base);
    if (bl > 12 && !strcmp(base + bl - 12, ".safetensors"))
        base[bl - 12] = 0;
    char *r = strdup(base);
    free(p);
    return r;
}

/* Comma-separated expert names → indices (in the order given). */
static int parse_names(const char *list, const char *opt, char *const *names, size_t E, size_t **idx, size_t *n)
{
    *idx = calloc(E + 1, sizeof **idx);
    *n = 0;
    if (!*idx)
        return lsw_err_set(LSW_E_NOMEM, "out of memory");
    const char *s = list;
    while (*s) {
        const char *c = strchr(s, ',');
        size_t len = c ? (size_t)(c - s) : strlen(s);
        size_t k = 0;
        while (k < E && !(strlen(names[k]) == len && !strncmp(names[k], s, len)))
            k++;
        if (len == 0 || k == E)
            return lsw_err_set(LSW_E_USAGE, "%s: '%.*s' is not the name of an expert", opt, (int)len, s);
        for (size_t j = 0; j < *n; j++)
            if ((*idx)[j] == k)
                return lsw_err_set(LSW_E_USAGE, "%s: expert '%s' listed twice", opt, names[k]);
        (*idx)[(*n)++] = k;
        s += len;
        if (*s == ',')
            s++;
    }
    if (!*n)
        return lsw_err_set(LSW_E_USAGE, "%s needs at least one expert name", opt);
    return 0;
}

/* ---- the pass over the data --------------------------------------------- */

/* Reader threads of this rank: LSW_STATS_READERS if set (0: none, each
 * block read then summed; LSW_STATS_SERIAL=1 means 0 too), else the CPUs
 * this rank may run on (its affinity mask, shared among the ranks of its
 * node) less one for the summing thread, at least 1 and at most 4.  On the
 * 2-core development VM one reader beat two (1.13-1.33 s against 1.23-1.37 s
 * for E = 4 on 1.47 GB models): the copy from the page cache and the sums
 * share the memory bus.  Collective over MPI_COMM_WORLD (the node's rank
 * count). */
static int stats_readers(void)
{
    MPI_Comm node;
    int local = 1;
    if (MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL, &node) == MPI_SUCCESS) {
        MPI_Comm_size(node, &local);
        MPI_Comm_free(&node);
    }
    const char *serial = getenv("LSW_STATS_SERIAL"), *env = getenv("LSW_STATS_READERS");
    if (serial && *serial && strcmp(serial, "0") != 0)
        return 0;
    if (env && *env) {
        char *end;
        long v = strtol(env, &end, 10);
        if (!*end && v >= 0)
            return v > 8 ? 8 : (int)v;
    }
    cpu_set_t set;
    int cpus = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : 1;
    /* unbound ranks each see the node's CPUs and share them; a rank bound to
     * fewer CPUs than the node has ranks has them to itself */
    int mine = (cpus >= local ? cpus / local : cpus) - 1;
    return mine < 1 ? 1 : mine > 4 ? 4 : mine;
}

/* Row MAVs of every eligible tensor for every expert, gathered on rank 0 into
 * rows[e] (allocated there, total_rows each; NULL elsewhere).  Tensors are
 * spread over the ranks by bytes; each rank streams its own within `mem`.
 * Collective over MPI_COMM_WORLD. */
static int compute_rows(const lsw_ckpt *base, lsw_ckpt *const *xc, size_t E, const uint64_t *row_off,
                        uint64_t total_rows, uint64_t mem, double progress, double **rows, lsw_progress *pr,
                        lsw_stats_timing *tm)
{
    size_t nt = lsw_ckpt_count(base), ne = 0;
    size_t *elig = malloc((nt ? nt : 1) * sizeof *elig);
    uint64_t *bytes = malloc((nt ? nt : 1) * sizeof *bytes);
    int *owner = malloc((nt ? nt : 1) * sizeof *owner);
    uint64_t *rank_doubles = calloc((size_t)nranks, sizeof *rank_doubles);
    double *local = NULL, *tmp = NULL;
    void *buf = NULL;
    int rc = (!elig || !bytes || !owner || !rank_doubles) ? lsw_err_set(LSW_E_NOMEM, "out of memory") : 0;
    uint64_t my_bytes = 0, my_items = 0, need = 0;
    int readers = stats_readers();
    if (!rc) {
        for (size_t i = 0; i < nt; i++)
            if (row_off[i] != UINT64_MAX) {
                elig[ne] = i;
                bytes[ne++] = lsw_ckpt_at(base, i)->nbytes;
            }
        rc = lsw_stats_assign(bytes, ne, nranks, owner);
    }
    if (!rc) {
        for (size_t k = 0; k < ne; k++) {
            const lsw_tensor_desc *t = lsw_ckpt_at(base, elig[k]);
            uint64_t r, rl;
            lsw_mav_rows(t, &r, &rl);
            rank_doubles[owner[k]] += r * E;
            if (owner[k] == rank) {
                my_bytes += t->nbytes;
                for (size_t e = 0; e < E; e++)
                    my_bytes += lsw_ckpt_find(xc[e], t->name)->nbytes;
                my_items++;
                /* one part holds the whole tensor, rounded up to whole chunks */
                uint64_t chunks = (t->numel + LSW_MAV_CHUNK - 1) / LSW_MAV_CHUNK;
                uint64_t part = chunks * LSW_MAV_CHUNK * 4; /* the widest element an expert may have */
                if (part > need)
                    need = part;
            }
        }
        /* buffers: readers + 1 slots of 1 + E parts, a part no larger than the
         * largest tensor needs nor than LSW_STATS_PART_MAX (so the slots stay in
         * the CPU cache between the read and the sums), and no more than --mem */
        uint64_t part = need < LSW_STATS_PART_MAX ? need : LSW_STATS_PART_MAX;
        uint64_t bb = (uint64_t)(readers + 1) * part * (E + 1);
        if (bb > mem)
            bb = mem;
        if (bb < lsw_stats_buf_min(E))
            bb = lsw_stats_buf_min(E);
        if (bb > SIZE_MAX / 2)
            bb = SIZE_MAX / 2;
        buf = my_items ? malloc((size_t)bb) : NULL;
        if (my_items && !buf)
            rc = lsw_err_set(LSW_E_NOMEM, "out of memory for %llu bytes of read buffers (--mem)", (unsigned long long)bb);
        if (!rc && rank == 0) {
            uint64_t most = 0;
            for (int r = 1; r < nranks; r++)
                if (rank_doubles[r] > most)
                    most = rank_doubles[r];
            for (size_t e = 0; e < E && !rc; e++)
                if (!(rows[e] = malloc((size_t)(total_rows ? total_rows : 1) * sizeof **rows)))
                    rc = lsw_err_set(LSW_E_NOMEM, "out of memory for the row MAVs");
            if (!rc && most && !(tmp = malloc((size_t)most * sizeof *tmp)))
                rc = lsw_err_set(LSW_E_NOMEM, "out of memory for the row MAVs");
        } else if (!rc && rank_doubles[rank] && !(local = malloc((size_t)rank_doubles[rank] * sizeof *local)))
            rc = lsw_err_set(LSW_E_NOMEM, "out of memory for the row MAVs");
        /* progress lines show rank 0's share; `what` must outlive this call */
        static char what[64];
        if (nranks > 1)
            snprintf(what, sizeof what, "stats (rank 0 of %d)", nranks);
        else
            snprintf(what, sizeof what, "stats");
        lsw_progress_start(pr, what, rank == 0 ? progress : 0, my_bytes, (size_t)my_items);
        /* one job per tensor of this rank, in name order */
        double **out = malloc((size_t)(my_items ? my_items : 1) * E * sizeof *out);
        lsw_stats_job *jobs = malloc((size_t)(my_items ? my_items : 1) * sizeof *jobs);
        if (!rc && (!out || !jobs))
            rc = lsw_err_set(LSW_E_NOMEM, "out of memory");
        uint64_t cursor = 0;
        size_t nj = 0;
        for (size_t k = 0; k < ne && !rc; k++) {
            if (owner[k] != rank)
                continue;
            const lsw_tensor_desc *t = lsw_ckpt_at(base, elig[k]);
            uint64_t r, rl;
            lsw_mav_rows(t, &r, &rl);
            for (size_t e = 0; e < E; e++)
                out[nj * E + e] = rank == 0 ? rows[e] + row_off[elig[k]] : local + cursor + e * r;
            jobs[nj] = (lsw_stats_job){t, 0, r, out + nj * E};
            nj++;
            cursor += r * E;
        }
        if (!rc)
            rc = lsw_stats_rows_run(base, xc, E, jobs, nj, buf, (size_t)bb, readers, pr, tm);
        free(out);
        free(jobs);
    }
    free(buf);
    rc = agree(rc);
    if (!rc) {
        /* rank r sends its tensors' rows (name order, [expert][row] per tensor) in pieces */
        if (rank != 0) {
            for (uint64_t off = 0; off < rank_doubles[rank]; off += GATHER_PIECE) {
                size_t n = rank_doubles[rank] - off < GATHER_PIECE ? (size_t)(rank_doubles[rank] - off) : GATHER_PIECE;
                MPI_Send(local + off, (int)n, MPI_DOUBLE, 0, TAG_ROWS, MPI_COMM_WORLD);
            }
        } else {
            for (int src = 1; src < nranks; src++) {
                for (uint64_t off = 0; off < rank_doubles[src]; off += GATHER_PIECE) {
                    size_t n = rank_doubles[src] - off < GATHER_PIECE ? (size_t)(rank_doubles[src] - off) : GATHER_PIECE;
                    MPI_Recv(tmp + off, (int)n, MPI_DOUBLE, src, TAG_ROWS, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
                }
                uint64_t cursor = 0;
                for (size_t k = 0; k < ne; k++) {
                    if (owner[k] != src)
                        continue;
                    uint64_t r, rl;
                    lsw_mav_rows(lsw_ckpt_at(base, elig[k]), &r, &rl);
                    for (size_t e = 0; e < E; e++)
                        memcpy(rows[e] + row_off[elig[k]], tmp + cursor + e * r, (size_t)r * sizeof *tmp);
                    cursor += r * E;
                }
            }
        }
        /* the summary line counts every rank's bytes */
        uint64_t all = 0;
        MPI_Reduce(&pr->done_bytes, &all, 1, MPI_UINT64_T, MPI_SUM, 0, MPI_COMM_WORLD);
        if (rank == 0)
            pr->done_bytes = all;
    }
    free(local);
    free(tmp);
    free(elig);
    free(bytes);
    free(owner);
    free(rank_doubles);
    return rc;
}

/* ---- outputs (rank 0) ------------------------------------------------------ */

static int put_sb(lsw_outdir *od, const char *name, lsw_strbuf *b)
{
    if (lsw_sb_failed(b))
        return lsw_err_set(LSW_E_NOMEM, "out of memory writing %s", name);
    return lsw_outdir_put(od, name, b->p ? b->p : "", b->len);
}

static int put_h5(lsw_outdir *od, const lsw_ckpt *base, const lsw_stats_summary *s, const char *base_abs,
                  const char *const *names, const char *const *paths, const uint64_t *row_off,
                  const double *const *rows)
{
    size_t E = s->nexperts;
    double *mm = malloc((E ? E : 1) * sizeof *mm);
    char *tmp = lsw_path_join(lsw_outdir_path(od), ".stats.h5.lsw-tmp");
    if (!mm || !tmp) {
        free(mm);
        free(tmp);
        return lsw_err_set(LSW_E_NOMEM, "out of memory");
    }
    for (size_t e = 0; e < E; e++)
        mm[e] = s->experts[e].model_mav;
    int fd = -1, rc = lsw_outdir_tmp_open(od, "stats.h5", &fd);
    if (!rc)
        rc = lsw_stats_h5_write(tmp, base, base_abs, E, names, paths, mm, row_off, rows);
    /* size and CRC-32C of what HDF5 wrote, read back through our descriptor */
    uint64_t size = 0;
    uint32_t crc = 0;
    if (!rc) {
        struct stat st;
        if (fstat(fd, &st) != 0)
            rc = lsw_err_set(LSW_E_IO, "%s: cannot stat", tmp);
        size = rc ? 0 : (uint64_t)st.st_size;
        size_t bs = 1 << 22;
        char *b = rc ? NULL : malloc(bs);
        if (!rc && !b)
            rc = lsw_err_set(LSW_E_NOMEM, "out of memory");
        for (uint64_t off = 0; !rc && off < size; off += bs) {
            size_t n = size - off < bs ? (size_t)(size - off) : bs;
            if ((rc = lsw_pread_full(fd, b, n, off, tmp)))
                rc = lsw_err_set(LSW_E_IO, "%s: cannot read back what HDF5 wrote", tmp);
            else
                crc = lsw_crc32c(crc, b, n);
        }
        free(b);
    }
    if (!rc)
        rc = lsw_outdir_tmp_commit(od, "stats.h5", fd, size, crc);
    else if (fd >= 0)
        lsw_outdir_tmp_abort(od, "stats.h5", fd);
    free(mm);
    free(tmp);
    return rc;
}

static int write_outputs(lsw_outdir *od, const lsw_ckpt *base, const lsw_stats_summary *s, const char *base_abs,
                         const char *const *names, const char *const *paths, const uint64_t *row_off,
                         const double *const *rows)
{
    int rc = 0;
    if (lsw_stats_h5_available())
        rc = put_h5(od, base, s, base_abs, names, paths, row_off, rows);
    else
        fprintf(stderr, "layerswap stats: warning: built without HDF5; stats.h5 is not written\n");
    for (size_t e = 0; e < s->nexperts && !rc; e++) {
        lsw_strbuf b = {0};
        double vmin, vmax;
        char fn[NAME_MAX_CHARS + 32];
        lsw_stats_svg_range(s, e, &vmin, &vmax);
        lsw_stats_svg_heatmap(s, e, vmin, vmax, "hm", 1, &b);
        snprintf(fn, sizeof fn, "heatmap_%s.svg", names[e]);
        rc = put_sb(od, fn, &b);
        lsw_sb_free(&b);
    }
    if (!rc) {
        lsw_strbuf b = {0};
        lsw_stats_summary_json(s, &b);
        rc = put_sb(od, "summary.json", &b);
        lsw_sb_free(&b);
    }
    if (!rc) {
        lsw_strbuf b = {0};
        lsw_stats_report_html(s, &b);
        rc = put_sb(od, "report.html", &b);
        lsw_sb_free(&b);
    }
    if (!rc && s->proposal.valid) {
        lsw_strbuf b = {0};
        lsw_stats_proposal_config(s, &b);
        rc = put_sb(od, "proposed-layer-swap.json", &b);
        lsw_sb_free(&b);
    }
    if (!rc)
        rc = lsw_outdir_finish(od, "  \"tool\": \"layerswap stats\"");
    return rc;
}

/* With --overwrite of an earlier `layerswap stats` folder: remove the files its
 * manifest lists that this run will not write (e.g. the heatmap of an expert
 * no longer compared), so the folder holds only what the new manifest lists.
 * Folders written by other tools are left to lsw_outdir_open. */
static int remove_stale(const char *dir, const char *const *names, size_t n)
{
    char *mp = lsw_path_join(dir, LSW_MANIFEST_NAME), *text = NULL;
    size_t len;
    int rc = 0;
    if (!mp)
        return lsw_err_set(LSW_E_NOMEM, "out of memory");
    if (lsw_read_file(mp, &text, &len) != 0) {
        lsw_err_clear(); /* no manifest: nothing of ours to clean */
        free(mp);
        return 0;
    }
    lsw_json_doc *doc = NULL;
    if (lsw_json_parse(text, len, &doc, NULL, 0) == 0) {
        const lsw_json *root = lsw_json_root(doc), *files = lsw_json_get(root, "files");
        const char *tool = lsw_json_str(lsw_json_get(root, "tool"), NULL);
        for (size_t i = 0; tool && !strcmp(tool, "layerswap stats") && i < lsw_json_count(files) && !rc; i++) {
            const char *f = lsw_json_str(lsw_json_get(lsw_json_at(files, i), "name"), NULL);
            if (!f || !*f || strchr(f, '/') || f[0] == '.')
                continue;
            int ours = 0;
            for (size_t k = 0; k < n && !ours; k++)
                ours = !strcmp(names[k], f);
            if (ours)
                continue;
            char *p = lsw_path_join(dir, f);
            if (!p)
                rc = lsw_err_set(LSW_E_NOMEM, "out of memory");
            else if (unlink(p) != 0 && lsw_is_file(p))
                rc = lsw_err_set(LSW_E_IO, "%s: cannot remove a file of the earlier stats", p);
            free(p);
        }
        lsw_json_free(doc);
    }
    free(text);
    free(mp);
    return rc;
}

/* ---- the command ---------------------------------------------------------- */

static char *abs_path(const char *p)
{
    char *r = realpath(p, NULL);
    return r ? r : strdup(p);
}

int lsw_stats_main(int argc, char **argv)
{
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &nranks);
    lsw_err_clear();
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            if (rank == 0)
                fputs(usage_stats, stdout);
            return 0;
        }
    static const struct option opts[] = {
        {"base", required_argument, 0, 'b'},     {"output", required_argument, 0, 'o'},
        {"mem", required_argument, 0, 'm'},      {"progress", required_argument, 0, 'p'},
        {"task", required_argument, 0, 't'},     {"language", required_argument, 0, 'l'},
        {"overwrite", no_argument, 0, 'w'},      {"quiet", no_argument, 0, 'q'},
        {"help", no_argument, 0, 'h'},           {0, 0, 0, 0}};
    const char *base_path = NULL, *outdir = "stats", *task_list = NULL, *lang_list = NULL;
    uint64_t mem = LSW_DEFAULT_MEM;
    double progress = 0;
    int overwrite = 0, quiet = 0, c;
    optind = 0; /* full reset of GNU getopt */
    opterr = rank == 0;
    while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
        switch (c) {
        case 'b': base_path = optarg; break;
        case 'o': outdir = optarg; break;
        case 'm':
            if (lsw_parse_size(optarg, &mem) || mem < LSW_MIN_MEM)
                return usage_error(LSW_MEM_USAGE, optarg);
            break;
        case 'p': {
            char *end;
            progress = strtod(optarg, &end);
            if (*end || !(progress > 0))
                return usage_error("--progress needs a positive number of seconds, not '%s'", optarg);
            break;
        }
        case 't': task_list = optarg; break;
        case 'l': lang_list = optarg; break;
        case 'w': overwrite = 1; break;
        case 'q': quiet = 1; break;
        default: return usage_error("%s", "bad option");
        }
    }
    if (!base_path)
        return usage_error("%s", "needs --base DIR");
    if (optind >= argc)
        return usage_error("%s", "needs at least one EXPERT (PATH or NAME=PATH)");
    if (!*outdir)
        return usage_error("%s", "-o needs a folder");
    size_t E = (size_t)(argc - optind);
    char **names = calloc(E, sizeof *names);
    const char **paths = calloc(E, sizeof *paths);
    char **abs = calloc(E, sizeof *abs);
    lsw_ckpt **xc = calloc(E, sizeof *xc);
    lsw_ckpt *bc = NULL;
    size_t *task = NULL, *lang = NULL, ntask = 0, nlang = 0;
    uint64_t *row_off = NULL;
    double **rows = calloc(E, sizeof *rows);
    char *base_abs = NULL;
    lsw_outdir *od = NULL;
    lsw_stats_summary *sum = NULL;
    int rc = (!names || !paths || !abs || !xc || !rows) ? lsw_err_set(LSW_E_NOMEM, "out of memory") : 0;
    int ex = -1; /* exit code decided early (usage) */
    for (size_t e = 0; e < E && !rc; e++) {
        const char *arg = argv[optind + (int)e], *eq = strchr(arg, '=');
        if (eq && !name_ok(arg, (size_t)(eq - arg)) && !lsw_is_dir(arg) && !lsw_is_file(arg)) {
            ex = usage_error("expert '%s': the part before '=' is not a usable expert name (letters, digits, "
                             ". _ + -)", arg);
            break;
        }
        if (eq && name_ok(arg, (size_t)(eq - arg))) {
            names[e] = strndup(arg, (size_t)(eq - arg));
            paths[e] = eq + 1;
        } else {
            names[e] = default_name(arg);
            paths[e] = arg;
            if (names[e] && !name_ok(names[e], strlen(names[e]))) {
                ex = usage_error("expert '%s': its folder name is not a usable expert name (letters, digits, "
                                 ". _ + -); give NAME=PATH",
                                 arg);
                break;
            }
        }
        if (!names[e])
            rc = lsw_err_set(LSW_E_NOMEM, "out of memory");
        if (!rc && !*paths[e])
            ex = usage_error("expert '%s': empty path", arg);
        for (size_t j = 0; j < e && !rc && ex < 0; j++)
            if (!strcmp(names[j], names[e]))
                ex = usage_error("two experts are named '%s': give them names with NAME=PATH", names[e]);
        if (ex >= 0)
            break;
    }
    if (!rc && ex < 0 && task_list && (rc = parse_names(task_list, "--task", names, E, &task, &ntask)))
        ex = usage_error("%s", lsw_err_detail());
    if (!rc && ex < 0 && lang_list && (rc = parse_names(lang_list, "--language", names, E, &lang, &nlang)))
        ex = usage_error("%s", lsw_err_detail());
    for (size_t i = 0; !rc && ex < 0 && i < ntask; i++)
        for (size_t j = 0; j < nlang; j++)
            if (task[i] == lang[j])
                ex = usage_error("expert '%s' is in both --task and --language", names[task[i]]);
    if (ex >= 0) {
        rc = 0;
        goto done;
    }
    /* every rank opens every checkpoint: all headers validated before any data is read */
    if (!rc)
        rc = lsw_ckpt_open(base_path, &bc);
    for (size_t e = 0; e < E && !rc; e++)
        rc = lsw_ckpt_open(paths[e], &xc[e]);
    /* the output folder must not be an input's: --overwrite there would mix
     * stats files and a manifest into a model folder */
    if (!rc && lsw_ckpt_in_folder(bc, outdir))
        rc = lsw_err_set(LSW_E_CONFIG, "the output folder %s holds the base model %s (an input); choose another -o",
                         outdir, base_path);
    for (size_t e = 0; e < E && !rc; e++)
        if (lsw_ckpt_in_folder(xc[e], outdir))
            rc = lsw_err_set(LSW_E_CONFIG, "the output folder %s holds expert '%s' (an input); choose another -o",
                             outdir, names[e]);
    if (!rc)
        rc = lsw_ckpt_check_layers(bc);
    rc = agree(rc);
    if (!rc)
        rc = agree(lsw_stats_check_experts(bc, xc, E));
    uint64_t total_rows = 0, neligible = 0;
    if (!rc) {
        size_t nt = lsw_ckpt_count(bc);
        row_off = malloc((nt ? nt : 1) * sizeof *row_off);
        if (!row_off)
            rc = lsw_err_set(LSW_E_NOMEM, "out of memory");
        for (size_t i = 0; i < nt && !rc; i++) {
            const lsw_tensor_desc *t = lsw_ckpt_at(bc, i);
            row_off[i] = UINT64_MAX;
            if (!lsw_mav_has_rows(t))
                continue;
            uint64_t r, rl;
            lsw_mav_rows(t, &r, &rl);
            row_off[i] = total_rows;
            total_rows += r;
            neligible++;
        }
        if (!rc && !neligible)
            rc = lsw_err_set(LSW_E_INPUT, "%s: no BF16/F16/F32 tensor with rows (one or more dimensions, not empty) to compare", lsw_ckpt_path(bc));
        rc = agree(rc);
    }
    /* the output folder: refuse to clobber before reading any data */
    lsw_out_state state = LSW_OUT_FRESH;
    if (!rc) {
        uint64_t h = lsw_fnv1a64(LSW_FNV1A64_INIT, "layerswap stats 1", 17);
        uint64_t id = lsw_ckpt_identity(bc);
        h = lsw_fnv1a64(h, &id, sizeof id);
        for (size_t e = 0; e < E; e++) {
            id = lsw_ckpt_identity(xc[e]);
            h = lsw_fnv1a64(h, names[e], strlen(names[e]) + 1);
            h = lsw_fnv1a64(h, &id, sizeof id);
        }
        h = lsw_fnv1a64(h, &ntask, sizeof ntask);
        if (ntask)
            h = lsw_fnv1a64(h, task, ntask * sizeof *task);
        h = lsw_fnv1a64(h, &nlang, sizeof nlang);
        if (nlang)
            h = lsw_fnv1a64(h, lang, nlang * sizeof *lang);
        if (rank == 0) {
            size_t nn = E + 5;
            const char **out_names = calloc(nn, sizeof *out_names);
            char **svg = calloc(E, sizeof *svg);
            if (!out_names || !svg)
                rc = lsw_err_set(LSW_E_NOMEM, "out of memory");
            for (size_t e = 0; e < E && !rc; e++) {
                size_t l = strlen(names[e]) + 16;
                if (!(svg[e] = malloc(l)))
                    rc = lsw_err_set(LSW_E_NOMEM, "out of memory");
                else {
                    snprintf(svg[e], l, "heatmap_%s.svg", names[e]);
                    out_names[e] = svg[e];
                }
            }
            if (!rc) {
                out_names[E] = "stats.h5";
                out_names[E + 1] = "summary.json";
                out_names[E + 2] = "report.html";
                out_names[E + 3] = "proposed-layer-swap.json";
                rc = lsw_lock_dir(outdir, "stats"); /* issue 10: the folder's owner before anything */
                if (!rc && overwrite && lsw_is_dir(outdir))
                    rc = remove_stale(outdir, out_names, E + 4);
                if (!rc)
                    rc = lsw_outdir_open(outdir, h, out_names, E + 4, overwrite, &od, &state);
                if (!rc && state != LSW_OUT_COMPLETE) /* issue 10: stats.h5 (f64 per row and expert) and the rest */
                    rc = lsw_outdir_check_space(od, total_rows * 8 * (uint64_t)E + ((uint64_t)E + 4) * (1u << 20), E + 4,
                                                "stats.h5, summaries and heatmaps");
            }
            for (size_t e = 0; svg && e < E; e++)
                free(svg[e]);
            free(svg);
            free(out_names);
        }
        rc = agree(rc);
        int st = (int)state;
        MPI_Bcast(&st, 1, MPI_INT, 0, MPI_COMM_WORLD);
        state = (lsw_out_state)st;
    }
    if (!rc && state == LSW_OUT_COMPLETE) {
        if (rank == 0)
            printf("layerswap stats: %s already holds these statistics (its manifest matches); "
                   "use --overwrite to compute them again\n", outdir);
        goto done;
    }
    lsw_progress pr;
    lsw_stats_timing tm = {0, 0, 0, 0, 0};
    if (!rc) {
        base_abs = abs_path(base_path);
        for (size_t e = 0; e < E && !rc; e++)
            if (!(abs[e] = abs_path(paths[e])))
                rc = lsw_err_set(LSW_E_NOMEM, "out of memory");
        if (!base_abs)
            rc = lsw_err_set(LSW_E_NOMEM, "out of memory");
        rc = agree(rc);
    }
    if (!rc)
        rc = compute_rows(bc, xc, E, row_off, total_rows, mem, progress, rows, &pr, &tm);
    if (!rc) {
        if (rank == 0) {
            lsw_stats_input in = {bc, base_abs, E, (const char *const *)names, (const char *const *)abs,
                                  row_off, (const double *const *)rows, ntask, nlang, task, lang};
            rc = lsw_stats_summarize(&in, &sum);
            if (!rc) {
                lsw_stats_print_proposal(sum, stdout);
                fflush(stdout);
                rc = write_outputs(od, bc, sum, base_abs, (const char *const *)names, (const char *const *)abs,
                                   row_off, (const double *const *)rows);
            }
            if (!rc) {
                char detail[512];
                double kr = tm.kernel_s > 0 ? (double)tm.bytes / tm.kernel_s / 1e9 : 0;
                snprintf(detail, sizeof detail,
                         "%zu expert(s) x %llu tensors (%llu rows) -> %s; rank 0 read %.3f GB: read %.2f s%s, "
                         "MAV kernel %.2f s (%.2f GB/s, %s), waited %.2f s",
                         E, (unsigned long long)neligible, (unsigned long long)total_rows, outdir,
                         (double)tm.bytes / 1e9, tm.read_s, tm.overlapped ? " (overlapped)" : "", tm.kernel_s, kr,
                         lsw_isa_name(lsw_kernels_isa()), tm.wait_s);
                pr.what = "stats";
                lsw_progress_end(&pr, detail, quiet);
            }
        }
        rc = agree(rc);
    }
done:
    lsw_stats_summary_free(sum);
    lsw_outdir_free(od);
    for (size_t e = 0; e < E; e++) {
        if (xc)
            lsw_ckpt_close(xc[e]);
        if (names)
            free(names[e]);
        if (abs)
            free(abs[e]);
        if (rows)
            free(rows[e]);
    }
    lsw_ckpt_close(bc);
    free(names);
    free(paths);
    free(abs);
    free(xc);
    free(rows);
    free(row_off);
    free(task);
    free(lang);
    free(base_abs);
    if (ex >= 0)
        return ex;
    return rc ? fail(rc) : 0;
}
