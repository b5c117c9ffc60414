#include "lsw_stats_svg.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

/* viridis at 0, 1/7, ..., 1 */
static const unsigned char anchors[8][3] = {{0x44, 0x01, 0x54}, {0x46, 0x32, 0x7e}, {0x36, 0x5c, 0x8d},
                                            {0x27, 0x7f, 0x8e}, {0x1f, 0xa1, 0x87}, {0x4a, 0xc1, 0x6d},
                                            {0xa0, 0xda, 0x39}, {0xfd, 0xe7, 0x25}};

void lsw_stats_colormap(double t, char hex[8])
{
    if (!(t > 0))
        t = 0;
    if (t > 1)
        t = 1;
    double x = t * 7;
    int i = (int)x;
    if (i > 6)
        i = 6;
    double f = x - i;
    int c[3];
    for (int k = 0; k < 3; k++)
        c[k] = (int)lround(anchors[i][k] + (anchors[i + 1][k] - anchors[i][k]) * f);
    snprintf(hex, 8, "#%02x%02x%02x", c[0], c[1], c[2]);
}

/* XML / HTML text and attribute escaping */
static void esc(lsw_strbuf *b, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '&': lsw_sb_str(b, "&amp;"); break;
        case '<': lsw_sb_str(b, "&lt;"); break;
        case '>': lsw_sb_str(b, "&gt;"); break;
        case '"': lsw_sb_str(b, "&quot;"); break;
        case '\'': lsw_sb_str(b, "&#39;"); break;
        default:
            if ((unsigned char)*s < 0x20)
                lsw_sb_str(b, " "); /* control characters are not XML */
            else
                lsw_sb_put(b, s, 1);
        }
    }
}

static void fmt(char *buf, size_t n, double v)
{
    if (isfinite(v))
        snprintf(buf, n, "%.4g", v);
    else
        snprintf(buf, n, "%s", isnan(v) ? "nan" : v > 0 ? "inf" : "-inf");
}

void lsw_stats_svg_range(const lsw_stats_summary *s, size_t e, double *vmin, double *vmax)
{
    int any = 0;
    *vmin = *vmax = 0;
    size_t n = (size_t)s->layers * s->ntypes;
    for (size_t x = 0; x < s->nexperts; x++) {
        if (e != (size_t)-1 && x != e)
            continue;
        for (size_t c = 0; c < n; c++) {
            const lsw_stats_cell *cell = &s->experts[x].grid[c];
            if (!cell->rows || !isfinite(cell->mean))
                continue;
            if (!any || cell->mean < *vmin)
                *vmin = cell->mean;
            if (!any || cell->mean > *vmax)
                *vmax = cell->mean;
            any = 1;
        }
    }
}

#define CW 40   /* cell width */
#define ML 64   /* left margin: layer labels and axis title */
#define MT 50   /* top margin: title */
#define MB 140  /* bottom margin: rotated type labels and the axis title */

