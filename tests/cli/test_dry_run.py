#!/usr/bin/python3
"""`layerswap merge --dry-run` (docs/cli.md, docs/config.md).

  * On tests/configs/ls-paper.json with -o to a folder that does not exist: exit 0, the
    folder is not created, nothing else is written; stdout is '#' comment lines then one
    line per tensor of the fixture (75) "NAME<TAB>RULE<TAB>SOURCES<TAB>WEIGHTS", each name
    once; non-layer tensors are averaged over math,swahili (task expert first) with weights
    0.5,0.5; layers [0,5) and [6,8) are taken from swahili and layer 5 from math.
  * Transition zones (ls-transition-uniform.json): transition layers are averaged 0.5,0.5.
  * For every merge config of tests/configs/: the sources (in order) and the numeric weights of
    every line agree with the oracle's plan (lsw_ref.py plan; --rules-normalize for rules).
  * It reads no tensor data: the bytes the process read (rchar of /proc/PID/io, taken
    while the finished process is still a zombie) are, for a 4-model soup, smaller than a
    real merge's by at least half the inputs' data bytes.  Skipped where /proc/PID/io is
    not readable.
"""
import glob
import os
import re
import struct
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lswtest as L  # noqa: E402

t = L.Test(__doc__)
W = t.work
names = set(L.checkpoint_tensors(os.path.join(t.fixtures, "math1")))
t.check(len(names) == 75, "the fixture has %d tensors, expected 75" % len(names))


def dry(config, out="out"):
    p = t.ls("merge", config, "--dry-run", "-o", out)
    t.expect_rc(p, 0, "dry-run " + os.path.basename(config))
    lines = p.stdout.splitlines()
    body = [l for l in lines if not l.startswith("#")]
    # comments come first
    first_body = next((i for i, l in enumerate(lines) if not l.startswith("#")), len(lines))
    t.check(all(not l.startswith("#") for l in lines[first_body:]),
            "%s: '#' lines after the first tensor line" % os.path.basename(config))
    rows = {}
    for l in body:
        f = l.split("\t")
        if not t.check(len(f) == 4, "dry-run line is not NAME<TAB>RULE<TAB>SOURCES<TAB>WEIGHTS: %r" % l):
            continue
        t.check(f[0] not in rows, "tensor %s listed twice" % f[0])
        rows[f[0]] = f
    t.check(set(rows) == names, "%s: dry-run lists %d tensors (%d lines); missing %r, extra %r"
            % (os.path.basename(config), len(rows), len(body), sorted(names - set(rows))[:3],
               sorted(set(rows) - names)[:3]))
    return rows


# 1. paper setting, output folder does not exist and must not be created
cfg = os.path.join(L.CONFIGS, "ls-paper.json")
rows = dry(cfg, "out/nested")
t.check(not os.path.exists(os.path.join(W, "out")), "--dry-run created the output folder")
t.check(L.all_files(W) == [], "--dry-run wrote %r" % L.all_files(W))
t.check(not os.path.exists(os.path.join(L.CONFIGS, "out")), "--dry-run wrote next to the config")
for n, (_, rule, src, w) in sorted(rows.items()):
    i = L.layer_of(n)
    if i is None:
        t.check((rule, src, w) == ("average", "math,swahili", "0.5,0.5"),
                "%s (non-layer): %s %s %s, expected average math,swahili 0.5,0.5" % (n, rule, src, w))
    else:
        want = "math" if i == 5 else "swahili"
        t.check(src == want and w == "1" and rule != "average",
                "%s (layer %d): %s %s %s, expected a copy of %s" % (n, i, rule, src, w, want))

# 2. uniform transition zones: bottom 2, lower 2, top 1, upper 1 on 8 layers
rows = dry(os.path.join(L.CONFIGS, "ls-transition-uniform.json"))
for n, (_, rule, src, w) in sorted(rows.items()):
    i = L.layer_of(n)
    if i is None or i in (2, 3, 6):
        t.check((rule, src, w) == ("average", "math,swahili", "0.5,0.5"),
                "%s: %s %s %s, expected average math,swahili 0.5,0.5" % (n, rule, src, w))
    else:
        want = "math" if i in (4, 5) else "swahili"
        t.check(src == want, "%s (layer %d): sources %s, expected %s" % (n, i, src, want))


# 3. every config against the oracle's plan
def f32hex(x):
    return struct.unpack("<I", struct.pack("<f", x))[0]


