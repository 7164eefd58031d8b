/*
 * pgen.c - realistic Go CPU pprof profiles, encoded by hand (see pgen.h).
 *
 * The call tree is a trie grown by random walks: each new stack picks a depth
 * in 10..40 (triangular, mean 25) and walks down from runtime.goexit, taking an
 * existing child (earlier children favoured, so prefixes are shared like real
 * request paths) or creating a new one whose function depends on the depth.
 * A stack is the path to a trie node; no two stacks end at the same node.
 * A location is (function, line): the call-site line in the caller depends on
 * the callee, so a function calling two others has two locations, as PCs do.
 */
#include "pgen.h"

#include "core/mem.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define MAX_DEPTH 40
#define PERIOD_NS 10000000

typedef struct node {
    uint32_t func;
    uint32_t parent;
    uint32_t first_child; /* 0 = none (node 0 is the root, never a child) */
    uint32_t next;
    uint32_t nchildren;
    uint32_t depth;
    bool is_stack;
} node;

typedef struct func {
    uint32_t name; /* string index (also the system name, as Go writes it) */
    uint32_t file;
    int64_t start_line;
} func;

typedef struct loc {
    uint32_t func;
    int64_t line;
    uint64_t addr;
} loc;

struct td_bench_pgen {
    char **str;
    uint32_t nstr, capstr;
    func *funcs;
    uint32_t nfuncs, napp, first_app, first_std, nstd, first_leaf, nleaf;
    node *nodes;
    uint32_t nnodes, capnodes;
    loc *locs;
    uint32_t nlocs, caplocs;
    uint32_t *lochash; /* open addressing: loc index + 1, 0 = empty */
    uint32_t lochash_cap;
    /* stacks: frames leaf first, as location indices */
    uint32_t *frames;
    uint32_t *stack_off, *stack_len;
    double *base_w; /* Zipf weight by stack; rare stacks scaled down */
    uint32_t nstacks, nrare;
    /* scratch for td_bench_pgen_profile */
    double *cum;
    uint32_t *count;
    int32_t *loc_id, *func_id, *str_id;
    uint32_t *used_locs, *used_funcs, *used_strs;
};

/* splitmix64 */
static uint64_t mix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static double unit(uint64_t *s)
{
    return (double)(mix(s) >> 11) / 9007199254740992.0;
}

static uint64_t hash_str(const char *p, uint64_t h)
{
    for (; *p; p++) {
        h = (h ^ (uint8_t)*p) * 0x100000001b3ull;
    }
    return h;
}

static uint32_t add_str(td_bench_pgen *g, const char *s)
{
    if (g->nstr == g->capstr) {
        g->capstr = g->capstr ? g->capstr * 2 : 256;
        g->str = td_xrealloc(g->str, g->capstr * sizeof(*g->str));
    }
    g->str[g->nstr] = td_xstrdup(s);
    return g->nstr++;
}

static void add_func(td_bench_pgen *g, const char *name, const char *file, int64_t line)
{
    func *f = &g->funcs[g->nfuncs++];
    f->name = add_str(g, name);
    f->file = add_str(g, file);
    f->start_line = line;
}

static const char *const trunk[] = {
    "runtime.goexit",
    "net/http.(*conn).serve",
    "net/http.serverHandler.ServeHTTP",
    "net/http.HandlerFunc.ServeHTTP",
    "github.com/gorilla/mux.(*Router).ServeHTTP",
    "go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp.(*middleware).serveHTTP",
    "runtime.gcBgMarkWorker",
    "runtime.gcBgMarkWorker.func2",
    "runtime.gcDrain",
    "runtime.main",
    "main.main",
    "google.golang.org/grpc.(*Server).serveStreams.func2.1",
    "google.golang.org/grpc.(*Server).handleStream",
    "google.golang.org/grpc.(*Server).processUnaryRPC",
    "runtime.bgsweep",
    "runtime.mcall",
    "runtime.park_m",
    "runtime.schedule",
    "runtime.findRunnable",
};

