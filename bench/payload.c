/*
 * payload.c - load an OTLP trace request once, find its IDs, rewrite them per
 * request, and build a gzip template whose IDs stay patchable.
 */
#include "payload.h"

#include "core/buf.h"
#include "core/gzip.h"
#include "core/mem.h"
#include "proto/proto.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#define MAX_PAYLOAD (512u << 20)

/* ---- a growable array of offsets ---- */

typedef struct offv {
    uint32_t *v;
    size_t n, cap;
} offv;

static void offv_push(offv *o, size_t off)
{
    if (o->n == o->cap) {
        o->cap = o->cap ? o->cap * 2 : 256;
        o->v = td_xrealloc(o->v, o->cap * sizeof(*o->v));
    }
    o->v[o->n++] = (uint32_t)off;
}

/* ---- the wire-format walker ---- */

/*
 * The walker knows only the path to IDs and timestamps:
 *   request.1 ResourceSpans .2/.1000 ScopeSpans .2 Span {1 trace, 2 span, 4 parent,
 *   7/8 times, 11 Event {1 time}, 13 Link {1 trace, 2 span}}
 * and skips everything else by wire type. It records offsets only for IDs of the
 * valid length, exactly what the server will treat as IDs.
 */
typedef struct walker {
    const uint8_t *b;
    offv trace, span, time;
    size_t nspans, nres;
    uint64_t max_time;
} walker;

static int rd_varint(const uint8_t *b, size_t *pos, size_t end, uint64_t *out)
{
    uint64_t v = 0;
    for (int shift = 0; shift < 64 && *pos < end; shift += 7) {
        uint8_t c = b[(*pos)++];
        v |= (uint64_t)(c & 0x7f) << shift;
        if (!(c & 0x80)) {
            *out = v;
            return 0;
        }
    }
    return -1;
}

/* Read one field header; for wire type 2 also its length (checked against end). */
static int rd_field(const uint8_t *b, size_t *pos, size_t end, uint32_t *field, int *wt,
                    size_t *len)
{
    uint64_t key;
    if (rd_varint(b, pos, end, &key) != 0) {
        return -1;
    }
    *field = (uint32_t)(key >> 3);
    *wt = (int)(key & 7);
    *len = 0;
    switch (*wt) {
    case 0: {
        uint64_t dummy;
        return rd_varint(b, pos, end, &dummy) == 0 ? 1 : -1;
    }
    case 1:
        *len = 8;
        break;
    case 2: {
        uint64_t l;
        if (rd_varint(b, pos, end, &l) != 0) {
            return -1;
        }
        *len = (size_t)l;
        break;
    }
    case 5:
        *len = 4;
        break;
    default:
        return -1; /* groups are not used by OTLP */
    }
    return *len <= end - *pos ? 0 : -1;
}

static uint64_t rd_le64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v; /* little-endian hosts only, as is the rest of traced */
}

static void note_time(walker *w, size_t off)
{
    uint64_t t = rd_le64(w->b + off);
    offv_push(&w->time, off);
    if (t > w->max_time) {
        w->max_time = t;
    }
}

static int walk_event(walker *w, size_t pos, size_t end)
{
    while (pos < end) {
        uint32_t f;
        int wt;
        size_t len;
        int r = rd_field(w->b, &pos, end, &f, &wt, &len);
        if (r < 0) {
            return -1;
        }
        if (r == 0) {
            if (f == 1 && wt == 1) {
                note_time(w, pos);
            }
            pos += len;
        }
    }
    return 0;
}

static int walk_link(walker *w, size_t pos, size_t end)
{
    while (pos < end) {
        uint32_t f;
        int wt;
        size_t len;
        int r = rd_field(w->b, &pos, end, &f, &wt, &len);
        if (r < 0) {
            return -1;
        }
        if (r == 0) {
            if (f == 1 && wt == 2 && len == 16) {
                offv_push(&w->trace, pos);
            } else if (f == 2 && wt == 2 && len == 8) {
                offv_push(&w->span, pos);
            }
            pos += len;
        }
    }
    return 0;
}

