/* cli_stats — the command line of `layerswap stats`: argv → lsw_stats_opts,
 * usage text, error lines and exit codes.  Part of the `layerswap`
 * executable, not of the library (the library entry is lsw_stats_run). */
#ifndef CLI_STATS_H
#define CLI_STATS_H

/* Run `layerswap stats`: argv[0] is "stats".  Returns the process exit code
 * (docs/exit-codes.md): 0 success or --help, 1 usage, 2 bad or mismatched
 * input, 3 interrupted, 4 output error, 70 internal; the same on every rank.
 * Errors are printed once, by rank 0, as
 * "layerswap stats: error: DETAIL [message, exit N]".  MPI must be
 * initialised.  Collective over MPI_COMM_WORLD. */
int lsw_cli_stats(int argc, char **argv);

#endif
