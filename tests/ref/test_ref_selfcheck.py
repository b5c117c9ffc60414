#!/usr/bin/python3
"""Self-check of the reference oracle lsw_ref.py against hand-computed values.

Builds small checkpoints with its own minimal safetensors writer (independent of the
module's), runs merges through the oracle and asserts exact bit patterns worked out by
hand (comments give the arithmetic).  Also checks the oracle's validator against
make_bad_safetensors.py and round-trips the real fixtures in tests/data.

Run: /usr/bin/python3 tests/ref/test_ref_selfcheck.py
"""

import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import unittest

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True      # no __pycache__ in the source tree
import lsw_ref  # noqa: E402

REF = os.path.join(HERE, "lsw_ref.py")
FIXTURES = os.path.join(HERE, "..", "data", "llama-bf16-sharded")
PY = sys.executable


# ---------------------------------------------------------------- test-local writer ----

def st_bytes(items, metadata=None):
    """items: list of (name, dtype, shape, raw bytes) -> safetensors file bytes."""
    hdr, off = {}, 0
    if metadata is not None:
        hdr["__metadata__"] = metadata
    for name, dt, shape, raw in items:
        hdr[name] = {"dtype": dt, "shape": list(shape), "data_offsets": [off, off + len(raw)]}
        off += len(raw)
    h = json.dumps(hdr).encode()
    h += b" " * ((-len(h)) % 8)
    return struct.pack("<Q", len(h)) + h + b"".join(r for _, _, _, r in items)


def write_single(folder, items):
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "model.safetensors"), "wb") as f:
        f.write(st_bytes(items, {"format": "pt"}))


def write_sharded(folder, items, nshards):
    os.makedirs(folder, exist_ok=True)
    wm = {}
    per = (len(items) + nshards - 1) // nshards
    for s in range(nshards):
        fn = "model-%05d-of-%05d.safetensors" % (s + 1, nshards)
        part = items[s * per:(s + 1) * per]
        with open(os.path.join(folder, fn), "wb") as f:
            f.write(st_bytes(part, {"format": "pt"}))
        for it in part:
            wm[it[0]] = fn
    with open(os.path.join(folder, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {}, "weight_map": wm}, f)


def u16(*bits):
    return np.array(bits, dtype="<u2").tobytes()


def u32(*bits):
    return np.array(bits, dtype="<u4").tobytes()


def f32(*vals):
    return np.array(vals, dtype="<f4").tobytes()


def bf16_const(bits, n):
    return u16(*([bits] * n))


def config(folder, name, cfg):
    p = os.path.join(folder, name)
    with open(p, "w") as f:
        json.dump(cfg, f)
    return p


def merged(cfg_path, **opts):
    mg = lsw_ref.Merge(cfg_path, lsw_ref.Options(**opts))
    return {n: t for n, t in mg.expected()}, mg


def bits16(raw):
    return [int(x) for x in np.frombuffer(raw, dtype="<u2")]


def bits32(raw):
    return [int(x) for x in np.frombuffer(raw, dtype="<u4")]


def run_cli(*args):
    p = subprocess.run([PY, REF] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       universal_newlines=True)
    return p.returncode, p.stdout + p.stderr


# ------------------------------------------------------------------------ the tests ----

LAYER_TENSORS = [("mlp.up_proj.weight", (2, 2)), ("input_layernorm.weight", (2,))]
NONLAYER = [("model.embed_tokens.weight", (3, 2)), ("model.norm.weight", (2,))]


def llama_like(L, bits):
    """All tensors of a tiny Llama-named model filled with one bf16 bit pattern."""
    items = []
    for name, shape in NONLAYER:
        items.append((name, "BF16", shape, bf16_const(bits, int(np.prod(shape)))))
    for i in range(L):
        for t, shape in LAYER_TENSORS:
            items.append(("model.layers.%d.%s" % (i, t), "BF16", shape,
                          bf16_const(bits, int(np.prod(shape)))))
    return items


class Base(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="lsw_ref_")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def d(self, *p):
        return os.path.join(self.tmp, *p)


class TestLayerSwap(Base):
    def setUp(self):
        super().setUp()
        # base = 0, task T = 1.0 (0x3F80), language G = 3.0 (0x4040): every row MAV is
        # 1 for T and 3 for G, so M_T = 1, M_G = 3 and the magnitude weights are
        # (1/1)/(1 + 1/3) = 0.75 and (1/3)/(4/3) = 0.25, both exact in f32.
        write_single(self.d("base"), llama_like(4, 0x0000))
        write_sharded(self.d("T"), llama_like(4, 0x3F80), 2)
        write_single(self.d("G"), llama_like(4, 0x4040))

    def cfg(self, **ls):
        sec = {"task_expert": "T", "language_expert": "G", "bottom": 1, "top": 1,
               "lower_transition": 1, "upper_transition": 0, "transition_weights": "uniform",
               "non_layer": "average", "non_layer_weights": "uniform"}
        sec.update(ls)
        return config(self.tmp, "ls.json", {
            "models": {"base": "base", "T": "T", "G": "G"}, "base": "base",
            "method": "layer_swap", "layer_swap": sec, "output": {"path": "out", "dtype": "input"}})

    def test_uniform(self):
        out, mg = merged(self.cfg())
        self.assertEqual(mg.L, 4)
        want = {0: 0x4040, 1: 0x4000, 2: 0x3F80, 3: 0x4040}   # G, avg (0.5*1+0.5*3=2), T, G
        for i, b in want.items():
            for t, _ in LAYER_TENSORS:
                dt, shape, raw = out["model.layers.%d.%s" % (i, t)]
                self.assertEqual(dt, "BF16")
                self.assertEqual(set(bits16(raw)), {b}, (i, t))
        for name, shape in NONLAYER:
            self.assertEqual(out[name][1], shape)
            self.assertEqual(set(bits16(out[name][2])), {0x4000})

    def test_magnitude(self):
        out, mg = merged(self.cfg(transition_weights="magnitude", non_layer_weights="magnitude"))
        self.assertEqual(mg.mav("T"), 1.0)
        self.assertEqual(mg.mav("G"), 3.0)
        e = [e for e in mg.plan if e.name == "model.layers.1.mlp.up_proj.weight"][0]
        self.assertEqual([lsw_ref.hex32(w) for w in e.weights], ["0x3f400000", "0x3e800000"])
        # 0.75*1 + 0.25*3 = 1.5 -> bf16 0x3FC0
        self.assertEqual(set(bits16(out["model.layers.1.mlp.up_proj.weight"][2])), {0x3FC0})
        self.assertEqual(set(bits16(out["model.norm.weight"][2])), {0x3FC0})

    def test_non_layer_and_upper(self):
        out, _ = merged(self.cfg(non_layer="task"))
        self.assertEqual(set(bits16(out["model.norm.weight"][2])), {0x3F80})
        out, _ = merged(self.cfg(non_layer="language", bottom=0, lower_transition=0,
                                 top=1, upper_transition=1))
        self.assertEqual(set(bits16(out["model.norm.weight"][2])), {0x4040})
        want = {0: 0x3F80, 1: 0x3F80, 2: 0x4000, 3: 0x4040}    # T, T, transition, G
        for i, b in want.items():
            self.assertEqual(set(bits16(out["model.layers.%d.mlp.up_proj.weight" % i][2])), {b})

    def test_config_errors(self):
        with self.assertRaises(lsw_ref.ConfigError):
            merged(self.cfg(bottom=5))                          # outside [0, L)
        with self.assertRaises(lsw_ref.ConfigError):
            merged(self.cfg(task_expert="nope"))                # undefined model
        with self.assertRaises(lsw_ref.ConfigError):
            merged(self.cfg(bogus=1))                           # unknown key
        p = config(self.tmp, "missing.json", {
            "models": {"T": "T", "G": "does-not-exist"}, "method": "layer_swap",
            "layer_swap": {"task_expert": "T", "language_expert": "G"}})
        with self.assertRaises(lsw_ref.BadInput):
            merged(p)
        rc, txt = run_cli("merge", p, "--compare", self.d("nothing"))
        self.assertEqual(rc, 2)
        self.assertIn("engine must exit 2", txt)


