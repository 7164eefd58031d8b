/*
 * pquery.c - bench_pquery: SelectMergeStacktraces latency as Grafana calls it
 * (Connect unary, application/proto, max_nodes 8192) for windows ending at the
 * end of the loaded data, over one service.
 *
 *   bench_pquery --target 127.0.0.1:PORT --service NAME --end-s UNIX_S
 *                [--windows 3600,86400] [--n 20] [--max-nodes 8192]
 *                [--type process_cpu:cpu:nanoseconds:cpu:nanoseconds]
 *                [--max-seconds 300] [--tenant ID] [--tsv FILE]
 *
 * The request is encoded by hand: 1 profile_typeID, 2 label_selector
 * ({service_name="NAME"}), 3 start ms, 4 end ms, 5 max_nodes. A request is ok
 * when the answer is a 200 whose FlameGraph (field 1) has more than one name
 * and a positive total. Per window, the first request (cold caches) is
 * reported on its own; p50/p90/p99 are over the --n requests after it, sent
 * one after the other on one keep-alive connection.
 *
 * Output: a markdown table on stdout; --tsv FILE writes
 * window_s, n, ok, first_ms, p50_ms, p90_ms, p99_ms, max_ms, names, total, bytes.
 */
#include "httpc.h"

#include "core/buf.h"
#include "core/mem.h"

#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void put_varint(td_buf *b, uint64_t v)
{
    do {
        td_buf_addch(b, (char)((v & 0x7f) | (v > 0x7f ? 0x80 : 0)));
        v >>= 7;
    } while (v);
}

static void put_str(td_buf *b, uint32_t field, const char *s)
{
    put_varint(b, (uint64_t)field << 3 | 2);
    put_varint(b, strlen(s));
    td_buf_addstr(b, s);
}

static void put_int(td_buf *b, uint32_t field, uint64_t v)
{
    put_varint(b, (uint64_t)field << 3);
    put_varint(b, v);
}

static bool get_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
    *v = 0;
    for (int sh = 0; sh < 64 && *p < end; sh += 7) {
        uint8_t c = *(*p)++;
        *v |= (uint64_t)(c & 0x7f) << sh;
        if (!(c & 0x80)) {
            return true;
        }
    }
    return false;
}

/* Walk a message; for each field call back. Returns false on malformed input. */
typedef struct fg {
    uint64_t names, levels;
    int64_t total;
} fg;

static bool skip_field(const uint8_t **p, const uint8_t *end, uint32_t wt, const uint8_t **val,
                       uint64_t *len, uint64_t *num)
{
    switch (wt) {
    case 0:
        return get_varint(p, end, num);
    case 1:
        if (end - *p < 8) {
            return false;
        }
        *p += 8;
        return true;
    case 2:
        if (!get_varint(p, end, len) || (uint64_t)(end - *p) < *len) {
            return false;
        }
        *val = *p;
        *p += *len;
        return true;
    case 5:
        if (end - *p < 4) {
            return false;
        }
        *p += 4;
        return true;
    default:
        return false;
    }
}