static int walk_span(walker *w, size_t pos, size_t end)
{
    w->nspans++;
    while (pos < end) {
        uint32_t f;
        int wt;
        size_t len;
        int r = rd_field(w->b, &pos, end, &f, &wt, &len);
        if (r < 0) {
            return -1;
        }
        if (r > 0) {
            continue;
        }
        if (wt == 2 && f == 1 && len == 16) {
            offv_push(&w->trace, pos);
        } else if (wt == 2 && (f == 2 || f == 4) && len == 8) {
            offv_push(&w->span, pos);
        } else if (wt == 1 && (f == 7 || f == 8)) {
            note_time(w, pos);
        } else if (wt == 2 && f == 11) {
            if (walk_event(w, pos, pos + len) != 0) {
                return -1;
            }
        } else if (wt == 2 && f == 13) {
            if (walk_link(w, pos, pos + len) != 0) {
                return -1;
            }
        }
        pos += len;
    }
    return 0;
}

/* depth 0: request (1 -> ResourceSpans); 1: ResourceSpans (2/1000 -> ScopeSpans);
 * 2: ScopeSpans (2 -> Span) */
static int walk_msg(walker *w, size_t pos, size_t end, int depth)
{
    while (pos < end) {
        uint32_t f;
        int wt;
        size_t len;
        int r = rd_field(w->b, &pos, end, &f, &wt, &len);
        if (r < 0) {
            return -1;
        }
        if (r > 0) {
            continue;
        }
        if (wt == 2) {
            int rc = 0;
            if (depth == 0 && f == 1) {
                w->nres++;
                rc = walk_msg(w, pos, pos + len, 1);
            } else if (depth == 1 && (f == 2 || f == 1000)) {
                rc = walk_msg(w, pos, pos + len, 2);
            } else if (depth == 2 && f == 2) {
                rc = walk_span(w, pos, pos + len);
            }
            if (rc != 0) {
                return -1;
            }
        }
        pos += len;
    }
    return 0;
}

/* What protobuf-c says the walker should have found. */
static void count_expected(const td_otlp_request *req, size_t *spans, size_t *tids, size_t *sids)
{
    *spans = *tids = *sids = 0;
    for (size_t i = 0; i < req->n_resource_spans; i++) {
        const td_otlp_resource_spans *rs = req->resource_spans[i];
        for (int pass = 0; pass < 2; pass++) {
            size_t nss = pass ? rs->n_instrumentation_library_spans : rs->n_scope_spans;
            td_otlp_scope_spans *const *ss =
                pass ? rs->instrumentation_library_spans : rs->scope_spans;
            for (size_t j = 0; j < nss; j++) {
                for (size_t k = 0; k < ss[j]->n_spans; k++) {
                    const td_otlp_span *sp = ss[j]->spans[k];
                    (*spans)++;
                    *tids += sp->trace_id.len == 16;
                    *sids += (sp->span_id.len == 8) + (sp->parent_span_id.len == 8);
                    for (size_t l = 0; l < sp->n_links; l++) {
                        *tids += sp->links[l]->trace_id.len == 16;
                        *sids += sp->links[l]->span_id.len == 8;
                    }
                }
            }
        }
    }
}

