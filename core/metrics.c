#include "metrics.h"

#include "mem.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

static const double buckets[] = {TD_LATENCY_BUCKETS};
#define NBUCKETS (sizeof(buckets) / sizeof(buckets[0]))

struct td_metric {
    td_metric *next;
    char *lv[3];
    _Atomic int64_t value;                /* counter / gauge */
    _Atomic uint64_t bucket[NBUCKETS + 1]; /* histogram: per bucket (not cumulative), +Inf */
    _Atomic uint64_t sum_bits;            /* histogram sum as double bits */
};

static const struct {
    td_metric_type type;
    const char *name;
    const char *help;
    const char *labels;
} defs[] = {
#define TD__MDEF(id, type, name, help, labels) {type, name, help, labels},
    TD_METRIC_DEFS(TD__MDEF)
#undef TD__MDEF
};

static struct {
    pthread_mutex_t lock;
    td_metric *series[TD__M_COUNT];
    int64_t (*fn[TD__M_COUNT])(void *);
    void *fn_ud[TD__M_COUNT];
} reg = {.lock = PTHREAD_MUTEX_INITIALIZER};

static int streq(const char *a, const char *b)
{
    if (!a || !b) {
        return a == b;
    }
    return strcmp(a, b) == 0;
}

td_metric *td_metric_series(td_metric_id id, const char *l1, const char *l2, const char *l3)
{
    TD_ASSERT((unsigned)id < TD__M_COUNT);
    const char *lv[3] = {l1, l2, l3};
    pthread_mutex_lock(&reg.lock);
    td_metric *m;
    for (m = reg.series[id]; m; m = m->next) {
        if (streq(m->lv[0], lv[0]) && streq(m->lv[1], lv[1]) && streq(m->lv[2], lv[2])) {
            break;
        }
    }
    if (!m) {
        m = td_xcalloc(1, sizeof(*m));
        for (int i = 0; i < 3; i++) {
            m->lv[i] = lv[i] ? td_xstrdup(lv[i]) : NULL;
        }
        /* append so exposition order follows creation order */
        td_metric **pp = &reg.series[id];
        while (*pp) {
            pp = &(*pp)->next;
        }
        *pp = m;
    }
    pthread_mutex_unlock(&reg.lock);
    return m;
}

void td_metric_add(td_metric *m, uint64_t v)
{
    atomic_fetch_add_explicit(&m->value, (int64_t)v, memory_order_relaxed);
}

void td_metric_set(td_metric *m, int64_t v)
{
    atomic_store_explicit(&m->value, v, memory_order_relaxed);
}

void td_metric_observe(td_metric *m, double v)
{
    size_t i = 0;
    while (i < NBUCKETS && v > buckets[i]) {
        i++;
    }
    atomic_fetch_add_explicit(&m->bucket[i], 1, memory_order_relaxed);
    uint64_t old = atomic_load_explicit(&m->sum_bits, memory_order_relaxed);
    for (;;) {
        double d;
        memcpy(&d, &old, sizeof(d));
        d += v;
        uint64_t nw;
        memcpy(&nw, &d, sizeof(nw));
        if (atomic_compare_exchange_weak(&m->sum_bits, &old, nw)) {
            break;
        }
    }
}

uint64_t td_metric_get(const td_metric *m)
{
    int64_t v = atomic_load_explicit(&m->value, memory_order_relaxed);
    if (v) {
        return (uint64_t)v;
    }
    uint64_t n = 0;
    for (size_t i = 0; i <= NBUCKETS; i++) {
        n += atomic_load_explicit(&m->bucket[i], memory_order_relaxed);
    }
    return n;
}

void td_count(td_metric_id id, uint64_t v, const char *l1, const char *l2)
{
    td_metric_add(td_metric_series(id, l1, l2, NULL), v);
}

/*
 * fn == NULL unregisters, but only the registration made with the same ud, so an
 * owner going away (a closed store) cannot remove a newer owner's function.
 * Scrapes call fn under reg.lock, so once this returns fn is no longer running
 * with the old ud and the owner may free it.
 */
