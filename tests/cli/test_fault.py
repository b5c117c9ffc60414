#!/usr/bin/python3
"""Disk full in the middle of a merge, then resume (docs/cli.md exit 4, §5 atomic output).

    test_fault.py --bin B --work W --after BYTES | --after shards+K

Merge tests/configs/shard-size-small.json (200KB shards, 5 shards) once without faults
(W/ref), then with LSW_FAULT_WRITE_AFTER=BYTES into W/out ("shards+K": the total size of
the reference's shards plus K, i.e. a failure after the last shard, while the side files,
the index or the manifest are written).  Checks:
  * exit 4 with one error line "layerswap merge: error: ... [..., exit 4]";
  * no layerswap-manifest.json; every file under a final name is complete: every
    model-*.safetensors passes `layerswap inspect` and is byte-identical to the reference's,
    and so is any other file (index, config.json, tokenizer files);
  * a second faulty run on the partial folder fails the same way or completes (never
    anything else) -- the same guarantees hold after it;
  * the rerun without the fault exits 0; the folder then holds exactly the reference's
    files (hidden ones too), byte-identical except the manifest, whose "files" list equals
    the reference's; `layerswap verify` exits 0 and the oracle agrees.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lswtest as L  # noqa: E402


def extra(ap):
    ap.add_argument("--after", required=True)


t = L.Test(__doc__, extra)
W = t.work
cfg = os.path.join(L.CONFIGS, "shard-size-small.json")
ref, out = os.path.join(W, "ref"), os.path.join(W, "out")

p = t.ls("merge", cfg, "-o", ref)
if not t.expect_rc(p, 0, "reference merge"):
    t.finish()
ref_files = L.all_files(ref)
shards = [f for f in ref_files if f.startswith("model-") and f.endswith(".safetensors")]
t.check(len(shards) >= 3, "the reference has %d shards, expected several" % len(shards))
if t.args.after.startswith("shards+"):
    after = sum(os.path.getsize(os.path.join(ref, f)) for f in shards) + int(t.args.after[7:])
else:
    after = int(t.args.after)
print("LSW_FAULT_WRITE_AFTER=%d (the reference's shards total %d bytes)"
      % (after, sum(os.path.getsize(os.path.join(ref, f)) for f in shards)))


def check_partial(what):
    files = L.all_files(out)
    print("%s: the folder holds %r" % (what, files))
    t.check("layerswap-manifest.json" not in files, "%s: layerswap-manifest.json exists" % what)
    for f in files:
        if os.path.basename(f).startswith("."):
            continue            # temporary names and the journal
        fp = os.path.join(out, f)
        if f.startswith("model") and f.endswith(".safetensors"):
            q = t.ls("inspect", fp, show=False)
            t.check(q.returncode == 0, "%s: %s under its final name is not a valid safetensors "
                    "file: %s" % (what, f, q.stderr.strip()))
        t.check(f in ref_files and L.same_bytes(fp, os.path.join(ref, f)),
                "%s: %s under its final name is not identical to the complete run's" % (what, f))
    return files


env = {"LSW_FAULT_WRITE_AFTER": str(after)}
p = t.ls("merge", cfg, "-o", out, env=env)
t.expect_rc(p, 4, "merge with LSW_FAULT_WRITE_AFTER=%d" % after)
if p.returncode == 4:
    t.check_error_line(p, "merge", 4, "disk-full merge")
check_partial("after the disk-full run")

# the same fault again, now resuming from the partial folder
p = t.ls("merge", cfg, "-o", out, env=env)
t.check(p.returncode in (0, 4), "second faulty run: exit %d, expected 4 (or 0 if the remaining "
        "writes fit); stderr: %s" % (p.returncode, p.stderr.strip()))
if p.returncode == 4:
    check_partial("after the second disk-full run")

# resume without the fault
p = t.ls("merge", cfg, "-o", out)
t.expect_rc(p, 0, "rerun without the fault")
files = L.all_files(out)
t.check(files == ref_files, "after the resume the folder holds %r, the uninterrupted run %r"
        % (files, ref_files))
for f in ref_files:
    if f == "layerswap-manifest.json":
        continue
    t.check(L.same_bytes(os.path.join(out, f), os.path.join(ref, f)),
            "%s differs from the uninterrupted run's" % f)
mp = os.path.join(out, "layerswap-manifest.json")
if t.check(os.path.isfile(mp), "no manifest after the resume"):
    t.check(L.load_json(mp).get("files") == L.load_json(os.path.join(ref, "layerswap-manifest.json")).get("files"),
            "the manifest's \"files\" list differs from the uninterrupted run's")
t.verify(out, "resumed output")
t.oracle(cfg, out, "resumed output")
t.finish()
