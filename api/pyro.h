/*
 * pyro.h - internal interface of the Pyroscope query side of the query port:
 * the flame graph builder (flamegraph.c) and the querier.v1 Connect service plus the
 * legacy /pyroscope routes (pyro_query.c). Nothing here is public API.
 *
 * Thread-safety: a td__fg belongs to one thread; the pyro entry points are
 * reentrant (td_pstore is thread-safe).
 */
#ifndef TD_API_PYRO_H
#define TD_API_PYRO_H

#include "api/connect.h"
#include "core/arena.h"
#include "core/buf.h"
#include "core/status.h"
#include "proto/proto.h"
#include "store/pstore.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- flamegraph.c: the function-name call tree (API-CONTRACT §6.3) ---- */

#define TD_FG_DEFAULT_MAX_NODES 8192
#define TD_FG_MAX_MAX_NODES 1048576

typedef struct td__fg td__fg;

/* An empty tree whose nodes live in arena a (NULL when the arena is exhausted). */
td__fg *td__fg_new(td_arena *a);

/*
 * Add value to the stack names[0..n), root first (names must outlive the tree),
 * on side 0 (a plain flame graph, or the left of a diff) or 1 (the right). Every
 * node on the path gains value in total; the last gains it in self. Consecutive
 * equal names are not collapsed. Errors: TD_NOMEM.
 */
td_status td__fg_add(td__fg *t, int side, const char *const *names, size_t n, int64_t value,
                     td_err *err);

/* Sum of the values added on side. */
int64_t td__fg_total(const td__fg *t, int side);

/*
 * The side-0 flame graph with max_nodes (> 0) as Pyroscope builds it: minimum
 * total = the max_nodes-th largest node total, smaller children folded into
 * `other`, names in first-visit order, 4 ints per node. An empty tree gives the
 * single root node [0,0,0,0]. Allocated in a. Errors: TD_NOMEM.
 */
td_status td__fg_flamegraph(const td__fg *t, int64_t max_nodes, td_arena *a,
                            Querier__V1__FlameGraph **out, td_err *err);

/* The diff of side 0 (left) and side 1 (right), 7 ints per node. Errors: TD_NOMEM. */
td_status td__fg_diff(const td__fg *t, int64_t max_nodes, td_arena *a,
                      Querier__V1__FlameGraphDiff **out, td_err *err);

/*
 * The side-0 tree as a Graphviz call graph (functions with flat and cumulative
 * values, caller -> callee edges), the max_nodes (> 0) functions with the largest
 * cumulative values; appended to out. Errors: TD_NOMEM.
 */
td_status td__fg_dot(const td__fg *t, int64_t max_nodes, const char *type, td_arena *a, td_buf *out,
                     td_err *err);

/* ---- pyro_query.c ---- */

typedef struct td__pyro {
    td_pstore *ps; /* NULL: every method answers unavailable */
    bool multitenancy;
} td__pyro;

/* The querier.v1 method table (paths, descriptors, handlers; ud = td__pyro). */
extern const td_connect_method td__pyro_methods[];
extern const size_t td__pyro_nmethods;

/* Query parameters of a legacy GET route: the value of name, or NULL. */
typedef const char *(*td__pyro_arg_fn)(void *cookie, const char *name);

/* A legacy HTTP answer. */
typedef struct td__pyro_reply {
    int status;
    const char *ctype;
    td_buf *body;
} td__pyro_reply;

/* GET /pyroscope/render, /pyroscope/render-diff, /pyroscope/label-values (§6.5). */
void td__pyro_render(td__pyro *p, const char *org_id, td__pyro_arg_fn arg, void *cookie,
                     td__pyro_reply *rp);
void td__pyro_render_diff(td__pyro *p, const char *org_id, td__pyro_arg_fn arg, void *cookie,
                          td__pyro_reply *rp);
void td__pyro_label_values(td__pyro *p, const char *org_id, td__pyro_arg_fn arg, void *cookie,
                           td__pyro_reply *rp);

/*
 * SelectSeries point arithmetic (§6.2): the boundary t_k = start + k*step_ms with
 * t_{k-1} < ts <= t_k, or -1 when ts is outside (start - step, end].
 */
int64_t td__pyro_step_index(int64_t start_ms, int64_t end_ms, int64_t step_ms, int64_t ts_ms);

#endif
