/* lsw_stats — the `layerswap stats` command (docs/cli.md, docs/statistics.md; engine/STATS.md).
 *
 *   layerswap stats --base DIR EXPERT... [-o DIR] [--progress SECS] [--mem BYTES]
 *                   [--task NAME,...] [--language NAME,...] [--overwrite] [--quiet]
 *
 * Every rank opens every checkpoint and checks all headers before any data
 * is read.  Eligible tensors (lsw_mav_eligible) are spread over the ranks by
 * bytes (lsw_stats_assign); each rank reads its tensors' base rows once per
 * block together with the same rows of every expert (lsw_stats_rows) and
 * sends its row MAVs to rank 0, which computes the summary, the similarity
 * groups and the proposal (lsw_stats_summary) and writes the output folder
 * through lsw_commit: stats.h5, heatmap_<expert>.svg, summary.json,
 * report.html, proposed-layer-swap.json, then layerswap-manifest.json.
 * Row values depend only on the data and every sum has a fixed order, so
 * every output is byte-identical for any number of ranks.
 */
#ifndef LSW_STATS_H
#define LSW_STATS_H

/* Run `layerswap stats`: argv[0] is "stats".  Returns the process exit code
 * (docs/cli.md): 0 success or --help, 1 usage, 2 bad or mismatched input, 3
 * interrupted, 4 output error, 70 internal; the same on every rank.  Errors
 * are printed by rank 0 as "layerswap stats: error: DETAIL [message, exit N]".
 * MPI must be initialised.  Collective over MPI_COMM_WORLD. */
int lsw_stats_main(int argc, char **argv);

#endif
