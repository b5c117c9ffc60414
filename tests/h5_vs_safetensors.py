#!/usr/bin/python3
"""h5_vs_safetensors.py MODEL_H5 ST_DIR

h5py (with the project's zstd plugin on HDF5_PLUGIN_PATH) reads every
/tensors/<name> dataset of MODEL_H5 bit-exactly (memory type = file type, so
no conversion, BF16 included) and compares it with the same tensor of the
safetensors checkpoint ST_DIR; also the dtype attribute and the shape.
Prints "N passed, M failed"."""
import json, os, struct, sys
import h5py
import numpy as np
from h5py import h5s

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "ref"))
from lsw_ref import load_checkpoint  # noqa: E402  (the oracle's validating reader)


def read_st(d):
    return {k: (dt, list(shape), raw) for k, (dt, shape, raw) in load_checkpoint(d).items()}

st = read_st(sys.argv[2])
ok = bad = 0
with h5py.File(sys.argv[1], "r") as f:
    names = set(f["tensors"].keys())
    if names != set(st):
        print("FAIL: tensor names differ:", sorted(names ^ set(st))[:5])
        bad += 1
    for name in sorted(names & set(st)):
        ds = f["tensors"][name]
        dt, shape, data = st[name]
        raw = np.empty(len(data), np.uint8)
        if len(data):
            ds.id.read(h5s.ALL, h5s.ALL, raw, mtype=ds.id.get_type())
        attr = ds.attrs["dtype"]
        attr = attr.decode() if isinstance(attr, bytes) else str(attr)
        if attr != dt or list(ds.shape) != (shape or [1]) or raw.tobytes() != data:
            print("FAIL %s: dtype %s/%s shape %s/%s bytes equal %s" % (name, attr, dt, list(ds.shape), shape,
                                                                         raw.tobytes() == data))
            bad += 1
        else:
            ok += 1
print("%d passed, %d failed" % (ok, bad))
sys.exit(1 if bad else 0)
