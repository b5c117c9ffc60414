/* layerswap — command-line front end.  Parses arguments, runs one command,
 * maps the library's error codes to the exit codes of docs/cli.md. */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#ifdef LSW_HAVE_HDF5
#include <hdf5.h>
#endif
#include <inttypes.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "lsw_agree.h"
#include "lsw_checkpoint.h"
#include "lsw_commit.h"
#include "lsw_config.h"
#include "lsw_crc32c.h"
#include "lsw_error.h"
#include "lsw_execute.h"
#include "lsw_h5probe.h"
#include "lsw_io.h"
#include "lsw_modelfiles.h"
#include "lsw_json.h"
#include "lsw_lock.h"
#include "lsw_plan.h"
#include "cli_common.h"
#include "cli_stats.h"
#include "lsw_signal.h"
#include "lsw_stats.h"
#include "lsw_sweep.h"
#include "lsw_verify.h"
#include "lsw_synth.h"

static int rank = 0, nranks = 1;
/* How this process was started, for commands it prints (demo's "Next:"):
 * argv[0] when it holds a '/' (build/engine/layerswap), else "layerswap". */
static const char *prog = "layerswap";

static const char usage_main[] =
    "Usage: layerswap COMMAND [ARGS]\n"
    "       layerswap help COMMAND | --help | --version\n"
    "Merge large language model checkpoints (layer swapping, soups, task vectors), out of\n"
    "core and exactly: the same bytes alone or under mpirun/srun with any number of ranks.\n"
    "\n"
    "Commands:\n"
    "  merge CONFIG        run one merge (JSON, or mergekit YAML; any method below)\n"
    "  sweep SWEEP.json    run every layer swap of a grid of expert combinations in one pass\n"
    "  stats --base B E... per-row MAV of experts against a base: heatmaps, similarity, proposal\n"
    "  inspect PATH        validate a checkpoint and list its tensors\n"
    "  verify DIR          check an output folder against its manifest\n"
    "  synth ...           write a synthetic base and experts\n"
    "  demo [DIR]          synth + layer swap + stats on tiny data, in seconds\n"
    "  help COMMAND        the options of COMMAND (the same as 'layerswap COMMAND --help')\n"
    "\n"
    "Merge methods (the config's \"method\"; docs/config.md):\n"
    "  layer_swap          bottom and top layers from a language expert, the middle ones from\n"
    "                      a task expert, optional averaged transition layers (the paper's)\n"
    "  linear              weighted average of models (a model soup): uniform, explicit or\n"
    "                      magnitude (inverse mean absolute change) weights\n"
    "  rules               per tensor: name regex and layer range -> take, average or base\n"
    "  task_arithmetic     base + lambda x weighted sum of the experts' task vectors\n"
    "  ties                task vectors trimmed to their largest changes, sign election\n"
    "  dare_linear         task vectors randomly dropped and rescaled (DARE), then summed\n"
    "  dare_ties           DARE drop and rescale, then the TIES sign election\n"
    "  breadcrumbs         task vectors without their largest and smallest changes, summed\n"
    "  breadcrumbs_ties    breadcrumbs, then the TIES sign election\n"
    "  della               magnitude-ranked random drop (DELLA), then the TIES sign election\n"
    "  della_linear        DELLA drop, then summed\n"
    "  slerp               spherical interpolation of two models, per tensor\n"
    "  model_stock         average pulled towards the base by the experts' angle (Model Stock)\n"
    "  passthrough         layers taken from models as listed by slices (also restacked)\n"
    "mergekit YAML configs (CONFIG.yml) use the same methods: docs/mergekit.md.\n"
    "\n"
    "Options:\n"
    "  -h, --help          print this help and exit\n"
    "  -V, --version       print the version and exit\n"
    "\n"
    "Exit codes: 0 success, 1 usage or config error, 2 bad input checkpoint,\n"
    "3 interrupted (rerun to resume), 4 output or I/O error, 70 internal error.\n"
    "Reference: docs/README.md in the source (installed: share/doc/layerswap/), man layerswap.\n";

static const char usage_merge[] =
    "Usage: layerswap merge CONFIG.json [OPTIONS]\n"
    "       layerswap merge --sweep SWEEP.json --index K [OPTIONS]\n"
    "Run the merge that CONFIG.json describes (docs/config.md; examples in configs/), or\n"
    "merge K of a sweep alone. Paths in CONFIG.json are relative to its folder.\n"
    "Options (both forms):\n"
    "  -o, --output DIR    output folder (overrides output.path; relative to the current folder)\n"
    "  --format F          safetensors (default) or hdf5 (overrides output.format)\n"
    "  --mem BYTES         buffer budget, e.g. 64M, 2G (default 512M); peak memory stays near it\n"
    "  --progress SECS     rank 0 prints a progress line every SECS seconds on stderr (tensors and\n"
    "                      bytes done, GB/s, ETA; redrawn in place on a terminal); under MPI the\n"
    "                      totals are exact at commit-group boundaries, extrapolated in between\n"
    "  --summary FILE      write per-phase times, bytes and per-rank min/max as JSON to FILE\n"
    "  --dry-run           print the expanded rules and one line per output tensor\n"
    "                      (name, rule, sources, weights); reads no tensor data\n"
    "  --overwrite         replace an output folder that holds another merge\n"
    "  --quiet             no summary line\n"
    "  --sweep SWEEP.json --index K\n"
    "                      run merge K (0, 1, ...) of the sweep alone, into the same folder and\n"
    "                      with the same bytes as 'layerswap sweep SWEEP.json' gives it (job\n"
    "                      arrays: K = $SLURM_ARRAY_TASK_ID); -o replaces the sweep's output.path\n"
    "  -h, --help          print this help and exit\n"
    "Each rank compresses HDF5 chunks and runs the ties/breadcrumbs threshold scans on its\n"
    "share of the node's CPUs; LSW_THREADS=n sets the count (the output is the same for any n).\n"
    "All headers and the config are validated before any data is read. Outputs are\n"
    "written under temporary names and renamed when complete; layerswap-manifest.json\n"
    "is written last. An interrupted merge (exit 3) resumes when rerun.\n";