td_status td_bench_payload_parse(const uint8_t *data, size_t len, td_bench_payload *p, td_err *err)
{
    memset(p, 0, sizeof(*p));
    if (len == 0 || len > MAX_PAYLOAD) {
        return td_err_set(err, TD_INVALID, "payload size %zu out of range", len);
    }
    td_otlp_request *req =
        opentelemetry__proto__collector__trace__v1__export_trace_service_request__unpack(NULL, len,
                                                                                         data);
    if (!req) {
        return td_err_set(err, TD_INVALID, "not a protobuf ExportTraceServiceRequest");
    }
    size_t want_spans, want_t, want_s;
    count_expected(req, &want_spans, &want_t, &want_s);
    opentelemetry__proto__collector__trace__v1__export_trace_service_request__free_unpacked(req,
                                                                                            NULL);

    walker w = {.b = data};
    if (walk_msg(&w, 0, len, 0) != 0 || w.nspans != want_spans || w.trace.n != want_t ||
        w.span.n != want_s) {
        td_free(w.trace.v);
        td_free(w.span.v);
        td_free(w.time.v);
        return td_err_set(err, TD_INVALID,
                          "ID walker disagrees with protobuf-c (spans %zu/%zu, trace IDs %zu/%zu, "
                          "span IDs %zu/%zu)",
                          w.nspans, want_spans, w.trace.n, want_t, w.span.n, want_s);
    }
    p->data = td_xmalloc(len);
    memcpy(p->data, data, len);
    p->len = len;
    p->nspans = w.nspans;
    p->nresources = w.nres;
    p->trace_off = w.trace.v;
    p->ntrace = w.trace.n;
    p->span_off = w.span.v;
    p->nspan = w.span.n;
    p->time_off = w.time.v;
    p->ntime = w.time.n;
    p->max_time_ns = w.max_time;
    return TD_OK;
}

td_status td_bench_payload_load(const char *path, td_bench_payload *p, td_err *err)
{
    memset(p, 0, sizeof(*p));
    FILE *f = fopen(path, "rb");
    if (!f) {
        return td_err_set(err, TD_IO, "%s: %s", path, strerror(errno));
    }
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || st.st_size <= 0 || (uint64_t)st.st_size > MAX_PAYLOAD) {
        fclose(f);
        return td_err_set(err, TD_IO, "%s: empty, unreadable or larger than %u bytes", path,
                          MAX_PAYLOAD);
    }
    size_t len = (size_t)st.st_size;
    uint8_t *buf = td_xmalloc(len);
    size_t got = fread(buf, 1, len, f);
    fclose(f);
    if (got != len) {
        td_free(buf);
        return td_err_set(err, TD_IO, "%s: short read", path);
    }
    td_status s = td_bench_payload_parse(buf, len, p, err);
    td_free(buf);
    return s;
}

void td_bench_payload_release(td_bench_payload *p)
{
    td_free(p->data);
    td_free(p->trace_off);
    td_free(p->span_off);
    td_free(p->time_off);
    memset(p, 0, sizeof(*p));
}

void td_bench_payload_shift_times(td_bench_payload *p, int64_t delta_ns)
{
    for (size_t i = 0; i < p->ntime; i++) {
        uint8_t *q = p->data + p->time_off[i];
        uint64_t t = rd_le64(q);
        if (t != 0) {
            t += (uint64_t)delta_ns;
            memcpy(q, &t, 8);
        }
    }
    if (p->max_time_ns) {
        p->max_time_ns += (uint64_t)delta_ns;
    }
}

uint64_t td_bench_mix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

void td_bench_ids_make(uint64_t key, td_bench_ids *ids)
{
    uint64_t k = td_bench_mix64(key);
    uint64_t a = td_bench_mix64(k ^ 0x1111111111111111ull);
    uint64_t b = td_bench_mix64(k ^ 0x2222222222222222ull);
    uint64_t c = td_bench_mix64(k ^ 0x3333333333333333ull);
    memcpy(ids->trace, &a, 8);
    memcpy(ids->trace + 8, &b, 8);
    memcpy(ids->span, &c, 8);
}

