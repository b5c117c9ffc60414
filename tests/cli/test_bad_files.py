#!/usr/bin/python3
"""`layerswap inspect` on every crafted file of tests/ref/make_bad_safetensors.py (docs/input-validation.md).

For each row of cases.tsv: the exit code must match; for exit 2 the single error line on
stderr must name the file or folder and, where the table gives one, the tensor (a|b: at
least one of them).  Valid files must list every tensor of their header on stdout.
Also `inspect` on the real fixtures (folder, index, single shard).  Every mismatch is
printed; the test fails if there is any.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lswtest as L  # noqa: E402

t = L.Test(__doc__)
bad = os.path.join(t.work, "bad")
p = L.run([L.PYTHON, L.MAKE_BAD, bad])
if p.returncode != 0:
    t.fatal("make_bad_safetensors.py failed: " + p.stderr)

rows = []
with open(os.path.join(bad, "cases.tsv")) as f:
    for line in f:
        if line.startswith("#") or not line.strip():
            continue
        name, code, tensor, desc = line.rstrip("\n").split("\t", 3)
        rows.append((name, int(code), tensor, desc))
t.check(len(rows) > 50, "cases.tsv has only %d cases" % len(rows))

mismatches = []
for name, code, tensor, desc in rows:
    path = os.path.join(bad, name)
    q = t.ls("inspect", path, cwd=bad, show=False)
    what = "inspect %s (%s)" % (name, desc)
    err = q.stderr.strip()
    ok = t.check(q.returncode == code, "%s: exit %d, expected %d; stderr: %s"
                 % (what, q.returncode, code, err[-400:]))
    if code == 2 and q.returncode == 2:
        mention = [name]
        if tensor != "-":
            mention.append(tuple(tensor.split("|")))
        ok &= t.check_error_line(q, "inspect", 2, what, mention)
    elif code == 0 and q.returncode == 0 and os.path.isfile(path):
        hdr, _, _ = L.st_header(path)
        missing = [k for k in hdr if k != "__metadata__" and k not in q.stdout]
        ok &= t.check(not missing, "%s: valid file, but the listing does not show %r"
                      % (what, missing))
    if not ok:
        mismatches.append(name)
    print("%-4s %-45s exit %d (expected %d)%s" % ("ok" if ok else "BAD", name, q.returncode,
                                                  code, ("  " + err) if err else ""))

# The real fixtures: a folder with an index, the index itself, one shard.
math1 = os.path.join(t.fixtures, "math1")
for target in (math1, os.path.join(math1, "model.safetensors.index.json")):
    q = t.ls("inspect", target)
    t.expect_rc(q, 0, "inspect " + target)
    names = L.checkpoint_tensors(math1)
    t.check(len(names) == 75, "fixture math1 should have 75 tensors, has %d" % len(names))
    miss = [n for n in names if n not in q.stdout]
    t.check(not miss, "inspect %s does not list %d tensors, e.g. %r" % (target, len(miss), miss[:3]))
q = t.ls("inspect", os.path.join(math1, "model-00002-of-00005.safetensors"))
t.expect_rc(q, 0, "inspect one shard of math1")

if mismatches:
    print("\n%d of %d cases mismatch: %s" % (len(mismatches), len(rows), " ".join(mismatches)))
t.finish()