static const char *const stdlib[] = {
    "encoding/json.Marshal",
    "encoding/json.(*encodeState).marshal",
    "encoding/json.(*encodeState).reflectValue",
    "encoding/json.structEncoder.encode",
    "encoding/json.Unmarshal",
    "encoding/json.(*decodeState).object",
    "encoding/json.(*decodeState).value",
    "fmt.Sprintf",
    "fmt.(*pp).doPrintf",
    "fmt.(*pp).printArg",
    "strconv.AppendInt",
    "strings.(*Builder).WriteString",
    "bytes.(*Buffer).Write",
    "bufio.(*Writer).Flush",
    "bufio.(*Reader).Read",
    "net.(*conn).Read",
    "net.(*conn).Write",
    "net.(*netFD).Read",
    "internal/poll.(*FD).Read",
    "internal/poll.(*FD).Write",
    "crypto/tls.(*Conn).Read",
    "crypto/tls.(*Conn).Write",
    "crypto/tls.(*halfConn).encrypt",
    "crypto/aes.(*aesCipherGCM).Seal",
    "database/sql.(*DB).QueryContext",
    "database/sql.(*DB).query",
    "database/sql.(*Rows).Next",
    "github.com/jackc/pgx/v5.(*Conn).Query",
    "github.com/jackc/pgx/v5/pgconn.(*PgConn).ReceiveMessage",
    "github.com/redis/go-redis/v9.(*baseClient).process",
    "github.com/redis/go-redis/v9/internal/pool.(*Conn).WithReader",
    "google.golang.org/protobuf/proto.MarshalOptions.marshal",
    "google.golang.org/protobuf/internal/impl.(*MessageInfo).marshal",
    "google.golang.org/grpc.(*ClientConn).Invoke",
    "google.golang.org/grpc.invoke",
    "google.golang.org/grpc.(*clientStream).RecvMsg",
    "go.uber.org/zap.(*Logger).Info",
    "go.uber.org/zap/zapcore.(*ioCore).Write",
    "go.uber.org/zap/zapcore.(*jsonEncoder).EncodeEntry",
    "sort.Slice",
    "sort.pdqsort_func",
    "context.WithTimeout",
    "context.(*cancelCtx).Done",
    "sync.(*Mutex).Lock",
    "sync.(*Mutex).lockSlow",
    "sync.(*Pool).Get",
    "reflect.Value.Call",
    "reflect.Value.Field",
    "regexp.(*Regexp).FindStringSubmatch",
    "regexp.(*Regexp).doExecute",
    "time.Now",
    "io.ReadAll",
    "io.copyBuffer",
    "compress/gzip.(*Writer).Write",
    "compress/flate.(*compressor).write",
    "runtime.newobject",
    "runtime.makeslice",
    "runtime.growslice",
    "runtime.mapassign_faststr",
    "runtime.concatstrings",
};

static const char *const leaves[] = {
    "runtime.mallocgc",
    "runtime.memmove",
    "runtime.memclrNoHeapPointers",
    "syscall.Syscall",
    "internal/runtime/syscall.Syscall6",
    "runtime.futex",
    "runtime.scanobject",
    "runtime.findObject",
    "runtime.greyobject",
    "aeshashbody",
    "runtime.mapaccess2_faststr",
    "runtime.nextFreeFast",
    "runtime.heapBitsSetType",
    "compress/flate.(*compressor).deflate",
    "crypto/sha256.block",
    "crypto/internal/fips140/aes/gcm.gcmAesEnc",
    "runtime.nanotime1",
    "runtime.usleep",
    "runtime.selectgo",
    "runtime.chanrecv",
    "runtime.lock2",
    "runtime.unlock2",
    "runtime.procyield",
    "runtime.epollwait",
    "indexbytebody",
    "runtime.cmpstring",
    "unicode/utf8.DecodeRuneInString",
    "strconv.formatBits",
    "runtime.typePointersOfUnchecked",
    "runtime.madvise",
};

static const char *const pkgs[] = {"api",     "service", "repo",       "cache",
                                   "auth",    "pricing", "catalog",    "events",
                                   "billing", "search",  "middleware", "codec"};
static const char *const types[] = {"Handler",   "Service", "Store",  "Client",   "Cache",
                                    "Validator", "Encoder", "Worker", "Resolver", "Queue"};
static const char *const verbs[] = {"Get",     "List",     "Create", "Update", "Delete", "Load",
                                    "Resolve", "Validate", "Encode", "Decode", "Apply",  "Compute",
                                    "Fetch",   "Build",    "Merge",  "Check"};
static const char *const nouns[] = {"Order",   "Cart",  "User",  "Price", "Item",  "Session",
                                    "Invoice", "Stock", "Token", "Quote", "Batch", "Page"};

