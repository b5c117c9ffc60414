#!/usr/bin/python3
"""lsw_ref: independent reference oracle for layerswap merges (docs/config.md, docs/numerics.md, docs/statistics.md, docs/input-validation.md).

Written only from the user-facing contract /work/shared/SPEC.md, in Python 3 + numpy,
deliberately without looking at the C engine, so that the two can check each other.

Run it with Debian's /usr/bin/python3 (numpy 1.24).  No safetensors / torch package.

CLI
  lsw_ref.py merge CONFIG.json [--compare OUTDIR] [--allow-mixed-dtypes] [--rules-normalize]
                                [--check-layout] [-q]
        Computes the expected merge and compares every tensor of OUTDIR with it
        (OUTDIR defaults to the config's output.path).  Exit 0 only if every tensor is
        identical (name set, dtype, shape, bytes).
  lsw_ref.py plan CONFIG.json       one line per output tensor: name, rule, sources, weights
  lsw_ref.py expect CONFIG.json OUTDIR   write the expected merge as OUTDIR/model.safetensors
  lsw_ref.py dump CONFIG.json OUT.npz    expected tensors as raw uint8 arrays + '__meta__' JSON
  lsw_ref.py mav BASE EXPERT [EXPERT...] [--json FILE]
        model MAV of each expert vs BASE (§4) and, for several experts, the magnitude weights
  lsw_ref.py inspect PATH           validate a checkpoint (§7): exit 0 valid, 2 invalid
  lsw_ref.py compare EXPECTED_DIR OUTDIR   tensor-by-tensor comparison of two checkpoints

Exit codes of the oracle itself (not the engine's):
  0 identical / ok;  1 mismatch (or the output folder is unreadable or invalid);
  2 the oracle refuses the config or the inputs -- the message says which engine exit code
    (docs/cli.md: 1 config error, 2 bad input) the engine must give for the same config;
  3 the config uses something this oracle does not implement (e.g. HDF5 input).
  For `inspect`: 0 valid, 2 invalid (the same codes `layerswap inspect` must give).
"""

import json
import math
import mmap
import os
import re
import struct
import sys

import numpy as np

# ----------------------------------------------------------------------------------------
# Errors
# ----------------------------------------------------------------------------------------


class LswError(Exception):
    """An error with the SPEC exit code the engine must give for the same situation."""
    engine_code = 70

    def __init__(self, rule, file=None, tensor=None):
        self.rule, self.file, self.tensor = rule, file, tensor
        parts = []
        if file is not None:
            parts.append(str(file))
        if tensor is not None:
            parts.append("tensor %r" % (tensor,))
        parts.append(rule)
        super().__init__(": ".join(parts))


class ConfigError(LswError):
    engine_code = 1


class BadInput(LswError):
    engine_code = 2


class Unsupported(Exception):
    """Something valid per SPEC that this oracle does not implement."""


# ----------------------------------------------------------------------------------------
# safetensors reading + validation (docs/input-validation.md)
# ----------------------------------------------------------------------------------------

MAX_HEADER = 100_000_000
U64_LIMIT = 1 << 64

# Element sizes in bytes of the safetensors dtypes this oracle treats as "known".
# (Sub-byte types F4/F6_* are not included: their byte size is not numel * whole bytes.)
DTYPE_SIZE = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "F8_E8M0": 1,
    "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
    "I32": 4, "U32": 4, "F32": 4,
    "I64": 8, "U64": 8, "F64": 8, "C64": 8,
}
JSON_WS = " \t\n\r"
LAYER_RE = re.compile(r"(?:^|\.)layers\.(\d+)\.")


class TensorInfo(object):
    __slots__ = ("name", "dtype", "shape", "file", "begin", "end", "data_start")

    def __init__(self, name, dtype, shape, file, begin, end, data_start):
        self.name, self.dtype, self.shape = name, dtype, tuple(shape)
        self.file, self.begin, self.end, self.data_start = file, begin, end, data_start

    @property
    def nbytes(self):
        return self.end - self.begin

    @property
    def numel(self):
        n = 1
        for d in self.shape:
            n *= d
        return n


def _reject_constant(name):
    raise ValueError("non-JSON constant %s" % name)


def _strict_json(text, file, what):
    """Parse exactly one JSON value with optional JSON whitespace around it.

    Duplicate keys are kept as a list of pairs (the caller decides); NaN/Infinity are
    rejected (they are not JSON)."""
    def pairs_hook(pairs):
        return _Pairs(pairs)
    dec = json.JSONDecoder(object_pairs_hook=pairs_hook, parse_constant=_reject_constant)
    i = 0
    while i < len(text) and text[i] in JSON_WS:
        i += 1
    try:
        val, end = dec.raw_decode(text, i)
    except ValueError as e:
        raise BadInput("%s is not valid JSON (%s)" % (what, e), file)
    rest = text[end:]
    if rest.strip(JSON_WS) != "":
        raise BadInput("%s has non-whitespace after the JSON value (at char %d: %r)"
                       % (what, end + len(rest) - len(rest.lstrip(JSON_WS)),
                          rest.lstrip(JSON_WS)[:16]), file)
    return val


class _Pairs(list):
    """A JSON object as its list of (key, value) pairs, in file order."""

    def keys_unique(self):
        seen = set()
        for k, _ in self:
            if k in seen:
                return k
            seen.add(k)
        return None

    def as_dict(self):
        return dict(self)


def _is_int(v):
    return type(v) is int          # bool is a subclass of int: not accepted


def read_safetensors_header(path):
    """Validate one .safetensors file per docs/input-validation.md (header and layout; no tensor data is
    interpreted) and return (dict name -> TensorInfo in header order, metadata dict)."""
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            head = f.read(8)
            if size < 8 or len(head) < 8:
                raise BadInput("file is shorter than 8 bytes (%d)" % size, path)
            n = struct.unpack("<Q", head)[0]
            if n > MAX_HEADER:
                raise BadInput("header length %d exceeds 100,000,000" % n, path)
            if 8 + n > size:
                raise BadInput("header length %d: 8 + N exceeds the file size %d" % (n, size), path)
            raw = f.read(n)
    except OSError as e:
        raise BadInput("cannot read file (%s)" % e.strerror, path)
    if raw.startswith(b"\xef\xbb\xbf"):
        raise BadInput("header starts with a UTF-8 byte-order mark", path)
    try:
        text = raw.decode("utf-8", errors="strict")
    except UnicodeDecodeError as e:
        raise BadInput("header is not valid UTF-8 (byte %d)" % e.start, path)
    obj = _strict_json(text, path, "header")
    if not isinstance(obj, _Pairs):
        raise BadInput("header is not a JSON object", path)
    dup = obj.keys_unique()
    if dup is not None:
        raise BadInput("key appears more than once in the header (names are case-sensitive)",
                       path, None if dup == "__metadata__" else dup)
    data_len = size - 8 - n
    data_start = 8 + n
    tensors = {}
    metadata = {}
    for name, ent in obj:
        if name == "__metadata__":
            if not isinstance(ent, _Pairs):
                raise BadInput("__metadata__ is not an object of strings", path)
            if ent.keys_unique() is not None:
                raise BadInput("__metadata__ has a duplicate key", path)
            for k, v in ent:
                if not isinstance(v, str):
                    raise BadInput("__metadata__ value of %r is not a string" % k, path)
            metadata = ent.as_dict()
            continue
        if name == "":
            raise BadInput("empty tensor name", path, name)
        if "\x00" in name:
            raise BadInput("tensor name contains NUL", path, name)
        try:
            name.encode("utf-8")
        except UnicodeEncodeError:
            raise BadInput("tensor name is not valid Unicode (lone surrogate escape)", path, name)
        if not isinstance(ent, _Pairs):
            raise BadInput("tensor entry is not a JSON object", path, name)
        if ent.keys_unique() is not None:
            raise BadInput("tensor entry has a duplicate key %r" % ent.keys_unique(), path, name)
        e = ent.as_dict()
        # docs/input-validation.md lists what an entry must have and says nothing against other keys, so
        # extra keys in a tensor entry are accepted (literal reading of the contract).
        for k in ("dtype", "shape", "data_offsets"):
            if k not in e:
                raise BadInput("tensor entry has no %r" % k, path, name)
        dt = e["dtype"]
        if not isinstance(dt, str) or dt not in DTYPE_SIZE:
            raise BadInput("unknown dtype %r" % (dt,), path, name)
        shape = e["shape"]
        if not isinstance(shape, list) or not all(_is_int(d) and d >= 0 for d in shape):
            raise BadInput("shape %r is not a list of non-negative integers" % (shape,), path, name)
        numel = 1
        for d in shape:
            numel *= d                       # Python ints: exact; product of the dims
        nbytes = numel * DTYPE_SIZE[dt]
        if nbytes >= U64_LIMIT:
            raise BadInput("shape %r: byte size does not fit in 64 bits" % (shape,), path, name)
        off = e["data_offsets"]
        if not isinstance(off, list) or len(off) != 2 or not all(_is_int(x) for x in off):
            raise BadInput("data_offsets %r is not exactly two integers" % (off,), path, name)
        b, en = off
        if b < 0 or en < 0:
            raise BadInput("data_offsets %r are negative" % (off,), path, name)
        if b > en:
            raise BadInput("data_offsets begin %d > end %d" % (b, en), path, name)
        if en - b != nbytes:
            raise BadInput("data_offsets span %d bytes, dtype %s shape %r needs %d"
                           % (en - b, dt, shape, nbytes), path, name)
        if en > data_len:
            raise BadInput("data_offsets end %d lies beyond the end of the file (data area %d bytes)"
                           % (en, data_len), path, name)
        tensors[name] = TensorInfo(name, dt, shape, path, b, en, data_start)
    pos = 0
    for t in sorted(tensors.values(), key=lambda t: (t.begin, t.end, t.name)):
        if t.begin > pos:
            raise BadInput("hole in the data area: bytes %d..%d belong to no tensor" % (pos, t.begin),
                           path, t.name)
        if t.begin < pos:
            raise BadInput("tensor data overlaps the previous tensor (begins %d, previous ends %d)"
                           % (t.begin, pos), path, t.name)
        pos = t.end
    if pos != data_len:
        raise BadInput("data area ends at %d but the file has %d data bytes (extra bytes at the end)"
                       % (pos, data_len), path)
    return tensors, metadata


