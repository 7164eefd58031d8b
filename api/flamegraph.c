/*
 * flamegraph.c - the function-name call tree and its flame graph encodings
 * (API-CONTRACT §6.3), byte-compatible with Pyroscope's NewFlameGraph and
 * NewFlamegraphDiff.
 *
 * One tree carries two sides (values of a plain flame graph or the left of a
 * diff, and the right of a diff), so a diff needs no second tree and no
 * alignment step: a node present on one side only has zeros on the other, which
 * is what Pyroscope's combineTree produces. Children are kept sorted by name
 * (byte order) in an array that doubles in the arena.
 *
 * Layout, as Pyroscope does it: a depth-first walk with an explicit stack onto
 * which a node's kept children are pushed in name order and the synthetic `other`
 * last, so `other` and then the greatest name are visited first; that visit order
 * assigns name indices. Each level collects its nodes in visit order, which is
 * descending x, and is reversed at the end; x offsets are then delta-encoded.
 */
#include "api/pyro.h"
#include "core/mem.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

typedef struct fgnode fgnode;
struct fgnode {
    const char *name;
    int64_t total[2], self[2];
    fgnode **kids; /* sorted by name */
    uint32_t nkids, capkids;
};

struct td__fg {
    td_arena *a;
    fgnode root;
};

td__fg *td__fg_new(td_arena *a)
{
    td__fg *t = td_arena_calloc(a, 1, sizeof(*t));
    if (t) {
        t->a = a;
        t->root.name = "total";
    }
    return t;
}

int64_t td__fg_total(const td__fg *t, int side)
{
    return t->root.total[side];
}