#define NAPP 240
#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static void build_funcs(td_bench_pgen *g, const char *service, uint64_t *rs)
{
    size_t total = NELEM(trunk) + NELEM(stdlib) + NELEM(leaves) + NAPP;
    g->funcs = td_xcalloc(total, sizeof(*g->funcs));
    add_str(g, "");
    add_str(g, "samples");
    add_str(g, "count");
    add_str(g, "cpu");
    add_str(g, "nanoseconds");
    add_str(g, "/usr/local/bin/app");
    char name[256], file[256];
    for (size_t i = 0; i < NELEM(trunk); i++) {
        snprintf(file, sizeof(file), "/usr/local/go/src/%s.go",
                 i < 6 ? "net/http/server" : "runtime/proc");
        add_func(g, trunk[i], file, 100 + (int64_t)(mix(rs) % 3000));
    }
    g->first_std = g->nfuncs;
    for (size_t i = 0; i < NELEM(stdlib); i++) {
        snprintf(file, sizeof(file), "/usr/local/go/src/lib%zu.go", i);
        add_func(g, stdlib[i], file, 20 + (int64_t)(mix(rs) % 1500));
    }
    g->nstd = (uint32_t)NELEM(stdlib);
    g->first_leaf = g->nfuncs;
    for (size_t i = 0; i < NELEM(leaves); i++) {
        snprintf(file, sizeof(file), "/usr/local/go/src/runtime/leaf%zu.go", i);
        add_func(g, leaves[i], file, 20 + (int64_t)(mix(rs) % 1500));
    }
    g->nleaf = (uint32_t)NELEM(leaves);
    g->first_app = g->nfuncs;
    for (uint32_t i = 0; i < NAPP; i++) {
        const char *pkg = pkgs[mix(rs) % NELEM(pkgs)];
        const char *ty = types[mix(rs) % NELEM(types)];
        snprintf(name, sizeof(name), "github.com/acme/%s/internal/%s.(*%s).%s%s%u", service, pkg,
                 ty, verbs[mix(rs) % NELEM(verbs)], nouns[mix(rs) % NELEM(nouns)], i % 7);
        snprintf(file, sizeof(file), "/src/github.com/acme/%s/internal/%s/%s.go", service, pkg, ty);
        add_func(g, name, file, 10 + (int64_t)(mix(rs) % 800));
    }
    g->napp = NAPP;
}

static uint32_t new_node(td_bench_pgen *g, uint32_t parent, uint32_t f)
{
    if (g->nnodes == g->capnodes) {
        g->capnodes *= 2;
        g->nodes = td_xrealloc(g->nodes, g->capnodes * sizeof(*g->nodes));
    }
    uint32_t id = g->nnodes++;
    node *n = &g->nodes[id];
    memset(n, 0, sizeof(*n));
    n->func = f;
    n->parent = parent;
    n->depth = g->nodes[parent].depth + 1;
    /* append as the last child */
    node *p = &g->nodes[parent];
    if (!p->first_child) {
        p->first_child = id;
    } else {
        uint32_t c = p->first_child;
        while (g->nodes[c].next) {
            c = g->nodes[c].next;
        }
        g->nodes[c].next = id;
    }
    g->nodes[parent].nchildren++;
    return id;
}

/*
 * The function of a new node at depth d (root = 0) under a node running
 * function parent. Below the trunk, each function calls one of a few callees
 * fixed by (caller, depth band, choice of 4), so the call graph has about as
 * many edges as a real program's, not one per trie node.
 */
static uint32_t pick_func(td_bench_pgen *g, uint32_t d, bool last, uint32_t parent, uint64_t *rs)
{
    uint64_t h = ((uint64_t)parent * 0x9e3779b97f4a7c15ull) ^ ((uint64_t)(d / 8) << 40);
    if (last && mix(rs) % 100 < 45) {
        h ^= mix(rs) % 3;
        h *= 0xff51afd7ed558ccdull;
        return g->first_leaf + (uint32_t)((h >> 33) % g->nleaf);
    }
    if (d <= 4) {
        return 1 + (uint32_t)(mix(rs) % (sizeof(trunk) / sizeof(trunk[0]) - 1));
    }
    h ^= (mix(rs) % 4) << 8;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 29;
    if ((h & 0xff) < 77) {
        return g->first_std + (uint32_t)((h >> 20) % g->nstd);
    }
    return g->first_app + (uint32_t)((h >> 20) % g->napp);
}