static const char usage_inspect[] =
    "Usage: layerswap inspect PATH\n"
    "Validate a checkpoint (a folder, a .safetensors file, a model.safetensors.index.json or a\n"
    "layerswap model.h5) against every rule of its format and list its tensors: name, dtype,\n"
    "shape, bytes. It applies the checks a merge applies to an input: every header, the\n"
    "folder's config.json, and for a model.h5 every chunk read and decoded.\n"
    "Exit 0 if valid, 2 with a message naming file, tensor and rule if not.\n";

static const char usage_verify[] =
    "Usage: layerswap verify DIR\n"
    "Check an output folder: every file of layerswap-manifest.json present with its size\n"
    "and CRC-32C, and the checkpoint valid. Exit 0 only if everything matches.\n";

static const char usage_synth[] =
    "Usage: layerswap synth --layers N --hidden H --intermediate I --vocab V -o DIR [OPTIONS]\n"
    "Write DIR/base and K synthetic experts (DIR/task1, DIR/lang1, DIR/task2, ...) with\n"
    "Llama tensor names, config.json and shards, for demos, tests and benchmarks.\n"
    "Odd experts change the upper layers (task-like), even ones the first and last\n"
    "layers' attention and the embeddings (language-like). Same seed, same bytes.\n"
    "  --layers N          transformer layers (1 to 100000)\n"
    "  --hidden H          hidden size\n"
    "  --intermediate I    MLP intermediate size\n"
    "  --vocab V           vocabulary size\n"
    "  -o, --output DIR    the folder to write base/, task1/, lang1/, ... into\n"
    "  --dtype T           bf16 (default), f16 or f32\n"
    "  --experts K         number of experts, 0 to 64 (default 2)\n"
    "  --seed S            seed of every value (default 0)\n"
    "  --shard-size SIZE   bytes per safetensors shard, e.g. 500MB (default 2GB)\n"
    "  --progress SECS     print a progress line every SECS seconds on stderr\n"
    "  --overwrite         replace a model folder that holds other files\n"
    "  --quiet             no summary line\n"
    "  -h, --help          print this help and exit\n";

static const char usage_demo[] =
    "Usage: layerswap demo [DIR]\n"
    "Synthesise a tiny base and two experts (16 layers) in DIR (default ./layerswap-demo),\n"
    "write DIR/merge.json (layer swap: bottom 2, top 2 from the language expert), merge into\n"
    "DIR/merged, verify it, write per-row MAV statistics of both experts (heatmaps,\n"
    "report.html, a proposed config) into DIR/stats, and say whether the statistics'\n"
    "proposal is the merge it made. Takes a second or two.\n";

static int fail(const char *cmd, int rc)
{
    if (rank == 0) {
        const char *d = lsw_err_detail();
        fprintf(stderr, "layerswap %s: error: %s [%s, exit %d]\n", cmd, d[0] ? d : lsw_err_message(rc),
                lsw_err_message(rc), lsw_err_exit_code(rc));
    }
    return lsw_err_exit_code(rc);
}

/* One line, like every other error: "layerswap CMD: error: MSG [usage error, exit 1]". */
static int usage_error(const char *cmd, const char *fmt, const char *arg)
{
    return lsw_cli_usage_error(rank, cmd, fmt, arg);
}

/* --help or -h anywhere: print `usage` (rank 0) and return 1. */
static int show_help(int argc, char **argv, const char *usage)
{
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            if (rank == 0)
                fputs(usage, stdout);
            return 1;
        }
    return 0;
}

/* For commands with positional arguments only: an argument that starts with
 * '-' is an unknown option, not a path (write ./-name for such a path).
 * 0, or the exit code of the usage error. */
static int reject_options(const char *cmd, int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (argv[i][0] == '-' && argv[i][1] != '\0')
            return usage_error(cmd, "unknown option '%s' (write a path that starts with '-' as ./-name)", argv[i]);
    return 0;
}

/* --mem SIZE: at least LSW_MIN_MEM.  0 or the exit code of a usage error. */
/* The run options merge and sweep share: --mem, --progress, --overwrite,
 * --quiet, --summary (getopt codes 'm', 'p', 'w', 'q', 's').  0 or the exit
 * code of a usage error. */
static int run_option(const char *cmd, int c, const char *arg, lsw_run_opts *ro)
{
    switch (c) {
    case 'm': return lsw_cli_mem(rank, cmd, arg, &ro->mem);
    case 'p': return lsw_cli_progress(rank, cmd, arg, &ro->progress);
    case 'w': ro->overwrite = 1; return 0;
    case 'q': ro->quiet = 1; return 0;
    case 's': ro->summary = arg; return 0;
    }
    return usage_error(cmd, "%s", "unknown option");
}

