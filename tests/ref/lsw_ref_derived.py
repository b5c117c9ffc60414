"""Derived models for the numpy oracle (docs/config.md, "Derived models").

Written from the documented definitions, not from the C code:

  soup          every BF16/F16/F32 tensor = round_first_dtype( w1*x1 + w2*x2 + ... )
                (f32 products, left to right, docs/numerics.md); weights uniform
                1/k, or explicit ones divided by their sum in f64 (unless
                normalize is false), each rounded to f32 once; other tensors:
                the first member's bytes.
  revert_layers every tensor of a layer lo <= i < hi of some pair: the base's bytes;
                the rest: m's.
  revert_rows   BF16/F16/F32 tensors of rank 1 or 2 (a 1-D tensor is one row):
                row r is the base's where it is not kept, m's where it is;
                below t: kept iff not (MAV < t);
                keep f:  rows sorted by MAV descending (NaN first), ties by tensor
                name in byte order then row index; the longest prefix whose
                element count is at most floor(f*E) is kept.
                threshold: t, or the smallest MAV among the kept rows (NaN: none);
                kept_fraction: kept elements / E.

The per-row MAV is computed in the summation order the kernels document
(engine/lsw_kernels.c: chunks of 65536 elements summed into s = 0 + chunk +
chunk ...; in a chunk eight lanes over full groups of eight, the lanes added
in order, then the tail), so that thresholds match to the bit.
"""
import math
import os

import numpy as np

import lsw_ref as R

FLOATS = ("BF16", "F16", "F32")
MAV_CHUNK = 65536


def eligible(t):
    return t.dtype in FLOATS and len(t.shape) in (1, 2) and t.numel > 0


