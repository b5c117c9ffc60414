#!/usr/bin/python3
"""CLI tests of `layerswap stats` (registered by tests/stats.cmake).

    stats_cli.py oracle    DRIVER MPIEXEC NP DATA OUT [h5|noh5]
                                                          stats.h5 rows, model MAVs and every cell of
                                                          summary.json vs the numpy oracle (rel 1e-9)
    stats_cli.py identical OUT_A OUT_B                    two output folders byte-identical
    stats_cli.py svg       OUT                            heatmaps parse as XML, L x types cells; report offline
    stats_cli.py proposal  LAYERSWAP DRIVER MPIEXEC OUT   planted synth patterns give the expected proposal
    stats_cli.py mismatch  DRIVER MPIEXEC DATA OUT        bad experts: exit 2 on every rank, no hang
    stats_cli.py usage     DRIVER DATA OUT                --help, usage errors, an existing output folder
    stats_cli.py nd        DRIVER OUT                     3-D tensors: rows in stats.h5, not in the model MAV
    stats_cli.py mixed     DRIVER MPIEXEC DATA OUT        experts in other float dtypes than the base

DRIVER runs `stats ARGS...` (tests/stats_driver.c, or `layerswap` once main.c dispatches
`stats`).  MPIEXEC is the MPI launcher; its environment (OMPI_ALLOW_RUN_AS_ROOT, ...) comes
from the test's ENVIRONMENT property.
"""

import json
import os
import shutil
import struct
import subprocess
import sys
import xml.etree.ElementTree as ET

import numpy as np
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "ref"))
import lsw_ref  # noqa: E402  (the oracle's validating reader)

HERE = os.path.dirname(os.path.abspath(__file__))
REF = os.path.join(HERE, "ref", "lsw_ref.py")
EXPERTS = ["math1", "math2", "lang1", "lang2"]
TIMEOUT = 240

failures = []


def check(cond, msg):
    if not cond:
        failures.append(msg)
        print("FAIL: " + msg, file=sys.stderr)


def run(cmd, env=None, timeout=TIMEOUT):
    e = dict(os.environ)
    if env:
        e.update(env)
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=e, timeout=timeout)
    except subprocess.TimeoutExpired:
        print("TIMEOUT (hang?): " + " ".join(cmd), file=sys.stderr)
        sys.exit(1)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


def launch(mpiexec, np_, driver, args):
    if np_ == 0:  # MPI singleton
        return [driver, "stats"] + args
    return [mpiexec, "-n", str(np_), driver, "stats"] + args


def done():
    if failures:
        print("%d check(s) failed" % len(failures), file=sys.stderr)
        sys.exit(1)
    print("ok")
    sys.exit(0)


# ---------------------------------------------------------------------------- oracle

def tensor_type(name):
    """The type rule of engine/STATS.md."""
    if name.endswith(".weight"):
        return name[:-7].rsplit(".", 1)[-1]
    if name.endswith(".bias"):
        return name[:-5].rsplit(".", 1)[-1] + ".bias"
    return name.rsplit(".", 1)[-1]


def layer_of(name):
    import re
    m = re.search(r"(?:^|\.)layers\.(\d+)\.", name)
    return int(m.group(1)) if m else -1


def close(a, b):
    return a == b or abs(a - b) <= 1e-9 * max(abs(a), abs(b))


