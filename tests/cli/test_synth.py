#!/usr/bin/python3
"""`layerswap synth` determinism (docs/cli.md).

  * the same arguments and --seed twice give identical folders (same files, same bytes);
  * another --seed gives the same files, tensor names, dtypes and shapes, but other bytes
    in the experts' weights;
  * every written model passes `layerswap inspect` and has the Llama tensor names for the
    requested layer count; --dtype f16 / f32 give F16 / F32 tensors.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lswtest as L  # noqa: E402

t = L.Test(__doc__)
W = t.work
ARGS = ["--layers", 3, "--hidden", 64, "--intermediate", 160, "--vocab", 300, "--experts", 2]


def synth(name, seed, *extra):
    p = t.ls("synth", *ARGS, "--seed", seed, *extra, "-o", name)
    t.expect_rc(p, 0, "synth %s --seed %s" % (name, seed))
    return os.path.join(W, name)


def tree(d):
    return {f: open(os.path.join(d, f), "rb").read() for f in L.all_files(d)}


a, b, c = synth("a", 7), synth("b", 7), synth("c", 8)
ta, tb, tc = tree(a), tree(b), tree(c)
t.check(len(ta) > 0, "synth wrote nothing")
t.check(sorted(ta) == sorted(tb), "same seed, different files: %r vs %r" % (sorted(ta), sorted(tb)))
diff = [f for f in ta if f in tb and ta[f] != tb[f]]
t.check(not diff, "same seed, different bytes in %r" % diff)
t.check(sorted(ta) == sorted(tc), "another seed, different file list: %r vs %r" % (sorted(ta), sorted(tc)))

models = sorted({f.split(os.sep)[0] for f in ta})
t.check(len(models) == 3, "synth --experts 2 wrote %r, expected a base and two experts" % models)
changed = []
for m in models:
    q = t.ls("inspect", os.path.join(a, m), show=False)
    t.expect_rc(q, 0, "inspect synth model %s" % m)
    sa, sc = L.checkpoint_tensors(os.path.join(a, m)), L.checkpoint_tensors(os.path.join(c, m))
    t.check({k: v[:2] for k, v in sa.items()} == {k: v[:2] for k, v in sc.items()},
            "%s: tensor names, dtypes or shapes depend on the seed" % m)
    layers = sorted({L.layer_of(n) for n in sa if L.layer_of(n) is not None})
    t.check(layers == [0, 1, 2], "%s: layers %r, expected [0, 1, 2]" % (m, layers))
    for need in ("model.embed_tokens.weight", "model.norm.weight", "lm_head.weight",
                 "model.layers.0.self_attn.q_proj.weight", "model.layers.2.mlp.down_proj.weight"):
        t.check(need in sa, "%s: no tensor %s" % (m, need))
    t.check({v[0] for v in sa.values()} == {"BF16"}, "%s: default dtype is not BF16: %r"
            % (m, {v[0] for v in sa.values()}))
    if any(ta[f] != tc[f] for f in ta if f.startswith(m + os.sep) and f.endswith(".safetensors")):
        changed.append(m)
t.check(changed, "another seed changed no safetensors file at all")
t.check(any(m != "base" for m in changed), "another seed changed no expert: changed %r" % changed)

for dt, want in (("f16", "F16"), ("f32", "F32")):
    d = synth("dt-" + dt, 7, "--dtype", dt)
    for m in sorted(os.listdir(d)):
        if os.path.isdir(os.path.join(d, m)):
            got = {v[0] for v in L.checkpoint_tensors(os.path.join(d, m)).values()}
            t.check(got == {want}, "synth --dtype %s: %s has dtypes %r" % (dt, m, got))
t.finish()
