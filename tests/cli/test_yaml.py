#!/usr/bin/python3
"""cli_yaml: mergekit YAML configs (docs/mergekit.md, docs/mergekit.md) from the command line.

- every refusal of the issue: exit 1, one error line naming the key (with line and
  column where the YAML has one), nothing written;
- gradient and filter parameters: the per-tensor values --dry-run prints are mergekit's
  evaluate_setting of the YAML (recomputed here), and the merges equal the oracle;
- a restacked frankenmerge: config.json gets the new num_hidden_layers and its per-layer
  lists restacked; tensor names run 0..L-1 with every layer complete, as transformers
  needs to load it.
"""

import json
import os
import re
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lswtest import Test  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "ref"))
from lsw_ref import mk_evaluate, Checkpoint  # noqa: E402

t = Test(__doc__)
fx = os.path.join(os.path.abspath(t.args.data), "llama-bf16-sharded")


def write(name, text):
    p = os.path.join(t.work, name)
    with open(p, "w") as f:
        f.write(text.replace("FX", fx))
    return p


TIES = """models:
  - model: FX/math1
    parameters: {weight: 1.0, density: 0.5}
  - model: FX/lang1
    parameters: {weight: 0.5, density: 0.5}
merge_method: ties
base_model: FX/base
"""

# (name, YAML, strings the error line must mention)
REFUSALS = [
    ("hub-id", TIES.replace("FX/math1", "meta-llama/Llama-2-7b-hf"), ["hub id", "line 2", "model"]),
    ("lora", TIES.replace("FX/lang1", "FX/lang1+adapters/my-lora"), ["LoRA", "line 4", "model"]),
    ("int8-mask", TIES + "parameters:\n  int8_mask: true\n", ["int8_mask", "line 9"]),
    ("union", TIES + "tokenizer_source: union\n", ["tokenizer_source", "union", "line 8"]),
    ("method", TIES.replace("merge_method: ties", "merge_method: nuslerp"), ["merge_method", "nuslerp"]),
    ("unknown-key", TIES + "embed_slerp: true\n", ["embed_slerp", "line 8"]),
    ("unknown-param", TIES.replace("density: 0.5}", "density: 0.5, gamma: 0.1}", 1), ["gamma", "line 3"]),
    ("tokenizer", TIES + "tokenizer:\n  source: base\n", ["tokenizer"]),
    ("modules", TIES + "modules: {}\n", ["modules"]),
    ("duplicate", TIES + "base_model: FX/math2\n", ["duplicate key", "base_model", "line 8"]),
    ("aliases", "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        "%s: &%s [%s]\n" % (chr(98 + i), chr(98 + i), ", ".join(["*" + chr(97 + i)] * 10)) for i in range(8)),
     ["expands to more than"]),
    ("nesting", "merge_method: " + "[" * 40 + "\n", ["nested more than"]),
    ("syntax", "models: [\n", ["line"]),
    ("tag", TIES + "name: !!python/object:os.system x\n", ["tags"]),
    ("no-t", TIES.replace("merge_method: ties", "merge_method: slerp").replace(
        "  - model: FX/math1\n    parameters: {weight: 1.0, density: 0.5}\n", "").replace(
        "    parameters: {weight: 0.5, density: 0.5}\n", ""), ["\"t\""]),
    ("t-per-model", TIES.replace("merge_method: ties", "merge_method: slerp").replace(
        "  - model: FX/math1\n    parameters: {weight: 1.0, density: 0.5}\n", "").replace(
        "{weight: 0.5, density: 0.5}", "{t: 0.5}"), ["t", "whole merge"]),
    ("no-weight", TIES.replace("{weight: 0.5, density: 0.5}", "{density: 0.5}"), ["weight", "lang1"]),
    ("layer-range", "slices:\n  - sources:\n      - model: FX/math1\n        layer_range: [0, 9]\n"
                    "merge_method: passthrough\n", ["layers", "8 layers"]),
    ("della-epsilon", TIES.replace("merge_method: ties", "merge_method: della").replace(
        "density: 0.5}", "density: 0.9, epsilon: 0.2}", 1), ["epsilon"]),
    ("filter-wise", "models:\n  - model: FX/math1\n  - model: FX/lang1\nmerge_method: model_stock\n"
                    "base_model: FX/base\nparameters:\n  filter_wise: true\n", ["filter_wise"]),
    ("slice-base", "slices:\n  - sources:\n      - model: FX/math1\n        layer_range: [0, 8]\n"
                   "    base_model: FX/base\nmerge_method: passthrough\n", ["base_model"]),
]

for name, text, mention in REFUSALS:
    cfg = write("refuse-%s.yml" % name, text)
    out = os.path.join(t.work, "out-" + name)
    p = t.ls("merge", cfg, "-o", out)
    t.expect_rc(p, 1, "refusal %s" % name)
    t.check_error_line(p, "merge", 1, "refusal %s" % name, mention)
    t.check(not os.path.exists(out), "refusal %s: the output folder was created" % name)

# gradients and filters: the values of --dry-run are mergekit's evaluate_setting
SLERP = """slices:
  - sources:
      - model: FX/math1
        layer_range: [1, 7]
      - model: FX/lang1
        layer_range: [2, 8]
merge_method: slerp
base_model: FX/math1
parameters:
  t:
    - filter: self_attn
      value: [0, 0.5, 0.3, 0.7, 1]
    - filter: mlp
      value: [1, 0.5, 0.7, 0.3, 0]
    - value: 0.25
"""
cfg = write("grad.yml", SLERP)
p = t.ls("merge", cfg, "--dry-run")
t.expect_rc(p, 0, "gradient dry-run")
setting = [{"filter": "self_attn", "value": [0, 0.5, 0.3, 0.7, 1]},
           {"filter": "mlp", "value": [1, 0.5, 0.7, 0.3, 0]}, {"value": 0.25}]