def _plain_file_name(s):
    return (isinstance(s, str) and s not in ("", ".", "..") and "/" not in s and "\\" not in s
            and "\x00" not in s)


PICKLE_EXT = (".bin", ".pt", ".pth", ".pkl", ".ckpt")


class Checkpoint(object):
    """A validated checkpoint. `tensors`: name -> TensorInfo. `raw(name)` gives the bytes."""

    def __init__(self, path):
        self.path = path
        self.tensors = {}
        self.files = []          # safetensors files, in the order they were read
        self.metadata = {}
        self._maps = {}
        if os.path.isdir(path):
            single = os.path.join(path, "model.safetensors")
            index = os.path.join(path, "model.safetensors.index.json")
            # Choice: when a folder has both, model.safetensors wins (as transformers does).
            if os.path.isfile(single):
                self._load_single(single)
            elif os.path.isfile(index):
                self._load_index(index)
            else:
                names = os.listdir(path)
                if any(x.endswith(PICKLE_EXT) for x in names):
                    raise BadInput("pickle checkpoints (*.bin, *.pt) are refused", path)
                raise BadInput("folder has neither model.safetensors nor "
                               "model.safetensors.index.json", path)
        elif path.endswith(".index.json"):
            self._load_index(path)
        elif path.endswith(PICKLE_EXT):
            raise BadInput("pickle checkpoints (*.bin, *.pt) are refused", path)
        elif path.endswith(".h5"):
            raise Unsupported("HDF5 checkpoints are not read by this oracle: %s" % path)
        elif os.path.exists(path):
            self._load_single(path)
        else:
            raise BadInput("checkpoint path does not exist", path)

    def _load_single(self, f):
        t, md = read_safetensors_header(f)
        self.tensors = t
        self.metadata = md
        self.files = [f]
        self.index_path = None

    def _load_index(self, idx):
        self.index_path = idx
        folder = os.path.dirname(idx)
        try:
            with open(idx, "rb") as fh:
                raw = fh.read()
        except OSError as e:
            raise BadInput("cannot read index (%s)" % e.strerror, idx)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise BadInput("index is not valid UTF-8", idx)
        obj = _strict_json(text, idx, "index")
        if not isinstance(obj, _Pairs):
            raise BadInput("index is not a JSON object", idx)
        d = obj.as_dict()
        wm = d.get("weight_map")
        if not isinstance(wm, _Pairs):
            raise BadInput("index has no weight_map object", idx)
        if wm.keys_unique() is not None:
            raise BadInput("weight_map lists a tensor twice", idx, wm.keys_unique())
        shards = []
        for name, fn in wm:
            if not _plain_file_name(fn):
                raise BadInput("weight_map names %r, not a plain file name in the same folder"
                               % (fn,), idx, name)
            if fn not in shards:
                shards.append(fn)
        headers = {}
        for fn in shards:
            p = os.path.join(folder, fn)
            if not os.path.isfile(p):
                raise BadInput("shard file named by the index does not exist", p)
            headers[fn] = read_safetensors_header(p)[0]
            self.files.append(p)
        owner = {}
        for fn in shards:
            for name in headers[fn]:
                if name in owner:
                    raise BadInput("tensor is in two shards (%s and %s)" % (owner[name], fn),
                                   idx, name)
                owner[name] = fn
        for name, fn in wm:
            if name not in headers[fn]:
                raise BadInput("tensor listed in the index is not in its shard %s" % fn, idx, name)
            self.tensors[name] = headers[fn][name]
        # Choice: tensors present in a shard but not listed in weight_map are ignored.

    def raw(self, name):
        t = self.tensors[name]
        if t.nbytes == 0:
            return b""
        m = self._maps.get(t.file)
        if m is None:
            with open(t.file, "rb") as fh:
                m = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
            self._maps[t.file] = m
        return m[t.data_start + t.begin: t.data_start + t.end]

    def names(self):
        return list(self.tensors)

    def f32(self, name):
        t = self.tensors[name]
        return to_f32(self.raw(name), t.dtype, t.file, name).reshape(t.shape)


def load_checkpoint(path):
    """name -> (dtype string, shape tuple, raw bytes), after full §7 validation."""
    ck = Checkpoint(path)
    return {n: (t.dtype, t.shape, ck.raw(n)) for n, t in ck.tensors.items()}


# ----------------------------------------------------------------------------------------
# Numerics (docs/numerics.md)
# ----------------------------------------------------------------------------------------


def to_f32(raw, dtype, file=None, tensor=None):
    """Exact widening to float32 (only the three float types convert exactly)."""
    if dtype == "BF16":
        u = np.frombuffer(raw, dtype="<u2")
        return (u.astype(np.uint32) << np.uint32(16)).view(np.float32)
    if dtype == "F16":
        return np.frombuffer(raw, dtype="<f2").astype(np.float32)
    if dtype == "F32":
        return np.frombuffer(raw, dtype="<f4").astype(np.float32)
    raise Unsupported("%s: tensor %r: dtype %s cannot be converted exactly to f32"
                      % (file, tensor, dtype))


def f32_to_bf16_bits(x):
    """Round-to-nearest-even f32 -> bf16 with integer ops; every NaN becomes 0x7FC0."""
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    lsb = (u >> np.uint64(16)) & np.uint64(1)
    r = ((u + np.uint64(0x7FFF) + lsb) >> np.uint64(16)).astype(np.uint16)
    nan = ((u & np.uint64(0x7FFFFFFF)) > np.uint64(0x7F800000))
    r[nan] = np.uint16(0x7FC0)
    return r


