#!/usr/bin/python3
"""Config errors (exit 1), usage errors (exit 1) and bad inputs (exit 2) of `layerswap merge`.

    test_errors.py --bin B --work W --case NAME      (test_errors.py --list: the case names)

Each case runs one command from W with `-o W/out` (except where the case is about -o) and
checks: the exit code; for config errors and bad inputs, exactly one stderr line
"layerswap merge: error: DETAIL [..., exit N]" that names the config file (config errors)
or the offending input (bad inputs) and the offending key / model / tensor; for usage
errors, that stderr mentions the offending word.  In every case nothing may be written:
W/out must not exist or hold no file at all (not even hidden ones), W gains nothing else,
and the config's own folder gains nothing (docs/config.md: config errors and bad inputs are found
before any tensor data is read or any output written).

Bad inputs are built in W/inputs from copies of the fixtures, with a small safetensors
writer (lswtest.st_write): one tensor's shape changed (fewer rows, or the same bytes
reshaped), one tensor's dtype changed, one tensor removed, one shard truncated, a pickle
file; the config (in W) combines them with math1 in a linear soup so that every tensor is
combined.
"""
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lswtest as L  # noqa: E402

ERRS = os.path.join(L.CONFIGS, "errors")
GOOD = os.path.join(L.CONFIGS, "ls-paper.json")
VICTIM = "model.layers.3.mlp.down_proj.weight"