def rows_of(t):
    if len(t.shape) == 1:
        return 1, t.shape[0]
    rows = t.shape[0]
    return rows, (t.numel // rows if rows else 0)


def _chunk_sums(d):
    """d: [rows, m] f64 absolute differences -> per-row sums in the documented order."""
    rows, m = d.shape
    g = m // 8
    acc = np.zeros((rows, 8), dtype=np.float64)
    for q in range(g):
        acc = acc + d[:, 8 * q:8 * q + 8]
    s = acc[:, 0].copy()
    for lane in range(1, 8):
        s = s + acc[:, lane]
    for i in range(8 * g, m):
        s = s + d[:, i]
    return s


def exact_row_mavs(base_ck, exp_ck, name):
    te, tb = exp_ck.tensors[name], base_ck.tensors[name]
    rows, rl = rows_of(te)
    e = R.to_f32(exp_ck.raw(name), te.dtype).astype(np.float64).reshape(rows, rl)
    b = R.to_f32(base_ck.raw(name), tb.dtype).astype(np.float64).reshape(rows, rl)
    d = np.abs(e - b)
    total = np.zeros(rows, dtype=np.float64)
    for c in range(0, rl, MAV_CHUNK):
        total = total + _chunk_sums(d[:, c:c + MAV_CHUNK])
    return total / np.float64(rl)


class DerivedCheckpoint(object):
    """A derived model with the Checkpoint interface: tensors, raw(), f32(), names()."""

    def __init__(self, merge, name, spec):
        self.path = "derived model '%s'" % name
        self.name = name
        self.files = []
        self.metadata = {}
        self.spec = spec
        self._cache = {}
        self._keep = None
        self.threshold = None
        self.kept_fraction = None
        if "soup" in spec:
            self.kind = "soup"
            self.inputs = [merge.ck(m) for m in spec["soup"]]
            k = len(self.inputs)
            ws = spec.get("weights")
            if ws is None:
                w64 = [1.0 / k] * k
            elif spec.get("normalize", True):
                s = 0.0
                for w in ws:
                    s += w
                w64 = [w / s for w in ws]
            else:
                w64 = list(ws)
            self.weights = R.f32_weights(w64)
            ref = self.inputs[0]
            for m, ck in zip(spec["soup"][1:], self.inputs[1:]):
                if set(ck.tensors) != set(ref.tensors):
                    raise R.BadInput("soup member %r has another tensor list" % m, self.path)
                for n, t in ref.tensors.items():
                    u = ck.tensors[n]
                    if u.shape != t.shape or ((t.dtype in FLOATS) != (u.dtype in FLOATS)):
                        raise R.BadInput("soup member %r: tensor differs" % m, self.path, n)
        else:
            self.src = merge.ck(spec["from"])
            self.base = merge.ck(merge.base)
            self.inputs = [self.src]
            if "revert_layers" in spec:
                self.kind = "layers"
                self.ranges = [tuple(p) for p in spec["revert_layers"]]
                L = R.num_layers(self.src)
                for lo, hi in self.ranges:
                    if not (0 <= lo < hi <= L):
                        raise R.ConfigError("revert_layers [%d, %d) outside [0, %d)" % (lo, hi, L), self.path)
            else:
                rr = spec["revert_rows"]
                self.kind = "below" if "below" in rr else "keep"
                self.param = float(rr[self.kind])
            for n, t in self.src.tensors.items():
                if self._reverted(n, t):
                    b = self.base.tensors.get(n)
                    if b is None or b.shape != t.shape or b.dtype != t.dtype:
                        raise R.BadInput("reverted tensor differs in the base", self.path, n)
        ref = self.inputs[0]
        self.tensors = {}
        for n, t in ref.tensors.items():
            self.tensors[n] = R.TensorInfo(n, t.dtype, t.shape, self.path, 0, t.nbytes, 0)

    def _reverted(self, n, t):
        if self.kind == "layers":
            i = R.layer_of(n)
            return i is not None and i >= 0 and any(lo <= i < hi for lo, hi in self.ranges)
        return eligible(t)

    def names(self):
        return list(self.tensors)

    def f32(self, name):
        t = self.tensors[name]
        return R.to_f32(self.raw(name), t.dtype, self.path, name).reshape(t.shape)

    def raw(self, name):
        r = self._cache.get(name)
        if r is None:
            r = self._compute(name)
            self._cache[name] = r
        return r

    def _compute(self, name):
        t = self.tensors[name]
        if self.kind == "soup":
            if t.dtype not in FLOATS:
                return self.inputs[0].raw(name)
            xs = [R.to_f32(ck.raw(name), ck.tensors[name].dtype) for ck in self.inputs]
            return R.from_f32(R.weighted_sum(xs, self.weights), t.dtype)
        if not self._reverted(name, t):
            return self.src.raw(name)
        if self.kind == "layers":
            return self.base.raw(name)
        keep = self.decisions()[name]
        rows, rl = rows_of(t)
        es = len(self.src.raw(name)) // max(t.numel, 1)
        m = np.frombuffer(self.src.raw(name), dtype=np.uint8).reshape(rows, rl * es)
        b = np.frombuffer(self.base.raw(name), dtype=np.uint8).reshape(rows, rl * es)
        return np.where(keep[:, None], m, b).tobytes()

    def decisions(self):
        """tensor name -> bool array over its rows (True: m's row)."""
        if self._keep is not None:
            return self._keep
        names = [n for n in sorted(self.src.tensors) if eligible(self.src.tensors[n])]
        mavs = {n: exact_row_mavs(self.base, self.src, n) for n in names}
        E = sum(self.src.tensors[n].numel for n in names)
        keep = {n: np.zeros(len(mavs[n]), dtype=bool) for n in names}
        kept = 0
        if self.kind == "below":
            for n in names:
                keep[n] = ~(mavs[n] < self.param)
                kept += int(np.count_nonzero(keep[n])) * rows_of(self.src.tensors[n])[1]
            self.threshold = self.param
        else:
            order = []
            pos = 0
            for n in names:
                for r, v in enumerate(mavs[n]):
                    nan = math.isnan(v)
                    order.append((0 if nan else 1, 0.0 if nan else -v, pos, n, r))
                    pos += 1
            order.sort()
            budget = math.floor(self.param * float(E))
            self.threshold = float("nan")
            for _, _, _, n, r in order:
                ln = rows_of(self.src.tensors[n])[1]
                if kept + ln > budget:
                    break
                kept += ln
                keep[n][r] = True
                self.threshold = float(mavs[n][r])
        self.kept_fraction = kept / float(E) if E else 0.0
        self._keep = keep
        return keep


def materialise(merge, outdir):
    """Write every derived model of `merge` to OUTDIR/<name>/model.safetensors
    (dtype input, tensors in name order, with its first input's config files), and
    return the models mapping with those folders in place of the derived entries."""
    import shutil
    models = {}
    for name, spec in merge.cfg["models"].items():
        if not isinstance(spec, dict):
            models[name] = merge.model_paths[name]
            continue
        ck = merge.ck(name)
        d = os.path.join(outdir, name)
        os.makedirs(d, exist_ok=True)
        R.write_safetensors(os.path.join(d, "model.safetensors"),
                            [(n, (ck.tensors[n].dtype, ck.tensors[n].shape, ck.raw(n)))
                             for n in sorted(ck.tensors)], {"format": "pt"})
        leaf = ck
        while isinstance(leaf, DerivedCheckpoint):
            leaf = leaf.inputs[0]
        folder = os.path.dirname(leaf.files[0]) if leaf.files else None
        for f in ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json"):
            if folder and os.path.isfile(os.path.join(folder, f)):
                shutil.copyfile(os.path.join(folder, f), os.path.join(d, f))
        models[name] = os.path.abspath(d)
    return models