def from_f32(x, dtype):
    """One final rounding of an f32 array to the output dtype; returns raw bytes."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    if dtype == "BF16":
        return f32_to_bf16_bits(x).astype("<u2").tobytes()
    if dtype == "F16":
        with np.errstate(all="ignore"):
            return x.astype("<f2").tobytes()      # numpy: IEEE RNE, subnormals, overflow -> inf
    if dtype == "F32":
        return x.astype("<f4").tobytes()
    raise Unsupported("output dtype %s" % dtype)


def weighted_sum(arrays, weights):
    """w1*x1 + w2*x2 + ... : products rounded to f32, summed left to right, no FMA."""
    with np.errstate(all="ignore"):
        acc = np.float32(weights[0]) * arrays[0]
        assert acc.dtype == np.float32
        for w, x in zip(weights[1:], arrays[1:]):
            p = np.float32(w) * x
            acc = acc + p
        assert acc.dtype == np.float32
    return acc


def f32_weights(ws):
    return [np.float32(w) for w in ws]          # f64 -> f32 once, RNE


# ----------------------------------------------------------------------------------------
# Task vectors: task_arithmetic, ties, dare_linear, dare_ties (docs/config.md, docs/numerics.md; the exact
# definition is the project's task-vector contract, restated in each function)
# ----------------------------------------------------------------------------------------

M64 = (1 << 64) - 1
FNV64_OFFSET = 0xcbf29ce484222325
FNV64_PRIME = 0x100000001b3
SM64_GAMMA = 0x9E3779B97F4A7C15
SM64_M1 = 0xBF58476D1CE4E5B9
SM64_M2 = 0x94D049BB133111EB
TV_METHODS = ("task_arithmetic", "ties", "dare_linear", "dare_ties")
TV_FLOAT_DTYPES = ("BF16", "F16", "F32")
TV_EPS = 1e-8          # |D| < 1e-8 is decided in double (see tv_norm_divisor)


def fnv1a64(name):
    """FNV-1a 64 of the UTF-8 bytes of a tensor name (Python ints, exact)."""
    h = FNV64_OFFSET
    for byte in name.encode("utf-8"):
        h ^= byte
        h = (h * FNV64_PRIME) & M64
    return h


def splitmix64(z):
    """One splitmix64 step on a Python int: the output for state z (z advanced first)."""
    z = (z + SM64_GAMMA) & M64
    z = ((z ^ (z >> 30)) * SM64_M1) & M64
    z = ((z ^ (z >> 27)) * SM64_M2) & M64
    return z ^ (z >> 31)


def splitmix64_np(z):
    """splitmix64 element-wise on a uint64 array (numpy uint64 arithmetic wraps mod 2^64)."""
    z = np.asarray(z, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = z + np.uint64(SM64_GAMMA)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(SM64_M1)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(SM64_M2)
        z = z ^ (z >> np.uint64(31))
    assert z.dtype == np.uint64
    return z


def dare_stream_seed(seed, name, i):
    """s_i = splitmix64(splitmix64(seed ^ FNV1a64(name)) + i), all mod 2^64."""
    return splitmix64((splitmix64((seed ^ fnv1a64(name)) & M64) + i) & M64)


def dare_uniforms(seed, name, i, numel):
    """u_j = (splitmix64(s_i + j) >> 11) * 2^-53 for j = 0..numel-1, as float64 (exact)."""
    s = np.uint64(dare_stream_seed(seed, name, i))
    j = np.arange(numel, dtype=np.uint64)
    with np.errstate(over="ignore"):
        r = splitmix64_np(j + s)
    u = (r >> np.uint64(11)).astype(np.float64) * np.float64(2.0 ** -53)
    assert u.dtype == np.float64
    return u


def dare_sparsify(delta, seed, name, i, d):
    """Keep delta[j] iff u_j < d (double compare); survivors / float32(d) in f32; others +0."""
    u = dare_uniforms(seed, name, i, delta.size)
    keep = u < np.float64(d)                    # float64 array vs float64: a double compare
    with np.errstate(all="ignore"):
        scaled = delta / np.float32(d)
    assert scaled.dtype == np.float32
    return np.where(keep, scaled, np.float32(0.0)).astype(np.float32)


def ties_keep_count(d, numel):
    """K = floor(d * numel), the product and floor in double."""
    return int(math.floor(float(d) * numel))


def ties_keep_mask(delta, k):
    """The k elements of largest |delta|, ordered by the f32 bit pattern of |delta| as an
    unsigned integer (NaN above inf; -0.0 and 0.0 are both 0), ties to the lower flat index.
    O(n): the k-th largest key t by partition; every key > t, then the first of the keys == t."""
    n = delta.size
    keys = delta.view(np.uint32) & np.uint32(0x7FFFFFFF)
    mask = np.zeros(n, dtype=bool)
    if k <= 0 or n == 0:
        return mask
    if k >= n:
        mask[:] = True
        return mask
    t = np.partition(keys, n - k)[n - k]
    mask = keys > t
    need = k - int(np.count_nonzero(mask))
    eq = np.flatnonzero(keys == t)[:need]
    mask[eq] = True
    assert int(np.count_nonzero(mask)) == k
    return mask


def ties_keep_mask_by_sort(delta, k):
    """The same as ties_keep_mask, written as the literal sort by (-bits, j) (for self-checks)."""
    keys = delta.view(np.uint32) & np.uint32(0x7FFFFFFF)
    order = np.lexsort((np.arange(delta.size), -keys.astype(np.int64)))
    mask = np.zeros(delta.size, dtype=bool)
    mask[order[:max(k, 0)]] = True
    return mask


def ties_sparsify(delta, d):
    k = ties_keep_count(d, delta.size)
    return np.where(ties_keep_mask(delta, k), delta, np.float32(0.0)).astype(np.float32)


def ties_global_keep_masks(deltas, k):
    """"trim": "global": deltas = the per-tensor f32 delta arrays of ONE expert, already in
    the contract's order (base tensors of dtype BF16/F16/F32 sorted by the UTF-8 bytes of
    their names), each flat.  The k elements of the whole concatenation with the largest
    |delta| bit keys, ties to the lower position in the concatenation -> one bool mask per
    tensor (the concatenation split back)."""
    sizes = [int(d.size) for d in deltas]
    cat = (np.concatenate([np.asarray(d, dtype=np.float32).ravel() for d in deltas])
           if deltas else np.zeros(0, dtype=np.float32))
    mask = ties_keep_mask(cat, k)
    out, off = [], 0
    for n in sizes:
        out.append(mask[off:off + n])
        off += n
    return out


def tv_norm_divisor(D):
    """|D| < 1e-8 -> 1, decided in double (a float32 D widened exactly; note numpy 1.24 would
    compare a float32 array with a Python float in float32, where float32(1e-8) < 1e-8)."""
    D = np.asarray(D, dtype=np.float32)
    small = np.abs(D.astype(np.float64)) < TV_EPS
    return np.where(small, np.float32(1.0), D).astype(np.float32)


def tv_combine_linear(deltas, weights, normalize):
    """task_arithmetic / dare_linear: m = sum_i w_i*delta_i (products rounded to f32, summed
    left to right from the first term); normalize: m / D, D = sum_i w_i in f32."""
    with np.errstate(all="ignore"):
        m = weighted_sum(deltas, weights)
        if normalize:
            D = weights[0]
            for w in weights[1:]:
                D = np.float32(D + w)
            m = m / tv_norm_divisor(D)[()]
    assert m.dtype == np.float32
    return m


def tv_combine_ties(deltas, weights, normalize):
    """ties / dare_ties: sign elected on s = sum_i w_i*delta_i (s >= 0 -> +, NaN -> -);
    agreeing models: delta_i > 0 for +, < 0 for - (zeros never agree); m = sum of the agreeing
    w_i*delta_i in model order from the first agreeing term (+0.0 if none); normalize:
    / D, D = sum of the agreeing w_i (0 if none), |D| < 1e-8 -> 1."""
    n = deltas[0].size
    with np.errstate(all="ignore"):
        s = weighted_sum(deltas, weights)
        plus = s >= np.float32(0.0)             # NaN >= 0 is False -> '-'
        acc = np.zeros(n, dtype=np.float32)     # +0.0 where no model agrees
        D = np.zeros(n, dtype=np.float32)
        started = np.zeros(n, dtype=bool)
        for w, x in zip(weights, deltas):
            agree = np.where(plus, x > np.float32(0.0), x < np.float32(0.0))
            p = w * x
            assert p.dtype == np.float32
            cont = agree & started
            first = agree & ~started
            acc = np.where(cont, acc + p, np.where(first, p, acc)).astype(np.float32)
            D = np.where(cont, D + w, np.where(first, w, D)).astype(np.float32)
            started |= agree
        if normalize:
            acc = acc / tv_norm_divisor(D)
    assert acc.dtype == np.float32
    return acc


def tv_merge_tensor(method, name, base, xs, weights, densities, lam, normalize, seed,
                    keep=None):
    """One tensor of a task-vector merge. base, xs: f32 arrays (flat); weights: np.float32;
    densities: Python floats; lam: np.float32; keep: for ties with "trim": "global", one bool
    mask per expert (from ties_global_keep_masks) replacing the per-tensor trim.
    -> f32 array f32(b) + f32(lam * m), before the one rounding to the output dtype."""
    with np.errstate(all="ignore"):
        deltas = [np.subtract(x, base, dtype=np.float32) for x in xs]
        if method == "ties" and keep is not None:
            deltas = [np.where(kp, dl, np.float32(0.0)).astype(np.float32)
                      for kp, dl in zip(keep, deltas)]
        elif method == "ties":
            deltas = [ties_sparsify(dl, d) for dl, d in zip(deltas, densities)]
        elif method in ("dare_linear", "dare_ties"):
            deltas = [dare_sparsify(dl, seed, name, i, d)
                      for i, (dl, d) in enumerate(zip(deltas, densities))]
        if method in ("ties", "dare_ties"):
            m = tv_combine_ties(deltas, weights, normalize)
        else:
            m = tv_combine_linear(deltas, weights, normalize)
        out = base + lam * m
    assert out.dtype == np.float32
    return out


def hex32(w):
    return "0x%08x" % int(np.float32(w).view(np.uint32))


# ----------------------------------------------------------------------------------------
# MAV (docs/statistics.md)
# ----------------------------------------------------------------------------------------


def row_mavs(base_ck, exp_ck, name):
    """f64 row MAVs of one tensor: row = c1*c2*... elements, 1-D = one row.
    Choice for degenerate shapes: a scalar is one row of one element; a row of zero
    elements has MAV 0 (SPEC leaves 0/0 open)."""
    tb, te = base_ck.tensors.get(name), exp_ck.tensors[name]
    if tb is None:
        raise BadInput("tensor of the expert is not in the base", base_ck.path, name)
    if tb.shape != te.shape:
        raise BadInput("shape %r differs from the base's %r" % (te.shape, tb.shape), exp_ck.path, name)
    e = to_f32(exp_ck.raw(name), te.dtype, te.file, name).astype(np.float64)
    b = to_f32(base_ck.raw(name), tb.dtype, tb.file, name).astype(np.float64)
    if len(te.shape) <= 1:
        rows, cols = 1, e.size
    else:
        rows = te.shape[0]
        cols = e.size // rows if rows else 0
    d = np.abs(e - b).reshape(rows, cols)
    if cols == 0:
        return np.zeros(rows, dtype=np.float64)
    return d.sum(axis=1, dtype=np.float64) / np.float64(cols)


def model_mav(base_ck, exp_ck):
    """Mean of the row MAVs over all rows of all 1-D and 2-D tensors (f64)."""
    total, nrows = 0.0, 0
    for name in sorted(exp_ck.tensors):
        t = exp_ck.tensors[name]
        if len(t.shape) not in (1, 2):
            continue
        r = row_mavs(base_ck, exp_ck, name)
        total += float(np.sum(r, dtype=np.float64))
        nrows += r.size
    if nrows == 0:
        raise BadInput("expert has no 1-D or 2-D tensor rows: model MAV undefined", exp_ck.path)
    return total / nrows


def magnitude_weights(mavs):
    """w_e = (1/M_e) / sum_j (1/M_j) in f64, each rounded to f32 once."""
    for m in mavs:
        if not m > 0.0:
            raise BadInput("model MAV is %r: magnitude weights undefined (expert equals base?)" % m)
    inv = [1.0 / m for m in mavs]
    s = 0.0
    for v in inv:
        s += v
    return f32_weights([v / s for v in inv])


# ----------------------------------------------------------------------------------------
# Config -> plan (docs/config.md)
# ----------------------------------------------------------------------------------------

TOP_KEYS = {"models", "base", "method", "layer_swap", "linear", "rules", "task_arithmetic",
            "ties", "dare_linear", "dare_ties", "output"}
OUTPUT_KEYS = {"path", "format", "dtype", "shard_size", "compression", "shard_by", "dedup"}
LS_KEYS = {"task_expert", "language_expert", "bottom", "top", "lower_transition",
           "upper_transition", "transition_weights", "non_layer", "non_layer_weights"}
LINEAR_KEYS = {"models", "weights", "normalize"}
RULE_KEYS = {"match", "layers", "action", "model", "models", "weights"}
TV_KEYS = {"models", "weights", "density", "lambda", "normalize", "seed", "trim"}
# Output dtype names of docs/numerics.md; the short aliases are an oracle leniency.
OUT_DTYPES = {"bfloat16": "BF16", "float16": "F16", "float32": "F32",
              "bf16": "BF16", "f16": "F16", "f32": "F32", "BF16": "BF16", "F16": "F16", "F32": "F32"}


def layer_of(name):
    m = LAYER_RE.search(name)
    return int(m.group(1)) if m else None


def num_layers(ck):
    idx = [layer_of(n) for n in ck.tensors]
    idx = [i for i in idx if i is not None]
    return (max(idx) + 1) if idx else 0


class PlanEntry(object):
    """kind: "copy" (sources[0]), "average" (sources, weights) or "task_vector" (sources =
    [base] + models, weights; tv = the method's parameters)."""
    __slots__ = ("name", "kind", "sources", "weights", "rule", "tv")

    def __init__(self, name, kind, sources, weights, rule, tv=None):
        self.name, self.kind, self.sources, self.weights, self.rule = name, kind, sources, weights, rule
        self.tv = tv

    def line(self):
        if self.kind == "copy":
            return "%s\t%s\tcopy %s" % (self.name, self.rule, self.sources[0])
        if self.kind == "task_vector":
            tv = self.tv
            return ("%s\t%s\tbase %s\tmodels %s\tweights %s\tdensity %s\tlambda %.9g(%s)"
                    "\tnormalize %s\tseed %d" % (
                        self.name, self.rule, self.sources[0], ",".join(self.sources[1:]),
                        ",".join("%.9g(%s)" % (float(w), hex32(w)) for w in self.weights),
                        ",".join(repr(d) for d in tv["density"]), float(tv["lambda"]),
                        hex32(tv["lambda"]), "true" if tv["normalize"] else "false", tv["seed"])
                    + ("\ttrim global" if tv.get("trim") == "global" else ""))
        return "%s\t%s\taverage %s\tweights %s" % (
            self.name, self.rule, ",".join(self.sources),
            ",".join("%.9g(%s)" % (float(w), hex32(w)) for w in self.weights))


class Options(object):
    def __init__(self, allow_mixed_dtypes=False, rules_normalize=False):
        self.allow_mixed_dtypes = allow_mixed_dtypes
        self.rules_normalize = rules_normalize


class Merge(object):
    """Config + loaded models + plan. `expected()` computes the output tensors."""

    def __init__(self, config_path, opts=None):
        self.opts = opts or Options()
        self.config_path = config_path
        self.cfg_dir = os.path.dirname(os.path.abspath(config_path))
        try:
            with open(config_path, "rb") as f:
                cfg = json.loads(f.read().decode("utf-8"))
        except (OSError, ValueError) as e:
            raise ConfigError("cannot read config as JSON (%s)" % e, config_path)
        if not isinstance(cfg, dict):
            raise ConfigError("config is not a JSON object", config_path)
        self.cfg = cfg
        self._check_keys(cfg, TOP_KEYS, "config")
        models = cfg.get("models")
        if not isinstance(models, dict) or not models:
            raise ConfigError("'models' must be a non-empty object", config_path)
        self.model_paths = {}
        self.derived = {}           # name -> spec of a derived model (lsw_ref_derived)
        for k, v in models.items():
            if isinstance(v, dict):
                self.derived[k] = v
                self.model_paths[k] = None
                continue
            if not isinstance(v, str):
                raise ConfigError("models.%s is not a path string" % k, config_path)
            self.model_paths[k] = v if os.path.isabs(v) else os.path.join(self.cfg_dir, v)
        self.base = cfg.get("base")
        if self.base is not None:
            self._model(self.base, "base")
        out = cfg.get("output", {})
        if not isinstance(out, dict):
            raise ConfigError("'output' is not an object", config_path)
        self._check_keys(out, OUTPUT_KEYS, "output")
        odt = out.get("dtype", "input")
        if odt != "input" and odt not in OUT_DTYPES:
            raise ConfigError("output.dtype %r is not input, bfloat16, float16 or float32" % (odt,),
                              config_path)
        self.out_dtype = None if odt == "input" else OUT_DTYPES[odt]
        p = out.get("path")
        self.output_path = None if p is None else (p if os.path.isabs(p) else os.path.join(self.cfg_dir, p))
        self.method = cfg.get("method")
        if self.method not in ("layer_swap", "linear", "rules") + TV_METHODS:
            raise ConfigError("unknown method %r" % (self.method,), config_path)
        if "format" in out and out["format"] not in ("safetensors", "hdf5"):
            raise ConfigError("output.format %r" % (out["format"],), config_path)
        self._ck = {}
        self._mav = {}
        self._gkeep = None          # ties "trim": "global": name -> [mask per expert]
        # docs/config.md: config errors are found first, then every checkpoint header is validated.
        self._parse_method()
        for m in self._used_models():
            self.ck(m)
        self.plan = self._build_plan()

    # -- helpers --------------------------------------------------------------------------

    def _check_keys(self, d, allowed, where):
        for k in d:
            if k not in allowed:
                raise ConfigError("unknown key %r in %s" % (k, where), self.config_path)

    def _model(self, name, where):
        if not isinstance(name, str) or name not in self.model_paths:
            raise ConfigError("%s names model %r that 'models' does not define" % (where, name),
                              self.config_path)
        return name

    def ck(self, name):
        c = self._ck.get(name)
        if c is None:
            if name in self.derived:
                import lsw_ref_derived
                c = lsw_ref_derived.DerivedCheckpoint(self, name, self.derived[name])
            else:
                c = Checkpoint(self.model_paths[name])
            self._ck[name] = c
        return c

    def mav(self, name):
        if self.base is None:
            raise ConfigError("magnitude weights need 'base'", self.config_path)
        v = self._mav.get(name)
        if v is None:
            v = model_mav(self.ck(self.base), self.ck(name))
            self._mav[name] = v
        return v

    def _weights(self, spec, models, where, normalize=True, allow_default=True):
        """Weights -> list of np.float32.  uniform/none: 1/k (f64 -> f32 once);
        'magnitude': §4; list: divided by its f64 sum (left to right) unless normalize is
        false, then rounded to f32 once."""
        k = len(models)
        if spec is None and allow_default or spec == "uniform":
            return f32_weights([1.0 / k] * k)
        if spec == "magnitude":
            return ("magnitude", models)       # resolved after header validation
        if isinstance(spec, list):
            if len(spec) != k or not all(isinstance(w, (int, float)) and not isinstance(w, bool)
                                         for w in spec):
                raise ConfigError("%s: weights %r do not match models %r" % (where, spec, models),
                                  self.config_path)
            ws = [float(w) for w in spec]
            if normalize:
                s = 0.0
                for w in ws:
                    s += w
                if s == 0.0:
                    raise ConfigError("%s: weights sum to 0" % where, self.config_path)
                ws = [w / s for w in ws]
            return f32_weights(ws)
        raise ConfigError("%s: weights %r" % (where, spec), self.config_path)

    def _resolve(self, w):
        if isinstance(w, tuple) and w and w[0] == "magnitude":
            return magnitude_weights([self.mav(m) for m in w[1]])
        return w

    # -- methods --------------------------------------------------------------------------

    def _parse_method(self):
        m = self.method
        sec = self.cfg.get(m)
        cp = self.config_path
        if m == "layer_swap":
            if not isinstance(sec, dict):
                raise ConfigError("'layer_swap' section missing", cp)
            self._check_keys(sec, LS_KEYS, "layer_swap")
            self.T = self._model(sec.get("task_expert"), "layer_swap.task_expert")
            self.G = self._model(sec.get("language_expert"), "layer_swap.language_expert")
            # Choice: omitted counts are 0, omitted weights 'uniform', non_layer 'average'.
            self.ls = {}
            for k in ("bottom", "top", "lower_transition", "upper_transition"):
                v = sec.get(k, 0)
                if not _is_int(v) or v < 0:
                    raise ConfigError("layer_swap.%s must be a non-negative integer" % k, cp)
                self.ls[k] = v
            for k in ("transition_weights", "non_layer_weights"):
                v = sec.get(k, "uniform")
                if v not in ("uniform", "magnitude"):
                    raise ConfigError("layer_swap.%s must be uniform or magnitude" % k, cp)
                self.ls[k] = v
            v = sec.get("non_layer", "average")
            if v not in ("average", "task", "language"):
                raise ConfigError("layer_swap.non_layer must be average, task or language", cp)
            self.ls["non_layer"] = v
            if ((self.ls["transition_weights"] == "magnitude" or self.ls["non_layer_weights"] == "magnitude")
                    and self.base is None):
                raise ConfigError("magnitude weights need 'base'", cp)
        elif m in TV_METHODS:
            self._parse_task_vector(m, sec)
        elif m == "linear":
            if not isinstance(sec, dict):
                raise ConfigError("'linear' section missing", cp)
            self._check_keys(sec, LINEAR_KEYS, "linear")
            ms = sec.get("models")
            if not isinstance(ms, list) or not ms:
                raise ConfigError("linear.models must be a non-empty list", cp)
            self.lin_models = [self._model(x, "linear.models") for x in ms]
            norm = sec.get("normalize", True)
            if not isinstance(norm, bool):
                raise ConfigError("linear.normalize must be true or false", cp)
            if sec.get("weights") == "magnitude" and self.base is None:
                raise ConfigError("magnitude weights need 'base'", cp)
            self.lin_weights = self._weights(sec.get("weights"), self.lin_models, "linear", norm)
        else:
            if not isinstance(sec, list) or not sec:
                raise ConfigError("'rules' must be a non-empty list", cp)
            self.rules = []
            for i, r in enumerate(sec):
                where = "rules[%d]" % i
                if not isinstance(r, dict):
                    raise ConfigError("%s is not an object" % where, cp)
                self._check_keys(r, RULE_KEYS, where)
                rr = {"i": i}
                pat = r.get("match")
                if pat is not None:
                    if not isinstance(pat, str):
                        raise ConfigError("%s.match is not a string" % where, cp)
                    try:
                        rr["re"] = re.compile(pat)   # POSIX ERE ~ Python re for simple patterns
                    except re.error as e:
                        raise ConfigError("%s.match %r: %s" % (where, pat, e), cp)
                lay = r.get("layers")
                if lay is not None:
                    if not (isinstance(lay, list) and len(lay) == 2 and all(_is_int(x) for x in lay)):
                        raise ConfigError("%s.layers must be [lo, hi]" % where, cp)
                    rr["layers"] = tuple(lay)
                act = r.get("action")
                if act == "take":
                    rr["model"] = self._model(r.get("model"), where + ".model")
                    for k in ("models", "weights"):
                        if k in r:
                            raise ConfigError("%s: %r does not belong to action take" % (where, k), cp)
                elif act == "average":
                    ms = r.get("models")
                    if not isinstance(ms, list) or not ms:
                        raise ConfigError("%s.models must be a non-empty list" % where, cp)
                    rr["models"] = [self._model(x, where + ".models") for x in ms]
                    if r.get("weights") == "magnitude" and self.base is None:
                        raise ConfigError("magnitude weights need 'base'", cp)
                    # Choice: rule weights are used as written (f64 -> f32 once), NOT divided
                    # by their sum -- unless --rules-normalize.  Omitted: uniform 1/k.
                    rr["weights"] = self._weights(r.get("weights"), rr["models"], where,
                                                  self.opts.rules_normalize)
                    if "model" in r:
                        raise ConfigError("%s: 'model' does not belong to action average" % where, cp)
                elif act == "base":
                    if self.base is None:
                        raise ConfigError("%s: action base needs 'base'" % where, cp)
                    for k in ("model", "models", "weights"):
                        if k in r:
                            raise ConfigError("%s: %r does not belong to action base" % (where, k), cp)
                else:
                    raise ConfigError("%s: unknown action %r" % (where, act), cp)
                rr["action"] = act
                self.rules.append(rr)

    def _parse_task_vector(self, m, sec):
        """task_arithmetic / ties / dare_linear / dare_ties section -> self.tv."""
        cp = self.config_path
        if not isinstance(sec, dict):
            raise ConfigError("'%s' section missing" % m, cp)
        self._check_keys(sec, TV_KEYS, m)
        if self.base is None:
            raise ConfigError("method %s needs 'base'" % m, cp)
        ms = sec.get("models")
        if not isinstance(ms, list) or not ms:
            raise ConfigError("%s.models must be a non-empty list" % m, cp)
        models = [self._model(x, m + ".models") for x in ms]
        if len(set(models)) != len(models):
            raise ConfigError("%s.models lists a model twice" % m, cp)
        if self.base in models:
            raise ConfigError("%s.models includes the base %r" % (m, self.base), cp)
        k = len(models)

        def numbers(key, default):
            v = sec.get(key)
            if v is None and key not in sec:
                return [default] * k
            if (not isinstance(v, list) or len(v) != k
                    or not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v)):
                raise ConfigError("%s.%s %r must be a list of %d numbers, one per model"
                                  % (m, key, v, k), cp)
            return [float(x) for x in v]
        weights = f32_weights(numbers("weights", 1.0))          # NOT normalised
        dens = numbers("density", 1.0)                           # validated for every method
        for d in dens:
            if not (0.0 < d <= 1.0):
                raise ConfigError("%s.density %r is outside (0, 1]" % (m, d), cp)
        lam = sec.get("lambda", 1.0)
        if not isinstance(lam, (int, float)) or isinstance(lam, bool):
            raise ConfigError("%s.lambda must be a number" % m, cp)
        norm = sec.get("normalize", m == "ties")
        if not isinstance(norm, bool):
            raise ConfigError("%s.normalize must be true or false" % m, cp)
        seed = sec.get("seed", 0)
        if not _is_int(seed) or not (0 <= seed <= M64):
            raise ConfigError("%s.seed must be an integer in [0, 2^64)" % m, cp)
        trim = sec.get("trim", "tensor")
        if trim == "global" and m != "ties":
            raise ConfigError("%s.trim \"global\" is only for method ties" % m, cp)
        if trim not in ("tensor", "global"):
            raise ConfigError("%s.trim %r is not \"tensor\" or \"global\"" % (m, trim), cp)
        self.tv = {"method": m, "models": models, "weights": weights, "density": dens,
                   "lambda": np.float32(float(lam)), "normalize": norm, "seed": seed,
                   "trim": trim}

    def _used_models(self):
        if self.method in TV_METHODS:
            ms = [self.base] + self.tv["models"]
        elif self.method == "layer_swap":
            ms = [self.T, self.G]
            if "magnitude" in (self.ls["transition_weights"], self.ls["non_layer_weights"]):
                ms.append(self.base)
        elif self.method == "linear":
            ms = list(self.lin_models)
            if isinstance(self.lin_weights, tuple):
                ms.append(self.base)
        else:
            ms = []
            if self.base is not None:
                ms.append(self.base)
            ms.append(next(iter(self.model_paths)))
            for r in self.rules:
                ms += [r["model"]] if "model" in r else r.get("models", [])
        seen = []
        for m in ms:
            if m not in seen:
                seen.append(m)
        return seen

    def reference_model(self):
        """Whose tensor names are the output names, and on whom L is counted.
        Choice: layer_swap -> the task expert; linear -> its first model; rules -> the
        base when given, else the first model defined in 'models'.  Task-vector methods:
        the base (contract)."""
        if self.method == "layer_swap":
            return self.T
        if self.method == "linear":
            return self.lin_models[0]
        if self.method in TV_METHODS:
            return self.base
        return self.base if self.base is not None else next(iter(self.model_paths))

    def _build_plan(self):
        ref = self.ck(self.reference_model())
        L = num_layers(ref)
        self.L = L
        cp = self.config_path
        plan = []
        if self.method == "layer_swap":
            s = self.ls
            for k in ("bottom", "top"):
                if s[k] > L:
                    raise ConfigError("layer_swap.%s = %d is outside [0, L=%d]" % (k, s[k], L), cp)
            if s["bottom"] + s["lower_transition"] > L or s["top"] + s["upper_transition"] > L:
                raise ConfigError("layer_swap transition range is outside [0, L=%d]" % L, cp)
            tw = self._resolve(self._weights(s["transition_weights"], [self.T, self.G], "transition"))
            nw = self._resolve(self._weights(s["non_layer_weights"], [self.T, self.G], "non_layer"))
            for name in ref.names():
                i = layer_of(name)
                if i is None:
                    if s["non_layer"] == "average":
                        plan.append(PlanEntry(name, "average", [self.T, self.G], nw, "non_layer"))
                    elif s["non_layer"] == "task":
                        plan.append(PlanEntry(name, "copy", [self.T], None, "non_layer"))
                    else:
                        plan.append(PlanEntry(name, "copy", [self.G], None, "non_layer"))
                elif i < s["bottom"] or i >= L - s["top"]:
                    plan.append(PlanEntry(name, "copy", [self.G], None, "layer %d language" % i))
                elif i < s["bottom"] + s["lower_transition"] or i >= L - s["top"] - s["upper_transition"]:
                    plan.append(PlanEntry(name, "average", [self.T, self.G], tw, "layer %d transition" % i))
                else:
                    plan.append(PlanEntry(name, "copy", [self.T], None, "layer %d task" % i))
        elif self.method in TV_METHODS:
            tv = self.tv
            srcs = [self.base] + tv["models"]
            bck = self.ck(self.base)
            rule = "task vector %s" % tv["method"]
            for name in ref.names():
                bt = bck.tensors[name]
                # SPEC/contract: every model has the base's tensors, equal shapes and dtypes
                # (exit 2) -- also the tensors that are copied from the base.
                for mname in tv["models"]:
                    mck = self.ck(mname)
                    t = mck.tensors.get(name)
                    if t is None:
                        raise BadInput("tensor of the base is missing from model %s" % mname,
                                       mck.path, name)
                    if t.shape != bt.shape:
                        raise BadInput("shape %r of model %s differs from the base's %r"
                                       % (t.shape, mname, bt.shape), t.file, name)
                    if t.dtype != bt.dtype:
                        raise BadInput("dtype %s of model %s differs from the base's %s"
                                       % (t.dtype, mname, bt.dtype), t.file, name)
                if bt.dtype in TV_FLOAT_DTYPES:
                    plan.append(PlanEntry(name, "task_vector", list(srcs), tv["weights"], rule, tv))
                else:
                    # not BF16/F16/F32: copied from the base byte for byte (any output dtype)
                    plan.append(PlanEntry(name, "copy", [self.base], None,
                                          rule + " (%s: base copied)" % bt.dtype))
        elif self.method == "linear":
            w = self._resolve(self.lin_weights)
            for name in ref.names():
                plan.append(PlanEntry(name, "average", list(self.lin_models), w, "linear"))
        else:
            for r in self.rules:
                if "layers" in r:
                    lo, hi = r["layers"]
                    if not (0 <= lo <= hi <= L):
                        raise ConfigError("rules[%d].layers [%d, %d] is outside [0, L=%d)" % (r["i"], lo, hi, L), cp)
                if "weights" in r:
                    r["weights"] = self._resolve(r["weights"])
            for name in ref.names():
                i = layer_of(name)
                hit = None
                for r in self.rules:
                    if "re" in r and not r["re"].search(name):
                        continue
                    if "layers" in r and (i is None or not (r["layers"][0] <= i < r["layers"][1])):
                        continue
                    hit = r
                    break
                if hit is None:
                    raise ConfigError("no rule matches tensor", cp, name)
                tag = "rules[%d]" % hit["i"]
                if hit["action"] == "take":
                    plan.append(PlanEntry(name, "copy", [hit["model"]], None, tag))
                elif hit["action"] == "base":
                    plan.append(PlanEntry(name, "copy", [self.base], None, tag))
                else:
                    plan.append(PlanEntry(name, "average", list(hit["models"]), hit["weights"], tag))
        # Across models, names/shapes (and dtypes where combined) must agree (docs/input-validation.md).
        rt = ref.tensors
        for e in plan:
            for m in e.sources:
                t = self.ck(m).tensors.get(e.name)
                if t is None:
                    raise BadInput("tensor needed by the plan is missing from model %s" % m,
                                   self.ck(m).path, e.name)
                if t.shape != rt[e.name].shape:
                    raise BadInput("shape %r of model %s differs from %r" % (t.shape, m, rt[e.name].shape),
                                   t.file, e.name)
            if e.kind == "average":
                dts = [self.ck(m).tensors[e.name].dtype for m in e.sources]
                if len(set(dts)) > 1 and not self.opts.allow_mixed_dtypes:
                    # docs/input-validation.md: dtypes must agree wherever a rule combines them -> exit 2.
                    # With --allow-mixed-dtypes the first listed model's dtype is the
                    # output dtype under "dtype": "input" (see expected_tensor).
                    raise BadInput("dtypes %r differ across the averaged models" % (dts,),
                                   self.ck(e.sources[0]).path, e.name)
        return plan

    # -- computation ----------------------------------------------------------------------

    def expected_tensor(self, e):
        """-> (dtype, shape, bytes) of one output tensor."""
        srcs = [(self.ck(m), self.ck(m).tensors[e.name]) for m in e.sources]
        first_dtype = srcs[0][1].dtype
        shape = srcs[0][1].shape
        # "dtype": "input" keeps the tensor's dtype; for an average of mixed dtypes
        # (only with --allow-mixed-dtypes) that is the dtype of the first listed model.
        out = self.out_dtype or first_dtype
        if e.kind == "task_vector":
            tv = e.tv
            b = to_f32(srcs[0][0].raw(e.name), first_dtype, srcs[0][1].file, e.name)
            xs = [to_f32(ck.raw(e.name), t.dtype, t.file, e.name) for ck, t in srcs[1:]]
            keep = None
            if tv["method"] == "ties" and tv.get("trim") == "global":
                keep = self._global_keep()[e.name]
            acc = tv_merge_tensor(tv["method"], e.name, b, xs, tv["weights"], tv["density"],
                                  tv["lambda"], tv["normalize"], tv["seed"], keep)
            return out, shape, from_f32(acc, out)
        if e.kind == "copy":
            ck, t = srcs[0]
            raw = ck.raw(e.name)
            if self.method in TV_METHODS and t.dtype not in TV_FLOAT_DTYPES:
                return t.dtype, shape, bytes(raw)       # non-float: base's dtype and bytes
            if out == t.dtype:
                return out, shape, bytes(raw)           # byte for byte
            return out, shape, from_f32(to_f32(raw, t.dtype, t.file, e.name), out)
        arrs = [to_f32(ck.raw(e.name), t.dtype, t.file, e.name) for ck, t in srcs]
        acc = weighted_sum(arrs, e.weights)
        return out, shape, from_f32(acc, out)

    def _global_keep(self):
        """ties with "trim": "global" (contract): T = the base's BF16/F16/F32 tensors sorted by
        the UTF-8 bytes of their names, N = their total numel; for expert i, K_i =
        floor(d_i * N) in double and the K_i largest |delta_i| keys over the concatenation of
        T (ties to the lower position) are kept.  Computed once, for every tensor of T; the
        whole concatenation is held in memory (fine for the fixtures)."""
        if self._gkeep is None:
            tv = self.tv
            bck = self.ck(self.base)
            T = sorted((n for n, t in bck.tensors.items() if t.dtype in TV_FLOAT_DTYPES),
                       key=lambda n: n.encode("utf-8"))
            N = sum(bck.tensors[n].numel for n in T)
            bs = [bck.f32(n).ravel() for n in T]
            self._gkeep = {n: [] for n in T}
            for mname, d in zip(tv["models"], tv["density"]):
                mck = self.ck(mname)
                with np.errstate(all="ignore"):
                    deltas = [np.subtract(mck.f32(n).ravel(), b, dtype=np.float32)
                              for n, b in zip(T, bs)]
                masks = ties_global_keep_masks(deltas, ties_keep_count(d, N))
                del deltas
                for n, mk in zip(T, masks):
                    self._gkeep[n].append(mk)
        return self._gkeep

    def expected(self):
        for e in self.plan:
            yield e.name, self.expected_tensor(e)