# name: (kind, argv-after-binary (strings; {E}=errors dir, {G}=good config, {W}=work) or
#        a setup function name, expected rc, mentions (each a str or tuple of alternatives))
CASES = {
    # -- config errors: exit 1, message names the config file and the key / model ---------
    "tv-trim-global": ("config", ["merge", "{E}/tv-trim-global.json"], 1, ["tv-trim-global.json", "trim"]),
    "tv-density-range": ("config", ["merge", "{E}/tv-density-range.json"], 1, ["tv-density-range.json", "density"]),
    "tv-no-base": ("config", ["merge", "{E}/tv-no-base.json"], 1, ["tv-no-base.json", "base"]),
    "tv-base-as-expert": ("config", ["merge", "{E}/tv-base-as-expert.json"], 1, ["tv-base-as-expert.json", "base"]),
    "unknown-top-key": ("config", ["merge", "{E}/unknown-top-key.json"], 1,
                        ["unknown-top-key.json", "extra_setting"]),
    "unknown-layer-swap-key": ("config", ["merge", "{E}/unknown-layer-swap-key.json"], 1,
                               ["unknown-layer-swap-key.json", "middle_weights"]),
    "undefined-model": ("config", ["merge", "{E}/undefined-model.json"], 1,
                        ["undefined-model.json", "klingon"]),
    "weights-count": ("config", ["merge", "{E}/weights-count.json"], 1,
                      ["weights-count.json", "weights"]),
    "layer-range": ("config", ["merge", "{E}/layer-range.json"], 1,
                    ["layer-range.json", "layers"]),
    "layer-range-negative": ("config", ["merge", "{E}/layer-range-negative.json"], 1,
                             ["layer-range-negative.json", "layers"]),
    "bottom-top-too-many": ("config", ["merge", "{E}/bottom-top-too-many.json"], 1,
                            ["bottom-top-too-many.json", "bottom", "top"]),
    "bad-regex": ("config", ["merge", "{E}/bad-regex.json"], 1,
                  ["bad-regex.json", ("match", "mlp\\.(gate|up")]),
    "unmatched-tensor": ("config", ["merge", "{E}/unmatched-tensor.json"], 1,
                         ["unmatched-tensor.json",
                          ("lm_head.weight", "model.embed_tokens.weight", "model.norm.weight")]),
    # untrusted regular expressions that glibc would blow up on (fuzzing audit)
    "regex-stacked": ("config", ["merge", "{E}/regex-stacked.json"], 1,
                      ["regex-stacked.json", "rules[0].match", "quantifier"]),
    "regex-backref": ("config", ["merge", "{E}/regex-backref.json"], 1,
                      ["regex-backref.json", "rules[0].match", "back-reference"]),
    "unused-section": ("config", ["merge", "{E}/unused-section.json"], 1, ["unused-section.json", "ties"]),
    "no-output-path": ("config-noout", ["merge", "{E}/no-output-path.json"], 1,
                       ["no-output-path.json", ("output", "-o")]),
    # -- usage errors: exit 1 -------------------------------------------------------------
    "bad-mem": ("usage", ["merge", "{G}", "--mem", "banana"], 1, ["--mem"]),
    "bad-mem-zero": ("usage", ["merge", "{G}", "--mem", "0"], 1, ["--mem"]),
    "unknown-option": ("usage", ["merge", "{G}", "--bogus"], 1, ["--bogus"]),
    "unknown-command": ("usage-noout", ["frobnicate"], 1, ["frobnicate"]),
    "no-command": ("usage-noout", [], 1, ["Usage:"]),
    "missing-config": ("usage", ["merge"], 1, []),
    "missing-option-value": ("usage-noout", ["merge", "{G}", "-o"], 1, []),
    "two-configs": ("usage", ["merge", "{G}", "{G}"], 1, []),
    "inspect-no-path": ("usage-noout", ["inspect"], 1, []),
    "verify-no-dir": ("usage-noout", ["verify"], 1, []),
    "synth-missing-args": ("usage-noout", ["synth", "--layers", "2", "-o", "{W}/out"], 1, []),
    # -- bad inputs: exit 2, message names the input and the tensor ------------------------
    "missing-model": ("input", ["merge", "{E}/bad-missing-model.json"], 2,
                      ["lang9-does-not-exist"]),
    "pickle-folder": ("input", "setup_pickle_folder", 2, ["pytorch_model.bin"]),
    "pickle-file": ("input", "setup_pickle_file", 2, ["pytorch_model.bin"]),
    "shape-mismatch-rows": ("input", "setup_shape_rows", 2, [VICTIM]),
    "shape-mismatch-reshape": ("input", "setup_shape_reshape", 2, [VICTIM]),
    "dtype-mismatch": ("input", "setup_dtype", 2, [VICTIM]),
    "missing-tensor": ("input", "setup_missing_tensor", 2, [VICTIM]),
    "truncated-shard": ("input", "setup_truncated", 2, ["model-00003-of-00005.safetensors"]),
    # a model no rule reads is still an input: a path that does not exist is exit 2 (docs/config.md)
    "unused-missing-model": ("input", ["merge", "{E}/bad-unused-missing-model.json"], 2, ["ghost9-does-not-exist"]),
    # the reference model's config.json (copied, dtype edited) is checked before any output
    "bad-config-json": ("input", "setup_bad_config_json", 2, ["config.json", "JSON"]),
    # a layer index too large for any model is refused, not taken for a non-layer tensor
    "layer-index-too-big": ("input", "setup_layer_index", 2, ["model.layers.2147483648.w"]),
    # commands with positional arguments only: an option-like word is a usage error, not a path
    "demo-unknown-option": ("usage-noout", ["demo", "--bogus"], 1, ["--bogus"]),
    "inspect-unknown-option": ("usage-noout", ["inspect", "--bogus"], 1, ["--bogus"]),
    "index-overflow": ("usage-noout", ["merge", "--sweep", "{G}", "--index", "99999999999999999999"], 1,
                       ["--index", "99999999999999999999"]),
    # messages that name the real problem
    "inspect-fifo": ("input-noout", "setup_fifo", 2, ["fifo", "not a regular file"]),
    "inspect-h5-no-signature": ("input-noout", "setup_fake_h5", 2, ["fake.h5", "HDF5 signature"]),
    "index-nul-name": ("input", "setup_index_nul", 2, ["NUL"]),
    "verify-missing-folder": ("input-noout", ["verify", "{W}/no-such-output"], 2, ["no-such-output", "no such folder"]),
}

