#!/usr/bin/python3
"""CLI tests of `layerswap stats` (registered by tests/stats.cmake).

    stats_cli.py oracle    DRIVER MPIEXEC NP DATA OUT [h5|noh5]
                                                          stats.h5 rows, model MAVs and every cell of
                                                          summary.json vs the numpy oracle (rel 1e-9)
    stats_cli.py identical OUT_A OUT_B                    two output folders byte-identical
    stats_cli.py modes     DRIVER DATA REF OUT            copies or mappings, any thread count: REF's bytes
    stats_cli.py svg       OUT                            heatmaps parse as XML, L x types cells; report offline
    stats_cli.py proposal  LAYERSWAP DRIVER MPIEXEC OUT   planted synth patterns give the expected proposal
    stats_cli.py mismatch  DRIVER MPIEXEC DATA OUT        bad experts: exit 2 on every rank, no hang
    stats_cli.py usage     DRIVER DATA OUT                --help, usage errors, an existing output folder
    stats_cli.py nd        DRIVER OUT                     3-D tensors: rows in stats.h5, not in the model MAV
    stats_cli.py mixed     DRIVER MPIEXEC DATA OUT        experts in other float dtypes than the base
    stats_cli.py planted   DRIVER MPIEXEC OUT             the paper's Figure 2 planted at 24 and 80 layers:
                                                          a few bottom and top layers; no signal: no swap
    stats_cli.py quiet     DRIVER MPIEXEC DATA OUT        --quiet prints nothing on success (1 and 2 ranks)
    stats_cli.py demo      LAYERSWAP OUT                  the demo's merge is the proposal of its statistics

DRIVER runs `stats ARGS...` (`layerswap`).  MPIEXEC is the MPI launcher; its environment (OMPI_ALLOW_RUN_AS_ROOT, ...) comes
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


def check_norms(name, grp, base, path, ex):
    """Per tensor: sumsq_base = Σ b², sumsq_delta = Σ (e − b)² (f64) against numpy (rel 1e-9); per
    cell: rel_change = sqrt(Σ delta / Σ base) over the cell's tensors, shares add up to 1."""
    b, e = lsw_ref.load_checkpoint(base), lsw_ref.load_checkpoint(path)
    sums = {}
    for tname in sorted(grp.keys()):
        dt, shape, raw = b[tname]
        x = lsw_ref.to_f32(raw, dt).astype(np.float64)
        y = lsw_ref.to_f32(e[tname][2], e[tname][0]).astype(np.float64)
        sb, sd = float(np.sum(x * x)), float(np.sum((y - x) ** 2))
        ab, ad = grp[tname].attrs["sumsq_base"], grp[tname].attrs["sumsq_delta"]
        check(close(ab, sb) and (close(ad, sd) or abs(ad - sd) <= 1e-12 * sb),
              "/%s/%s: sumsq %r %r, numpy %r %r" % (name, tname, ab, ad, sb, sd))
        if len(shape) in (1, 2):
            k = (layer_of(tname), tensor_type(tname))
            cb, cd = sums.get(k, (0.0, 0.0))
            sums[k] = (cb + ab, cd + ad)
    layers = {}
    for c in ex["cells"]:
        k = (c["layer"], c["type"])
        if k in sums:
            cb, cd = sums[k]
            want = 0.0 if cd == 0 else (cd ** 0.5) / (cb ** 0.5)
            check(close(c["rel_change"], want), "%s cell %s: rel_change %r, from the tensors %r" % (name, k,
                                                                                                    c["rel_change"], want))
        if c["layer"] >= 0 and c["share"] is not None:
            layers.setdefault(c["layer"], []).append(c["share"])
    for l, v in layers.items():
        check(abs(sum(v) - 1) < 1e-12, "%s layer %d: shares add up to %r" % (name, l, sum(v)))


