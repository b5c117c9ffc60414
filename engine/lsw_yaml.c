#include "lsw_yaml.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "lsw_array.h"

struct lsw_ynode {
    lsw_ykind kind;
    int plain;
    unsigned line, col;
    char *str;              /* scalar text */
    size_t len;
    size_t n, cap;          /* sequence: n items; mapping: n entries (kids holds 2n: key, value) */
    lsw_ynode **kids;
    uint64_t size;          /* nodes counting every alias expansion (set when complete) */
    int done;               /* complete: an alias may refer to it */
    lsw_ynode *next;        /* every node of the document, for freeing */
};

typedef struct anchor { char *name; lsw_ynode *node; } anchor;

struct lsw_yaml_doc {
    lsw_ynode *root;
    lsw_ynode *all;
    anchor *anchors;
    size_t nanchors, capanchors;
};

typedef struct builder {
    lsw_yaml_doc *d;
    lsw_ynode *stack[LSW_YAML_MAX_DEPTH + 1];
    int depth;
    char *why;
    size_t whylen;
} builder;

static int fail(builder *b, const yaml_mark_t *m, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(builder *b, const yaml_mark_t *m, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (b->why)
        snprintf(b->why, b->whylen, "line %zu, column %zu: %s", m->line + 1, m->column + 1, msg);
    return -1;
}

static lsw_ynode *new_node(builder *b, lsw_ykind k, const yaml_mark_t *m)
{
    lsw_ynode *n = calloc(1, sizeof *n);
    if (!n)
        return NULL;
    n->kind = k;
    n->line = (unsigned)m->line + 1;
    n->col = (unsigned)m->column + 1;
    n->next = b->d->all;
    b->d->all = n;
    return n;
}

/* Append `kid` to the open collection (or make it the root). */
static int attach(builder *b, lsw_ynode *kid, const yaml_mark_t *m)
{
    if (b->depth == 0) {
        if (b->d->root)
            return fail(b, m, "more than one top-level value");
        b->d->root = kid;
        return 0;
    }
    lsw_ynode *p = b->stack[b->depth - 1];
    /* kids grows by one pointer at a time; a mapping fills key then value
     * (while it is open, p->len counts its pointers) */
    size_t used = p->kind == LSW_Y_MAP ? p->len : p->n;
    if (p->kind == LSW_Y_MAP && used % 2 == 0 && kid->kind != LSW_Y_SCALAR)
        return fail(b, m, "a mapping key must be a plain value, not a list or mapping");
    if (lsw_array_reserve(&p->kids, &p->cap, used + 1, sizeof *p->kids))
        return fail(b, m, "out of memory");
    p->kids[used] = kid;
    if (p->kind == LSW_Y_MAP) {
        p->len++;
        p->n = p->len / 2;
    } else {
        p->n++;
    }
    return 0;
}

static int add_anchor(builder *b, const yaml_char_t *name, lsw_ynode *n, const yaml_mark_t *m)
{
    if (!name)
        return 0;
    lsw_yaml_doc *d = b->d;
    if (lsw_array_reserve(&d->anchors, &d->capanchors, d->nanchors + 1, sizeof *d->anchors))
        return fail(b, m, "out of memory");
    /* a later anchor of the same name replaces the earlier one (YAML 1.1) */
    if (!(d->anchors[d->nanchors].name = strdup((const char *)name)))
        return fail(b, m, "out of memory");
    d->anchors[d->nanchors++].node = n;
    return 0;
}

static lsw_ynode *find_anchor(const lsw_yaml_doc *d, const char *name)
{
    for (size_t i = d->nanchors; i-- > 0;)
        if (strcmp(d->anchors[i].name, name) == 0)
            return d->anchors[i].node;
    return NULL;
}

static int add_size(builder *b, uint64_t s, const yaml_mark_t *m)
{
    if (b->depth > 0) {
        lsw_ynode *p = b->stack[b->depth - 1];
        p->size += s;
        if (p->size > LSW_YAML_MAX_NODES)
            return fail(b, m, "the document expands to more than %d values (aliases count at every use)",
                        LSW_YAML_MAX_NODES);
    }
    return 0;
}

static int cmp_keys(const void *x, const void *y)
{
    const lsw_ynode *a = *(const lsw_ynode *const *)x, *c = *(const lsw_ynode *const *)y;
    size_t n = a->len < c->len ? a->len : c->len;
    int r = memcmp(a->str, c->str, n);
    if (r)
        return r;
    if (a->len != c->len)
        return a->len < c->len ? -1 : 1;
    /* equal keys: the later one (in the text) last */
    return (a->line != c->line) ? (a->line < c->line ? -1 : 1) : (a->col < c->col ? -1 : a->col > c->col);
}

static int check_dup_keys(builder *b, const lsw_ynode *map, const yaml_mark_t *m)
{
    if (map->n < 2)
        return 0;
    const lsw_ynode **k = malloc(map->n * sizeof *k);
    if (!k)
        return fail(b, m, "out of memory");
    for (size_t i = 0; i < map->n; i++)
        k[i] = map->kids[2 * i];
    qsort(k, map->n, sizeof *k, cmp_keys);
    int rc = 0;
    for (size_t i = 1; i < map->n && !rc; i++)
        if (k[i]->len == k[i - 1]->len && memcmp(k[i]->str, k[i - 1]->str, k[i]->len) == 0) {
            yaml_mark_t at = {0, k[i]->line - 1, k[i]->col - 1};
            rc = fail(b, &at, "duplicate key \"%.80s\" (first at line %u)", k[i]->str, k[i - 1]->line);
        }
    free(k);
    return rc;
}

static int tag_ok(builder *b, const yaml_char_t *tag, const yaml_mark_t *m)
{
    if (tag)
        return fail(b, m, "explicit YAML tags (%.60s) are not accepted in a config", (const char *)tag);
    return 0;
}

/* One parser event into the tree; 1 at the end of the stream. */
static int on_event(builder *b, yaml_event_t *e, int *docs)
{
    const yaml_mark_t *m = &e->start_mark;
    lsw_ynode *n;
    switch (e->type) {
    case YAML_STREAM_START_EVENT:
    case YAML_DOCUMENT_END_EVENT:
        return 0;
    case YAML_STREAM_END_EVENT:
        return 1;
    case YAML_DOCUMENT_START_EVENT:
        if (++*docs > 1)
            return fail(b, m, "more than one YAML document (---) in a config");
        return 0;
    case YAML_ALIAS_EVENT:
        n = find_anchor(b->d, (const char *)e->data.alias.anchor);
        if (!n)
            return fail(b, m, "alias *%.60s names no anchor", (const char *)e->data.alias.anchor);
        if (!n->done)
            return fail(b, m, "alias *%.60s refers to a value that contains it", (const char *)e->data.alias.anchor);
        if (add_size(b, n->size, m))
            return -1;
        return attach(b, n, m);
    case YAML_SCALAR_EVENT:
        if (tag_ok(b, e->data.scalar.tag, m))
            return -1;
        if (!(n = new_node(b, LSW_Y_SCALAR, m)))
            return fail(b, m, "out of memory");
        n->plain = e->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
        n->len = e->data.scalar.length;
        if (!(n->str = malloc(n->len + 1)))
            return fail(b, m, "out of memory");
        memcpy(n->str, e->data.scalar.value, n->len);
        n->str[n->len] = 0;
        n->size = 1;
        n->done = 1;
        if (add_size(b, 1, m) || add_anchor(b, e->data.scalar.anchor, n, m))
            return -1;
        return attach(b, n, m);
    case YAML_SEQUENCE_START_EVENT:
    case YAML_MAPPING_START_EVENT: {
        int seq = e->type == YAML_SEQUENCE_START_EVENT;
        const yaml_char_t *tag = seq ? e->data.sequence_start.tag : e->data.mapping_start.tag;
        const yaml_char_t *anc = seq ? e->data.sequence_start.anchor : e->data.mapping_start.anchor;
        if (b->depth >= LSW_YAML_MAX_DEPTH)
            return fail(b, m, "nested more than %d levels deep", LSW_YAML_MAX_DEPTH);
        if (tag_ok(b, tag, m))
            return -1;
        if (!(n = new_node(b, seq ? LSW_Y_SEQ : LSW_Y_MAP, m)))
            return fail(b, m, "out of memory");
        n->size = 1;
        if (attach(b, n, m) || add_anchor(b, anc, n, m))
            return -1;
        b->stack[b->depth++] = n;
        return 0;
    }
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT:
        n = b->stack[--b->depth];
        if (n->kind == LSW_Y_MAP) {
            n->len = 0;
            if (check_dup_keys(b, n, m))
                return -1;
        }
        n->done = 1;
        return add_size(b, n->size, m);
    default:
        return 0;
    }
}

int lsw_yaml_parse(const char *text, size_t len, lsw_yaml_doc **out, char *why, size_t whylen)
{
    *out = NULL;
    builder b = {0};
    b.why = why;
    b.whylen = whylen;
    yaml_mark_t zero = {0, 0, 0};
    if (len > LSW_YAML_MAX_BYTES)
        return fail(&b, &zero, "longer than %u bytes", LSW_YAML_MAX_BYTES);
    if (!(b.d = calloc(1, sizeof *b.d)))
        return fail(&b, &zero, "out of memory");
    yaml_parser_t ps;
    if (!yaml_parser_initialize(&ps)) {
        free(b.d);
        return fail(&b, &zero, "out of memory");
    }
    yaml_parser_set_input_string(&ps, (const unsigned char *)text, len);
    int docs = 0, rc = 0;
    for (;;) {
        yaml_event_t e;
        if (!yaml_parser_parse(&ps, &e)) {
            yaml_mark_t pm = ps.problem_mark;
            rc = fail(&b, &pm, "%s%s%s", ps.problem ? ps.problem : "not valid YAML", ps.context ? " " : "",
                      ps.context ? ps.context : "");
            break;
        }
        rc = on_event(&b, &e, &docs);
        yaml_event_delete(&e);
        if (rc)
            break;
    }
    yaml_parser_delete(&ps);
    if (rc == 1)
        rc = b.d->root ? 0 : fail(&b, &zero, "the document is empty");
    if (rc) {
        lsw_yaml_free(b.d);
        return -1;
    }
    *out = b.d;
    return 0;
}

void lsw_yaml_free(lsw_yaml_doc *d)
{
    if (!d)
        return;
    for (lsw_ynode *n = d->all, *next; n; n = next) {
        next = n->next;
        free(n->str);
        free(n->kids);
        free(n);
    }
    for (size_t i = 0; i < d->nanchors; i++)
        free(d->anchors[i].name);
    free(d->anchors);
    free(d);
}

const lsw_ynode *lsw_yaml_root(const lsw_yaml_doc *d) { return d->root; }
lsw_ykind lsw_ynode_kind(const lsw_ynode *n) { return n->kind; }
unsigned lsw_ynode_line(const lsw_ynode *n) { return n->line; }
unsigned lsw_ynode_col(const lsw_ynode *n) { return n->col; }
size_t lsw_ynode_count(const lsw_ynode *n) { return n && n->kind != LSW_Y_SCALAR ? n->n : 0; }
int lsw_ynode_plain(const lsw_ynode *n) { return n->kind == LSW_Y_SCALAR && n->plain; }
int lsw_ynode_has_nul(const lsw_ynode *n) { return n->kind == LSW_Y_SCALAR && strlen(n->str) != n->len; }

const lsw_ynode *lsw_ynode_at(const lsw_ynode *n, size_t i)
{
    if (!n || n->kind == LSW_Y_SCALAR || i >= n->n)
        return NULL;
    return n->kind == LSW_Y_MAP ? n->kids[2 * i + 1] : n->kids[i];
}

const lsw_ynode *lsw_ynode_keynode(const lsw_ynode *n, size_t i)
{
    return n && n->kind == LSW_Y_MAP && i < n->n ? n->kids[2 * i] : NULL;
}

const lsw_ynode *lsw_ynode_get(const lsw_ynode *map, const char *key)
{
    if (!map || map->kind != LSW_Y_MAP)
        return NULL;
    size_t kl = strlen(key);
    for (size_t i = 0; i < map->n; i++)
        if (map->kids[2 * i]->len == kl && memcmp(map->kids[2 * i]->str, key, kl) == 0)
            return map->kids[2 * i + 1];
    return NULL;
}

const char *lsw_ynode_str(const lsw_ynode *n, size_t *len)
{
    if (!n || n->kind != LSW_Y_SCALAR)
        return NULL;
    if (len)
        *len = n->len;
    return n->str;
}
