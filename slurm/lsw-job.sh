# lsw-job.sh: the logic every layerswap batch template shares; sourced, not run.
#
#   . lsw-job.sh                      installs the signal traps, checks $LAYERSWAP
#   lsw_progress_args SUBCOMMAND      sets LSW_PROGRESS_ARGS=(--progress $PROGRESS) when
#                                     PROGRESS is set and the subcommand knows --progress
#   lsw_job_run SUBCOMMAND ARGS...    runs `layerswap SUBCOMMAND ARGS...` through the
#                                     launcher, forwards stop signals, requeues on exit 3,
#                                     and exits the batch script with the final code
#
# Settings (environment; sbatch passes the submitting shell's environment on):
#   LAYERSWAP   the layerswap binary (default: for installed templates, the binary of their
#               installation, named by lsw-install.sh next to this file; else `layerswap`
#               on PATH)
#   LAUNCHER    srun (default) | mpirun | none (one process, no launcher)
#   SRUN_ARGS   options for srun   (default: --mpi=pmix)
#   MPIRUN_ARGS options for mpirun (default: none; mpirun takes its slots from the allocation)
#   PROGRESS    seconds between progress lines in the job log (default 60; 0 or empty: none)
#   REQUEUE     1 (default): requeue the job when layerswap stops with exit 3 and the
#               batch shell got no TERM/INT (i.e. the stop was a USR1); 0: just exit 3.
#               The requeue is `scontrol requeue` run by the job itself: the site must let
#               users requeue their own jobs (JobRequeue or --requeue allowed, no
#               job_submit or QOS rule against it); where it does not, the log says so and
#               the job exits 3: submit it again to resume.
#   HDF5_PLUGIN_PATH  installed templates prepend their installation's plugin folder, so
#               h5dump or h5py run later in the same job read model.h5 outputs
#
# Signals.  `#SBATCH --signal=B:USR1@120` makes Slurm send USR1 to this batch shell
# (B: = the batch shell only, not the job steps) 120 s before the time limit.  bash runs
# a trap only between commands, so the launcher runs in the background and the shell
# sits in `wait`, which a trapped signal interrupts at once.  The trap sends USR1 to the
# launcher's PID: srun forwards USR1 to every task of its step (it turns TERM into a
# KILL, so TERM must not be forwarded to it), and mpirun forwards USR1 to every rank.
# Each layerswap rank stops at its next block, keeps the finished shards (journal
# .layerswap-state) and exits 3; the launcher exits 3; this script then runs
# `scontrol requeue` on its own job (array element: JOBID_TASKID) and exits 0.  The
# requeued job reruns the same command, which resumes, and ends with the same bytes.
# TERM or INT to the batch shell (scancel, or a site's preemption with CANCEL) also
# stops layerswap cleanly (USR1 is forwarded), but does not requeue: the exit code is
# passed through (3), and rerunning the job resumes.
# Why a local kill of the launcher rather than `scancel --signal=USR1 $SLURM_JOB_ID`
# (or `--signal=USR1@120` without B:, which signals the steps' processes directly):
# it needs no round trip through slurmctld and no step id; it is the same for srun and
# mpirun (mpirun forwards USR1 to its ranks, but its ranks are not a Slurm step of
# their own: on one node they live in the batch step, which signals to the steps never
# reach, on several nodes the step holds Open MPI's daemons, not layerswap); and the
# batch shell knows that a stop was asked for, so an exit 3 is requeued and a cancel
# is not.

# An installed copy (share/layerswap/slurm) has lsw-install.sh next to it, written by
# `cmake --install`: LSW_INSTALL_BIN and LSW_INSTALL_PLUGIN_DIR of that installation.
LSW_INSTALL_BIN="" LSW_INSTALL_PLUGIN_DIR=""
if [ -f "${LSW_SLURM_DIR:-.}/lsw-install.sh" ]; then
  . "${LSW_SLURM_DIR:-.}/lsw-install.sh"
fi
if [ -z "${LAYERSWAP:-}" ] && [ -n "$LSW_INSTALL_BIN" ] && [ -x "$LSW_INSTALL_BIN" ]; then
  LAYERSWAP=$LSW_INSTALL_BIN
fi
if [ -n "$LSW_INSTALL_PLUGIN_DIR" ] && [ -d "$LSW_INSTALL_PLUGIN_DIR" ]; then
  case ":${HDF5_PLUGIN_PATH:-}:" in
    *":$LSW_INSTALL_PLUGIN_DIR:"*) ;;
    *) export HDF5_PLUGIN_PATH=$LSW_INSTALL_PLUGIN_DIR${HDF5_PLUGIN_PATH:+:$HDF5_PLUGIN_PATH} ;;
  esac
