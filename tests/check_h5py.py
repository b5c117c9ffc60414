#!/usr/bin/python3
"""check_h5py — other HDF5 programs read model.h5 through the zstd plugin.

usage: /usr/bin/python3 check_h5py.py SAMPLE_DIR UNIT_HDF5 PLUGIN_DIR

SAMPLE_DIR comes from `unit_hdf5 --emit SAMPLE_DIR`: model.h5, expected.tsv
(name, dtype, shape, rows per chunk, raw file) and the raw bytes of every
tensor.  Checked here, with HDF5_PLUGIN_PATH=PLUGIN_DIR:
  1. h5py (serial HDF5, libhdf5 loaded RTLD_LOCAL) opens model.h5, sees the
     root attributes, the dataset names, shapes, chunks, filters and dtype
     attributes, and reads every dataset bit for bit.  BF16: h5py maps the
     16-bit custom float to float32, so ds[...] converts (values exact, NaN
     payloads lost).  The raw bits come from the low-level read with the
     dataset's own file type as memory type (no conversion):
         raw = numpy.empty(nbytes, numpy.uint8)
         ds.id.read(h5py.h5s.ALL, h5py.h5s.ALL, raw, mtype=ds.id.get_type())
  2. Every stored chunk, taken with read_direct_chunk, is a standard zstd
     frame (decoded by the zstd program) of the byte-shuffled, zero-padded
     rows.
  3. Without the plugin, h5py cannot read the data (so 1 really used it).
  4. h5dump prints the data with the plugin and fails to without it
     (judged by the values printed, never by the exit code: NOTES.md).
  5. The filter's compression direction: h5py writes datasets through the
     plugin (edge chunks included); h5py and lsw_hdf5's reader
     (`unit_hdf5 --cat`) read them back, with string attributes of both
     kinds: variable-length (what layerswap writes, h5py's `str`) and
     fixed-length (what layerswap wrote before, h5py's bytes).
"""
import os
import re
import subprocess
import sys
import tempfile

import h5py
import numpy as np

ZSTD_ID = 32015
SIZES = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "F8_E8M0": 1, "I16": 2, "U16": 2,
         "F16": 2, "BF16": 2, "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8, "C64": 8}
NUMPY = {"BOOL": np.uint8, "U8": np.uint8, "I8": np.int8, "F8_E4M3": np.uint8, "I16": np.int16,
         "U16": np.uint16, "F16": np.float16, "I32": np.int32, "U32": np.uint32, "F32": np.float32,
         "I64": np.int64, "U64": np.uint64, "F64": np.float64, "C64": np.complex64}

failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what, file=sys.stderr)


def raw_bits(ds, nbytes):
    """The dataset's bytes exactly as stored, whatever numpy thinks of its type."""
    raw = np.empty(nbytes, np.uint8)
    if nbytes:
        ds.id.read(h5py.h5s.ALL, h5py.h5s.ALL, raw, mtype=ds.id.get_type())
    return raw.tobytes()


def zstd_filter_cd(ds):
    plist = ds.id.get_create_plist()
    for i in range(plist.get_nfilters()):
        code, flags, cd, name = plist.get_filter(i)
        if code == ZSTD_ID:
            return tuple(cd)
    return None


def unshuffle(b, es):
    a = np.frombuffer(b, np.uint8)
    n = len(a) // es
    if es == 1 or n <= 1:
        return a.tobytes()
    body = a[: n * es].reshape(es, n).T.reshape(-1)
    return body.tobytes() + a[n * es:].tobytes()


def h5dump_values(text):
    """The numbers of a dataset's DATA block in h5dump's output ([] if none)."""
    m = re.search(r"^( *)DATA \{(.*?)^\1\}", text, re.S | re.M)  # the first DATA is the dataset's
    if not m:
        return []
    body = re.sub(r"\([0-9, ]+\):", " ", m.group(2))
    return [float(x) for x in re.findall(r"(?<![\w.])-?(?:nan|inf|[0-9][0-9.e+-]*)(?![\w.])", body)]


def close(vals, ref):
    """h5dump prints 6 significant digits."""
    with np.errstate(invalid="ignore"):
        ref = np.asarray(ref, np.float64)
    return len(vals) == len(ref) and all((np.isnan(a) and np.isnan(b)) or a == b or abs(a - b) <= 1e-5 * abs(b) for a, b in zip(vals, ref))


def env_with_plugins(path):
    env = dict(os.environ)
    env["HDF5_PLUGIN_PATH"] = path
    return env