class TestNumerics(Base):
    def two(self, a_items, b_items, weights=None, normalize=None, dtype="input", models=("A", "B"),
            **opts):
        write_single(self.d("A"), a_items)
        write_single(self.d("B"), b_items)
        lin = {"models": list(models)}
        if weights is not None:
            lin["weights"] = weights
        if normalize is not None:
            lin["normalize"] = normalize
        p = config(self.tmp, "lin.json", {"models": {"A": "A", "B": "B"}, "method": "linear",
                                          "linear": lin, "output": {"dtype": dtype}})
        return merged(p, **opts)[0]

    def test_average_1_2(self):
        # bf16 1.0 (0x3F80) and 2.0 (0x4000), uniform 0.5 each: 0.5 + 1.0 = 1.5 -> 0x3FC0
        out = self.two([("w", "BF16", (1,), u16(0x3F80))], [("w", "BF16", (1,), u16(0x4000))])
        self.assertEqual(bits16(out["w"][2]), [0x3FC0])

    def test_rne_ties(self):
        # (1.0 + 1.0078125)/2 = 1.00390625 = f32 0x3F808000: halfway, 0x3F80 is even -> 0x3F80
        # (1.0078125 + 1.015625)/2 = 1.01171875 = 0x3F818000: halfway, 0x3F81 odd -> 0x3F82
        # (1.0 + 1.015625)/2 = 1.0078125 exact -> 0x3F81;  -(tie) -> 0xBF80
        out = self.two([("w", "BF16", (4,), u16(0x3F80, 0x3F81, 0x3F80, 0xBF80))],
                       [("w", "BF16", (4,), u16(0x3F81, 0x3F82, 0x3F82, 0xBF81))])
        self.assertEqual(bits16(out["w"][2]), [0x3F80, 0x3F82, 0x3F81, 0xBF80])

    def test_nan_and_overflow(self):
        # any NaN -> 0x7FC0 (negative NaN, signalling NaN with payload); max bf16 0x7F7F
        # twice with weights 1, 1 (normalize false) overflows f32 -> inf 0x7F80 / 0xFF80
        out = self.two([("w", "BF16", (4,), u16(0xFFC1, 0x7F81, 0x7F7F, 0xFF7F))],
                       [("w", "BF16", (4,), u16(0x3F80, 0x3F80, 0x7F7F, 0xFF7F))],
                       weights=[1, 1], normalize=False)
        self.assertEqual(bits16(out["w"][2]), [0x7FC0, 0x7FC0, 0x7F80, 0xFF80])

    def test_normalize(self):
        # weights [1, 3] -> 0.25, 0.75: 0.25*4 + 0.75*8 = 7 -> bf16 0x40E0
        out = self.two([("w", "BF16", (1,), u16(0x4080))], [("w", "BF16", (1,), u16(0x4100))],
                       weights=[1, 3])
        self.assertEqual(bits16(out["w"][2]), [0x40E0])
        # normalize false: 1*4 + 3*8 = 28 -> 0x41E0
        out = self.two([("w", "BF16", (1,), u16(0x4080))], [("w", "BF16", (1,), u16(0x4100))],
                       weights=[1, 3], normalize=False)
        self.assertEqual(bits16(out["w"][2]), [0x41E0])
        # [1, 2] -> 1/3, 2/3 in f64, rounded to f32 once: 0x3EAAAAAB, 0x3F2AAAAB
        out, mg = None, lsw_ref.Merge(config(self.tmp, "l3.json", {
            "models": {"A": "A", "B": "B"}, "method": "linear",
            "linear": {"models": ["A", "B"], "weights": [1, 2]}}))
        self.assertEqual([lsw_ref.hex32(w) for w in mg.plan[0].weights], ["0x3eaaaaab", "0x3f2aaaab"])

    def test_no_fma_and_order(self):
        # f32 output.  w1 = 1 + 2^-12, x1 = 1 + 2^-12: exact product 1 + 2^-11 + 2^-24 rounds
        # (tie, even) to 1 + 2^-11; w2 = -1, x2 = 1 + 2^-11: sum 0.  A fused w1*x1 + p2 would
        # give 2^-24 (0x33800000).
        out = self.two([("w", "F32", (1,), f32(1 + 2 ** -12))], [("w", "F32", (1,), f32(1 + 2 ** -11))],
                       weights=[1 + 2 ** -12, -1], normalize=False)
        self.assertEqual(bits32(out["w"][2]), [0x00000000])
        # the same with the inexact product second: -(1 + 2^-11) + round(w*x) = 0, where a
        # contraction into fma(w2, x2, acc) would give 2^-24
        out = self.two([("w", "F32", (1,), f32(1 + 2 ** -12))], [("w", "F32", (1,), f32(1 + 2 ** -11))],
                       weights=[-1, 1 + 2 ** -12], normalize=False, models=("B", "A"))
        self.assertEqual(bits32(out["w"][2]), [0x00000000])
        # left to right in model order: A = [1, 2^-24], B = [2^-24, 1] with weights 1, 1:
        # element 0: 1 + 2^-24 = 1 (tie, even); element 1: 2^-24 + 1 = 1 too.  Three models
        # [1, 2^-24, 2^-24]: (1 + 2^-24) + 2^-24 = 1 -> 0x3F800000, while
        # [2^-24, 2^-24, 1]: 2^-23 + 1 = 0x3F800001.
        for order, want in ((("A", "B", "C"), 0x3F800000), (("B", "C", "A"), 0x3F800001)):
            write_single(self.d("A"), [("w", "F32", (1,), f32(1.0))])
            write_single(self.d("B"), [("w", "F32", (1,), f32(2 ** -24))])
            write_single(self.d("C"), [("w", "F32", (1,), f32(2 ** -24))])
            p = config(self.tmp, "o.json", {"models": {"A": "A", "B": "B", "C": "C"}, "method": "linear",
                                            "linear": {"models": list(order), "weights": [1, 1, 1],
                                                       "normalize": False}})
            self.assertEqual(bits32(merged(p)[0]["w"][2]), [want], order)

    def test_default_weights_three_models(self):
        # linear without weights over 3 models: 1/3 in f64 -> f32 0x3EAAAAAB each;
        # f32(1/3) * 3 = 1 + 2^-25 rounds to 1, so 3 x 3.0 -> 3.0 (f32 0x40400000)
        for m in "ABC":
            write_single(self.d(m), [("w", "F32", (1,), f32(3.0))])
        p = config(self.tmp, "l3.json", {"models": {"A": "A", "B": "B", "C": "C"}, "method": "linear",
                                         "linear": {"models": ["A", "B", "C"]}})
        out, mg = merged(p)
        self.assertEqual([lsw_ref.hex32(w) for w in mg.plan[0].weights], ["0x3eaaaaab"] * 3)
        self.assertEqual(bits32(out["w"][2]), [0x40400000])

    def take(self, items, dtype):
        write_single(self.d("A"), items)
        p = config(self.tmp, "take.json", {"models": {"A": "A"}, "method": "rules",
                                           "rules": [{"action": "take", "model": "A"}],
                                           "output": {"dtype": dtype}})
        return merged(p)[0]

    def test_f16_conversion(self):
        # 1e-7 = 1.68 * 2^-24 -> subnormal 2 (0x0002); 65519 -> 65504 (0x7BFF);
        # 65520 = halfway 65504/65536, 65504 has odd mantissa -> 65536 = overflow -> inf;
        # 2^-25 = half of the smallest subnormal -> 0 (even); 3*2^-25 -> 2 (even); 1.0 -> 0x3C00
        out = self.take([("w", "F32", (7,), f32(1e-7, 65519.0, 65520.0, -65520.0, 2 ** -25,
                                                3 * 2 ** -25, 1.0))], "float16")
        self.assertEqual(out["w"][0], "F16")
        self.assertEqual(bits16(out["w"][2]), [0x0002, 0x7BFF, 0x7C00, 0xFC00, 0x0000, 0x0002, 0x3C00])

    def test_bf16_conversion(self):
        # f32 -> bf16 by RNE on the bit pattern: tie down to even, tie up to even, just above a
        # tie, NaN -> 0x7FC0, -inf, largest f32 -> inf, negative zero, smallest subnormal -> 0
        out = self.take([("w", "F32", (8,), u32(0x3F808000, 0x3F818000, 0x3F808001, 0x7FA00000,
                                                0xFF800000, 0x7F7FFFFF, 0x80000000, 0x00000001))],
                        "bfloat16")
        self.assertEqual(out["w"][0], "BF16")
        self.assertEqual(bits16(out["w"][2]),
                         [0x3F80, 0x3F82, 0x3F81, 0x7FC0, 0xFF80, 0x7F80, 0x8000, 0x0000])
        # bf16 -> f32 widens exactly
        out = self.take([("w", "BF16", (2,), u16(0x3F81, 0xC2F7))], "float32")
        self.assertEqual(bits32(out["w"][2]), [0x3F810000, 0xC2F70000])

    def test_copy_is_byte_for_byte(self):
        # a copied tensor keeps NaN payloads when the dtype does not change (also when the
        # output dtype is named explicitly and equals the input's)
        for dt in ("input", "bfloat16"):
            out = self.take([("w", "BF16", (3,), u16(0x7FC1, 0xFFFF, 0x7F81))], dt)
            self.assertEqual(bits16(out["w"][2]), [0x7FC1, 0xFFFF, 0x7F81])

    def test_mixed_dtypes(self):
        a = [("w", "BF16", (1,), u16(0x3F80))]      # 1.0
        b = [("w", "F16", (1,), u16(0x4000))]       # 2.0
        with self.assertRaises(lsw_ref.BadInput):   # docs/input-validation.md: dtypes must agree -> exit 2
            self.two(a, b)
        out = self.two(a, b, allow_mixed_dtypes=True)
        self.assertEqual((out["w"][0], bits16(out["w"][2])), ("BF16", [0x3FC0]))   # first: bf16 1.5
        out = self.two(a, b, models=("B", "A"), allow_mixed_dtypes=True)
        self.assertEqual((out["w"][0], bits16(out["w"][2])), ("F16", [0x3E00]))    # first: f16 1.5