if "--list" in sys.argv:
    print("\n".join(CASES))
    sys.exit(0)


def extra(ap):
    ap.add_argument("--case", required=True, choices=sorted(CASES))


t = L.Test(__doc__, extra)
kind, spec, want_rc, mention = CASES[t.args.case]
W = t.work
math1 = os.path.join(t.fixtures, "math1")
lang1 = os.path.join(t.fixtures, "lang1")


# -- bad-input builders ----------------------------------------------------------------------
def soup_config(other):
    """W/soup.json: linear soup of math1 (absolute path) and `other` (relative to W)."""
    cfg = {"models": {"math1": math1, "bad": other}, "method": "linear",
           "linear": {"models": ["math1", "bad"]}, "output": {"path": "out"}}
    p = os.path.join(W, "soup.json")
    L.write_json(p, cfg)
    return ["merge", p]


def copy_lang1(name):
    dst = os.path.join(W, "inputs", name)
    shutil.copytree(lang1, dst)
    return dst


def shard_of(folder, tensor):
    return L.load_json(os.path.join(folder, "model.safetensors.index.json"))["weight_map"][tensor]


def rewrite_victim(folder, fn, drop_from_index=False):
    """Rewrite the shard holding VICTIM with fn(name, dtype, shape, raw) -> tuple or None
    (None: the tensor is removed, from the index too when drop_from_index)."""
    shard = os.path.join(folder, shard_of(folder, VICTIM))
    md, ts = L.st_read(shard)
    new = []
    for tt in ts:
        r = fn(*tt) if tt[0] == VICTIM else tt
        if r is not None:
            new.append(r)
    L.st_write(shard, new, md)
    if drop_from_index:
        ip = os.path.join(folder, "model.safetensors.index.json")
        idx = L.load_json(ip)
        del idx["weight_map"][VICTIM]
        L.write_json(ip, idx)
    # the rest of the copy must still be a valid checkpoint
    q = t.ls("inspect", folder, show=False)
    if q.returncode != 0:
        t.fatal("the crafted input %s is not valid on its own: %s" % (folder, q.stderr))


def setup_pickle_folder():
    d = os.path.join(W, "inputs", "pickle")
    os.makedirs(d)
    shutil.copy(os.path.join(lang1, "config.json"), d)
    with open(os.path.join(d, "pytorch_model.bin"), "wb") as f:
        f.write(b"\x80\x02}q\x00.")      # a tiny pickle (an empty dict)
    return soup_config("inputs/pickle")


def setup_pickle_file():
    setup_pickle_folder()
    return soup_config("inputs/pickle/pytorch_model.bin")


