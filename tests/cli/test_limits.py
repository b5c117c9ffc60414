#!/usr/bin/python3
"""Limits are clean exits (issue 10 items 3, 5): `ulimit -f`, a tiny file system, a
read-only folder.

Each case runs a merge (safetensors and HDF5) into a folder where it cannot finish: it
exits 4 with one error line naming the file or folder and the cause (for a full file
system found up front: both numbers), leaves no temporary behind, and the same command,
run again once the limit is gone, ends with the bytes of an uninterrupted run and
`verify` passes.  The tiny tmpfs is met twice: by the free-space check before the first
byte, and (with LSW_NO_SPACE_CHECK=1) by a write that fails part-way.  Mounts happen in
a private mount namespace (`unshare -m`); where that is not allowed those cases are
skipped, the rest still runs.
"""
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lswtest as L  # noqa: E402

t = L.Test(__doc__)
W = t.work
os.chdir(W)
p = t.ls("synth", "--layers", "6", "--hidden", "256", "--intermediate", "704", "--vocab", "4000",
         "--experts", "2", "--seed", "3", "-o", "m", "--quiet")
if not t.expect_rc(p, 0, "synth"):
    t.finish()
L.write_json("c.json", {"models": {"base": "m/base", "t": "m/task1", "l": "m/lang1"}, "base": "base",
                        "method": "layer_swap",
                        "layer_swap": {"task_expert": "t", "language_expert": "l", "bottom": 2, "top": 1,
                                       "lower_transition": 1, "upper_transition": 1},
                        "output": {"shard_size": "2MB"}})
FORMATS = {"safetensors": [], "hdf5": ["--format", "hdf5"]}


def contents(folder):
    out = {}
    for f in L.all_files(folder):
        with open(os.path.join(folder, f), "rb") as fh:
            out[f] = fh.read()
    return out


REF = {}
for fmt, extra in FORMATS.items():
    p = t.ls("merge", "c.json", "-o", "ref-" + fmt, "--quiet", *extra)
    t.expect_rc(p, 0, "%s: uninterrupted merge" % fmt)
    REF[fmt] = contents("ref-" + fmt)
SIZES = sorted(os.path.getsize(os.path.join("ref-safetensors", f)) for f in REF["safetensors"]
               if f.endswith(".safetensors"))
H5SIZE = os.path.getsize("ref-hdf5/model.h5")
BIG = {"safetensors": max((f for f in REF["safetensors"] if f.endswith(".safetensors")),
                          key=lambda f: len(REF["safetensors"][f])), "hdf5": "model.h5"}


def no_temporaries(folder, what):
    left = [f for f in L.all_files(folder) if f.endswith(".lsw-tmp") or os.path.basename(f) == ".layerswap-lock"]
    t.check(not left, "%s: left behind: %r" % (what, left))


def resumed(fmt, folder, what, env=None):
    p = t.ls("merge", "c.json", "-o", folder, "--quiet", *FORMATS[fmt], env=env)
    t.expect_rc(p, 0, "%s: the same command once the limit is gone" % what)
    t.check(contents(folder) == REF[fmt], "%s: bytes after the rerun differ from an uninterrupted run" % what)
    t.verify(folder, what)


# -- ulimit -f: EFBIG, not SIGXFSZ (exit 153) ------------------------------------------------
for fmt in FORMATS:
    # a limit between the shard sizes (safetensors) / below model.h5 and its spill (HDF5)
    blocks = (SIZES[0] + SIZES[-1]) // 2 // 1024 if fmt == "safetensors" else H5SIZE * 3 // 4 // 1024
    o = "fsize-" + fmt
    argv = [t.bin, "merge", "c.json", "-o", o] + FORMATS[fmt]
    p = L.run(["bash", "-c", 'ulimit -f %d && exec "$@"' % blocks, "bash"] + argv, cwd=W)
    what = "%s: ulimit -f %d" % (fmt, blocks)
    t.check_error_line(p, "merge", 4, what, mention=[o, "File too large"])
    no_temporaries(o, what)
    resumed(fmt, o, what)

# -- a stop signal is exit 3, also during start-up; SIGXFSZ ignored from the start ----------
for sig in ("TERM", "USR1", "INT"):
    script = ('"$1" merge c.json -o sig-%s --quiet & p=$!; '
              'while ! awk \'/^Threads:/ {exit !($2 >= 2)}\' /proc/$p/status 2>/dev/null; do :; done; '
              'grep -E "^Sig(Cgt|Ign):" /proc/$p/status; kill -%s $p; wait $p; echo "rc=$?"' % (sig, sig))
    p = L.run(["bash", "-c", script, "bash", t.bin], cwd=W)
    lines = dict(l.split(":", 1) for l in p.stdout.splitlines() if l.startswith("Sig"))
    cgt = int(lines.get("SigCgt", "0").strip(), 16)
    ign = int(lines.get("SigIgn", "0").strip(), 16)
    num = {"TERM": 15, "USR1": 10, "INT": 2}[sig]
    # MPI_Init starts a thread: when there are two, the handlers must already be there
    t.check(cgt >> (num - 1) & 1, "SIG%s: no handler yet when MPI_Init was running (SigCgt %x)" % (sig, cgt))
    t.check(ign >> (25 - 1) & 1, "SIGXFSZ is not ignored (SigIgn %x)" % ign)
    t.check("rc=3" in p.stdout, "SIG%s during start-up: want exit 3, got %s %s" % (sig, p.stdout.strip()[-40:],
                                                                                 p.stderr.strip()[-300:]))

