#!/usr/bin/python3
"""`layerswap verify DIR` exits 0 only if every file is complete and matches the manifest
(docs/cli.md, docs/output.md) -- the other cli tests rely on it, so check that it does catch damage.

A merge of shard-size-small.json (5 shards) is copied and damaged in one way per copy;
verify must exit non-zero (and not 70, an internal error) with a message naming the file:
  one byte flipped in the data of a shard (same size), a shard truncated, a shard removed,
  config.json changed, the manifest removed (the folder is then incomplete), one byte of
  the manifest's recorded CRC changed, a stray checkpoint file the manifest does not list,
  a stray pickle, a manifest that lists a file twice, and -- behind a manifest updated to
  match -- a config.json that is not JSON and an index that leaves out a tensor.
  The intact folder verifies (exit 0).
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


def crc32c(data):
    c = 0xFFFFFFFF
    for b in data:
        c ^= b
        for _ in range(8):
            c = (c >> 1) ^ (0x82F63B78 if c & 1 else 0)
    return c ^ 0xFFFFFFFF


def rewrite(d, name, data):
    """Replace file `name` and record its new size and CRC in the manifest, as a careful
    hand edit would: only the content rules can catch it then."""
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)
    p = os.path.join(d, "layerswap-manifest.json")
    m = L.load_json(p)
    for e in m["files"]:
        if e["name"] == name:
            e["bytes"], e["crc32c"] = len(data), "%08x" % crc32c(data)
    L.write_json(p, m)


def pickle(d):
    with open(os.path.join(d, "pytorch_model.bin"), "wb") as f:
        f.write(b"\x80\x02}q\x00.")
    return "pytorch_model.bin"


def duplicate_entry(d):
    p = os.path.join(d, "layerswap-manifest.json")
    m = L.load_json(p)
    m["files"].append(dict(m["files"][0]))
    L.write_json(p, m)
    return m["files"][0]["name"]


def broken_config(d):
    rewrite(d, "config.json", b'{"torch_dtype": ')
    return "config.json"


def index_gap(d):
    ip = os.path.join(d, "model.safetensors.index.json")
    idx = L.load_json(ip)
    del idx["weight_map"][sorted(idx["weight_map"])[0]]
    rewrite(d, "model.safetensors.index.json", (L.json.dumps(idx, indent=2) + "\n").encode())
    return "model.safetensors.index.json"


for fn in (flip, truncate, remove, config, no_manifest, manifest_crc, stray, pickle, duplicate_entry,
           broken_config, index_gap):
    d = os.path.join(W, fn.__name__)
    shutil.copytree(good, d)
    name = fn(d)
    q = t.ls("verify", d)
    t.check(q.returncode not in (0, 70), "verify after '%s': exit %d, expected a failure (not 0, "
            "not 70)" % (fn.__name__, q.returncode))
    t.check(name in q.stdout + q.stderr, "verify after '%s' does not name %s: %s"
            % (fn.__name__, name, (q.stdout + q.stderr).strip()[-400:]))
t.finish()
