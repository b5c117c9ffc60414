#!/usr/bin/python3
"""One fixture merge, checked bit for bit against the numpy oracle (tests/ref/lsw_ref.py).

    test_merge.py --bin B --work W --config tests/configs/X.json
                  [--rules-normalize] [--dtype input|bfloat16|float16|float32]
                  [--layout single|sharded|by-layer] [--min-shards N]

Runs `layerswap merge CONFIG -o out` from W (so -o is relative to the current folder, not
the config's), then checks:
  * exit 0, and the oracle's `merge CONFIG --compare out --check-layout` (every tensor
    identical; header padded to 8, "format": "pt", manifest present);
  * `layerswap verify out` exits 0; the manifest lists exactly the files in the folder;
  * config.json / generation_config.json / tokenizer files come from the task expert (the
    first listed model for linear, the first of "models" for rules): byte-identical when
    the dtype is kept, and config.json with "dtype" (and "torch_dtype" if present) set to
    the output dtype when it converts; every tensor has that dtype;
  * the layout: one model.safetensors, or N >= --min-shards numbered shards plus an index
    mapping each tensor to the shard that holds it, or one shard per layer + one for the
    non-layer tensors (shard_by layer).
"""
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lswtest as L  # noqa: E402


def extra(ap):
    ap.add_argument("--config", required=True)
    ap.add_argument("--rules-normalize", action="store_true")
    ap.add_argument("--dtype", default="input")
    ap.add_argument("--layout", default="single", choices=["single", "sharded", "by-layer"])
    ap.add_argument("--min-shards", type=int, default=2)


t = L.Test(__doc__, extra)
a = t.args
config = os.path.abspath(a.config)
cfg = L.load_json(config)
cdir = os.path.dirname(config)
out = os.path.join(t.work, "out")

p = t.ls("merge", config, "-o", "out")
if not t.expect_rc(p, 0, "merge " + os.path.basename(config)):
    t.finish()
t.check(os.path.isdir(out), "merge -o out (relative) did not create %s" % out)

# 1. bit-identical to the oracle
t.oracle(config, out, "oracle", rules_normalize=a.rules_normalize)

# 2. verify + manifest
t.verify(out, "merged output")
man_path = os.path.join(out, "layerswap-manifest.json")
if t.check(os.path.isfile(man_path), "no layerswap-manifest.json"):
    man = L.load_json(man_path)
    listed = sorted(f["name"] for f in man.get("files", []))
    present = sorted(f for f in L.all_files(out) if f != "layerswap-manifest.json")
    t.check(listed == present, "manifest lists %r but the folder holds %r" % (listed, present))
    for f in man.get("files", []):
        fp = os.path.join(out, f["name"])
        if os.path.isfile(fp):
            t.check(os.path.getsize(fp) == f.get("bytes"),
                    "manifest size of %s is %r, file has %d" % (f["name"], f.get("bytes"),
                                                               os.path.getsize(fp)))

# 3. side files from the task expert / first model
method = cfg.get("method")
if method == "layer_swap":
    first = cfg["layer_swap"]["task_expert"]
elif method == "linear":
    first = cfg["linear"]["models"][0]
else:
    first = list(cfg["models"])[0]
