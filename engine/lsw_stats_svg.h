/* lsw_stats_svg — the heatmaps and the HTML report of `layerswap stats`.
 *
 * Heatmap (the paper's Figure 2): one <rect class="cell"> per layer × tensor
 * type (layer 0 at the bottom, types across in the summary's column order),
 * with data-layer, data-type and, when the cell has rows, data-mean
 * attributes; coloured by the cell's mean row MAV on a viridis scale
 * (piecewise linear between 8 anchors) from vmin to vmax; axis labels, a
 * title with the expert's name and model MAV, a colour bar with its min and
 * max.  Cells of a type a layer lacks are light grey.
 *
 * The report is one self-contained HTML file (no scripts, no external
 * resources): every heatmap inline on one shared colour scale, the
 * similarity matrix, the groups, the proposal and per-expert tables.
 */
#ifndef LSW_STATS_SVG_H
#define LSW_STATS_SVG_H

#include <stddef.h>

#include "lsw_stats_summary.h"
#include "lsw_strbuf.h"

/* "#rrggbb" of the colour map at t in [0, 1] (clamped; NaN: 0). */
void lsw_stats_colormap(double t, char hex[8]);

/* Min and max of the layer cells' means of expert e, or of all experts when
 * e == (size_t)-1.  Both 0 when there is no cell. */
void lsw_stats_svg_range(const lsw_stats_summary *s, size_t e, double *vmin, double *vmax);

/* The heatmap of expert e on the scale [vmin, vmax].  `id` prefixes the
 * SVG's element ids (unique within an HTML page); `standalone` adds the XML
 * declaration for a .svg file. */
void lsw_stats_svg_heatmap(const lsw_stats_summary *s, size_t e, double vmin, double vmax, const char *id,
                           int standalone, lsw_strbuf *out);

/* report.html. */
void lsw_stats_report_html(const lsw_stats_summary *s, lsw_strbuf *out);

#endif