# ----------------------------------------------------------------------------------------
# mergekit YAML configs (docs/mergekit.md; docs/mergekit.md fixes every order of operations)
#
# Written from mergekit's semantics (config.py's evaluate_setting and parameter
# precedence, plan.py's slices, merge_methods/) and the documented formulas, without
# looking at the C translator: the YAML is read here with PyYAML, independently.
# ----------------------------------------------------------------------------------------

MK_GTA = {  # method: (consensus, sparsification, default normalize, default rescale, source params)
    "task_arithmetic": (False, None, False, False, ("weight", "density")),
    "ties": (True, "magnitude", True, False, ("weight", "density")),
    "dare_linear": (False, "random", False, True, ("weight", "density")),
    "dare_ties": (True, "random", False, True, ("weight", "density")),
    "breadcrumbs": (False, "outliers", False, False, ("weight", "density", "gamma")),
    "breadcrumbs_ties": (True, "outliers", False, False, ("weight", "density", "gamma")),
    "della": (True, "della", True, True, ("weight", "density", "epsilon")),
    "della_linear": (False, "della", False, True, ("weight", "density", "epsilon")),
}
MK_METHODS = set(MK_GTA) | {"linear", "passthrough", "slerp", "model_stock"}
MK_DEFAULTS = {"density": 1.0, "gamma": 0.01, "epsilon": 0.15, "lambda": 1.0}
MK_DTYPES = {"bfloat16": "BF16", "bf16": "BF16", "float16": "F16", "fp16": "F16", "half": "F16",
             "float32": "F32", "fp32": "F32", "float": "F32"}


