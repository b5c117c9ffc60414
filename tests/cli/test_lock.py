#!/usr/bin/python3
"""One owner per output folder (issue 10 item 2).

For merge, HDF5 merge, sweep and stats: run A starts; 0.1-0.5 s later (a seeded random
delay; A is held with SIGSTOP once its lock exists, so that it is still running however
fast this machine is) run B starts on the same folder.  B exits 1 at once, names A
(host, pid, command) and touches nothing (every name, size and mtime in the folder the
same before and after B).  A is let go and finishes with the bytes of an uninterrupted
run, and verify passes.  Then A is killed with SIGKILL while it holds the lock: the next
run takes the stale lock over and ends with the same bytes; no lock file stays behind.
`merge --sweep S --index K` on a merge folder a sweep holds is refused the same way.
"""
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lswtest as L  # noqa: E402

t = L.Test(__doc__)
W = t.work
os.chdir(W)
rng = random.Random(10)
LOCK = ".layerswap-lock"
ENV = dict(os.environ)
for k in list(ENV):
    if k.startswith("LSW_"):
        del ENV[k]

p = t.ls("synth", "--layers", "6", "--hidden", "384", "--intermediate", "1024", "--vocab", "6000",
         "--experts", "2", "--seed", "7", "-o", "m", "--quiet")
if not t.expect_rc(p, 0, "synth"):
    t.finish()
L.write_json("c.json", {"models": {"base": "m/base", "t": "m/task1", "l": "m/lang1"}, "base": "base",
                        "method": "layer_swap",
                        "layer_swap": {"task_expert": "t", "language_expert": "l", "bottom": 2, "top": 1,
                                       "lower_transition": 1, "upper_transition": 1,
                                       "transition_weights": "magnitude"},
                        "output": {"shard_size": "4MB"}})
L.write_json("s.json", {"models": {"base": "m/base", "t": "m/task1", "l": "m/lang1"}, "base": "base",
                        "grid": {"task_expert": ["t"], "language_expert": ["l"], "bottom": [1, 2]},
                        "output": {"path": "unused", "shard_by": "layer"}})

DRIVERS = {
    "merge": lambda o: ["merge", "c.json", "-o", o, "--quiet"],
    "hdf5": lambda o: ["merge", "c.json", "-o", o, "--format", "hdf5", "--quiet"],
    "sweep": lambda o: ["sweep", "s.json", "-o", o, "--quiet"],
    "stats": lambda o: ["stats", "--base", "m/base", "m/task1", "m/lang1", "-o", o, "--quiet"],
}


def tree(folder):
    """relative path -> (size, mtime_ns) of every entry under folder, hidden ones included."""
    out = {}
    for root, dirs, files in os.walk(folder):
        for n in dirs + files:
            p = os.path.join(root, n)
            st = os.lstat(p)
            out[os.path.relpath(p, folder)] = (st.st_size, st.st_mtime_ns)
    return out


def contents(folder):
    out = {}
    for f in L.all_files(folder):
        if os.path.basename(f) == LOCK:
            continue
        with open(os.path.join(folder, f), "rb") as fh:
            out[f] = fh.read()
        if f == "sweep.json":   # it lists the merge folders by path
            out[f] = out[f].replace(folder.encode(), b"OUT")
    return out


def verify_all(kind, o, what):
    if kind == "sweep":
        for d in sorted(os.listdir(o)):
            if os.path.isdir(os.path.join(o, d)):
                t.verify(os.path.join(o, d), what + " " + d)
    else:
        t.verify(o, what)


def start(args):
    return subprocess.Popen([t.bin] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV,
                            universal_newlines=True)


def wait_lock(a, o, kind, limit=20.0):
    """Poll until A's lock files exist (then stop A); False if A ended first.  A sweep
    holds its own folder's lock and one in each merge folder."""
    locks = [os.path.join(o, LOCK)] + ([os.path.join(o, d, LOCK) for d in SWEEP_DIRS] if kind == "sweep" else [])
    t0 = time.time()
    while time.time() - t0 < limit:
        if all(os.path.exists(x) for x in locks):
            os.kill(a.pid, signal.SIGSTOP)
            return True
        if a.poll() is not None:
            return False
        time.sleep(0.0005)
    return False


p = t.ls("sweep", "s.json", "--emit-array", "-o", "list")
SWEEP_DIRS = [line.split("\t")[0] + "-" + line.split("\t")[1] for line in p.stdout.splitlines() if "\t" in line]
t.check(len(SWEEP_DIRS) == 2, "sweep --emit-array: %r" % p.stdout)

for kind, argv in DRIVERS.items():
    ref = "ref-" + kind
    p = t.ls(*argv(ref))
    if not t.expect_rc(p, 0, "%s: uninterrupted run" % kind):
        continue
    want = contents(ref)
    t.check(not os.path.exists(os.path.join(ref, LOCK)), "%s: the lock file stayed after the run" % kind)

    # -- a second run on a folder in use ------------------------------------------------
    o = "busy-" + kind
    delay = rng.uniform(0.1, 0.5)
    t0 = time.time()
    a = start(argv(o))
    if not t.check(wait_lock(a, o, kind), "%s: run A ended (exit %s) before its lock was seen" % (kind, a.poll())):
        continue
    time.sleep(max(0.0, t0 + delay - time.time()))
    before = tree(o)
    p = t.ls(*argv(o))
    took = time.time() - t0 - delay
    t.check_error_line(p, kind if kind != "hdf5" else "merge", 1, "%s: second run on a folder in use" % kind,
                       mention=["in use", "pid %d" % a.pid, socket.gethostname()])
    t.check(took < 5, "%s: the second run took %.1f s to give up" % (kind, took))
    t.check(tree(o) == before, "%s: the second run touched the folder: %r" % (kind, sorted(
        set(tree(o).items()) ^ set(before.items()))[:6]))
    if kind == "sweep":   # merge K alone, on a merge folder the sweep holds
        p = t.ls("merge", "--sweep", "s.json", "--index", "0", "-o", o)
        t.check_error_line(p, "merge", 1, "merge --sweep --index 0 on a folder the sweep holds", mention=["in use"])
    os.kill(a.pid, signal.SIGCONT)
    out, err = a.communicate(timeout=300)
    t.check(a.returncode == 0, "%s: run A after the refused second run: exit %d: %s" % (kind, a.returncode, err[-300:]))
    t.check(contents(o) == want, "%s: run A's bytes differ from an uninterrupted run" % kind)
    t.check(not os.path.exists(os.path.join(o, LOCK)), "%s: the lock file stayed after run A" % kind)
    verify_all(kind, o, "%s: run A" % kind)

    # -- a killed holder's lock is taken over ---------------------------------------------
    o = "stale-" + kind
    a = start(argv(o))
    if not t.check(wait_lock(a, o, kind), "%s: run A ended before its lock was seen" % kind):
        continue
    a.send_signal(signal.SIGKILL)
    a.communicate()
    t.check(os.path.exists(os.path.join(o, LOCK)), "%s: no lock file after a SIGKILL (nothing to take over)" % kind)
    p = t.ls(*argv(o))
    t.expect_rc(p, 0, "%s: run after a killed holder (stale lock)" % kind)
    t.check(contents(o) == want, "%s: bytes after taking over a stale lock differ" % kind)
    t.check(not os.path.exists(os.path.join(o, LOCK)), "%s: the lock file stayed after the take-over run" % kind)
    verify_all(kind, o, "%s: after a take-over" % kind)
t.finish()
