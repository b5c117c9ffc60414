#include "cli_stats.h"

#include "cli_common.h"

#include <getopt.h>
#include <limits.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lsw_agree.h"
#include "lsw_config.h"
#include "lsw_error.h"
#include "lsw_execute.h"
#include "lsw_io.h"
#include "lsw_stats.h"

static const char usage_stats[] =
    "Usage: layerswap stats --base DIR EXPERT... [-o DIR] [--progress SECS] [--mem BYTES]\n"
    "                       [--task NAME,...] [--language NAME,...] [--overwrite] [--quiet]\n"
    "                       [--shared-scale | --no-shared-scale] [--log-scale]\n"
    "Per-row MAV of every expert against the base, all experts in one pass over the base,\n"
    "with per layer x tensor type statistics, each module's share of the layer's relative\n"
    "change, heatmaps, profile similarity and a proposed layer swap (docs/statistics.md).\n"
    "An EXPERT is PATH or NAME=PATH; NAME defaults to the folder's base name and may hold\n"
    "letters, digits and . _ + - (at most 100; not 'cells').\n"
    "  --base DIR          the base checkpoint (folder, .safetensors file, index or model.h5)\n"
    "  -o, --output DIR    output folder (default ./stats)\n"
    "  --mem BYTES         read-buffer budget per rank, e.g. 256M, 2G (default 512M)\n"
    "  --progress SECS     print a progress line every SECS seconds on stderr (rank 0's share)\n"
    "  --task NAMES        comma-separated task experts for the proposal\n"
    "  --language NAMES    comma-separated language experts for the proposal; with only one\n"
    "                      of the two, the other experts form the other side; with neither,\n"
    "                      the sides are chosen from the similarity groups\n"
    "  --shared-scale      one colour scale for every expert's heatmap (default with 2 or more)\n"
    "  --no-shared-scale   each heatmap on its own expert's range (default with one expert)\n"
    "  --log-scale         colours by log10 of the value (unchanged cells are marked either way)\n"
    "  --overwrite         replace an output folder that holds other results\n"
    "  --quiet             print nothing on success\n"
    "Writes DIR/stats.h5 (/<expert>/<tensor> = f64 row MAVs, /cells/<expert>/<statistic> = the\n"
    "layer x type matrices), summary.json, heatmap_<expert>.svg, report.html,\n"
    "proposed-layer-swap.json, and layerswap-manifest.json last. Every expert must have the\n"
    "base's tensors and shapes, in its dtype or another of BF16/F16/F32 (else exit 2, before\n"
    "any data is read).\n"
    "Runs alone or under mpirun -n N; the outputs are identical for every N. Each rank reads\n"
    "with its CPUs less one reader threads (1 to 4); LSW_STATS_READERS=n sets it (0: none).\n";

