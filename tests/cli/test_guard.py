#!/usr/bin/python3
"""Data safety (issue 10 item 1): no run ever deletes, truncates or writes a file of an
input model, and none writes into an input's folder.

Every spelling of "the output folder is an input's folder" -- a model no rule reads (the
base of a uniform layer swap, an extra model of a soup), a model a rule reads, a
single-file model whose file sits in the output folder, a symlink to the folder, '..',
a trailing slash, a not-yet-existing 'new/..', a Hugging Face cache layout whose shards
are symlinks into blobs/ (output = blobs/ or the snapshot), a bind mount of the folder --
is refused with exit 1, with and without --overwrite, by merge, merge --sweep --index,
sweep and stats.  The message names the model and never suggests --overwrite.  Every
input file (hidden ones included) keeps its bytes, and no new file appears in an input
folder (no lock, no temporary).
"""
import hashlib
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lswtest as L  # noqa: E402

t = L.Test(__doc__)
W = t.work
os.chdir(W)
for m in ("base", "math1", "lang1"):
    shutil.copytree(os.path.join(t.fixtures, m), os.path.join(W, m))
# a single-file model, and a folder with an extra model for the soup
os.makedirs("sf")
shutil.copy(os.path.join(W, "math1", "model-00001-of-00005.safetensors"), "sf/one.safetensors")
# a Hugging Face cache: hub/snapshots/rev/* -> ../../blobs/<hash>
os.makedirs("hub/blobs")
os.makedirs("hub/snapshots/rev")
for f in sorted(os.listdir("lang1")):
    blob = hashlib.sha256(f.encode()).hexdigest()
    shutil.copy(os.path.join("lang1", f), os.path.join("hub/blobs", blob))
    os.symlink(os.path.join("..", "..", "blobs", blob), os.path.join("hub/snapshots/rev", f))
os.symlink("base", "base-link")

INPUTS = ["base", "math1", "lang1", "sf", "hub"]


def snapshot():
    """relative path -> (kind, size, md5) of everything under the input folders."""
    out = {}
    for top in INPUTS:
        for root, dirs, files in os.walk(top):
            for n in dirs + files:
                p = os.path.join(root, n)
                if os.path.islink(p):
                    out[p] = ("link", os.readlink(p))
                elif os.path.isfile(p):
                    with open(p, "rb") as f:
                        out[p] = ("file", os.path.getsize(p), hashlib.md5(f.read()).hexdigest())
                else:
                    out[p] = ("dir",)
    return out


BEFORE = snapshot()

swap = {"models": {"base": "base", "math": "math1", "swahili": "lang1"}, "base": "base",
        "method": "layer_swap",
        "layer_swap": {"task_expert": "math", "language_expert": "swahili", "bottom": 2, "top": 1},
        "output": {"path": "unused-out"}}
L.write_json("swap.json", swap)  # uniform weights: 'base' is listed, no rule reads it
soup = {"models": {"math": "math1", "swahili": "lang1", "extra": "sf/one.safetensors", "hub": "hub/snapshots/rev"},
        "method": "linear", "linear": {"models": ["math", "swahili"]}, "output": {"path": "unused-out"}}
L.write_json("soup.json", soup)  # 'extra' and 'hub' listed, unread
hubswap = {"models": {"math": "math1", "swahili": "hub/snapshots/rev"}, "method": "layer_swap",
           "layer_swap": {"task_expert": "math", "language_expert": "swahili", "bottom": 2, "top": 1},
           "output": {"path": "unused-out"}}
L.write_json("hubswap.json", hubswap)
# derived models: the checkpoints they are computed from are inputs too
derived = {"models": {"base": "base", "math1": "math1", "swahili": "lang1",
                      "msoup": {"soup": ["math1", "hub"]}, "hub": "hub/snapshots/rev",
                      "mrev": {"from": "msoup", "revert_layers": [[0, 1]]}}, "base": "base",
           "method": "layer_swap",
           "layer_swap": {"task_expert": "mrev", "language_expert": "swahili", "bottom": 2, "top": 1},
           "output": {"path": "unused-out"}}
L.write_json("derived.json", derived)
sweep = {"models": {"base": "base", "math1": "math1", "lang1": "lang1"}, "base": "base",
         "grid": {"task_expert": ["math1"], "language_expert": ["lang1"], "bottom": [2]},
         "output": {"path": "sweep-out"}}
L.write_json("sweep.json", sweep)


def refused(args, what, model=None, cwd=None):
    p = t.ls(*args, cwd=cwd)
    cmd = args[0]
    t.check_error_line(p, cmd, 1, what, mention=[model] if model else ())
    t.check("--overwrite" not in p.stderr, "%s: the message suggests --overwrite: %s" % (what, p.stderr.strip()))
    now = snapshot()
    changed = sorted(k for k in set(BEFORE) | set(now) if BEFORE.get(k) != now.get(k))
    t.check(not changed, "%s: input files changed or appeared: %r" % (what, changed[:8]))