# -- tiny tmpfs, read-only folder: in a private mount namespace ------------------------------
probe = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c",
                        "mkdir -p probe && mount -t tmpfs -o size=1m tmpfs probe"], cwd=W,
                       stderr=subprocess.DEVNULL)
if probe.returncode != 0:
    t.note("mounts are not allowed here: tmpfs and read-only cases skipped")
    t.finish()


def in_namespace(script, what):
    """Run a bash script in a private mount namespace: its mounts vanish with it; it
    prints lines 'rc=N', the stderr of layerswap goes to files named by the script."""
    p = L.run(["unshare", "-m", "--propagation", "private", "bash", "-c", script, "bash", t.bin], cwd=W)
    t.check(p.returncode == 0, "%s: the namespace script failed: %s" % (what, p.stderr.strip()[-500:]))
    return p.stdout


for fmt, extra in FORMATS.items():
    ex = " ".join(extra)
    o = "tmpfs-" + fmt
    # a 1 MiB tmpfs: refused up front with the numbers; then a bigger one: the same command
    # finishes; the same again with the check off: a write fails part-way (disk full)
    script = f"""set -u
mkdir -p {o} && mount -t tmpfs -o size=1m tmpfs {o}
"$1" merge c.json -o {o} {ex} 2>{o}.err1; echo "rc1=$?"
ls -A {o} | tr '\\n' ' '; echo
mount -o remount,size=64m {o}
"$1" merge c.json -o {o} {ex} --quiet 2>{o}.err2; echo "rc2=$?"
"$1" verify {o} >/dev/null 2>&1; echo "verify=$?"
cmp -s {o}/{BIG[fmt]} ref-{fmt}/{BIG[fmt]}; echo "same=$?"
umount {o} && mkdir -p {o} && mount -t tmpfs -o size=3m tmpfs {o}
LSW_NO_SPACE_CHECK=1 "$1" merge c.json -o {o} {ex} 2>{o}.err3; echo "rc3=$?"
ls -A {o} | grep -c lsw-tmp; mount -o remount,size=64m {o}
"$1" merge c.json -o {o} {ex} --quiet 2>{o}.err4; echo "rc4=$?"
cp -a {o} {o}-copy
"""
    out = in_namespace(script, "tmpfs " + fmt)
    err1 = open(o + ".err1").read() if os.path.exists(o + ".err1") else ""
    t.check("rc1=4" in out and "still has to write" in err1 and "free" in err1 and o in err1,
            "%s: 1 MiB tmpfs: want exit 4 with both numbers, got %s / %s" % (fmt, out.split("\n")[0], err1.strip()))
    t.check(out.split("\n")[1].strip() == "", "%s: 1 MiB tmpfs: files were written: %r" % (fmt, out.split("\n")[1]))
    t.check("rc2=0" in out and "verify=0" in out and "same=0" in out,
            "%s: after the tmpfs grew: %s (%s)" % (fmt, out.replace("\n", " "), open(o + ".err2").read().strip()[-300:]))
    err3 = open(o + ".err3").read() if os.path.exists(o + ".err3") else ""
    t.check("rc3=4" in out and ("No space left" in err3 or "no space" in err3.lower()),
            "%s: 3 MiB tmpfs without the check: want exit 4 (disk full), got %s / %s"
            % (fmt, out.replace("\n", " "), err3.strip()[-300:]))
    t.check("rc4=0" in out, "%s: rerun after a disk full part-way: %s" % (fmt, open(o + ".err4").read()[-300:]))
    if os.path.isdir(o + "-copy"):
        t.check(contents(o + "-copy") == REF[fmt], "%s: bytes after a disk full and a rerun differ" % fmt)
        t.verify(o + "-copy", "%s: after a disk full and a rerun" % fmt)
        no_temporaries(o + "-copy", "%s: after a disk full and a rerun" % fmt)

    # a read-only folder: exit 4 naming it; writable again: the same command finishes
    o = "ro-" + fmt
    os.makedirs(o, exist_ok=True)
    script = f"""set -u
mount --bind {o} {o} && mount -o remount,ro,bind {o}
"$1" merge c.json -o {o} {ex} 2>{o}.err1; echo "rc1=$?"
umount {o}
"""
    out = in_namespace(script, "read-only " + fmt)
    err1 = open(o + ".err1").read()
    t.check("rc1=4" in out and "Read-only file system" in err1 and o in err1,
            "%s: read-only folder: want exit 4 naming it, got %s / %s" % (fmt, out.strip(), err1.strip()))
    resumed(fmt, o, "%s: read-only folder made writable" % fmt)
t.finish()
