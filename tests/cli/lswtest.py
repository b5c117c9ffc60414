"""Shared helpers for the `cli` ctest drivers (tests/cli/test_*.py).

Every driver is run by ctest as
    /usr/bin/python3 tests/cli/test_X.py --bin LAYERSWAP --data TESTS/data --work WORKDIR [more]
WORKDIR is private to one ctest case (tests run in parallel with ctest -j); it is wiped
and re-created at start.  A driver records every failed check with `t.check(...)`, keeps
going where that makes sense, and ends with `t.finish()` (exit 1 if anything failed,
77 = skipped where the driver says so).

Standard library only (plus nothing): run with Debian's /usr/bin/python3.
"""

import argparse
import atexit
import filecmp
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile

TESTS_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REF = os.path.join(TESTS_DIR, "ref", "lsw_ref.py")
MAKE_BAD = os.path.join(TESTS_DIR, "ref", "make_bad_safetensors.py")
CONFIGS = os.path.join(TESTS_DIR, "configs")
PYTHON = "/usr/bin/python3"

SKIP = 77

# "layerswap CMD: error: DETAIL [message, exit N]" -- docs/cli.md / engine convention.
ERR_RE = re.compile(r"^layerswap (\S+): error: (.+) \[(.*)exit (\d+)\]$")

DTYPE_SIZE = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "I16": 2, "U16": 2,
              "F16": 2, "BF16": 2, "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8}


class Test:
    def __init__(self, description="", extra=None):
        ap = argparse.ArgumentParser(description=description)
        ap.add_argument("--bin", required=True, help="the layerswap executable")
        ap.add_argument("--data", default=os.path.join(TESTS_DIR, "data"),
                        help="tests/data (the Hugging Face fixtures)")
        ap.add_argument("--work", required=True, help="private scratch folder (wiped)")
        if extra:
            extra(ap)
        self.args = ap.parse_args()
        self.bin = os.path.abspath(self.args.bin)
        self.data = os.path.abspath(self.args.data)
        self.fixtures = os.path.join(self.data, "llama-bf16-sharded")
        self.work = os.path.abspath(self.args.work)
        fresh_dir(self.work)
        # A private TMPDIR for everything this test starts: Open MPI singletons keep their
        # session directories there, and tests running in parallel (ctest -j) have been
        # seen colliding in a shared /tmp/ompi.* ("mkdir ... File exists" in MPI_Init).
        # Short and outside the work folder (socket paths are limited to ~100 bytes).
        self.tmpdir = tempfile.mkdtemp(prefix="lsw-cli-")
        os.environ["TMPDIR"] = self.tmpdir
        atexit.register(shutil.rmtree, self.tmpdir, True)
        self.failures = []
        self.nchecks = 0

    # -- bookkeeping -----------------------------------------------------------------------
    def check(self, cond, msg):
        self.nchecks += 1
        if not cond:
            self.failures.append(msg)
            print("FAIL: " + msg, flush=True)
        return bool(cond)

    def note(self, msg):
        print("note: " + msg, flush=True)

    def finish(self, skip_reason=None):
        if self.failures:
            print("\n%d of %d checks failed:" % (len(self.failures), self.nchecks))
            for f in self.failures:
                print("  - " + f)
            sys.exit(1)
        if skip_reason:
            print("SKIPPED: " + skip_reason)
            sys.exit(SKIP)
        print("ok: %d checks passed" % self.nchecks)
        sys.exit(0)

    def fatal(self, msg):
        self.failures.append(msg)
        print("FAIL (fatal): " + msg, flush=True)
        self.finish()

    # -- running ---------------------------------------------------------------------------
    def ls(self, *args, cwd=None, env=None, timeout=300, show=True):
        """Run layerswap ARGS; -> CompletedProcess (text)."""
        return run([self.bin] + [str(a) for a in args], cwd=cwd or self.work, env=env,
                   timeout=timeout, show=show)

    def ref(self, *args, cwd=None, timeout=600, show=True):
        return run([PYTHON, REF] + [str(a) for a in args], cwd=cwd or self.work,
                   timeout=timeout, show=show)

    def expect_rc(self, p, rc, what):
        return self.check(p.returncode == rc, "%s: exit %s, expected %d (stderr: %s)"
                          % (what, p.returncode, rc, p.stderr.strip()[-600:]))

    def check_error_line(self, p, cmd, rc, what, mention=()):
        """stderr holds one error line "layerswap CMD: error: ... [..., exit RC]" that
        mentions every string of `mention` (each item may be a tuple of alternatives)."""
        lines = [l for l in p.stderr.splitlines() if l.strip()]
        errs = [l for l in lines if ERR_RE.match(l)]
        ok = self.check(len(errs) == 1, "%s: expected exactly one error line "
                        "'layerswap %s: error: ... [..., exit %d]' on stderr, got %r"
                        % (what, cmd, rc, lines[:3] + (["..."] if len(lines) > 3 else [])))
        if not errs:
            return False
        m = ERR_RE.match(errs[0])
        ok &= self.check(m.group(1) == cmd and int(m.group(4)) == rc,
                         "%s: error line %r should be for command %r with exit %d"
                         % (what, errs[0], cmd, rc))
        for item in mention:
            alts = item if isinstance(item, (tuple, list)) else (item,)
            ok &= self.check(any(a in errs[0] for a in alts),
                             "%s: error line %r does not mention %s"
                             % (what, errs[0], " or ".join(repr(a) for a in alts)))
        return ok

    def verify(self, outdir, what):
        p = self.ls("verify", outdir)
        return self.expect_rc(p, 0, "%s: layerswap verify %s" % (what, outdir))

    def oracle(self, config, outdir, what, rules_normalize=False):
        args = ["merge", config, "--compare", outdir, "--check-layout", "-q"]
        if rules_normalize:
            args.append("--rules-normalize")
        p = self.ref(*args)
        self.check(p.returncode == 0 and re.search(r"\b[1-9]\d* passed, 0 failed", p.stdout),
                   "%s: oracle lsw_ref.py merge %s --compare %s: exit %d, %s"
                   % (what, os.path.basename(config), outdir, p.returncode,
                      (p.stdout + p.stderr).strip()[-1500:]))
        return p


