"""naive_common.py — what the two naive peers (naive_merge.py: numpy, naive_merge_torch.py:
torch) share: their command line, the safetensors layout, and which rule each tensor follows.
Standard library only.

Command line of both peers:

  PEER METHOD OUT.safetensors KEY=VALUE...

  layer_swap  task=DIR lang=DIR bottom=B top=T [lower=0] [upper=0] [non_layer=average]
              layer i < B or i >= L - T: the language expert's tensor; else i < B + lower or
              i >= L - T - upper: 0.5 * task + 0.5 * lang; else the task expert's;
              tensors without a layer: non_layer (average, task or language)
  ties        base=DIR models=DIR,DIR,... [weights=1,1,...] [density=0.5,...] [lambda=1]
              [normalize=1]: per tensor, delta = x - base; keep floor(density * numel) largest
              |delta| (ties to the lower index); sign elected on the weighted sum (>= 0: +);
              sum of the agreeing weighted deltas / sum of their weights (normalize);
              base + lambda * that
  slerp       a=DIR b=DIR [t=0.5]: per tensor, the angle between a and b over the whole
              tensor (f64); weights sin((1-t)θ)/sin θ and sin(tθ)/sin θ, or 1-t and t where
              |cos θ| > 0.9995 (mergekit's rule), rounded to f32 once; s0 * a + s1 * b

Every averaged element follows the project's numerics: inputs to f32, each product
rounded to f32, summed left to right, one rounding back to the input dtype (bf16
round-to-nearest-even). Only BF16/F16/F32 tensors are supported; it is a peer for
timing and memory, not a reference implementation.
"""
import json
import math
import os
import re
import struct
import sys

LAYER_RE = re.compile(r"layers\.(\d+)\.")
ELEM = {"BF16": 2, "F16": 2, "F32": 4}


def parse_args(argv, prog):
    if len(argv) < 3 or argv[1] not in ("layer_swap", "ties", "slerp"):
        sys.exit("Usage: %s layer_swap|ties|slerp OUT.safetensors KEY=VALUE...\n%s" % (prog, __doc__))
    kv = {}
    for a in argv[3:]:
        k, sep, v = a.partition("=")
        if not sep:
            sys.exit("%s: argument %r is not KEY=VALUE" % (prog, a))
        kv[k] = v
    return argv[1], argv[2], kv


def floats(s, n, default):
    if s is None:
        return [default] * n
    v = [float(x) for x in s.split(",")]
    if len(v) != n:
        sys.exit("expected %d comma-separated values, got %r" % (n, s))
    return v


def shard_files(path):
    """The safetensors files of one checkpoint (a folder with one file or an index)."""
    if os.path.isfile(path):
        return [path]
    idx = os.path.join(path, "model.safetensors.index.json")
    if os.path.exists(idx):
        with open(idx) as f:
            wm = json.load(f)["weight_map"]
        return [os.path.join(path, n) for n in sorted(set(wm.values()))]
    return [os.path.join(path, "model.safetensors")]


def read_header(f):
    """-> (header dict without __metadata__, offset of the data area)."""
    (n,) = struct.unpack("<Q", f.read(8))
    hdr = json.loads(f.read(n))
    hdr.pop("__metadata__", None)
    for name, t in hdr.items():
        if t["dtype"] not in ELEM:
            sys.exit("%s: dtype %s not supported by the naive peers" % (name, t["dtype"]))
    return hdr, 8 + n


def header_bytes(tensors):
    """tensors: list of (name, dtype, shape, nbytes) in file order -> padded header bytes."""
    hdr = {"__metadata__": {"format": "pt"}}
    off = 0
    for name, dt, shape, nb in tensors:
        hdr[name] = {"dtype": dt, "shape": list(shape), "data_offsets": [off, off + nb]}
        off += nb
    hb = json.dumps(hdr, separators=(",", ":")).encode()
    hb += b" " * (-len(hb) % 8)
    return struct.pack("<Q", len(hb)) + hb


def num_layers(names):
    ls = [int(m.group(1)) for m in (LAYER_RE.search(n) for n in names) if m]
    return 1 + max(ls) if ls else 0


def swap_action(name, L, kv):
    """layer_swap: 'task', 'language' or 'average' for one tensor."""
    bottom, top = int(kv["bottom"]), int(kv["top"])
    lower, upper = int(kv.get("lower", 0)), int(kv.get("upper", 0))
    m = LAYER_RE.search(name)
    if not m:
        return kv.get("non_layer", "average")
    i = int(m.group(1))
    if i < bottom or i >= L - top:
        return "language"
    if i < bottom + lower or i >= L - top - upper:
        return "average"
    return "task"


def fsync_close(f):
    f.flush()
    os.fsync(f.fileno())
    f.close()


def slerp_coeffs(dot, t):
    """slerp's two weights from the cosine of the normalised tensors (linear where
    |cos| > 0.9995, as mergekit and layerswap do)."""
    if abs(dot) > 0.9995:
        return 1.0 - t, t
    th = math.acos(dot)
    s = math.sin(th)
    return math.sin((1.0 - t) * th) / s, math.sin(t * th) / s