def main():
    sample, unit_hdf5, plugins = sys.argv[1:4]
    if os.environ.get("HDF5_PLUGIN_PATH") != plugins:
        # h5py reads the variable when HDF5 loads its first plugin: re-run with it set
        os.execve(sys.executable, [sys.executable] + sys.argv, env_with_plugins(plugins))
    model = os.path.join(sample, "model.h5")
    empty_plugins = tempfile.mkdtemp(prefix="no-plugins.")
    expected = []
    with open(os.path.join(sample, "expected.tsv")) as f:
        for line in f:
            name, dtype, shape, rpc, raw = line.rstrip("\n").split("\t")
            shape = tuple(int(x) for x in shape.split(",")) if shape else ()
            with open(os.path.join(sample, raw), "rb") as g:
                expected.append((name, dtype, shape, int(rpc), g.read()))

    # 1. h5py reads everything through the plugin
    with h5py.File(model, "r") as f:
        # string attributes are variable-length UTF-8: h5py gives str, not bytes
        with open(os.path.join(sample, "config.json"), "rb") as g:
            check(f.attrs["config"] == g.read().decode("utf-8"), "root attribute config is the config text (str)")
        check(isinstance(f.attrs["plan"], str) and len(f.attrs["plan"]) > 65536, "root attribute plan (str, dense storage)")
        ver = f.attrs["layerswap_version"]
        check(isinstance(ver, str) and ver.count(".") == 2, "root attribute layerswap_version (str)")
        check(sorted(f["tensors"].keys()) == sorted(e[0] for e in expected), "dataset names")
        for obj in [f["/"], f["tensors"]] + [f["tensors"][e[0]] for e in expected]:
            check(not obj.id.get_create_plist().get_obj_track_times(), f"{obj.name}: no time stamps")
        for name, dtype, shape, rpc, data in expected:
            ds = f["tensors"][name]
            es = SIZES[dtype]
            check(ds.attrs["dtype"] == dtype and isinstance(ds.attrs["dtype"], str), f"{name}: dtype attribute (str)")
            scalar = shape == ()
            check(ds.shape == ((1,) if scalar else shape), f"{name}: shape {ds.shape}")
            check(("scalar" in ds.attrs) == scalar, f"{name}: scalar attribute")
            check(ds.dtype.itemsize == es or dtype == "BF16", f"{name}: numpy dtype {ds.dtype}")
            check(ds.id.get_type().get_size() == es, f"{name}: HDF5 type size")
            if len(data):
                chunk = ds.chunks
                want = (rpc,) + shape[1:] if len(shape) >= 2 else ((shape[0],) if shape else (1,))
                check(chunk == want, f"{name}: chunks {chunk} != {want}")
                chunk_bytes = int(np.prod(chunk)) * es
                check(ds.shuffle, f"{name}: shuffle filter")
                check(zstd_filter_cd(ds) == (3, chunk_bytes), f"{name}: zstd cd_values {zstd_filter_cd(ds)}")
            check(raw_bits(ds, len(data)) == data, f"{name}: raw bits via h5py")
            if dtype in NUMPY and len(data):
                check(ds[...].tobytes() == data, f"{name}: ds[...] bytes")
            if dtype == "BF16":
                bits = np.frombuffer(data, np.uint16).reshape(shape)
                want = (bits.astype(np.uint32) << 16).view(np.float32)
                got = ds[...]
                nan = np.isnan(want)
                check(got.dtype == np.float32, f"{name}: h5py maps BF16 to {got.dtype}")
                check(np.array_equal(got[~nan].view(np.uint32), want[~nan].view(np.uint32))
                      and np.array_equal(np.isnan(got), nan), f"{name}: ds[...] is the exact float32 widening")

            # 2. the stored chunks, decoded without HDF5
            if len(data):
                rows = shape[0] if len(shape) >= 2 else 1
                row_bytes = len(data) // rows
                step = rpc if len(shape) >= 2 else 1
                for r0 in range(0, rows, step):
                    offset = (r0,) + (0,) * (len(ds.shape) - 1)
                    mask, stored = ds.id.read_direct_chunk(offset)
                    check(mask == 0, f"{name}: chunk {r0} filter mask {mask}")
                    check(stored[:4] == b"\x28\xb5\x2f\xfd", f"{name}: chunk {r0} is a zstd frame")
                    plain = subprocess.run(["zstd", "-d", "-c", "-q"], input=stored, stdout=subprocess.PIPE,
                                           check=True).stdout
                    check(len(plain) == chunk_bytes, f"{name}: chunk {r0} decodes to {len(plain)} bytes")
                    part = data[r0 * row_bytes:(r0 + step) * row_bytes]
                    check(unshuffle(plain, es) == part + bytes(chunk_bytes - len(part)),
                          f"{name}: chunk {r0} = shuffled rows + zero padding")

    # 3. without the plugin h5py cannot read the data
    probe = ("import h5py,sys\nf=h5py.File(sys.argv[1],'r')\n"
             "try:\n f['tensors/model.layers.0.input_layernorm.weight'][...]\nexcept OSError as e:\n"
             " print('refused:', e); sys.exit(3)\nsys.exit(0)\n")
    r = subprocess.run([sys.executable, "-c", probe, model], env=env_with_plugins(empty_plugins),
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    check(r.returncode == 3, f"h5py without the plugin should fail to read (rc {r.returncode}: {r.stdout.strip()})")

    # 4. h5dump, with and without the plugin
    f32_name = "model.layers.0.input_layernorm.weight"
    f32 = np.frombuffer(next(e[4] for e in expected if e[0] == f32_name), np.float32)
    r = subprocess.run(["h5dump", "-d", "/tensors/" + f32_name, model], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True)
    vals = h5dump_values(r.stdout)
    check(len(vals) == len(f32), f"h5dump prints {len(vals)} of {len(f32)} values with the plugin")
    if len(vals) == len(f32):
        check(close(vals, f32), "h5dump prints the right values")
    bf_name = "model.embed_tokens.weight"
    bf = np.frombuffer(next(e[4] for e in expected if e[0] == bf_name), np.uint16)
    r = subprocess.run(["h5dump", "-d", "/tensors/" + bf_name, "-s", "0,0", "-c", "1,4", model],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    vals = h5dump_values(r.stdout)
    ref = (bf[:4].astype(np.uint32) << 16).view(np.float32)
    check(len(vals) == 4 and close(vals, ref), f"h5dump reads BF16 as {vals}, want {list(ref)}")
    r = subprocess.run(["h5dump", "-d", "/tensors/" + f32_name, model], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, env=env_with_plugins(empty_plugins))
    check(len(h5dump_values(r.stdout)) == 0, "h5dump without the plugin shows no data")

    # 5. the compression direction: h5py writes through the plugin, everyone reads
    out = os.path.join(sample, "h5py_written.h5")
    rng = np.random.default_rng(7)
    w = rng.normal(0, 0.02, size=(37, 1000)).astype(np.float32)
    b = rng.integers(-2**40, 2**40, size=70, dtype=np.int64)
    bf = rng.integers(0, 65536, size=(9, 33), dtype=np.uint16)
    with h5py.File(out, "w") as f:
        # root attributes as layerswap wrote them before (fixed-length strings): still read
        for k, v in (("config", b'{"models": {}}'), ("plan", b"plan"), ("layerswap_version", b"0.0.9")):
            f.attrs[k] = np.bytes_(v)
        t = f.create_group("tensors")
        d = t.create_dataset("w", data=w, chunks=(16, 1000), shuffle=True, compression=ZSTD_ID,
                             compression_opts=(1, 16 * 1000 * 4))
        d.attrs["dtype"] = "F32"           # a variable-length string, as layerswap writes them
        d = t.create_dataset("b", data=b, chunks=(32,), compression=ZSTD_ID, compression_opts=(5, 32 * 8))
        d.attrs["dtype"] = np.bytes_("I64")  # fixed-length, as layerswap wrote them before
        # without the chunk size in cd_values[1] the plugin does not compress (the
        # filter is optional: h5py stores the chunk raw), and layerswap refuses the dataset
        d = t.create_dataset("nocap", data=b, chunks=(32,), compression=ZSTD_ID, compression_opts=(5,))
        d.attrs["dtype"] = np.bytes_("I64")
        bf16 = h5py.h5t.IEEE_F32LE.copy()  # a BF16 dataset made with h5py's low-level API
        bf16.set_fields(15, 7, 8, 0, 7)
        bf16.set_size(2)
        bf16.set_ebias(127)
        dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        dcpl.set_chunk((4, 33))
        dcpl.set_shuffle()
        dcpl.set_filter(ZSTD_ID, h5py.h5z.FLAG_OPTIONAL, (3, 4 * 33 * 2))
        sid = h5py.h5s.create_simple(bf.shape)
        did = h5py.h5d.create(t.id, b"bf", bf16, sid, dcpl=dcpl)
        did.write(h5py.h5s.ALL, h5py.h5s.ALL, bf, mtype=bf16)
        t["bf"].attrs["dtype"] = "BF16"
    with h5py.File(out, "r") as f:
        check(np.array_equal(f["tensors/w"][...], w), "h5py round trip through the plugin (f32)")
        check(np.array_equal(f["tensors/b"][...], b), "h5py round trip through the plugin (i64)")
        check(raw_bits(f["tensors/bf"], bf.nbytes) == bf.tobytes(), "h5py round trip through the plugin (bf16)")
        for name in ("w", "b", "bf"):
            mask, stored = f["tensors/" + name].id.read_direct_chunk((0,) * f["tensors/" + name].ndim)
            check(mask == 0 and stored[:4] == b"\x28\xb5\x2f\xfd", f"h5py wrote {name} with zstd")
        mask, stored = f["tensors/nocap"].id.read_direct_chunk((0,))
        check(mask != 0 and stored == b[:32].tobytes(), "without cd_values[1] the chunk is stored raw")
        del f
    with h5py.File(out, "a") as f:
        del f["tensors/nocap"]
    for name, arr in (("w", w), ("b", b), ("bf", bf)):
        r = subprocess.run([unit_hdf5, "--cat", out, name], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        check(r.returncode == 0 and r.stdout == arr.tobytes(),
              f"lsw_hdf5 reads h5py's {name} (rc {r.returncode}: {r.stderr.decode().strip()})")
    os.rmdir(empty_plugins)

    if failures:
        print(f"check_h5py: {len(failures)} failures", file=sys.stderr)
        return 1
    print(f"check_h5py: {len(expected)} datasets of model.h5 and 3 written by h5py check out")
    return 0


if __name__ == "__main__":
    sys.exit(main())