void lsw_stats_svg_heatmap(const lsw_stats_summary *s, size_t e, double vmin, double vmax, const char *id,
                           int standalone, lsw_strbuf *b)
{
    const lsw_stats_expert *x = &s->experts[e];
    int L = s->layers, nt = (int)s->ntypes;
    int ch = L > 0 ? 480 / L : 22;
    ch = ch < 4 ? 4 : ch > 22 ? 22 : ch;
    int gw = nt * CW, gh = L * ch;
    int bh = gh < 120 ? 120 : gh; /* colour bar height */
    int cx = ML + gw + 28;        /* colour bar x */
    int W = cx + 16 + 110, H = MT + (gh + MB > bh + 20 ? gh + MB : bh + 20);
    char v[32], w[32], col[8];
    if (standalone)
        lsw_sb_str(b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    lsw_sb_printf(b,
                  "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
                  "font-family=\"sans-serif\" class=\"heatmap\" data-expert=\"",
                  W, H, W, H);
    esc(b, x->name);
    lsw_sb_printf(b, "\" data-layers=\"%d\" data-types=\"%d\">\n", L, nt);
    fmt(v, sizeof v, x->model_mav);
    lsw_sb_str(b, "<title>");
    esc(b, x->name);
    lsw_sb_printf(b, ": mean row MAV per layer and tensor type</title>\n");
    /* colour bar gradient: bottom = vmin, top = vmax */
    lsw_sb_str(b, "<defs><linearGradient id=\"");
    esc(b, id);
    lsw_sb_str(b, "-cbar\" x1=\"0\" y1=\"1\" x2=\"0\" y2=\"0\">");
    for (int k = 0; k < 8; k++) {
        lsw_stats_colormap(k / 7.0, col);
        lsw_sb_printf(b, "<stop offset=\"%.6g\" stop-color=\"%s\"/>", k / 7.0, col);
    }
    lsw_sb_str(b, "</linearGradient></defs>\n");
    /* title */
    lsw_sb_printf(b, "<text x=\"%d\" y=\"20\" font-size=\"14\" font-weight=\"bold\" class=\"title\">", ML);
    esc(b, x->name);
    lsw_sb_printf(b, " \xe2\x80\x94 model MAV %s</text>\n", v);
    lsw_sb_printf(b, "<text x=\"%d\" y=\"38\" font-size=\"11\">mean row MAV vs base, per layer \xc3\x97 tensor type</text>\n",
                  ML);
    /* cells */
    double span = vmax - vmin;
    lsw_sb_str(b, "<g class=\"cells\">\n");
    for (int l = 0; l < L; l++) {
        for (int k = 0; k < nt; k++) {
            const lsw_stats_cell *c = &x->grid[(size_t)l * s->ntypes + (size_t)k];
            int px = ML + k * CW, py = MT + (L - 1 - l) * ch;
            lsw_sb_printf(b, "<rect class=\"cell\" x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" data-layer=\"%d\" data-type=\"",
                          px, py, CW, ch, l);
            esc(b, s->types[k]);
            if (c->rows) {
                lsw_stats_colormap(span > 0 ? (c->mean - vmin) / span : 0.5, col);
                fmt(w, sizeof w, c->mean);
                lsw_sb_printf(b, "\" data-mean=\"%.17g\" fill=\"%s\"><title>layer %d, ", c->mean, col, l);
                esc(b, s->types[k]);
                lsw_sb_printf(b, ": mean %s", w);
                fmt(w, sizeof w, c->max);
                lsw_sb_printf(b, ", max %s", w);
                fmt(w, sizeof w, c->p50);
                lsw_sb_printf(b, ", p50 %s, unchanged rows %.3g%%</title></rect>\n", w, 100 * c->unchanged);
            } else {
                lsw_sb_printf(b, "\" fill=\"#e4e4e4\"><title>layer %d, ", l);
                esc(b, s->types[k]);
                lsw_sb_str(b, ": no tensor</title></rect>\n");
            }
        }
    }
    lsw_sb_str(b, "</g>\n");
    lsw_sb_printf(b, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"#444\" stroke-width=\"0.5\"/>\n",
                  ML, MT, gw, gh);
    /* layer labels: every k-th layer so that labels are ≥ 12 px apart */
    int every = (12 + ch - 1) / ch;
    lsw_sb_str(b, "<g class=\"layer-labels\" font-size=\"10\" text-anchor=\"end\">\n");
    for (int l = 0; l < L; l += every)
        lsw_sb_printf(b, "<text x=\"%d\" y=\"%d\">%d</text>\n", ML - 5, MT + (L - 1 - l) * ch + ch / 2 + 4, l);
    lsw_sb_str(b, "</g>\n");
    lsw_sb_printf(b, "<text class=\"axis\" font-size=\"12\" text-anchor=\"middle\" transform=\"translate(16,%d) rotate(-90)\">layer</text>\n",
                  MT + gh / 2);
    /* type labels, rotated */
    lsw_sb_str(b, "<g class=\"type-labels\" font-size=\"10\" text-anchor=\"end\">\n");
    for (int k = 0; k < nt; k++) {
        int tx = ML + k * CW + CW / 2 + 3, ty = MT + gh + 8;
        lsw_sb_printf(b, "<text transform=\"translate(%d,%d) rotate(-50)\">", tx, ty);
        esc(b, s->types[k]);
        lsw_sb_str(b, "</text>\n");
    }
    lsw_sb_str(b, "</g>\n");
    lsw_sb_printf(b, "<text class=\"axis\" font-size=\"12\" text-anchor=\"middle\" x=\"%d\" y=\"%d\">tensor type</text>\n",
                  ML + gw / 2, MT + gh + MB - 12);
    /* colour bar */
    lsw_sb_printf(b, "<rect class=\"colorbar\" x=\"%d\" y=\"%d\" width=\"16\" height=\"%d\" fill=\"url(#", cx, MT, bh);
    esc(b, id);
    lsw_sb_str(b, "-cbar)\" stroke=\"#444\" stroke-width=\"0.5\"/>\n");
    fmt(v, sizeof v, vmax);
    fmt(w, sizeof w, vmin);
    lsw_sb_printf(b, "<text class=\"cbar-max\" x=\"%d\" y=\"%d\" font-size=\"10\">max %s</text>\n", cx + 20, MT + 9, v);
    lsw_sb_printf(b, "<text class=\"cbar-min\" x=\"%d\" y=\"%d\" font-size=\"10\">min %s</text>\n", cx + 20, MT + bh, w);
    lsw_sb_printf(b, "<text font-size=\"10\" text-anchor=\"middle\" transform=\"translate(%d,%d) rotate(-90)\">mean row MAV</text>\n",
                  cx - 6, MT + bh / 2);
    lsw_sb_str(b, "</svg>\n");
}

/* ------------------------------------------------------------------ report */

static void corr_colour(double r, char hex[8])
{
    /* white at 0, red towards +1, blue towards −1 */
    if (!isfinite(r))
        r = 0;
    r = r > 1 ? 1 : r < -1 ? -1 : r;
    int hi = 255, lo = (int)lround(255 * (1 - fabs(r) * 0.7));
    if (r >= 0)
        snprintf(hex, 8, "#%02x%02x%02x", hi, lo, lo);
    else
        snprintf(hex, 8, "#%02x%02x%02x", lo, lo, hi);
}

static void names_html(lsw_strbuf *b, const lsw_stats_summary *s, const size_t *idx, size_t n)
{
    for (size_t k = 0; k < n; k++) {
        if (k)
            lsw_sb_str(b, ", ");
        lsw_sb_str(b, "<b>");
        esc(b, s->experts[idx[k]].name);
        lsw_sb_str(b, "</b>");
    }
}

void lsw_stats_report_html(const lsw_stats_summary *s, lsw_strbuf *b)
{
    size_t E = s->nexperts, L = (size_t)s->layers;
    double vmin, vmax;
    char v[32], w[32], col[8];
    lsw_stats_svg_range(s, (size_t)-1, &vmin, &vmax);
    lsw_sb_str(b, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
                  "<title>layerswap stats</title>\n<style>\n"
                  "body{font-family:sans-serif;margin:1.5em;color:#222}\n"
                  ".maps{display:flex;flex-wrap:wrap;gap:12px;align-items:flex-start}\n"
                  "table{border-collapse:collapse;margin:0.5em 0 1.2em 0}\n"
                  "td,th{border:1px solid #ccc;padding:2px 6px;font-size:12px;text-align:right}\n"
                  "th{background:#f2f2f2}\ntd.l,th.l{text-align:left}\n"
                  "code{background:#f4f4f4;padding:0 3px}\n</style>\n</head>\n<body>\n");
    lsw_sb_str(b, "<h1>layerswap stats</h1>\n<p>Base <code>");
    esc(b, s->base_path);
    lsw_sb_printf(b, "</code>: %d layers, %llu tensors of %llu rows compared per expert; %zu expert(s).</p>\n",
                  s->layers, (unsigned long long)s->tensors, (unsigned long long)s->rows, E);
    /* heatmaps on one scale */
    fmt(v, sizeof v, vmin);
    fmt(w, sizeof w, vmax);
    lsw_sb_printf(b, "<h2>Mean row MAV per layer and tensor type</h2>\n<p>All heatmaps share one colour scale, "
                     "%s to %s (layer 0 at the bottom).</p>\n<div class=\"maps\">\n", v, w);
    for (size_t e = 0; e < E; e++) {
        char id[32];
        snprintf(id, sizeof id, "hm%zu", e);
        lsw_stats_svg_heatmap(s, e, vmin, vmax, id, 0, b);
    }
    lsw_sb_str(b, "</div>\n");
    /* model MAVs */
    lsw_sb_str(b, "<h2>Experts</h2>\n<table>\n<tr><th class=\"l\">expert</th><th class=\"l\">path</th>"
                  "<th>model MAV</th><th>rows</th><th>language score &#955;</th></tr>\n");
    for (size_t e = 0; e < E; e++) {
        const lsw_stats_expert *x = &s->experts[e];
        lsw_sb_str(b, "<tr><td class=\"l\">");
        esc(b, x->name);
        lsw_sb_str(b, "</td><td class=\"l\"><code>");
        esc(b, x->path);
        fmt(v, sizeof v, x->model_mav);
        fmt(w, sizeof w, x->lang_score);
        lsw_sb_printf(b, "</code></td><td>%s</td><td>%llu</td><td>%s</td></tr>\n", v, (unsigned long long)x->rows, w);
    }
    lsw_sb_str(b, "</table>\n");
    /* similarity */
    lsw_sb_str(b, "<h2>Profile similarity</h2>\n<p>Pearson correlation of the experts' profiles (cell means over "
                  "layers &#215; ");
    for (size_t k = 0; k < s->nprofile; k++) {
        if (k)
            lsw_sb_str(b, ", ");
        esc(b, s->types[k]);
    }
    lsw_sb_str(b, "), experts in group order. Groups: average linkage, merged while the mean correlation is "
                  "&#8805; 0.5.</p>\n<table>\n<tr><th></th>");
    for (size_t j = 0; j < E; j++) {
        lsw_sb_str(b, "<th>");
        esc(b, s->experts[s->order[j]].name);
        lsw_sb_str(b, "</th>");
    }
    lsw_sb_str(b, "</tr>\n");
    for (size_t i = 0; i < E; i++) {
        lsw_sb_str(b, "<tr><th class=\"l\">");
        esc(b, s->experts[s->order[i]].name);
        lsw_sb_str(b, "</th>");
        for (size_t j = 0; j < E; j++) {
            double r = s->similarity[s->order[i] * E + s->order[j]];
            corr_colour(r, col);
            lsw_sb_printf(b, "<td style=\"background:%s\">%.3f</td>", col, r);
        }
        lsw_sb_str(b, "</tr>\n");
    }
    lsw_sb_str(b, "</table>\n<ol>\n");
    for (size_t g = 0; g < s->ngroups; g++) {
        lsw_sb_str(b, "<li>");
        names_html(b, s, s->order + s->group_start[g], s->group_start[g + 1] - s->group_start[g]);
        lsw_sb_str(b, "</li>\n");
    }
    lsw_sb_str(b, "</ol>\n");
    /* proposal */
    const lsw_stats_proposal *p = &s->proposal;
    lsw_sb_str(b, "<h2>Proposed layer swap</h2>\n");
    if (!p->valid) {
        lsw_sb_str(b, "<p>No proposal: ");
        esc(b, p->note);
        lsw_sb_str(b, ".</p>\n");
    } else {
        lsw_sb_str(b, "<p>Task expert(s): ");
        names_html(b, s, p->task, p->ntask);
        lsw_sb_str(b, "; language expert(s): ");
        names_html(b, s, p->lang, p->nlang);
        lsw_sb_str(b, " (");
        esc(b, p->note);
        lsw_sb_printf(b, ").</p>\n<p><b>bottom %d, top %d, lower_transition %d, upper_transition %d</b> &#8212; "
                         "<code>proposed-layer-swap.json</code> merges ",
                      p->bottom, p->top, p->lower_transition, p->upper_transition);
        esc(b, s->experts[p->task[0]].name);
        lsw_sb_str(b, " (task) with ");
        esc(b, s->experts[p->lang[0]].name);
        lsw_sb_str(b, " (language).</p>\n<table>\n<tr><th>layer</th><th>language mean</th><th>task mean</th>"
                      "<th>ratio</th><th class=\"l\">decision</th></tr>\n");
        for (size_t l = L; l-- > 0;) {
            const lsw_stats_layer_ratio *r = &p->layer[l];
            char a[32], t[32], q[32];
            fmt(a, sizeof a, r->lang);
            fmt(t, sizeof t, r->task);
            fmt(q, sizeof q, r->ratio);
            lsw_sb_printf(b, "<tr><td>%zu</td><td>%s</td><td>%s</td><td>%s</td><td class=\"l\">%s</td></tr>\n", l, a,
                          t, q, r->decision);
        }
        lsw_sb_str(b, "</table>\n");
    }
    /* per-expert tables */
    lsw_sb_str(b, "<h2>Per-expert statistics</h2>\n<p>Mean row MAV per cell (hover for max, percentiles and the "
                  "fraction of unchanged rows).</p>\n");
    for (size_t e = 0; e < E; e++) {
        const lsw_stats_expert *x = &s->experts[e];
        lsw_sb_str(b, "<h3>");
        esc(b, x->name);
        fmt(v, sizeof v, x->model_mav);
        lsw_sb_printf(b, " &#8212; model MAV %s</h3>\n<table>\n<tr><th>layer</th>", v);
        for (size_t k = 0; k < s->ntypes; k++) {
            lsw_sb_str(b, "<th>");
            esc(b, s->types[k]);
            lsw_sb_str(b, "</th>");
        }
        lsw_sb_str(b, "</tr>\n");
        for (size_t l = L; l-- > 0;) {
            lsw_sb_printf(b, "<tr><th>%zu</th>", l);
            for (size_t k = 0; k < s->ntypes; k++) {
                const lsw_stats_cell *c = &x->grid[l * s->ntypes + k];
                if (!c->rows) {
                    lsw_sb_str(b, "<td></td>");
                    continue;
                }
                char mx[32], p50[32], p90[32], p99[32];
                fmt(v, sizeof v, c->mean);
                fmt(mx, sizeof mx, c->max);
                fmt(p50, sizeof p50, c->p50);
                fmt(p90, sizeof p90, c->p90);
                fmt(p99, sizeof p99, c->p99);
                lsw_sb_printf(b, "<td title=\"max %s, p50 %s, p90 %s, p99 %s, unchanged %.3g%%, %llu rows\">%s</td>", mx,
                              p50, p90, p99, 100 * c->unchanged, (unsigned long long)c->rows, v);
            }
            lsw_sb_str(b, "</tr>\n");
        }
        lsw_sb_str(b, "</table>\n");
        if (s->nnl) {
            lsw_sb_str(b, "<table>\n<tr><th class=\"l\">non-layer</th><th>mean</th><th>max</th><th>p50</th><th>p90</th>"
                          "<th>p99</th><th>unchanged</th><th>rows</th></tr>\n");
            for (size_t k = 0; k < s->nnl; k++) {
                const lsw_stats_cell *c = &x->nl[k];
                if (!c->rows)
                    continue;
                char mx[32], p50[32], p90[32], p99[32];
                fmt(v, sizeof v, c->mean);
                fmt(mx, sizeof mx, c->max);
                fmt(p50, sizeof p50, c->p50);
                fmt(p90, sizeof p90, c->p90);
                fmt(p99, sizeof p99, c->p99);
                lsw_sb_str(b, "<tr><td class=\"l\">");
                esc(b, s->nl_types[k]);
                lsw_sb_printf(b, "</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%.3g%%</td><td>%llu</td></tr>\n",
                              v, mx, p50, p90, p99, 100 * c->unchanged, (unsigned long long)c->rows);
            }
            lsw_sb_str(b, "</table>\n");
        }
    }
    lsw_sb_str(b, "<p style=\"color:#777;font-size:11px\">Written by layerswap stats; the numbers are in "
                  "summary.json and stats.h5.</p>\n</body>\n</html>\n");
}