def setup_shape_rows():
    d = copy_lang1("lang1-rows")
    # [64, 176] -> [63, 176]: one row fewer
    rewrite_victim(d, lambda n, dt, sh, raw: (n, dt, [sh[0] - 1] + sh[1:], raw[:len(raw) * (sh[0] - 1) // sh[0]]))
    return soup_config("inputs/lang1-rows")


def setup_shape_reshape():
    d = copy_lang1("lang1-reshape")
    # same bytes, other shape: [64, 176] -> [32, 352]
    rewrite_victim(d, lambda n, dt, sh, raw: (n, dt, [sh[0] // 2, sh[1] * 2], raw))
    return soup_config("inputs/lang1-reshape")


def setup_dtype():
    d = copy_lang1("lang1-f32")

    def to_f32(n, dt, sh, raw):
        assert dt == "BF16"
        out = bytearray()
        for i in range(0, len(raw), 2):
            out += b"\x00\x00" + raw[i:i + 2]    # bf16 -> f32 exactly (little endian)
        return (n, "F32", sh, bytes(out))
    rewrite_victim(d, to_f32)
    return soup_config("inputs/lang1-f32")


def setup_missing_tensor():
    d = copy_lang1("lang1-missing")
    rewrite_victim(d, lambda *a: None, drop_from_index=True)
    return soup_config("inputs/lang1-missing")


def setup_truncated():
    d = copy_lang1("lang1-truncated")
    p = os.path.join(d, "model-00003-of-00005.safetensors")
    with open(p, "r+b") as f:
        f.truncate(os.path.getsize(p) - 1000)
    return soup_config("inputs/lang1-truncated")


def setup_bad_config_json():
    d = os.path.join(W, "inputs", "math1-badcfg")
    shutil.copytree(math1, d)
    with open(os.path.join(d, "config.json"), "w") as f:
        f.write('{"torch_dtype": ')
    cfg = {"models": {"bad": "inputs/math1-badcfg", "lang1": lang1}, "method": "linear",
           "linear": {"models": ["bad", "lang1"]}, "output": {"path": "out", "dtype": "float32"}}
    p = os.path.join(W, "badcfg.json")
    L.write_json(p, cfg)
    return ["merge", p]


def setup_layer_index():
    names = {}
    for m in ("lt", "lg"):
        d = os.path.join(W, "inputs", m)
        os.makedirs(d)
        L.st_write(os.path.join(d, "model.safetensors"),
                   [("model.layers.0.w", "F32", [1], b"\0" * 4), ("model.layers.2147483648.w", "F32", [1], b"\0" * 4)])
        names[m] = "inputs/" + m
    cfg = {"models": {"t": names["lt"], "g": names["lg"]}, "method": "layer_swap",
           "layer_swap": {"task_expert": "t", "language_expert": "g", "bottom": 1, "top": 0},
           "output": {"path": "out"}}
    p = os.path.join(W, "bigindex.json")
    L.write_json(p, cfg)
    return ["merge", p]


def setup_index_nul():
    d = copy_lang1("lang1-nul")
    ip = os.path.join(d, "model.safetensors.index.json")
    idx = L.load_json(ip)
    idx["weight_map"]["model.norm.weight\u0000shadow"] = idx["weight_map"]["model.norm.weight"]
    L.write_json(ip, idx)
    return soup_config("inputs/lang1-nul")


def setup_fifo():
    p = os.path.join(W, "inputs", "fifo")
    os.makedirs(os.path.dirname(p))
    os.mkfifo(p)
    return ["inspect", p]


def setup_fake_h5():
    p = os.path.join(W, "inputs", "fake.h5")
    os.makedirs(os.path.dirname(p))
    with open(p, "wb") as f:
        f.write(b"\0" * 1000)
    return ["inspect", p]


# -- run -------------------------------------------------------------------------------------
if isinstance(spec, str):
    argv = globals()[spec]()
else:
    argv = [a.format(E=ERRS, G=GOOD, W=W) for a in spec]
if not kind.endswith("-noout"):
    argv = argv + ["-o", os.path.join(W, "out")]

before_w = set(L.all_files(W))
cfg_dirs = {d: set(os.listdir(d)) for d in (ERRS, L.CONFIGS)}

p = t.ls(*argv)
t.expect_rc(p, want_rc, "layerswap " + " ".join(argv))
if kind.startswith("config") or kind.startswith("input"):
    t.check_error_line(p, argv[0], want_rc, t.args.case, mention)
else:
    for m in mention:
        alts = m if isinstance(m, tuple) else (m,)
        t.check(any(a in p.stderr for a in alts),
                "%s: stderr does not mention %r: %s" % (t.args.case, alts, p.stderr.strip()[:500]))
    t.check(p.stderr.strip() != "", "%s: nothing on stderr" % t.args.case)

# nothing written anywhere
out = os.path.join(W, "out")
left = L.all_files(out)
t.check(not left, "output folder %s holds %r after a failed run" % (out, left))
new_w = sorted(set(L.all_files(W)) - before_w)
t.check(not new_w, "the run created %r in the current folder" % new_w)
for d, before in cfg_dirs.items():
    new = sorted(set(os.listdir(d)) - before)
    t.check(not new, "the run created %r in the config folder %s" % (new, d))
t.finish()
