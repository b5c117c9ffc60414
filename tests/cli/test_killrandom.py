#!/usr/bin/python3
"""Kill at random (issue 10 item 8): a run killed with SIGKILL at any moment resumes to
the bytes of an uninterrupted run.

One driver (--driver merge | hdf5 | sweep | stats) at one rank count (--ranks 1 | 3).
At each of --moments seeded random moments the run kills itself with SIGKILL: after a
random number of bytes written (LSW_FAULT_KILL_WRITE_AFTER) or read
(LSW_FAULT_KILL_READ_AFTER) through lsw_io, on a random rank (LSW_FAULT_RANK; under
mpirun the other ranks are then taken down by mpirun).  After each kill the same
command, run without the hook,
must exit 0 with every output file identical to an uninterrupted run (hidden files
included: no lock or temporary may remain) and `verify` must pass.  Four moments in ten
also kill the first rerun, so kills land in resumes and take-overs of stale locks.  A moment at which nothing was killed (the budget
exceeded what that rank reads or writes) is drawn again, up to three times as many draws.
"""
import os
import re
import random
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lswtest as L  # noqa: E402


def extra(ap):
    ap.add_argument("--driver", required=True, choices=["merge", "hdf5", "sweep", "stats"])
    ap.add_argument("--ranks", type=int, default=1)
    ap.add_argument("--mpiexec", default="mpiexec")
    ap.add_argument("--moments", type=int, default=10)
    ap.add_argument("--seed", type=int, default=2026)


t = L.Test(__doc__, extra)
a = t.args
W = t.work
os.chdir(W)
rng = random.Random("%s-%d-%d" % (a.driver, a.ranks, a.seed))

p = t.ls("synth", "--layers", "4", "--hidden", "128", "--intermediate", "352", "--vocab", "3000",
         "--experts", "3", "--seed", "5", "--shard-size", "300KB", "-o", "m", "--quiet")
if not t.expect_rc(p, 0, "synth"):
    t.finish()
swap = {"task_expert": "t", "language_expert": "l", "bottom": 1, "top": 1, "lower_transition": 1,
        "upper_transition": 0, "transition_weights": "magnitude"}
models = {"base": "m/base", "t": "m/task1", "l": "m/lang1", "t2": "m/task2"}
L.write_json("c.json", {"models": models, "base": "base", "method": "layer_swap", "layer_swap": swap,
                        "output": {"shard_size": "200KB"}})
L.write_json("s.json", {"models": models, "base": "base",
                        "grid": {"task_expert": ["t", "t2"], "language_expert": ["l"], "bottom": [1, 2]},
                        "output": {"path": "unused", "shard_by": "layer", "dedup": "hardlink"}})
ARGV = {
    "merge": lambda o: ["merge", "c.json", "-o", o, "--mem", "1M", "--quiet"],
    "hdf5": lambda o: ["merge", "c.json", "-o", o, "--format", "hdf5", "--mem", "1M", "--quiet"],
    "sweep": lambda o: ["sweep", "s.json", "-o", o, "--mem", "1M", "--quiet"],
    "stats": lambda o: ["stats", "--base", "m/base", "t=m/task1", "l=m/lang1", "-o", o, "--quiet"],
}[a.driver]
# odls_base_sigkill_timeout=0: once a rank died, mpirun kills the others at once instead of
# after a second of SIGTERM (which only sets our stop flag): 0.5 s per killed run, not 2.4 s
ENV = {"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
       "OMPI_MCA_rmaps_base_oversubscribe": "1", "OMPI_MCA_btl_vader_single_copy_mechanism": "none",
       "OMPI_MCA_odls_base_sigkill_timeout": "0"}


def run(o, env=None):
    argv = [t.bin] + ARGV(o)
    if a.ranks > 1:
        argv = [a.mpiexec, "-n", str(a.ranks)] + argv
    e = dict(ENV)
    e.update(env or {})
    return L.run(argv, cwd=W, env=e, timeout=300, show=False)