/* The child of n named name, inserted in order when missing; NULL on NOMEM. */
static fgnode *child(td__fg *t, fgnode *n, const char *name)
{
    uint32_t lo = 0, hi = n->nkids;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (strcmp(n->kids[mid]->name, name) < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    if (lo < n->nkids && strcmp(n->kids[lo]->name, name) == 0) {
        return n->kids[lo];
    }
    if (n->nkids == n->capkids) {
        uint32_t cap = n->capkids ? n->capkids * 2 : 2;
        fgnode **k = td_arena_alloc(t->a, sizeof(*k) * cap);
        if (!k) {
            return NULL;
        }
        if (n->nkids) {
            memcpy(k, n->kids, sizeof(*k) * n->nkids);
        }
        n->kids = k;
        n->capkids = cap;
    }
    fgnode *c = td_arena_calloc(t->a, 1, sizeof(*c));
    if (!c) {
        return NULL;
    }
    c->name = name;
    memmove(n->kids + lo + 1, n->kids + lo, sizeof(*n->kids) * (n->nkids - lo));
    n->kids[lo] = c;
    n->nkids++;
    return c;
}

td_status td__fg_add(td__fg *t, int side, const char *const *names, size_t n, int64_t value,
                     td_err *err)
{
    fgnode *cur = &t->root;
    cur->total[side] += value;
    for (size_t i = 0; i < n; i++) {
        cur = child(t, cur, names[i]);
        if (!cur) {
            return td_err_set(err, TD_NOMEM, "flame graph too large");
        }
        cur->total[side] += value;
    }
    if (n) {
        cur->self[side] += value;
    }
    return TD_OK;
}

/* ---- minimum total for max_nodes ---- */

static int cmp_desc(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

/*
 * The values minValue ranks: every node below the root (side-0 totals), or for a
 * diff every node including the root, as max(left, right). NULL on NOMEM.
 */
static int64_t *collect(const td__fg *t, bool diff, size_t *n)
{
    size_t cap = 256, len = 0, sp = 0, spcap = 256 + (size_t)t->root.nkids;
    int64_t *v = td_malloc(cap * sizeof(*v));
    const fgnode **st = td_malloc(spcap * sizeof(*st));
    bool ok = v && st;
    if (ok && diff) {
        st[sp++] = &t->root;
    } else if (ok) {
        for (uint32_t i = 0; i < t->root.nkids; i++) {
            st[sp++] = t->root.kids[i];
        }
    }
    while (ok && sp) {
        const fgnode *x = st[--sp];
        if (len == cap) {
            int64_t *nv = td_realloc(v, cap * 2 * sizeof(*v));
            if (!nv) {
                ok = false;
                break;
            }
            v = nv;
            cap *= 2;
        }
        v[len++] = diff && x->total[1] > x->total[0] ? x->total[1] : x->total[0];
        if (sp + x->nkids > spcap) {
            size_t nc = (sp + x->nkids) * 2;
            const fgnode **ns = td_realloc(st, nc * sizeof(*st));
            if (!ns) {
                ok = false;
                break;
            }
            st = ns;
            spcap = nc;
        }
        for (uint32_t i = 0; i < x->nkids; i++) {
            st[sp++] = x->kids[i];
        }
    }
    td_free(st);
    if (!ok) {
        td_free(v);
        return NULL;
    }
    *n = len;
    return v;
}

/* The max_nodes-th largest value, or 0 when the tree has at most max_nodes nodes. */
static td_status min_value(const td__fg *t, bool diff, int64_t max_nodes, int64_t *out, td_err *err)
{
    *out = 0;
    if (max_nodes < 1) {
        return TD_OK;
    }
    size_t n;
    int64_t *v = collect(t, diff, &n);
    if (!v) {
        return td_err_set(err, TD_NOMEM, "flame graph too large");
    }
    if ((int64_t)n > max_nodes) {
        qsort(v, n, sizeof(*v), cmp_desc);
        *out = v[max_nodes - 1];
    }
    td_free(v);
    return TD_OK;
}

/* ---- layout ---- */

/* A growable int64 array in the arena. */
typedef struct ivec {
    int64_t *v;
    size_t n, cap;
} ivec;

static bool ivec_push(td_arena *a, ivec *iv, const int64_t *vals, size_t k)
{
    if (iv->n + k > iv->cap) {
        size_t cap = iv->cap ? iv->cap * 2 : 64;
        while (cap < iv->n + k) {
            cap *= 2;
        }
        int64_t *nv = td_arena_alloc(a, cap * sizeof(*nv));
        if (!nv) {
            return false;
        }
        if (iv->n) {
            memcpy(nv, iv->v, iv->n * sizeof(*nv));
        }
        iv->v = nv;
        iv->cap = cap;
    }
    memcpy(iv->v + iv->n, vals, k * sizeof(*vals));
    iv->n += k;
    return true;
}

/* Name interning in first-visit order: an open-addressing table of indices. */
typedef struct names {
    const char **v;
    size_t n, cap;
    uint32_t *slots; /* index + 1, 0 = empty */
    size_t nslots;
} names;

static uint64_t strhash(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) {
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    }
    return h;
}

static bool names_rehash(td_arena *a, names *nm, size_t nslots)
{
    uint32_t *s = td_arena_calloc(a, nslots, sizeof(*s));
    if (!s) {
        return false;
    }
    for (size_t i = 0; i < nm->n; i++) {
        size_t h = strhash(nm->v[i]) & (nslots - 1);
        while (s[h]) {
            h = (h + 1) & (nslots - 1);
        }
        s[h] = (uint32_t)i + 1;
    }
    nm->slots = s;
    nm->nslots = nslots;
    return true;
}

/* Index of name, appended when new; -1 on NOMEM. */
static int64_t names_intern(td_arena *a, names *nm, const char *name)
{
    if ((nm->n + 1) * 2 > nm->nslots) {
        if (!names_rehash(a, nm, nm->nslots ? nm->nslots * 2 : 64)) {
            return -1;
        }
    }
    size_t h = strhash(name) & (nm->nslots - 1);
    while (nm->slots[h]) {
        uint32_t i = nm->slots[h] - 1;
        if (strcmp(nm->v[i], name) == 0) {
            return i;
        }
        h = (h + 1) & (nm->nslots - 1);
    }
    if (nm->n == nm->cap) {
        size_t cap = nm->cap ? nm->cap * 2 : 64;
        const char **nv = td_arena_alloc(a, cap * sizeof(*nv));
        if (!nv) {
            return -1;
        }
        if (nm->n) {
            memcpy(nv, nm->v, nm->n * sizeof(*nv));
        }
        nm->v = nv;
        nm->cap = cap;
    }
    nm->v[nm->n] = name;
    nm->slots[h] = (uint32_t)nm->n + 1;
    return (int64_t)nm->n++;
}

/* One entry of the walk: a node (or a synthetic `other`) with its x offsets. */
typedef struct item {
    const fgnode *n;  /* NULL for `other` */
    int64_t total[2]; /* for `other` (self = total) */
    int64_t x[2];
    uint32_t level;
} item;

typedef struct walk {
    item *v;
    size_t n, cap;
} walk;

static bool walk_push(walk *w, item it)
{
    if (w->n == w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 256;
        item *nv = td_realloc(w->v, cap * sizeof(*nv));
        if (!nv) {
            return false;
        }
        w->v = nv;
        w->cap = cap;
    }
    w->v[w->n++] = it;
    return true;
}

/*
 * The shared walk. width 4: plain ([x, total, self, name]); width 7: diff
 * ([xl, totl, selfl, xr, totr, selfr, name]). Fills levels (reversed to ascending
 * x and delta-encoded), names and max_self.
 */
static td_status layout(const td__fg *t, bool diff, int64_t min_val, td_arena *a, ivec **levels_out,
                        size_t *nlevels_out, names *nm, int64_t *max_self, td_err *err)
{
    size_t width = diff ? 7 : 4, nlevels = 0, caplevels = 0;
    ivec *levels = NULL;
    walk w = {0};
    td_status st = TD_OK;
    *max_self = 0;
    item root = {.n = &t->root, .level = 0};
    if (!walk_push(&w, root)) {
        return td_err_set(err, TD_NOMEM, "flame graph too large");
    }
    while (w.n) {
        item cur = w.v[--w.n];
        int64_t tot[2], self[2];
        const char *name;
        if (cur.n) {
            name = cur.n == &t->root ? "total" : cur.n->name;
            for (int s = 0; s < 2; s++) {
                tot[s] = cur.n->total[s];
                self[s] = cur.n->self[s];
            }
        } else {
            name = "other";
            for (int s = 0; s < 2; s++) {
                tot[s] = self[s] = cur.total[s];
            }
        }
        for (int s = 0; s < (diff ? 2 : 1); s++) {
            if (self[s] > *max_self) {
                *max_self = self[s];
            }
        }
        int64_t idx = names_intern(a, nm, name);
        if (idx < 0) {
            st = td_err_set(err, TD_NOMEM, "flame graph too large");
            break;
        }
        if (cur.level == nlevels) {
            if (nlevels == caplevels) {
                size_t cap = caplevels ? caplevels * 2 : 16;
                ivec *nl = td_arena_calloc(a, cap, sizeof(*nl));
                if (!nl) {
                    st = td_err_set(err, TD_NOMEM, "flame graph too large");
                    break;
                }
                if (nlevels) {
                    memcpy(nl, levels, nlevels * sizeof(*nl));
                }
                levels = nl;
                caplevels = cap;
            }
            nlevels++;
        }
        int64_t vals[7];
        if (diff) {
            int64_t d[7] = {cur.x[0], tot[0], self[0], cur.x[1], tot[1], self[1], idx};
            memcpy(vals, d, sizeof(d));
        } else {
            int64_t d[4] = {cur.x[0], tot[0], self[0], idx};
            memcpy(vals, d, sizeof(d));
        }
        if (!ivec_push(a, &levels[cur.level], vals, width)) {
            st = td_err_set(err, TD_NOMEM, "flame graph too large");
            break;
        }
        if (!cur.n) {
            continue;
        }
        int64_t x[2] = {cur.x[0] + self[0], cur.x[1] + self[1]};
        int64_t other[2] = {0, 0};
        for (uint32_t i = 0; i < cur.n->nkids; i++) {
            const fgnode *c = cur.n->kids[i];
            bool keep = diff ? (c->total[0] >= min_val || c->total[1] >= min_val)
                             : (c->total[0] >= min_val && strcmp(c->name, "other") != 0);
            if (keep) {
                item it = {.n = c, .x = {x[0], x[1]}, .level = cur.level + 1};
                if (!walk_push(&w, it)) {
                    st = td_err_set(err, TD_NOMEM, "flame graph too large");
                    goto out;
                }
                x[0] += c->total[0];
                x[1] += c->total[1];
            } else {
                other[0] += c->total[0];
                other[1] += c->total[1];
            }
        }
        if (other[0] != 0 || (diff && other[1] != 0)) {
            item it = {.n = NULL,
                       .total = {other[0], other[1]},
                       .x = {x[0], x[1]},
                       .level = cur.level + 1};
            if (!walk_push(&w, it)) {
                st = td_err_set(err, TD_NOMEM, "flame graph too large");
                goto out;
            }
        }
    }
out:
    td_free(w.v);
    if (st != TD_OK) {
        return st;
    }
    /* visit order is descending x within a level: reverse, then delta-encode x */
    for (size_t l = 0; l < nlevels; l++) {
        ivec *iv = &levels[l];
        size_t k = iv->n / width;
        for (size_t i = 0; i < k / 2; i++) {
            int64_t tmp[7];
            memcpy(tmp, iv->v + i * width, width * sizeof(int64_t));
            memcpy(iv->v + i * width, iv->v + (k - 1 - i) * width, width * sizeof(int64_t));
            memcpy(iv->v + (k - 1 - i) * width, tmp, width * sizeof(int64_t));
        }
        for (size_t off = 0; off < (diff ? 2u : 1u); off++) {
            size_t start = off * 3;
            int64_t prev = 0;
            for (size_t i = start; i < iv->n; i += width) {
                iv->v[i] -= prev;
                prev += iv->v[i] + iv->v[i + 1];
            }
        }
    }
    *levels_out = levels;
    *nlevels_out = nlevels;
    return TD_OK;
}

static td_status make_levels(td_arena *a, ivec *levels, size_t nlevels, Querier__V1__Level ***out,
                             td_err *err)
{
    Querier__V1__Level **lv = td_arena_calloc(a, nlevels ? nlevels : 1, sizeof(*lv));
    if (!lv) {
        return td_err_set(err, TD_NOMEM, "flame graph too large");
    }
    for (size_t i = 0; i < nlevels; i++) {
        lv[i] = td_arena_alloc(a, sizeof(**lv));
        if (!lv[i]) {
            return td_err_set(err, TD_NOMEM, "flame graph too large");
        }
        querier__v1__level__init(lv[i]);
        lv[i]->n_values = levels[i].n;
        lv[i]->values = levels[i].v;
    }
    *out = lv;
    return TD_OK;
}

td_status td__fg_flamegraph(const td__fg *t, int64_t max_nodes, td_arena *a,
                            Querier__V1__FlameGraph **out, td_err *err)
{
    int64_t min_val, max_self;
    if (min_value(t, false, max_nodes, &min_val, err) != TD_OK) {
        return err->code;
    }
    names nm = {0};
    ivec *levels;
    size_t nlevels;
    if (layout(t, false, min_val, a, &levels, &nlevels, &nm, &max_self, err) != TD_OK) {
        return err->code;
    }
    Querier__V1__FlameGraph *fg = td_arena_alloc(a, sizeof(*fg));
    if (!fg) {
        return td_err_set(err, TD_NOMEM, "flame graph too large");
    }
    querier__v1__flame_graph__init(fg);
    if (make_levels(a, levels, nlevels, &fg->levels, err) != TD_OK) {
        return err->code;
    }
    fg->n_levels = nlevels;
    fg->names = (char **)nm.v;
    fg->n_names = nm.n;
    fg->total = t->root.total[0];
    fg->max_self = max_self;
    *out = fg;
    return TD_OK;
}

td_status td__fg_diff(const td__fg *t, int64_t max_nodes, td_arena *a,
                      Querier__V1__FlameGraphDiff **out, td_err *err)
{
    int64_t min_val, max_self;
    if (min_value(t, true, max_nodes, &min_val, err) != TD_OK) {
        return err->code;
    }
    names nm = {0};
    ivec *levels;
    size_t nlevels;
    if (layout(t, true, min_val, a, &levels, &nlevels, &nm, &max_self, err) != TD_OK) {
        return err->code;
    }
    Querier__V1__FlameGraphDiff *fg = td_arena_alloc(a, sizeof(*fg));
    if (!fg) {
        return td_err_set(err, TD_NOMEM, "flame graph too large");
    }
    querier__v1__flame_graph_diff__init(fg);
    if (make_levels(a, levels, nlevels, &fg->levels, err) != TD_OK) {
        return err->code;
    }
    fg->n_levels = nlevels;
    fg->names = (char **)nm.v;
    fg->n_names = nm.n;
    fg->leftticks = t->root.total[0];
    fg->rightticks = t->root.total[1];
    fg->total = t->root.total[0] + t->root.total[1];
    fg->max_self = max_self;
    *out = fg;
    return TD_OK;
}

/* ---- Graphviz (DOT) call graph ---- */

typedef struct dotfn {
    int64_t flat, cum;
    uint32_t onpath; /* times the name is on the current walk's path */
    bool keep;
} dotfn;

typedef struct dotedge {
    uint32_t from, to;
    int64_t w;
} dotedge;

static int cmp_edge(const void *a, const void *b)
{
    const dotedge *x = a, *y = b;
    if (x->from != y->from) {
        return x->from < y->from ? -1 : 1;
    }
    return x->to < y->to ? -1 : x->to > y->to;
}

typedef struct dotwalk {
    const fgnode *n;
    int64_t parent; /* name index of the parent frame, -1 at the top */
    bool leave;     /* second visit: take the name off the path */
} dotwalk;

static void dot_label(td_buf *out, const char *s)
{
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') {
            td_buf_addch(out, '\\');
        }
        td_buf_addch(out, (unsigned char)*s < 0x20 ? ' ' : *s);
    }
}

