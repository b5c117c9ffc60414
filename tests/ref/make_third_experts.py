#!/usr/bin/python3
"""Writes tests/data/table6/{math3,lang3}: a third math and a third language expert
for the paper's Table 6 example (a soup of three math experts layer-swapped with a
soup of three language experts), shaped like the transformers-written fixtures'
experts (tests/data/llama-bf16-sharded): base + seeded noise, bfloat16, one
model.safetensors, the base's config and tokenizer files.

    make_third_experts.py FIXTURES OUT

math3: attention and MLP of the upper half of the layers changed; lang3: attention
of the first two and last two layers, MLP of the last two, embeddings and lm_head.
Every other tensor is byte-identical to the base, as after real fine-tuning."""
import os
import shutil
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lsw_ref as R  # noqa: E402

src, out = sys.argv[1], sys.argv[2]
base = R.Checkpoint(os.path.join(src, "base"))
L = R.num_layers(base)


def changed(kind, name):
    i = R.layer_of(name)
    attn, mlp = "self_attn" in name, ".mlp." in name
    if kind == "math":
        return i is not None and i >= L // 2 and (attn or mlp)
    if i is None or i < 0:
        return "embed" in name or "lm_head" in name
    return (attn and (i < 2 or i >= L - 2)) or (mlp and i >= L - 2)


for kind, seed in (("math", 3), ("lang", 33)):
    rng = np.random.default_rng(seed)
    tensors = []
    for name in sorted(base.tensors):
        t = base.tensors[name]
        raw = base.raw(name)
        if changed(kind, name):
            x = base.f32(name).astype(np.float32)
            scale = np.float32(float(np.std(x)) * 0.25 + 1e-3)
            x = (x + scale * rng.standard_normal(x.shape).astype(np.float32)).astype(np.float32)
            raw = R.from_f32(x, t.dtype)
        tensors.append((name, (t.dtype, t.shape, raw)))
    d = os.path.join(out, kind + "3")
    os.makedirs(d, exist_ok=True)
    R.write_safetensors(os.path.join(d, "model.safetensors"), tensors, {"format": "pt"})
    for f in ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json"):
        shutil.copyfile(os.path.join(src, "base", f), os.path.join(d, f))
