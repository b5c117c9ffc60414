#!/usr/bin/python3
"""benchlib.py — small helpers the benchmark scripts call (standard library; numpy for `entropy`).

  benchlib.py json FILE KEY[.KEY...] [DEFAULT]   print one field of a JSON file (DEFAULT when absent)
  benchlib.py entropy DIR                        order-0 entropy bound of the BF16 tensors of the
                                                 safetensors files in DIR: (H(low bytes) + H(high
                                                 bytes)) / 16, as a fraction of their size
  benchlib.py tensor-bytes DIR                   bytes of the tensors of the safetensors files in DIR
  benchlib.py same DIR_A DIR_B                   compare the tensors of two safetensors checkpoints
                                                 by name (dtype, shape, bytes); prints "identical"
                                                 or how many differ; exit 0 either way
  benchlib.py disk-peak STOPFILE OUT PATH...     sample every 20 ms, until STOPFILE exists, the
                                                 bytes allocated under the PATHs (st_blocks) and the
                                                 used bytes of their file system (statvfs); writes
                                                 "peak_under_paths peak_fs_used_growth samples" to OUT
"""
import json
import os
import struct
import sys
import time


def st_tensors(folder):
    """name -> (file, dtype, shape, begin, end) for the safetensors files of a folder."""
    out = {}
    files = sorted(f for f in os.listdir(folder) if f.endswith(".safetensors"))
    for fn in files:
        path = os.path.join(folder, fn)
        with open(path, "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            hdr = json.loads(f.read(n))
        hdr.pop("__metadata__", None)
        for name, t in hdr.items():
            b, e = t["data_offsets"]
            out[name] = (path, t["dtype"], tuple(t["shape"]), 8 + n + b, 8 + n + e)
    return out


def read_range(path, b, e):
    with open(path, "rb") as f:
        f.seek(b)
        return f.read(e - b)


def cmd_json(args):
    v = json.load(open(args[0]))
    for k in args[1].split("."):
        if not isinstance(v, dict) or k not in v:
            print(args[2] if len(args) > 2 else "null")
            return
        v = v[k]
    print(json.dumps(v) if isinstance(v, (dict, list)) else v)


def cmd_entropy(args):
    import numpy as np
    hist = [np.zeros(256, dtype=np.int64), np.zeros(256, dtype=np.int64)]
    for name, (path, dt, _, b, e) in sorted(st_tensors(args[0]).items()):
        if dt != "BF16":
            continue
        a = np.frombuffer(read_range(path, b, e), dtype=np.uint8)
        hist[0] += np.bincount(a[0::2], minlength=256)
        hist[1] += np.bincount(a[1::2], minlength=256)
    bits = 0.0
    for h in hist:
        p = h[h > 0] / h.sum()
        bits += float(-(p * np.log2(p)).sum())
    print("%.6f" % (bits / 16))


def cmd_tensor_bytes(args):
    print(sum(e - b for (_, _, _, b, e) in st_tensors(args[0]).values()))


def cmd_same(args):
    a, b = st_tensors(args[0]), st_tensors(args[1])
    if set(a) != set(b):
        print("different tensor names (%d vs %d)" % (len(a), len(b)))
        return
    diff = 0
    for name in sorted(a):
        pa, da, sa, ba, ea = a[name]
        pb, db, sb, bb, eb = b[name]
        if da != db or sa != sb or read_range(pa, ba, ea) != read_range(pb, bb, eb):
            diff += 1
    print("identical" if diff == 0 else "%d of %d tensors differ" % (diff, len(a)))


def allocated(paths):
    total = 0
    for p in paths:
        for root, _, files in os.walk(p):
            for f in files:
                try:
                    total += os.lstat(os.path.join(root, f)).st_blocks * 512
                except OSError:
                    pass  # removed or renamed between listing and stat
    return total


def fs_used(path):
    s = os.statvfs(path)
    return (s.f_blocks - s.f_bfree) * s.f_frsize


def cmd_disk_peak(args):
    stop, out, paths = args[0], args[1], args[2:]
    base_fs = fs_used(paths[0])
    peak_p = peak_fs = n = 0
    while True:
        done = os.path.exists(stop)
        peak_p = max(peak_p, allocated(paths))
        peak_fs = max(peak_fs, fs_used(paths[0]) - base_fs)
        n += 1
        if done:
            break
        time.sleep(0.02)
    with open(out, "w") as f:
        f.write("%d %d %d\n" % (peak_p, peak_fs, n))


def main():
    cmds = {"json": cmd_json, "entropy": cmd_entropy, "same": cmd_same, "tensor-bytes": cmd_tensor_bytes, "disk-peak": cmd_disk_peak}
    if len(sys.argv) < 3 or sys.argv[1] not in cmds:
        sys.exit(__doc__)
    cmds[sys.argv[1]](sys.argv[2:])


if __name__ == "__main__":
    main()
