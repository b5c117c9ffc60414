#!/usr/bin/python3
"""A merge stopped by a signal resumes to identical bytes (docs/cli.md exit 3).

    test_signal.py --bin B --work W [--signals TERM,INT,USR1] [--attempts N]

`layerswap synth --layers 8 --hidden 512 --intermediate 1408 --vocab 8000 --experts 2
--dtype f32` makes a base + task1 + lang1 (~127 MB each; f32 so that the output, 16 shards
of 8MB, spans more than one 64 MiB commit group and an interruption can keep finished
shards); the config is a layer swap of task1/lang1 with transition zones, run with
--mem 1M so that it takes a little while.
An uninterrupted run gives the reference (W/ref).

For each signal: start the merge into a fresh W/out, wait until it has started writing
(the output folder exists), wait a little longer (0, 10, 20, ... ms, varied between
attempts) and send the signal.  Outcomes:
  exit 3     interrupted: no manifest; every visible file under a final name is complete
             and identical to the reference's; the journal .layerswap-state exists;
             then the same command resumes: exit 0, files (hidden ones too) identical to
             the reference's, manifest "files" identical, verify exits 0;
  exit 0     finished before the signal (the attempt proves nothing; try again earlier);
  anything else fails the test (killed by the signal, crash, other error).
At least one exit 3 per signal is required, up to --attempts attempts; if every attempt
finished before the signal could be delivered, the test reports SKIPPED (ctest code 77)
rather than failing on timing.  One more round interrupts the resumed run as well
(two interruptions, then a resume).
"""
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lswtest as L  # noqa: E402


def extra(ap):
    ap.add_argument("--signals", default="TERM,INT,USR1")
    ap.add_argument("--attempts", type=int, default=25)


t = L.Test(__doc__, extra)
W = t.work
p = t.ls("synth", "--layers", 8, "--hidden", 512, "--intermediate", 1408, "--vocab", 8000,
         "--experts", 2, "--seed", 11, "--dtype", "f32", "-o", "synth")
if not t.expect_rc(p, 0, "synth"):
    t.finish()
cfg = os.path.join(W, "swap.json")
L.write_json(cfg, {
    "models": {"base": "synth/base", "task1": "synth/task1", "lang1": "synth/lang1"},
    "base": "base", "method": "layer_swap",
    "layer_swap": {"task_expert": "task1", "language_expert": "lang1", "bottom": 2, "top": 1,
                   "lower_transition": 1, "upper_transition": 2,
                   "transition_weights": "uniform", "non_layer": "average"},
    "output": {"path": "unused", "shard_size": "8MB"}})
ref, out = os.path.join(W, "ref"), os.path.join(W, "out")
t0 = time.time()
p = t.ls("merge", cfg, "-o", ref, "--mem", "1M")
if not t.expect_rc(p, 0, "reference merge"):
    t.finish()
print("reference merge took %.2f s" % (time.time() - t0))
ref_files = L.all_files(ref)
ref_manifest = L.load_json(os.path.join(ref, "layerswap-manifest.json"))


def snapshot():
    """{name: (size, mtime)} of every entry of the output folder (None if it is absent)."""
    if not os.path.isdir(out):
        return None
    snap = {}
    for n in os.listdir(out):
        try:
            st = os.stat(os.path.join(out, n))
            snap[n] = (st.st_size, st.st_mtime_ns)
        except OSError:
            pass
    return snap


def start_and_signal(sig, extra_delay):
    """Start the merge; once it has started writing (the output folder appears, or, when it
    exists already, any entry in it appears or changes), wait extra_delay and send sig.
    -> (exit code (negative: killed by a signal), stderr)."""
    argv = [t.bin, "merge", cfg, "-o", out, "--mem", "1M"]
    print("$ %s   (signal %s once it writes, +%.0f ms)" % (" ".join(argv), sig.name,
                                                         extra_delay * 1000), flush=True)
    before = snapshot()
    errf = open(os.path.join(W, "stderr.txt"), "w+")
    proc = subprocess.Popen(argv, cwd=W, stdout=subprocess.DEVNULL, stderr=errf)
    deadline = time.time() + 60
    while proc.poll() is None and snapshot() == before and time.time() < deadline:
        time.sleep(0.0005)
    if proc.poll() is None and extra_delay:
        time.sleep(extra_delay)
    if proc.poll() is None:
        proc.send_signal(sig)
    rc = proc.wait(timeout=120)
    errf.seek(0)
    err = errf.read()
    errf.close()
    print("  -> exit %d%s" % (rc, ("; stderr: " + err.strip()[-300:]) if err.strip() else ""))
    return rc, err