fi
LAYERSWAP=${LAYERSWAP:-layerswap}
LAUNCHER=${LAUNCHER:-srun}
SRUN_ARGS=${SRUN_ARGS---mpi=pmix}
MPIRUN_ARGS=${MPIRUN_ARGS:-}
PROGRESS=${PROGRESS-60}
REQUEUE=${REQUEUE:-1}
LSW_STOP=""        # the stop signal this shell received (USR1, TERM, INT), if any
LSW_CHILD=""       # PID of the launcher while it runs
LSW_PROGRESS_ARGS=()

lsw_log() { echo "lsw-job: $(date '+%F %T') $*"; }

lsw__on_signal() {
  LSW_STOP=$1
  if [ -n "$LSW_CHILD" ]; then
    lsw_log "got SIG$1: sending USR1 to $LAUNCHER (PID $LSW_CHILD): layerswap stops at its next block"
    kill -USR1 "$LSW_CHILD" 2>/dev/null || true
  else
    lsw_log "got SIG$1 before layerswap started"
  fi
}
trap 'lsw__on_signal USR1' USR1
trap 'lsw__on_signal TERM' TERM
trap 'lsw__on_signal INT' INT

# The id that `scontrol requeue` takes for this job or array element.
lsw_job_id() {
  if [ -n "${SLURM_ARRAY_JOB_ID:-}" ] && [ -n "${SLURM_ARRAY_TASK_ID:-}" ]; then
    echo "${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}"
  else
    echo "${SLURM_JOB_ID:-}"
  fi
}

lsw__requeue() {
  local id
  id=$(lsw_job_id)
  if [ "$REQUEUE" != 1 ] || [ -z "$id" ]; then
    lsw_log "interrupted (exit 3); resubmit the same job to resume"
    exit 3
  fi
  # The requeue ends this run of the job: Slurm may signal this shell right away.
  trap '' USR1 TERM INT
  if scontrol requeue "$id"; then
    lsw_log "requeued job $id; the next run resumes from the finished shards"
    exit 0
  fi
  lsw_log "'scontrol requeue $id' failed (does this site let users requeue their jobs?);" \
          "resubmit the same job to resume, or set REQUEUE=0"
  exit 3
}

lsw_progress_args() {
  LSW_PROGRESS_ARGS=()
  case "$PROGRESS" in ""|0) return 0 ;; esac
  case "$1" in
    merge|stats) ;;   # documented to take --progress
    *) "$LAYERSWAP" "$1" --help 2>/dev/null | grep -q -- '--progress' || return 0 ;;
  esac
  LSW_PROGRESS_ARGS=(--progress "$PROGRESS")
}

lsw_job_run() {
  local -a cmd
  case "$LAUNCHER" in
    srun)   cmd=(srun $SRUN_ARGS) ;;      # unquoted on purpose: a list of options
    mpirun) cmd=(mpirun $MPIRUN_ARGS) ;;
    none)   cmd=() ;;
    *) lsw_log "error: LAUNCHER='$LAUNCHER', expected srun, mpirun or none"; exit 1 ;;
  esac
  cmd+=("$LAYERSWAP" "$@")
  lsw_log "job $(lsw_job_id) run $(( ${SLURM_RESTART_COUNT:-0} + 1 )) on ${SLURM_JOB_NODELIST:-?}" \
          "(${SLURM_NTASKS:-?} tasks): ${cmd[*]}"
  [ -n "${HDF5_PLUGIN_PATH:-}" ] && lsw_log "HDF5_PLUGIN_PATH=$HDF5_PLUGIN_PATH"
  if [ -n "$LSW_STOP" ]; then
    # stopped before anything ran: same outcome as a stopped merge
    [ "$LSW_STOP" = USR1 ] && lsw__requeue
    exit 3
  fi
  "${cmd[@]}" &
  LSW_CHILD=$!
  local rc
  while :; do
    wait "$LSW_CHILD"
    rc=$?
    # >128 with the child still there (or a zombie): wait was cut short by a trap
    if [ $rc -gt 128 ] && kill -0 "$LSW_CHILD" 2>/dev/null; then continue; fi
    break
  done
  LSW_CHILD=""
  lsw_log "layerswap $1 exited with $rc${LSW_STOP:+ (after SIG$LSW_STOP)}"
  if [ $rc -eq 3 ] && [ "$LSW_STOP" != TERM ] && [ "$LSW_STOP" != INT ]; then
    lsw__requeue
  fi
  exit $rc
}

command -v "$LAYERSWAP" >/dev/null 2>&1 || {
  lsw_log "error: layerswap binary '$LAYERSWAP' not found: set LAYERSWAP=/path/to/layerswap (or load its module)"
  exit 1
}