void td_metric_gauge_fn(td_metric_id id, int64_t (*fn)(void *ud), void *ud)
{
    TD_ASSERT((unsigned)id < TD__M_COUNT && defs[id].type == TD_GAUGE);
    if (fn) {
        td_metric_series(id, NULL, NULL, NULL);
    }
    pthread_mutex_lock(&reg.lock);
    if (fn) {
        reg.fn[id] = fn;
        reg.fn_ud[id] = ud;
    } else if (reg.fn_ud[id] == ud) {
        reg.fn[id] = NULL;
        reg.fn_ud[id] = NULL;
    }
    pthread_mutex_unlock(&reg.lock);
}

static void add_label_value(td_buf *out, const char *v)
{
    for (; *v; v++) {
        if (*v == '\\' || *v == '"') {
            td_buf_addch(out, '\\');
            td_buf_addch(out, *v);
        } else if (*v == '\n') {
            td_buf_addstr(out, "\\n");
        } else {
            td_buf_addch(out, *v);
        }
    }
}

/* {a="x",b="y"} with an optional extra label (le for buckets). */
static void add_labels(td_buf *out, const char *names, td_metric *m, const char *extra_k,
                       const char *extra_v)
{
    int n = 0;
    const char *p = names;
    int i = 0;
    while (*p && i < 3) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (m->lv[i]) {
            td_buf_addstr(out, n++ ? "," : "{");
            td_buf_add(out, p, len);
            td_buf_addstr(out, "=\"");
            add_label_value(out, m->lv[i]);
            td_buf_addch(out, '"');
        }
        i++;
        p = comma ? comma + 1 : p + len;
    }
    if (extra_k) {
        td_buf_addf(out, "%s%s=\"%s\"", n++ ? "," : "{", extra_k, extra_v);
    }
    if (n) {
        td_buf_addch(out, '}');
    }
}

static void add_double(td_buf *out, double d)
{
    if (isinf(d)) {
        td_buf_addstr(out, d > 0 ? "+Inf" : "-Inf");
    } else {
        td_buf_addf(out, "%.17g", d);
    }
}

void td_metrics_write(td_buf *out)
{
    static const char *type_names[] = {"counter", "gauge", "histogram"};
    pthread_mutex_lock(&reg.lock);
    for (int id = 0; id < TD__M_COUNT; id++) {
        if (!reg.series[id]) {
            continue;
        }
        td_buf_addf(out, "# HELP %s %s\n# TYPE %s %s\n", defs[id].name, defs[id].help,
                    defs[id].name, type_names[defs[id].type]);
        for (td_metric *m = reg.series[id]; m; m = m->next) {
            if (defs[id].type != TD_HISTOGRAM) {
                int64_t v = atomic_load_explicit(&m->value, memory_order_relaxed);
                if (reg.fn[id] && !m->lv[0]) {
                    v = reg.fn[id](reg.fn_ud[id]);
                }
                td_buf_addstr(out, defs[id].name);
                add_labels(out, defs[id].labels, m, NULL, NULL);
                td_buf_addf(out, " %lld\n", (long long)v);
                continue;
            }
            uint64_t cum = 0;
            for (size_t i = 0; i <= NBUCKETS; i++) {
                char le[32];
                if (i < NBUCKETS) {
                    snprintf(le, sizeof(le), "%g", buckets[i]);
                } else {
                    snprintf(le, sizeof(le), "+Inf");
                }
                cum += atomic_load_explicit(&m->bucket[i], memory_order_relaxed);
                td_buf_addf(out, "%s_bucket", defs[id].name);
                add_labels(out, defs[id].labels, m, "le", le);
                td_buf_addf(out, " %llu\n", (unsigned long long)cum);
            }
            uint64_t bits = atomic_load_explicit(&m->sum_bits, memory_order_relaxed);
            double sum;
            memcpy(&sum, &bits, sizeof(sum));
            td_buf_addf(out, "%s_sum", defs[id].name);
            add_labels(out, defs[id].labels, m, NULL, NULL);
            td_buf_addch(out, ' ');
            add_double(out, sum);
            td_buf_addf(out, "\n%s_count", defs[id].name);
            add_labels(out, defs[id].labels, m, NULL, NULL);
            td_buf_addf(out, " %llu\n", (unsigned long long)cum);
        }
    }
    pthread_mutex_unlock(&reg.lock);
}
