#!/usr/bin/python3
"""Many jobs on one node (issue 10 item 4): short singleton runs started at once all
succeed.

Outside a launcher every run is an isolated Open MPI singleton with the same job id, and
all of them used to share Open MPI's session folder $TMPDIR/ompi.<host>.<uid>/jf.0: one
run's clean-up removed it under another's MPI_Init, and 1-2% of runs failed with "mkdir
...: No such file or directory / File exists" (5 of 300 in three concurrent loops).
Here four loops of 60 runs (inspect of a fixture, about 20 ms each) share one TMPDIR;
every run must exit 0, and no session folder may be left behind.
"""
import os
import subprocess
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lswtest as L  # noqa: E402

t = L.Test(__doc__)
env = dict(os.environ)   # TMPDIR: this test's own, shared by all its runs
for k in list(env):
    if k.startswith("LSW_") or k.startswith("OMPI_MCA_"):
        del env[k]
target = os.path.join(t.fixtures, "base")
failures = []


def loop(k, n=60):
    for i in range(n):
        p = subprocess.run([t.bin, "inspect", target], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                           env=env, universal_newlines=True, errors="replace")
        if p.returncode != 0:
            failures.append("loop %d run %d: exit %d: %s" % (k, i, p.returncode, p.stderr.strip()[:300]))


threads = [threading.Thread(target=loop, args=(k,)) for k in range(4)]
for th in threads:
    th.start()
for th in threads:
    th.join()
t.check(not failures, "%d of 240 concurrent singleton runs failed; first: %s"
        % (len(failures), failures[0] if failures else ""))
left = [f for f in os.listdir(t.tmpdir) if f.startswith("ompi.")]
t.check(not left, "session folders left in TMPDIR: %r" % left)
t.finish()