seen = 0
for line in p.stdout.splitlines():
    f = line.split("\t")
    if len(f) < 5 or not f[4].startswith("t "):
        continue
    m = re.search(r"layers\.(\d+)\.", f[0])
    pos = int(m.group(1)) / 5 if m else 0.0
    want = mk_evaluate(setting, f[0], pos)
    t.check(float(f[4][2:]) == want, "gradient: %s has t %s, mergekit gives %r" % (f[0], f[4][2:], want))
    if m:
        src = re.search(r"lang1:\S*layers\.(\d+)\.", f[2])
        t.check(src is not None and int(src.group(1)) == int(m.group(1)) + 2,
                "slice offsets: %s reads %s" % (f[0], f[2]))
    seen += 1
t.check(seen == 6 * 9 + 3, "gradient: %d tensors with a t value, expected 57" % seen)
t.check(p.stdout.startswith("# the native JSON config equivalent to"), "dry-run starts with the native JSON")
out = os.path.join(t.work, "grad-out")
t.expect_rc(t.ls("merge", cfg, "-o", out, "--quiet"), 0, "gradient merge")
t.oracle(cfg, out, "gradient slerp")

# per-model filters and gradients in a task-vector merge, folded over three levels
DARE = """slices:
  - sources:
      - model: FX/base
        layer_range: [0, 8]
      - model: FX/math2
        layer_range: [0, 8]
        parameters:
          density:
            - filter: mlp
              value: [0.2, 0.9]
      - model: FX/lang2
        layer_range: [0, 8]
    parameters:
      density: 0.6
      lambda: [1.2, 0.8]
merge_method: dare_linear
base_model: FX/base
parameters:
  weight: 0.5
"""
cfg = write("fold.yml", DARE)
out = os.path.join(t.work, "fold-out")
t.expect_rc(t.ls("merge", cfg, "-o", out, "--quiet"), 0, "folded parameters merge")
t.oracle(cfg, out, "folded parameters dare_linear")
p = t.ls("merge", cfg, "--dry-run")
line = [l for l in p.stdout.splitlines() if l.startswith("model.layers.3.mlp.up_proj.weight\t")]
dens = re.search(r"\tdensity ([^\t]+)", line[0]).group(1).split(",") if line else []
t.check([float(x) for x in dens] == [mk_evaluate([0.2, 0.9], "", 3 / 7), 0.6],
        "folded density of layer 3's MLP: %r" % line)

# a restacked frankenmerge with per-layer lists, loadable as transformers would need
src = os.path.join(t.work, "models")
for m in ("math1", "lang1"):
    shutil.copytree(os.path.join(fx, m), os.path.join(src, m))
types = ["sliding_attention", "full_attention"] * 4
cj = os.path.join(src, "math1", "config.json")
with open(cj) as f:
    c = json.load(f)
c["layer_types"] = types
c["no_rope_layers"] = [1, 0, 1, 0, 1, 1, 0, 0]
with open(cj, "w") as f:
    json.dump(c, f, indent=2)
cfg = write("models/franken.yml", """slices:
  - sources:
      - model: math1
        layer_range: [0, 6]
  - sources:
      - model: lang1
        layer_range: [3, 8]
  - sources:
      - model: math1
        layer_range: [6, 8]
merge_method: passthrough
""")
out = os.path.join(t.work, "franken-out")
t.expect_rc(t.ls("merge", cfg, "-o", out, "--quiet"), 0, "frankenmerge")
t.oracle(cfg, out, "frankenmerge")
t.verify(out, "frankenmerge")
with open(os.path.join(out, "config.json")) as f:
    oc = json.load(f)
srcmap = list(range(0, 6)) + list(range(3, 8)) + [6, 7]
L = len(srcmap)
t.check(oc["num_hidden_layers"] == L, "num_hidden_layers %r, expected %d" % (oc.get("num_hidden_layers"), L))
t.check(oc["layer_types"] == [types[i] for i in srcmap], "layer_types restacked: %r" % oc.get("layer_types"))
t.check(oc["no_rope_layers"] == [c["no_rope_layers"][i] for i in srcmap], "no_rope_layers restacked")
t.check({k: v for k, v in oc.items() if k not in ("num_hidden_layers", "layer_types", "no_rope_layers")} ==
        {k: v for k, v in c.items() if k not in ("num_hidden_layers", "layer_types", "no_rope_layers")},
        "every other config.json field kept")
ck = Checkpoint(out)
ref = Checkpoint(os.path.join(fx, "math1"))
per_layer = sorted(re.sub(r"layers\.0\.", "layers.N.", n) for n in ref.tensors if ".layers.0." in n)
for i in range(L):
    got = sorted(re.sub(r"layers\.%d\." % i, "layers.N.", n) for n in ck.tensors if ".layers.%d." % i in n)
    t.check(got == per_layer, "layer %d of the frankenmerge has tensors %r" % (i, got[:3]))
t.check(not any(".layers.%d." % L in n for n in ck.tensors), "no layer beyond num_hidden_layers")
t.finish()
