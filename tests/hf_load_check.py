#!/usr/bin/python3
"""hf_load_check.py LAYERSWAP DATA WORK — outputs load in Hugging Face transformers (docs/output.md).

Needs python3 with torch and transformers (the lent GPU machine has them; Debian 12
does not): exits 77 (skipped) when they are missing.  DATA is tests/data.

  1. For each fixture (base, math1, lang1): a `rules` merge that takes every tensor
     from it.  `from_pretrained` of the output must report no missing, unexpected or
     mismatched keys, and its logits on logits.json's input_ids must equal those of
     the fixture folder itself loaded the same way, exactly (same tensors, same
     config); the first 8 logits are also compared with logits.json (written by
     transformers 5.17 on another machine) within 1e-3, as a sanity check.
  2. configs/layer-swap-paper.json and configs/ties-four-experts.json: the merged
     folders load with no key problems and give finite logits.
  3. The layer swap written as float32 ("dtype": "float32"): it loads, its
     config says float32 and every parameter is float32.
"""
import json
import math
import os
import shutil
import subprocess
import sys

try:
    import torch
    import transformers
    from transformers import AutoModelForCausalLM
except Exception as e:  # noqa: BLE001 - any import problem means: cannot run here
    print("hf_load_check: skipped (%s)" % e)
    sys.exit(77)

lsw, data, work = sys.argv[1:4]
fx = os.path.join(data, "llama-bf16-sharded")
configs = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "configs")
shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)
ref = json.load(open(os.path.join(fx, "logits.json")))
ids = torch.tensor([ref["input_ids"]])
failures = []


def check(cond, msg):
    print(("ok   " if cond else "FAIL ") + msg)
    if not cond:
        failures.append(msg)


def merge(cfg, out):
    p = os.path.join(work, os.path.basename(out) + ".json")
    cfg = dict(cfg)
    cfg["output"] = dict(cfg.get("output", {}), path=out)
    json.dump(cfg, open(p, "w"))
    r = subprocess.run([lsw, "merge", p, "--quiet"], stderr=subprocess.PIPE, text=True)
    check(r.returncode == 0, "merge %s: exit %d %s" % (os.path.basename(out), r.returncode, r.stderr.strip()))
    return r.returncode == 0


def load(folder, what):
    m, info = AutoModelForCausalLM.from_pretrained(folder, output_loading_info=True)
    bad = {k: v for k, v in info.items() if v and k in ("missing_keys", "unexpected_keys", "mismatched_keys")}
    check(not bad, "%s loads with every key in place %s" % (what, bad if bad else ""))
    m.eval()
    return m


def logits(m):
    with torch.no_grad():
        return m(ids).logits[0, -1].float()


print("transformers %s, torch %s" % (transformers.__version__, torch.__version__))
for name in ("base", "math1", "lang1"):
    out = os.path.join(work, "take-" + name)
    src = os.path.abspath(os.path.join(fx, name))
    if not merge({"models": {"m": src}, "method": "rules", "rules": [{"action": "take", "model": "m"}]}, out):
        continue
    got = logits(load(out, "take-" + name))
    want = logits(load(src, "fixture " + name))
    check(torch.equal(got, want), "take-%s: logits equal the fixture's (max |diff| %.3g)"
          % (name, float((got - want).abs().max())))
    first8 = ref["last_logits_first8_fp32"][name]
    d = max(abs(float(a) - b) for a, b in zip(got[:8], first8))
    check(d <= 1e-3, "take-%s: first 8 logits within 1e-3 of logits.json (max |diff| %.3g)" % (name, d))

def example(cfgname):
    """configs/CFGNAME with its model paths made absolute (they are relative to configs/)."""
    cfg = json.load(open(os.path.join(configs, cfgname)))
    here = os.path.abspath(configs)
    cfg["models"] = {k: os.path.normpath(os.path.join(here, v)) for k, v in cfg["models"].items()}
    return cfg


for cfgname in ("layer-swap-paper.json", "ties-four-experts.json"):
    cfg = example(cfgname)
    out = os.path.join(work, cfgname[:-5])
    if merge(cfg, out):
        lg = logits(load(out, cfgname))
        check(all(math.isfinite(float(v)) for v in lg), "%s: finite logits" % cfgname)

cfg = example("layer-swap-paper.json")
cfg["output"] = {"dtype": "float32"}
out = os.path.join(work, "layer-swap-f32")
if merge(cfg, out):
    c = json.load(open(os.path.join(out, "config.json")))
    check(c.get("torch_dtype", c.get("dtype")) == "float32", "f32 output: config dtype %r"
          % c.get("torch_dtype", c.get("dtype")))
    try:   # transformers 5 names it dtype; 4.x torch_dtype
        m = AutoModelForCausalLM.from_pretrained(out, dtype="auto")
    except TypeError:
        m = AutoModelForCausalLM.from_pretrained(out, torch_dtype="auto")
    dts = {p.dtype for p in m.parameters()}
    check(dts == {torch.float32}, "f32 output: parameters load as %s" % sorted(str(d) for d in dts))

print("hf_load_check: %d failure(s)" % len(failures))
sys.exit(1 if failures else 0)