class TestRules(Base):
    def setUp(self):
        super().setUp()
        write_single(self.d("base"), llama_like(4, 0x0000))
        write_single(self.d("A"), llama_like(4, 0x3F80))     # 1.0
        write_sharded(self.d("B"), llama_like(4, 0x4080), 3)  # 4.0

    def rules(self, rules, **kw):
        return config(self.tmp, "rules.json", dict({
            "models": {"base": "base", "A": "A", "B": "B"}, "base": "base",
            "method": "rules", "rules": rules}, **kw))

    RULES = [
        {"match": "embed", "action": "take", "model": "B"},
        {"match": "mlp", "layers": [0, 2], "action": "average", "models": ["A", "B"],
         "weights": [0.25, 0.75]},
        {"layers": [0, 2], "action": "take", "model": "B"},
        {"match": "layers\\.3\\.", "action": "base"},
        {"layers": [2, 3], "action": "take", "model": "A"},
        {"match": "norm", "action": "average", "models": ["A", "B"]},
    ]

    def test_rules(self):
        out, mg = merged(self.rules(self.RULES))
        b = {n: set(bits16(t[2])) for n, t in out.items()}
        self.assertEqual(b["model.embed_tokens.weight"], {0x4080})
        for i in (0, 1):   # 0.25*1 + 0.75*4 = 3.25 -> 0x4050
            self.assertEqual(b["model.layers.%d.mlp.up_proj.weight" % i], {0x4050})
            self.assertEqual(b["model.layers.%d.input_layernorm.weight" % i], {0x4080})
        self.assertEqual(b["model.layers.2.mlp.up_proj.weight"], {0x3F80})
        self.assertEqual(b["model.layers.2.input_layernorm.weight"], {0x3F80})
        self.assertEqual(b["model.layers.3.mlp.up_proj.weight"], {0x0000})
        self.assertEqual(b["model.norm.weight"], {0x4020})     # 0.5*1 + 0.5*4 = 2.5

    def test_rules_errors(self):
        with self.assertRaises(lsw_ref.ConfigError) as cm:
            merged(self.rules(self.RULES[:-1]))                # model.norm.weight unmatched
        self.assertEqual(cm.exception.tensor, "model.norm.weight")
        self.assertEqual(cm.exception.engine_code, 1)
        with self.assertRaises(lsw_ref.ConfigError):
            merged(self.rules([{"layers": [0, 5], "action": "base"}]))     # hi > L = 4
        with self.assertRaises(lsw_ref.ConfigError):
            merged(self.rules([{"action": "average", "models": ["A", "B"], "weights": [1]}]))
        with self.assertRaises(lsw_ref.ConfigError):
            merged(self.rules([{"action": "take", "model": "Z"}]))

    def test_layer_index(self):
        self.assertEqual(lsw_ref.layer_of("model.layers.10.mlp.w"), 10)
        self.assertEqual(lsw_ref.layer_of("layers.3.w"), 3)
        self.assertIsNone(lsw_ref.layer_of("model.layers.x.w"))
        self.assertIsNone(lsw_ref.layer_of("model.norm.weight"))


class TestMav(Base):
    def test_model_mav(self):
        # rows of [[1,3],[0,1]] vs 0: 2 and 0.5; 1-D [1,1,1,5]: 2; the 3-D tensor is excluded
        # model MAV = (2 + 0.5 + 2) / 3 = 1.5
        write_single(self.d("base"), [("m", "BF16", (2, 2), u16(0, 0, 0, 0)),
                                      ("v", "F32", (4,), f32(0, 0, 0, 0)),
                                      ("c", "F32", (1, 1, 1), f32(0))])
        write_single(self.d("e"), [("m", "BF16", (2, 2), u16(0x3F80, 0x4040, 0x0000, 0xBF80)),
                                   ("v", "F32", (4,), f32(1, -1, 1, 5)),
                                   ("c", "F32", (1, 1, 1), f32(1000))])
        b, e = lsw_ref.Checkpoint(self.d("base")), lsw_ref.Checkpoint(self.d("e"))
        self.assertEqual(list(lsw_ref.row_mavs(b, e, "m")), [2.0, 0.5])
        self.assertEqual(lsw_ref.model_mav(b, e), 1.5)
        rc, txt = run_cli("mav", self.d("base"), self.d("e"))
        self.assertEqual(rc, 0)
        self.assertIn("model_mav=1.5", txt)
        self.assertEqual([float(w) for w in lsw_ref.magnitude_weights([1.0, 3.0])], [0.75, 0.25])


class TestCompare(Base):
    def test_roundtrip_and_flip(self):
        write_single(self.d("A"), llama_like(3, 0x3F80))
        write_single(self.d("B"), llama_like(3, 0x4000))
        p = config(self.tmp, "c.json", {"models": {"A": "A", "B": "B"}, "method": "linear",
                                        "linear": {"models": ["A", "B"]},
                                        "output": {"path": "out"}})
        rc, txt = run_cli("expect", p, self.d("exp"))
        self.assertEqual(rc, 0, txt)
        # the engine's output as a sharded folder written by the test's own writer
        ck = lsw_ref.Checkpoint(self.d("exp"))
        items = [(n, t.dtype, t.shape, bytes(ck.raw(n))) for n, t in ck.tensors.items()]
        self.assertEqual({x for it in items for x in bits16(it[3])}, {0x3FC0})
        write_sharded(self.d("out"), items, 2)
        rc, txt = run_cli("merge", p)                       # default: output.path
        self.assertEqual(rc, 0, txt)
        self.assertIn("%d passed, 0 failed" % len(items), txt)
        # flip one byte of one tensor
        name, dt, shape, raw = items[3]
        bad = bytearray(raw)
        bad[1] ^= 0x01
        items2 = list(items)
        items2[3] = (name, dt, shape, bytes(bad))
        write_sharded(self.d("out2"), items2, 2)
        rc, txt = run_cli("merge", p, "--compare", self.d("out2"))
        self.assertEqual(rc, 1)
        self.assertIn("%s: bytes differ in 1 of" % name, txt)
        self.assertIn("first at flat index 0", txt)
        self.assertIn("%d passed, 1 failed" % (len(items) - 1), txt)
        # missing, extra, dtype and shape differences
        items3 = items[1:] + [("extra.weight", "BF16", (1,), u16(0))]
        items3[0] = (items3[0][0], "F16", items3[0][2], items3[0][3])
        items3[1] = (items3[1][0], "BF16", (int(np.prod(items3[1][2])),), items3[1][3])
        write_single(self.d("out3"), items3)
        rc, txt = run_cli("merge", p, "--compare", self.d("out3"))
        self.assertEqual(rc, 1)
        self.assertIn("%s: missing from the output" % items[0][0], txt)
        self.assertIn("extra.weight: unexpected tensor", txt)
        self.assertIn("dtype differs: expected BF16 got F16", txt)
        self.assertIn("shape differs", txt)
        self.assertIn("4 failed", txt)


class TestBadFiles(Base):
    def test_validator_matches_cases(self):
        out = self.d("bad")
        subprocess.check_call([PY, os.path.join(HERE, "make_bad_safetensors.py"), out],
                              stdout=subprocess.DEVNULL)
        n = 0
        with open(os.path.join(out, "cases.tsv")) as f:
            for line in f:
                if line.startswith("#"):
                    continue
                fn, code, tensor, desc = line.rstrip("\n").split("\t")
                try:
                    lsw_ref.Checkpoint(os.path.join(out, fn))
                    rc, msg = 0, ""
                except lsw_ref.BadInput as e:
                    rc, msg = 2, str(e)
                self.assertEqual(rc, int(code), "%s: %s (%s)" % (fn, desc, msg))
                if tensor != "-":
                    self.assertTrue(any(t in msg for t in tensor.split("|")), (fn, msg))
                n += 1
        self.assertGreaterEqual(n, 60)


# ---------------------------------------------------------------- task vectors ----
# Scalar, loop-by-loop re-statement of the task-vector contract, written separately from the
# oracle's vectorised code (Python ints for the RNG, np.float32 scalars for the arithmetic).

def _sm64(z):
    m = (1 << 64) - 1
    z = (z + 0x9E3779B97F4A7C15) & m
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & m
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & m
    return z ^ (z >> 31)


def _fnv(name):
    h = 0xcbf29ce484222325
    for c in name.encode("utf-8"):
        h = ((h ^ c) * 0x100000001b3) % (1 << 64)
    return h


def _u(seed, name, i, j):
    s = _sm64((_sm64(seed ^ _fnv(name)) + i) % (1 << 64))
    return (_sm64((s + j) % (1 << 64)) >> 11) / float(1 << 53)


def _f32bits(v):
    return int(np.array([v], dtype=np.float32).view(np.uint32)[0])