def check_interrupted(what):
    files = L.all_files(out)
    print("%s: the folder holds %r" % (what, files))
    t.check("layerswap-manifest.json" not in files, "%s: a manifest exists" % what)
    t.check(".layerswap-state" in files, "%s: no journal .layerswap-state" % what)
    for f in files:
        if os.path.basename(f).startswith("."):
            continue
        t.check(f in ref_files and L.same_bytes(os.path.join(out, f), os.path.join(ref, f)),
                "%s: %s under its final name is not identical to the uninterrupted run's" % (what, f))


def resume(what):
    p = t.ls("merge", cfg, "-o", out, "--mem", "1M")
    t.expect_rc(p, 0, "%s: resume" % what)
    files = L.all_files(out)
    t.check(files == ref_files, "%s: after the resume the folder holds %r, the uninterrupted "
            "run %r" % (what, files, ref_files))
    diff = [f for f in ref_files if f != "layerswap-manifest.json"
            and not L.same_bytes(os.path.join(out, f), os.path.join(ref, f))]
    t.check(not diff, "%s: after the resume these files differ from the uninterrupted run's: %r"
            % (what, diff))
    mp = os.path.join(out, "layerswap-manifest.json")
    if os.path.isfile(mp):
        t.check(L.load_json(mp).get("files") == ref_manifest.get("files"),
                "%s: the manifest's \"files\" differ from the uninterrupted run's" % what)
    t.verify(out, what + ": resumed output")


sigs = [getattr(signal, "SIG" + s.strip().upper()) for s in t.args.signals.split(",") if s.strip()]
skipped = []
kept_shards = 0
# delays after the first write: the first signal tries them all (until the merge finishes
# first), the others stop at their first interruption
delays = [0.0, 0.02, 0.05, 0.08, 0.12, 0.16, 0.2, 0.3, 0.01, 0.005, 0.002, 0.001]
for k, sig in enumerate(sigs):
    seen3 = 0
    for attempt in range(t.args.attempts):
        if os.path.isdir(out):
            L.fresh_dir(out)
            os.rmdir(out)
        d = delays[attempt % len(delays)] * (0.5 ** (attempt // len(delays)))
        rc, err = start_and_signal(sig, d)
        what = "%s attempt %d (+%.0f ms)" % (sig.name, attempt + 1, d * 1000)
        if rc == 0:
            if seen3 and k == 0 and attempt < len(delays) - 1:
                # later delays only finish first too; jump to the short ones
                continue
            continue                 # finished before the signal: proves nothing
        if not t.check(rc == 3, "%s: exit %d, expected 3 (interrupted) or 0 (finished first); "
                       "stderr: %s" % (what, rc, err.strip()[-500:])):
            break
        t.check("exit 3]" in err, "%s: no 'exit 3]' error line on stderr: %r" % (what, err[-300:]))
        check_interrupted(what)
        kept_shards += sum(1 for f in L.visible_files(out) if f.endswith(".safetensors"))
        resume(what)
        seen3 += 1
        if k > 0 or attempt >= len(delays) - 1:
            break
    if seen3 == 0 and not t.failures:
        skipped.append(sig.name)
        t.note("%s: every attempt finished before the signal arrived" % sig.name)
if not kept_shards:
    t.note("no interrupted run had finished a shard yet (timing); resumes were from scratch")

# interrupt, interrupt the resume, resume again
for attempt in range(t.args.attempts):
    L.fresh_dir(out)
    os.rmdir(out)
    rc, err = start_and_signal(signal.SIGTERM, 0.0)
    if rc == 0:
        continue
    if not t.check(rc == 3, "double interruption: first run exit %d, expected 3" % rc):
        break
    rc2, err2 = start_and_signal(signal.SIGTERM, 0.0)
    t.check(rc2 in (0, 3), "double interruption: the interrupted resume exit %d, expected 3 or 0"
            % rc2)
    if rc2 == 3:
        check_interrupted("after two interruptions")
    resume("double interruption")
    break

t.finish(skip_reason=("no signal ever arrived before the merge finished: %s" % ",".join(skipped))
         if skipped and len(skipped) == len(sigs) else None)
