/* lsw_lock — one owner per output folder.
 *
 * The lock file DIR/.layerswap-lock, text, written whole under a temporary
 * name and linked (or renamed) into place, so that it is never seen half
 * written:
 *     layerswap-lock 1
 *     host <host name>
 *     pid <process id>
 *     start <the process's start time, clock ticks since boot (/proc/PID/stat field 22)>
 *     slurm <SLURM_JOB_ID or ->.<SLURM_STEP_ID or ->
 *     command <merge, sweep, stats, synth, ...>
 *     since <Unix time the lock was taken>
 *     beat <10 digits>
 * The holder keeps an flock(LOCK_EX) on the file for as long as it holds the
 * lock, rewrites the `beat` counter (the last line, fixed width) and
 * fdatasyncs it every LSW_LOCK_BEAT_S seconds from a background thread, and
 * removes the file when it lets go (explicitly or at process exit).
 *
 * Taking the lock (rank 0 only under MPI; every call is local):
 *  - no lock file: create one (link(2) of the finished temporary: atomic
 *    also over NFS);
 *  - a lock file whose flock is held: a live holder; LSW_E_LOCKED naming it;
 *  - a lock file whose flock could be taken (or where flock is not
 *    supported): its holder is gone if it ran on this host (where an flock
 *    that could be taken proves it; without flock, its process -- pid and
 *    start time, not a zombie -- no longer exists); if it ran on another host, its
 *    beat is watched for LSW_LOCK_WAIT_S seconds: a beat that moves is a live
 *    holder on a file system whose flock is not coherent across hosts (NFS
 *    mounted without lock support), LSW_E_LOCKED; a beat that stands still
 *    is a holder that died with its node, and the lock is taken over.
 *
 * Test hooks (tests only, like lsw_io's LSW_FAULT_*): LSW_LOCK_HOST=NAME
 * replaces the host name; LSW_LOCK_NO_FLOCK=1 never calls flock (a file
 * system whose flock does not reach other hosts).
 */
#ifndef LSW_LOCK_H
#define LSW_LOCK_H

#define LSW_LOCK_NAME ".layerswap-lock"
#define LSW_LOCK_BEAT_S 1
#define LSW_LOCK_WAIT_S 10

/* Take the lock of output folder `dir` for this process, creating the folder
 * (mkdir -p) if missing, and hold it until lsw_lock_release_all() or the
 * process exits (an atexit handler releases it; a killed process's flock
 * goes with it and its lock file is taken over by the next run).  Taking a
 * folder this process already holds is a no-op.  `command` is recorded for
 * the message a second run prints.  Errors: LSW_E_LOCKED (held by another
 * run: the message names its host, pid, Slurm job and step, command and
 * start), LSW_E_IO (the lock file cannot be written), LSW_E_NOMEM.
 * Not collective: under MPI, rank 0 calls it. */
int lsw_lock_dir(const char *dir, const char *command);

/* 1 if this process holds the lock of `dir`. */
int lsw_lock_held(const char *dir);

/* Release every lock this process holds (remove the lock files, drop the
 * flocks, stop the beat).  Safe to call more than once. */
void lsw_lock_release_all(void);

/* The command name lsw_outdir_open records when it takes the lock itself
 * ("merge", "stats", ...); set once by the front end.  Default "layerswap". */
void lsw_lock_set_command(const char *command);
const char *lsw_lock_command(void);

#endif
