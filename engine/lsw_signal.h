/* lsw_signal — stop signals and the limits that must not be signals.
 *
 * SIGINT, SIGTERM and SIGUSR1 set lsw_stop_signal; the executor and the
 * stats readers poll it between blocks and stop with LSW_E_INTERRUPTED
 * (exit 3: finished work is kept, the same command resumes).  SIGXFSZ is
 * ignored, so that a write beyond `ulimit -f` fails with EFBIG and becomes an
 * ordinary output error (exit 4, naming the file) instead of killing the run
 * with its temporaries left behind.
 */
#ifndef LSW_SIGNAL_H
#define LSW_SIGNAL_H

#include <signal.h>

/* Set by the stop-signal handlers (the signal's number); polled between blocks. */
extern volatile sig_atomic_t lsw_stop_signal;

/* Install the handlers and ignore SIGXFSZ.  Call it first thing in main(),
 * before MPI_Init, so that a signal during start-up is a stop (exit 3), not
 * death by signal; calling it again (after MPI_Init) is harmless. */
void lsw_install_stop_handlers(void);

/* 0, or LSW_E_INTERRUPTED with the one stop message when a stop signal has
 * arrived: every block loop (executor, stats) asks this between blocks. */
int lsw_stop_check(void);

#endif