void td_bench_patch(const td_bench_payload *p, uint8_t *dst, const uint32_t *toff,
                    const uint32_t *soff, const td_bench_ids *ids)
{
    uint64_t t0, t1, s0;
    memcpy(&t0, ids->trace, 8);
    memcpy(&t1, ids->trace + 8, 8);
    memcpy(&s0, ids->span, 8);
    for (size_t i = 0; i < p->ntrace; i++) {
        const uint8_t *src = p->data + p->trace_off[i];
        uint8_t *d = dst + (toff ? toff[i] : p->trace_off[i]);
        uint64_t a, b;
        memcpy(&a, src, 8);
        memcpy(&b, src + 8, 8);
        a ^= t0;
        b ^= t1;
        memcpy(d, &a, 8);
        memcpy(d + 8, &b, 8);
    }
    for (size_t i = 0; i < p->nspan; i++) {
        const uint8_t *src = p->data + p->span_off[i];
        uint8_t *d = dst + (soff ? soff[i] : p->span_off[i]);
        uint64_t a;
        memcpy(&a, src, 8);
        a ^= s0;
        memcpy(d, &a, 8);
    }
}

/* ---- the patchable gzip template ----
 *
 * Layout: a gzip header, then one raw deflate stream in which the payload is cut
 * into "regions" (runs of ID bytes, with the few tag bytes between neighbouring
 * IDs) and "segments" (everything else). Each region is emitted by us as a
 * deflate stored block, so its bytes appear verbatim at a known offset. Each
 * segment is compressed by zlib and ended with Z_SYNC_FLUSH, which byte-aligns
 * the stream so our stored block can follow directly.
 *
 * The danger is a back-reference in a later segment that copies from ID bytes:
 * after patching it would copy the new IDs into non-ID positions. To rule that
 * out, before each segment we reset zlib's history with deflateSetDictionary
 * (allowed for raw deflate after a flush) to the real last 32 KiB of output,
 * except that every ID byte (and any padding before the start) is replaced by a
 * byte value v that does not occur in the segment. A match needs source bytes
 * equal to target bytes, so zlib can never select a source range that touches
 * an ID. Segments are split so that each has such a v (a run of fewer than 256
 * distinct byte values). The result decodes to the payload for any ID values;
 * td_bench_gztpl_build still verifies that with two random patches.
 *
 * The price is compression: blocks are short (one per span or so), so zlib
 * mostly picks fixed Huffman codes, and IDs are stored rather than compressed.
 * bench_ingest prints the template size next to plain zlib's for comparison.
 */

#define WIN 32768u
#define MERGE_GAP 8u

typedef struct region {
    uint32_t start, end; /* [start, end) in the payload */
    uint32_t gz;         /* offset of start in the template */
} region;

static int region_cmp(const void *a, const void *b)
{
    const region *x = a, *y = b;
    return x->start < y->start ? -1 : x->start > y->start;
}

typedef struct gzb {
    z_stream z;
    td_buf out;
    const td_bench_payload *p;
    region *rg;
    size_t nrg;
    size_t rg_lo; /* first region that may overlap the current dictionary window */
    uint8_t *dict;
} gzb;

static int gz_deflate(gzb *g, const uint8_t *in, size_t n, int flush)
{
    g->z.next_in = (Bytef *)in;
    g->z.avail_in = (uInt)n;
    for (;;) {
        td_buf_grow(&g->out, 65536);
        g->z.next_out = (Bytef *)g->out.data + g->out.len;
        g->z.avail_out = 65536;
        int rc = deflate(&g->z, flush);
        g->out.len += 65536 - g->z.avail_out;
        if (rc == Z_STREAM_ERROR) {
            return -1;
        }
        if (flush == Z_FINISH ? rc == Z_STREAM_END : (g->z.avail_in == 0 && g->z.avail_out != 0)) {
            break;
        }
    }
    g->out.data[g->out.len] = '\0';
    return 0;
}

