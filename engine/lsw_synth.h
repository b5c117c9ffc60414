/* lsw_synth — synthetic Llama checkpoints for demos, tests and benchmarks.
 *
 * Writes DIR/base and K experts DIR/task1, DIR/lang1, DIR/task2, ... (odd
 * experts are task-like, even ones language-like), each a Hugging Face
 * folder: safetensors shards (+ index), config.json (LlamaForCausalLM),
 * generation_config.json.
 *
 * Every element is a pure function of (seed, model, tensor name, index):
 * base weights ~ N(0, 0.02) (Irwin–Hall of four 16-bit uniforms), norms
 * 1 + N(0, 0.02); an expert is base + a delta whose scale follows the
 * paper's Figure 2: task experts change the upper half of the model, language
 * experts the attention of the first and last two layers, the MLP of the
 * last two, and the embeddings and lm_head.  Some expert tensors are left
 * byte-identical to the base, as after real fine-tuning.
 */
#ifndef LSW_SYNTH_H
#define LSW_SYNTH_H

#include <stdint.h>

#include "lsw_dtype.h"

typedef struct lsw_synth_opts {
    int layers;
    uint64_t hidden, intermediate, vocab;
    lsw_dtype dtype;      /* BF16, F16 or F32 */
    int experts;          /* K */
    uint64_t seed;
    uint64_t shard_size;  /* bytes per shard */
    double progress;      /* seconds; 0 none */
    int overwrite;
    int quiet;
} lsw_synth_opts;

/* Name of expert i (1-based): "task1", "lang1", "task2", ... into buf. */
void lsw_synth_expert_name(int i, char *buf, unsigned len);
int lsw_synth(const char *dir, const lsw_synth_opts *o);

#endif
