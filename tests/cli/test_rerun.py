#!/usr/bin/python3
"""Reruns into an existing output folder (docs/cli.md, docs/output.md).

  * merge ls-paper.json -> W/out; the same command again exits 0, says there is nothing to
    do ("nothing to do" on stdout or stderr), and changes no file (bytes and mtimes);
  * a different config (linear-uniform-2.json) into the same folder exits 1 with one error
    line naming the folder and leaves it as it was (verify still 0, bytes unchanged);
  * the same with --overwrite exits 0 and the folder then holds the new merge (oracle
    identical, verify 0, no file of the old merge left over);
  * a third config with another layout (5 shards) with --overwrite: no file of the
    single-file merge is left over (the folder holds exactly the manifest's files);
  * the first config again, without --overwrite, is refused again (exit 1); with
    --overwrite it succeeds and no shard or index of the sharded merge is left over;
  * --overwrite of a folder whose journal names ../victim.txt leaves that file alone.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lswtest as L  # noqa: E402

t = L.Test(__doc__)
W = t.work
c1 = os.path.join(L.CONFIGS, "ls-paper.json")
c2 = os.path.join(L.CONFIGS, "linear-uniform-2.json")
c3 = os.path.join(L.CONFIGS, "shard-size-small.json")
out = os.path.join(W, "out")


def state():
    return {f: (os.path.getsize(os.path.join(out, f)), os.stat(os.path.join(out, f)).st_mtime_ns,
                open(os.path.join(out, f), "rb").read()) for f in L.all_files(out)}


p = t.ls("merge", c1, "-o", "out")
if not t.expect_rc(p, 0, "first merge"):
    t.finish()
s1 = state()

p = t.ls("merge", c1, "-o", "out")
t.expect_rc(p, 0, "rerun of a completed merge")
t.check("nothing to do" in (p.stdout + p.stderr).lower(),
        "rerun of a completed merge does not say 'nothing to do': %r" % (p.stdout + p.stderr))
t.check(state() == s1, "rerun of a completed merge changed the folder")

p = t.ls("merge", c2, "-o", "out")
t.expect_rc(p, 1, "another config into the same folder")
if p.returncode == 1:
    t.check_error_line(p, "merge", 1, "another config into the same folder", ["out"])
t.check(state() == s1, "the refused merge changed the folder")
t.verify(out, "after the refused merge")

p = t.ls("merge", c2, "-o", "out", "--overwrite")
t.expect_rc(p, 0, "another config with --overwrite")
t.oracle(c2, out, "after --overwrite")
t.verify(out, "after --overwrite")

# another config with another layout: no file of the old merge may be left over
p = t.ls("merge", c3, "-o", "out", "--overwrite")
t.expect_rc(p, 0, "a sharded config with --overwrite")
t.oracle(c3, out, "after the second --overwrite")
t.verify(out, "after the second --overwrite")
t.check("model.safetensors" not in L.all_files(out),
        "the single-file model.safetensors of the previous merge is still in the sharded output")
man = L.load_json(os.path.join(out, "layerswap-manifest.json"))
listed = sorted(f["name"] for f in man.get("files", []))
present = sorted(f for f in L.all_files(out) if f != "layerswap-manifest.json")
t.check(listed == present, "after --overwrite the folder holds %r, the manifest lists %r"
        % (present, listed))

p = t.ls("merge", c1, "-o", "out")
t.expect_rc(p, 1, "the first config again without --overwrite")

# and back to one file: no shard of the sharded merge may be left over
p = t.ls("merge", c1, "-o", "out", "--overwrite")
t.expect_rc(p, 0, "the single-file config again with --overwrite")
t.oracle(c1, out, "after the third --overwrite")
t.verify(out, "after the third --overwrite")
stale = [f for f in L.all_files(out) if f.startswith("model-") or f == "model.safetensors.index.json"]
t.check(not stale, "after --overwrite with a single-file merge, files of the sharded merge are "
        "left over: %r" % stale)

# a journal someone else wrote, naming a file outside the folder: --overwrite removes
# the files of the previous run, but never anything outside the output folder
victim = os.path.join(W, "victim.txt")
with open(victim, "w") as f:
    f.write("precious\n")
out2 = os.path.join(W, "out2")
os.makedirs(out2)
with open(os.path.join(out2, ".layerswap-state"), "w") as f:
    f.write("layerswap-state 1 1\ndone ../victim.txt 9 0\ndone /etc/hostname 9 0\n")
p = t.ls("merge", c1, "-o", "out2", "--overwrite")
t.expect_rc(p, 0, "--overwrite of a folder whose journal names ../victim.txt")
t.check(os.path.exists(victim), "--overwrite removed ../victim.txt, outside the output folder")
t.finish()