/* Compress payload[a, b) with a history in which ID bytes read as v. */
static int gz_segment_part(gzb *g, size_t a, size_t b, uint8_t v, int flush)
{
    const uint8_t *raw = g->p->data;
    if (a > 0) {
        size_t lo = a >= WIN ? a - WIN : 0;
        size_t pad = WIN - (a - lo);
        memset(g->dict, v, pad);
        memcpy(g->dict + pad, raw + lo, a - lo);
        while (g->rg_lo < g->nrg && g->rg[g->rg_lo].end <= lo) {
            g->rg_lo++;
        }
        for (size_t i = g->rg_lo; i < g->nrg && g->rg[i].start < a; i++) {
            size_t s = g->rg[i].start > lo ? g->rg[i].start : lo;
            size_t e = g->rg[i].end < a ? g->rg[i].end : a;
            memset(g->dict + pad + (s - lo), v, e - s);
        }
        if (deflateSetDictionary(&g->z, g->dict, WIN) != Z_OK) {
            return -1;
        }
    }
    return gz_deflate(g, raw + a, b - a, flush);
}

/* Compress payload[a, b), split into runs that each miss some byte value. */
static int gz_segment(gzb *g, size_t a, size_t b, int final)
{
    const uint8_t *raw = g->p->data;
    if (a == b) {
        return final ? gz_deflate(g, NULL, 0, Z_FINISH) : 0;
    }
    size_t i = a;
    while (i < b) {
        uint8_t seen[256] = {0};
        unsigned distinct = 0;
        size_t j = i;
        for (; j < b; j++) {
            if (!seen[raw[j]]) {
                if (distinct == 255) {
                    break;
                }
                seen[raw[j]] = 1;
                distinct++;
            }
        }
        uint8_t v = 0;
        while (seen[v]) {
            v++;
        }
        int flush = (final && j == b) ? Z_FINISH : Z_SYNC_FLUSH;
        if (gz_segment_part(g, i, j, v, flush) != 0) {
            return -1;
        }
        i = j;
    }
    return 0;
}

static void put_le32(uint8_t *q, uint32_t v)
{
    q[0] = (uint8_t)v;
    q[1] = (uint8_t)(v >> 8);
    q[2] = (uint8_t)(v >> 16);
    q[3] = (uint8_t)(v >> 24);
}