static uint32_t intern_loc(td_bench_pgen *g, uint32_t f, int64_t line)
{
    uint64_t h = ((uint64_t)f * 0x9e3779b97f4a7c15ull) ^ ((uint64_t)line * 0xc2b2ae3d27d4eb4full);
    uint32_t mask = g->lochash_cap - 1;
    for (uint32_t i = (uint32_t)(h >> 32) & mask;; i = (i + 1) & mask) {
        uint32_t v = g->lochash[i];
        if (v == 0) {
            if (g->nlocs == g->caplocs) {
                g->caplocs *= 2;
                g->locs = td_xrealloc(g->locs, g->caplocs * sizeof(*g->locs));
            }
            g->locs[g->nlocs] =
                (loc){f, line, 0x401000 + (uint64_t)f * 0x1000 + (uint64_t)(line & 0xfff)};
            g->lochash[i] = ++g->nlocs;
            TD_ASSERT(g->nlocs * 2 < g->lochash_cap);
            return g->nlocs - 1;
        }
        if (g->locs[v - 1].func == f && g->locs[v - 1].line == line) {
            return v - 1;
        }
    }
}

td_bench_pgen *td_bench_pgen_new(const char *service, uint64_t seed, int nstacks)
{
    TD_ASSERT(nstacks >= 50 && nstacks <= 100000);
    td_bench_pgen *g = td_xcalloc(1, sizeof(*g));
    uint64_t rs = hash_str(service, 0xcbf29ce484222325ull ^ seed);
    build_funcs(g, service, &rs);
    g->capnodes = 4096;
    g->nodes = td_xcalloc(g->capnodes, sizeof(*g->nodes));
    g->nnodes = 1;
    g->nodes[0].func = 0; /* runtime.goexit */
    g->caplocs = 4096;
    g->locs = td_xcalloc(g->caplocs, sizeof(*g->locs));
    g->lochash_cap = 1;
    while (g->lochash_cap < (uint32_t)nstacks * MAX_DEPTH * 2) {
        g->lochash_cap <<= 1;
    }
    g->lochash = td_xcalloc(g->lochash_cap, sizeof(*g->lochash));
    g->nstacks = (uint32_t)nstacks;
    g->nrare = g->nstacks * 15 / 100;
    g->frames = td_xcalloc((size_t)nstacks * MAX_DEPTH, sizeof(*g->frames));
    g->stack_off = td_xcalloc((size_t)nstacks, sizeof(uint32_t));
    g->stack_len = td_xcalloc((size_t)nstacks, sizeof(uint32_t));
    g->base_w = td_xcalloc((size_t)nstacks, sizeof(double));
    uint32_t path[MAX_DEPTH];
    for (uint32_t s = 0; s < g->nstacks;) {
        uint32_t depth = 10 + (uint32_t)(mix(&rs) % 16) + (uint32_t)(mix(&rs) % 16); /* 10..40 */
        uint32_t cur = 0;
        path[0] = 0;
        for (uint32_t d = 1; d < depth; d++) {
            node *n = &g->nodes[cur];
            /* new branches are rare near the root, common deep down */
            uint32_t pnew = d < 5 ? 8 : d < 12 ? 25 : 40;
            bool last = d == depth - 1;
            if (n->nchildren == 0 || mix(&rs) % 100 < pnew) {
                cur = new_node(g, cur, pick_func(g, d, last, n->func, &rs));
            } else {
                uint32_t a = (uint32_t)(mix(&rs) % n->nchildren);
                uint32_t b = (uint32_t)(mix(&rs) % n->nchildren);
                uint32_t k = a < b ? a : b;
                uint32_t c = n->first_child;
                while (k--) {
                    c = g->nodes[c].next;
                }
                cur = c;
            }
            path[d] = cur;
        }
        if (g->nodes[cur].is_stack) {
            continue; /* this path is already a stack: walk again */
        }
        g->nodes[cur].is_stack = true;
        /* locations, leaf first: the leaf's own line, then each caller's call site */
        uint32_t off = s * MAX_DEPTH;
        for (uint32_t i = 0; i < depth; i++) {
            uint32_t nd = path[depth - 1 - i];
            uint32_t f = g->nodes[nd].func;
            int64_t line;
            if (i == 0) {
                line = g->funcs[f].start_line + 1 +
                       (int64_t)((g->nodes[path[depth - 2]].func * 40503u) % 6);
            } else {
                uint32_t callee = g->nodes[path[depth - i]].func;
                line = g->funcs[f].start_line + 1 + (int64_t)((callee * 2654435761u) % 60);
            }
            g->frames[off + i] = intern_loc(g, f, line);
        }
        g->stack_off[s] = off;
        g->stack_len[s] = depth;
        s++;
    }
    /* Zipf-like weights over a random rank order; the last 15 % are rare stacks */
    uint32_t *rank = td_xcalloc(g->nstacks, sizeof(uint32_t));
    for (uint32_t i = 0; i < g->nstacks; i++) {
        rank[i] = i;
    }
    for (uint32_t i = g->nstacks - 1; i > 0; i--) {
        uint32_t j = (uint32_t)(mix(&rs) % (i + 1));
        uint32_t t = rank[i];
        rank[i] = rank[j];
        rank[j] = t;
    }
    for (uint32_t i = 0; i < g->nstacks; i++) {
        double w = 1.0 / ((double)rank[i] + 1.0);
        g->base_w[i] = i >= g->nstacks - g->nrare ? w * 0.3 : w;
    }
    td_free(rank);
    g->cum = td_xcalloc(g->nstacks, sizeof(double));
    g->count = td_xcalloc(g->nstacks, sizeof(uint32_t));
    g->loc_id = td_xcalloc(g->nlocs, sizeof(int32_t));
    g->func_id = td_xcalloc(g->nfuncs, sizeof(int32_t));
    g->str_id = td_xcalloc(g->nstr, sizeof(int32_t));
    g->used_locs = td_xcalloc(g->nlocs, sizeof(uint32_t));
    g->used_funcs = td_xcalloc(g->nfuncs, sizeof(uint32_t));
    g->used_strs = td_xcalloc(g->nstr, sizeof(uint32_t));
    return g;
}

