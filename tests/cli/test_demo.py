#!/usr/bin/python3
"""`layerswap demo` (docs/cli.md).

  * `layerswap demo W/d` exits 0 and leaves W/d/merged complete: `layerswap verify` exits 0,
    and the oracle finds it identical to the merge that W/d/merge.json describes;
  * a second `layerswap demo W/d` also exits 0 and leaves the same bytes (same seed);
  * `layerswap demo` with no DIR works in the current folder: ./layerswap-demo/merged
    verifies.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lswtest as L  # noqa: E402

t = L.Test(__doc__)
W = t.work
d = os.path.join(W, "d")
p = t.ls("demo", d, timeout=120)
t.expect_rc(p, 0, "demo DIR")
merged = os.path.join(d, "merged")
if t.check(os.path.isdir(merged), "demo did not leave %s" % merged):
    t.verify(merged, "demo output")
    cfg = os.path.join(d, "merge.json")
    if t.check(os.path.isfile(cfg), "demo did not write %s" % cfg):
        t.oracle(cfg, merged, "demo merge")
    first = {f: open(os.path.join(merged, f), "rb").read() for f in L.all_files(merged)}
    p = t.ls("demo", d, timeout=120)
    t.expect_rc(p, 0, "demo DIR a second time")
    again = {f: open(os.path.join(merged, f), "rb").read() for f in L.all_files(merged)}
    t.check(first == again, "a second demo into the same folder gave other bytes or files")
    t.verify(merged, "demo output after the second run")

cwd = os.path.join(W, "cwd")
os.makedirs(cwd)
p = t.ls("demo", cwd=cwd, timeout=120)
t.expect_rc(p, 0, "demo without DIR")
dm = os.path.join(cwd, "layerswap-demo", "merged")
if t.check(os.path.isdir(dm), "demo without DIR did not leave ./layerswap-demo/merged"):
    t.verify(dm, "demo output in ./layerswap-demo")
t.finish()
