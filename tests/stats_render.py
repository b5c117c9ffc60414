#!/usr/bin/python3
"""stats_render — `layerswap stats` pictures in a real browser (registered by tests/stats.cmake).

    stats_render.py LAYERSWAP OUT

Makes a small base and three experts, one with a Hugging Face-style name far longer than a
heatmap is wide, runs `stats` with the default (shared) scale and with --no-shared-scale
--log-scale, and opens every heatmap_*.svg and report.html in headless Chromium (Debian's
`chromium`; exit 77, skipped, when it is not installed):

  * the file renders: a screenshot that is not blank (many colours, most of the picture
    not white), no XML parser error in the DOM, no console message;
  * nothing is cut: in a harness page that inlines each SVG, every <text> element's box
    (rotated labels included) lies inside its SVG's box, and the long name appears whole
    in the SVG's <title> tooltip;
  * the caption says which scale the colours use (shared by all experts, or the expert's
    own; linear or log10), the colour bar has ticks, and exactly-unchanged cells are marked.

Screenshots stay in OUT/shots for a person to look at.
"""
import html
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
LONG = "meta-llama--Llama-3.1-8B-Instruct_swahili-sft.v2.5-lr2e-5-epochs3-checkpoint-120000-merged"
failures = []


def check(cond, msg):
    if not cond:
        failures.append(msg)
        print("FAIL: " + msg, file=sys.stderr)
    return cond


def chromium():
    for c in ("chromium", "chromium-browser", "google-chrome"):
        p = shutil.which(c)
        if p:
            return p
    return None


def browse(exe, url, prof, extra, timeout=90):
    """Run headless Chromium once; (returncode, stdout, stderr)."""
    cmd = [exe, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
           "--disable-extensions", "--user-data-dir=" + prof, "--enable-logging=stderr", "--v=0"] + extra + [url]
    env = dict(os.environ, HOME=prof)
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout, env=env)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


def console_lines(err):
    return [l for l in err.splitlines() if "CONSOLE" in l]


def png_pixels(path):
    """(width, height, list of RGB tuples) of an 8-bit RGB or RGBA PNG, decoded here."""
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, w = 8, b"", None
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            w, h, depth, ctype = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and ctype in (2, 6), "PNG type %d/%d" % (depth, ctype)
            bpp = 3 if ctype == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    raw, stride, out, prev = zlib.decompress(idat), w * bpp, [], bytearray(w * bpp)
    for y in range(h):
        f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b, c = prev[i], prev[i - bpp] if i >= bpp else 0
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + b) & 255
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        out.extend(tuple(line[x * bpp:x * bpp + 3]) for x in range(w))
        prev = line
    return w, h, out


def svg_size(text):
    m = re.search(r'<svg[^>]* width="(\d+)" height="(\d+)"', text)
    return int(m.group(1)), int(m.group(2))


HARNESS = """<!DOCTYPE html><html><head><meta charset="utf-8"></head><body style="margin:0">%s
<pre id="result"></pre>
<script>
window.addEventListener('load', function () {
  var out = [];
  document.querySelectorAll('svg.heatmap').forEach(function (svg, i) {
    var box = svg.getBoundingClientRect();
    svg.querySelectorAll('text').forEach(function (t) {
      var r = t.getBoundingClientRect();
      if (r.width === 0) return;
      if (r.left < box.left - 1 || r.right > box.right + 1 || r.top < box.top - 1 || r.bottom > box.bottom + 1)
        out.push('CUT svg ' + i + ' ' + JSON.stringify(t.textContent.slice(0, 60)) + ' ' +
                 [r.left - box.left, r.right - box.left, r.top - box.top, r.bottom - box.top, box.width, box.height]
                 .map(Math.round).join(','));
    });
    out.push('SVG ' + i + ' texts ' + svg.querySelectorAll('text').length);
  });
  document.getElementById('result').textContent = out.join('\\n');
});
</script></body></html>"""


def layout_check(exe, prof, name, svgs, work):
    """Every <text> of the inlined SVGs inside its SVG; returns the harness output lines."""
    page = os.path.join(work, "harness-%s.html" % name)
    with open(page, "w", encoding="utf-8") as f:
        f.write(HARNESS % "\n".join(re.sub(r"^<\?xml[^>]*>\s*", "", s) for s in svgs))
    rc, so, se = browse(exe, "file://" + page, prof, ["--dump-dom", "--virtual-time-budget=5000",
                                                      "--window-size=1600,1200"])
    m = re.search(r'<pre id="result">(.*?)</pre>', so, re.S)
    lines = m.group(1).splitlines() if m else []
    check(rc == 0 and m and len([l for l in lines if l.startswith("SVG ")]) == len(svgs),
          "%s: the layout harness did not run (rc %d)\n%s" % (name, rc, se[-2000:]))
    for l in lines:
        check(not l.startswith("CUT"), "%s: text outside its picture: %s" % (name, l))
    check(not console_lines(se), "%s harness: console messages %s" % (name, console_lines(se)))


def render_check(exe, prof, path, shots, size):
    """Screenshot and DOM of one file: renders, not blank, no parser error, no console message."""
    base = os.path.basename(path)
    png = os.path.join(shots, base + ".png")
    rc, dom, se = browse(exe, "file://" + path, prof, ["--screenshot=" + png, "--dump-dom",
                                                       "--window-size=%d,%d" % size])
    if not check(rc == 0 and os.path.exists(png), "%s: no screenshot (rc %d)\n%s" % (base, rc, se[-2000:])):
        return
    check("parsererror" not in dom and "This page contains the following errors" not in dom and "<svg" in dom,
          "%s: the browser reports a parse error" % base)
    check(not console_lines(se), "%s: console messages %s" % (base, console_lines(se)))
    w, h, px = png_pixels(png)
    white = sum(1 for p in px if p == (255, 255, 255))
    colours = len(set(px))
    check(colours >= 20 and white < 0.97 * len(px), "%s: blank-looking screenshot (%d colours, %.1f%% white)"
          % (base, colours, 100.0 * white / len(px)))