void td_bench_pgen_free(td_bench_pgen *g)
{
    if (!g) {
        return;
    }
    for (uint32_t i = 0; i < g->nstr; i++) {
        td_free(g->str[i]);
    }
    td_free(g->str);
    td_free(g->funcs);
    td_free(g->nodes);
    td_free(g->locs);
    td_free(g->lochash);
    td_free(g->frames);
    td_free(g->stack_off);
    td_free(g->stack_len);
    td_free(g->base_w);
    td_free(g->cum);
    td_free(g->count);
    td_free(g->loc_id);
    td_free(g->func_id);
    td_free(g->str_id);
    td_free(g->used_locs);
    td_free(g->used_funcs);
    td_free(g->used_strs);
    td_free(g);
}

/* ---- protobuf by hand ---- */

static void put_varint(td_buf *b, uint64_t v)
{
    uint8_t tmp[10];
    size_t n = 0;
    do {
        tmp[n++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
        v >>= 7;
    } while (v);
    td_buf_add(b, tmp, n);
}

static void put_tag(td_buf *b, uint32_t field, uint32_t wt)
{
    put_varint(b, ((uint64_t)field << 3) | wt);
}

static void put_uint(td_buf *b, uint32_t field, uint64_t v)
{
    if (v) {
        put_tag(b, field, 0);
        put_varint(b, v);
    }
}

static void put_bytes(td_buf *b, uint32_t field, const void *p, size_t n)
{
    put_tag(b, field, 2);
    put_varint(b, n);
    td_buf_add(b, p, n);
}

/* Local string index (table built on first use). */
static uint64_t sid(td_bench_pgen *g, uint32_t s, uint32_t *nused)
{
    if (g->str_id[s] < 0) {
        g->str_id[s] = (int32_t)*nused;
        g->used_strs[(*nused)++] = s;
    }
    return (uint64_t)g->str_id[s];
}

static void value_type(td_buf *b, td_buf *tmp, uint32_t field, uint64_t type, uint64_t unit)
{
    td_buf_reset(tmp);
    put_uint(tmp, 1, type);
    put_uint(tmp, 2, unit);
    put_bytes(b, field, tmp->data, tmp->len);
}

void td_bench_pgen_time_tail(int64_t time_ns, uint8_t tail[TD_BENCH_PGEN_TAIL])
{
    uint64_t v = (uint64_t)time_ns;
    tail[0] = (9 << 3) | 0;
    for (int i = 0; i < 9; i++) {
        tail[1 + i] = (uint8_t)((v & 0x7f) | (i < 8 ? 0x80 : 0));
        v >>= 7;
    }
}

void td_bench_pgen_profile(td_bench_pgen *g, uint64_t variant, int ticks, int64_t time_ns,
                           td_buf *out, td_bench_pgen_info *info)
{
    uint64_t rs = variant * 0xd1b54a32d192ed03ull + 0x1234567;
    /* per-profile weights: jitter x0.5..1.5; each rare stack present in 1 profile of 5 */
    double sum = 0;
    for (uint32_t i = 0; i < g->nstacks; i++) {
        double w = g->base_w[i] * (0.5 + unit(&rs));
        if (i >= g->nstacks - g->nrare && mix(&rs) % 5 != 0) {
            w = 0;
        }
        sum += w;
        g->cum[i] = sum;
        g->count[i] = 0;
    }
    int n = ticks - ticks / 20 + (int)(mix(&rs) % (uint64_t)(ticks / 10 + 1)); /* +-5 % */
    for (int t = 0; t < n; t++) {
        double x = unit(&rs) * sum;
        uint32_t lo = 0, hi = g->nstacks - 1;
        while (lo < hi) {
            uint32_t mid = (lo + hi) / 2;
            if (g->cum[mid] > x) {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        g->count[lo]++;
    }
    memset(g->loc_id, 0xff, g->nlocs * sizeof(int32_t));
    memset(g->func_id, 0xff, g->nfuncs * sizeof(int32_t));
    memset(g->str_id, 0xff, g->nstr * sizeof(int32_t));
    uint32_t nl = 0, nf = 0, ns = 0;
    sid(g, 0, &ns);
    uint64_t s_samples = sid(g, 1, &ns), s_count = sid(g, 2, &ns), s_cpu = sid(g, 3, &ns),
             s_ns = sid(g, 4, &ns);
    td_buf tmp, tmp2;
    td_buf_init(&tmp, 256);
    td_buf_init(&tmp2, 256);
    value_type(out, &tmp, 1, s_samples, s_count);
    value_type(out, &tmp, 1, s_cpu, s_ns);
    uint64_t records = 0, total = 0;
    /* samples in stack order; Go's order is hash order, equally arbitrary */
    for (uint32_t s = 0; s < g->nstacks; s++) {
        if (!g->count[s]) {
            continue;
        }
        records++;
        total += g->count[s];
        td_buf_reset(&tmp);
        td_buf_reset(&tmp2);
        for (uint32_t i = 0; i < g->stack_len[s]; i++) {
            uint32_t l = g->frames[g->stack_off[s] + i];
            if (g->loc_id[l] < 0) {
                g->loc_id[l] = (int32_t)++nl;
                g->used_locs[nl - 1] = l;
            }
            put_varint(&tmp2, (uint64_t)g->loc_id[l]);
        }
        put_bytes(&tmp, 1, tmp2.data, tmp2.len);
        td_buf_reset(&tmp2);
        put_varint(&tmp2, g->count[s]);
        put_varint(&tmp2, (uint64_t)g->count[s] * PERIOD_NS);
        put_bytes(&tmp, 2, tmp2.data, tmp2.len);
        put_bytes(out, 2, tmp.data, tmp.len);
    }
    /* mapping: the service binary */
    uint32_t bin_s = 5;
    td_buf_reset(&tmp);
    put_uint(&tmp, 1, 1);
    put_uint(&tmp, 2, 0x400000);
    put_uint(&tmp, 3, 0x2400000);
    put_uint(&tmp, 5, sid(g, bin_s, &ns));
    put_uint(&tmp, 7, 1);
    put_uint(&tmp, 8, 1);
    put_uint(&tmp, 9, 1);
    put_bytes(out, 3, tmp.data, tmp.len);
    /* locations */
    for (uint32_t i = 0; i < nl; i++) {
        const loc *l = &g->locs[g->used_locs[i]];
        if (g->func_id[l->func] < 0) {
            g->func_id[l->func] = (int32_t)++nf;
            g->used_funcs[nf - 1] = l->func;
        }
        td_buf_reset(&tmp);
        put_uint(&tmp, 1, i + 1);
        put_uint(&tmp, 2, 1);
        put_uint(&tmp, 3, l->addr);
        td_buf_reset(&tmp2);
        put_uint(&tmp2, 1, (uint64_t)g->func_id[l->func]);
        put_uint(&tmp2, 2, (uint64_t)l->line);
        put_bytes(&tmp, 4, tmp2.data, tmp2.len);
        put_bytes(out, 4, tmp.data, tmp.len);
    }
    /* functions */
    for (uint32_t i = 0; i < nf; i++) {
        const func *f = &g->funcs[g->used_funcs[i]];
        td_buf_reset(&tmp);
        put_uint(&tmp, 1, i + 1);
        uint64_t nm = sid(g, f->name, &ns);
        put_uint(&tmp, 2, nm);
        put_uint(&tmp, 3, nm);
        put_uint(&tmp, 4, sid(g, f->file, &ns));
        put_uint(&tmp, 5, (uint64_t)f->start_line);
        put_bytes(out, 5, tmp.data, tmp.len);
    }
    for (uint32_t i = 0; i < ns; i++) {
        const char *s = g->str[g->used_strs[i]];
        put_bytes(out, 6, s, strlen(s));
    }
    put_uint(out, 10, 10000000000ull);
    value_type(out, &tmp, 11, s_cpu, s_ns);
    put_uint(out, 12, PERIOD_NS);
    uint8_t tail[TD_BENCH_PGEN_TAIL];
    td_bench_pgen_time_tail(time_ns, tail);
    td_buf_add(out, tail, sizeof(tail));
    td_buf_release(&tmp);
    td_buf_release(&tmp2);
    if (info) {
        info->records = records;
        info->ticks = total;
        info->locations = nl;
        info->functions = nf;
    }
}

int td_bench_pgz_build(const uint8_t *raw, size_t len, td_buf *out, td_bench_pgz *z)
{
    if (len < TD_BENCH_PGEN_TAIL) {
        return -1;
    }
    size_t plen = len - TD_BENCH_PGEN_TAIL;
    static const uint8_t hdr[10] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff};
    size_t start = out->len;
    td_buf_add(out, hdr, sizeof(hdr));
    z_stream s;
    memset(&s, 0, sizeof(s));
    if (deflateInit2(&s, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
        return -1;
    }
    size_t bound = deflateBound(&s, (uLong)plen) + 64;
    td_buf_grow(out, bound);
    s.next_in = (Bytef *)raw;
    s.avail_in = (uInt)plen;
    s.next_out = (Bytef *)out->data + out->len;
    s.avail_out = (uInt)bound;
    /* a full flush ends byte-aligned after an empty stored block */
    int rc = deflate(&s, Z_FULL_FLUSH);
    if (rc != Z_OK || s.avail_in != 0) {
        deflateEnd(&s);
        return -1;
    }
    td_buf_setlen(out, out->len + (bound - s.avail_out));
    deflateEnd(&s);
    /* final stored block with the tail */
    uint8_t sb[5] = {0x01, TD_BENCH_PGEN_TAIL, 0, (uint8_t)~TD_BENCH_PGEN_TAIL, 0xff};
    td_buf_add(out, sb, sizeof(sb));
    z->tail_off = out->len - start;
    td_buf_add(out, raw + plen, TD_BENCH_PGEN_TAIL);
    z->crc_prefix = (uint32_t)crc32(0, raw, (uInt)plen);
    z->prefix_len = plen;
    z->crc_off = out->len - start;
    uint32_t crc = (uint32_t)crc32(z->crc_prefix, raw + plen, TD_BENCH_PGEN_TAIL);
    uint8_t tr[8] = {(uint8_t)crc, (uint8_t)(crc >> 8), (uint8_t)(crc >> 16), (uint8_t)(crc >> 24),
                     (uint8_t)len, (uint8_t)(len >> 8), (uint8_t)(len >> 16), (uint8_t)(len >> 24)};
    td_buf_add(out, tr, sizeof(tr));
    return 0;
}

void td_bench_pgz_patch(const td_bench_pgz *z, uint8_t *p, const uint8_t tail[TD_BENCH_PGEN_TAIL])
{
    memcpy(p + z->tail_off, tail, TD_BENCH_PGEN_TAIL);
    uint32_t crc = (uint32_t)crc32(z->crc_prefix, tail, TD_BENCH_PGEN_TAIL);
    p[z->crc_off] = (uint8_t)crc;
    p[z->crc_off + 1] = (uint8_t)(crc >> 8);
    p[z->crc_off + 2] = (uint8_t)(crc >> 16);
    p[z->crc_off + 3] = (uint8_t)(crc >> 24);
}