def scalar_task_vector(method, name, b, xs, ws, ds, lam, normalize, seed):
    """b, xs: lists of np.float32; ws: np.float32; ds: float; lam: np.float32 -> f32 list."""
    n, k = len(b), len(xs)
    F = np.float32
    with np.errstate(all="ignore"):
        dl = [[F(x[j]) - F(b[j]) for j in range(n)] for x in xs]
        for i in range(k):
            if method == "ties":
                K = int(np.floor(ds[i] * n))
                order = sorted(range(n), key=lambda j: (-(_f32bits(dl[i][j]) & 0x7FFFFFFF), j))
                keep = set(order[:K])
                dl[i] = [dl[i][j] if j in keep else F(0.0) for j in range(n)]
            elif method in ("dare_linear", "dare_ties"):
                dl[i] = [F(dl[i][j] / F(ds[i])) if _u(seed, name, i, j) < ds[i] else F(0.0)
                         for j in range(n)]
        out = []
        for j in range(n):
            prods = [F(ws[i] * dl[i][j]) for i in range(k)]
            s = prods[0]
            for p in prods[1:]:
                s = F(s + p)
            if method in ("ties", "dare_ties"):
                plus = bool(s >= 0)
                ag = [i for i in range(k) if (dl[i][j] > 0 if plus else dl[i][j] < 0)]
                if ag:
                    m, D = prods[ag[0]], ws[ag[0]]
                    for i in ag[1:]:
                        m, D = F(m + prods[i]), F(D + ws[i])
                else:
                    m, D = F(0.0), F(0.0)
            else:
                m, D = s, ws[0]
                for w in ws[1:]:
                    D = F(D + w)
            if normalize:
                if abs(float(D)) < 1e-8:
                    D = F(1.0)
                m = F(m / D)
            out.append(F(F(b[j]) + F(lam * m)))
    return out