def make_models(work):
    """base + three F32 experts: 'math' (upper half), LONG (first/last layers' attention),
    'same' (identical to the base: every cell unchanged)."""
    import numpy as np
    sys.path.insert(0, HERE)
    from stats_cli import st_file  # the F32 safetensors writer of the stats tests
    rng = np.random.default_rng(11)
    L, H, I, V = 6, 16, 32, 24
    shapes = {"model.embed_tokens.weight": [V, H], "model.norm.weight": [H], "lm_head.weight": [V, H]}
    for l in range(L):
        p = "model.layers.%d." % l
        for t in ("q_proj", "k_proj", "v_proj", "o_proj"):
            shapes[p + "self_attn.%s.weight" % t] = [H, H]
        shapes[p + "mlp.gate_proj.weight"] = [I, H]
        shapes[p + "mlp.up_proj.weight"] = [I, H]
        shapes[p + "mlp.down_proj.weight"] = [H, I]
        shapes[p + "input_layernorm.weight"] = [H]
        shapes[p + "post_attention_layernorm.weight"] = [H]
    base = {n: rng.standard_normal(int(np.prod(s))).astype(np.float32) * 0.02 for n, s in shapes.items()}
    def expert(scale):
        return [(n, shapes[n], base[n] + rng.standard_normal(base[n].size).astype(np.float32) * scale(n))
                for n in sorted(shapes)]
    def layer(n):
        m = re.search(r"layers\.(\d+)\.", n)
        return int(m.group(1)) if m else -1
    math = lambda n: 1e-3 if layer(n) >= L // 2 else 1e-5
    lang = lambda n: 2e-3 if ("self_attn" in n and layer(n) in (0, L - 1)) else 0.0
    st_file(os.path.join(work, "base", "model.safetensors"), [(n, shapes[n], base[n]) for n in sorted(shapes)])
    st_file(os.path.join(work, "math", "model.safetensors"), expert(math))
    st_file(os.path.join(work, "lang", "model.safetensors"), expert(lang))
    st_file(os.path.join(work, "same", "model.safetensors"), [(n, shapes[n], base[n]) for n in sorted(shapes)])


def main(argv):
    layerswap, work = argv[1], argv[2]
    exe = chromium()
    if not exe:
        print("SKIP: no chromium (Debian package `chromium`, installed by the test-only dependencies)")
        return 77
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    shots, prof = os.path.join(work, "shots"), os.path.join(work, "chromium-profile")
    os.makedirs(shots)
    make_models(work)
    runs = {"shared": [], "own-log": ["--no-shared-scale", "--log-scale"]}
    for run_name, opts in runs.items():
        out = os.path.join(work, run_name)
        args = [layerswap, "stats", "--base", os.path.join(work, "base"), "math=" + os.path.join(work, "math"),
                LONG + "=" + os.path.join(work, "lang"), "same=" + os.path.join(work, "same"), "-o", out,
                "--quiet"] + opts
        p = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
        if not check(p.returncode == 0, "stats %s: exit %d %s" % (run_name, p.returncode, p.stderr.decode())):
            continue
        summary = json.load(open(os.path.join(out, "summary.json")))
        svgs = []
        for name in summary["experts"]:
            path = os.path.join(out, "heatmap_%s.svg" % name)
            text = open(path, encoding="utf-8").read()
            svgs.append(text)
            w, h = svg_size(text)
            os.makedirs(os.path.join(shots, run_name), exist_ok=True)
            render_check(exe, prof, path, os.path.join(shots, run_name), (w, h))
            tip = re.search(r"<title>([^<]*)</title>", text)
            check(tip and tip.group(1).startswith(name), "%s: the <title> tooltip lacks the whole name" % path)
            cap = html.unescape(" ".join(re.findall(r'class="caption"[^>]*>([^<]*)<', text)))
            want = ("shared by all 3 experts" if run_name == "shared" else "this expert's cells")
            check(want in cap and ("log10" in cap) == (run_name == "own-log"), "%s: caption %r does not say %r%s"
                  % (path, cap, want, " and log10" if run_name == "own-log" else ""))
            check(text.count('class="tick"') >= (1 if name == "same" else 2), "%s: colour bar without ticks" % path)
            if name == "same":
                n = len(re.findall(r'class="cell"[^>]*data-unchanged="1"', text))
                check(n == summary["layers"] * len(summary["types"]) and 'class="unchanged"' in text,
                      "%s: %d unchanged cells marked, want every one" % (path, n))
        layout_check(exe, prof, run_name, svgs, work)
        report = os.path.join(out, "report.html")
        render_check(exe, prof, report, os.path.join(shots, run_name), (1400, 3000))
        page = open(report, encoding="utf-8").read()
        layout_check(exe, prof, run_name + "-report", re.findall(r"<svg .*?</svg>", page, re.S), work)
    shutil.rmtree(prof, ignore_errors=True)
    if failures:
        print("%d check(s) failed; screenshots in %s" % (len(failures), shots), file=sys.stderr)
        return 1
    print("ok; screenshots in %s" % shots)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
