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

/* ------------------------------------------------------------------ scales */

static double cell_value(const lsw_stats_cell *c, lsw_stats_metric m)
{
    return m == LSW_STATS_MAV ? c->mean : c->share;
}

void lsw_stats_svg_range(const lsw_stats_summary *s, size_t e, lsw_stats_metric metric, int positive, double *vmin,
                         double *vmax)
{
    int any = 0;
    *vmin = *vmax = 0;
    size_t n = (size_t)s->layers * s->ntypes;
    for (size_t x = 0; x < s->nexperts; x++) {
        if (e != (size_t)-1 && x != e)
            continue;
        for (size_t c = 0; c < n; c++) {
            const lsw_stats_cell *cell = &s->experts[x].grid[c];
            double v = cell_value(cell, metric);
            if (!cell->rows || !isfinite(v) || (positive && !(v > 0)))
                continue;
            if (!any || v < *vmin)
                *vmin = v;
            if (!any || v > *vmax)
                *vmax = v;
            any = 1;
        }
    }
}

size_t lsw_stats_ticks(double lo, double hi, int log, double *t, size_t max)
{
    size_t n = 0;
    if (!max || !isfinite(lo) || !isfinite(hi) || hi < lo)
        return 0;
    if (hi == lo) {
        t[0] = lo;
        return 1;
    }
    if (log && lo > 0) {
        int k0 = (int)floor(log10(lo)), k1 = (int)ceil(log10(hi));
        int few = k1 - k0 <= 2, step = (k1 - k0 + (int)max - 1) / (int)max;
        static const double mult[3] = {1, 2, 5};
        for (int k = k0; k <= k1; k += step < 1 ? 1 : step)
            for (int j = 0; j < (few ? 3 : 1); j++) {
                double v = mult[j] * pow(10, k);
                if (v >= lo * (1 - 1e-12) && v <= hi * (1 + 1e-12) && n < max)
                    t[n++] = v;
            }
        if (n >= 2)
            return n;
        n = 0; /* a narrow range: the linear steps, placed on the log scale */
    }
    double raw = (hi - lo) / 4, p = pow(10, floor(log10(raw))), f = raw / p;
    double step = (f < 1.5 ? 1 : f < 2.25 ? 2 : f < 3.5 ? 2.5 : f < 7.5 ? 5 : 10) * p;
    double k0 = ceil(lo / step - 1e-9);
    for (int i = 0; n < max; i++) {
        double v = (k0 + i) * step;
        if (v > hi + step * 1e-9)
            break;
        t[n++] = fabs(v) < step * 1e-9 ? 0.0 : v;
    }
    return n;
}

/* The colour scale of one heatmap. */
typedef struct scale {
    double lo, hi;
    int log;                /* log10 positions (lo > 0) */
    int nolog;              /* log10 asked for, but no value is above 0 */
    int shared;             /* over every expert */
    size_t nexperts;
} scale;

static scale scale_for(const lsw_stats_summary *s, size_t e, lsw_stats_metric m, const lsw_stats_picture *pic)
{
    scale sc = {0, 0, pic->log && m == LSW_STATS_MAV, 0, pic->shared && s->nexperts > 1, s->nexperts};
    size_t who = sc.shared ? (size_t)-1 : e;
    if (sc.log) {
        lsw_stats_svg_range(s, who, m, 1, &sc.lo, &sc.hi);
        if (!(sc.lo > 0))
            sc.log = 0, sc.nolog = 1; /* nothing above 0: linear after all */
    }
    if (!sc.log)
        lsw_stats_svg_range(s, who, m, 0, &sc.lo, &sc.hi);
    return sc;
}

/* Position of v on the scale, 0 (bottom) to 1 (top). */
static double scale_pos(const scale *sc, double v)
{
    if (sc->log) {
        if (!(v > 0))
            return 0;
        double a = log10(sc->lo), z = log10(sc->hi);
        return z > a ? (log10(v) - a) / (z - a) : 0.5;
    }
    if (sc->hi > sc->lo)
        return (v - sc->lo) / (sc->hi - sc->lo);
    return v > 0 ? 0.5 : 0; /* one value: mid-scale, or the bottom when nothing changed */
}

/* ------------------------------------------------------------- text layout */

#define MAXLINES 4
#define LINELEN 160