/* ---- merge --------------------------------------------------------------- */

static void close_models(lsw_ckpt **m, size_t n)
{
    for (size_t i = 0; i < n; i++)
        lsw_ckpt_close(m[i]);
    free(m);
}

/* Open every checkpoint the config names (all headers validated); keep those it reads. */
static int open_models(const lsw_config *c, lsw_ckpt ***out)
{
    lsw_ckpt **m = calloc(c->nmodels, sizeof *m);
    int *used = calloc(c->nmodels, sizeof *used);
    if (!m || !used) {
        free(m);
        free(used);
        return lsw_err_set(LSW_E_NOMEM, "out of memory");
    }
    lsw_plan_models_used(c, used);
    int rc = lsw_plan_open_models(c, used, m);
    free(used);
    if (rc) {
        close_models(m, c->nmodels);
        return rc;
    }
    *out = m;
    return 0;
}

static int cmd_merge(int argc, char **argv)
{
    static const struct option opts[] = {{"output", required_argument, 0, 'o'}, {"format", required_argument, 0, 'f'},
                                         {"mem", required_argument, 0, 'm'},    {"progress", required_argument, 0, 'p'},
                                         {"dry-run", no_argument, 0, 'd'},      {"overwrite", no_argument, 0, 'w'},
                                         {"quiet", no_argument, 0, 'q'},        {"help", no_argument, 0, 'h'},
                                         {"summary", required_argument, 0, 's'}, {"sweep", required_argument, 0, 'S'},
                                         {"index", required_argument, 0, 'K'},   {0, 0, 0, 0}};
    const char *sweep = NULL;
    long index = -1;
    const char *outdir = NULL, *format = NULL;
    lsw_run_opts ro = {LSW_DEFAULT_MEM, 0, 0, 0, NULL};
    int dry = 0, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
        switch (c) {
        case 'o': outdir = optarg; break;
        case 'f': format = optarg; break;
        case 'm': case 'p': case 'w': case 'q': case 's': {
            int e = run_option("merge", c, optarg, &ro);
            if (e)
                return e;
            break;
        }
        case 'd': dry = 1; break;
        case 'S': sweep = optarg; break;
        case 'K': {
            char *end;
            errno = 0;
            index = strtol(optarg, &end, 10);
            if (*end || end == optarg || index < 0 || errno == ERANGE)
                return usage_error("merge", "--index needs a merge number (0, 1, ...), not '%s'", optarg);
            break;
        }
        case 'h': if (rank == 0) fputs(usage_merge, stdout); return 0;
        default: return usage_error("merge", "unknown option or missing value: \'%s\'", argv[optind - 1]);
        }
    }
    if ((sweep != NULL) != (index >= 0))
        return usage_error("merge", "%s", "--sweep SWEEP.json and --index K go together");
    if (optind != argc - (sweep ? 0 : 1))
        return usage_error("merge", "%s", sweep ? "takes no CONFIG.json with --sweep" : "needs exactly one CONFIG.json");
    lsw_config *cfg = NULL;
    lsw_sweep *sw = NULL;
    lsw_comm w0 = lsw_comm_world();
    const char *cfgname = sweep ? sweep : argv[optind];
    int rc = sweep ? lsw_sweep_load(sweep, outdir, &sw) : lsw_config_load(argv[optind], &cfg);
    if (!rc && sweep && (size_t)index >= lsw_sweep_count(sw))
        rc = lsw_err_set(LSW_E_CONFIG, "%s: --index %ld but the sweep has %zu merges (0..%zu)", sweep, index,
                         lsw_sweep_count(sw), lsw_sweep_count(sw) - 1);
    if (!rc && sweep) {
        /* merge K alone: the sweep's own config of it, into the same folder */
        rc = lsw_sweep_take_config(sw, (size_t)index, &cfg);
        outdir = NULL;
    }
    lsw_sweep_free(sw);
    rc = lsw_agree(&w0, rc);
    if (rc) {
        lsw_config_free(cfg);
        return fail("merge", rc);
    }
    if (outdir) {
        free(cfg->out.path);
        cfg->out.path = strdup(outdir);
    }
    if (format) {
        if (!strcmp(format, "hdf5"))
            cfg->out.format = LSW_FMT_HDF5;
        else if (!strcmp(format, "safetensors"))
            cfg->out.format = LSW_FMT_SAFETENSORS;
        else {
            lsw_config_free(cfg);
            return usage_error("merge", "--format must be safetensors or hdf5, not '%s'", format);
        }
    }
    if (!cfg->out.path && !dry) {
        lsw_err_set(LSW_E_CONFIG, "%s: no output folder: set \"output\": {\"path\": ...} or give -o DIR", cfgname);
        lsw_config_free(cfg);
        return fail("merge", LSW_E_CONFIG);
    }
#ifndef LSW_HAVE_HDF5
    if (cfg->out.format == LSW_FMT_HDF5 && !dry) {
        lsw_err_set(LSW_E_CONFIG, "%s: HDF5 output needs a build with LSW_WITH_HDF5=ON", cfgname);
        lsw_config_free(cfg);
        return fail("merge", LSW_E_CONFIG);
    }
