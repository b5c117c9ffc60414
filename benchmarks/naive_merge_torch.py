#!/usr/bin/python3
"""naive_merge_torch.py — the torch state-dict peer of the benchmarks (Debian `python3-torch`).

  naive_merge_torch.py layer_swap|ties|slerp OUT.safetensors KEY=VALUE...   (see naive_common.py)

The way a torch user merges a state dict: every tensor of every model loaded into torch
tensors (a private copy each), the merge computed in float32 tensor by tensor while the
whole result is held, then one safetensors file written and fsynced. Debian 12 has no
python3-safetensors, so the files are parsed with the standard library and
torch.frombuffer, and written from a torch byte buffer: torch alone, no numpy.
"""
import math
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import naive_common as nc  # noqa: E402

TT = {"BF16": torch.bfloat16, "F16": torch.float16, "F32": torch.float32}
torch.set_num_threads(1)  # the peer runs beside layerswap's one rank


def load(path):
    """The state dict: name -> (dtype string, tensor holding a private copy)."""
    sd = {}
    for fn in nc.shard_files(path):
        with open(fn, "rb") as f:
            hdr, start = nc.read_header(f)
            f.seek(0)
            raw = bytearray(f.read())
        for name, t in hdr.items():
            b, e = t["data_offsets"]
            n = (e - b) // nc.ELEM[t["dtype"]]
            x = torch.frombuffer(raw, dtype=TT[t["dtype"]], count=n, offset=start + b) if n else torch.empty(0, dtype=TT[t["dtype"]])
            sd[name] = (t["dtype"], x.clone().reshape(t["shape"]))
        del raw
    return sd


def f32w(w):
    """w rounded to float32 once, as a Python float (exact in float32)."""
    return torch.tensor(w, dtype=torch.float64).to(torch.float32).item()


def wsum(ws, xs):
    acc = xs[0] * f32w(ws[0])
    for w, x in zip(ws[1:], xs[1:]):
        acc = acc + x * f32w(w)
    return acc


def ties_trim(d, density):
    n = d.numel()
    k = int(math.floor(density * n))
    if k >= n:
        return d
    mag = d.abs()
    keep = torch.zeros(n, dtype=torch.bool)
    if k > 0:
        t = torch.kthvalue(mag, n - k + 1).values  # the k-th largest |delta|
        keep = mag > t
        need = k - int(keep.sum())
        keep[torch.nonzero(mag == t).flatten()[:need]] = True
    return torch.where(keep, d, torch.zeros((), dtype=torch.float32))


def ties(base, xs, kv):
    m = len(xs)
    ws = nc.floats(kv.get("weights"), m, 1.0)
    dens = nc.floats(kv.get("density"), m, 0.5)
    lam = f32w(float(kv.get("lambda", 1.0)))
    b32 = base.float().flatten()
    ds = [ties_trim(x.float().flatten() - b32, d) for x, d in zip(xs, dens)]
    plus = wsum(ws, ds) >= 0
    acc = torch.zeros_like(b32)
    den = torch.zeros_like(b32)
    for w, d in zip(ws, ds):
        agree = torch.where(plus, d > 0, d < 0)
        acc = torch.where(agree, acc + d * f32w(w), acc)
        den = torch.where(agree, den + f32w(w), den)
    if kv.get("normalize", "1") not in ("0", "false"):
        acc = acc / torch.where(den.double().abs() < 1e-8, torch.ones_like(den), den)
    return (b32 + acc * lam).to(base.dtype).reshape(base.shape)


def slerp_weights(a, b, t):
    a64, b64 = a.double(), b.double()
    na, nb = float(a64.norm()), float(b64.norm())
    if na > 1e-8:
        a64 = a64 / na
    if nb > 1e-8:
        b64 = b64 / nb
    dot = float(torch.dot(a64, b64))
    return nc.slerp_coeffs(dot, t)


def main():
    method, out_path, kv = nc.parse_args(sys.argv, "naive_merge_torch.py")
    out = {}
    if method == "layer_swap":
        task, lang = load(kv["task"]), load(kv["lang"])
        L = nc.num_layers(task)
        for name in sorted(task):
            dt, ta = task[name]
            act = nc.swap_action(name, L, kv)
            if act == "task":
                out[name] = (dt, ta)
            elif act == "language":
                out[name] = (dt, lang[name][1])
            else:
                out[name] = (dt, wsum([0.5, 0.5], [ta.float(), lang[name][1].float()]).to(ta.dtype))
    elif method == "ties":
        base = load(kv["base"])
        xs = [load(p) for p in kv["models"].split(",")]
        for name in sorted(base):
            dt, b = base[name]
            out[name] = (dt, ties(b, [x[name][1] for x in xs], kv))
    else:
        a, b = load(kv["a"]), load(kv["b"])
        t = float(kv.get("t", 0.5))
        for name in sorted(a):
            dt, xa = a[name]
            fa, fb = xa.float().flatten(), b[name][1].float().flatten()
            out[name] = (dt, wsum(slerp_weights(fa, fb, t), [fa, fb]).to(xa.dtype).reshape(xa.shape))
    items = [(n, dt, tuple(x.shape), x.numel() * x.element_size()) for n, (dt, x) in out.items()]
    hb = nc.header_bytes(items)
    buf = bytearray(len(hb) + sum(it[3] for it in items))
    buf[:len(hb)] = hb
    dst = torch.frombuffer(buf, dtype=torch.uint8)
    off = len(hb)
    for _, (_, x) in out.items():
        n = x.numel() * x.element_size()
        if n:
            dst[off:off + n].copy_(x.contiguous().flatten().view(torch.uint8))
        off += n
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    f = open(out_path, "wb")
    f.write(buf)
    nc.fsync_close(f)
    print("naive_merge_torch.py: %s, %d tensors -> %s" % (method, len(out), out_path), file=sys.stderr)


if __name__ == "__main__":
    main()