/* Break s into at most `maxl` lines of at most `w` bytes, after a space or
 * one of - _ . / , where one is near the end of a line, else hard.  Beyond
 * `maxl` lines the text is shortened in the middle with "…" (the caller puts
 * the whole text into a <title> tooltip).  Returns the line count. */
static size_t wrap(const char *s, size_t w, size_t maxl, char lines[][LINELEN])
{
    char tmp[3 * LINELEN * MAXLINES];
    size_t n = strlen(s), cap = w * maxl;
    if (w < 8)
        w = 8;
    if (w > LINELEN - 4)
        w = LINELEN - 4;
    if (n > cap && cap + 1 < sizeof tmp && cap > 8) { /* keep the head and the tail */
        size_t head = (cap - 3) / 2, tail = cap - 3 - head;
        snprintf(tmp, sizeof tmp, "%.*s\xe2\x80\xa6%s", (int)head, s, s + n - tail);
        s = tmp;
        n = strlen(s);
    }
    size_t k = 0, i = 0;
    while (i < n && k < maxl) {
        size_t take = n - i <= w ? n - i : w;
        if (take < n - i)
            for (size_t j = take; j > w / 2; j--)
                if (strchr(" -_./,", s[i + j - 1])) {
                    take = j;
                    break;
                }
        snprintf(lines[k++], LINELEN, "%.*s", (int)take, s + i);
        i += take;
        while (i < n && s[i] == ' ')
            i++;
    }
    return k;
}

/* ----------------------------------------------------------------- heatmap */

#define CW 40     /* cell width */
#define FS_T 14   /* title */
#define FS_C 11   /* caption */
#define FS_L 10   /* labels */
#define CH_W(fs) ((fs) * 0.62) /* an average character's width, a little generous */

typedef struct geom {
    int L, nt, ch, gw, gh, ML, MT, MB, W, H, cx, bh, tickw;
    size_t ntitle, ncap;
    char title[MAXLINES][LINELEN], cap[MAXLINES][LINELEN];
} geom;

static void caption_text(const lsw_stats_summary *s, size_t e, lsw_stats_metric m, const scale *sc, char *what,
                         size_t wl, char *how, size_t hl)
{
    char v[32], lo[32], hi[32];
    fmt(v, sizeof v, s->experts[e].model_mav);
    fmt(lo, sizeof lo, sc->lo);
    fmt(hi, sizeof hi, sc->hi);
    if (m == LSW_STATS_MAV)
        snprintf(what, wl, "mean row MAV vs the base per layer \xc3\x97 tensor type (model MAV %s)", v);
    else
        snprintf(what, wl, "each tensor type's share of the layer's relative change \xe2\x80\x96\xce\x94\xe2\x80\x96/"
                           "\xe2\x80\x96W\xe2\x80\x96 (a layer's shares add up to 1)");
    const char *kind = sc->log ? "log10" : sc->nolog ? "linear (no value above 0 for log10)" : "linear";
    if (sc->shared)
        snprintf(how, hl, "colours: %s scale shared by all %zu experts, %s to %s", kind, sc->nexperts, lo, hi);
    else
        snprintf(how, hl, "colours: %s scale over this expert's cells, %s to %s", kind, lo, hi);
}

static geom layout(const lsw_stats_summary *s, size_t e, lsw_stats_metric m, const scale *sc)
{
    geom g;
    memset(&g, 0, sizeof g);
    g.L = s->layers;
    g.nt = (int)s->ntypes;
    g.ch = g.L > 0 ? 480 / g.L : 22;
    g.ch = g.ch < 4 ? 4 : g.ch > 22 ? 22 : g.ch;
    g.gw = g.nt * CW;
    g.gh = g.L * g.ch;
    size_t lmax = 5;
    for (size_t k = 0; k < s->ntypes; k++)
        lmax = strlen(s->types[k]) > lmax ? strlen(s->types[k]) : lmax;
    double ext = (double)lmax * CH_W(FS_L); /* a rotated type label: 0.643 of it leftwards, 0.766 down */
    g.ML = 64;
    if ((int)(0.643 * ext) - CW / 2 + 8 > g.ML)
        g.ML = (int)(0.643 * ext) - CW / 2 + 8;
    g.tickw = (int)(10 * CH_W(FS_L)) + 8;
    g.cx = g.ML + g.gw + 24;
    g.W = g.cx + 16 + 6 + g.tickw;
    g.W = g.W < 380 ? 380 : g.W;
    char what[256], how[256];
    caption_text(s, e, m, sc, what, sizeof what, how, sizeof how);
    g.ntitle = wrap(s->experts[e].name, (size_t)((g.W - 20) / CH_W(FS_T) / 1.1), 3, g.title);
    size_t cw = (size_t)((g.W - 20) / CH_W(FS_C));
    g.ncap = wrap(what, cw, 2, g.cap);
    g.ncap += wrap(how, cw, 2, g.cap + g.ncap);
    g.MT = 12 + (int)g.ntitle * (FS_T + 4) + (int)g.ncap * (FS_C + 3) + 14;
    g.bh = g.gh < 150 ? 150 : g.gh;
    g.MB = (int)(0.766 * ext + 0.643 * FS_L) + 14 + 22 + 32; /* labels, axis title, legend */
    g.H = g.MT + (g.gh + g.MB > g.bh + 24 ? g.gh + g.MB : g.bh + 24);
    return g;
}