#endif
    lsw_ckpt **models = NULL;
    lsw_plan *plan = NULL;
    lsw_comm world = lsw_comm_world();
    rc = open_models(cfg, &models);
    if (!rc)
        rc = lsw_plan_build(cfg, models, &plan);
    if (!rc && !dry)
        rc = lsw_plan_check_output(plan);
    /* Every rank opened the same headers; agree before any collective work. */
    rc = lsw_agree(&world, rc);
    if (!rc && dry) {
        if (rank == 0)
            lsw_plan_print(plan, stdout);
    } else if (!rc) {
        rc = lsw_execute_merge(plan, &ro, &world);
    }
    lsw_plan_free(plan);
    if (models)
        close_models(models, cfg->nmodels);
    lsw_config_free(cfg);
    return rc ? fail("merge", rc) : 0;
}

/* ---- sweep --------------------------------------------------------------- */

static const char usage_sweep[] =
    "Usage: layerswap sweep SWEEP.json [OPTIONS]\n"
    "Run every layer-swap merge of a grid of expert combinations (docs/sweep.md) in one pass:\n"
    "each input tensor block is read once for all merges that need it, each distinct\n"
    "output shard is written once and the identical ones become reflinks, hard links\n"
    "or copies (output.dedup; with \"shard_by\": \"layer\" most layers are shared).\n"
    "Merge K goes to <output.path>/<K>-<short name>/; <output.path>/sweep.json lists them.\n"
    "Options:\n"
    "  -o, --output DIR    replaces output.path (relative to the current folder)\n"
    "  --emit-array        print one line per merge, 'K<TAB>NAME<TAB>FOLDER', and write\n"
    "                      sweep.json, without running anything (for Slurm job arrays:\n"
    "                      --array=0-(lines-1), each element running\n"
    "                      'layerswap merge --sweep SWEEP.json --index K')\n"
    "  --summary FILE      bytes read (and what separate merges would read), distinct\n"
    "                      content, bytes written and shards shared, as JSON\n"
    "  --mem BYTES         buffer budget, as for merge (default 512M)\n"
    "  --progress SECS     a progress line every SECS seconds on stderr, as for merge\n"
    "  --overwrite         replace output folders that hold other merges\n"
    "  --quiet             no summary line\n"
    "  -h, --help          print this help and exit\n";

static int cmd_sweep(int argc, char **argv)
{
    static const struct option opts[] = {{"output", required_argument, 0, 'o'}, {"emit-array", no_argument, 0, 'e'},
                                         {"mem", required_argument, 0, 'm'},    {"progress", required_argument, 0, 'p'},
                                         {"overwrite", no_argument, 0, 'w'},    {"quiet", no_argument, 0, 'q'},
                                         {"help", no_argument, 0, 'h'},         {"summary", required_argument, 0, 's'},
                                         {0, 0, 0, 0}};
    const char *outdir = NULL;
    lsw_run_opts ro = {LSW_DEFAULT_MEM, 0, 0, 0, NULL};
    int emit = 0, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
        switch (c) {
        case 'o': outdir = optarg; break;
        case 'e': emit = 1; break;
        case 'm': case 'p': case 'w': case 'q': case 's': {
            int e = run_option("sweep", c, optarg, &ro);
            if (e)
                return e;
            break;
        }
        case 'h': if (rank == 0) fputs(usage_sweep, stdout); return 0;
        default: return usage_error("sweep", "unknown option or missing value: \'%s\'", argv[optind - 1]);
        }
    }
    if (optind != argc - 1)
        return usage_error("sweep", "%s", "needs exactly one SWEEP.json");
    lsw_sweep *sw = NULL;
    lsw_comm world = lsw_comm_world();
    int rc = lsw_agree(&world, lsw_sweep_load(argv[optind], outdir, &sw));
    if (!rc && emit) {
        /* every merge checked against the checkpoints first, so that no array
         * element fails on what could be known now; sweep.json before the
         * lines, so that a reader that stops early (| head) loses nothing */
        if (rank == 0 && !(rc = lsw_sweep_check(sw)) && !(rc = lsw_sweep_write_list(sw))) {
            for (size_t k = 0; k < lsw_sweep_count(sw); k++)
                printf("%zu\t%s\t%s\n", k, lsw_sweep_name(sw, k), lsw_sweep_output(sw, k));
            fflush(stdout);
        }
        rc = lsw_agree(&world, rc);
    } else if (!rc) {
        rc = lsw_sweep_run(sw, &ro, &world);
    }
    lsw_sweep_free(sw);
    return rc ? fail("sweep", rc) : 0;
}

/* ---- inspect ------------------------------------------------------------- */

