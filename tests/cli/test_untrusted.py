#!/usr/bin/python3
"""Inputs are untrusted, and checked before the first byte (issue 10 items 5, 6, 7).

* With HDF5 output, a tensor name HDF5 cannot store ('/') is exit 2 before anything is
  written (no journal), while the same merge as safetensors works.
* A folder reference model without config.json is exit 2 (the output would not load in
  transformers); a broken one too; a single-file reference model needs none.
* A model path that does not exist names the config file, models.NAME, the resolved
  path, and says paths are relative to the config file's folder.
* Side files: a FIFO tokenizer.json and a character device vocab.json are named in a
  warning and not copied (the merge neither hangs nor fails); a tokenizer_config.json that
  is a symlink to a regular file elsewhere (the Hugging Face cache layout) is copied; a
  200 MB tokenizer.json is copied byte for byte with a peak RSS far below its size.
* A FIFO given as a model, or as a shard of an index, is named as a FIFO.
* inspect applies a merge's checks: a model.h5 whose zstd frames lack their checksum
  fails inspect as it fails merge; a config.json given to inspect is "not a checkpoint".
"""
import os
import resource
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lswtest as L  # noqa: E402

t = L.Test(__doc__)
W = t.work
os.chdir(W)
BASE = os.path.join(t.fixtures, "base")


def model(folder, names, config=True):
    os.makedirs(folder)
    L.st_write(os.path.join(folder, "model.safetensors"),
               [(n, "BF16", [2, 4], bytes(range(16))) for n in names], {"format": "pt"})
    if config:
        shutil.copy(os.path.join(BASE, "config.json"), folder)


def rules(path, models, out):
    L.write_json(path, {"models": models, "method": "rules",
                        "rules": [{"action": "take", "model": sorted(models)[0]}], "output": {"path": out}})


# -- HDF5 names checked up front -------------------------------------------------------------
model("slash", ["model.layers.0.a/b.weight", "model.norm.weight"])
rules("slash.json", {"m": "slash"}, "out-slash")
p = t.ls("merge", "slash.json", "--format", "hdf5")
t.check_error_line(p, "merge", 2, "HDF5 output of a tensor named with '/'", mention=["a/b", "HDF5"])
t.check(not os.path.exists("out-slash"), "HDF5 name refused, but the output folder was created: %r"
        % L.all_files("out-slash"))
p = t.ls("merge", "slash.json", "--quiet")
t.expect_rc(p, 0, "the same merge as safetensors")

# -- the reference model's config.json --------------------------------------------------------
model("noconf", ["model.norm.weight"], config=False)
rules("noconf.json", {"m": "noconf"}, "out-noconf")
p = t.ls("merge", "noconf.json")
t.check_error_line(p, "merge", 2, "reference folder without config.json", mention=["noconf", "config.json"])
t.check(not os.path.exists("out-noconf"), "missing config.json refused, but the output folder was created")
rules("single.json", {"m": "noconf/model.safetensors"}, "out-single")
p = t.ls("merge", "single.json", "--quiet")
t.expect_rc(p, 0, "a single-file reference model needs no config.json")
model("badconf", ["model.norm.weight"], config=False)
with open("badconf/config.json", "w") as f:
    f.write("{\"a\": 1,}")
rules("badconf.json", {"m": "badconf"}, "out-badconf")
p = t.ls("merge", "badconf.json")
t.check_error_line(p, "merge", 2, "reference config.json that is not JSON", mention=["badconf/config.json"])

# -- a model path that does not exist ----------------------------------------------------------
os.makedirs("cfgdir")
rules("cfgdir/missing.json", {"gone": "../no-such-model"}, "out-missing")
p = t.ls("merge", "cfgdir/missing.json")
t.check_error_line(p, "merge", 2, "missing model path",
                   mention=["cfgdir/missing.json", "models.gone", os.path.join(W, "no-such-model"),
                            "relative to the config file's folder"])

# -- side files: FIFO, device, symlink into a cache, a big tokenizer ---------------------------
model("side", ["model.norm.weight"])
os.mkfifo("side/tokenizer.json")
os.symlink("/dev/null", "side/vocab.json")
os.makedirs("cache")
with open("cache/blob-tc", "w") as f:
    f.write('{"model_max_length": 7}\n')
