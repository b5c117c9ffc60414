/* cli_common — what every command line of the `layerswap` executable shares:
 * the one-line usage error and the parsers of the options several commands
 * take (--mem, --progress).  Part of the executable, not of the library. */
#ifndef CLI_COMMON_H
#define CLI_COMMON_H

#include <stdint.h>

/* Print (rank 0) "layerswap CMD: error: MSG; see 'layerswap CMD --help'
 * [usage error, exit 1]", MSG being printf(fmt, arg); returns the exit code
 * of a usage error. */
int lsw_cli_usage_error(int rank, const char *cmd, const char *fmt, const char *arg);

/* --mem SIZE: at least LSW_MIN_MEM (suffixes K M G T, KB MB GB TB).  0, or
 * the exit code of the usage error printed. */
int lsw_cli_mem(int rank, const char *cmd, const char *arg, uint64_t *mem);

/* --progress SECS: a positive number.  0, or the exit code of the usage
 * error printed. */
int lsw_cli_progress(int rank, const char *cmd, const char *arg, double *secs);

#endif
