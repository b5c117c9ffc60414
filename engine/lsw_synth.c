#include "lsw_synth.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lsw_commit.h"
#include "lsw_crc32c.h"
#include "lsw_error.h"
#include "lsw_io.h"
#include "lsw_kernels.h"
#include "lsw_layout.h"
#include "lsw_progress.h"
#include "lsw_strbuf.h"

#define NAME_MAX_LEN 96

typedef struct stensor {
    char name[NAME_MAX_LEN];
    size_t ndim;
    uint64_t shape[2];
    int layer;
    int kind; /* 0 attention, 1 mlp, 2 norm, 3 embedding / lm_head */
} stensor;

void lsw_synth_expert_name(int i, char *buf, unsigned len)
{
    snprintf(buf, len, "%s%d", (i % 2) ? "task" : "lang", (i + 1) / 2);
}

static uint64_t splitmix(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ULL;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
    return x ^ (x >> 31);
}

/* ~N(0, 1): Irwin–Hall of four 16-bit uniforms, standardised. */
static float gauss(uint64_t key, uint64_t i)
{
    uint64_t r = splitmix(key ^ (i * 0xD1B54A32D192ED03ULL));
    float s = (float)(r & 0xffff) + (float)((r >> 16) & 0xffff) + (float)((r >> 32) & 0xffff) + (float)(r >> 48);
    return (s * (1.0f / 65536.0f) - 2.0f) * 1.7320508f;
}

/* Delta scale of an expert for a tensor (0: identical to the base). */
static float delta_scale(int expert, const stensor *t, int L)
{
    if (expert == 0)
        return 0;
    int task = expert % 2;
    int l = t->layer;
    if (t->kind == 2)
        return (task && l >= 0 && l < L / 2) ? 0.0f : 0.001f;
    if (task) {
        if (t->kind == 3)
            return 0.0005f;
        if (l < L / 2)
            return t->kind == 0 ? 0.0f : 0.0002f;
        return t->kind == 0 ? 0.004f : 0.003f;
    }
    if (t->kind == 3)
        return 0.005f;
    int edge = l < 2 || l >= L - 2;
    if (t->kind == 0)
        return edge ? 0.006f : 0.0005f;
    return l >= L - 2 ? 0.004f : (l < L / 2 ? 0.0f : 0.0003f);
}

static size_t make_tensors(const lsw_synth_opts *o, uint64_t hd, uint64_t kvh, stensor **out)
{
    size_t n = 3 + 9 * (size_t)o->layers;
    stensor *t = calloc(n, sizeof *t);
    if (!t)
        return 0;
    size_t k = 0;
    uint64_t H = o->hidden, I = o->intermediate, V = o->vocab;
#define T2(nm, r, c, ly, kd) do { snprintf(t[k].name, NAME_MAX_LEN, "%s", nm); t[k].ndim = 2; t[k].shape[0] = r; \
        t[k].shape[1] = c; t[k].layer = ly; t[k].kind = kd; k++; } while (0)
#define T1(nm, r, ly) do { snprintf(t[k].name, NAME_MAX_LEN, "%s", nm); t[k].ndim = 1; t[k].shape[0] = r; \
        t[k].layer = ly; t[k].kind = 2; k++; } while (0)
    T2("model.embed_tokens.weight", V, H, -1, 3);
    for (int l = 0; l < o->layers; l++) {
        char nm[NAME_MAX_LEN];
#define LN(suffix) (snprintf(nm, sizeof nm, "model.layers.%d.%s", l, suffix), nm)
        T1(LN("input_layernorm.weight"), H, l);
        T1(LN("post_attention_layernorm.weight"), H, l);
        T2(LN("self_attn.q_proj.weight"), H, H, l, 0);
        T2(LN("self_attn.k_proj.weight"), kvh * hd, H, l, 0);
        T2(LN("self_attn.v_proj.weight"), kvh * hd, H, l, 0);
        T2(LN("self_attn.o_proj.weight"), H, H, l, 0);
        T2(LN("mlp.gate_proj.weight"), I, H, l, 1);
        T2(LN("mlp.up_proj.weight"), I, H, l, 1);
        T2(LN("mlp.down_proj.weight"), H, I, l, 1);
#undef LN
    }
    T1("model.norm.weight", H, -1);
    T2("lm_head.weight", V, H, -1, 3);
#undef T1
#undef T2
    *out = t;
    return k;
}

static int cmp_natural_stensor(const void *a, const void *b);

