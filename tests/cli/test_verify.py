#!/usr/bin/python3
"""`layerswap verify DIR` exits 0 only if every file is complete and matches the manifest
(SPEC §1, §5) -- the other cli tests rely on it, so check that it does catch damage.

A merge of shard-size-small.json (5 shards) is copied and damaged in one way per copy;
verify must exit non-zero (and not 70, an internal error) with a message naming the file:
  one byte flipped in the data of a shard (same size), a shard truncated, a shard removed,
  config.json changed, the manifest removed (the folder is then incomplete), one byte of
  the manifest's recorded CRC changed, a stray checkpoint file the manifest does not list.  The intact folder verifies (exit 0).
"""
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lswtest as L  # noqa: E402

t = L.Test(__doc__)
W = t.work
cfg = os.path.join(L.CONFIGS, "shard-size-small.json")
good = os.path.join(W, "good")
p = t.ls("merge", cfg, "-o", good)
if not t.expect_rc(p, 0, "merge"):
    t.finish()
t.verify(good, "intact output")
S2 = "model-00002-of-00005.safetensors"
S3 = "model-00003-of-00005.safetensors"


def flip(d):
    p = os.path.join(d, S2)
    with open(p, "r+b") as f:
        f.seek(os.path.getsize(p) - 100)
        b = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([b[0] ^ 0x01]))
    return S2


def truncate(d):
    p = os.path.join(d, S2)
    with open(p, "r+b") as f:
        f.truncate(os.path.getsize(p) - 64)
    return S2


def remove(d):
    os.unlink(os.path.join(d, S3))
    return S3


def config(d):
    p = os.path.join(d, "config.json")
    with open(p, "a") as f:
        f.write(" ")
    return "config.json"


def no_manifest(d):
    os.unlink(os.path.join(d, "layerswap-manifest.json"))
    return "layerswap-manifest.json"


def manifest_crc(d):
    p = os.path.join(d, "layerswap-manifest.json")
    m = L.load_json(p)
    old = m["files"][0]["crc32c"]
    m["files"][0]["crc32c"] = ("0" if old[0] != "0" else "1") + old[1:]
    L.write_json(p, m)
    return m["files"][0]["name"]


def stray(d):
    # a checkpoint file of another run beside the manifest's files
    shutil.copy(os.path.join(d, S2), os.path.join(d, "model.safetensors"))
    return "model.safetensors"


for fn in (flip, truncate, remove, config, no_manifest, manifest_crc, stray):
    d = os.path.join(W, fn.__name__)
    shutil.copytree(good, d)
    name = fn(d)
    q = t.ls("verify", d)
    t.check(q.returncode not in (0, 70), "verify after '%s': exit %d, expected a failure (not 0, "
            "not 70)" % (fn.__name__, q.returncode))
    t.check(name in q.stdout + q.stderr, "verify after '%s' does not name %s: %s"
            % (fn.__name__, name, (q.stdout + q.stderr).strip()[-400:]))
t.finish()