for cfg in sorted(glob.glob(os.path.join(L.CONFIGS, "*.json"))):
    base = os.path.basename(cfg)
    if base == "rules-first-model-unused.json":
        continue    # has its own cli_merge_ case (an engine bug there would fail twice)
    rows = dry(cfg)
    if not rows:
        continue
    q = t.ref("plan", cfg, *(["--rules-normalize"] if "rules" in base else []), show=False)
    if not t.check(q.returncode == 0, "oracle plan %s failed: %s" % (base, q.stderr[-300:])):
        continue
    bad = []
    for l in q.stdout.splitlines():
        if l.startswith("#") or not l.strip():
            continue
        f = l.split("\t")
        n, what = f[0], f[2]
        if f[1].startswith("task vector"):
            # oracle: NAME, "task vector METHOD", "base B", "models M1,M2", "weights w(0x..),..", ...
            # engine: NAME, task_vector, B,M1,M2, 1,w1,w2 (the base first)
            if n not in rows or rows[n][1] != "task_vector":
                bad.append("%s: rule %r, oracle task vector" % (n, rows.get(n, ["", "missing"])[1]))
                continue
            osrc = f[2].split(" ", 1)[1] + "," + f[3].split(" ", 1)[1]
            ow = [struct.unpack("<f", struct.pack("<I", int(h, 16)))[0] for h in re.findall(r"\(0x([0-9a-f]+)\)", f[4])]
            ew = [float(x) for x in rows[n][3].split(",")][1:]
            if rows[n][2] != osrc or len(ew) != len(ow) or any(abs(a - b) > 1e-6 * max(1.0, abs(a)) for a, b in zip(ew, ow)):
                bad.append("%s: %s %s, oracle %s %s" % (n, rows[n][2], rows[n][3], osrc, f[4]))
            continue
        mm = re.match(r"(copy|average) (\S+)", what)
        if not mm or n not in rows:
            bad.append("%s: cannot compare (oracle %r)" % (n, l))
            continue
        osrc = mm.group(2)
        esrc, ew = rows[n][2], rows[n][3]
        if esrc != osrc:
            bad.append("%s: sources %s, oracle %s" % (n, esrc, osrc))
            continue
        if mm.group(1) == "average" and not ew.startswith("magnitude"):
            ow = [int(h, 16) for h in re.findall(r"\(0x([0-9a-f]+)\)", f[3] if len(f) > 3 else "")]
            try:
                ewv = [float(x) for x in ew.split(",")]
            except ValueError:
                bad.append("%s: weights %r are not numbers" % (n, ew))
                continue
            if len(ewv) != len(ow) or any(abs(a - struct.unpack("<f", struct.pack("<I", b))[0]) >
                                          1e-6 * max(1.0, abs(a)) for a, b in zip(ewv, ow)):
                bad.append("%s: weights %s, oracle %s" % (n, ew, f[3]))
    t.check(not bad, "%s: dry-run disagrees with the oracle's plan in %d lines: %s"
            % (base, len(bad), "; ".join(bad[:4])))


# 4. reads no tensor data
def rchar(args):
    print("$ layerswap " + " ".join(args), flush=True)
    p = subprocess.Popen([t.bin] + args, cwd=W, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.waitid(os.P_PID, p.pid, os.WEXITED | os.WNOWAIT)
    val = None
    try:
        with open("/proc/%d/io" % p.pid) as f:
            m = re.search(r"^rchar:\s*(\d+)", f.read(), re.M)
            val = int(m.group(1)) if m else None
    except OSError as e:
        t.note("cannot read /proc/%d/io: %s" % (p.pid, e))
    rc = p.wait()
    t.check(rc == 0, "layerswap %s: exit %d" % (" ".join(args), rc))
    print("  -> exit %d, rchar %s" % (rc, val))
    return val


soup = os.path.join(L.CONFIGS, "linear-uniform-4.json")
data = 0
for m in ("math1", "math2", "lang1", "lang2"):
    for fn in glob.glob(os.path.join(t.fixtures, m, "*.safetensors")):
        hdr, n, size = L.st_header(fn)
        data += size - 8 - n
r_dry = rchar(["merge", soup, "--dry-run", "-o", "dry"])
r_real = rchar(["merge", soup, "-o", "real"])
t.check(not os.path.exists(os.path.join(W, "dry")), "--dry-run created its output folder")
if r_dry is not None and r_real is not None:
    t.check(r_dry + data // 2 < r_real,
            "--dry-run read %d bytes, a real merge %d: the difference is less than half of the "
            "%d data bytes of the inputs, so the dry run seems to read tensor data"
            % (r_dry, r_real, data))
t.finish()