static void config_json(const lsw_synth_opts *o, uint64_t hd, uint64_t heads, uint64_t kvh, lsw_strbuf *b)
{
    lsw_sb_printf(b,
                  "{\n  \"architectures\": [\"LlamaForCausalLM\"],\n  \"attention_bias\": false,\n"
                  "  \"attention_dropout\": 0.0,\n  \"bos_token_id\": 1,\n  \"dtype\": \"%s\",\n"
                  "  \"eos_token_id\": 2,\n  \"head_dim\": %llu,\n  \"hidden_act\": \"silu\",\n"
                  "  \"hidden_size\": %llu,\n  \"initializer_range\": 0.02,\n  \"intermediate_size\": %llu,\n"
                  "  \"max_position_embeddings\": 2048,\n  \"mlp_bias\": false,\n  \"model_type\": \"llama\",\n"
                  "  \"num_attention_heads\": %llu,\n  \"num_hidden_layers\": %d,\n  \"num_key_value_heads\": %llu,\n"
                  "  \"pretraining_tp\": 1,\n  \"rms_norm_eps\": 1e-06,\n  \"rope_theta\": 10000.0,\n"
                  "  \"tie_word_embeddings\": false,\n  \"use_cache\": true,\n  \"vocab_size\": %llu\n}\n",
                  lsw_dtype_torch_name(o->dtype), (unsigned long long)hd, (unsigned long long)o->hidden,
                  (unsigned long long)o->intermediate, (unsigned long long)heads, o->layers, (unsigned long long)kvh,
                  (unsigned long long)o->vocab);
}

static const char gen_config[] = "{\n  \"bos_token_id\": 1,\n  \"eos_token_id\": 2\n}\n";

static int write_model(const char *dir, int expert, const lsw_synth_opts *o, stensor *st, size_t n,
                       lsw_layout_item *items, const lsw_layout_shard *shards, size_t nshards, const char *cfg,
                       size_t cfglen, float *fbuf, void *obuf, size_t block, lsw_progress *pr)
{
    const char *names[] = {"model.safetensors.index.json", "config.json", "generation_config.json"};
    const char **all = calloc(nshards + 3, sizeof *all);
    if (!all)
        return lsw_err_set(LSW_E_NOMEM, "out of memory");
    for (size_t k = 0; k < nshards; k++)
        all[k] = shards[k].name;
    for (int k = 0; k < 3; k++)
        all[nshards + k] = names[k];
    lsw_outdir *od;
    lsw_out_state state;
    /* identity of this model: the options that shape its bytes (not the struct: padding) */
    uint64_t id[9] = {(uint64_t)o->layers, o->hidden, o->intermediate, o->vocab, (uint64_t)o->dtype,
                      (uint64_t)o->experts, o->seed, o->shard_size, (uint64_t)expert};
    uint64_t hash = lsw_fnv1a64(LSW_FNV1A64_INIT, id, sizeof id);
    int rc = lsw_outdir_open(dir, hash, all, nshards + 3, o->overwrite, &od, &state);
    free(all);
    if (rc)
        return rc;
    if (state == LSW_OUT_COMPLETE) {
        lsw_outdir_free(od);
        return 0;
    }
    size_t es = lsw_dtype_size(o->dtype);
    for (size_t k = 0; k < nshards && !rc; k++) {
        const lsw_layout_shard *s = &shards[k];
        if (state == LSW_OUT_RESUME && lsw_outdir_reuse(od, s->name))
            continue;
        int fd;
        if ((rc = lsw_outdir_tmp_open(od, s->name, &fd)))
            break;
        char *path = lsw_path_join(dir, s->name);
        uint32_t crc = lsw_crc32c(0, s->header, s->data_start);
        rc = lsw_pwrite_full(fd, s->header, s->data_start, 0, path);
        for (size_t j = 0; j < s->count && !rc; j++) {
            const lsw_layout_item *it = &items[s->first + j];
            const stensor *t = &st[it - items];
            uint64_t tkey = lsw_fnv1a64(LSW_FNV1A64_INIT, t->name, strlen(t->name)) ^ o->seed;
            float ds = delta_scale(expert, t, o->layers);
            uint64_t dkey = splitmix(tkey + 0x1000u * (uint64_t)expert);
            for (uint64_t e0 = 0; e0 < it->numel && !rc; e0 += block) {
                size_t m = it->numel - e0 < block ? (size_t)(it->numel - e0) : block;
                for (size_t i = 0; i < m; i++) {
                    float b = 0.02f * gauss(tkey, e0 + i);
                    if (t->kind == 2)
                        b += 1.0f;
                    fbuf[i] = ds != 0.0f ? b + ds * gauss(dkey, e0 + i) : b;
                }
                lsw_from_f32(o->dtype, fbuf, obuf, m);
                rc = lsw_pwrite_full(fd, obuf, m * es, it->offset + e0 * es, path);
                crc = lsw_crc32c(crc, obuf, m * es);
                lsw_progress_add(pr, m * es, 0);
            }
            lsw_progress_add(pr, 0, 1);
        }
        if (rc)
            lsw_outdir_tmp_abort(od, s->name, fd);
        else
            rc = lsw_outdir_tmp_commit(od, s->name, fd, s->size, crc);
        free(path);
    }
    if (!rc && nshards > 1)
        rc = lsw_layout_put_index(items, n, shards, od);
    if (!rc)
        rc = lsw_outdir_put(od, "config.json", cfg, cfglen);
    if (!rc)
        rc = lsw_outdir_put(od, "generation_config.json", gen_config, sizeof gen_config - 1);
    if (!rc)
        rc = lsw_outdir_finish(od, "layerswap synth", NULL, NULL);
    lsw_outdir_free(od);
    return rc;
}