def mk_evaluate(setting, name, t):
    """mergekit's evaluate_setting: a number; a gradient (list of numbers) interpolated at
    t in [0, 1]; or a list of {filter, value} -- the first whose filter is absent, "*" or a
    substring of name. None when no condition matches."""
    if isinstance(setting, bool) or isinstance(setting, (int, float)):
        return setting
    if isinstance(setting, list) and setting and all(isinstance(e, (int, float)) and not isinstance(e, bool)
                                                     for e in setting):
        scaled = t * (len(setting) - 1)
        i0 = int(scaled)
        i1 = min(len(setting) - 1, i0 + 1)
        frac = scaled - i0
        return (1 - frac) * setting[i0] + frac * setting[i1]
    if isinstance(setting, list):
        for cond in setting:
            f = cond.get("filter")
            if f is None or f == "*" or f in name:
                return mk_evaluate(cond["value"], name, t)
        return None
    raise ConfigError("unexpected parameter value %r" % (setting,))


def mk_rename(name, to):
    """name with its first 'layers.<i>.' index replaced by `to`."""
    m = re.search(r"layers\.(\d+)\.", name)
    return name if m is None else name[:m.start(1)] + str(to) + name[m.end(1):]


def lane_sum(prod):
    """f64 products summed in 8 lanes (element j into lane j mod 8, each lane left to right
    from +0.0), then the lanes added in order from +0.0."""
    tot = 0.0
    for l in range(8):
        lane = np.asarray(prod[l::8], dtype=np.float64)
        s = float(np.add.accumulate(np.concatenate(([0.0], lane)))[-1])
        tot = tot + s
    return tot