def run(argv, cwd=None, env=None, timeout=300, show=True):
    e = dict(os.environ)
    for k in list(e):
        if k.startswith("LSW_FAULT"):
            del e[k]
    if env:
        e.update(env)
    if show:
        print("$ " + " ".join(argv) + ("   (cwd %s)" % cwd if cwd else ""), flush=True)
    p = subprocess.run(argv, cwd=cwd, env=e, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       stdin=subprocess.DEVNULL, timeout=timeout,
                       universal_newlines=True, errors="replace")
    if show:
        print("  -> exit %d%s" % (p.returncode, ("; stderr: " + p.stderr.strip()[-400:])
                                  if p.stderr.strip() else ""), flush=True)
    return p


def fresh_dir(path):
    if os.path.lexists(path):
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.unlink(path)
    os.makedirs(path)
    return path


def all_files(folder):
    """Relative paths of every file (hidden ones too) under folder, sorted."""
    out = []
    if not os.path.isdir(folder):
        return out
    for root, dirs, files in os.walk(folder):
        for f in files:
            out.append(os.path.relpath(os.path.join(root, f), folder))
    return sorted(out)


def visible_files(folder):
    return [f for f in all_files(folder) if not os.path.basename(f).startswith(".")]


def same_bytes(a, b):
    return os.path.isfile(a) and os.path.isfile(b) and filecmp.cmp(a, b, shallow=False)


# -- safetensors ---------------------------------------------------------------------------

def st_header(path):
    """-> (header dict, header length N, file size)."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        hdr = json.loads(f.read(n).decode("utf-8"))
    return hdr, n, os.path.getsize(path)


def st_read(path):
    """-> (metadata dict or None, list of (name, dtype, shape, bytes)) in data order."""
    hdr, n, _ = st_header(path)
    md = hdr.pop("__metadata__", None)
    with open(path, "rb") as f:
        f.seek(8 + n)
        data = f.read()
    ts = sorted(hdr.items(), key=lambda kv: kv[1]["data_offsets"][0])
    return md, [(k, v["dtype"], list(v["shape"]), data[v["data_offsets"][0]:v["data_offsets"][1]])
                for k, v in ts]


def st_write(path, tensors, metadata=None):
    """Write a valid safetensors file from (name, dtype, shape, bytes) tuples (in order)."""
    hdr = {}
    if metadata is not None:
        hdr["__metadata__"] = metadata
    off = 0
    for name, dtype, shape, raw in tensors:
        n = 1
        for d in shape:
            n *= d
        assert n * DTYPE_SIZE[dtype] == len(raw), (name, dtype, shape, len(raw))
        hdr[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [off, off + len(raw)]}
        off += len(raw)
    hb = json.dumps(hdr, separators=(",", ":")).encode("utf-8")
    hb += b" " * (-len(hb) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hb)))
        f.write(hb)
        for t in tensors:
            f.write(t[3])


def checkpoint_tensors(folder):
    """Tensor name -> (dtype, shape, shard file name) for a folder checkpoint."""
    idx = os.path.join(folder, "model.safetensors.index.json")
    files = []
    if os.path.isfile(idx):
        with open(idx) as f:
            files = sorted(set(json.load(f)["weight_map"].values()))
    elif os.path.isfile(os.path.join(folder, "model.safetensors")):
        files = ["model.safetensors"]
    out = {}
    for fn in files:
        hdr, _, _ = st_header(os.path.join(folder, fn))
        for k, v in hdr.items():
            if k != "__metadata__":
                out[k] = (v["dtype"], v["shape"], fn)
    return out


def layer_of(name):
    m = re.search(r"(?:^|\.)layers\.(\d+)\.", name)
    return int(m.group(1)) if m else None


def load_json(path):
    with open(path) as f:
        return json.load(f)


def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=1)
        f.write("\n")