int lsw_synth(const char *dir, const lsw_synth_opts *o)
{
    if (o->layers < 1 || o->hidden < 1 || o->intermediate < 1 || o->vocab < 1 || o->experts < 0 || o->experts > 64)
        return lsw_err_set(LSW_E_USAGE, "synth: --layers, --hidden, --intermediate and --vocab must be positive, --experts 0..64");
    if (!lsw_dtype_is_arith(o->dtype))
        return lsw_err_set(LSW_E_USAGE, "synth: --dtype must be bf16, f16 or f32");
    uint64_t hd = o->hidden % 64 == 0 ? 64 : o->hidden % 16 == 0 ? 16 : o->hidden;
    uint64_t heads = o->hidden / hd, kvh = heads % 2 == 0 ? heads / 2 : heads;
    stensor *st = NULL;
    size_t n = make_tensors(o, hd, kvh, &st);
    if (!n)
        return lsw_err_set(LSW_E_NOMEM, "out of memory");
    qsort(st, n, sizeof *st, cmp_natural_stensor);
    lsw_layout_item *items = calloc(n, sizeof *items);
    size_t block = 1 << 18;
    float *fbuf = malloc(block * sizeof *fbuf);
    void *obuf = malloc(block * 4);
    lsw_strbuf cfg = {0};
    config_json(o, hd, heads, kvh, &cfg);
    int rc = (!items || !fbuf || !obuf || lsw_sb_failed(&cfg)) ? lsw_err_set(LSW_E_NOMEM, "out of memory") : 0;
    uint64_t total = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        uint64_t numel = st[i].shape[0] * (st[i].ndim == 2 ? st[i].shape[1] : 1);
        items[i] = (lsw_layout_item){st[i].name, o->dtype, st[i].ndim, st[i].shape, numel,
                                     numel * lsw_dtype_size(o->dtype), st[i].layer, 0, 0};
        total += items[i].nbytes;
    }
    lsw_layout_shard *shards = NULL;
    size_t nshards = 0;
    if (!rc)
        rc = lsw_layout_build(items, n, o->shard_size, 0, &shards, &nshards);
    lsw_progress pr;
    lsw_progress_start(&pr, "synth", o->progress, total * (uint64_t)(o->experts + 1), n * (size_t)(o->experts + 1));
    for (int e = 0; e <= o->experts && !rc; e++) {
        char name[32] = "base";
        if (e)
            lsw_synth_expert_name(e, name, sizeof name);
        char *p = lsw_path_join(dir, name);
        rc = p ? write_model(p, e, o, st, n, items, shards, nshards, cfg.p, cfg.len, fbuf, obuf, block, &pr)
               : lsw_err_set(LSW_E_NOMEM, "out of memory");
        free(p);
    }
    if (!rc) {
        char detail[256];
        snprintf(detail, sizeof detail, "base + %d expert(s), %.3f GB each -> %s", o->experts, (double)total / 1e9, dir);
        lsw_progress_end(&pr, detail, o->quiet);
    }
    lsw_layout_free_shards(shards, nshards);
    lsw_sb_free(&cfg);
    free(items);
    free(fbuf);
    free(obuf);
    free(st);
    return rc;
}

static int cmp_natural_stensor(const void *a, const void *b)
{
    return lsw_natural_cmp(((const stensor *)a)->name, ((const stensor *)b)->name);
}