static void svg_head(lsw_strbuf *b, const lsw_stats_summary *s, size_t e, lsw_stats_metric m, const geom *g,
                     const char *id, int standalone)
{
    const lsw_stats_expert *x = &s->experts[e];
    if (standalone)
        lsw_sb_str(b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    lsw_sb_printf(b,
                  "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
                  "font-family=\"sans-serif\" class=\"heatmap\" data-metric=\"%s\" data-expert=\"",
                  g->W, g->H, g->W, g->H, m == LSW_STATS_MAV ? "mav" : "share");
    esc(b, x->name);
    lsw_sb_printf(b, "\" data-layers=\"%d\" data-types=\"%d\">\n<title>", g->L, g->nt);
    esc(b, x->name);
    lsw_sb_str(b, m == LSW_STATS_MAV ? ": mean row MAV per layer and tensor type</title>\n"
                                     : ": share of each tensor type in the layer's relative change</title>\n");
    /* colour bar gradient: bottom = low, top = high */
    lsw_sb_str(b, "<rect width=\"100%\" height=\"100%\" fill=\"#ffffff\"/>\n<defs><linearGradient id=\"");
    esc(b, id);
    lsw_sb_str(b, "-cbar\" x1=\"0\" y1=\"1\" x2=\"0\" y2=\"0\">");
    for (int k = 0; k < 8; k++) {
        char col[8];
        lsw_stats_colormap(k / 7.0, col);
        lsw_sb_printf(b, "<stop offset=\"%.6g\" stop-color=\"%s\"/>", k / 7.0, col);
    }
    lsw_sb_str(b, "</linearGradient></defs>\n");
    /* the title (the whole name on hover) and the caption */
    lsw_sb_printf(b, "<text class=\"title\" x=\"10\" y=\"%d\" font-size=\"%d\" font-weight=\"bold\"><title>", 12 + FS_T,
                  FS_T);
    esc(b, x->name);
    lsw_sb_str(b, "</title>");
    for (size_t k = 0; k < g->ntitle; k++) {
        lsw_sb_printf(b, "<tspan x=\"10\" dy=\"%d\">", k ? FS_T + 4 : 0);
        esc(b, g->title[k]);
        lsw_sb_str(b, "</tspan>");
    }
    lsw_sb_str(b, "</text>\n");
    int y = 12 + (int)g->ntitle * (FS_T + 4) + FS_C;
    for (size_t k = 0; k < g->ncap; k++, y += FS_C + 3) {
        lsw_sb_printf(b, "<text class=\"caption\" x=\"10\" y=\"%d\" font-size=\"%d\" fill=\"#333\">", y, FS_C);
        esc(b, g->cap[k]);
        lsw_sb_str(b, "</text>\n");
    }
}

/* One cell: its colour, data attributes, tooltip and, when every row is
 * unchanged, a white × over it. */
static void svg_cell(lsw_strbuf *b, const lsw_stats_summary *s, const lsw_stats_cell *c, lsw_stats_metric m,
                     const scale *sc, const geom *g, int l, int k)
{
    int px = g->ML + k * CW, py = g->MT + (g->L - 1 - l) * g->ch;
    char col[8], w[32], r[32];
    lsw_sb_printf(b, "<rect class=\"cell\" x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" data-layer=\"%d\" data-type=\"",
                  px, py, CW, g->ch, l);
    esc(b, s->types[k]);
    if (!c->rows) {
        lsw_sb_printf(b, "\" fill=\"#e4e4e4\"><title>layer %d, ", l);
        esc(b, s->types[k]);
        lsw_sb_str(b, ": no tensor</title></rect>\n");
        return;
    }
    double v = cell_value(c, m);
    int same = c->unchanged == 1.0;
    lsw_stats_colormap(isfinite(v) ? scale_pos(sc, v) : 0, col);
    lsw_sb_printf(b, "\" data-%s=\"%.17g\"%s fill=\"%s\"><title>layer %d, ", m == LSW_STATS_MAV ? "mean" : "share", v,
                  same ? " data-unchanged=\"1\"" : "", col, l);
    esc(b, s->types[k]);
    fmt(w, sizeof w, c->mean);
    fmt(r, sizeof r, c->rel_change);
    lsw_sb_printf(b, ": mean row MAV %s, relative change %s", w, r);
    fmt(w, sizeof w, c->share);
    lsw_sb_printf(b, ", share %s", w);
    fmt(w, sizeof w, c->max);
    lsw_sb_printf(b, ", max %s, unchanged rows %.3g%%%s</title></rect>\n", w, 100 * c->unchanged,
                  same ? " (every row identical to the base)" : "");
    if (same)
        lsw_sb_printf(b, "<path class=\"unchanged\" d=\"M%d %dL%d %dM%d %dL%d %d\" stroke=\"#ffffff\" "
                         "stroke-width=\"1.5\" pointer-events=\"none\"/>\n",
                      px + 3, py + 1, px + CW - 3, py + g->ch - 1, px + CW - 3, py + 1, px + 3, py + g->ch - 1);
}

static void svg_axes(lsw_strbuf *b, const lsw_stats_summary *s, const geom *g)
{
    lsw_sb_printf(b, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"#444\" "
                     "stroke-width=\"0.5\"/>\n", g->ML, g->MT, g->gw, g->gh);
    /* layer labels: every k-th layer so that labels are ≥ 12 px apart */
    int every = (12 + g->ch - 1) / g->ch;
    lsw_sb_printf(b, "<g class=\"layer-labels\" font-size=\"%d\" text-anchor=\"end\">\n", FS_L);
    for (int l = 0; l < g->L; l += every)
        lsw_sb_printf(b, "<text x=\"%d\" y=\"%d\">%d</text>\n", g->ML - 5, g->MT + (g->L - 1 - l) * g->ch + g->ch / 2 + 4,
                      l);
    lsw_sb_str(b, "</g>\n");
    lsw_sb_printf(b, "<text class=\"axis\" font-size=\"12\" text-anchor=\"middle\" transform=\"translate(%d,%d) "
                     "rotate(-90)\">layer</text>\n", g->ML - 34, g->MT + g->gh / 2);
    lsw_sb_printf(b, "<g class=\"type-labels\" font-size=\"%d\" text-anchor=\"end\">\n", FS_L);
    for (int k = 0; k < g->nt; k++) {
        lsw_sb_printf(b, "<text transform=\"translate(%d,%d) rotate(-50)\">", g->ML + k * CW + CW / 2 + 3,
                      g->MT + g->gh + 8);
        esc(b, s->types[k]);
        lsw_sb_str(b, "</text>\n");
    }
    lsw_sb_str(b, "</g>\n");
    lsw_sb_printf(b, "<text class=\"axis\" font-size=\"12\" text-anchor=\"middle\" x=\"%d\" y=\"%d\">tensor type</text>\n",
                  g->ML + g->gw / 2, g->H - 36);
}

static void svg_colorbar(lsw_strbuf *b, const scale *sc, const geom *g, const char *id, lsw_stats_metric m)
{
    char v[32];
    lsw_sb_printf(b, "<rect class=\"colorbar\" x=\"%d\" y=\"%d\" width=\"16\" height=\"%d\" fill=\"url(#", g->cx, g->MT,
                  g->bh);
    esc(b, id);
    lsw_sb_str(b, "-cbar)\" stroke=\"#444\" stroke-width=\"0.5\"/>\n");
    double t[16];
    size_t n = lsw_stats_ticks(sc->lo, sc->hi, sc->log, t, 8);
    lsw_sb_printf(b, "<g class=\"ticks\" font-size=\"%d\">\n", FS_L);
    for (size_t k = 0; k < n; k++) {
        double p = scale_pos(sc, t[k]);
        int y = g->MT + g->bh - (int)lround(p * g->bh);
        snprintf(v, sizeof v, "%.3g", t[k]);
        lsw_sb_printf(b, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#222\"/>"
                         "<text class=\"tick\" x=\"%d\" y=\"%d\">%s</text>\n",
                      g->cx + 16, y, g->cx + 21, y, g->cx + 23, y + 3, v);
    }
    lsw_sb_str(b, "</g>\n");
    fmt(v, sizeof v, sc->hi);
    lsw_sb_printf(b, "<text class=\"cbar-max\" x=\"%d\" y=\"%d\" font-size=\"%d\">max %s</text>\n", g->cx, g->MT - 4,
                  FS_L, v);
    fmt(v, sizeof v, sc->lo);
    lsw_sb_printf(b, "<text class=\"cbar-min\" x=\"%d\" y=\"%d\" font-size=\"%d\">min %s</text>\n", g->cx,
                  g->MT + g->bh + 16, FS_L, v);
    lsw_sb_printf(b, "<text font-size=\"%d\" text-anchor=\"middle\" transform=\"translate(%d,%d) rotate(-90)\">%s%s</text>\n",
                  FS_L, g->cx - 6, g->MT + g->bh / 2, m == LSW_STATS_MAV ? "mean row MAV" : "share of the layer",
                  sc->log ? " (log10 scale)" : "");
}

/* The legend of the marks that this heatmap uses. */
static void svg_legend(lsw_strbuf *b, const lsw_stats_summary *s, size_t e, const geom *g)
{
    const lsw_stats_expert *x = &s->experts[e];
    int same = 0, none = 0;
    for (size_t c = 0; c < (size_t)s->layers * s->ntypes; c++) {
        same |= x->grid[c].rows && x->grid[c].unchanged == 1.0;
        none |= !x->grid[c].rows;
    }
    int y = g->H - 14;
    if (same) {
        lsw_sb_printf(b, "<g class=\"legend\"><rect x=\"10\" y=\"%d\" width=\"14\" height=\"10\" fill=\"#440154\"/>"
                         "<path d=\"M12 %dL22 %dM22 %dL12 %d\" stroke=\"#ffffff\" stroke-width=\"1.5\"/>"
                         "<text x=\"30\" y=\"%d\" font-size=\"%d\">every row exactly unchanged</text></g>\n",
                      y - 9, y - 8, y, y - 8, y, y, FS_L);
    }
    if (none)
        lsw_sb_printf(b, "<g class=\"legend\"><rect x=\"%d\" y=\"%d\" width=\"14\" height=\"10\" fill=\"#e4e4e4\"/>"
                         "<text x=\"%d\" y=\"%d\" font-size=\"%d\">no tensor of this type</text></g>\n",
                      same ? 200 : 10, y - 9, same ? 220 : 30, y, FS_L);
}

static void heatmap(lsw_strbuf *b, const lsw_stats_summary *s, size_t e, lsw_stats_metric m,
                    const lsw_stats_picture *pic, const char *id, int standalone)
{
    scale sc = scale_for(s, e, m, pic);
    geom g = layout(s, e, m, &sc);
    svg_head(b, s, e, m, &g, id, standalone);
    lsw_sb_str(b, "<g class=\"cells\">\n");
    for (int l = 0; l < g.L; l++)
        for (int k = 0; k < g.nt; k++)
            svg_cell(b, s, &s->experts[e].grid[(size_t)l * s->ntypes + (size_t)k], m, &sc, &g, l, k);
    lsw_sb_str(b, "</g>\n");
    svg_axes(b, s, &g);
    svg_colorbar(b, &sc, &g, id, m);
    svg_legend(b, s, e, &g);
    lsw_sb_str(b, "</svg>\n");
}

void lsw_stats_svg_file(const lsw_stats_summary *s, size_t e, const lsw_stats_picture *pic, lsw_strbuf *out)
{
    heatmap(out, s, e, LSW_STATS_MAV, pic, "hm", 1);
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

static void report_head(lsw_strbuf *b, const lsw_stats_summary *s)
{
    lsw_sb_str(b, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
                  "<title>layerswap stats</title>\n<style>\n"
                  "body{font-family:sans-serif;margin:1.5em;color:#222}\n"
                  ".maps{display:flex;flex-wrap:wrap;gap:12px;align-items:flex-start}\n"
                  "table{border-collapse:collapse;margin:0.5em 0 1.2em 0}\n"
                  "td,th{border:1px solid #ccc;padding:2px 6px;font-size:12px;text-align:right}\n"
                  "th{background:#f2f2f2}\ntd.l,th.l{text-align:left}\n"
                  "h3,td.l,th.l,code{overflow-wrap:anywhere}\n"
                  "code{background:#f4f4f4;padding:0 3px}\n</style>\n</head>\n<body>\n");
    lsw_sb_str(b, "<h1>layerswap stats</h1>\n<p>Base <code>");
    esc(b, s->base_path);
    lsw_sb_printf(b, "</code>: %d layers, %llu tensors of %llu rows compared per expert; %zu expert(s).</p>\n",
                  s->layers, (unsigned long long)s->tensors, (unsigned long long)s->rows, s->nexperts);
}

static void report_maps(lsw_strbuf *b, const lsw_stats_summary *s, const lsw_stats_picture *pic, lsw_stats_metric m)
{
    const char *scope = pic->shared && s->nexperts > 1 ? "All heatmaps of this section share one colour scale"
                                                       : "Each heatmap has its own colour scale (its expert's range)";
    if (m == LSW_STATS_MAV)
        lsw_sb_printf(b, "<h2>Mean row MAV per layer and tensor type</h2>\n<p>Where fine-tuning changed the base "
                         "(the paper's Figure 2; layer 0 at the bottom). %s, %s; a white &#215; marks a cell whose "
                         "every row is exactly unchanged.</p>\n<div class=\"maps\">\n",
                      scope, pic->log ? "log10" : "linear");
    else
        lsw_sb_printf(b, "<h2>Module-level view: each type's share of the layer's relative change</h2>\n<p>Per layer, "
                         "the relative change &#8214;&#916;&#8214;/&#8214;W<sub>base</sub>&#8214; of each tensor type "
                         "(L2 norms over the type's tensors), as a share of the layer's total: which modules "
                         "fine-tuning moved most, the statistic follow-up work uses to choose modules to swap. %s, "
                         "linear.</p>\n<div class=\"maps\">\n", scope);
    for (size_t e = 0; e < s->nexperts; e++) {
        char id[32];
        snprintf(id, sizeof id, "%s%zu", m == LSW_STATS_MAV ? "hm" : "sh", e);
        heatmap(b, s, e, m, pic, id, 0);
    }
    lsw_sb_str(b, "</div>\n");
}

static void report_experts(lsw_strbuf *b, const lsw_stats_summary *s)
{
    char v[32], w[32];
    lsw_sb_str(b, "<h2>Experts</h2>\n<table>\n<tr><th class=\"l\">expert</th><th class=\"l\">path</th>"
                  "<th>model MAV</th><th>rows</th><th>language score &#955;</th></tr>\n");
    for (size_t e = 0; e < s->nexperts; e++) {
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
}

static void report_similarity(lsw_strbuf *b, const lsw_stats_summary *s)
{
    size_t E = s->nexperts;
    char col[8];
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
}

static void report_proposal(lsw_strbuf *b, const lsw_stats_summary *s)
{
    const lsw_stats_proposal *p = &s->proposal;
    const lsw_stats_rule *r = &p->rule;
    char a[32], t[32], z[32], q[32];
    lsw_sb_str(b, "<h2>Proposed layer swap</h2>\n");
    if (p->sides) {
        lsw_sb_str(b, "<p>Task expert(s): ");
        names_html(b, s, p->task, p->ntask);
        lsw_sb_str(b, "; language expert(s): ");
        names_html(b, s, p->lang, p->nlang);
        fmt(a, sizeof a, r->median);
        fmt(t, sizeof t, r->sigma);
        fmt(z, sizeof z, r->median + r->margin);
        fmt(q, sizeof q, r->median + r->margin / 2);
        lsw_sb_printf(b, ".</p>\n<p>A layer is a <i>language layer</i> where the language experts' mean MAV stands "
                         "out from their own background: median %s, robust spread %s (1.4826 &#215; MAD); a language "
                         "layer exceeds %s = median + max(%.1f &#215; spread, %.2f &#215; median), a borderline one %s. "
                         "The swap takes the runs of language layers from the bottom and from the top, and one "
                         "averaged transition layer where the next layer is borderline.</p>\n",
                      a, t, z, LSW_STATS_Z, LSW_STATS_FLOOR, q);
    }
    if (!p->valid) {
        lsw_sb_str(b, "<p><b>No proposal</b>: ");
        esc(b, p->note);
        lsw_sb_str(b, ".</p>\n");
    } else {
        lsw_sb_printf(b, "<p><b>bottom %d, top %d, lower_transition %d, upper_transition %d</b> &#8212; "
                         "<code>proposed-layer-swap.json</code> merges ",
                      r->bottom, r->top, r->lower_transition, r->upper_transition);
        esc(b, s->experts[p->task[0]].name);
        lsw_sb_str(b, " (task) with ");
        esc(b, s->experts[p->lang[0]].name);
        lsw_sb_str(b, " (language).</p>\n");
    }
    if (!p->sides)
        return;
    lsw_sb_str(b, "<table>\n<tr><th>layer</th><th>language signal</th><th>z</th><th>task mean</th>"
                  "<th class=\"l\">decision</th></tr>\n");
    for (size_t l = (size_t)s->layers; l-- > 0;) {
        const lsw_stats_layer_call *c = &p->layer[l];
        fmt(a, sizeof a, c->lang);
        fmt(z, sizeof z, c->z);
        fmt(t, sizeof t, c->task);
        lsw_sb_printf(b, "<tr><td>%zu</td><td>%s</td><td>%s</td><td>%s</td><td class=\"l\">%s</td></tr>\n", l, a, z,
                      t, c->decision);
    }
    lsw_sb_str(b, "</table>\n");
}

/* A cell's <td>: the mean, with the rest on hover. */
static void cell_td(lsw_strbuf *b, const lsw_stats_cell *c)
{
    char v[32], mx[32], p50[32], p90[32], p99[32], rc[32], sh[32];
    fmt(v, sizeof v, c->mean);
    fmt(mx, sizeof mx, c->max);
    fmt(p50, sizeof p50, c->p50);
    fmt(p90, sizeof p90, c->p90);
    fmt(p99, sizeof p99, c->p99);
    fmt(rc, sizeof rc, c->rel_change);
    fmt(sh, sizeof sh, c->share);
    lsw_sb_printf(b, "<td title=\"max %s, p50 %s, p90 %s, p99 %s, unchanged %.3g%%, %llu rows, relative change %s, "
                     "share %s\">%s</td>",
                  mx, p50, p90, p99, 100 * c->unchanged, (unsigned long long)c->rows, rc, sh, v);
}

static void report_tables(lsw_strbuf *b, const lsw_stats_summary *s)
{
    char v[32];
    lsw_sb_str(b, "<h2>Per-expert statistics</h2>\n<p>Mean row MAV per cell (hover for max, percentiles, the "
                  "fraction of unchanged rows, the relative change and its share).</p>\n");
    for (size_t e = 0; e < s->nexperts; e++) {
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
        for (size_t l = (size_t)s->layers; l-- > 0;) {
            lsw_sb_printf(b, "<tr><th>%zu</th>", l);
            for (size_t k = 0; k < s->ntypes; k++) {
                const lsw_stats_cell *c = &x->grid[l * s->ntypes + k];
                if (c->rows)
                    cell_td(b, c);
                else
                    lsw_sb_str(b, "<td></td>");
            }
            lsw_sb_str(b, "</tr>\n");
        }
        lsw_sb_str(b, "</table>\n");
        if (!s->nnl)
            continue;
        lsw_sb_str(b, "<table>\n<tr><th class=\"l\">non-layer</th><th>mean</th></tr>\n");
        for (size_t k = 0; k < s->nnl; k++) {
            if (!x->nl[k].rows)
                continue;
            lsw_sb_str(b, "<tr><td class=\"l\">");
            esc(b, s->nl_types[k]);
            lsw_sb_str(b, "</td>");
            cell_td(b, &x->nl[k]);
            lsw_sb_str(b, "</tr>\n");
        }
        lsw_sb_str(b, "</table>\n");
    }
}

void lsw_stats_report_html(const lsw_stats_summary *s, const lsw_stats_picture *pic, lsw_strbuf *b)
{
    report_head(b, s);
    report_maps(b, s, pic, LSW_STATS_MAV);
    report_maps(b, s, pic, LSW_STATS_SHARE);
    report_experts(b, s);
    report_similarity(b, s);
    report_proposal(b, s);
    report_tables(b, s);
    lsw_sb_str(b, "<p style=\"color:#777;font-size:11px\">Written by layerswap stats; the numbers are in "
                  "summary.json and stats.h5 (docs/statistics.md).</p>\n</body>\n</html>\n");
}