src = os.path.normpath(os.path.join(cdir, cfg["models"][first]))
print("side files expected from %s (%s)" % (first, src))
for fn in sorted(os.listdir(src)):
    if fn.endswith(".safetensors") or fn == "model.safetensors.index.json":
        continue
    sp, op = os.path.join(src, fn), os.path.join(out, fn)
    if not t.check(os.path.isfile(op), "%s of the first model was not copied to the output" % fn):
        continue
    if fn == "config.json" and a.dtype != "input":
        sc, oc = L.load_json(sp), L.load_json(op)
        t.check(oc.get("dtype") == a.dtype,
                "config.json \"dtype\" is %r, expected the output dtype %r" % (oc.get("dtype"), a.dtype))
        if "torch_dtype" in oc or "torch_dtype" in sc:
            t.check(oc.get("torch_dtype") == a.dtype,
                    "config.json \"torch_dtype\" is %r, expected %r" % (oc.get("torch_dtype"), a.dtype))
        rest_s = {k: v for k, v in sc.items() if k not in ("dtype", "torch_dtype")}
        rest_o = {k: v for k, v in oc.items() if k not in ("dtype", "torch_dtype")}
        t.check(rest_s == rest_o, "config.json differs from the first model's in more than dtype")
    elif fn.endswith(".json") and a.dtype != "input":
        # other JSON side files: equal apart from any dtype field
        sj, oj = L.load_json(sp), L.load_json(op)
        for k in ("dtype", "torch_dtype"):
            if k in sj:
                t.check(oj.get(k) == a.dtype, "%s \"%s\" is %r, expected %r" % (fn, k, oj.get(k), a.dtype))
                sj.pop(k), oj.pop(k, None)
        t.check(sj == oj, "%s differs from the first model's (%s)" % (fn, first))
    else:
        t.check(L.same_bytes(sp, op), "%s differs from the first model's (%s)" % (fn, first))

# 4. tensors and layout
ts = L.checkpoint_tensors(out)
t.check(len(ts) == 75, "output has %d tensors, expected 75" % len(ts))
dmap = {"float32": "F32", "float16": "F16", "bfloat16": "BF16", "input": "BF16"}
bad_dt = sorted({v[0] for v in ts.values()} - {dmap[a.dtype]})
t.check(not bad_dt, "output tensors with dtype %r, expected only %s" % (bad_dt, dmap[a.dtype]))

files = L.visible_files(out)
shards = sorted(f for f in files if f.endswith(".safetensors"))
idx_path = os.path.join(out, "model.safetensors.index.json")
if a.layout == "single":
    t.check(shards == ["model.safetensors"], "expected one model.safetensors, got %r" % shards)
    t.check(not os.path.exists(idx_path), "single-file output should have no index")
else:
    n = len(shards)
    want = ["model-%05d-of-%05d.safetensors" % (i, n) for i in range(1, n + 1)]
    t.check(shards == want, "shard names %r, expected %r" % (shards, want))
    if a.layout == "sharded":
        t.check(n >= a.min_shards, "expected at least %d shards, got %d" % (a.min_shards, n))
        limit = cfg["output"].get("shard_size")
        m = re.fullmatch(r"(\d+)KB", str(limit))
        if m:
            lim = int(m.group(1)) * 1000
            for s in shards:
                hdr, hn, size = L.st_header(os.path.join(out, s))
                data = size - 8 - hn
                t.check(data <= lim or len(hdr) <= 2,
                        "%s holds %d data bytes in %d tensors, more than shard_size %s"
                        % (s, data, len(hdr) - 1, limit))
    if t.check(os.path.isfile(idx_path), "sharded output has no model.safetensors.index.json"):
        wm = L.load_json(idx_path).get("weight_map", {})
        t.check(set(wm) == set(ts), "index weight_map names %d tensors, the shards %d"
                % (len(wm), len(ts)))
        wrong = [k for k in ts if wm.get(k) != ts[k][2]]
        t.check(not wrong, "index maps %d tensors to the wrong shard, e.g. %r" % (len(wrong), wrong[:3]))
    if a.layout == "by-layer":
        t.check(n == 9, "shard_by layer on 8 layers: expected 9 shards, got %d" % n)
        groups = {}
        for k, v in ts.items():
            groups.setdefault(v[2], set()).add(L.layer_of(k))
        for s, lays in sorted(groups.items()):
            t.check(len(lays) == 1, "shard %s mixes layers %r" % (s, sorted(lays, key=str)))
        t.check(len(groups) == 9, "expected 9 distinct shards holding tensors, got %d" % len(groups))

t.finish()
