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
        with self.assertRaises(lsw_ref.BadInput):   # SPEC §7: dtypes must agree -> exit 2
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


if __name__ == "__main__":
    unittest.main(verbosity=2)