static bool parse_flamegraph(const uint8_t *p, const uint8_t *end, fg *out)
{
    memset(out, 0, sizeof(*out));
    while (p < end) {
        uint64_t key, len = 0, num = 0;
        const uint8_t *val = NULL;
        if (!get_varint(&p, end, &key) ||
            !skip_field(&p, end, (uint32_t)(key & 7), &val, &len, &num)) {
            return false;
        }
        if (key >> 3 != 1 || (key & 7) != 2) {
            continue;
        }
        /* FlameGraph */
        const uint8_t *q = val, *qe = val + len;
        while (q < qe) {
            uint64_t k2, l2 = 0, n2 = 0;
            const uint8_t *v2 = NULL;
            if (!get_varint(&q, qe, &k2) ||
                !skip_field(&q, qe, (uint32_t)(k2 & 7), &v2, &l2, &n2)) {
                return false;
            }
            if (k2 >> 3 == 1) {
                out->names++;
            } else if (k2 >> 3 == 2) {
                out->levels++;
            } else if (k2 >> 3 == 3) {
                out->total = (int64_t)n2;
            }
        }
    }
    return true;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(const double *v, size_t n, int p)
{
    if (!n) {
        return 0;
    }
    size_t i = (n * (size_t)p + 99) / 100;
    return v[i ? i - 1 : 0];
}

static void usage(FILE *f)
{
    fprintf(f, "usage: bench_pquery --target HOST:PORT --service NAME --end-s UNIX_S\n"
               "                    [--windows 3600,86400] [--n 20] [--max-nodes 8192]\n"
               "                    [--type ID] [--max-seconds 300] [--tenant ID] [--tsv FILE]\n");
}

int main(int argc, char **argv)
{
    const char *target = NULL, *service = NULL, *windows = "3600,86400", *tsv = NULL,
               *tenant = NULL, *type = "process_cpu:cpu:nanoseconds:cpu:nanoseconds";
    int64_t end_s = 0;
    int n = 20;
    long max_nodes = 8192;
    double max_seconds = 300;
    static const struct option lo[] = {
        {"target", required_argument, NULL, 't'}, {"service", required_argument, NULL, 's'},
        {"end-s", required_argument, NULL, 'e'},  {"windows", required_argument, NULL, 'w'},
        {"n", required_argument, NULL, 'n'},      {"max-nodes", required_argument, NULL, 'm'},
        {"type", required_argument, NULL, 'y'},   {"max-seconds", required_argument, NULL, 'x'},
        {"tenant", required_argument, NULL, 'o'}, {"tsv", required_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (ch) {
        case 't':
            target = optarg;
            break;
        case 's':
            service = optarg;
            break;
        case 'e':
            end_s = atoll(optarg);
            break;
        case 'w':
            windows = optarg;
            break;
        case 'n':
            n = atoi(optarg);
            break;
        case 'm':
            max_nodes = atol(optarg);
            break;
        case 'y':
            type = optarg;
            break;
        case 'x':
            max_seconds = atof(optarg);
            break;
        case 'o':
            tenant = optarg;
            break;
        case 'v':
            tsv = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (!target || !service || end_s <= 0 || n < 1 || optind != argc) {
        usage(stderr);
        return 2;
    }
    td_err err;
    td_err_init(&err);
    td_bench_http h;
    if (td_bench_http_init(&h, target, 120000, &err) != TD_OK) {
        fprintf(stderr, "bench_pquery: %s\n", err.msg);
        return 1;
    }
    FILE *tf = NULL;
    if (tsv && !(tf = fopen(tsv, "w"))) {
        perror(tsv);
        return 1;
    }
    td_buf hdr, sel, req;
    td_buf_init(&hdr, 256);
    td_buf_init(&sel, 256);
    td_buf_init(&req, 512);
    td_buf_addstr(&hdr, "Content-Type: application/proto\r\nConnect-Protocol-Version: 1\r\n"
                        "Accept-Encoding: identity\r\n");
    if (tenant) {
        td_buf_addf(&hdr, "X-Scope-OrgID: %s\r\n", tenant);
    }
    td_buf_addf(&sel, "{service_name=\"%s\"}", service);
    td_bench_http_resp r;
    td_bench_http_resp_init(&r);
    double *lat = td_xcalloc((size_t)n + 1, sizeof(double));
    int bad_total = 0, shown = 0;
    printf("| window | requests | ok | first (cold) ms | p50 ms | p90 ms | p99 ms | max ms | "
           "flame graph names | total (s of CPU) | response KB |\n");
    printf("|---|---|---|---|---|---|---|---|---|---|---|\n");
    for (const char *w = windows; *w;) {
        char *next;
        long win = strtol(w, &next, 10);
        if (win <= 0) {
            fprintf(stderr, "bench_pquery: bad --windows\n");
            return 2;
        }
        w = *next == ',' ? next + 1 : next;
        td_buf_reset(&req);
        put_str(&req, 1, type);
        put_str(&req, 2, sel.data);
        put_int(&req, 3, (uint64_t)(end_s - win) * 1000);
        put_int(&req, 4, (uint64_t)end_s * 1000);
        put_int(&req, 5, (uint64_t)max_nodes);
        double first = 0, t_begin = now_s();
        int ok = 0, done = 0;
        size_t nl = 0;
        fg last = {0};
        size_t bytes = 0;
        for (int i = 0; i <= n; i++) {
            if (i > 1 && now_s() - t_begin > max_seconds) {
                fprintf(stderr, "bench_pquery: window %ld s: stopped after %.0f s\n", win,
                        max_seconds);
                break;
            }
            double t0 = now_s();
            td_status st =
                td_bench_http_do(&h, "POST", "/querier.v1.QuerierService/SelectMergeStacktraces",
                                 hdr.data, req.data, req.len, &r, &err);
            double dt = (now_s() - t0) * 1e3;
            bool good = false;
            fg f = {0};
            if (st != TD_OK) {
                if (shown++ < 5) {
                    fprintf(stderr, "bench_pquery: %s\n", err.msg);
                }
            } else if (r.status != 200) {
                if (shown++ < 5) {
                    fprintf(stderr, "bench_pquery: HTTP %d: %.*s\n", r.status,
                            (int)(r.body.len < 300 ? r.body.len : 300), r.body.data);
                }
            } else if (!parse_flamegraph((const uint8_t *)r.body.data,
                                         (const uint8_t *)r.body.data + r.body.len, &f) ||
                       f.names <= 1 || f.total <= 0) {
                if (shown++ < 5) {
                    fprintf(stderr,
                            "bench_pquery: window %ld: empty or malformed flame graph "
                            "(%zu bytes, %" PRIu64 " names, total %" PRId64 ")\n",
                            win, r.body.len, f.names, f.total);
                }
            } else {
                good = true;
                last = f;
                bytes = r.body.len;
            }
            if (i == 0) {
                first = dt;
            } else {
                lat[nl++] = dt;
                done++;
            }
            ok += good;
        }
        bad_total += (done + 1) - ok;
        qsort(lat, nl, sizeof(double), cmp_double);
        char wl[32];
        if (win % 3600 == 0) {
            snprintf(wl, sizeof(wl), "%ld h", win / 3600);
        } else {
            snprintf(wl, sizeof(wl), "%ld s", win);
        }
        printf("| %s | 1 + %d | %d/%d | %.1f | %.1f | %.1f | %.1f | %.1f | %" PRIu64
               " | %.0f | %.1f |\n",
               wl, done, ok, done + 1, first, pct(lat, nl, 50), pct(lat, nl, 90), pct(lat, nl, 99),
               nl ? lat[nl - 1] : 0.0, last.names, (double)last.total / 1e9, (double)bytes / 1024);
        if (tf) {
            fprintf(tf,
                    "%ld\t%d\t%d\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t%" PRIu64 "\t%" PRId64 "\t%zu\n",
                    win, done, ok, first, pct(lat, nl, 50), pct(lat, nl, 90), pct(lat, nl, 99),
                    nl ? lat[nl - 1] : 0.0, last.names, last.total, bytes);
        }
    }
    if (tf) {
        fclose(tf);
    }
    td_free(lat);
    td_buf_release(&hdr);
    td_buf_release(&sel);
    td_buf_release(&req);
    td_bench_http_resp_release(&r);
    td_bench_http_release(&h);
    return bad_total ? 3 : 0;
}