static int cmd_inspect(int argc, char **argv)
{
    if (show_help(argc, argv, usage_inspect))
        return 0;
    int bad = reject_options("inspect", argc, argv);
    if (bad)
        return bad;
    if (argc != 2)
        return usage_error("inspect", "%s", "needs exactly one PATH");
    lsw_ckpt *c;
    int rc = lsw_ckpt_open(argv[1], &c);
    if (rc)
        return fail("inspect", rc);
    /* what a merge checks beyond the headers: a model.h5's chunks (decoded),
     * and the config.json the output would copy */
    rc = lsw_ckpt_check_data(c);
    if (!rc)
        rc = lsw_check_model_files(lsw_ckpt_folder(c));
    if (rc) {
        lsw_ckpt_close(c);
        return fail("inspect", rc);
    }
    if (rank == 0) {
        printf("# %s: %zu tensors, %d layers, %" PRIu64 " bytes of data in %zu file(s)\n", argv[1],
               lsw_ckpt_count(c), lsw_ckpt_layers(c), lsw_ckpt_data_bytes(c), lsw_ckpt_file_count(c));
        for (size_t i = 0; i < lsw_ckpt_count(c); i++) {
            const lsw_tensor_desc *t = lsw_ckpt_at(c, i);
            printf("%s\t%s\t[", t->name, lsw_dtype_name(t->dtype));
            for (size_t d = 0; d < t->ndim; d++)
                printf("%s%" PRIu64, d ? ", " : "", t->shape[d]);
            printf("]\t%" PRIu64 "\n", t->nbytes);
        }
        if (lsw_ckpt_folder(c) && lsw_check_reference_files(lsw_ckpt_folder(c), "") != 0) {
            lsw_err_clear();
            printf("# note: no config.json: a merge takes this model as an input, but not as the model whose config "
                   "the output copies (its task expert or first model)\n");
        }
    }
    lsw_ckpt_close(c);
    return 0;
}

/* ---- verify -------------------------------------------------------------- */

static int cmd_verify(int argc, char **argv)
{
    if (show_help(argc, argv, usage_verify))
        return 0;
    int bad = reject_options("verify", argc, argv);
    if (bad)
        return bad;
    if (argc != 2)
        return usage_error("verify", "%s", "needs exactly one DIR");
    int rc = lsw_verify_dir(argv[1], rank == 0 ? stdout : NULL);
    if (rc)
        return fail("verify", rc);
    if (rank == 0)
        printf("# %s: complete, every file matches the manifest\n", argv[1]);
    return 0;
}

/* ---- synth --------------------------------------------------------------- */

static int parse_u64_arg(const char *s, uint64_t *out)
{
    char *end;
    if (!s || !*s || *s == '-')
        return -1;
    unsigned long long v = strtoull(s, &end, 10);
    if (*end || v == 0)
        return -1;
    *out = v;
    return 0;
}