class TestTaskVectors(Base):
    def tv(self, method, models, sec=None, dtype="input", base="base"):
        """models: name -> items; base is models[base]."""
        for m, items in models.items():
            write_single(self.d(m), items)
        sec = dict(sec or {})
        sec.setdefault("models", [m for m in models if m != base])
        return config(self.tmp, "tv.json", {
            "models": {m: m for m in models}, "base": base, "method": method, method: sec,
            "output": {"path": "out", "dtype": dtype}})

    # -- the RNG --------------------------------------------------------------------------

    def test_rng_vectors(self):
        # published test vectors: splitmix64 from state 0 gives 0xE220A8397B1DCDAF,
        # 0x6E789E6AA1B965F4; FNV-1a 64 of "" / "a" / "foobar"
        self.assertEqual(lsw_ref.splitmix64(0), 0xE220A8397B1DCDAF)
        self.assertEqual(lsw_ref.splitmix64(0x9E3779B97F4A7C15), 0x6E789E6AA1B965F4)
        self.assertEqual(lsw_ref.fnv1a64(""), 0xcbf29ce484222325)
        self.assertEqual(lsw_ref.fnv1a64("a"), 0xaf63dc4c8601ec8c)
        self.assertEqual(lsw_ref.fnv1a64("foobar"), 0x85944171f73967e8)
        # vectorised splitmix64 wraps mod 2^64 like the scalar one (z + gamma overflows)
        zs = [0, 1, (1 << 64) - 1, (1 << 64) - 0x9E3779B97F4A7C15, 0x123456789ABCDEF0]
        got = lsw_ref.splitmix64_np(np.array(zs, dtype=np.uint64))
        self.assertEqual([int(x) for x in got], [_sm64(z) for z in zs])
        # u_j of the contract, against the scalar version (also seed 2^64-1, a UTF-8 name)
        for seed, name in ((7, "w"), (0, "model.layers.0.mlp.up_proj.weight"),
                           ((1 << 64) - 1, "t\u00e9\u4e2d"), (12345, "")):
            for i in (0, 1, 5):
                u = lsw_ref.dare_uniforms(seed, name, i, 40)
                self.assertEqual([float(x) for x in u], [_u(seed, name, i, j) for j in range(40)])
        # the values the DARE tests below rely on (seed 7, tensor "w")
        self.assertEqual(hex(lsw_ref.dare_stream_seed(7, "w", 0)), "0xfea867dd0a54e3db")
        self.assertEqual(hex(lsw_ref.dare_stream_seed(7, "w", 1)), "0x484f8722bd9e57c0")
        u0 = [_u(7, "w", 0, j) for j in range(4)]
        u1 = [_u(7, "w", 1, j) for j in range(4)]
        self.assertEqual([round(x, 4) for x in u0], [0.1316, 0.7822, 0.1945, 0.1376])
        self.assertEqual([round(x, 4) for x in u1], [0.7186, 0.6983, 0.7771, 0.4526])

    # -- ties -----------------------------------------------------------------------------

    def test_ties_trim_and_election(self):
        # base 1.0 everywhere (0x3F80).  deltas:
        #   A = [1, -1, 2, 1], density 0.5  -> K = 2: |d| = 2 at j2, then the tie of 1 at
        #       j0, j1, j3 goes to the LOWEST index j0 -> A' = [1, 0, 2, 0]
        #   B = [-3, 1, -1, -2], density 0.5 -> K = 2: j0 (3), j3 (2) -> B' = [-3, 0, 0, -2]
        #   C = [0, 0, 0, 1], density 1 (default)
        # weights [1, 0.5, 1]:
        #   j0: s = 1 - 1.5 + 0 = -0.5 -> '-': B agrees: m = -1.5, D = 0.5 -> -3 -> out -2
        #   j1: s = 0 -> '+': nobody (zeros never agree) -> m = +0 -> out 1
        #   j2: s = 2 -> '+': A: m = 2, D = 1 -> out 3
        #   j3: s = 0 - 1 + 1 = 0 -> '+' (>= 0): C: m = 1, D = 1 -> out 2
        # Keeping j1 of A instead (wrong tie break) gives j1 = 0; keeping j3 of A gives, with
        # normalize false, j3 = 1 + (1 + 1) = 3.
        models = {
            "base": [("w", "BF16", (4,), u16(0x3F80, 0x3F80, 0x3F80, 0x3F80))],
            "A": [("w", "BF16", (4,), u16(0x4000, 0x0000, 0x4040, 0x4000))],   # 2, 0, 3, 2
            "B": [("w", "BF16", (4,), u16(0xC000, 0x4000, 0x0000, 0xBF80))],   # -2, 2, 0, -1
            "C": [("w", "BF16", (4,), u16(0x3F80, 0x3F80, 0x3F80, 0x4000))],   # 1, 1, 1, 2
        }
        sec = {"models": ["A", "B", "C"], "weights": [1, 0.5, 1], "density": [0.5, 0.5, 1.0]}
        out, mg = merged(self.tv("ties", models, sec))              # normalize: true by default
        self.assertTrue(mg.tv["normalize"])
        self.assertEqual(out["w"][0], "BF16")
        self.assertEqual(bits16(out["w"][2]), [0xC000, 0x3F80, 0x4040, 0x4000])   # -2, 1, 3, 2
        # normalize false: j0: m = -1.5 -> out -0.5; j3: m = 1 -> out 2
        out, _ = merged(self.tv("ties", models, dict(sec, normalize=False)))
        self.assertEqual(bits16(out["w"][2]), [0xBF00, 0x3F80, 0x4040, 0x4000])   # -0.5, 1, 3, 2
        # lambda 0.5, normalize true: b + 0.5*m = [1 - 1.5, 1, 1 + 1, 1 + 0.5]
        out, _ = merged(self.tv("ties", models, dict(sec, **{"lambda": 0.5})))
        self.assertEqual(bits16(out["w"][2]), [0xBF00, 0x3F80, 0x4000, 0x3FC0])

    def test_ties_magnitude_order(self):
        # f32, base 0: A = [-0.0, 1, 2, NaN, -inf, 3].  |d| as unsigned bits: NaN 0x7FC00000 >
        # inf 0x7F800000 > 3 > 2 > 1 > 0 (= |-0.0|).  density 0.5 -> K = 3: NaN, -inf, 3.
        # NaN: s = NaN -> '-', NaN < 0 is false -> nobody -> +0.  -inf -> '-', agrees.
        # (Signed bits would keep -inf, -0.0, NaN and drop 3; NaN as smallest would keep 2.)
        nan = 0x7FC00000
        models = {"base": [("w", "F32", (6,), f32(0, 0, 0, 0, 0, 0))],
                  "A": [("w", "F32", (6,), u32(0x80000000, 0x3F800000, 0x40000000, nan,
                                               0xFF800000, 0x40400000))]}
        out, _ = merged(self.tv("ties", models, {"density": [0.5]}))
        self.assertEqual(bits32(out["w"][2]), [0, 0, 0, 0, 0xFF800000, 0x40400000])
        # density 0.2 -> K = floor(1.2) = 1: only the NaN is kept -> all +0 (not -inf at j4)
        out, _ = merged(self.tv("ties", models, {"density": [0.2]}))
        self.assertEqual(bits32(out["w"][2]), [0] * 6)

    def test_ties_nan_sum_elects_minus(self):
        # f32, base 0, density 1, weights 1.  j0: A = NaN, B = 1, C = -2: s = NaN -> '-'
        # (NaN >= 0 is false): C agrees -> -2.  j1: A = inf, B = -inf, C = 1: s = NaN -> '-':
        # B agrees -> -inf.  (Electing '+' would give 1 and (inf + 1)/2 = inf.)
        models = {"base": [("w", "F32", (2,), f32(0, 0))],
                  "A": [("w", "F32", (2,), u32(0x7FC00000, 0x7F800000))],
                  "B": [("w", "F32", (2,), u32(0x3F800000, 0xFF800000))],
                  "C": [("w", "F32", (2,), f32(-2.0, 1.0))]}
        for meth in ("ties", "dare_ties"):
            out, _ = merged(self.tv(meth, models, {"models": ["A", "B", "C"], "normalize": True}))
            self.assertEqual(bits32(out["w"][2]), [0xC0000000, 0xFF800000], meth)

    def test_ties_floor_in_double(self):
        # 0.29 * 100 = 28.999999999999996 in double -> K = 28 (not 29); 0.57 * 100 -> 56.
        # deltas j + 1: the K largest are j >= 100 - K.
        vals = [float(j + 1) for j in range(100)]
        for d, K in ((0.29, 28), (0.57, 56), (0.7, 70), (1.0, 100), (0.001, 0)):
            models = {"base": [("w", "F32", (10, 10), f32(*([0.0] * 100)))],
                      "A": [("w", "F32", (10, 10), f32(*vals))]}
            out, _ = merged(self.tv("ties", models, {"density": [d]}))
            got = np.frombuffer(out["w"][2], "<f4").tolist()
            self.assertEqual(got, [v if j >= 100 - K else 0.0 for j, v in enumerate(vals)], d)
            self.assertEqual(lsw_ref.ties_keep_count(d, 100), K)

    def test_ties_keep_mask_random(self):
        # partition-based selection == literal sort by (-bits, j), on data full of equal
        # magnitudes, signed zeros, infinities and NaNs of several payloads
        rng = np.random.RandomState(3)
        pool = np.array([0.0, -0.0, 1.0, -1.0, 0.5, -0.5, np.inf, -np.inf, 2.0, 1e-40],
                        dtype=np.float32)
        for trial in range(200):
            n = int(rng.randint(0, 60))
            x = pool[rng.randint(0, len(pool), n)].copy()
            if n and trial % 3 == 0:
                x.view(np.uint32)[rng.randint(0, n)] = rng.choice([0x7FC00000, 0xFFC00001, 0x7F800001])
            for k in (0, 1, n // 3, n // 2, n - 1, n, n + 5):
                a = lsw_ref.ties_keep_mask(x, k)
                b = lsw_ref.ties_keep_mask_by_sort(x, k)
                self.assertEqual(a.tolist(), b.tolist(), (x.view(np.uint32).tolist(), k))
                self.assertEqual(int(a.sum()), max(0, min(k, n)))

    def test_signed_zero_first_term(self):
        # f32, base -0.0.  A = [1e-30, 0.0], weight -1e-30:
        # j0: d = 1e-30; w*d = -1e-60 -> f32 -0.0; s = -0.0 >= 0 -> '+'; A agrees (d > 0);
        #     m = -0.0 (the sum starts from the first term, not from +0.0);
        #     out = -0.0 + 1*(-0.0) = -0.0 (0x80000000).  Starting from +0.0 would give +0.0.
        # j1: d = 0 - (-0) = +0; nobody agrees -> m = +0 -> out = -0.0 + +0.0 = +0.0.
        # task_arithmetic: j1 = -0.0 + (-1e-30 * +0 = -0.0) = -0.0 too.
        models = {"base": [("w", "F32", (2,), u32(0x80000000, 0x80000000))],
                  "A": [("w", "F32", (2,), f32(1e-30, 0.0))]}
        for norm in (False, True):      # normalize: D = f32(-1e-30), |D| < 1e-8 -> 1
            out, _ = merged(self.tv("ties", models, {"weights": [-1e-30], "normalize": norm}))
            self.assertEqual(bits32(out["w"][2]), [0x80000000, 0x00000000], norm)
        out, _ = merged(self.tv("task_arithmetic", models, {"weights": [-1e-30]}))
        self.assertEqual(bits32(out["w"][2]), [0x80000000, 0x80000000])

    # -- ties, "trim": "global" ------------------------------------------------------------

    def test_ties_global_two_tensors(self):
        # T = the base's float tensors by UTF-8 name order: "a" (F32, 4), "b" (BF16, 4); the
        # I32 tensor "0i" is not in T (N = 8, not 10) and is copied.  base 0.5 everywhere, so
        # every delta below is exact.  weights [1, 1], normalize true (the default).
        #   A: a = [10, 9, 8, 7], b = [1, 2, 3, 4], density 0.5
        #   B: a = [-1, 0, 0, 0], b = [0, -5, 6, 0], density 0.25
        # global: K_A = floor(0.5*8) = 4: 10, 9, 8, 7 (all of a, none of b);
        #         K_B = floor(0.25*8) = 2: 6 (b2), 5 (b1)          -> a0 of B dropped
        #   a: only A -> [10, 9, 8, 7];  b: b0 nobody -> +0; b1 s = -5 '-': B -> -5;
        #      b2 s = 6: B -> 6; b3 nobody -> +0
        #   out = 0.5 + m: a = [10.5, 9.5, 8.5, 7.5], b = [0.5, -4.5, 6.5, 0.5]
        # per tensor: K = 2 (A), 1 (B) in each tensor: A a = [10, 9, 0, 0], b = [0, 0, 3, 4];
        #   B a = [-1, 0, 0, 0], b = [0, 0, 6, 0]
        #   a0 s = 9 '+': A -> 10; a1 9; a2, a3 +0;  b2 s = 9: (3 + 6)/2 = 4.5; b3 4
        #   out a = [10.5, 9.5, 0.5, 0.5], b = [0.5, 0.5, 5, 4.5]
        # (Counting "0i" in N: K_A = 5 keeps b3 too -> b3 = 4.5.)
        def bf(*v):
            return (np.array(v, dtype=np.float32).view(np.uint32) >> 16).astype("<u2").tobytes()
        models = {
            "base": [("b", "BF16", (2, 2), bf(0.5, 0.5, 0.5, 0.5)), ("0i", "I32", (2,), u32(5, 7)),
                     ("a", "F32", (4,), f32(0.5, 0.5, 0.5, 0.5))],
            "A": [("b", "BF16", (2, 2), bf(1.5, 2.5, 3.5, 4.5)), ("0i", "I32", (2,), u32(1, 1)),
                  ("a", "F32", (4,), f32(10.5, 9.5, 8.5, 7.5))],
            "B": [("b", "BF16", (2, 2), bf(0.5, -4.5, 6.5, 0.5)), ("0i", "I32", (2,), u32(1, 1)),
                  ("a", "F32", (4,), f32(-0.5, 0.5, 0.5, 0.5))],
        }
        sec = {"models": ["A", "B"], "density": [0.5, 0.25]}
        want = {"global": ([10.5, 9.5, 8.5, 7.5], [0.5, -4.5, 6.5, 0.5]),
                "tensor": ([10.5, 9.5, 0.5, 0.5], [0.5, 0.5, 5.0, 4.5])}
        for trim in ("global", "tensor", None):
            s2 = dict(sec, trim=trim) if trim else sec
            out, mg = merged(self.tv("ties", models, s2))
            wa, wb = want[trim or "tensor"]
            self.assertEqual(bits32(out["a"][2]), [_f32bits(v) for v in wa], trim)
            self.assertEqual(out["b"][0], "BF16")
            self.assertEqual(bits16(out["b"][2]), [_f32bits(v) >> 16 for v in wb], trim)
            self.assertEqual((out["0i"][0], bits32(out["0i"][2])), ("I32", [5, 7]))
        # output dtype float32: the same selection, only the final rounding changes
        out, _ = merged(self.tv("ties", models, dict(sec, trim="global"), dtype="float32"))
        self.assertEqual(bits32(out["b"][2]), [_f32bits(v) for v in want["global"][1]])
        # density 1: global and per tensor keep everything -> identical outputs
        outs = [merged(self.tv("ties", models, {"models": ["A", "B"], "trim": t}))[0]
                for t in ("global", "tensor")]
        self.assertEqual(outs[0], outs[1])

    def test_ties_global_tie_across_tensors(self):
        # f32, base 0, one expert, density 0.5.  Tensors "x.9" = [3, 1, 2] and "x.10" = [-1, 0, 0]
        # (written in that order).  Byte order puts "x.10" first ('1' < '9'), so the
        # concatenation is x.10 ++ x.9 = [-1, 0, 0, 3, 1, 2], N = 6, K = 3: keys 3, 2, then
        # the tie of |1| between x.10[0] (position 0) and x.9[1] (position 4): x.10[0] wins.
        #   -> x.10 = [-1, 0, 0], x.9 = [3, 0, 2]
        # File / natural order (x.9 first) would give x.9 = [3, 1, 2], x.10 = [0, 0, 0];
        # per tensor (K = 1 each): x.9 = [3, 0, 0], x.10 = [-1, 0, 0].
        models = {"base": [("x.9", "F32", (3,), f32(0, 0, 0)), ("x.10", "F32", (3,), f32(0, 0, 0))],
                  "A": [("x.9", "F32", (3,), f32(3, 1, 2)), ("x.10", "F32", (3,), f32(-1, 0, 0))]}
        out, _ = merged(self.tv("ties", models, {"density": [0.5], "trim": "global"}))
        self.assertEqual(bits32(out["x.10"][2]), [0xBF800000, 0, 0])
        self.assertEqual(bits32(out["x.9"][2]), [0x40400000, 0, 0x40000000])
        out, _ = merged(self.tv("ties", models, {"density": [0.5]}))
        self.assertEqual(bits32(out["x.10"][2]), [0xBF800000, 0, 0])
        self.assertEqual(bits32(out["x.9"][2]), [0x40400000, 0, 0])
        # a tie with key 0 across the boundary: density 5/6 -> K = 5 of 6; the zeros are at
        # positions 1, 2 (x.10) -> x.10[1] is kept, x.10[2] dropped: both are +0 anyway, so
        # the check is on the masks themselves
        dl = [np.array([-1, 0, 0], np.float32), np.array([3, 1, 2], np.float32)]
        m = lsw_ref.ties_global_keep_masks(dl, 5)
        self.assertEqual([x.tolist() for x in m], [[True, True, False], [True, True, True]])
        m = lsw_ref.ties_global_keep_masks(dl, 3)
        self.assertEqual([x.tolist() for x in m], [[True, False, False], [True, False, True]])

    def test_ties_global_scalar_agrees(self):
        # global trim == the scalar per-tensor loop run on the concatenation (UTF-8 name order)
        # as one tensor, then split and rounded per tensor; random data with many equal
        # magnitudes, equal keys across tensor boundaries, mixed float dtypes, an I8 tensor
        rng = np.random.RandomState(5)
        spec = [("m.layers.10.w", "BF16", (4, 6)), ("m.layers.9.w", "BF16", (3, 5)),
                ("m.\u00e9", "F16", (7,)), ("m.Z", "F32", (2, 3)), ("m.i8", "I8", (4,))]
        T = sorted([n for n, dt, _ in spec if dt != "I8"], key=lambda n: n.encode("utf-8"))
        vals = {}

        def items(m):
            out = []
            for n, dt, shape in spec:
                k = int(np.prod(shape))
                if dt == "I8":
                    out.append((n, dt, shape, rng.randint(0, 255, k).astype(np.uint8).tobytes()))
                    continue
                v = (rng.randint(-4, 5, k).astype(np.float32) / np.float32(4) + np.float32(1))
                vals[(m, n)] = v
                raw = (v.view(np.uint32) >> 16).astype("<u2").tobytes() if dt == "BF16" else \
                    v.astype("<f2").tobytes() if dt == "F16" else v.astype("<f4").tobytes()
                out.append((n, dt, shape, raw))
            return out
        models = {m: items(m) for m in ("base", "A", "B", "C")}
        dts = {n: dt for n, dt, _ in spec}
        ws, ds = [1.0, -0.3, 0.6], [0.4, 0.73, 0.1]
        for norm in (False, True):
            sec = {"models": ["A", "B", "C"], "weights": ws, "density": ds, "lambda": 0.7,
                   "normalize": norm, "trim": "global"}
            out, _ = merged(self.tv("ties", models, sec))
            b = [v for n in T for v in vals[("base", n)]]
            xs = [[v for n in T for v in vals[(m, n)]] for m in "ABC"]
            want = scalar_task_vector("ties", "-", b, xs, [np.float32(w) for w in ws], ds,
                                      np.float32(0.7), norm, 0)
            off = 0
            for n in T:
                k = vals[("base", n)].size
                self.assertEqual(out[n][2], lsw_ref.from_f32(np.array(want[off:off + k], np.float32),
                                                             dts[n]), (n, norm))
                off += k
            self.assertEqual(out["m.i8"][2], models["base"][4][3])
            # and it does differ from the per-tensor trim on this data
            out_t, _ = merged(self.tv("ties", models, dict(sec, trim="tensor")))
            self.assertNotEqual([out[n][2] for n in T], [out_t[n][2] for n in T])

    # -- task_arithmetic ------------------------------------------------------------------

    def test_task_arithmetic(self):
        # base 1.0; A = [1+2^-7, 3, 1, 1+2^-7], C = [1-2^-7, -1, 1, 1+2^-7]
        # deltas A = [2^-7, 2, 0, 2^-7], C = [-2^-7, -2, 0, 2^-7]
        # weights [0.5, 0.25], lambda 2, normalize false (the default):
        #   j0: m = 2^-8 - 2^-9 = 2^-9; 2m = 2^-8; 1 + 2^-8 is a bf16 tie -> even 0x3F80
        #   j1: m = 1 - 0.5 = 0.5 -> out 2 (0x4000)
        #   j2: out 1
        #   j3: m = 2^-8 + 2^-9 = 3*2^-9; 2m = 3*2^-8; 1 + 3*2^-8 is a tie -> even 0x3F82
        models = {"base": [("w", "BF16", (4,), u16(0x3F80, 0x3F80, 0x3F80, 0x3F80))],
                  "A": [("w", "BF16", (4,), u16(0x3F81, 0x4040, 0x3F80, 0x3F81))],
                  "C": [("w", "BF16", (4,), u16(0x3F7E, 0xBF80, 0x3F80, 0x3F81))]}
        sec = {"models": ["A", "C"], "weights": [0.5, 0.25], "lambda": 2,
               "density": [0.1, 0.1]}                                  # density: ignored
        out, mg = merged(self.tv("task_arithmetic", models, sec))
        self.assertFalse(mg.tv["normalize"])
        self.assertEqual(bits16(out["w"][2]), [0x3F80, 0x4000, 0x3F80, 0x3F82])
        # weights [1, 3], lambda 0.5, normalize: D = 4
        #   j0: m = 2^-7 - 3*2^-7 = -2^-6; /4 = -2^-8; *0.5 = -2^-9; 1 - 2^-9 is a tie between
        #       0x3F7F and 0x3F80 -> even 0x3F80
        #   j1: m = 2 - 6 = -4; /4 = -1; *0.5 = -0.5 -> 0.5 (0x3F00)
        #   j3: m = 4*2^-7; /4 = 2^-7; *0.5 = 2^-8 -> tie -> 0x3F80
        sec = {"models": ["A", "C"], "weights": [1, 3], "lambda": 0.5, "normalize": True}
        out, _ = merged(self.tv("task_arithmetic", models, sec))
        self.assertEqual(bits16(out["w"][2]), [0x3F80, 0x3F00, 0x3F80, 0x3F80])
        # the same without normalize: j0: 0.5*(-2^-6) -> 1 - 2^-7 (0x3F7E); j1: -2 -> -1;
        # j3: 0.5*2^-5 = 2^-6 -> 1 + 2^-6 (0x3F82)
        out, _ = merged(self.tv("task_arithmetic", models, dict(sec, normalize=False)))
        self.assertEqual(bits16(out["w"][2]), [0x3F7E, 0xBF80, 0x3F80, 0x3F82])
        # default weights 1.0 each, not normalised: m = d_A + d_C = [0, 0, 0, 2^-6]
        out, _ = merged(self.tv("task_arithmetic", models, {"models": ["A", "C"]}))
        self.assertEqual(bits16(out["w"][2]), [0x3F80, 0x3F80, 0x3F80, 0x3F82])

    def test_lambda_product_rounded(self):
        # f32: base 1, A = 1.71484375 (d = 183/256), lambda 0.7 -> f32 0x3F333333.
        # lambda*m exact = 2149161333 * 2^-32 = 8395161.457 * 2^-24 -> f32 8395161 * 2^-24
        # (0x3F001999); 1 + that = (8388608 + 4197580.5) * 2^-23: a tie -> even 12586188
        # -> 0x3FC00CCC.  Without rounding the product first: 0x3FC00CCD.
        models = {"base": [("w", "F32", (1,), f32(1.0))], "A": [("w", "F32", (1,), f32(1.71484375))]}
        out, _ = merged(self.tv("task_arithmetic", models, {"lambda": 0.7}))
        self.assertEqual(bits32(out["w"][2]), [0x3FC00CCC])

    def test_normalize_threshold_in_double(self):
        # one model, weight 1e-8: f32(1e-8) = 9.99999993922529e-09 < 1e-8 in double, so
        # D -> 1 and m = w*d = 1e-8: out = 1 + 1e-8 = 1.0 in f32.  (Compared in f32, D would
        # stay and m = w*d/w = 1: out 2.)  With weight 2e-8: m = 1, out = 2.
        models = {"base": [("w", "F32", (1,), f32(1.0))], "A": [("w", "F32", (1,), f32(2.0))]}
        for meth in ("task_arithmetic", "ties", "dare_linear", "dare_ties"):
            out, _ = merged(self.tv(meth, models, {"weights": [1e-8], "normalize": True}))
            self.assertEqual(bits32(out["w"][2]), [0x3F800000], meth)
            out, _ = merged(self.tv(meth, models, {"weights": [2e-8], "normalize": True}))
            self.assertEqual(bits32(out["w"][2]), [0x40000000], meth)

    # -- DARE -----------------------------------------------------------------------------

    DARE_MODELS = {
        # base 1.0; tensor "w", seed 7: u(model 0) = [0.1316, 0.7822, 0.1945, 0.1376],
        # u(model 1) = [0.7186, 0.6983, 0.7771, 0.4526]
        "base": [("w", "BF16", (4,), u16(0x3F80, 0x3F80, 0x3F80, 0x3F80))],
        "A": [("w", "BF16", (4,), u16(0x3FC0, 0x4000, 0x3F40, 0x3F60))],  # 1.5, 2, 0.75, 0.875
        "C": [("w", "BF16", (4,), u16(0x3FE0, 0xBF00, 0x4080, 0x4020))],  # 1.75, -0.5, 4, 2.5
    }
    # deltas A = [0.5, 1, -0.25, -0.125], density 0.5: keep u < 0.5 -> j0, j2, j3; /0.5:
    #   A' = [1, 0, -0.5, -0.25]
    # deltas C = [0.75, -1.5, 3, 1.5], density 0.75: keep j0, j1, j3; /0.75:
    #   C' = [1, -2, 0, 2]
    DARE_SEC = {"models": ["A", "C"], "weights": [1, 0.5], "density": [0.5, 0.75], "seed": 7}

    def test_dare_linear(self):
        # m = A' + 0.5*C' = [1.5, -1, -0.5, 0.75] -> out = [2.5, 0, 0.5, 1.75]
        out, mg = merged(self.tv("dare_linear", self.DARE_MODELS, self.DARE_SEC))
        self.assertFalse(mg.tv["normalize"])
        self.assertEqual(bits16(out["w"][2]), [0x4020, 0x0000, 0x3F00, 0x3FE0])
        # normalize: D = 1.5: m = [1, -2/3, -1/3, 0.5] in f32:
        #   j1: -1/1.5 = -0x3F2AAAAB; 1 - 0.66666669 = 0.33333331 (0x3EAAAAAA, exact) -> bf16:
        #       low half 0xAAAA > 0x8000 -> 0x3EAB
        #   j2: -0.5/1.5 = -0x3EAAAAAB = -0xAAAAAB*2^-25; 1 - that = 0x1555555*2^-25, a tie in
        #       f32 -> even 0xAAAAAA*2^-24 = 0x3F2AAAAA -> bf16 0x3F2B
        #   j0: 2 (0x4000); j3: 1.5 (0x3FC0)
        out, _ = merged(self.tv("dare_linear", self.DARE_MODELS, dict(self.DARE_SEC, normalize=True)))
        self.assertEqual(bits16(out["w"][2]), [0x4000, 0x3EAB, 0x3F2B, 0x3FC0])
        # another seed draws another mask; density 1 keeps everything (u < 1 always)
        out, _ = merged(self.tv("dare_linear", self.DARE_MODELS,
                                dict(self.DARE_SEC, density=[1.0, 1.0])))
        # m = dA + 0.5*dC = [0.875, 0.25, 1.25, 0.625] -> [1.875, 1.25, 2.25, 1.625]
        self.assertEqual(bits16(out["w"][2]), [0x3FF0, 0x3FA0, 0x4010, 0x3FD0])

    def test_dare_edges(self):
        # keep iff u < d, strictly: with d equal to u(model 0, j2) (a double that JSON carries
        # exactly) element 2 is dropped; j0 (0.1316) and j3 (0.1376) survive, j1 (0.7822) not
        d = _u(7, "w", 0, 2)
        kept = lsw_ref.dare_sparsify(np.ones(4, np.float32), 7, "w", 0, d) != 0
        self.assertEqual(kept.tolist(), [True, False, False, True])
        models = {"base": [("w", "F32", (4,), f32(0, 0, 0, 0))],
                  "A": [("w", "F32", (4,), f32(1.0078125, 1.0078125, 1.015625, 1.03125))]}
        out, _ = merged(self.tv("dare_linear", models, {"density": [d], "seed": 7}))
        self.assertEqual([x != 0 for x in bits32(out["w"][2])], [True, False, False, True])
        # survivors are divided by float32(d) in f32: density 0.3, f32(0.3) =
        # 0.300000011920928955078125.  1.0078125 / f32(0.3) = 3.3593748665..., below the
        # midpoint 3.359375 - 2^-23 -> 0x4056FFFF (in double 1.0078125/0.3 = 3.359375 exactly,
        # 0x40570000).  Likewise j2 -> 0x4058AAAA (double: 0x4058AAAB), j3 -> 0x405BFFFF.
        out, _ = merged(self.tv("dare_linear", models, {"density": [0.3], "seed": 7}))
        self.assertEqual(bits32(out["w"][2]), [0x4056FFFF, 0, 0x4058AAAA, 0x405BFFFF])

    def test_dare_ties(self):
        # s = [1.5, -1, -0.5, 0.75]; signs + - - +
        #   j0: both agree: m = 1 + 0.5 = 1.5, D = 1.5;  j1: C: m = -1, D = 0.5
        #   j2: A: m = -0.5, D = 1;  j3: C only (A' = -0.25 disagrees): m = 1, D = 0.5
        # normalize false (default): out = [2.5, 0, 0.5, 2]
        out, mg = merged(self.tv("dare_ties", self.DARE_MODELS, self.DARE_SEC))
        self.assertFalse(mg.tv["normalize"])
        self.assertEqual(bits16(out["w"][2]), [0x4020, 0x0000, 0x3F00, 0x4000])
        # normalize true: m = [1, -2, -0.5, 2] -> out = [2, -1, 0.5, 3]
        out, _ = merged(self.tv("dare_ties", self.DARE_MODELS, dict(self.DARE_SEC, normalize=True)))
        self.assertEqual(bits16(out["w"][2]), [0x4000, 0xBF80, 0x3F00, 0x4040])
        # the mask depends on the tensor name: the same data under another name differs
        renamed = {k: [("v",) + it[0][1:]] for k, it in self.DARE_MODELS.items()}
        out2, _ = merged(self.tv("dare_ties", renamed, self.DARE_SEC))
        want = scalar_task_vector(
            "dare_ties", "v", [np.float32(1.0)] * 4,
            [lsw_ref.to_f32(self.DARE_MODELS[m][0][3], "BF16") for m in ("A", "C")],
            [np.float32(1), np.float32(0.5)], [0.5, 0.75], np.float32(1), False, 7)
        self.assertEqual(out2["v"][2], lsw_ref.from_f32(np.array(want, np.float32), "BF16"))

    # -- dtypes, plan, errors -------------------------------------------------------------

    def test_dtypes_and_copies(self):
        # F16 tensors stay F16; an I32 tensor is copied from the base byte for byte, also
        # with an explicit output dtype; the output names come from the base (A's extra
        # tensor is ignored).  F16: base 1.0 (0x3C00), A 2.0 (0x4000), ties -> 2.0
        models = {"base": [("h", "F16", (2,), u16(0x3C00, 0x3C00)), ("i", "I32", (2,), u32(5, 7))],
                  "A": [("h", "F16", (2,), u16(0x4000, 0x3C00)), ("i", "I32", (2,), u32(9, 9)),
                        ("extra", "F32", (1,), f32(1.0))]}
        out, _ = merged(self.tv("ties", models))
        self.assertEqual(sorted(out), ["h", "i"])
        self.assertEqual((out["h"][0], bits16(out["h"][2])), ("F16", [0x4000, 0x3C00]))
        self.assertEqual((out["i"][0], bits32(out["i"][2])), ("I32", [5, 7]))
        out, _ = merged(self.tv("ties", models, dtype="bfloat16"))
        self.assertEqual((out["h"][0], bits16(out["h"][2])), ("BF16", [0x4000, 0x3F80]))
        self.assertEqual((out["i"][0], bits32(out["i"][2])), ("I32", [5, 7]))
        rc, txt = run_cli("plan", self.d("tv.json"))
        self.assertEqual(rc, 0, txt)
        self.assertIn("h\ttask vector ties\tbase base\tmodels A", txt)
        self.assertIn("i\ttask vector ties (I32: base copied)\tcopy base", txt)

    def test_config_errors(self):
        models = {"base": [("w", "F32", (2,), f32(0, 0))], "A": [("w", "F32", (2,), f32(1, 1))],
                  "B": [("w", "F32", (2,), f32(2, 2))]}
        bad = [{"trim": "row"}, {"trim": None}, {"trim": "Global"}, {"models": ["A", "A"]},
               {"models": ["A", "base"]}, {"models": []}, {"models": ["Z"]},
               {"density": [0.0, 0.5]}, {"density": [1.5, 0.5]}, {"density": [0.5]},
               {"weights": [1.0]}, {"weights": "uniform"}, {"lambda": True}, {"normalize": 1},
               {"seed": -1}, {"seed": 1 << 64}, {"seed": 1.5}, {"bogus": 1}]
        for meth in lsw_ref.TV_METHODS:
            for b in bad:
                sec = dict({"models": ["A", "B"]}, **b)
                with self.assertRaises(lsw_ref.ConfigError, msg=(meth, b)) as cm:
                    merged(self.tv(meth, models, sec))
                self.assertEqual(cm.exception.engine_code, 1)
            # base required
            p = config(self.tmp, "nobase.json", {"models": {"A": "A", "B": "B"}, "method": meth,
                                                 meth: {"models": ["A", "B"]}})
            with self.assertRaises(lsw_ref.ConfigError):
                merged(p)
            # the section is named after the method
            p = config(self.tmp, "nosec.json", {"models": {"A": "A", "base": "base"}, "base": "base",
                                                "method": meth, "linear": {"models": ["A"]}})
            with self.assertRaises(lsw_ref.ConfigError):
                merged(p)
            ok = merged(self.tv(meth, models, {"models": ["A", "B"], "trim": "tensor",
                                               "seed": (1 << 64) - 1}))[0]
            self.assertEqual(sorted(ok), ["w"])
            # "trim": "global" is only for ties: a config error (engine exit 1) elsewhere
            sec = {"models": ["A", "B"], "trim": "global"}
            if meth == "ties":
                self.assertEqual(sorted(merged(self.tv(meth, models, sec))[0]), ["w"])
            else:
                with self.assertRaises(lsw_ref.ConfigError, msg=meth) as cm:
                    merged(self.tv(meth, models, sec))
                self.assertEqual(cm.exception.engine_code, 1)
                self.assertIn("only for method ties", str(cm.exception))
        for meth in ("task_arithmetic", "dare_linear", "dare_ties"):
            rc, txt = run_cli("merge", self.tv(meth, models, {"trim": "global"}))
            self.assertEqual(rc, 2, (meth, txt))
            self.assertIn("engine must exit 1", txt)
        rc, txt = run_cli("plan", self.tv("ties", models, {"trim": "global"}))
        self.assertEqual(rc, 0, txt)
        self.assertIn("\tseed 0\ttrim global", txt)
        rc, txt = run_cli("plan", self.tv("ties", models, {"trim": "tensor"}))
        self.assertEqual(rc, 0, txt)
        self.assertNotIn("trim", txt)

    def test_bad_inputs(self):
        base = [("w", "F32", (2,), f32(0, 0)), ("n", "I8", (2,), b"\x01\x02")]
        cases = [[("w", "F32", (1, 2), f32(1, 1)), ("n", "I8", (2,), b"\x01\x02")],   # shape
                 [("w", "F16", (2,), u16(0, 0)), ("n", "I8", (2,), b"\x01\x02")],     # dtype
                 [("w", "F32", (2,), f32(1, 1))],                                     # missing n
                 [("w", "F32", (2,), f32(1, 1)), ("n", "U8", (2,), b"\x01\x02")]]     # non-float
        for items in cases:
            with self.assertRaises(lsw_ref.BadInput, msg=items):
                merged(self.tv("ties", {"base": base, "A": items}))

    def test_scalar_agrees(self):
        # every method on random bf16 data with many equal magnitudes, against the scalar
        # loop above (weights with a negative one, mixed densities, lambda 0.7)
        rng = np.random.RandomState(11)
        n = 96
        bits = lambda: (rng.randint(-6, 7, n).astype(np.float32) / np.float32(8)
                        + np.float32(1)).view(np.uint32) >> 16
        models = {m: [("t.w", "BF16", (8, 12), bits().astype("<u2").tobytes())]
                  for m in ("base", "A", "B", "C")}
        ws, ds = [1.0, -0.3, 0.6], [0.4, 0.73, 1.0]
        xs = [lsw_ref.to_f32(models[m][0][3], "BF16") for m in "ABC"]
        b = lsw_ref.to_f32(models["base"][0][3], "BF16")
        for meth in lsw_ref.TV_METHODS:
            for norm in (False, True):
                sec = {"models": ["A", "B", "C"], "weights": ws, "density": ds, "lambda": 0.7,
                       "normalize": norm, "seed": 99}
                out, _ = merged(self.tv(meth, models, sec))
                want = scalar_task_vector(meth, "t.w", list(b), [list(x) for x in xs],
                                          [np.float32(w) for w in ws], ds, np.float32(0.7),
                                          norm, 99)
                self.assertEqual(out["t.w"][2], lsw_ref.from_f32(np.array(want, np.float32), "BF16"),
                                 (meth, norm))


@unittest.skipUnless(os.path.isdir(FIXTURES), "no fixtures")
class TestFixtures(Base):
    def test_reader(self):
        ck = lsw_ref.Checkpoint(os.path.join(FIXTURES, "base"))
        self.assertEqual(len(ck.tensors), 75)               # 8 layers x 9 + embed, norm, lm_head
        self.assertEqual(lsw_ref.num_layers(ck), 8)
        self.assertEqual({t.dtype for t in ck.tensors.values()}, {"BF16"})
        self.assertEqual(len(ck.files), 5)
        self.assertEqual(ck.tensors["model.embed_tokens.weight"].shape, (256, 64))

    def test_layer_swap_roundtrip(self):
        p = config(self.tmp, "ls.json", {
            "models": {"base": os.path.join(FIXTURES, "base"), "math": os.path.join(FIXTURES, "math1"),
                       "swh": os.path.join(FIXTURES, "lang1")},
            "base": "base", "method": "layer_swap",
            "layer_swap": {"task_expert": "math", "language_expert": "swh", "bottom": 2, "top": 1,
                           "lower_transition": 1, "upper_transition": 1,
                           "transition_weights": "magnitude", "non_layer": "average",
                           "non_layer_weights": "uniform"},
            "output": {"path": "out", "format": "safetensors", "dtype": "input"}})
        out, mg = merged(p)
        math, swh = mg.ck("math"), mg.ck("swh")
        # copies are byte for byte from the right expert
        self.assertEqual(out["model.layers.0.mlp.up_proj.weight"][2],
                         bytes(swh.raw("model.layers.0.mlp.up_proj.weight")))
        self.assertEqual(out["model.layers.7.mlp.up_proj.weight"][2],
                         bytes(swh.raw("model.layers.7.mlp.up_proj.weight")))
        self.assertEqual(out["model.layers.4.mlp.up_proj.weight"][2],
                         bytes(math.raw("model.layers.4.mlp.up_proj.weight")))
        # averaged tensors: a second, differently written RNE (compare distances in f64
        # between the two bf16 neighbours) must agree with the oracle's integer RNE
        for name in ("model.layers.2.self_attn.q_proj.weight", "model.layers.6.mlp.down_proj.weight",
                     "model.embed_tokens.weight"):
            e = [x for x in mg.plan if x.name == name][0]
            self.assertEqual(e.kind, "average")
            xs = [(np.frombuffer(bytes(mg.ck(m).raw(name)), "<u2").astype(np.uint32) << 16).view(np.float32)
                  for m in e.sources]
            acc = np.float32(e.weights[0]) * xs[0]
            for w, x in zip(e.weights[1:], xs[1:]):
                acc = (acc + np.float32(w) * x).astype(np.float32)
            u = acc.view(np.uint32)
            lo = (u >> 16).astype(np.uint32)
            hi = lo + 1
            flo = (lo << 16).view(np.float32).astype(np.float64)
            fhi = (hi << 16).view(np.float32).astype(np.float64)
            a = acc.astype(np.float64)
            dlo, dhi = np.abs(a - flo), np.abs(fhi - a)
            pick = np.where(dlo < dhi, lo, np.where(dhi < dlo, hi, np.where(lo % 2 == 0, lo, hi)))
            self.assertEqual(bits16(out[name][2]), [int(x) for x in pick], name)
        # write the expected tensors as a sharded folder, compare: pass; flip a byte: fail
        items = [(n, dt, shape, raw) for n, (dt, shape, raw) in out.items()]
        write_sharded(self.d("out"), items, 3)
        rc, txt = run_cli("merge", p)
        self.assertEqual(rc, 0, txt)
        self.assertIn("75 passed, 0 failed", txt)
        n, dt, shape, raw = items[10]
        raw = bytearray(raw)
        raw[-1] ^= 0x80
        items[10] = (n, dt, shape, bytes(raw))
        write_sharded(self.d("out"), items, 3)
        rc, txt = run_cli("merge", p, "--compare", self.d("out"))
        self.assertEqual(rc, 1, txt)
        self.assertIn("74 passed, 1 failed", txt)

    def test_task_vectors_on_fixtures(self):
        # 4 experts on the base; a few real tensors against the scalar loop, for each method;
        # then expect -> sharded folder -> merge --compare passes
        models = {m: os.path.join(FIXTURES, m) for m in ("base", "math1", "math2", "lang1", "lang2")}
        sec = {"models": ["math1", "math2", "lang1", "lang2"], "weights": [1.0, 0.5, 0.8, 0.3],
               "density": [0.5, 0.7, 0.3, 0.9], "lambda": 1.0, "seed": 7}
        for meth in lsw_ref.TV_METHODS:
            p = config(self.tmp, "tv.json", {"models": models, "base": "base", "method": meth,
                                              meth: sec, "output": {"path": "out"}})
            mg = lsw_ref.Merge(p)
            self.assertEqual(mg.reference_model(), "base")
            ents = {e.name: e for e in mg.plan}
            for name in ("model.norm.weight", "model.layers.3.self_attn.k_proj.weight"):
                e = ents[name]
                b = mg.ck("base").f32(name).ravel()
                xs = [list(mg.ck(m).f32(name).ravel()) for m in sec["models"]]
                want = scalar_task_vector(meth, name, list(b), xs, e.weights, sec["density"],
                                          np.float32(1.0), meth == "ties", 7)
                got = mg.expected_tensor(e)
                self.assertEqual(got[0], "BF16")
                self.assertEqual(got[2], lsw_ref.from_f32(np.array(want, np.float32), "BF16"),
                                 (meth, name))
                if name != "model.norm.weight":
                    self.assertGreater(np.mean(np.frombuffer(got[2], "<u2")
                                               != np.frombuffer(mg.ck("base").raw(name), "<u2")), 0.5)
            items = [(n, dt, shape, raw) for n, (dt, shape, raw) in mg.expected()]
            self.assertEqual(len(items), 75)
            write_sharded(self.d("out"), items, 4)
            rc, txt = run_cli("merge", p)
            self.assertEqual(rc, 0, txt)
            self.assertIn("75 passed, 0 failed", txt)


if __name__ == "__main__":
    unittest.main(verbosity=2)