td_status td__fg_dot(const td__fg *t, int64_t max_nodes, const char *type, td_arena *a, td_buf *out,
                     td_err *err)
{
    names nm = {0};
    dotfn *fn = NULL;
    size_t capfn = 0;
    dotedge *edges = NULL;
    size_t nedges = 0, capedges = 0;
    dotwalk *st = NULL;
    size_t sp = 0, capst = 0;
    td_status rc = TD_OK;
#define DOT_PUSH(arr, n, cap, val)                                                                 \
    do {                                                                                           \
        if ((n) == (cap)) {                                                                        \
            size_t nc = (cap) ? (cap)*2 : 256;                                                     \
            void *np = td_realloc((arr), nc * sizeof(*(arr)));                                     \
            if (!np) {                                                                             \
                rc = td_err_set(err, TD_NOMEM, "graph too large");                                 \
                goto out;                                                                          \
            }                                                                                      \
            (arr) = np;                                                                            \
            (cap) = nc;                                                                            \
        }                                                                                          \
        (arr)[(n)++] = (val);                                                                      \
    } while (0)
    for (uint32_t i = t->root.nkids; i-- > 0;) {
        DOT_PUSH(st, sp, capst, ((dotwalk){.n = t->root.kids[i], .parent = -1}));
    }
    while (sp) {
        dotwalk w = st[--sp];
        int64_t idx = names_intern(a, &nm, w.n->name);
        if (idx < 0) {
            rc = td_err_set(err, TD_NOMEM, "graph too large");
            goto out;
        }
        if (w.leave) {
            fn[idx].onpath--;
            continue;
        }
        while (capfn <= (size_t)idx) {
            size_t nc = capfn ? capfn * 2 : 256;
            dotfn *nf = td_realloc(fn, nc * sizeof(*nf));
            if (!nf) {
                rc = td_err_set(err, TD_NOMEM, "graph too large");
                goto out;
            }
            memset(nf + capfn, 0, (nc - capfn) * sizeof(*nf));
            fn = nf;
            capfn = nc;
        }
        fn[idx].flat += w.n->self[0];
        if (!fn[idx].onpath) {
            fn[idx].cum += w.n->total[0];
        }
        if (w.parent >= 0) {
            DOT_PUSH(
                edges, nedges, capedges,
                ((dotedge){.from = (uint32_t)w.parent, .to = (uint32_t)idx, .w = w.n->total[0]}));
        }
        fn[idx].onpath++;
        DOT_PUSH(st, sp, capst, ((dotwalk){.n = w.n, .parent = w.parent, .leave = true}));
        for (uint32_t i = w.n->nkids; i-- > 0;) {
            DOT_PUSH(st, sp, capst, ((dotwalk){.n = w.n->kids[i], .parent = idx}));
        }
    }
    /* keep the max_nodes functions with the largest cumulative values */
    int64_t *cums = nm.n ? td_malloc(nm.n * sizeof(*cums)) : NULL;
    if (nm.n && !cums) {
        rc = td_err_set(err, TD_NOMEM, "graph too large");
        goto out;
    }
    for (size_t i = 0; i < nm.n; i++) {
        cums[i] = fn[i].cum;
    }
    int64_t min_cum = 0;
    if (max_nodes > 0 && nm.n > (size_t)max_nodes) {
        qsort(cums, nm.n, sizeof(*cums), cmp_desc);
        min_cum = cums[max_nodes - 1];
    }
    td_free(cums);
    size_t kept = 0;
    for (size_t i = 0; i < nm.n; i++) {
        fn[i].keep = fn[i].cum >= min_cum && kept < (size_t)(max_nodes > 0 ? max_nodes : INT64_MAX);
        kept += fn[i].keep;
    }
    int64_t total = t->root.total[0];
    double pct = total ? 100.0 / (double)total : 0;
    td_buf_addstr(out, "digraph \"unnamed\" {\nnode [style=filled fillcolor=\"#f8f8f8\"]\n");
    td_buf_addstr(out, "subgraph cluster_L { \"Type: ");
    dot_label(out, type);
    td_buf_addstr(out, "\" [shape=box fontsize=16 label=\"Type: ");
    dot_label(out, type);
    td_buf_addf(out, "\\lShowing %zu of %zu nodes, %" PRId64 " total\\l\"] }\n", kept, nm.n, total);
    for (size_t i = 0; i < nm.n; i++) {
        if (!fn[i].keep) {
            continue;
        }
        td_buf_addf(out, "N%zu [label=\"", i + 1);
        dot_label(out, nm.v[i]);
        td_buf_addf(out, "\\n%" PRId64 " (%.2f%%)\\nof %" PRId64 " (%.2f%%)\" shape=box]\n",
                    fn[i].flat, (double)fn[i].flat * pct, fn[i].cum, (double)fn[i].cum * pct);
    }
    qsort(edges, nedges, sizeof(*edges), cmp_edge);
    for (size_t i = 0; i < nedges;) {
        size_t j = i;
        int64_t w = 0;
        while (j < nedges && edges[j].from == edges[i].from && edges[j].to == edges[i].to) {
            w += edges[j++].w;
        }
        if (fn[edges[i].from].keep && fn[edges[i].to].keep) {
            td_buf_addf(out, "N%u -> N%u [label=\" %" PRId64 "\"]\n", edges[i].from + 1,
                        edges[i].to + 1, w);
        }
        i = j;
    }
    td_buf_addstr(out, "}\n");
#undef DOT_PUSH
out:
    td_free(fn);
    td_free(edges);
    td_free(st);
    return rc;
}
