/* lsw_h5probe — open a model.h5 in a child process before this one does.
 *
 * HDF5 1.10 has crash bugs on damaged files: a corrupt dense group makes
 * H5Literate free pointers it never initialised (found by fuzzing; the crash
 * depends on what the heap held).  A layerswap process must answer a bad
 * input with exit 2, on every rank, not die with SIGSEGV.  So before
 * lsw_checkpoint opens a model.h5, the probe runs this same executable as
 * `layerswap __h5probe PATH` (no MPI), which opens the file exactly as a
 * merge would, with MALLOC_PERTURB_ set so that uninitialised heap memory is
 * never zero and such a bug crashes there, deterministically.  Only a probe
 * that exits 0 lets this process open the file.
 */
#ifndef LSW_H5PROBE_H
#define LSW_H5PROBE_H

/* The child: open PATH as lsw_ckpt_open would (every header and dataset
 * checked), print the error detail on stderr if any.  Returns the exit code
 * (0, or that of the error). */
int lsw_h5probe_child(const char *path);

/* The parent (an lsw_h5_probe_fn): 0 if the child opened PATH; else the
 * child's error (LSW_E_INPUT or LSW_E_IO, with its message), or LSW_E_INPUT
 * naming how it crashed (a signal, or any other exit code).  If the child
 * cannot be started at all, 0 (the file is then opened unprobed). */
int lsw_h5probe_run(const char *path);

#endif
