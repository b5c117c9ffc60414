#!/usr/bin/python3
"""naive_merge.py — the numpy state-dict peer of the benchmarks (Debian's /usr/bin/python3).

  naive_merge.py layer_swap|ties|slerp OUT.safetensors KEY=VALUE...   (see naive_common.py)

What a straightforward numpy script does, and what mergekit-style tools do in spirit:
read every tensor of every model it needs fully into memory (a private copy per tensor,
no mmap, no streaming), compute the merge tensor by tensor while holding the whole
result, then write one safetensors file and fsync it.
"""
import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import naive_common as nc  # noqa: E402

NP = {"BF16": np.uint16, "F16": np.float16, "F32": np.float32}


def load(path):
    """The state dict: name -> (dtype, shape, array holding a private copy)."""
    sd = {}
    for fn in nc.shard_files(path):
        with open(fn, "rb") as f:
            hdr, start = nc.read_header(f)
            data = f.read()
        for name, t in hdr.items():
            b, e = t["data_offsets"]
            a = np.frombuffer(data, dtype=NP[t["dtype"]], count=(e - b) // nc.ELEM[t["dtype"]], offset=b)
            sd[name] = (t["dtype"], t["shape"], a.copy())
        del data
    return sd


def to_f32(dt, a):
    if dt == "BF16":
        return (a.astype(np.uint32) << 16).view(np.float32)
    return a.astype(np.float32)


def from_f32(dt, x):
    if dt == "BF16":
        u = x.view(np.uint32)
        nan = np.isnan(x)
        u = (u + (np.uint32(0x7FFF) + ((u >> 16) & np.uint32(1)))) >> 16  # round to nearest even
        return np.where(nan, np.uint16(0x7FC0), u.astype(np.uint16))
    return x.astype(NP[dt])


def wsum(ws, xs):
    """sum_i f32(w_i * x_i), left to right, each product rounded to f32."""
    acc = np.float32(ws[0]) * xs[0]
    for w, x in zip(ws[1:], xs[1:]):
        acc = acc + np.float32(w) * x
    return acc


def ties_trim(d, density):
    n = d.size
    k = int(math.floor(density * n))
    if k >= n:
        return d
    mag = np.abs(d)
    keep = np.zeros(n, dtype=bool)
    if k > 0:
        t = np.partition(mag, n - k)[n - k]  # the k-th largest |delta|
        keep = mag > t
        need = k - int(np.count_nonzero(keep))
        keep[np.flatnonzero(mag == t)[:need]] = True
    return np.where(keep, d, np.float32(0.0))


def ties(name, base, xs, kv):
    dt, shape, b = base
    m = len(xs)
    ws = nc.floats(kv.get("weights"), m, 1.0)
    dens = nc.floats(kv.get("density"), m, 0.5)
    lam = np.float32(float(kv.get("lambda", 1.0)))
    b32 = to_f32(dt, b).ravel()
    ds = [ties_trim(to_f32(dt, x[2]).ravel() - b32, d) for x, d in zip(xs, dens)]
    plus = wsum(ws, ds) >= np.float32(0.0)
    acc = np.zeros(b32.size, dtype=np.float32)
    den = np.zeros(b32.size, dtype=np.float32)
    for w, d in zip(ws, ds):
        agree = np.where(plus, d > 0, d < 0)
        acc = np.where(agree, acc + np.float32(w) * d, acc)
        den = np.where(agree, den + np.float32(w), den)
    if kv.get("normalize", "1") not in ("0", "false"):
        acc = acc / np.where(np.abs(den.astype(np.float64)) < 1e-8, np.float32(1.0), den)
    return from_f32(dt, b32 + lam * acc)


def slerp_weights(a, b, t):
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    na, nb = np.linalg.norm(a64), np.linalg.norm(b64)
    if na > 1e-8:
        a64 = a64 / na
    if nb > 1e-8:
        b64 = b64 / nb
    dot = float(np.dot(a64, b64))
    return nc.slerp_coeffs(dot, t)


def main():
    method, out_path, kv = nc.parse_args(sys.argv, "naive_merge.py")
    out = {}
    if method == "layer_swap":
        task, lang = load(kv["task"]), load(kv["lang"])
        L = nc.num_layers(task)
        for name in sorted(task):
            dt, shape, ta = task[name]
            act = nc.swap_action(name, L, kv)
            if act == "task":
                out[name] = (dt, shape, ta)
            elif act == "language":
                out[name] = (dt, shape, lang[name][2])
            else:
                out[name] = (dt, shape, from_f32(dt, wsum([0.5, 0.5], [to_f32(dt, ta), to_f32(dt, lang[name][2])])))
    elif method == "ties":
        base = load(kv["base"])
        xs = [load(p) for p in kv["models"].split(",")]
        for name in sorted(base):
            out[name] = (base[name][0], base[name][1], ties(name, base[name], [x[name] for x in xs], kv))
    else:
        a, b = load(kv["a"]), load(kv["b"])
        t = float(kv.get("t", 0.5))
        for name in sorted(a):
            dt, shape, xa = a[name]
            fa, fb = to_f32(dt, xa).ravel(), to_f32(dt, b[name][2]).ravel()
            out[name] = (dt, shape, from_f32(dt, wsum(slerp_weights(fa, fb, t), [fa, fb])))
    items = [(n, dt, shape, a.nbytes) for n, (dt, shape, a) in out.items()]
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    f = open(out_path, "wb")
    f.write(nc.header_bytes(items))
    for _, (_, _, a) in out.items():
        f.write(np.ascontiguousarray(a).tobytes())
    nc.fsync_close(f)
    print("naive_merge.py: %s, %d tensors -> %s" % (method, len(out), out_path), file=sys.stderr)


if __name__ == "__main__":
    main()
