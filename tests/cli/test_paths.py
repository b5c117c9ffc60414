#!/usr/bin/python3
"""Path resolution (docs/cli.md: paths in a config are relative to the config file's folder;
-o is relative to the current folder).

A config W/cfgdir/swap.json names the fixtures by paths relative to W/cfgdir and has
"output": {"path": "merged"}.  Run from W/cwd:
  * without -o: the output is W/cfgdir/merged (verified, oracle-identical), W/cwd stays empty;
  * with -o rel: the output is W/cwd/rel, and W/cfgdir gains nothing new.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lswtest as L  # noqa: E402

t = L.Test(__doc__)
W = t.work
cfgdir, cwd = os.path.join(W, "cfgdir"), os.path.join(W, "cwd")
os.makedirs(cfgdir)
os.makedirs(cwd)
rel = lambda m: os.path.relpath(os.path.join(t.fixtures, m), cfgdir)
cfg = os.path.join(cfgdir, "swap.json")
L.write_json(cfg, {
    "models": {"base": rel("base"), "math": rel("math1"), "swahili": rel("lang2")},
    "base": "base", "method": "layer_swap",
    "layer_swap": {"task_expert": "math", "language_expert": "swahili", "bottom": 3, "top": 2,
                   "lower_transition": 1, "upper_transition": 1},
    "output": {"path": "merged"}})

p = t.ls("merge", cfg, cwd=cwd)
t.expect_rc(p, 0, "merge without -o")
merged = os.path.join(cfgdir, "merged")
if t.check(os.path.isdir(merged), "output.path 'merged' was not created next to the config (%s)" % merged):
    t.verify(merged, "output.path output")
    t.oracle(cfg, merged, "output.path output")
t.check(L.all_files(cwd) == [], "merge without -o wrote into the current folder: %r" % L.all_files(cwd))

before = sorted(os.listdir(cfgdir))
p = t.ls("merge", "../cfgdir/swap.json", "-o", "rel", cwd=cwd)
t.expect_rc(p, 0, "merge with a relative config path and -o rel")
o = os.path.join(cwd, "rel")
if t.check(os.path.isdir(o), "-o rel was not created in the current folder"):
    t.verify(o, "-o output")
    t.oracle(cfg, o, "-o output")
t.check(sorted(os.listdir(cfgdir)) == before, "-o run wrote next to the config: %r"
        % sorted(set(os.listdir(cfgdir)) - set(before)))
t.finish()
