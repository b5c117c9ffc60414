#!/usr/bin/env bash
# check_installed_slurm.sh PREFIX STATE_DIR WORK_DIR
# The installed Slurm template, submitted with sbatch to the private one-node cluster
# (ctest fixture "slurm", tests/slurm/slurm-up.sh STATE_DIR) as a user of an installed
# layerswap would: no LAYERSWAP, no layerswap on PATH, no edits.  The 2-task job runs
# PREFIX/bin/layerswap under srun --mpi=pmix, puts PREFIX's HDF5 plugin on
# HDF5_PLUGIN_PATH, and writes a model.h5 byte-identical to one process outside Slurm
# (and which h5dump reads through that plugin).
# Exit 0 pass, 1 fail.
set -uo pipefail
[ $# -eq 3 ] || { echo "usage: $0 PREFIX STATE_DIR WORK_DIR" >&2; exit 1; }
P=$1 state=$2 work=$3
here=$(cd "$(dirname "$0")" && pwd)
fx=$(cd "$here/../data/llama-bf16-sharded" && pwd)
fail=0
bad() { echo "FAIL: $*"; fail=1; }
[ -x "$P/bin/layerswap" ] || { echo "FAIL: no installation in $P (fixture install_prefix)"; exit 1; }
export SLURM_CONF=$state/slurm.conf
[ -f "$SLURM_CONF" ] || { echo "FAIL: no $SLURM_CONF: the fixture slurm_up did not run or failed"; exit 1; }
timeout 10 sinfo -h -o %t >/dev/null 2>&1 || { echo "FAIL: sinfo does not answer"; exit 1; }
rm -rf "$work" && mkdir -p "$work" && cd "$work" || exit 1
cat > merge.json <<JSON
{"models": {"base": "$fx/base", "math": "$fx/math2", "lang": "$fx/lang1"}, "base": "base", "method": "layer_swap",
 "layer_swap": {"task_expert": "math", "language_expert": "lang", "bottom": 2, "top": 2, "lower_transition": 1,
   "upper_transition": 1},
 "output": {"path": "unused", "format": "hdf5"}}
JSON
"$P/bin/layerswap" merge merge.json -o ref --quiet || bad "reference merge (one process, outside Slurm) failed"
# sbatch passes this environment on: PATH without any layerswap, no LAYERSWAP, no LSW_SLURM_DIR
env -u LAYERSWAP -u LSW_SLURM_DIR -u HDF5_PLUGIN_PATH PATH=/usr/bin:/bin \
  sbatch --wait --ntasks=2 --job-name=lsw-installed --output="$work/%x_%j.out" \
         "$P/share/layerswap/slurm/merge.sbatch" merge.json -o "$work/out" --mem 1M > sbatch.txt 2>&1
rc=$?
log=$(ls "$work"/lsw-installed_*.out 2>/dev/null | head -n1)
echo "----- $log"; cat "$log" 2>/dev/null; echo "-----"
[ $rc -eq 0 ] || bad "sbatch --wait exited with $rc: $(cat sbatch.txt)"
grep -q "srun --mpi=pmix $P/bin/layerswap merge merge.json" "$log" || bad "the job did not run $P/bin/layerswap under srun --mpi=pmix"
grep -q "HDF5_PLUGIN_PATH=$P/lib/hdf5/plugins\$" "$log" || bad "the job did not put $P/lib/hdf5/plugins on HDF5_PLUGIN_PATH"
grep -q 'on 2 rank(s)' "$log" || bad "the merge did not run on 2 ranks"
cmp -s ref/model.h5 out/model.h5 || bad "out/model.h5 differs from the one-process reference"
"$P/bin/layerswap" verify out >/dev/null || bad "layerswap verify out failed"
# h5dump through the plugin, with the environment a job of the installed template gets
HDF5_PLUGIN_PATH=$P/lib/hdf5/plugins h5dump -d /tensors/model.norm.weight out/model.h5 | grep -qE '^ *\(0\): [0-9.-]+' \
  || bad "h5dump with the installed plugin printed no data"
[ $fail -eq 0 ] && echo ok
exit $fail