os.symlink(os.path.join(W, "cache/blob-tc"), "side/tokenizer_config.json")
rules("side.json", {"m": "side"}, "out-side")
p = t.ls("merge", "side.json", "--quiet", timeout=60)
t.expect_rc(p, 0, "merge with a FIFO and a device among the side files")
t.check("side/tokenizer.json is a FIFO" in p.stderr and "warning" in p.stderr,
        "the FIFO tokenizer.json is not named in a warning: %r" % p.stderr)
t.check("side/vocab.json is a character device" in p.stderr, "the device vocab.json is not named: %r" % p.stderr)
t.check(not os.path.exists("out-side/tokenizer.json") and not os.path.exists("out-side/vocab.json"),
        "a FIFO or device was copied: %r" % L.visible_files("out-side"))
t.check(L.same_bytes("out-side/tokenizer_config.json", "cache/blob-tc")
        and not os.path.islink("out-side/tokenizer_config.json"),
        "a symlinked tokenizer_config.json was not copied as a regular file")
t.verify("out-side", "merge with odd side files")

model("bigtok", ["model.norm.weight"])
BIG = 200 * 1000 * 1000
with open("bigtok/tokenizer.json", "wb") as f:
    f.write(b'{"x": "')
    f.seek(BIG - 3)
    f.write(b'"}\n')
rules("bigtok.json", {"m": "bigtok"}, "out-bigtok")
probe = ("import resource, subprocess, sys\n"
         "p = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL)\n"
         "print(p.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n")
p = L.run([L.PYTHON, "-c", probe, t.bin, "merge", "bigtok.json", "--quiet"], cwd=W)
rc, rss_kb = (int(x) for x in p.stdout.split()[:2]) if p.stdout.strip() else (-1, 0)
t.check(rc == 0, "merge with a 200 MB tokenizer.json: exit %d: %s" % (rc, p.stderr[-300:]))
t.check(rss_kb < 100 * 1024, "a 200 MB tokenizer.json took %d MB of RSS (read whole?)" % (rss_kb // 1024))
t.check(L.same_bytes("out-bigtok/tokenizer.json", "bigtok/tokenizer.json"), "the big tokenizer.json differs")
shutil.rmtree("out-bigtok", ignore_errors=True)
os.unlink("bigtok/tokenizer.json")

# -- FIFOs as models ---------------------------------------------------------------------------
os.mkfifo("fifo-model")
rules("fifo.json", {"m": "fifo-model"}, "out-fifo")
p = t.ls("merge", "fifo.json", timeout=60)
t.check_error_line(p, "merge", 2, "a FIFO as a model", mention=["fifo-model", "FIFO"])
os.makedirs("fifo-shard")
shutil.copy(os.path.join(BASE, "model.safetensors.index.json"), "fifo-shard")
for f in os.listdir(BASE):
    if f.startswith("model-0000"):
        if f.startswith("model-00002"):
            os.mkfifo(os.path.join("fifo-shard", f))
        else:
            shutil.copy(os.path.join(BASE, f), "fifo-shard")
p = t.ls("inspect", "fifo-shard", timeout=60)
t.check_error_line(p, "inspect", 2, "a FIFO as a shard", mention=["model-00002-of-00005.safetensors", "FIFO"])

# -- inspect = merge's checks ------------------------------------------------------------------
h5 = os.path.join(t.data, "bad-h5", "h5-nochecksum.h5")
p = t.ls("inspect", h5)
t.check_error_line(p, "inspect", 2, "inspect of a model.h5 whose frames lack their checksum",
                   mention=["h5-nochecksum.h5", "tensor 't'"])
p = t.ls("inspect", os.path.join(BASE, "config.json"))
t.check_error_line(p, "inspect", 2, "inspect config.json", mention=["not a checkpoint"])
t.check("weight_map" not in p.stderr.split("not a checkpoint")[0], "inspect config.json blames the index")
p = t.ls("inspect", "noconf")
t.expect_rc(p, 0, "inspect of a folder without config.json")
t.check("no config.json" in p.stdout, "inspect does not say that a merge cannot take its config: %r" % p.stdout[-300:])
p = t.ls("inspect", "badconf")
t.check_error_line(p, "inspect", 2, "inspect of a folder with a broken config.json", mention=["badconf/config.json"])
t.finish()