def contents(folder):
    out = {}
    for f in L.all_files(folder):
        with open(os.path.join(folder, f), "rb") as fh:
            data = fh.read()
        if os.path.basename(f) == "sweep.json":   # it names the merge folders by path
            data = re.sub(rb'"path":\s*"' + re.escape(folder.encode()) + rb'/', b'"path": "OUT/', data)
        out[f] = data
    return out


def verify_all(o, what):
    dirs = [os.path.join(o, d) for d in sorted(os.listdir(o)) if os.path.isdir(os.path.join(o, d))] \
        if a.driver == "sweep" else [o]
    for d in dirs:
        p = t.ls("verify", d, show=False)
        t.expect_rc(p, 0, "%s: verify %s" % (what, d))


p = run("ref")
if not t.expect_rc(p, 0, "uninterrupted run"):
    t.finish()
want = contents("ref")
out_bytes = sum(len(v) for v in want.values())
in_bytes = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk("m") for f in fs
               if "task2" not in r or a.driver == "sweep")
# what goes through lsw_io: stats.h5 is written by HDF5 itself; a merge with magnitude
# weights reads the base and both experts once more for their model MAVs
WRITE_SPAN = out_bytes - (len(want.get("stats.h5", b"")) if a.driver == "stats" else 0)
READ_SPAN = in_bytes if a.driver == "stats" else in_bytes * 3 // 2
if a.driver == "sweep":   # shards shared between merges are hard links: written once, read once
    WRITE_SPAN, READ_SPAN = out_bytes // 3, in_bytes
t.note("%s at %d rank(s): %d output files, %d bytes; inputs %d bytes"
       % (a.driver, a.ranks, len(want), out_bytes, in_bytes))

o = "out"
kills = draws = 0


def draw():
    """-> (environment of a kill, its description)."""
    write = rng.random() < 0.5
    rank = rng.randrange(a.ranks)
    # a budget within what one rank of `ranks` may move (HDF5 chunks sent or stored and
    # reads of the magnitude pre-pass included), so that most draws land inside the run
    span = (WRITE_SPAN if write else READ_SPAN) // a.ranks + 1
    budget = rng.randrange(span)
    var = "LSW_FAULT_KILL_WRITE_AFTER" if write else "LSW_FAULT_KILL_READ_AFTER"
    return {var: str(budget), "LSW_FAULT_RANK": str(rank)}, "%s=%d on rank %d" % (var, budget, rank)


def killed(p, what):
    t.check(p.returncode in (137, -9) or a.ranks > 1, "%s: killed run exit %d, expected SIGKILL (137): %s"
            % (what, p.returncode, p.stderr.strip()[-300:]))


while kills < a.moments and draws < 3 * a.moments:
    draws += 1
    env, desc = draw()
    what = "moment %d (%s)" % (draws, desc)
    p = run(o, env)
    if p.returncode == 0:
        t.note("%s: the run finished before the budget was spent" % what)
        shutil.rmtree(o, ignore_errors=True)
        continue
    kills += 1
    killed(p, what)
    if rng.random() < 0.4:   # kill the resume too
        env, desc = draw()
        what += ", then %s" % desc
        p = run(o, env)
        if p.returncode != 0:
            killed(p, what)
    p = run(o)
    if t.expect_rc(p, 0, "%s: the same command after the kill" % what):
        got = contents(o)
        diff = sorted(f for f in set(got) | set(want) if got.get(f) != want.get(f))
        t.check(not diff, "%s: after the rerun these files differ from an uninterrupted run: %r" % (what, diff[:6]))
        verify_all(o, what)
    t.note("%s: resumed to identical bytes" % what)
    shutil.rmtree(o, ignore_errors=True)
t.check(kills >= a.moments, "only %d of %d moments killed the run in %d draws" % (kills, a.moments, draws))
t.finish()