def rank_keys(delta):
    """f32 bit pattern of |delta| as unsigned ints."""
    return (np.ascontiguousarray(delta, dtype=np.float32).view(np.uint32) & np.uint32(0x7FFFFFFF))


def breadcrumbs_mask(delta, d, gamma):
    """Order: key descending, ties to the lower flat index; keep positions [top, top + K),
    K = floor(d*numel), top = min(floor(gamma*numel), numel - K)."""
    n = delta.size
    K = int(math.floor(float(d) * n))
    top = min(int(math.floor(float(gamma) * n)), n - K)
    keys = rank_keys(delta).astype(np.int64)
    order = np.lexsort((np.arange(n), -keys))
    mask = np.zeros(n, dtype=bool)
    mask[order[top:top + K]] = True
    return mask


def della_sparsify(delta, shape, d, eps, seed, name, i, rescale):
    """Per row (c1*c2*... elements; 1-D: one row), rank r = 1..n of |delta| ascending (ties to
    the lower index); p = (d - eps) + ((r - 1)/(n - 1)) * (2 eps) in f64; keep iff u < p
    (u: the DARE stream of expert i); survivors / float32(p) when rescale."""
    n_el = delta.size
    if d <= 0.0:
        return np.zeros(n_el, dtype=np.float32)
    R = n_el // shape[0] if len(shape) >= 2 and shape[0] else max(n_el, 1)
    p = np.zeros(n_el, dtype=np.float64)
    keys = rank_keys(delta).astype(np.int64)
    for r0 in range(0, n_el, R):
        k = keys[r0:r0 + R]
        order = np.lexsort((np.arange(k.size), k))
        rank = np.empty(k.size, dtype=np.int64)
        rank[order] = np.arange(k.size)
        rn = rank.astype(np.float64) / np.float64(k.size - 1) if k.size > 1 else np.zeros(k.size)
        p[r0:r0 + R] = (d - eps) + rn * (2.0 * eps)
    u = dare_uniforms(seed, name, i, n_el)
    keep = u < p
    with np.errstate(all="ignore"):
        scaled = delta / p.astype(np.float32) if rescale else delta
    return np.where(keep, scaled, np.float32(0.0)).astype(np.float32)