/* Map payload offsets (ascending) to template offsets through the regions. */
static uint32_t *map_offsets(const uint32_t *off, size_t n, const region *rg, size_t nrg)
{
    uint32_t *m = td_xmalloc((n ? n : 1) * sizeof(*m));
    for (size_t i = 0; i < n; i++) {
        /* binary search: last region with start <= off[i] */
        size_t lo = 0, hi = nrg;
        while (hi - lo > 1) {
            size_t mid = (lo + hi) / 2;
            if (rg[mid].start <= off[i]) {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        TD_ASSERT(rg[lo].start <= off[i] && off[i] < rg[lo].end);
        m[i] = rg[lo].gz + (off[i] - rg[lo].start);
    }
    return m;
}

static td_status verify(const td_bench_payload *p, const td_bench_gztpl *t, uint64_t key,
                        td_err *err)
{
    uint8_t *gz = td_xmalloc(t->len);
    uint8_t *raw = td_xmalloc(p->len);
    memcpy(gz, t->data, t->len);
    memcpy(raw, p->data, p->len);
    td_bench_ids ids;
    td_bench_ids_make(key, &ids);
    td_bench_gztpl_patch(p, t, gz, raw, &ids);
    td_buf out;
    td_buf_init(&out, p->len);
    td_status s = td_gunzip(gz, t->len, p->len, &out, err);
    if (s == TD_OK && (out.len != p->len || memcmp(out.data, raw, p->len) != 0)) {
        s = td_err_set(err, TD_INTERNAL, "gzip template verification failed");
    }
    td_buf_release(&out);
    td_free(gz);
    td_free(raw);
    return s;
}

td_status td_bench_gztpl_build(const td_bench_payload *p, int level, td_bench_gztpl *t, td_err *err)
{
    memset(t, 0, sizeof(*t));
    size_t nid = p->ntrace + p->nspan;
    region *rg = td_xmalloc((nid ? nid : 1) * sizeof(*rg));
    for (size_t i = 0; i < p->ntrace; i++) {
        rg[i] = (region){p->trace_off[i], p->trace_off[i] + 16, 0};
    }
    for (size_t i = 0; i < p->nspan; i++) {
        rg[p->ntrace + i] = (region){p->span_off[i], p->span_off[i] + 8, 0};
    }
    qsort(rg, nid, sizeof(*rg), region_cmp);
    size_t nrg = 0;
    for (size_t i = 0; i < nid; i++) {
        if (nrg > 0 && rg[i].start <= rg[nrg - 1].end + MERGE_GAP &&
            rg[i].end - rg[nrg - 1].start <= 65535) {
            if (rg[i].end > rg[nrg - 1].end) {
                rg[nrg - 1].end = rg[i].end;
            }
        } else {
            rg[nrg++] = rg[i];
        }
    }

    gzb g = {.p = p, .rg = rg, .nrg = nrg};
    td_buf_init(&g.out, p->len / 4);
    g.dict = td_xmalloc(WIN);
    if (deflateInit2(&g.z, level, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
        td_free(g.dict);
        td_free(rg);
        td_buf_release(&g.out);
        return td_err_set(err, TD_NOMEM, "deflateInit2 failed");
    }
    static const uint8_t hdr[10] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff};
    td_buf_add(&g.out, hdr, sizeof(hdr));

    int rc = 0;
    size_t pos = 0;
    for (size_t i = 0; i < nrg && rc == 0; i++) {
        rc = gz_segment(&g, pos, rg[i].start, 0);
        if (rc != 0) {
            break;
        }
        /* stored block: BFINAL=0 BTYPE=00 in a byte of its own (the stream is aligned) */
        uint16_t n = (uint16_t)(rg[i].end - rg[i].start);
        uint8_t sb[5] = {0, (uint8_t)n, (uint8_t)(n >> 8), (uint8_t)~n, (uint8_t)(~n >> 8)};
        td_buf_add(&g.out, sb, sizeof(sb));
        rg[i].gz = (uint32_t)g.out.len;
        td_buf_add(&g.out, p->data + rg[i].start, n);
        pos = rg[i].end;
    }
    if (rc == 0) {
        rc = gz_segment(&g, pos, p->len, 1);
    }
    deflateEnd(&g.z);
    td_free(g.dict);
    if (rc != 0) {
        td_free(rg);
        td_buf_release(&g.out);
        return td_err_set(err, TD_INTERNAL, "zlib failed while building the gzip template");
    }
    uint8_t trailer[8];
    put_le32(trailer, (uint32_t)crc32(0, p->data, (uInt)p->len));
    put_le32(trailer + 4, (uint32_t)p->len);
    td_buf_add(&g.out, trailer, sizeof(trailer));

    t->data = (uint8_t *)td_buf_detach(&g.out, &t->len);
    t->trace_off = map_offsets(p->trace_off, p->ntrace, rg, nrg);
    t->span_off = map_offsets(p->span_off, p->nspan, rg, nrg);
    td_free(rg);

    td_status s = verify(p, t, 0x5eed1ull, err);
    if (s == TD_OK) {
        s = verify(p, t, 0x5eed2ull, err);
    }
    if (s != TD_OK) {
        td_bench_gztpl_release(t);
    }
    return s;
}

void td_bench_gztpl_release(td_bench_gztpl *t)
{
    td_free(t->data);
    td_free(t->trace_off);
    td_free(t->span_off);
    memset(t, 0, sizeof(*t));
}

void td_bench_gztpl_patch(const td_bench_payload *p, const td_bench_gztpl *t, uint8_t *dst,
                          uint8_t *raw, const td_bench_ids *ids)
{
    td_bench_patch(p, raw, NULL, NULL, ids);
    td_bench_patch(p, dst, t->trace_off, t->span_off, ids);
    put_le32(dst + t->len - 8, (uint32_t)crc32(0, raw, (uInt)p->len));
}