static int cmd_synth(int argc, char **argv)
{
    static const struct option opts[] = {
        {"layers", required_argument, 0, 'L'}, {"hidden", required_argument, 0, 'H'},
        {"intermediate", required_argument, 0, 'I'}, {"vocab", required_argument, 0, 'V'},
        {"dtype", required_argument, 0, 'd'}, {"experts", required_argument, 0, 'k'},
        {"seed", required_argument, 0, 's'}, {"shard-size", required_argument, 0, 'z'},
        {"output", required_argument, 0, 'o'}, {"progress", required_argument, 0, 'p'},
        {"overwrite", no_argument, 0, 'w'}, {"quiet", no_argument, 0, 'q'}, {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    lsw_synth_opts so = {0, 0, 0, 0, LSW_DT_BF16, 2, 0, 2000000000ULL, 0, 0, 0};
    const char *out = NULL;
    uint64_t v;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
        switch (c) {
        case 'L':
            if (parse_u64_arg(optarg, &v) || v > 100000)
                return usage_error("synth", "--layers needs a positive integer, not '%s'", optarg);
            so.layers = (int)v;
            break;
        case 'H': if (parse_u64_arg(optarg, &so.hidden)) return usage_error("synth", "bad --hidden '%s'", optarg); break;
        case 'I': if (parse_u64_arg(optarg, &so.intermediate)) return usage_error("synth", "bad --intermediate '%s'", optarg); break;
        case 'V': if (parse_u64_arg(optarg, &so.vocab)) return usage_error("synth", "bad --vocab '%s'", optarg); break;
        case 'd':
            so.dtype = !strcmp(optarg, "bf16") || !strcmp(optarg, "bfloat16") ? LSW_DT_BF16
                       : !strcmp(optarg, "f16") || !strcmp(optarg, "float16") ? LSW_DT_F16
                       : !strcmp(optarg, "f32") || !strcmp(optarg, "float32") ? LSW_DT_F32 : LSW_DT_INVALID;
            if (so.dtype == LSW_DT_INVALID)
                return usage_error("synth", "--dtype must be bf16, f16 or f32, not '%s'", optarg);
            break;
        case 'k': {
            char *end;
            long k = strtol(optarg, &end, 10);
            if (*end || k < 0 || k > 64)
                return usage_error("synth", "--experts must be 0..64, not '%s'", optarg);
            so.experts = (int)k;
            break;
        }
        case 's': {
            char *end;
            so.seed = strtoull(optarg, &end, 10);
            if (*end)
                return usage_error("synth", "--seed needs an integer, not '%s'", optarg);
            break;
        }
        case 'z':
            if (lsw_parse_size(optarg, &so.shard_size))
                return usage_error("synth", "bad --shard-size '%s'", optarg);
            break;
        case 'o': out = optarg; break;
        case 'p': so.progress = atof(optarg); break;
        case 'w': so.overwrite = 1; break;
        case 'q': so.quiet = 1; break;
        case 'h': if (rank == 0) fputs(usage_synth, stdout); return 0;
        default: return usage_error("synth", "unknown option or missing value: \'%s\'", argv[optind - 1]);
        }
    }
    if (optind != argc)
        return usage_error("synth", "unexpected argument '%s'", argv[optind]);
    if (!out || !so.layers || !so.hidden || !so.intermediate || !so.vocab)
        return usage_error("synth", "%s", "needs --layers, --hidden, --intermediate, --vocab and -o");
    int rc = 0;
    if (rank == 0)
        rc = lsw_synth(out, &so);
    MPI_Bcast(&rc, 1, MPI_INT, 0, MPI_COMM_WORLD);
    return rc ? fail("synth", rc) : 0;
}

/* ---- demo ---------------------------------------------------------------- */

/* `w` on stdout as one shell word: as is when it holds only safe characters,
 * else in single quotes (a ' inside written '\\'').  So that a printed
 * command runs as printed, whatever the folder is called. */
static void put_shell_word(const char *w)
{
    if (w[0] && strspn(w, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789/._+-=:,@%") == strlen(w)) {
        fputs(w, stdout);
        return;
    }
    putchar('\'');
    for (const char *c = w; *c; c++)
        fputs(*c == '\'' ? "'\\''" : (char[]){*c, 0}, stdout);
    putchar('\'');
}

/* DIR/merge.json as the demo names it (static buffer; DIR is the user's). */
static const char *cfgpath_shown(const char *dir)
{
    static char buf[4096];
    snprintf(buf, sizeof buf, "%s/merge.json", dir);
    return buf;
}

/* The demo's layer swap: the layers `layerswap stats` finds the language
 * expert changed (synth's language experts change the first two and last two
 * layers' attention and the last two layers' MLP), so that the merge and the
 * statistics' proposal agree; cmd_demo checks that they do. */
#define DEMO_LAYERS 16
#define DEMO_BOTTOM 2
#define DEMO_TOP 2

/* Rank 0: the proposal of DIR/stats/summary.json against the demo's merge.
 * Prints whether they agree, and why not where they do not. */
static void demo_compare(const char *sdir)
{
    char *p = lsw_path_join(sdir, "summary.json"), *text = NULL;
    size_t len = 0;
    lsw_json_doc *doc = NULL;
    int64_t v[4] = {-1, -1, -1, -1};
    static const char *const keys[4] = {"bottom", "top", "lower_transition", "upper_transition"};
    if (p && lsw_read_file(p, &text, &len) == 0 && lsw_json_parse(text, len, &doc, NULL, 0) == 0) {
        const lsw_json *ls = lsw_json_get(lsw_json_get(lsw_json_root(doc), "proposal"), "layer_swap");
        for (int k = 0; k < 4; k++)
            if (lsw_json_i64(lsw_json_get(ls, keys[k]), &v[k]) != 0)
                v[k] = -1;
    }
    lsw_err_clear();
    if (v[0] == DEMO_BOTTOM && v[1] == DEMO_TOP && v[2] == 0 && v[3] == 0)
        printf("layerswap demo: the statistics propose the layer swap merged above (bottom %d, top %d): the "
               "language expert's change stands out in exactly those layers\n", DEMO_BOTTOM, DEMO_TOP);
    else if (v[0] < 0)
        printf("layerswap demo: the statistics propose no layer swap (see %s/report.html); the merge above used "
               "bottom %d, top %d\n", sdir, DEMO_BOTTOM, DEMO_TOP);
    else
        printf("layerswap demo: the statistics propose bottom %lld, top %lld, transitions %lld/%lld, not the merge's "
               "bottom %d, top %d: they take the layers where the language expert's change stands out from its "
               "own background (see %s/report.html)\n", (long long)v[0], (long long)v[1], (long long)v[2],
               (long long)v[3], DEMO_BOTTOM, DEMO_TOP, sdir);
    lsw_json_free(doc);
    free(text);
    free(p);
}

/* Per-row MAV statistics of both experts (the paper's Figure 2), quiet. */
static int demo_stats(const char *dir)
{
    char *b = lsw_path_join(dir, "base"), *t = lsw_path_join(dir, "task1"), *l = lsw_path_join(dir, "lang1"),
         *sdir = lsw_path_join(dir, "stats");
    int ex = 0;
    if (!b || !t || !l || !sdir) {
        lsw_err_set(LSW_E_NOMEM, "out of memory");
        ex = fail("demo", LSW_E_NOMEM);
    } else {
        const char *names[2] = {"math", "swahili"}, *paths[2] = {t, l};
        const size_t task[1] = {0}, lang[1] = {1};
        lsw_stats_opts so = {.base = b, .nexperts = 2, .names = names, .paths = paths, .outdir = sdir,
                             .mem = LSW_DEFAULT_MEM, .overwrite = 1, .quiet = 1, .ntask = 1, .nlang = 1,
                             .task = task, .lang = lang, .shared_scale = -1};
        lsw_comm world = lsw_comm_world();
        if (rank == 0)
            printf("layerswap demo: per-row MAV statistics of both experts against the base\n");
        fflush(stdout);
        int rc = lsw_stats_run(&so, &world);
        if (rc)
            ex = fail("demo", rc);
        else if (rank == 0) {
            demo_compare(sdir);
            printf("layerswap demo: heatmaps and report in %s (open report.html in a browser)\nNext: ", sdir);
            put_shell_word(prog);
            fputs(" merge ", stdout);
            put_shell_word(cfgpath_shown(dir));
            fputs(" --dry-run\n", stdout);
        }
    }
    free(b);
    free(t);
    free(l);
    free(sdir);
    return ex;
}

static int cmd_demo(int argc, char **argv)
{
    if (show_help(argc, argv, usage_demo))
        return 0;
    int bad = reject_options("demo", argc, argv);
    if (bad)
        return bad;
    if (argc > 2)
        return usage_error("demo", "%s", "takes at most one DIR");
    const char *dir = argc == 2 ? argv[1] : "layerswap-demo";
    lsw_synth_opts so = {DEMO_LAYERS, 64, 176, 256, LSW_DT_BF16, 2, 2024, 2000000000ULL, 0, 0, 1};
    int rc = 0;
    if (rank == 0) {
        printf("layerswap demo: synthesising a base and two experts (%d layers, hidden 64) in %s\n", DEMO_LAYERS, dir);
        rc = lsw_synth(dir, &so);
    }
    MPI_Bcast(&rc, 1, MPI_INT, 0, MPI_COMM_WORLD);
    if (rc)
        return fail("demo", rc);
    static const char cfg[] =
        "{\n  \"models\": {\"base\": \"base\", \"math\": \"task1\", \"swahili\": \"lang1\"},\n"
        "  \"base\": \"base\",\n  \"method\": \"layer_swap\",\n"
        "  \"layer_swap\": {\"task_expert\": \"math\", \"language_expert\": \"swahili\",\n"
        "                 \"bottom\": 2, \"top\": 2, \"lower_transition\": 0, \"upper_transition\": 0,\n"
        "                 \"transition_weights\": \"uniform\", \"non_layer\": \"average\", \"non_layer_weights\": \"uniform\"},\n"
        "  \"output\": {\"path\": \"merged\", \"format\": \"safetensors\", \"dtype\": \"input\"}\n}\n";
    if (rank == 0)
        rc = lsw_write_file_atomic(dir, "merge.json", cfg, sizeof cfg - 1);
    MPI_Bcast(&rc, 1, MPI_INT, 0, MPI_COMM_WORLD);
    if (rc)
        return fail("demo", rc);
    char *cfgpath = lsw_path_join(dir, "merge.json");
    char *args[] = {"merge", cfgpath, "--overwrite", NULL};
    if (rank == 0)
        printf("layerswap demo: layer swap (language expert: layers 0-%d and %d-%d; math expert: %d-%d; "
               "non-layer tensors averaged)\n", DEMO_BOTTOM - 1, DEMO_LAYERS - DEMO_TOP, DEMO_LAYERS - 1,
               DEMO_BOTTOM, DEMO_LAYERS - DEMO_TOP - 1);
    int ex = cmd_merge(3, args);
    free(cfgpath);
    if (ex)
        return ex;
    char *merged = lsw_path_join(dir, "merged");
    rc = lsw_verify_dir(merged, NULL);
    if (!rc && rank == 0)
        printf("layerswap demo: %s verified against its manifest.\n", merged);
    free(merged);
    if (rc)
        return fail("demo", rc);
    return demo_stats(dir);
}

/* `srun` without PMIx starts N singletons that would each write everything:
 * inside a Slurm step of N tasks, the MPI world must have N ranks.  Keyed on
 * SLURM_STEP_NUM_TASKS, which srun sets for its step, rather than the
 * allocation-wide SLURM_NTASKS, so that singleton commands in a batch script
 * (inspect, verify) keep working. */
static int check_slurm_world(void)
{
    const char *s = getenv("SLURM_STEP_NUM_TASKS");
    if (!s)
        return 0;
    long n = strtol(s, NULL, 10);
    if (n <= 1 || n == nranks)
        return 0;
    if (rank == 0)
        fprintf(stderr,
                "layerswap: error: this Slurm step has %ld tasks but MPI sees %d rank(s): srun started independent "
                "copies (no PMI). Use 'srun --mpi=pmix' (see 'srun --mpi=list') or mpirun inside the allocation "
                "[usage error, exit 1]\n",
                n, nranks);
    return 1;
}

/* Started by a launcher (mpirun, srun)?  Otherwise we are a singleton. */
static int launched(void)
{
    static const char *const vars[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE",
                                       "MPI_LOCALNRANKS", "SLURM_STEP_NUM_TASKS", NULL};
    for (const char *const *v = vars; *v; v++)
        if (getenv(*v))
            return 1;
    return 0;
}

/* Outside a launcher: an isolated singleton, with no session folder.  An
 * isolated singleton gets the fixed job id 0, so every such run on a host
 * would share Open MPI's session folder /tmp/ompi.<host>.<uid>/jf.0/...:
 * one run's clean-up removed it under another's MPI_Init ("mkdir ...: No
 * such file or directory / File exists", 1-2% of runs with three loops
 * started at once).  It needs none: no daemon, no shared memory (btl
 * self), no MPI-IO (HDF5 goes through POSIX).  The user's own settings win;
 * a user who turns isolation off gets the session folder back with it. */
static void singleton_settings(void)
{
    if (launched())
        return;
    setenv("OMPI_MCA_ess_singleton_isolated", "1", 0);
    setenv("OMPI_MCA_pml", "ob1", 0);
    setenv("OMPI_MCA_btl", "self", 0);
    const char *iso = getenv("OMPI_MCA_ess_singleton_isolated");
    if (iso && (!strcmp(iso, "1") || !strcmp(iso, "true") || !strcmp(iso, "yes")))
        setenv("OMPI_MCA_orte_create_session_dirs", "0", 0);
}

/* A stop signal that arrived while MPI started: nothing was done yet, so
 * the run stops as any interrupted one does (exit 3, on every rank). */
static int stopped_at_start(void)
{
    int mine = lsw_stop_signal != 0, any = 0;
    MPI_Allreduce(&mine, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    if (any && rank == 0)
        fprintf(stderr, "layerswap: error: stopped by a signal while starting; nothing was written, run the same "
                        "command again [%s, exit %d]\n",
                lsw_err_message(LSW_E_INTERRUPTED), lsw_err_exit_code(LSW_E_INTERRUPTED));
    return any;
}

int main(int argc, char **argv)
{
    /* the child of lsw_h5probe_run: no MPI, one file, default signal dispositions */
    if (argc == 3 && !strcmp(argv[1], "__h5probe"))
        return lsw_h5probe_child(argv[2]);
    /* then at once: a stop signal from here on is a clean stop (exit 3), and a
     * file size limit is an error, not SIGXFSZ */
    lsw_install_stop_handlers();
    /* a sweep holds a journal and a lock per merge folder: up to 65536
     * descriptors where the hard limit allows */
    struct rlimit nofile;
    if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < 65536 && nofile.rlim_cur < nofile.rlim_max) {
        nofile.rlim_cur = nofile.rlim_max < 65536 ? nofile.rlim_max : 65536;
        (void)setrlimit(RLIMIT_NOFILE, &nofile);
    }
    lsw_ckpt_set_h5_probe(lsw_h5probe_run);
#ifdef LSW_HAVE_HDF5
    /* HDF5 started before MPI, and never shut down by the library itself:
     * HDF5 1.10 terminates from an MPI_Finalize callback when it was started
     * after MPI_Init, and its termination crashes (SIGSEGV in H5F__close_cb)
     * on a file whose close failed -- a full disk or `ulimit -f` while
     * model.h5 is written turned exit 4 into a crash.  Every file is closed
     * by its owner; the process's exit frees the rest. */
    H5dont_atexit();
    H5open();
#endif
    /* An Open MPI singleton normally forks a helper daemon and initialises
     * UCX (0.25-0.45 s, measured); a process started without a launcher talks
     * to nobody, so it needs neither. */
    singleton_settings();
    int provided = 0; /* encoder and writer threads never call MPI: FUNNELED is enough */
    MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
    lsw_install_stop_handlers(); /* again, in case MPI_Init installed its own */
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &nranks);
    lsw_io_set_rank(rank);
    if (argc >= 2)
        lsw_lock_set_command(argv[1]); /* what a lock file names as its holder */
    if (stopped_at_start()) {
        MPI_Finalize();
        return lsw_err_exit_code(LSW_E_INTERRUPTED);
    }
    opterr = 0; /* every usage error is reported by usage_error, once, on rank 0 */
    int ex;
    if (check_slurm_world()) {
        MPI_Finalize();
        return 1;
    }
    if (argv[0] && strchr(argv[0], '/'))
        prog = argv[0];
    /* `layerswap help CMD` is `layerswap CMD --help`; `layerswap help` is --help */
    char *help_argv[] = {argv[0], argc > 2 ? argv[2] : NULL, "--help", NULL};
    if (argc == 3 && !strcmp(argv[1], "help") && strcmp(argv[2], "help") && strcmp(argv[2], "--help") &&
        strcmp(argv[2], "-h"))
        argv = help_argv;
    if (argc < 2) {
        if (rank == 0)
            fputs(usage_main, stderr);
        ex = 1;
    } else if (argc > 3 && !strcmp(argv[1], "help")) {
        if (rank == 0)
            fprintf(stderr, "layerswap help: error: takes one COMMAND, e.g. 'layerswap help merge' [usage error, exit 1]\n");
        ex = 1;
    } else if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        if (rank == 0)
            fputs(usage_main, stdout);
        ex = 0;
    } else if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "-V")) {
        if (rank == 0)
            printf("layerswap %s\n", LSW_VERSION);
        ex = 0;
    } else if (!strcmp(argv[1], "merge"))
        ex = cmd_merge(argc - 1, argv + 1);
    else if (!strcmp(argv[1], "sweep"))
        ex = cmd_sweep(argc - 1, argv + 1);
    else if (!strcmp(argv[1], "stats"))
        ex = lsw_cli_stats(argc - 1, argv + 1);
    else if (!strcmp(argv[1], "inspect"))
        ex = cmd_inspect(argc - 1, argv + 1);
    else if (!strcmp(argv[1], "verify"))
        ex = cmd_verify(argc - 1, argv + 1);
    else if (!strcmp(argv[1], "synth"))
        ex = cmd_synth(argc - 1, argv + 1);
    else if (!strcmp(argv[1], "demo"))
        ex = cmd_demo(argc - 1, argv + 1);
    else {
        if (rank == 0)
            fprintf(stderr, "layerswap: error: unknown command '%s'; see 'layerswap --help' [usage error, exit 1]\n",
                    argv[1]);
        ex = 1;
    }
    /* Tests check that every rank ends with the same code. */
    if (getenv("LSW_REPORT_EXIT"))
        fprintf(stderr, "rank %d exit %d\n", rank, ex);
    MPI_Finalize();
    return ex;
}
