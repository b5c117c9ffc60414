#!/usr/bin/python3
"""make_variants.py FIXTURES OUTDIR

Derives checkpoint variants from the transformers-written fixtures, for the
architectures the engine must handle beyond plain Llama:
  qwen2-tied/{base,math1,lang1}: tied embeddings (no lm_head.weight) and
      Qwen2-style q/k/v biases (1-D BF16), experts' biases = base + noise;
  f32/{...}, f16/{...}: the same Llama tensors stored as F32 (exact) and F16.
Each model is one model.safetensors plus the fixture's config.json.
"""
import json, os, shutil, struct, sys
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "ref"))
from lsw_ref import load_checkpoint  # noqa: E402  (the oracle's validating reader)


def read_folder(d):
    return {k: (dt, list(shape), raw) for k, (dt, shape, raw) in load_checkpoint(d).items()}

def write_file(path, tensors):
    hdr, data, off = {"__metadata__": {"format": "pt"}}, [], 0
    for k in sorted(tensors):
        dt, shape, raw = tensors[k]
        hdr[k] = {"dtype": dt, "shape": shape, "data_offsets": [off, off + len(raw)]}
        data.append(raw)
        off += len(raw)
    h = json.dumps(hdr, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(data))

def bf16_to_f32(raw):
    return (np.frombuffer(raw, np.uint16).astype(np.uint32) << 16).view(np.float32)

def f32_to_bf16(x):
    u = x.astype(np.float32).view(np.uint32)
    r = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
    return r.tobytes()

def main():
    fx, out = sys.argv[1], sys.argv[2]
    for i, m in enumerate(["base", "math1", "lang1"]):
        t = read_folder(os.path.join(fx, m))
        # qwen2-tied
        q = dict(t)
        del q["lm_head.weight"]
        rng = np.random.default_rng(100)
        for name in list(q):
            if name.endswith(("q_proj.weight", "k_proj.weight", "v_proj.weight")):
                rows = q[name][1][0]
                b = rng.normal(0, 0.02, rows).astype(np.float32)
                if i:
                    b += np.random.default_rng(1000 * i + len(name)).normal(0, 0.002 * i, rows).astype(np.float32)
                q[name[:-len("weight")] + "bias"] = ("BF16", [rows], f32_to_bf16(b))
        for kind, tensors in (("qwen2-tied", q),
                              ("f32", {k: ("F32", s, bf16_to_f32(r).tobytes()) for k, (d, s, r) in t.items()}),
                              ("f16", {k: ("F16", s, bf16_to_f32(r).astype(np.float16).tobytes()) for k, (d, s, r) in t.items()})):
            d = os.path.join(out, kind, m)
            os.makedirs(d, exist_ok=True)
            write_file(os.path.join(d, "model.safetensors"), tensors)
            shutil.copy(os.path.join(fx, m, "config.json"), d)

main()
