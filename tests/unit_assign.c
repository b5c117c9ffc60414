/* Invariants of engine/lsw_assign on a hand-built plan: pieces tile every
 * tensor exactly once in file order, cut only at row boundaries, keep a
 * layer's tensors of one shard on one rank, are deterministic, balanced, and
 * large non-layer tensors are spread over several ranks. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lsw_assign.h"

static int passed, failed;
#define CHECK(c, ...) do { if (c) passed++; else { failed++; printf("%s:%d: ", __FILE__, __LINE__); \
    printf(__VA_ARGS__); printf("\n"); } } while (0)

int main(void)
{
    enum { L = 6, PER = 3 };
    static uint64_t emb_shape[2] = {32000, 1024}, mat_shape[2] = {1024, 1024}, vec_shape[1] = {1024};
    size_t n = 2 + L * PER;
    lsw_plan p;
    memset(&p, 0, sizeof p);
    p.n = n;
    p.t = calloc(n, sizeof *p.t);
    lsw_layout_item *items = calloc(n, sizeof *items);
    char names[64][64];
    size_t k = 0;
    for (int l = -1; l <= L; l++) {
        int cnt = (l < 0 || l == L) ? 1 : PER;
        for (int j = 0; j < cnt; j++, k++) {
            lsw_plan_tensor *t = &p.t[k];
            snprintf(names[k], sizeof names[k], "t%zu", k);
            t->name = names[k];
            t->layer = l == L ? -1 : l;
            t->out_dtype = LSW_DT_BF16;
            if (t->layer < 0) {
                t->ndim = 2;
                t->shape = emb_shape;
            } else if (j == 0) {
                t->ndim = 1;
                t->shape = vec_shape;
            } else {
                t->ndim = 2;
                t->shape = mat_shape;
            }
            t->numel = t->shape[0] * (t->ndim == 2 ? t->shape[1] : 1);
            t->nbytes = t->numel * 2;
            p.total_bytes += t->nbytes;
            items[k] = (lsw_layout_item){t->name, t->out_dtype, t->ndim, t->shape, t->numel, t->nbytes, t->layer, 0, 0};
        }
    }
    CHECK(lsw_layout_build(items, n, 40000000, 0, &p.shards, &p.nshards) == 0, "layout");
    for (size_t i = 0; i < n; i++)
        p.t[i].shard = items[i].shard;
    for (int nr = 1; nr <= 8; nr++) {
        lsw_assignment *a = NULL, *b = NULL;
        CHECK(lsw_assign(&p, nr, NULL, NULL, 0, &a) == 0 && lsw_assign(&p, nr, NULL, NULL, 0, &b) == 0, "assign %d", nr);
        int same = a->npieces == b->npieces;
        for (size_t i = 0; same && i < a->npieces; i++)
            same = a->pieces[i].tensor == b->pieces[i].tensor && a->pieces[i].e0 == b->pieces[i].e0 &&
                   a->pieces[i].e1 == b->pieces[i].e1 && a->pieces[i].rank == b->pieces[i].rank;
        CHECK(same, "deterministic at %d ranks", nr);
        /* tiling and row boundaries */
        size_t q = 0;
        for (size_t i = 0; i < n; i++) {
            uint64_t at = 0, row = p.t[i].ndim == 2 ? p.t[i].shape[1] : p.t[i].numel;
            int ranks_seen = 0, last = -1;
            while (q < a->npieces && a->pieces[q].tensor == i) {
                CHECK(a->pieces[q].e0 == at, "tensor %zu piece starts at %llu, expected %llu", i,
                      (unsigned long long)a->pieces[q].e0, (unsigned long long)at);
                CHECK(a->pieces[q].e0 % row == 0 && (a->pieces[q].e1 % row == 0 || a->pieces[q].e1 == p.t[i].numel),
                      "tensor %zu cut inside a row", i);
                CHECK(a->pieces[q].rank >= 0 && a->pieces[q].rank < nr, "rank out of range");
                if (a->pieces[q].rank != last)
                    ranks_seen++, last = a->pieces[q].rank;
                at = a->pieces[q].e1;
                q++;
            }
            CHECK(at == p.t[i].numel, "tensor %zu covered up to %llu of %llu", i, (unsigned long long)at,
                  (unsigned long long)p.t[i].numel);
            if (p.t[i].layer < 0 && nr >= 4)
                CHECK(ranks_seen >= 2, "embedding %zu not spread at %d ranks", i, nr);
        }
        CHECK(q == a->npieces, "pieces beyond the tensors");
        /* a layer's tensors in one shard stay on one rank */
        for (size_t i = 0; i < a->npieces; i++)
            for (size_t j = i + 1; j < a->npieces; j++) {
                const lsw_plan_tensor *x = &p.t[a->pieces[i].tensor], *y = &p.t[a->pieces[j].tensor];
                if (x->layer >= 0 && x->layer == y->layer && x->shard == y->shard)
                    CHECK(a->pieces[i].rank == a->pieces[j].rank, "layer %d split across ranks", x->layer);
            }
        /* balance within each group: max load <= mean + largest item */
        for (size_t g = 0; g < a->ngroups; g++) {
            uint64_t load[8] = {0}, biggest = 0, total = 0;
            for (size_t i = a->groups[g].piece0; i < a->groups[g].piece1; i++) {
                const lsw_piece *pc = &a->pieces[i];
                uint64_t by = (pc->e1 - pc->e0) * 2;
                load[pc->rank] += by;
                total += by;
            }
            /* largest item: a whole layer or one block */
            for (int l = 0; l < L; l++) {
                uint64_t s = 0;
                for (size_t i = a->groups[g].piece0; i < a->groups[g].piece1; i++)
                    if (p.t[a->pieces[i].tensor].layer == l)
                        s += (a->pieces[i].e1 - a->pieces[i].e0) * 2;
                biggest = s > biggest ? s : biggest;
            }
            uint64_t mx = 0;
            for (int r = 0; r < nr; r++)
                mx = load[r] > mx ? load[r] : mx;
            CHECK(mx <= total / (uint64_t)nr + biggest + (2u << 20), "group %zu unbalanced at %d ranks", g, nr);
        }
        lsw_assignment_free(a);
        lsw_assignment_free(b);
    }
    lsw_layout_free_shards(p.shards, p.nshards);
    free(items);
    free(p.t);
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