def check_cell_matrices(h5, summary):
    """/cells/<expert>/<stat> [layers, types] hold exactly the summary.json cells; str attributes."""
    types, nl = list(h5["cells"].attrs["types"]), list(h5["cells"].attrs["non_layer_types"])
    check(types == summary["types"] and nl == summary["non_layer_types"] and all(isinstance(t, str) for t in types),
          "/cells types %s, summary %s" % (types, summary["types"]))
    stats = ["mean", "max", "p50", "p90", "p99", "unchanged", "rel_change", "share"]
    for name, ex in summary["experts"].items():
        g = h5["cells"][name]
        check(g["mean"].shape == (summary["layers"], len(types)), "/cells/%s/mean shape %s" % (name, g["mean"].shape))
        seen = 0
        for c in ex["cells"]:
            if c["layer"] >= 0:
                at, grp = (c["layer"], types.index(c["type"])), g
            else:
                at, grp = (nl.index(c["type"]),), g["non_layer"]
            for st in stats:
                v, w = grp[st][at], c[st]
                check((w is None and np.isnan(v)) or v == w, "/cells/%s %s %s: %r, summary %r" % (name, st, at, v, w))
            check(int(grp["rows"][at]) == c["rows"], "/cells/%s rows %s" % (name, at))
            seen += 1
        missing = int(np.sum(g["rows"][()] == 0))
        check(missing == int(np.sum(np.isnan(g["mean"][()]))), "/cells/%s: NaN where no tensor" % name)


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
            check(isinstance(grp.attrs["path"], str), "%s: the path attribute is not a str" % name)
            check_norms(name, grp, base, path, summary["experts"][name])
        check(h5.attrs["tool"] == "layerswap stats" and isinstance(h5.attrs["base"], str),
              "stats.h5 root attributes: %r" % dict(h5.attrs))
        check_cell_matrices(h5, summary)
        h5.close()
    # the manifest lists every file with its size, and is complete
    man = json.load(open(os.path.join(out, "layerswap-manifest.json")))
    names = sorted(f["name"] for f in man["files"])
    want = sorted(["summary.json", "report.html"] + (["proposed-layer-swap.json"] if summary["proposal"]["valid"]
                                                      else []) +
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


def cmd_modes(driver, data, ref, out):
    """Copies instead of mappings (LSW_STATS_MMAP=0), with 0 and 2 reader threads, and mappings
    with 0 and 3 extra workers, all with a small --mem: every output byte-identical to REF
    (the default run of stats_oracle_np1)."""
    shutil.rmtree(out, ignore_errors=True)
    base = os.path.join(data, "base")
    experts = [os.path.join(data, n) for n in EXPERTS]
    for tag, env in (("copy0", {"LSW_STATS_MMAP": "0", "LSW_STATS_READERS": "0"}),
                     ("copy2", {"LSW_STATS_MMAP": "0", "LSW_STATS_READERS": "2"}),
                     ("map0", {"LSW_STATS_READERS": "0"}), ("map3", {"LSW_STATS_READERS": "3"})):
        o = os.path.join(out, tag)
        rc, so, se = run([driver, "stats", "--base", base] + experts + ["-o", o, "--mem", "64M"], env=env)
        check(rc == 0, "%s: exit %d %s" % (tag, rc, se))
        if rc:
            continue
        for f in sorted(os.listdir(ref)):
            if f.startswith("."):
                continue
            same = open(os.path.join(ref, f), "rb").read() == open(os.path.join(o, f), "rb").read()
            check(same, "%s: %s differs from the default run's" % (tag, f))
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
        # one scale shared by the experts: the largest cell of them all is the brightest viridis end
        top = max(cm, key=lambda k: cm[k])
        fill = [c.get("fill") for c in cells if (int(c.get("data-layer")), c.get("data-type")) == top][0]
        gmax = max(c["mean"] for x in summary["experts"].values() for c in x["cells"] if c["layer"] >= 0)
        check((fill == "#fde725") == (cm[top] == gmax), "%s: largest cell colour %s (its mean %r, of all %r)"
              % (path, fill, cm[top], gmax))
        text = "".join(root.itertext())
        check(name in text and "model MAV" in text and "layer" in text, "%s: title / labels missing" % path)
        check(any(r.get("class") == "colorbar" for r in root.iter(ns + "rect")), "%s: no colour bar" % path)
        check("min " in text and "max " in text, "%s: colour bar labels missing" % path)
        check("shared by all %d experts" % len(summary["experts"]) in text,
              "%s: the caption does not say the scale is shared" % path)
    html = open(os.path.join(out, "report.html"), encoding="utf-8").read()
    check(html.count("<svg") == 2 * len(summary["experts"]), "report.html: %d heatmaps (MAV and module share per "
          "expert)" % html.count("<svg"))
    lower = html.lower()
    check("<script" not in lower and "<link" not in lower and "src=" not in lower and "@import" not in lower,
          "report.html references external resources or scripts")
    check(lower.count("http") == lower.count("http://www.w3.org/2000/svg"), "report.html has external URLs")
    # one shared colour scale per kind of heatmap (the default with several experts), the same
    # in the standalone files: the same max label everywhere
    import re
    for metric in ("mav", "share"):
        svgs = re.findall(r'<svg [^>]*data-metric="%s".*?</svg>' % metric, html, re.S)
        maxes = set(m for sv in svgs for m in re.findall(r'class="cbar-max"[^>]*>([^<]*)<', sv))
        check(len(svgs) == len(summary["experts"]) and len(maxes) == 1,
              "report.html %s heatmaps: %d, on %d colour scales" % (metric, len(svgs), len(maxes)))
        if metric == "mav":
            files = set(m for name in summary["experts"] for m in re.findall(
                r'class="cbar-max"[^>]*>([^<]*)<', open(os.path.join(out, "heatmap_%s.svg" % name)).read()))
            check(files == maxes, "standalone heatmaps' scale %s differs from the report's %s" % (files, maxes))
    check("Proposed layer swap" in html and "Profile similarity" in html and "Module-level view" in html,
          "report.html sections missing")
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
    # of 10-11 (0.004), elsewhere attention 0.0005 and the upper half's MLP 0.0003; task experts
    # leave layers 0-5 almost unchanged and change 6-11.  The language signal stands out from its
    # own background (median 0.00041) in layers 0-1 and 10-11 only -> bottom 2, top 2, and no
    # transitions.  (The old ratio rule said bottom 6: the task experts barely touch 0-5.)
    want = {"bottom": 2, "top": 2, "lower_transition": 0, "upper_transition": 0}
    ls = p.get("layer_swap", {})
    check(all(ls.get(k) == v for k, v in want.items()), "proposal %s, want %s" % (ls, want))
    check(p["rule"]["language_layers"] == 4, "language layers %s, want 4" % p["rule"])
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


# --------------------------------------------------------------------------- planted

def fig2_models(out, L, lang_signal=True, seed=0):
    """base, a math expert and a language expert (F32, H 32, I 64, V 64) whose per layer x type
    change is planted as in the paper's Figure 2: math in the upper half, attention and MLP;
    language in the attention of the first two and last L//12+2 layers and the MLP of the last
    L//24+1 layers (or nowhere with lang_signal False); both with background noise at 10% of
    the signal in every tensor (0.1 x a factor in [0.7, 1.3])."""
    rng = np.random.default_rng(seed)
    H, I, V, u = 32, 64, 64, 1e-3
    ta, tm = L // 12 + 2, L // 24 + 1
    shapes = {"model.embed_tokens.weight": [V, H], "model.norm.weight": [H], "lm_head.weight": [V, H]}
    for l in range(L):
        p = "model.layers.%d." % l
        for t in ("q_proj", "k_proj", "v_proj", "o_proj"):
            shapes[p + "self_attn.%s.weight" % t] = [H, H]
        for t, sh in (("gate_proj", [I, H]), ("up_proj", [I, H]), ("down_proj", [H, I])):
            shapes[p + "mlp.%s.weight" % t] = sh
        shapes[p + "input_layernorm.weight"] = [H]
        shapes[p + "post_attention_layernorm.weight"] = [H]
    names = sorted(shapes)
    base = {n: rng.standard_normal(int(np.prod(shapes[n]))).astype(np.float32) * 0.02 for n in names}

    def planted(n, who):
        l, attn, mlp = layer_of(n), "self_attn" in n, ".mlp." in n
        if who == "math":
            return l >= L // 2 and (attn or mlp)
        return lang_signal and ((attn and (l < 2 or l >= L - ta)) or (mlp and l >= L - tm))

    def expert(who):
        out_ = []
        for n in names:
            scale = u * (0.1 * rng.uniform(0.7, 1.3) + (1.0 if planted(n, who) else 0.0))
            out_.append((n, shapes[n], base[n] + (rng.standard_normal(base[n].size) * scale).astype(np.float32)))
        return out_

    st_file(os.path.join(out, "base", "model.safetensors"), [(n, shapes[n], base[n]) for n in names])
    st_file(os.path.join(out, "math", "model.safetensors"), expert("math"))
    st_file(os.path.join(out, "lang", "model.safetensors"), expert("lang"))
    return ta, tm


def cmd_planted(driver, mpiexec, out):
    """The proposal on planted Figure-2 profiles: a few bottom and top layers (not the half of
    the model the old ratio rule gave: bottom 12 at 24 layers, bottom 40 at 80), by the
    automatic sides and by --task/--language, at 1 and 2 ranks; a pair without language
    signal says so and proposes nothing."""
    shutil.rmtree(out, ignore_errors=True)
    for L in (24, 80):
        d = os.path.join(out, "L%d" % L)
        ta, tm = fig2_models(d, L, seed=L)
        ex = ["math=" + os.path.join(d, "math"), "lang=" + os.path.join(d, "lang")]
        for np_, extra in ((1, []), (2, ["--task", "math", "--language", "lang"])):
            o = os.path.join(d, "st%d" % np_)
            rc, so, se = run(launch(mpiexec, np_, driver, ["--base", os.path.join(d, "base")] + ex + ["-o", o] + extra))
            check(rc == 0, "L=%d: stats exit %d %s" % (L, rc, se))
            if rc:
                continue
            p = json.load(open(os.path.join(o, "summary.json")))["proposal"]
            want = {"task_expert": "math", "language_expert": "lang", "bottom": 2, "top": ta,
                    "lower_transition": 0, "upper_transition": 0}
            got = p.get("layer_swap", {})
            check(p["valid"] and all(got.get(k) == v for k, v in want.items()),
                  "L=%d (%s): proposal %s, want %s\n%s" % (L, extra or "automatic", got, want, so))
            check(p["rule"]["language_layers"] == 2 + ta, "L=%d: %d language layers, want %d"
                  % (L, p["rule"]["language_layers"], 2 + ta))
            cfg = json.load(open(os.path.join(o, "proposed-layer-swap.json")))
            check(cfg["layer_swap"] == got, "L=%d: the config's layer_swap %s differs from the summary's %s"
                  % (L, cfg["layer_swap"], got))
    d = os.path.join(out, "nosignal")
    fig2_models(d, 24, lang_signal=False, seed=5)
    o = os.path.join(d, "st")
    rc, so, se = run(launch(mpiexec, 1, driver, ["--base", os.path.join(d, "base"), "math=" + os.path.join(d, "math"),
                                                 "lang=" + os.path.join(d, "lang"), "-o", o, "--task", "math",
                                                 "--language", "lang"]))
    check(rc == 0, "no signal: stats exit %d %s" % (rc, se))
    if rc == 0:
        p = json.load(open(os.path.join(o, "summary.json")))["proposal"]
        check(not p["valid"] and "no language layers" in p["note"] and p["rule"]["language_layers"] == 0,
              "no signal: proposal %s" % {k: p[k] for k in ("valid", "note")})
        check("no layer-swap proposal" in so and "no language layers" in so, "no signal: stdout does not say so:\n%s"
              % so)
        check(not os.path.exists(os.path.join(o, "proposed-layer-swap.json")), "no signal: a config was written")
        html = open(os.path.join(o, "report.html"), encoding="utf-8").read()
        check("No proposal" in html, "no signal: report.html does not say so")
    done()


# ----------------------------------------------------------------------------- quiet

def cmd_quiet(driver, mpiexec, data, out):
    """--quiet: nothing on stdout or stderr on success, at 1 and 2 ranks, and for a rerun that
    finds the folder complete; without it the proposal's reasoning and the summary line."""
    shutil.rmtree(out, ignore_errors=True)
    args = ["--base", os.path.join(data, "base"), os.path.join(data, "math1"), os.path.join(data, "lang1")]
    for np_ in (1, 2):
        o = os.path.join(out, "q%d" % np_)
        for what in ("first run", "rerun"):
            rc, so, se = run(launch(mpiexec, np_, driver, args + ["-o", o, "--quiet"]))
            check(rc == 0 and so == "" and se == "", "--quiet %s at %d ranks: exit %d, stdout %r, stderr %r"
                  % (what, np_, rc, so[:300], se[:300]))
    rc, so, se = run(launch(mpiexec, 1, driver, args + ["-o", os.path.join(out, "loud")]))
    check(rc == 0 and "layer   0" in so and "layerswap stats:" in se, "without --quiet: %r %r" % (so[:200], se[:200]))
    done()


# ------------------------------------------------------------------------------ demo

def cmd_demo(layerswap, out):
    """`layerswap demo`: the layer swap it merges is the one its statistics propose, and it says so."""
    shutil.rmtree(out, ignore_errors=True)
    rc, so, se = run([layerswap, "demo", out])
    check(rc == 0, "demo: exit %d %s" % (rc, se))
    if rc:
        done()
    ls = json.load(open(os.path.join(out, "merge.json")))["layer_swap"]
    p = json.load(open(os.path.join(out, "stats", "summary.json")))["proposal"]
    keys = ("bottom", "top", "lower_transition", "upper_transition")
    check(p["valid"] and all(p["layer_swap"][k] == ls[k] for k in keys),
          "the demo merges %s but its statistics propose %s" % ({k: ls[k] for k in keys}, p.get("layer_swap")))
    check("propose the layer swap merged above" in so, "the demo does not say that they agree:\n%s" % so)
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
                       (["--base", base, "my/expert=" + os.path.join(data, "math1")], "bad NAME in NAME=PATH"),
                       (["--base", base, "cells=" + os.path.join(data, "math1")], "the reserved name 'cells'")):
        rc, so, se = run([driver, "stats"] + args + ["-o", os.path.join(out, "u")])
        check(rc == 1 and "see 'layerswap stats --help'" in se and "[usage error, exit 1]" in se,
              "%s: exit %d, want 1 with a usage error line\n%s" % (what, rc, se))
    o = os.path.join(out, "st")
    args = ["--base", base, "m=" + os.path.join(data, "math1"), os.path.join(data, "lang1"), "-o", o, "--quiet"]
    rc, so, se = run([driver, "stats"] + args)
    check(rc == 0, "first run: %d %s" % (rc, se))
    s = json.load(open(os.path.join(o, "summary.json")))
    check(list(s["experts"]) == ["m", "lang1"], "NAME=PATH and default names: %s" % list(s["experts"]))
    rc, so, se = run([driver, "stats"] + args[:-1])
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
            "mismatch": cmd_mismatch, "usage": cmd_usage, "nd": cmd_nd, "mixed": cmd_mixed,
            "planted": cmd_planted, "quiet": cmd_quiet, "demo": cmd_demo, "modes": cmd_modes}
    return cmds[argv[1]](*argv[2:])


if __name__ == "__main__":
    sys.exit(main(sys.argv))