def check_cells(name, ex, ref_rows):
    """summary.json cells against cells recomputed from the oracle's row MAVs."""
    cells = {}
    for tname in sorted(ref_rows):
        rows = ref_rows[tname]
        cells.setdefault((layer_of(tname), tensor_type(tname)), []).extend(rows)
    got = {(c["layer"], c["type"]): c for c in ex["cells"]}
    check(set(got) == set(cells), "%s: cells %s, oracle %s" % (name, sorted(set(got) ^ set(cells)), ""))
    for key, rows in cells.items():
        c = got.get(key)
        if c is None:
            continue
        v = np.sort(np.asarray(rows, dtype=np.float64))
        n = len(v)
        pct = lambda p: v[max(1, min(n, -(-p * n // 100))) - 1]
        want = {"mean": float(np.mean(v)), "max": float(v[-1]), "p50": float(pct(50)), "p90": float(pct(90)),
                "p99": float(pct(99)), "unchanged": float(np.count_nonzero(v == 0.0)) / n}
        for k, w in want.items():
            check(close(c[k], w), "%s cell %s: %s %r, oracle %r" % (name, key, k, c[k], w))
        check(c["rows"] == n, "%s cell %s: rows %d, oracle %d" % (name, key, c["rows"], n))


def cmd_oracle(driver, mpiexec, np_, data, out, with_h5="h5"):
    shutil.rmtree(out, ignore_errors=True)
    base = os.path.join(data, "base")
    experts = [os.path.join(data, n) for n in EXPERTS]
    rc, so, se = run(launch(mpiexec, int(np_), driver, ["--base", base] + experts + ["-o", out, "--mem", "1M"]))
    check(rc == 0, "stats at %s ranks: exit %d\n%s%s" % (np_, rc, so, se))
    if rc:
        done()
    summary = json.load(open(os.path.join(out, "summary.json")))
    refs = {}
    for name, path in zip(EXPERTS, experts):
        jf = out + ".ref-%s.json" % name
        rc, so, se = run([sys.executable, REF, "mav", base, path, "--json", jf])
        check(rc == 0, "oracle mav %s: %s%s" % (name, so, se))
        refs[name] = json.load(open(jf))[path]
        os.unlink(jf)
        m, rm = summary["experts"][name]["model_mav"], refs[name]["model_mav"]
        check(close(m, rm), "%s model MAV %r, oracle %r" % (name, m, rm))
        check_cells(name, summary["experts"][name], refs[name]["rows"])
    if with_h5 != "h5":  # a build without HDF5 writes no stats.h5
        check(not os.path.exists(os.path.join(out, "stats.h5")), "stats.h5 written without HDF5")
    else:
        import h5py
        h5 = h5py.File(os.path.join(out, "stats.h5"), "r")
        for name, path in zip(EXPERTS, experts):
            ref = refs[name]
            grp = h5[name]
            nds = 0
            for tname, rows in sorted(ref["rows"].items()):
                r = np.asarray(rows, dtype=np.float64)
                if tname not in grp:
                    check(False, "stats.h5 lacks /%s/%s" % (name, tname))
                    continue
                got = grp[tname][()]
                check(got.dtype == np.float64 and got.shape == r.shape,
                      "/%s/%s: dtype %s shape %s, oracle %s" % (name, tname, got.dtype, got.shape, r.shape))
                if got.shape == r.shape:
                    err = np.abs(got - r) <= 1e-9 * np.maximum(np.abs(got), np.abs(r))
                    check(bool(err.all()), "/%s/%s: %d rows differ from the oracle beyond 1e-9 (first %s vs %s)"
                          % (name, tname, int((~err).sum()), got[~err][:1], r[~err][:1]))
                nds += 1
            check(len(grp.keys()) == nds, "/%s has %d datasets, oracle %d" % (name, len(grp.keys()), nds))
            m = summary["experts"][name]["model_mav"]
            check(grp.attrs["model_mav"] == m, "%s: h5 model_mav attribute differs" % name)
        h5.close()
    # the manifest lists every file with its size, and is complete
    man = json.load(open(os.path.join(out, "layerswap-manifest.json")))
    names = sorted(f["name"] for f in man["files"])
    want = sorted(["summary.json", "report.html", "proposed-layer-swap.json"] +
                  ["heatmap_%s.svg" % n for n in EXPERTS] + (["stats.h5"] if with_h5 == "h5" else []))
    check(names == want, "manifest files %s" % names)
    for f in man["files"]:
        check(os.path.getsize(os.path.join(out, f["name"])) == f["bytes"], "manifest size of %s" % f["name"])
    check(not [f for f in os.listdir(out) if f.startswith(".")], "temporaries left: %s" % os.listdir(out))
    done()


# ------------------------------------------------------------------------- identical

def cmd_identical(a, b):
    fa, fb = sorted(os.listdir(a)), sorted(os.listdir(b))
    check(fa == fb, "file lists differ: %s vs %s" % (fa, fb))
    for f in fa:
        if f in fb:
            same = open(os.path.join(a, f), "rb").read() == open(os.path.join(b, f), "rb").read()
            check(same, "%s differs between %s and %s" % (f, a, b))
    done()


# ------------------------------------------------------------------------------- svg

def cmd_svg(out):
    summary = json.load(open(os.path.join(out, "summary.json")))
    L, types = summary["layers"], summary["types"]
    ns = "{http://www.w3.org/2000/svg}"
    for name, ex in summary["experts"].items():
        path = os.path.join(out, "heatmap_%s.svg" % name)
        root = ET.parse(path).getroot()
        check(root.tag == ns + "svg", "%s: root is %s" % (path, root.tag))
        cells = [r for r in root.iter(ns + "rect") if r.get("class") == "cell"]
        check(len(cells) == L * len(types), "%s: %d cells, want %d x %d" % (path, len(cells), L, len(types)))
        seen = {(int(c.get("data-layer")), c.get("data-type")) for c in cells}
        check(seen == {(l, t) for l in range(L) for t in types}, "%s: cells do not cover layers x types" % path)
        # layer 0 at the bottom, types across in the summary's order
        y = {int(c.get("data-layer")): float(c.get("y")) for c in cells}
        check(all(y[l] > y[l + 1] for l in range(L - 1)), "%s: layer 0 is not at the bottom" % path)
        x = {c.get("data-type"): float(c.get("x")) for c in cells}
        check(all(x[types[k]] < x[types[k + 1]] for k in range(len(types) - 1)), "%s: type order" % path)
        # colour by mean: the cell with the largest mean is the brightest viridis end
        means = {(int(c.get("data-layer")), c.get("data-type")): float(c.get("data-mean"))
                 for c in cells if c.get("data-mean") is not None}
        cm = {(c["layer"], c["type"]): c["mean"] for c in ex["cells"] if c["layer"] >= 0}
        check(set(means) == set(cm), "%s: data-mean cells differ from summary.json" % path)
        check(all(means[k] == cm[k] for k in cm), "%s: data-mean values differ from summary.json" % path)
        top = max(cm, key=lambda k: cm[k])
        fill = [c.get("fill") for c in cells if (int(c.get("data-layer")), c.get("data-type")) == top][0]
        check(fill == "#fde725", "%s: largest cell colour %s" % (path, fill))
        text = "".join(root.itertext())
        check(name in text and "model MAV" in text and "layer" in text, "%s: title / labels missing" % path)
        check(any(r.get("class") == "colorbar" for r in root.iter(ns + "rect")), "%s: no colour bar" % path)
        check("min " in text and "max " in text, "%s: colour bar labels missing" % path)
    html = open(os.path.join(out, "report.html"), encoding="utf-8").read()
    check(html.count("<svg") == len(summary["experts"]), "report.html: %d heatmaps" % html.count("<svg"))
    lower = html.lower()
    check("<script" not in lower and "<link" not in lower and "src=" not in lower and "@import" not in lower,
          "report.html references external resources or scripts")
    check(lower.count("http") == lower.count("http://www.w3.org/2000/svg"), "report.html has external URLs")
    # one shared colour scale: the same min/max labels on every inline heatmap
    import re
    maxes = set(re.findall(r'class="cbar-max"[^>]*>([^<]*)<', html))
    check(len(maxes) == 1, "report.html heatmaps use %d colour scales" % len(maxes))
    check("Proposed layer swap" in html and "Profile similarity" in html, "report.html sections missing")
    done()


# -------------------------------------------------------------------------- proposal

def cmd_proposal(layerswap, driver, mpiexec, out):
    shutil.rmtree(out, ignore_errors=True)
    syn = os.path.join(out, "synth")
    rc, so, se = run([layerswap, "synth", "--layers", "12", "--hidden", "64", "--intermediate", "128",
                      "--vocab", "128", "--experts", "4", "--seed", "3", "-o", syn, "--quiet"])
    check(rc == 0, "synth: %s%s" % (so, se))
    if rc:
        done()
    ex = [os.path.join(syn, n) for n in ("task1", "lang1", "task2", "lang2")]
    st = os.path.join(out, "stats")
    rc, so, se = run(launch(mpiexec, 2, driver, ["--base", os.path.join(syn, "base")] + ex + ["-o", st]))
    check(rc == 0, "stats: exit %d %s%s" % (rc, so, se))
    if rc:
        done()
    s = json.load(open(os.path.join(st, "summary.json")))
    p = s["proposal"]
    check(s["groups"] == [["task1", "task2"], ["lang1", "lang2"]], "groups %s" % s["groups"])
    check(p["valid"] and p["mode"] == "automatic", "proposal %s" % p)
    check(p["task_experts"] == ["task1", "task2"] and p["language_experts"] == ["lang1", "lang2"],
          "sides: task %s language %s" % (p.get("task_experts"), p.get("language_experts")))
    # synth plants: language experts change layers 0-1 and 10-11 attention (0.006) and the MLP
    # of 10-11; task experts leave layers 0-5 almost unchanged (attention 0, MLP 0.0002) and
    # change 6-11 (attention 0.004, MLP 0.003).  Ratios: layers 0-5 > 1 (the task expert barely
    # touches them), 6-9 ~0.1, 10-11 ~1.4 -> bottom 6, top 2, no transitions (6 and 9 are ~0.1).
    want = {"bottom": 6, "top": 2, "lower_transition": 0, "upper_transition": 0}
    check(all(p[k] == v for k, v in want.items()), "proposal %s, want %s" % ({k: p[k] for k in want}, want))
    lines = [l for l in so.splitlines() if l.startswith("layer ")]
    check(len(lines) == 12, "stdout has %d per-layer lines:\n%s" % (len(lines), so))
    cfg = json.load(open(os.path.join(st, "proposed-layer-swap.json")))
    check(cfg["method"] == "layer_swap" and cfg["layer_swap"]["task_expert"] == "task1" and
          cfg["layer_swap"]["language_expert"] == "lang1" and cfg["output"]["path"] == "merged",
          "proposed config %s" % cfg)
    check(all(os.path.isabs(v) for v in cfg["models"].values()), "model paths not absolute: %s" % cfg["models"])
    check(all(cfg["layer_swap"][k] == v for k, v in want.items()), "config numbers differ from the summary")
    # the proposal is a ready-to-run merge config
    rc, so, se = run([layerswap, "merge", os.path.join(st, "proposed-layer-swap.json"), "--dry-run"])
    check(rc == 0, "merge --dry-run of the proposal: exit %d %s" % (rc, se))
    rc, so2, se2 = run([sys.executable, REF, "plan", os.path.join(st, "proposed-layer-swap.json")])
    check(rc == 0, "oracle plan of the proposal: exit %d %s" % (rc, se2))
    # given sides
    st2 = os.path.join(out, "stats-given")
    rc, so, se = run(launch(mpiexec, 1, driver, ["--base", os.path.join(syn, "base")] + ex +
                            ["-o", st2, "--task", "task2", "--language", "lang2,lang1", "--quiet"]))
    check(rc == 0, "stats --task/--language: exit %d %s" % (rc, se))
    if rc == 0:
        s2 = json.load(open(os.path.join(st2, "summary.json")))
        p2 = s2["proposal"]
        check(p2["mode"] == "given" and p2["task_experts"] == ["task2"] and
              p2["language_experts"] == ["lang2", "lang1"], "given proposal %s" % p2)
        cfg2 = json.load(open(os.path.join(st2, "proposed-layer-swap.json")))
        check(cfg2["layer_swap"]["task_expert"] == "task2" and cfg2["layer_swap"]["language_expert"] == "lang2",
              "given config %s" % cfg2["layer_swap"])
    done()


# -------------------------------------------------------------------------- mismatch

def read_checkpoint(folder):
    """name -> (dtype, shape, bytes) of a folder checkpoint (single file or index)."""
    return {k: (dt, list(shape), raw) for k, (dt, shape, raw) in lsw_ref.load_checkpoint(folder).items()}


def write_checkpoint(folder, tensors):
    os.makedirs(folder, exist_ok=True)
    hdr, off, blobs = {"__metadata__": {"format": "pt"}}, 0, []
    for k in sorted(tensors):
        dt, shape, data = tensors[k]
        hdr[k] = {"dtype": dt, "shape": shape, "data_offsets": [off, off + len(data)]}
        off += len(data)
        blobs.append(data)
    h = json.dumps(hdr, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(os.path.join(folder, "model.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def cmd_mismatch(driver, mpiexec, data, out):
    shutil.rmtree(out, ignore_errors=True)
    base = os.path.join(data, "base")
    t = read_checkpoint(os.path.join(data, "math1"))
    victim = "model.layers.3.mlp.up_proj.weight"
    dt, shape, raw = t[victim]
    cases = {}
    bad = dict(t)
    bad[victim] = (dt, [shape[0] // 2, shape[1] * 2], raw)          # same bytes, other shape
    cases["shape"] = (bad, victim, "shape")
    bad = dict(t)
    bad[victim] = ("I16", shape, raw)                                  # a dtype no float can be compared with
    cases["dtype"] = (bad, victim, "dtype")
    bad = dict(t)
    del bad[victim]                                                    # a tensor missing
    cases["missing"] = (bad, victim, "missing")
    bad = dict(t)
    bad["model.layers.3.mlp.extra.weight"] = ("BF16", [4], b"\0" * 8)  # an extra tensor
    cases["extra"] = (bad, "model.layers.3.mlp.extra.weight", "not in the base")
    for case, (tensors, tname, word) in sorted(cases.items()):
        folder = os.path.join(out, "bad-" + case)
        write_checkpoint(folder, tensors)
        for np_ in (3, 1):
            o = os.path.join(out, "out-%s-%d" % (case, np_))
            rc, so, se = run(launch(mpiexec, np_, driver,
                                    ["--base", base, os.path.join(data, "lang1"), "bad=" + folder, "-o", o]),
                             env={"LSW_REPORT_EXIT": "1"}, timeout=120)
            check(rc == 2, "%s at %d ranks: exit %d, want 2\n%s" % (case, np_, rc, se))
            errs = [l for l in se.splitlines() if "layerswap stats: error:" in l]
            check(len(errs) == 1, "%s: %d error lines (rank 0 prints one)\n%s" % (case, len(errs), se))
            if errs:
                check(folder in errs[0] and tname in errs[0] and word in errs[0] and "exit 2" in errs[0],
                      "%s: message does not name file, tensor and rule: %s" % (case, errs[0]))
            codes = sorted(l for l in se.splitlines() if l.startswith("rank "))
            check(codes == ["rank %d exit 2" % r for r in range(np_)], "%s: per-rank exits %s" % (case, codes))
            check(not os.path.exists(os.path.join(o, "summary.json")), "%s: output written" % case)
    # an unreadable expert path: exit 2 on every rank too
    rc, so, se = run(launch(mpiexec, 3, driver, ["--base", base, os.path.join(out, "nowhere"), "-o",
                                                 os.path.join(out, "o-none")]),
                     env={"LSW_REPORT_EXIT": "1"}, timeout=120)
    codes = sorted(l for l in se.splitlines() if l.startswith("rank "))
    check(rc == 2 and codes == ["rank %d exit 2" % r for r in range(3)], "missing path: exit %d %s" % (rc, codes))
    done()


# ------------------------------------------------------------------------------- nd

def st_file(path, tensors):
    """A safetensors file of (name, dtype, shape, float32 array) with F32 data."""
    hdr, off, blob = {}, 0, b""
    for name, shape, arr in tensors:
        raw = np.asarray(arr, dtype="<f4").tobytes()
        hdr[name] = {"dtype": "F32", "shape": shape, "data_offsets": [off, off + len(raw)]}
        off += len(raw)
        blob += raw
    h = json.dumps(hdr).encode()
    h += b" " * (-len(h) % 8)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + blob)


def cmd_nd(driver, out):
    """Tensors of 3 dimensions get row MAVs in stats.h5 (a row of [r, c1, c2] is c1*c2
    elements, docs/statistics.md) but stay out of the model MAV and the cells (1-D and 2-D only);
    a scalar has no rows.  A base whose layer numbers have a gap is refused (exit 2)."""
    shutil.rmtree(out, ignore_errors=True)
    rng = np.random.default_rng(5)
    shapes = {"model.layers.0.conv.weight": [3, 4, 5], "model.layers.0.mlp.up_proj.weight": [4, 6],
              "model.layers.0.input_layernorm.weight": [6], "model.scale": []}
    for who in ("base", "ex"):
        st_file(os.path.join(out, who, "model.safetensors"),
                [(n, sh, rng.standard_normal(int(np.prod(sh)) if sh else 1)) for n, sh in shapes.items()])
    o = os.path.join(out, "st")
    rc, so, se = run([driver, "stats", "--base", os.path.join(out, "base"), os.path.join(out, "ex"), "-o", o,
                      "--quiet"])
    check(rc == 0, "stats with a 3-D tensor and a scalar: exit %d %s" % (rc, se))
    if rc:
        done()
    b, e = lsw_ref.Checkpoint(os.path.join(out, "base")), lsw_ref.Checkpoint(os.path.join(out, "ex"))
    summary = json.load(open(os.path.join(o, "summary.json")))
    m, rm = summary["experts"]["ex"]["model_mav"], lsw_ref.model_mav(b, e)
    check(close(m, rm), "model MAV %r, oracle (1-D and 2-D tensors) %r" % (m, rm))
    types = {c["type"] for c in summary["experts"]["ex"]["cells"]}
    check("conv" not in " ".join(types), "a 3-D tensor in the cells: %s" % sorted(types))
    import h5py
    with h5py.File(os.path.join(o, "stats.h5"), "r") as h5:
        g = h5["ex"]
        check(sorted(g.keys()) == sorted(n for n in shapes if shapes[n]),
              "stats.h5 datasets %s (want every tensor but the scalar)" % sorted(g.keys()))
        for n in shapes:
            if shapes[n] and n in g:
                got, r = g[n][()], lsw_ref.row_mavs(b, e, n)
                check(got.shape == r.shape and bool(np.all(np.abs(got - r) <= 1e-12 * np.abs(r))),
                      "/ex/%s: %s, oracle %s" % (n, got, r))
    # layer numbers with a gap (a stray layers.99999. would size tables for 100,000 layers): exit 2
    for who in ("gbase", "gex"):
        st_file(os.path.join(out, who, "model.safetensors"),
                [("model.layers.0.mlp.up_proj.weight", [2], rng.standard_normal(2)),
                 ("model.layers.99999.mlp.up_proj.weight", [2], rng.standard_normal(2))])
    rc, so, se = run([driver, "stats", "--base", os.path.join(out, "gbase"), os.path.join(out, "gex"), "-o",
                      os.path.join(out, "gst")])
    check(rc == 2 and "without a gap" in se and "layers.99999" in se, "layers with a gap: exit %d %s" % (rc, se))
    check(not os.path.exists(os.path.join(out, "gst", "summary.json")), "layers with a gap: output written")
    done()


# ---------------------------------------------------------------------------- mixed

def cmd_mixed(driver, mpiexec, data, out):
    """Experts whose float dtypes differ from the base's (an F32 and an F16 copy of
    math1 against the BF16 base, beside BF16 lang1): row MAVs and model MAVs equal the
    oracle's f64(e) - f64(b), at 1 and 3 ranks, and the two copies of math1 give exactly
    math1's values where the conversion was exact (F32 holds every BF16 value)."""
    shutil.rmtree(out, ignore_errors=True)
    base = os.path.join(data, "base")
    t = read_checkpoint(os.path.join(data, "math1"))
    f32 = {}
    for name, (dt, shape, raw) in t.items():
        a = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
        f32[name] = ("F32", shape, a.astype("<u4").tobytes())
    write_checkpoint(os.path.join(out, "m32"), f32)
    experts = ["lang1=" + os.path.join(data, "lang1"), "m32=" + os.path.join(out, "m32"),
               "math1=" + os.path.join(data, "math1")]
    outs = {}
    for np_ in (1, 3):
        o = os.path.join(out, "st%d" % np_)
        rc, so, se = run(launch(mpiexec, np_, driver, ["--base", base] + experts + ["-o", o, "--quiet", "--mem", "1M"]))
        check(rc == 0, "mixed dtypes at %d ranks: exit %d %s" % (np_, rc, se))
        if rc:
            done()
        outs[np_] = json.load(open(os.path.join(o, "summary.json")))
    check(outs[1] == outs[3], "summary.json differs between 1 and 3 ranks")
    b = lsw_ref.Checkpoint(base)
    m32 = lsw_ref.Checkpoint(os.path.join(out, "m32"))
    ex = outs[1]["experts"]
    check(close(ex["m32"]["model_mav"], lsw_ref.model_mav(b, m32)),
          "F32 expert: model MAV %r, oracle %r" % (ex["m32"]["model_mav"], lsw_ref.model_mav(b, m32)))
    check(ex["m32"]["model_mav"] == ex["math1"]["model_mav"],
          "the F32 copy of math1 gives model MAV %r, math1 %r" % (ex["m32"]["model_mav"], ex["math1"]["model_mav"]))
    import h5py
    with h5py.File(os.path.join(out, "st1", "stats.h5"), "r") as h5:
        for n in sorted(h5["m32"].keys()):
            check(np.array_equal(h5["m32"][n][()], h5["math1"][n][()]), "/m32/%s differs from /math1/%s" % (n, n))
    done()


# ----------------------------------------------------------------------------- usage

def cmd_usage(driver, data, out):
    shutil.rmtree(out, ignore_errors=True)
    rc, so, se = run([driver, "stats", "--help"])
    check(rc == 0 and so.startswith("Usage: layerswap stats"), "--help: exit %d %r" % (rc, so[:60]))
    base = os.path.join(data, "base")
    for args, what in ((["--base", base], "no expert"),
                       ([os.path.join(data, "math1")], "no --base"),
                       (["--base", base, os.path.join(data, "math1"), "--task", "nope"], "unknown --task"),
                       (["--base", base, os.path.join(data, "math1"), os.path.join(data, "math1")],
                        "duplicate names"),
                       (["--base", base, "a=" + os.path.join(data, "math1"), "b=" + os.path.join(data, "lang1"),
                         "--task", "a", "--language", "a"], "expert on both sides"),
                       (["--base", base, os.path.join(data, "math1"), "--mem", "12"], "bad --mem"),
                       (["--base", base, os.path.join(data, "math1"), "--bogus"], "unknown option"),
                       (["--base", base, "my/expert=" + os.path.join(data, "math1")], "bad NAME in NAME=PATH")):
        rc, so, se = run([driver, "stats"] + args + ["-o", os.path.join(out, "u")])
        check(rc == 1 and "Usage:" in se, "%s: exit %d, want 1 with usage\n%s" % (what, rc, se))
    o = os.path.join(out, "st")
    args = ["--base", base, "m=" + os.path.join(data, "math1"), os.path.join(data, "lang1"), "-o", o, "--quiet"]
    rc, so, se = run([driver, "stats"] + args)
    check(rc == 0, "first run: %d %s" % (rc, se))
    s = json.load(open(os.path.join(o, "summary.json")))
    check(list(s["experts"]) == ["m", "lang1"], "NAME=PATH and default names: %s" % list(s["experts"]))
    rc, so, se = run([driver, "stats"] + args)
    check(rc == 0 and "already holds" in so, "same run again: exit %d %s" % (rc, so))
    rc, so, se = run([driver, "stats", "--base", base, os.path.join(data, "math2"), "-o", o])
    check(rc == 1 and "--overwrite" in se, "other stats into the folder: exit %d %s" % (rc, se))
    rc, so, se = run([driver, "stats", "--base", base, os.path.join(data, "math2"), "-o", o, "--overwrite",
                      "--quiet"])
    check(rc == 0, "--overwrite: exit %d %s" % (rc, se))
    s = json.load(open(os.path.join(o, "summary.json")))
    check(list(s["experts"]) == ["math2"], "overwritten summary %s" % list(s["experts"]))
    check(sorted(f for f in os.listdir(o) if f != "stats.h5") ==
          sorted(["heatmap_math2.svg", "layerswap-manifest.json", "report.html", "summary.json"]),
          "after --overwrite the folder holds %s" % sorted(os.listdir(o)))
    check(not s["proposal"]["valid"], "one expert: no proposal")
    check(not os.path.exists(os.path.join(o, "proposed-layer-swap.json")), "stale proposal left behind")
    done()


def main(argv):
    if len(argv) < 2 or argv[1] in ("-h", "--help"):
        print(__doc__)
        return 0 if len(argv) >= 2 else 1
    cmds = {"oracle": cmd_oracle, "identical": cmd_identical, "svg": cmd_svg, "proposal": cmd_proposal,
            "mismatch": cmd_mismatch, "usage": cmd_usage, "nd": cmd_nd, "mixed": cmd_mixed}
    return cmds[argv[1]](*argv[2:])


if __name__ == "__main__":
    sys.exit(main(sys.argv))