for ow in ([], ["--overwrite"]):
    tag = " " + " ".join(ow) if ow else ""
    # the base no rule reads
    for o in ("base", "base/", "./math1/../base", "base-link", "base/new/..", os.path.join(W, "base") + "//"):
        refused(["merge", "swap.json", "-o", o] + ow, "merge -o %s (unread base)%s" % (o, tag), "'base'")
    t.check(not os.path.exists("base/new"), "merge -o base/new/.. created base/new")
    # a model a rule reads
    refused(["merge", "swap.json", "-o", "math1"] + ow, "merge -o math1 (task expert)%s" % tag, "'math'")
    # an unread single-file model and an unread HF-cache model of a soup
    refused(["merge", "soup.json", "-o", "sf"] + ow, "merge -o sf (unread single file)%s" % tag, "'extra'")
    refused(["merge", "soup.json", "-o", "hub/blobs"] + ow, "merge -o hub/blobs (unread, symlinked shards)%s" % tag,
            "'hub'")
    refused(["merge", "hubswap.json", "-o", "hub/snapshots/rev"] + ow, "merge -o the snapshot (read)%s" % tag, "'swahili'")
    refused(["merge", "hubswap.json", "-o", "hub/blobs/"] + ow, "merge -o hub/blobs/ (read, symlinked)%s" % tag, "'swahili'")
    # a checkpoint read only through derived models (a soup inside a reversion)
    refused(["merge", "derived.json", "-o", "math1"] + ow, "merge -o math1 (through derived models)%s" % tag,
            "'math1'")
    refused(["merge", "derived.json", "-o", "hub/blobs"] + ow, "merge -o hub/blobs (a derived model's symlinked "
            "input)%s" % tag, "'hub'")
    # sweep: its own folder, and a merge folder that is an input
    refused(["sweep", "sweep.json", "-o", "base"] + ow, "sweep -o base%s" % tag, "'base'")
    refused(["sweep", "sweep.json", "--emit-array", "-o", "base"], "sweep --emit-array -o base", "'base'")
    # stats: the base and an expert
    refused(["stats", "--base", "base", "math1", "-o", "base"] + ow, "stats -o base%s" % tag)
    refused(["stats", "--base", "base", "math1", "lang1", "-o", "lang1/"] + ow, "stats -o lang1/%s" % tag)

# merge --sweep S --index K whose merge folder resolves to an input
p = t.ls("sweep", "sweep.json", "--emit-array")
t.expect_rc(p, 0, "sweep --emit-array")
name = p.stdout.split("\t")[1] if "\t" in p.stdout else "x"
os.symlink(os.path.join(W, "math1"), os.path.join("sweep-out", "0-" + name))
for ow in ([], ["--overwrite"]):
    refused(["merge", "--sweep", "sweep.json", "--index", "0"] + ow,
            "merge --sweep --index 0 into a link to math1 %s" % ow, "'math1'")
    refused(["sweep", "sweep.json"] + ow, "sweep whose merge 0 folder links to math1 %s" % ow, "'math1'")

# a bind mount of an input folder (a private mount namespace; skipped where not allowed)
probe = subprocess.run(["unshare", "-m", "--propagation", "private", "true"], stderr=subprocess.DEVNULL)
if probe.returncode == 0:
    os.makedirs("bind")
    for ow in ("", "--overwrite"):
        script = ("mount --bind base bind && exec %s merge swap.json -o bind %s" % (t.bin, ow))
        p = L.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script], cwd=W)
        if "mount:" in p.stderr:
            t.note("bind mounts not allowed here: %s" % p.stderr.strip()[:200])
            break
        t.check(p.returncode == 1 and "holds model 'base'" in p.stderr and "--overwrite" not in p.stderr,
                "merge -o <bind mount of base> %s: exit %d: %s" % (ow, p.returncode, p.stderr.strip()[-300:]))
    now = snapshot()
    t.check(now == BEFORE, "bind mount: input files changed")
else:
    t.note("unshare -m not allowed here: bind-mount case skipped")

# the same configs still merge where they should, and the inputs stay as they were
p = t.ls("merge", "swap.json", "-o", "ok-out", "--overwrite", "--quiet")
t.expect_rc(p, 0, "merge into a fresh folder")
t.verify("ok-out", "merge into a fresh folder")
p = t.ls("merge", "soup.json", "-o", "ok-soup", "--quiet")
t.expect_rc(p, 0, "soup with unread models into a fresh folder")
p = t.ls("stats", "--base", "base", "math1", "-o", "ok-stats", "--quiet")
t.expect_rc(p, 0, "stats into a fresh folder")
t.check(snapshot() == BEFORE, "inputs changed after the allowed runs")
t.finish()
