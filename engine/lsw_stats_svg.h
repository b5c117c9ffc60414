/* lsw_stats_svg — the heatmaps and the HTML report of `layerswap stats`
 * (docs/statistics.md, "Pictures").
 *
 * Heatmap (the paper's Figure 2): one <rect class="cell"> per layer × tensor
 * type (layer 0 at the bottom, types across in the summary's column order),
 * with data-layer, data-type and, when the cell has rows, data-mean (or
 * data-share) attributes; coloured on a viridis scale (piecewise linear
 * between 8 anchors), linear or log10; cells whose every row is exactly
 * unchanged carry data-unchanged="1" and a white ×; a type a layer lacks is a
 * light grey cell.  Around it: a title that never runs off the picture (the
 * expert's name wrapped over up to three lines, shortened in the middle
 * beyond that, the full name in a <title> tooltip), a caption that says what
 * the colours show and which scale (own range or shared by all experts,
 * linear or log), axis labels, and a colour bar with ticks and its min and
 * max.  Sizes follow the content (long type names, many layers).
 *
 * The report is one self-contained HTML file (no scripts, no external
 * resources): every expert's MAV heatmap, then every expert's module-share
 * heatmap (each tensor type's share of the layer's relative change
 * ‖Δ‖/‖W_base‖), the experts' model MAVs, the similarity matrix and groups,
 * the proposal with its per-layer reasoning, and per-expert tables.
 */
#ifndef LSW_STATS_SVG_H
#define LSW_STATS_SVG_H

#include <stddef.h>

#include "lsw_stats_summary.h"
#include "lsw_strbuf.h"

/* How the pictures are coloured. */
typedef struct lsw_stats_picture {
    int shared;   /* 1: one scale over every expert; 0: each expert its own range */
    int log;      /* 1: log10 of the cell mean (row MAV heatmaps) */
} lsw_stats_picture;

/* What a heatmap shows. */
typedef enum lsw_stats_metric { LSW_STATS_MAV, LSW_STATS_SHARE } lsw_stats_metric;

/* "#rrggbb" of the colour map at t in [0, 1] (clamped; NaN: 0). */
void lsw_stats_colormap(double t, char hex[8]);

/* Smallest and largest value of `metric` over the layer cells of expert e,
 * or of all experts when e == (size_t)-1; with `positive`, over the values
 * above 0 only (a log scale).  Both 0 when there is none. */
void lsw_stats_svg_range(const lsw_stats_summary *s, size_t e, lsw_stats_metric metric, int positive, double *vmin,
                         double *vmax);

/* Tick values of a colour bar over [lo, hi] (linear: 1, 2, 2.5 or 5 × 10^k
 * steps; log: decades, with 2 and 5 between them over less than two
 * decades), ascending, at most `max` of them.  Returns how many. */
size_t lsw_stats_ticks(double lo, double hi, int log, double *ticks, size_t max);

/* heatmap_<expert>.svg: the MAV heatmap of expert e as a standalone file. */
void lsw_stats_svg_file(const lsw_stats_summary *s, size_t e, const lsw_stats_picture *pic, lsw_strbuf *out);

/* report.html. */
void lsw_stats_report_html(const lsw_stats_summary *s, const lsw_stats_picture *pic, lsw_strbuf *out);

#endif
