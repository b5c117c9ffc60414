#!/usr/bin/python3
"""Deliberately naive in-memory layer-swap merge: the baseline of bench_merge.sh.

Usage: /usr/bin/python3 naive_merge.py CONFIG.json OUT.safetensors

It does what a straightforward numpy script does: read every tensor of both
experts fully into numpy arrays (a minimal safetensors reader, no mmap, no
streaming), compute the layer swap of the config (bf16/f16 -> f32 for the
averaged tensors, weighted sum in f32, round back to the input dtype), hold the
whole result in memory, write one safetensors file and fsync it.

Only what the benchmark needs is supported: method "layer_swap" with uniform
(or "task"/"language") rules, models given as a folder (model.safetensors or
an index + shards) or a single .safetensors file. It is a baseline, not a
reference implementation: NaN handling and f16 overflow are not treated with
the care docs/numerics.md asks for.

Needs numpy: run it with Debian's /usr/bin/python3.
"""
import json
import os
import re
import struct
import sys

import numpy as np

DTYPES = {
    "BF16": np.uint16,  # raw bits; converted by hand
    "F16": np.float16,
    "F32": np.float32,
}


def shard_files(path):
    """The safetensors files of one checkpoint."""
    if os.path.isfile(path):
        return [path]
    idx = os.path.join(path, "model.safetensors.index.json")
    if os.path.exists(idx):
        with open(idx) as f:
            wm = json.load(f)["weight_map"]
        return [os.path.join(path, n) for n in sorted(set(wm.values()))]
    return [os.path.join(path, "model.safetensors")]


def load_checkpoint(path):
    """name -> (dtype string, shape, numpy array holding a private copy)."""
    tensors = {}
    for fn in shard_files(path):
        with open(fn, "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(n))
            data = f.read()  # the whole data area, in memory
        header.pop("__metadata__", None)
        for name, info in header.items():
            dt = info["dtype"]
            b, e = info["data_offsets"]
            arr = np.frombuffer(data, dtype=DTYPES[dt], count=(e - b) // np.dtype(DTYPES[dt]).itemsize,
                                offset=b).copy().reshape(info["shape"])
            tensors[name] = (dt, info["shape"], arr)
        del data
    return tensors


def to_f32(dt, a):
    if dt == "BF16":
        return (a.astype(np.uint32) << 16).view(np.float32)
    return a.astype(np.float32)


def from_f32(dt, x):
    if dt == "BF16":
        u = x.view(np.uint32)
        # round to nearest even on the upper 16 bits
        u = u + (np.uint32(0x7FFF) + ((u >> 16) & np.uint32(1)))
        return (u >> 16).astype(np.uint16)
    return x.astype(DTYPES[dt])


def main():
    if len(sys.argv) != 3:
        sys.exit("Usage: naive_merge.py CONFIG.json OUT.safetensors")
    cfg_path, out_path = sys.argv[1], sys.argv[2]
    with open(cfg_path) as f:
        cfg = json.load(f)
    if cfg.get("method") != "layer_swap":
        sys.exit("naive_merge.py: only method layer_swap is supported")
    root = os.path.dirname(os.path.abspath(cfg_path))
    ls = cfg["layer_swap"]
    for k in ("transition_weights", "non_layer_weights"):
        if ls.get(k, "uniform") != "uniform":
            sys.exit("naive_merge.py: only uniform weights are supported")
    models = {k: os.path.join(root, v) for k, v in cfg["models"].items()}

    task = load_checkpoint(models[ls["task_expert"]])
    lang = load_checkpoint(models[ls["language_expert"]])

    layer_re = re.compile(r"layers\.(\d+)\.")
    L = 1 + max(int(m.group(1)) for m in (layer_re.search(n) for n in task) if m)
    bottom, top = ls["bottom"], ls["top"]
    lo_t, up_t = ls.get("lower_transition", 0), ls.get("upper_transition", 0)
    non_layer = ls.get("non_layer", "average")

    out = {}
    for name in sorted(task):
        dt, shape, ta = task[name]
        ga = lang[name][2]
        m = layer_re.search(name)
        if m:
            i = int(m.group(1))
            if i < bottom or i >= L - top:
                action = "language"
            elif i < bottom + lo_t or i >= L - top - up_t:
                action = "average"
            else:
                action = "task"
        else:
            action = non_layer
        if action == "task":
            out[name] = (dt, shape, ta.copy())
        elif action == "language":
            out[name] = (dt, shape, ga.copy())
        else:
            x = np.float32(0.5) * to_f32(dt, ta)
            x = x + np.float32(0.5) * to_f32(dt, ga)
            out[name] = (dt, shape, from_f32(dt, x))

    # one safetensors file: header, padded with spaces to a multiple of 8, then data
    hdr = {"__metadata__": {"format": "pt"}}
    off = 0
    for name, (dt, shape, a) in out.items():
        hdr[name] = {"dtype": dt, "shape": list(shape), "data_offsets": [off, off + a.nbytes]}
        off += a.nbytes
    hb = json.dumps(hdr, separators=(",", ":")).encode()
    hb += b" " * (-len(hb) % 8)
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    with open(out_path, "wb") as f:
        f.write(struct.pack("<Q", len(hb)))
        f.write(hb)
        for name, (dt, shape, a) in out.items():
            f.write(a.tobytes())
        f.flush()
        os.fsync(f.fileno())
    print(f"naive_merge: {len(out)} tensors, {off} bytes -> {out_path}", file=sys.stderr)


if __name__ == "__main__":
    main()