class MkEntry(object):
    __slots__ = ("name", "layer", "t", "sources", "glob", "per")

    def __init__(self, name, layer, t, sources, glob, per):
        # sources: [(model path, source tensor name)], base first for methods with a base
        self.name, self.layer, self.t, self.sources, self.glob, self.per = name, layer, t, sources, glob, per


class MergekitMerge(object):
    """A mergekit YAML config -> expected output tensors."""

    def __init__(self, config_path, opts=None):
        import yaml
        self.config_path = config_path
        self.cfg_dir = os.path.dirname(os.path.abspath(config_path))
        with open(config_path) as f:
            cfg = yaml.safe_load(f)
        self.cfg = cfg
        self.method = cfg["merge_method"]
        if self.method not in MK_METHODS:
            raise ConfigError("merge_method %r" % self.method, config_path)
        self.base = self._path(cfg.get("base_model"))
        od = cfg.get("out_dtype") or cfg.get("dtype")
        self.out_dtype = MK_DTYPES[od] if od else None
        self.top = cfg.get("parameters") or {}
        self._ck = {}
        self.output_path = None
        self.plan = self._plan()
        self.L = self.out_layers

    def _path(self, p):
        if p is None:
            return None
        return p if os.path.isabs(p) else os.path.join(self.cfg_dir, p)

    def ck(self, path):
        if path not in self._ck:
            self._ck[path] = Checkpoint(path)
        return self._ck[path]

    def _slices(self):
        """mergekit normalize_config: models -> one slice over every layer (the base added
        for methods that need it); each source = (path, lo, hi, own parameters)."""
        cfg = self.cfg
        needs_base = self.method not in ("linear", "passthrough")
        if cfg.get("models"):
            srcs = []
            for m in cfg["models"]:
                p = self._path(m["model"])
                srcs.append((p, 0, num_layers(self.ck(p)), m.get("parameters") or {}))
            if needs_base and self.base not in [s[0] for s in srcs]:
                srcs.append((self.base, 0, num_layers(self.ck(self.base)), {}))
            return [(srcs, {})]
        out = []
        for sl in cfg["slices"]:
            srcs = [(self._path(s["model"]), s["layer_range"][0], s["layer_range"][1], s.get("parameters") or {})
                    for s in sl["sources"]]
            out.append((srcs, sl.get("parameters") or {}))
        return out

    def _param(self, name, src_params, slice_params, tensor, t, default):
        """Precedence: the source's parameters, the slice's, the top level's, the default."""
        for level in (src_params, slice_params, self.top):
            if level is not None and name in level:
                v = mk_evaluate(level[name], tensor, t)
                if v is not None:
                    return v
        return default

    def _entry(self, srcs, sp, ref_name, idx, out_layer, t):
        """Sources ordered base first (methods with a base), parameters evaluated."""
        gta = self.method in MK_GTA
        order = list(srcs)
        if self.method not in ("linear", "passthrough"):
            order = [s for s in srcs if s[0] == self.base] + [s for s in srcs if s[0] != self.base]
        out_name = ref_name if out_layer is None else mk_rename(ref_name, out_layer)
        sources, per = [], []
        for (path, lo, hi, own) in order:
            sname = ref_name if idx is None else mk_rename(ref_name, lo + idx)
            sources.append((path, sname))
            vals = {}
            for pn in ("weight", "density", "gamma", "epsilon", "scale"):
                vals[pn] = self._param(pn, own, sp, sname, t, MK_DEFAULTS.get(pn))
            per.append(vals)
        glob = {pn: self._param(pn, None, sp, out_name, t, MK_DEFAULTS.get(pn)) for pn in ("lambda", "t")}
        return MkEntry(out_name, out_layer, t, sources, glob, per)

    def _plan(self):
        slices = self._slices()
        plan, out = [], 0
        for srcs, sp in slices:
            ref = self.ck(srcs[0][0])
            lo0, hi0 = srcs[0][1], srcs[0][2]
            n = hi0 - lo0
            for name in ref.names():
                i = layer_of(name)
                if i is None or not (lo0 <= i < hi0):
                    continue
                idx = i - lo0
                t = idx / (n - 1) if n > 1 else 1
                plan.append(self._entry(srcs, sp, name, idx, out + idx, t))
            out += n
        self.out_layers = out
        ref0 = self.ck(slices[0][0][0][0])
        for name in ref0.names():
            if layer_of(name) is not None:
                continue
            srcs, sp = slices[0] if "embed" in name else slices[-1]
            plan.append(self._entry(srcs, sp, name, None, None, 0))
        return plan

    def expected(self):
        for e in self.plan:
            yield e.name, self.expected_tensor(e)

    def expected_tensor(self, e):
        cks = [(self.ck(p), n) for p, n in e.sources]
        t0 = cks[0][0].tensors[cks[0][1]]
        dt, shape = t0.dtype, t0.shape
        if dt not in TV_FLOAT_DTYPES:
            return dt, shape, bytes(cks[0][0].raw(cks[0][1]))
        out = self.out_dtype or dt
        xs = [to_f32(ck.raw(n), ck.tensors[n].dtype) for ck, n in cks]
        m = self.method
        if m == "passthrough":
            sc = e.per[0]["scale"]
            if sc is None:
                if out == dt:
                    return out, shape, bytes(cks[0][0].raw(cks[0][1]))
                return out, shape, from_f32(xs[0], out)
            return out, shape, from_f32(weighted_sum([xs[0]], [np.float32(sc)]), out)
        if m == "linear":
            ws = [v["weight"] for v in e.per]
            if any(w is None for w in ws):
                raise ConfigError("linear: a model has no weight", self.config_path, e.name)
            norm = self.top.get("normalize", True)
            if norm:
                s = 0.0
                for w in ws:
                    s += float(w)
                ws = [float(w) / s for w in ws]
            return out, shape, from_f32(weighted_sum(xs, f32_weights([float(w) for w in ws])), out)
        if m == "slerp":
            return out, shape, from_f32(weighted_sum(xs, self._slerp_w(xs, e.glob["t"])), out)
        if m == "model_stock":
            return out, shape, from_f32(weighted_sum(xs, self._stock_w(xs)), out)
        return out, shape, from_f32(self._gta(e, xs, shape), out)

    @staticmethod
    def _slerp_w(xs, t):
        b, x = xs[0].astype(np.float64), xs[1].astype(np.float64)
        n0, n1, dot = math.sqrt(lane_sum(b * b)), math.sqrt(lane_sum(x * x)), lane_sum(b * x)
        n0p = n0 if n0 > 1e-8 else 1.0
        n1p = n1 if n1 > 1e-8 else 1.0
        c = dot / (n0p * n1p)
        if abs(c) > 0.9995:
            w = (1.0 - t, t)
        else:
            th = math.acos(c)
            s = math.sin(th)
            tht = th * t
            w = (math.sin(th - tht) / s, math.sin(tht) / s)
        return f32_weights(w)

    @staticmethod
    def _stock_w(xs):
        with np.errstate(all="ignore"):
            ds = [np.subtract(x, xs[0], dtype=np.float32).astype(np.float64) for x in xs[1:]]
        k = len(ds)
        nrm = [math.sqrt(lane_sum(d * d)) for d in ds]
        csum = 0.0
        for a in range(k):
            for b in range(a + 1, k):
                c = lane_sum(ds[a] * ds[b]) / max(nrm[a] * nrm[b], 1e-6)
                csum += min(1.0, max(-1.0, c))
        cos = csum / (k * (k - 1) // 2)
        N = float(k)
        den = 1.0 + (N - 1.0) * cos
        tau = 0.0 if den == 0.0 else (N * cos) / den
        return f32_weights([1.0 - tau] + [tau / N] * k)

    def _gta(self, e, xs, shape):
        consensus, sparse, dnorm, dresc, _ = MK_GTA[self.method]
        normalize = self.top.get("normalize", dnorm)
        rescale = self.top.get("rescale", dresc)
        base = xs[0]
        deltas, weights = [], []
        for i, (x, v) in enumerate(zip(xs[1:], e.per[1:])):
            if v["weight"] is None:
                raise ConfigError("%s: a model has no weight" % self.method, self.config_path, e.name)
            with np.errstate(all="ignore"):
                dl = np.subtract(x, base, dtype=np.float32)
            d = float(v["density"])
            if d < 1.0:
                if sparse == "magnitude":
                    dl = ties_sparsify(dl, d)
                elif sparse == "outliers":
                    dl = np.where(breadcrumbs_mask(dl, d, float(v["gamma"])), dl, np.float32(0.0)).astype(np.float32)
                elif sparse == "random":
                    u = dare_uniforms(0, e.name, i, dl.size)
                    with np.errstate(all="ignore"):
                        sc = dl / np.float32(d) if rescale else dl
                    dl = np.where(u < np.float64(d), sc, np.float32(0.0)).astype(np.float32)
                elif sparse == "della":
                    dl = della_sparsify(dl, shape, d, float(v["epsilon"]), 0, e.name, i, rescale)
            deltas.append(dl)
            weights.append(np.float32(float(v["weight"])))
        if consensus:
            mm = tv_combine_ties(deltas, weights, normalize)
        else:
            mm = tv_combine_linear(deltas, weights, normalize)
        lam = np.float32(float(e.glob["lambda"]))
        with np.errstate(all="ignore"):
            res = base + lam * mm
        return res


def make_merge(config_path, opts=None):
    if config_path.endswith((".yml", ".yaml")):
        return MergekitMerge(config_path, opts)
    return Merge(config_path, opts)


# ----------------------------------------------------------------------------------------
# Writing (for `expect` and tests)
# ----------------------------------------------------------------------------------------


def write_safetensors(path, tensors, metadata=None):
    """tensors: iterable of (name, (dtype, shape, bytes)); header padded with spaces to 8."""
    items = list(tensors)
    hdr = {}
    if metadata is not None:
        hdr["__metadata__"] = metadata
    off = 0
    for name, (dt, shape, raw) in items:
        hdr[name] = {"dtype": dt, "shape": list(shape), "data_offsets": [off, off + len(raw)]}
        off += len(raw)
    h = json.dumps(hdr, separators=(",", ":")).encode("utf-8")
    h += b" " * ((-len(h)) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for _, (_, _, raw) in items:
            f.write(raw)


# ----------------------------------------------------------------------------------------
# Comparison
# ----------------------------------------------------------------------------------------

_VIEW = {1: "<u1", 2: "<u2", 4: "<u4", 8: "<u8"}


def _decode(bits, dtype):
    try:
        if dtype == "BF16":
            return repr(float((np.uint32(bits) << np.uint32(16)).view(np.float32)))
        if dtype == "F16":
            return repr(float(np.uint16(bits).view(np.float16)))
        if dtype == "F32":
            return repr(float(np.uint32(bits).view(np.float32)))
        if dtype == "F64":
            return repr(float(np.uint64(bits).view(np.float64)))
    except Exception:
        pass
    return str(int(bits))


def _fmt(bits, dtype, width):
    return "0x%0*x (%s)" % (width * 2, int(bits), _decode(bits, dtype))


def compare_tensor(name, exp, got):
    """-> None if identical, else a one-line description."""
    edt, esh, eb = exp
    gdt, gsh, gb = got
    if edt != gdt:
        return "%s: dtype differs: expected %s got %s" % (name, edt, gdt)
    if tuple(esh) != tuple(gsh):
        return "%s: shape differs: expected %s got %s" % (name, list(esh), list(gsh))
    eb, gb = bytes(eb), bytes(gb)
    if eb == gb:
        return None
    if len(eb) != len(gb):
        return "%s: byte length differs: expected %d got %d" % (name, len(eb), len(gb))
    w = DTYPE_SIZE.get(edt, 1)
    ea = np.frombuffer(eb, dtype=_VIEW.get(w, "<u1"))
    ga = np.frombuffer(gb, dtype=_VIEW.get(w, "<u1"))
    diff = np.nonzero(ea != ga)[0]
    i = int(diff[0])
    idx = tuple(int(x) for x in np.unravel_index(i, esh)) if len(esh) else ()
    return ("%s: bytes differ in %d of %d elements; first at flat index %d %s: expected %s got %s"
            % (name, diff.size, ea.size, i, list(idx), _fmt(ea[i], edt, w), _fmt(ga[i], edt, w)))


def check_layout(outdir):
    """docs/output.md details of a safetensors output folder: -> list of problems."""
    probs = []
    ck = Checkpoint(outdir)
    for f in ck.files:
        with open(f, "rb") as fh:
            n = struct.unpack("<Q", fh.read(8))[0]
        if n % 8:
            probs.append("%s: header length %d is not a multiple of 8" % (f, n))
        _, md = read_safetensors_header(f)
        if md.get("format") != "pt":
            probs.append("%s: __metadata__ lacks \"format\": \"pt\"" % f)
    if os.path.isdir(outdir) and not os.path.isfile(os.path.join(outdir, "layerswap-manifest.json")):
        probs.append("%s: no layerswap-manifest.json" % outdir)
    return probs


def compare_expected(expected_iter, outdir, quiet=False, layout=False, out=sys.stdout):
    """expected_iter yields (name, (dtype, shape, bytes)). Returns (passed, failed)."""
    try:
        ck = Checkpoint(outdir)
    except (LswError, Unsupported) as e:
        print("output folder cannot be read: %s" % e, file=out)
        print("0 passed, 1 failed", file=out)
        return 0, 1
    passed = failed = 0
    seen = set()
    for name, exp in expected_iter:
        seen.add(name)
        t = ck.tensors.get(name)
        if t is None:
            print("%s: missing from the output" % name, file=out)
            failed += 1
            continue
        msg = compare_tensor(name, exp, (t.dtype, t.shape, ck.raw(name)))
        if msg is None:
            passed += 1
            if not quiet and os.environ.get("LSW_REF_VERBOSE"):
                print("ok %s" % name, file=out)
        else:
            print(msg, file=out)
            failed += 1
    for name in sorted(set(ck.tensors) - seen):
        print("%s: unexpected tensor in the output" % name, file=out)
        failed += 1
    if layout:
        for p in check_layout(outdir):
            print("layout: %s" % p, file=out)
            failed += 1
    print("%d passed, %d failed" % (passed, failed), file=out)
    return passed, failed


# ----------------------------------------------------------------------------------------
# CLI
# ----------------------------------------------------------------------------------------

USAGE = __doc__[__doc__.index("CLI"):__doc__.index("Exit codes")]


def _opts(args):
    return Options(allow_mixed_dtypes="--allow-mixed-dtypes" in args,
                   rules_normalize="--rules-normalize" in args)


def _flagval(args, flag):
    if flag in args:
        i = args.index(flag)
        if i + 1 >= len(args):
            raise SystemExit("Usage: %s needs a value" % flag)
        v = args[i + 1]
        del args[i:i + 2]
        return v
    return None


def main(argv):
    if len(argv) < 1 or argv[0] in ("-h", "--help"):
        print("Usage: lsw_ref.py COMMAND ...\n" + USAGE)
        return 0 if argv else 1
    cmd, args = argv[0], list(argv[1:])
    try:
        if cmd == "merge":
            outdir = _flagval(args, "--compare")
            pos = [a for a in args if not a.startswith("-")]
            if len(pos) != 1:
                print("Usage: lsw_ref.py merge CONFIG.json [--compare OUTDIR]", file=sys.stderr)
                return 1
            mg = make_merge(pos[0], _opts(args))
            outdir = outdir or mg.output_path
            if outdir is None:
                print("no --compare OUTDIR and no output.path in the config", file=sys.stderr)
                return 1
            _, failed = compare_expected(mg.expected(), outdir, quiet="-q" in args,
                                         layout="--check-layout" in args)
            return 0 if failed == 0 else 1
        if cmd == "plan":
            mg = make_merge(args[0], _opts(args))
            print("# L = %d, reference model %s" % (mg.L, mg.reference_model()))
            for e in mg.plan:
                print(e.line())
            return 0
        if cmd == "expect":
            pos = [a for a in args if not a.startswith("-")]
            mg = make_merge(pos[0], _opts(args))
            os.makedirs(pos[1], exist_ok=True)
            write_safetensors(os.path.join(pos[1], "model.safetensors"), mg.expected(),
                              {"format": "pt"})
            return 0
        if cmd == "dump":
            pos = [a for a in args if not a.startswith("-")]
            mg = make_merge(pos[0], _opts(args))
            arrays, meta = {}, {}
            for name, (dt, shape, raw) in mg.expected():
                key = "t%06d" % len(meta)
                arrays[key] = np.frombuffer(bytes(raw), dtype=np.uint8)
                meta[key] = {"name": name, "dtype": dt, "shape": list(shape)}
            arrays["__meta__"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
            np.savez(pos[1], **arrays)
            return 0
        if cmd == "mav":
            jpath = _flagval(args, "--json")
            if len(args) < 2:
                print("Usage: lsw_ref.py mav BASE EXPERT [EXPERT...] [--json FILE]", file=sys.stderr)
                return 1
            base = Checkpoint(args[0])
            mavs, js = [], {}
            for p in args[1:]:
                ex = Checkpoint(p)
                m = model_mav(base, ex)
                mavs.append(m)
                print("%s\tmodel_mav=%.17g" % (p, m))
                if jpath:
                    js[p] = {"model_mav": m, "rows": {n: row_mavs(base, ex, n).tolist()
                                                       for n in sorted(ex.tensors)}}
            if len(mavs) > 1:
                for p, w in zip(args[1:], magnitude_weights(mavs)):
                    print("%s\tmagnitude_weight=%.9g (%s)" % (p, float(w), hex32(w)))
            if jpath:
                with open(jpath, "w") as f:
                    json.dump(js, f, indent=1)
            return 0
        if cmd == "derived":
            # derived CONFIG [--materialise DIR CONFIG_OUT]: the revert_rows report as JSON;
            # with --materialise, every derived model written to DIR and CONFIG_OUT the
            # same config with their folders in place of the derived entries.
            import lsw_ref_derived
            pos = [a for a in args if not a.startswith("-")]
            mg = make_merge(pos[0], _opts(args))
            rep = {}
            for name in mg.derived:
                c = mg.ck(name)
                if c.kind in ("below", "keep"):
                    c.decisions()
                    rep[name] = {"threshold": c.threshold, "kept_fraction": c.kept_fraction}
            print(json.dumps(rep))
            if "--materialise" in args:
                models = lsw_ref_derived.materialise(mg, pos[1])
                cfg = dict(mg.cfg)
                cfg["models"] = models
                with open(pos[2], "w") as f:
                    json.dump(cfg, f, indent=1)
            return 0
        if cmd == "inspect":
            ck = Checkpoint(args[0])
            for n in ck.names():
                t = ck.tensors[n]
                print("%s\t%s\t%s\t%d" % (n, t.dtype, list(t.shape), t.nbytes))
            print("%d tensors, L = %d" % (len(ck.tensors), num_layers(ck)))
            return 0
        if cmd == "compare":
            exp = Checkpoint(args[0])
            it = ((n, (t.dtype, t.shape, exp.raw(n))) for n, t in exp.tensors.items())
            _, failed = compare_expected(it, args[1], layout="--check-layout" in args)
            return 0 if failed == 0 else 1
    except LswError as e:
        print("error: %s  [engine must exit %d]" % (e, e.engine_code), file=sys.stderr)
        return 2
    except Unsupported as e:
        print("unsupported by the oracle: %s" % e, file=sys.stderr)
        return 3
    print("Usage: lsw_ref.py COMMAND ...\n" + USAGE, file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