static int usage_error(int rank, const char *fmt, const char *arg)
{
    return lsw_cli_usage_error(rank, "stats", fmt, arg);
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

/* The options that getopt reads; the experts stay in argv[optind..]. */
typedef struct cli {
    lsw_stats_opts o;
    const char *task_list, *lang_list;
    char **names;
    const char **paths;
    size_t *task, *lang;
} cli;

/* Options into c->o; an exit code ≥ 0 when parsing ends the command (usage), else -1. */
static int parse_options(int rank, int argc, char **argv, cli *c)
{
    static const struct option opts[] = {
        {"base", required_argument, 0, 'b'},        {"output", required_argument, 0, 'o'},
        {"mem", required_argument, 0, 'm'},         {"progress", required_argument, 0, 'p'},
        {"task", required_argument, 0, 't'},        {"language", required_argument, 0, 'l'},
        {"overwrite", no_argument, 0, 'w'},         {"quiet", no_argument, 0, 'q'},
        {"shared-scale", no_argument, 0, 'S'},      {"no-shared-scale", no_argument, 0, 'N'},
        {"log-scale", no_argument, 0, 'L'},         {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    int ch, ex;
    optind = 0; /* full reset of GNU getopt */
    opterr = 0; /* every usage error is one line, from lsw_cli_usage_error */
    while ((ch = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
        switch (ch) {
        case 'b': c->o.base = optarg; break;
        case 'o': c->o.outdir = optarg; break;
        case 'm':
            if ((ex = lsw_cli_mem(rank, "stats", optarg, &c->o.mem)))
                return ex;
            break;
        case 'p':
            if ((ex = lsw_cli_progress(rank, "stats", optarg, &c->o.progress)))
                return ex;
            break;
        case 't': c->task_list = optarg; break;
        case 'l': c->lang_list = optarg; break;
        case 'w': c->o.overwrite = 1; break;
        case 'q': c->o.quiet = 1; break;
        case 'S': c->o.shared_scale = 1; break;
        case 'N': c->o.shared_scale = 0; break;
        case 'L': c->o.log_scale = 1; break;
        default: return usage_error(rank, "unknown option or missing value: '%s'", argv[optind - 1]);
        }
    }
    if (!c->o.base)
        return usage_error(rank, "%s", "needs --base DIR");
    if (optind >= argc)
        return usage_error(rank, "%s", "needs at least one EXPERT (PATH or NAME=PATH)");
    if (!*c->o.outdir)
        return usage_error(rank, "%s", "-o needs a folder");
    return -1;
}

/* argv[optind..] → names and paths; --task / --language → indices.  An exit
 * code ≥ 0 for a usage error, -1 when all is well; *rc an lsw error (OOM). */
static int parse_experts(int rank, int argc, char **argv, cli *c, int *rc)
{
    size_t E = (size_t)(argc - optind);
    c->names = calloc(E, sizeof *c->names);
    c->paths = calloc(E, sizeof *c->paths);
    if (!c->names || !c->paths) {
        *rc = lsw_err_set(LSW_E_NOMEM, "out of memory");
        return -1;
    }
    c->o.nexperts = E;
    for (size_t e = 0; e < E; e++) {
        const char *arg = argv[optind + (int)e], *eq = strchr(arg, '=');
        if (eq && !lsw_stats_name_ok(arg, (size_t)(eq - arg)) && !lsw_is_dir(arg) && !lsw_is_file(arg))
            return usage_error(rank, "expert '%s': the part before '=' is not a usable expert name (letters, digits, "
                               ". _ + -; not 'cells')", arg);
        if (eq && lsw_stats_name_ok(arg, (size_t)(eq - arg))) {
            c->names[e] = strndup(arg, (size_t)(eq - arg));
            c->paths[e] = eq + 1;
        } else {
            c->names[e] = default_name(arg);
            c->paths[e] = arg;
            if (c->names[e] && !lsw_stats_name_ok(c->names[e], strlen(c->names[e])))
                return usage_error(rank, "expert '%s': its folder name is not a usable expert name (letters, digits, "
                                   ". _ + -; not 'cells'); give NAME=PATH", arg);
        }
        if (!c->names[e]) {
            *rc = lsw_err_set(LSW_E_NOMEM, "out of memory");
            return -1;
        }
        if (!*c->paths[e])
            return usage_error(rank, "expert '%s': empty path", arg);
        for (size_t j = 0; j < e; j++)
            if (!strcmp(c->names[j], c->names[e]))
                return usage_error(rank, "two experts are named '%s': give them names with NAME=PATH", c->names[e]);
    }
    if (c->task_list && (*rc = parse_names(c->task_list, "--task", c->names, E, &c->task, &c->o.ntask)))
        return *rc == LSW_E_USAGE ? usage_error(rank, "%s", lsw_err_detail()) : -1;
    if (c->lang_list && (*rc = parse_names(c->lang_list, "--language", c->names, E, &c->lang, &c->o.nlang)))
        return *rc == LSW_E_USAGE ? usage_error(rank, "%s", lsw_err_detail()) : -1;
    for (size_t i = 0; i < c->o.ntask; i++)
        for (size_t j = 0; j < c->o.nlang; j++)
            if (c->task[i] == c->lang[j])
                return usage_error(rank, "expert '%s' is in both --task and --language", c->names[c->task[i]]);
    c->o.names = (const char *const *)c->names;
    c->o.paths = c->paths;
    c->o.task = c->task;
    c->o.lang = c->lang;
    return -1;
}

int lsw_cli_stats(int argc, char **argv)
{
    lsw_comm world = lsw_comm_world();
    lsw_err_clear();
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            if (world.rank == 0)
                fputs(usage_stats, stdout);
            return 0;
        }
    cli c;
    memset(&c, 0, sizeof c);
    c.o.outdir = "stats";
    c.o.mem = LSW_DEFAULT_MEM;
    c.o.shared_scale = -1;
    int rc = 0, ex = parse_options(world.rank, argc, argv, &c);
    if (ex < 0)
        ex = parse_experts(world.rank, argc, argv, &c, &rc);
    if (ex < 0 && !rc)
        rc = lsw_stats_run(&c.o, &world);
    for (size_t e = 0; c.names && e < c.o.nexperts; e++)
        free(c.names[e]);
    free(c.names);
    free(c.paths);
    free(c.task);
    free(c.lang);
    if (ex >= 0)
        return ex;
    if (rc && world.rank == 0) {
        const char *d = lsw_err_detail();
        fprintf(stderr, "layerswap stats: error: %s [%s, exit %d]\n", d[0] ? d : lsw_err_message(rc),
                lsw_err_message(rc), lsw_err_exit_code(rc));
    }
    return rc ? lsw_err_exit_code(rc) : 0;
}
