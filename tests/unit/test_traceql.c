/*
 * test_traceql.c - the TraceQL engine (API-CONTRACT §4 and its corrections):
 * lexer/parser goldens printed back in canonical form, every error case with
 * its exact line/column, the RE2 -> POSIX regex translation, evaluator truth
 * tables over a hand-built trace (two services, attributes of every type,
 * nested spans, an error span, events and links), structural operators,
 * pipelines, trace preparation, span attributes for search results, index
 * hints, and allocation-failure countdowns.
 */
#include "api/traceql/tql_int.h"
#include "api/traceql/traceql.h"
#include "core/mem.h"
#include "td_test.h"

#include <regex.h>
#include <stdlib.h>

/* ------------------------------------------------------------------------ */
/* parse helpers                                                            */
/* ------------------------------------------------------------------------ */

static char g_out[8192];

/* Canonical text of q, or "ERR: <message>". */
static const char *canon(const char *q)
{
    td_arena a;
    td_arena_init(&a, 0, 0);
    td_err err;
    td_err_init(&err);
    td_traceql_query *tq;
    td_status st = td_traceql_parse(q, strlen(q), &a, &tq, &err);
    if (st != TD_OK) {
        snprintf(g_out, sizeof(g_out), "ERR: %s", err.msg);
        TD_CHECK(st == TD_INVALID || st == TD_NOMEM);
        TD_CHECK(err.code == st);
    } else {
        td_buf b = TD_BUF_INIT;
        td_traceql_format(tq, &b);
        snprintf(g_out, sizeof(g_out), "%s", b.data);
        td_buf_release(&b);
    }
    td_arena_release(&a);
    return g_out;
}

/* q parses to canonical text `want`, and `want` parses to itself. */
#define PARSES(q, want)                                                                            \
    do {                                                                                           \
        TD_ASSERT_EQ_STR(canon(q), want);                                                          \
        TD_ASSERT_EQ_STR(canon(want), want);                                                       \
    } while (0)

#define FAILS(q, msg) TD_ASSERT_EQ_STR(canon(q), "ERR: " msg)

/* ------------------------------------------------------------------------ */
/* parser goldens                                                           */
/* ------------------------------------------------------------------------ */

static void test_contract_examples(void)
{
    /* API-CONTRACT §4.7: all must work */
    PARSES("{}", "{ }");
    PARSES("{ resource.service.name = \"frontend\" && name = \"GET /cart\" }",
           "{ (resource.service.name = \"frontend\") && (name = \"GET /cart\") }");
    PARSES("{ status = error }", "{ status = error }");
    PARSES("{ span.http.status_code >= 500 && kind = server }",
           "{ (span.http.status_code >= 500) && (kind = server) }");
    PARSES("{ duration > 500ms } | count() > 2", "{ duration > 500ms } | count() > 2");
    PARSES("{ traceDuration > 2s && rootServiceName = \"gateway\" }",
           "{ (traceDuration > 2s) && (rootServiceName = \"gateway\") }");
    PARSES("{ .db.system =~ \"postgresql|mysql\" }", "{ .db.system =~ \"postgresql|mysql\" }");
    PARSES("{ resource.service.name = \"api\" } >> { span.db.name = \"orders\" }",
           "{ resource.service.name = \"api\" } >> { span.db.name = \"orders\" }");
    PARSES(
        "{ resource.cloud.region = \"us-east-1\" } && { resource.cloud.region = \"us-west-1\" }",
        "{ resource.cloud.region = \"us-east-1\" } && { resource.cloud.region = \"us-west-1\" }");
    PARSES("{ status = error } | select(span.http.url)",
           "{ status = error } | select(span.http.url)");
    PARSES("{ span.http.route != nil }", "{ span.http.route != nil }");
    /* Grafana's search builder, several values (corrections) */
    PARSES("{ (span.http.method=\"GET\" || span.http.method=\"PUT\") && "
           "resource.service.name!=\"a\" }",
           "{ ((span.http.method = \"GET\") || (span.http.method = \"PUT\")) && "
           "(resource.service.name != \"a\") }");
    PARSES("{resource.service.name=~\"a|b\" && .x!~\"c|d\"}",
           "{ (resource.service.name =~ \"a|b\") && (.x !~ \"c|d\") }");
}

static void test_parse_identifiers(void)
{
    PARSES("{ span.\"foo bar\" = 1 }", "{ span.\"foo bar\" = 1 }");
    PARSES("{ span.\"a\\\"b\\\\c\" = 1 }", "{ span.\"a\\\"b\\\\c\" = 1 }");
    PARSES("{ span.\"foo\".bar = 1 }", "{ span.foo.bar = 1 }"); /* quoted parts concatenate */
    PARSES("{ .\"5x\" = 1 }", "{ .\"5x\" = 1 }");
    PARSES("{ span.\"\" = 1 }", "{ span.\"\" = 1 }");
    PARSES("{ resource.k8s.pod-name = \"x\" }", "{ resource.k8s.pod-name = \"x\" }");
    PARSES("{ span.a:b/c = 1 }", "{ span.a:b/c = 1 }"); /* Tempo's attribute runes */
    PARSES("{ event.exception.message = \"x\" }", "{ event.exception.message = \"x\" }");
    PARSES("{ link.kind = \"x\" }", "{ link.kind = \"x\" }");
    PARSES("{ instrumentation.lib.flag = true }", "{ instrumentation.lib.flag = true }");
    /* intrinsics in both spellings print their unscoped form */
    PARSES("{ span:name = \"a\" && span:status = ok && span:kind = client && span:duration > 1s }",
           "{ (name = \"a\") && (status = ok) && (kind = client) && (duration > 1s) }");
    PARSES("{ span:statusMessage = \"m\" && trace:rootName = \"r\" && trace:rootService = \"s\" }",
           "{ (statusMessage = \"m\") && (rootName = \"r\") && (rootServiceName = \"s\") }");
    PARSES("{ trace:duration > 1s && trace:id = \"ab\" && span:id = \"cd\" && span:parentID = "
           "\"ef\" }",
           "{ (traceDuration > 1s) && (trace:id = \"ab\") && (span:id = \"cd\") && "
           "(span:parentID = \"ef\") }");
    PARSES("{ span:childCount > 1 && event:name = \"e\" && event:timeSinceStart > 1ms }",
           "{ (span:childCount > 1) && (event:name = \"e\") && (event:timeSinceStart > 1ms) }");
    PARSES("{ link:traceID = \"a\" && link:spanID = \"b\" && instrumentation:name = \"c\" && "
           "instrumentation:version = \"d\" }",
           "{ (link:traceID = \"a\") && (link:spanID = \"b\") && (instrumentation:name = \"c\") && "
           "(instrumentation:version = \"d\") }");
    /* an attribute ends at the first operator character: no spaces needed */
    PARSES("{.a=1&&.b!=2}", "{ (.a = 1) && (.b != 2) }");
    /* ...but arithmetic characters belong to the name, as in Tempo */
    PARSES("{ span.x+1 > 2 }", "{ span.x+1 > 2 }");
    PARSES("{ span.x + 1 > 2 }", "{ (span.x + 1) > 2 }");
}

static void test_parse_literals(void)
{
    PARSES("{ .a = \"q\\\"\\\\\\n\\t\\x41\\u00e9\\101\" }", "{ .a = \"q\\\"\\\\\\n\\tAéA\" }");
    PARSES("{ .a = `raw \\n \"x\"` }", "{ .a = \"raw \\\\n \\\"x\\\"\" }");
    PARSES("{ .a = `multi\nline` }", "{ .a = \"multi\\nline\" }");
    PARSES("{ .a = 42 && .b = 1.5 && .c = 1e3 && .d = .5 && .e = 2. }",
           "{ (.a = 42) && (.b = 1.5) && (.c = 1000.0) && (.d = 0.5) && (.e = 2.0) }");
    PARSES("{ .a = -42 && .b = -1.5 && .c = true && .d = false }",
           "{ (.a = -42) && (.b = -1.5) && (.c = true) && (.d = false) }");
    PARSES("{ .a = minInt && .b = maxInt }", "{ (.a = minInt) && (.b = 9223372036854775807) }");
    PARSES("{ status = ok || status = unset || status = error }",
           "{ (status = ok) || (status = unset) || (status = error) }");
    PARSES("{ kind = unspecified || kind = internal || kind = server || kind = client || kind = "
           "producer || kind = consumer }",
           "{ (kind = unspecified) || (kind = internal) || (kind = server) || (kind = client) || "
           "(kind = producer) || (kind = consumer) }");
    /* durations: Go and Prometheus forms, compound, fractional, µs/us, d/w/y */
    PARSES("{ duration > 1ns && duration > 1us && duration > 1µs && duration > 1μs }",
           "{ (duration > 1ns) && (duration > 1µs) && (duration > 1µs) && (duration > 1µs) }");
    PARSES("{ duration > 1ms && duration > 1.5s && duration > 1h30m && duration > 90m }",
           "{ (duration > 1ms) && (duration > 1.5s) && (duration > 1h30m0s) && (duration > "
           "1h30m0s) }");
    PARSES("{ duration > 1d && duration > 1w && duration > 1y && duration > 1d12h }",
           "{ (duration > 24h0m0s) && (duration > 168h0m0s) && (duration > 8760h0m0s) && "
           "(duration > 36h0m0s) }");
    PARSES("{ duration > 2h45m30.5s && duration < 0.5ms && duration > 1m1ms }",
           "{ (duration > 2h45m30.5s) && (duration < 500µs) && (duration > 1m0.001s) }");
    PARSES("{ duration > -5s }", "{ duration > -5s }");
    PARSES("{ -5s < duration }", "{ -5s < duration }");
    /* nil forms */
    PARSES("{ nil != span.a && nil = span.b }", "{ (span.a != nil) && (span.b = nil) }");
    PARSES("{ nil = nil }", "{ false }");
    /* comments are skipped (Go scanner) */
    PARSES("{ .x = 1 } /* c */ // tail", "{ .x = 1 }");
    PARSES("{ .x = /* in */ 1 }\n// end", "{ .x = 1 }");
}

static void test_parse_operators(void)
{
    /* && and || share one left-associative level, inside and between spansets */
    PARSES("{ .a = 1 || .b = 2 && .c = 3 }", "{ ((.a = 1) || (.b = 2)) && (.c = 3) }");
    PARSES("{ .a = 1 && (.b = 2 || .c = 3) }", "{ (.a = 1) && ((.b = 2) || (.c = 3)) }");
    PARSES("{ .a } || { .b } && { .c }", "({ .a } || { .b }) && { .c }");
    /* structural operators bind tighter than && / || and chain left to right */
    PARSES("{ .a } && { .b } >> { .c }", "{ .a } && ({ .b } >> { .c })");
    PARSES("{ .a } > { .b } > { .c }", "({ .a } > { .b }) > { .c }");
    PARSES("({ .a } && { .b }) >> { .c }", "({ .a } && { .b }) >> { .c }");
    PARSES("{} > {} < {} >> {} << {} ~ {}", "(((({ } > { }) < { }) >> { }) << { }) ~ { }");
    PARSES("{} !> {} !< {} !>> {} !<< {} !~ {}",
           "(((({ } !> { }) !< { }) !>> { }) !<< { }) !~ { }");
    PARSES("{} &> {} &< {} &>> {} &<< {} &~ {}",
           "(((({ } &> { }) &< { }) &>> { }) &<< { }) &~ { }");
    /* arithmetic: * over +, ^ right-associative, prefix - like binary - */
    PARSES("{ span.a + span.b * 2 > 7 }", "{ (span.a + (span.b * 2)) > 7 }");
    PARSES("{ span.a ^ span.b ^ 3 > 1 }", "{ (span.a ^ (span.b ^ 3)) > 1 }");
    PARSES("{ span.a ^ 2 ^ 3 > 1 }", "{ (span.a ^ 8) > 1 }");
    PARSES("{ -span.a * 2 > 1 }", "{ (-(span.a * 2)) > 1 }");
    PARSES("{ -span.a + 2 > 1 }", "{ ((-span.a) + 2) > 1 }");
    PARSES("{ span.a - 1 - 2 = 0 }", "{ ((span.a - 1) - 2) = 0 }");
    PARSES("{ span.a % 3 = 1 && span.b / 2 = 1 }", "{ ((span.a % 3) = 1) && ((span.b / 2) = 1) }");
    PARSES("{ (-5) ^ span.x = 1 }", "{ ((-5) ^ span.x) = 1 }");
    /* ! binds tighter than comparison (Tempo's yacc precedence) */
    PARSES("{ !.a = true }", "{ (!.a) = true }");
    PARSES("{ !(.a = 1) && .b }", "{ (!(.a = 1)) && .b }");
    PARSES("{ .a && .b || !.c }", "{ (.a && .b) || (!.c) }");
    /* constant folding */
    PARSES("{ 1 + 2 * 3 = 7 }", "{ true }");
    PARSES("{ 2 ^ 10 = 1024 && 7 / 2 = 3 && 7 % 4 = 3 && 1.5 * 2 = 3 }", "{ true }");
    PARSES("{ \"x\" = `y` }", "{ false }");
    PARSES("{ true } && { false }", "{ true } && { false }");
    PARSES("{ .a = -(1) }", "{ .a = -1 }");
    PARSES("{ .a = 1 } | { .b = 2 }", "{ .a = 1 } | { .b = 2 }");
}

static void test_parse_pipelines(void)
{
    PARSES("{ } | count() > 2", "{ } | count() > 2");
    PARSES("{ } | avg(duration) > 1s | min(span.x) < 3 | max(duration) >= 2 | sum(span.y) = 10.5",
           "{ } | avg(duration) > 1s | min(span.x) < 3 | max(duration) >= 2 | sum(span.y) = 10.5");
    PARSES("{} | 2 < count()", "{ } | count() > 2");
    PARSES("{} | count() > -1 + 3", "{ } | count() > 2");
    PARSES("{ } | by(resource.service.name)", "{ } | by(resource.service.name)");
    PARSES("{ } | by(span.a, name) | coalesce()", "{ } | by(span.a, name) | coalesce()");
    PARSES("{ } | select(span.http.url, resource.k8s.pod.name, status)",
           "{ } | select(span.http.url, resource.k8s.pod.name, status)");
    PARSES("{ } | by(resource.service.name) | { status = error } | count() > 1",
           "{ } | by(resource.service.name) | { status = error } | count() > 1");
    PARSES("({ .a } | count() > 1) && { .b }", "({ .a } | count() > 1) && { .b }");
    PARSES("({ .a } | by(.x) | coalesce()) >> { .b }", "({ .a } | by(.x) | coalesce()) >> { .b }");
    PARSES("((({ .a })))", "{ .a }");
    PARSES("count() > 1", "count() > 1");
    PARSES("by(.a)", "by(.a)");
    /* metrics functions parse into the AST (evaluated elsewhere) */
    PARSES("{ } | rate()", "{ } | rate()");
    PARSES("{ status = error } | rate() by (resource.service.name)",
           "{ status = error } | rate() by(resource.service.name)");
    PARSES("{} | count_over_time() by(span.a, name)", "{ } | count_over_time() by(span.a, name)");
    FAILS("{} | min_over_time(duration) | ", "parse error at line 1, col 32: syntax error: "
                                             "unexpected end of input, expecting topk or bottomk");
    PARSES("{} | avg_over_time(span.x) by (resource.a)",
           "{ } | avg_over_time(span.x) by(resource.a)");
    PARSES("{} | max_over_time(duration)", "{ } | max_over_time(duration)");
    PARSES("{} | sum_over_time(duration)", "{ } | sum_over_time(duration)");
    PARSES("{} | quantile_over_time(duration, .5, 0.9, 1) by(name)",
           "{ } | quantile_over_time(duration, 0.5, 0.9, 1.0) by(name)");
    PARSES("{} | histogram_over_time(duration)", "{ } | histogram_over_time(duration)");
    /* query hints are kept */
    PARSES("{ .a = \"x\" } with(most_recent=true, sample=0.1)",
           "{ .a = \"x\" } with(most_recent=true, sample=0.1)");
}

static void test_parse_metrics_ast(void)
{
    td_arena a;
    td_arena_init(&a, 0, 0);
    td_err err;
    td_traceql_query *q;
    const char *s = "{ status = error } | quantile_over_time(duration, 0.5, 0.99) by(span.x, name)";
    TD_ASSERT_OK(td_traceql_parse(s, strlen(s), &a, &q, &err));
    TD_CHECK(q->metrics != NULL);
    TD_ASSERT_EQ_INT(q->metrics->fn, TD_TRACEQL_M_QUANTILE_OVER_TIME);
    TD_CHECK(q->metrics->has_attr);
    TD_ASSERT_EQ_INT(q->metrics->attr.intrinsic, TD_TRACEQL_I_DURATION);
    TD_ASSERT_EQ_INT(q->metrics->nquantiles, 2);
    TD_CHECK(q->metrics->quantiles[1] == 0.99);
    TD_ASSERT_EQ_INT(q->metrics->nby, 2);
    TD_ASSERT_EQ_INT(q->metrics->by[0].scope, TD_TRACEQL_SCOPE_SPAN);
    TD_ASSERT_EQ_STR(q->metrics->by[0].name, "x");
    TD_ASSERT_EQ_INT(q->metrics->by[1].intrinsic, TD_TRACEQL_I_NAME);
    TD_ASSERT_EQ_INT(q->pipeline.nstages, 1);
    /* a search query has none */
    TD_ASSERT_OK(td_traceql_parse("{}", 2, &a, &q, &err));
    TD_CHECK(q->metrics == NULL);
    td_arena_release(&a);
    TD_CHECK(a.head == NULL);
}

static void test_parse_errors(void)
{
    FAILS("", "parse error at line 1, col 1: syntax error: unexpected end of input, expecting "
              "spanset filter");
    FAILS("  \n ", "parse error at line 2, col 2: syntax error: unexpected end of input, "
                   "expecting spanset filter");
    FAILS("{ status = error", "parse error at line 1, col 17: syntax error: unexpected end of "
                              "input, expecting }");
    FAILS("{ status == error }",
          "parse error at line 1, col 11: syntax error: unexpected =, expecting field expression");
    FAILS("{ .a => 1 }",
          "parse error at line 1, col 7: syntax error: unexpected >, expecting field expression");
    FAILS("{ .a & .b }", "parse error at line 1, col 6: syntax error: unexpected character '&'");
    FAILS("{ duration > 5x }", "parse error at line 1, col 14: invalid duration: 5x");
    FAILS("{ duration > 1h1d }", "parse error at line 1, col 14: invalid duration: 1h1d");
    FAILS("{ duration > 1.5.3s }", "parse error at line 1, col 14: invalid duration: 1.5.3s");
    FAILS("{ duration > 99999999999h }",
          "parse error at line 1, col 14: invalid duration: 99999999999h");
    FAILS("{ foo = 1 }", "parse error at line 1, col 3: unknown identifier: foo");
    FAILS("{ childCount = 1 }", "parse error at line 1, col 3: unknown identifier: childCount");
    FAILS("{ span:foo = 1 }", "parse error at line 1, col 3: unknown intrinsic: span:foo");
    FAILS("{ trace:name = 1 }", "parse error at line 1, col 3: unknown intrinsic: trace:name");
    FAILS("{} garbage", "parse error at line 1, col 4: syntax error: unexpected garbage");
    FAILS("{} }", "parse error at line 1, col 4: syntax error: unexpected }");
    FAILS("{ .a = 1 } |", "parse error at line 1, col 13: syntax error: unexpected end of input, "
                          "expecting spanset filter");
    FAILS("{ .a = 1 } | foo", "parse error at line 1, col 14: syntax error: unexpected foo, "
                              "expecting spanset filter");
    FAILS("{ .a = 1 }}", "parse error at line 1, col 11: syntax error: unexpected }");
    FAILS("{ (.a = 1 }", "parse error at line 1, col 11: syntax error: unexpected }, expecting )");
    FAILS("{ span. = 1 }",
          "parse error at line 1, col 8: syntax error: expected an attribute name");
    FAILS("{ . = 1 }", "parse error at line 1, col 4: syntax error: expected an attribute name");
    FAILS("{ span.\"abc = 1 }", "parse error at line 1, col 8: unexpected EOF, expecting \"");
    FAILS("{ span.\"a\\nb\" = 1 }", "parse error at line 1, col 10: invalid escape sequence");
    FAILS("{ .a = \"abc }", "parse error at line 1, col 8: literal not terminated");
    FAILS("{ .a = \"ab\nc\" }", "parse error at line 1, col 8: literal not terminated");
    FAILS("{ .a = \"\\q\" }", "parse error at line 1, col 9: invalid escape sequence in string");
    FAILS("{ .a = \"\\ud800\" }",
          "parse error at line 1, col 9: invalid Unicode code point in string");
    FAILS("{ .a = `abc }", "parse error at line 1, col 8: literal not terminated");
    FAILS("{ .a = 99999999999999999999 }", "parse error at line 1, col 8: value out of range");
    FAILS("{ .a = 1e999 }", "parse error at line 1, col 8: value out of range");
    FAILS("{ .x = 1 } /* c ", "parse error at line 1, col 12: comment not terminated");
    FAILS("{\n  .a = 1 &&\n  .b = @ }",
          "parse error at line 3, col 8: syntax error: unexpected character '@'");
    FAILS("{ .é = 1 && ü }",
          "parse error at line 1, col 13: syntax error: unexpected character 'ü'");
    FAILS("{ .a = \"x\" \xff }", "parse error at line 1, col 12: invalid UTF-8 encoding");
    {
        const char q[] = "{ .a = \"x\0\" }";
        td_arena a;
        td_arena_init(&a, 0, 0);
        td_err err;
        td_traceql_query *tq;
        TD_ASSERT_EQ_INT(td_traceql_parse(q, sizeof(q) - 1, &a, &tq, &err), TD_INVALID);
        TD_ASSERT_EQ_STR(err.msg, "parse error at line 1, col 10: invalid character NUL");
        td_arena_release(&a);
    }
    /* types, as Tempo's validation */
    FAILS("{ name = 1 }", "parse error at line 1, col 3: binary operations must operate on the "
                          "same type: name = 1");
    FAILS("{ status = \"error\" }", "parse error at line 1, col 3: binary operations must operate "
                                    "on the same type: status = \"error\"");
    FAILS("{ status = server }", "parse error at line 1, col 3: binary operations must operate on "
                                 "the same type: status = server");
    FAILS("{ status > ok }",
          "parse error at line 1, col 3: illegal operation for the given types: status > ok");
    FAILS("{ name + 1 = 2 }", "parse error at line 1, col 3: binary operations must operate on the "
                              "same type: name + 1");
    FAILS("{ duration =~ \"1s\" }", "parse error at line 1, col 3: binary operations must operate "
                                    "on the same type: duration =~ \"1s\"");
    FAILS("{ 1 }", "parse error at line 1, col 1: span filter field expressions must resolve to a "
                   "boolean: { 1 }");
    FAILS("{ name }", "parse error at line 1, col 1: span filter field expressions must resolve to "
                      "a boolean: { name }");
    FAILS("{ !duration }",
          "parse error at line 1, col 3: illegal operation for the given type: !duration");
    FAILS("{ -name = 1 }", "parse error at line 1, col 3: illegal operation for the given type: "
                           "-name");
    FAILS("{ name =~ span.x }", "parse error at line 1, col 11: invalid type for =~ or !~: span.x");
    FAILS("{ name = nil }",
          "parse error at line 1, col 3: name=nil is not valid because intrinsics cannot be nil");
    FAILS("{ resource.service.name = nil }",
          "parse error at line 1, col 3: resource.service.name=nil is not valid because "
          "resource.service.name cannot be nil");
    FAILS("{ nil }", "parse error at line 1, col 3: syntax error: unexpected nil");
    FAILS("{ .a > nil }", "parse error at line 1, col 8: syntax error: unexpected nil");
    FAILS("{ .a = 1 } | by(1)", "parse error at line 1, col 17: grouping field expressions must "
                                "reference the span: by(1)");
    FAILS("{} | avg(name) > 1", "parse error at line 1, col 6: aggregate field expressions must "
                                "resolve to a number type: avg(name)");
    FAILS("{} | sum(2) > 1", "parse error at line 1, col 6: aggregate field expressions must "
                             "reference the span: sum(2)");
    FAILS("{} | count() > \"x\"", "parse error at line 1, col 16: binary operations must operate "
                                  "on the same type: \"x\"");
    FAILS("{} | count() =~ 1", "parse error at line 1, col 14: syntax error: unexpected =~, "
                               "expecting comparison operator");
    FAILS("{} | select(1)",
          "parse error at line 1, col 13: syntax error: unexpected 1, expecting attribute");
    FAILS("{} rate()", "parse error at line 1, col 4: syntax error: unexpected rate");
    FAILS("rate()", "parse error at line 1, col 1: syntax error: unexpected rate, expecting | "
                    "before the metrics function");
    /* regexes */
    FAILS("{ .a =~ \"(\" }",
          "parse error at line 1, col 9: invalid regex \"(\": missing closing )");
    FAILS("{ .a =~ \"[z-a]\" }",
          "parse error at line 1, col 9: invalid regex \"[z-a]\": invalid character class range");
    FAILS("{ .a !~ \"a**\" }",
          "parse error at line 1, col 9: invalid regex \"a**\": invalid nested "
          "repetition operator: *");
}

static void test_parse_unsupported(void)
{
    FAILS("{ parent.x = 1 }",
          "unsupported TraceQL construct: parent scope (parent.<attribute>) at line 1, col 3");
    FAILS("{ nestedSetLeft = 1 }",
          "unsupported TraceQL construct: intrinsic nestedSetLeft at line 1, col 3");
    FAILS("{ span:parent = 1 }",
          "unsupported TraceQL construct: intrinsic parent at line 1, col 3");
    FAILS("{} | compare({status=error})",
          "unsupported TraceQL construct: compare() at line 1, col 6");
    FAILS("({} | rate()) + 1", "unsupported TraceQL construct: metrics function inside "
                               "parentheses (metrics math) at line 1, col 5");
    FAILS("{} | rate() | topk(5)", "unsupported TraceQL construct: second-stage metrics functions "
                                   "(topk/bottomk) at line 1, col 15");
    FAILS("{} | rate() > 3", "unsupported TraceQL construct: metrics filter at line 1, col 13");
    FAILS("{} | count() + 1 > 2",
          "unsupported TraceQL construct: arithmetic on aggregates at line 1, col 14");
    FAILS("{} | count() > span.x", "unsupported TraceQL construct: scalar filter with a "
                                   "non-constant operand at line 1, col 16");
    FAILS("{ .a =~ \"\\\\pL\" }", "parse error at line 1, col 9: invalid regex \"\\pL\": "
                                  "unsupported regex syntax: \\p (Unicode classes)");
}

static void test_parse_limits(void)
{
    char q[4096];
    /* 64 levels of parentheses inside a filter are too deep; 20 are fine */
    size_t n = 0;
    n += (size_t)snprintf(q + n, sizeof(q) - n, "{ ");
    for (int i = 0; i < 70; i++) {
        q[n++] = '(';
    }
    n += (size_t)snprintf(q + n, sizeof(q) - n, ".a = 1");
    for (int i = 0; i < 70; i++) {
        q[n++] = ')';
    }
    snprintf(q + n, sizeof(q) - n, " }");
    TD_ASSERT_EQ_STR(canon(q), "ERR: parse error at line 1, col 65: query nested too deeply "
                               "(limit 64)");
    n = (size_t)snprintf(q, sizeof(q), "{ ");
    for (int i = 0; i < 20; i++) {
        q[n++] = '(';
    }
    n += (size_t)snprintf(q + n, sizeof(q) - n, ".a = 1");
    for (int i = 0; i < 20; i++) {
        q[n++] = ')';
    }
    snprintf(q + n, sizeof(q) - n, " }");
    TD_ASSERT_EQ_STR(canon(q), "{ .a = 1 }");
    /* nested spanset parentheses and prefix operators count too */
    n = 0;
    for (int i = 0; i < 70; i++) {
        q[n++] = '(';
    }
    q[n] = '\0';
    TD_CHECK(strstr(canon(q), "query nested too deeply") != NULL);
    n = (size_t)snprintf(q, sizeof(q), "{ ");
    for (int i = 0; i < 100; i++) {
        q[n++] = '!';
    }
    snprintf(q + n, sizeof(q) - n, ".a }");
    TD_CHECK(strstr(canon(q), "query nested too deeply") != NULL);
    /* long && chains (Grafana builder, multi-value selections) stay shallow */
    td_buf b = TD_BUF_INIT;
    td_buf_addstr(&b, "{ ");
    for (int i = 0; i < 1000; i++) {
        td_buf_addf(&b, "%s.a%d = \"v\"", i ? " || " : "", i);
    }
    td_buf_addstr(&b, " }");
    TD_CHECK(strncmp(canon(b.data), "{ (.a0 = \"v\") || (.a1 = \"v\")", 28) == 0);
    /* a left-deep arithmetic chain deeper than the evaluator allows */
    td_buf_reset(&b);
    td_buf_addstr(&b, "{ span.a");
    for (int i = 0; i < 300; i++) {
        td_buf_addstr(&b, " + 1");
    }
    td_buf_addstr(&b, " > 1 }");
    TD_CHECK(strstr(canon(b.data), "expression nested too deeply (limit 256)") != NULL);
    /* structural chains too */
    td_buf_reset(&b);
    td_buf_addstr(&b, "{}");
    for (int i = 0; i < 300; i++) {
        td_buf_addstr(&b, " > {}");
    }
    TD_CHECK(strstr(canon(b.data), "expression nested too deeply (limit 256)") != NULL);
    /* regex size, regex count, query length */
    td_buf_reset(&b);
    td_buf_addstr(&b, "{ .a =~ \"");
    for (int i = 0; i < TD_TRACEQL_MAX_REGEX + 1; i++) {
        td_buf_addch(&b, 'a');
    }
    td_buf_addstr(&b, "\" }");
    TD_CHECK(strstr(canon(b.data), "regex longer than 4096 bytes") != NULL);
    TD_CHECK(strstr(canon("{ .a =~ \"((a{100}){100}){100}\" }"), "regex too large") != NULL);
    td_buf_reset(&b);
    td_buf_addstr(&b, "{ ");
    for (int i = 0; i < TD_TRACEQL_MAX_REGEXES + 1; i++) {
        td_buf_addf(&b, "%s.a =~ \"x\"", i ? " || " : "");
    }
    td_buf_addstr(&b, " }");
    TD_CHECK(strstr(canon(b.data), "too many regexes (limit 256)") != NULL);
    td_buf_reset(&b);
    td_buf_addstr(&b, "{}");
    while (b.len <= TD_TRACEQL_MAX_QUERY) {
        td_buf_addstr(&b, "                ");
    }
    TD_CHECK(strstr(canon(b.data), "query too long") != NULL);
    td_buf_release(&b);
}

static void test_parse_attr(void)
{
    td_arena a;
    td_arena_init(&a, 0, 0);
    td_err err;
    td_traceql_attr at;
    TD_ASSERT_OK(td_traceql_parse_attr("resource.service.name", 21, &a, &at, &err));
    TD_ASSERT_EQ_INT(at.scope, TD_TRACEQL_SCOPE_RESOURCE);
    TD_ASSERT_EQ_STR(at.name, "service.name");
    TD_ASSERT_OK(td_traceql_parse_attr("span:status", 11, &a, &at, &err));
    TD_ASSERT_EQ_INT(at.intrinsic, TD_TRACEQL_I_STATUS);
    TD_ASSERT_OK(td_traceql_parse_attr(".http.url", 9, &a, &at, &err));
    TD_ASSERT_EQ_INT(at.scope, TD_TRACEQL_SCOPE_NONE);
    TD_ASSERT_EQ_INT(td_traceql_parse_attr("foo bar", 7, &a, &at, &err), TD_INVALID);
    TD_ASSERT_EQ_STR(err.msg, "parse error at line 1, col 2: unknown identifier: foo");
    TD_ASSERT_EQ_INT(td_traceql_parse_attr(".a = 1", 6, &a, &at, &err), TD_INVALID);
    TD_ASSERT_EQ_STR(err.msg,
                     "parse error at line 1, col 5: syntax error: unexpected =, expecting }");
    TD_ASSERT_EQ_INT(td_traceql_parse_attr("count", 5, &a, &at, &err), TD_INVALID);
    TD_ASSERT_EQ_STR(
        err.msg,
        "parse error at line 1, col 2: syntax error: unexpected count, expecting attribute");
    td_arena_release(&a);
    TD_CHECK(a.head == NULL);
}

static void test_format_duration(void)
{
    static const struct {
        int64_t ns;
        const char *s;
    } cases[] = {
        {0, "0s"},
        {1, "1ns"},
        {999, "999ns"},
        {1000, "1µs"},
        {1500, "1.5µs"},
        {1000000, "1ms"},
        {25000000, "25ms"},
        {1200000000, "1.2s"},
        {60000000000, "1m0s"},
        {3600000000000, "1h0m0s"},
        {5400000000000, "1h30m0s"},
        {-1500000000, "-1.5s"},
        {INT64_MAX, "2562047h47m16.854775807s"},
        {INT64_MIN, "-2562047h47m16.854775808s"},
    };
    char buf[40];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        td_traceql_format_duration(cases[i].ns, buf);
        TD_ASSERT_EQ_STR(buf, cases[i].s);
    }
    int64_t ns;
    TD_CHECK(td__tql_parse_duration("1h30m", 5, &ns) && ns == 5400000000000);
    TD_CHECK(td__tql_parse_duration("1.5s", 4, &ns) && ns == 1500000000);
    TD_CHECK(td__tql_parse_duration("2w3d", 4, &ns) && ns == 17 * 86400000000000ll);
    TD_CHECK(td__tql_parse_duration("1y", 2, &ns) && ns == 365 * 86400000000000ll);
    TD_CHECK(td__tql_parse_duration("100ms", 5, &ns) && ns == 100000000);
    TD_CHECK(td__tql_parse_duration("3\xc2\xb5s", 4, &ns) && ns == 3000);
    TD_CHECK(td__tql_parse_duration(".5ms", 4, &ns) && ns == 500000);
    TD_CHECK(td__tql_parse_duration("2562047h47m16.854775807s", 24, &ns) && ns == INT64_MAX);
    TD_CHECK(!td__tql_parse_duration("2562047h47m16.854775808s", 24, &ns));
    TD_CHECK(!td__tql_parse_duration("1", 1, &ns));
    TD_CHECK(!td__tql_parse_duration("1x", 2, &ns));
    TD_CHECK(!td__tql_parse_duration("s", 1, &ns));
    TD_CHECK(!td__tql_parse_duration("1.s.", 4, &ns));
}

/* ------------------------------------------------------------------------ */
/* regex translation                                                        */
/* ------------------------------------------------------------------------ */

/* 1 match, 0 no match, -1 rejected at translation. */
static int regex_result(const char *pat, const char *s)
{
    td_arena a;
    td_arena_init(&a, 0, 0);
    char why[160];
    const char *posix;
    int r = -1;
    if (td_regex_translate(pat, strlen(pat), &a, &posix, why, sizeof(why)) == TD_OK) {
        regex_t re;
        TD_ASSERT_EQ_INT(regcomp(&re, posix, REG_EXTENDED | REG_NOSUB), 0);
        r = regexec(&re, s, 0, NULL, 0) == 0;
        regfree(&re);
    }
    td_arena_release(&a);
    return r;
}

static void test_regex(void)
{
    static const struct {
        const char *pat, *s;
        int want;
    } cases[] = {
        /* anchored full match */
        {"bar", "bar", 1},
        {"bar", "foobar", 0},
        {"bar", "barx", 0},
        {"postgresql|mysql", "mysql", 1},
        {"postgresql|mysql", "postgresqlmysql", 0},
        {"", "", 1},
        {"", "a", 0},
        /* `.` matches newline (corrections) unless (?-s); one UTF-8 character */
        {"a.c", "a\nc", 1},
        {".*", "line1\nline2", 1},
        {"(?-s)a.c", "a\nc", 0},
        {"a.c",
         "a\xc3\xa9"
         "c",
         1},
        {"a..c",
         "a\xc3\xa9"
         "c",
         0},
        /* classes */
        {"\\d+", "123", 1},
        {"\\d+", "12a", 0},
        {"\\D", "\xc3\xa9", 1},
        {"\\w+", "ab_9", 1},
        {"\\s", "\t", 1},
        {"\\S+", "ab", 1},
        {"[^a]", "\xc3\xa9", 1},
        {"[^a]", "a", 0},
        {"(?i)[^a]", "A", 0},
        {"[a-c]+", "abcab", 1},
        {"[\\]a]", "]", 1},
        {"[]a]", "]", 1},
        {"[a-]", "-", 1},
        {"[\\^]", "^", 1},
        {"[-^]", "^", 1},
        {"[\\[]", "[", 1},
        {"[.]", "x", 0},
        {"[:alpha:]", ":", 1},
        {"[[:alpha:]]+", "abZ", 1},
        {"[[:^alpha:]]", "a", 0},
        {"[\\d\\s]+", "1 2", 1},
        {"[\xc3\xa0-\xc3\xbf]", "\xc3\xa9", 1},
        {"[\xc3\xa0-\xc3\xbf]", "a", 0},
        {"[^\xe2\x82\xac]", "\xe2\x82\xac", 0},
        {"[^\xe2\x82\xac]", "\xc3\xa9", 1},
        {"[\\x{1F600}-\\x{1F64F}]", "\xf0\x9f\x98\x80", 1},
        {"[^\\x00-\\x{10FFFF}]", "a", 0},
        /* flags */
        {"(?i)hello", "HeLLo", 1},
        {"(?i:he)llo", "HEllo", 1},
        {"(?i:he)llo", "HELLO", 0},
        {"a(?i)b", "aB", 1},
        {"a(?i)b", "AB", 0},
        /* repetition, lazy forms, literal braces */
        {"x*?y", "xxy", 1},
        {"a{2,3}", "aaa", 1},
        {"a{2,3}", "aaaa", 0},
        {"a{,2}", "a{,2}", 1},
        {"a{", "a{", 1},
        {"{}", "{}", 1},
        {"(a|b){3}", "aba", 1},
        {"\xc3\xa9+", "\xc3\xa9\xc3\xa9", 1},
        /* escapes */
        {"\\x41\\x{20AC}\\101",
         "A\xe2\x82\xac"
         "A",
         1},
        {"\\Qa.b\\E", "a.b", 1},
        {"\\Qa.b\\E", "axb", 0},
        {"a\\.b", "axb", 0},
        {"(?P<n>ab)+(?:c)(?<m>d)", "ababcd", 1},
        {"^ab$", "ab", 1},
        {"\\Aab\\z", "ab", 1},
        {"\\bab\\b", "ab", 1},
        /* rejected */
        {"a**", "", -1},
        {"*a", "", -1},
        {"(", "", -1},
        {")", "", -1},
        {"[a", "", -1},
        {"\\1", "", -1},
        {"\\pL", "", -1},
        {"(?m)^a", "", -1},
        {"a{1001}", "", -1},
        {"\\q", "", -1},
        {"x\\", "", -1},
        {"^*", "", -1},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int got = regex_result(cases[i].pat, cases[i].s);
        if (got != cases[i].want) {
            TD__FAIL("regex \"%s\" on \"%s\": got %d, want %d", cases[i].pat, cases[i].s, got,
                     cases[i].want);
        }
    }
}

/* ------------------------------------------------------------------------ */
/* the test trace                                                           */
/* ------------------------------------------------------------------------ */

#define T0 1700000000000000000ull
#define MS 1000000ull

typedef struct fixture {
    td_arena a;
    td_otlp_span *sp[8];
    td_traceql_span v[8];
    td_traceql_trace t;
    size_t n;
} fixture;

static td_otlp_any *any_new(td_arena *a)
{
    td_otlp_any *v = td_arena_alloc(a, sizeof(*v));
    opentelemetry__proto__common__v1__any_value__init(v);
    return v;
}

static td_otlp_any *str_(td_arena *a, const char *s)
{
    td_otlp_any *v = any_new(a);
    v->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE;
    v->string_value = (char *)s;
    return v;
}

static td_otlp_any *int_(td_arena *a, int64_t i)
{
    td_otlp_any *v = any_new(a);
    v->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_INT_VALUE;
    v->int_value = i;
    return v;
}

static td_otlp_any *dbl_(td_arena *a, double d)
{
    td_otlp_any *v = any_new(a);
    v->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_DOUBLE_VALUE;
    v->double_value = d;
    return v;
}

static td_otlp_any *bool_(td_arena *a, bool b)
{
    td_otlp_any *v = any_new(a);
    v->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BOOL_VALUE;
    v->bool_value = b;
    return v;
}

static td_otlp_any *arr_(td_arena *a, size_t n, td_otlp_any **vals)
{
    td_otlp_any *v = any_new(a);
    td_otlp_array *arr = td_arena_alloc(a, sizeof(*arr));
    opentelemetry__proto__common__v1__array_value__init(arr);
    arr->n_values = n;
    arr->values = n ? td_arena_memdup(a, vals, n * sizeof(*vals)) : NULL;
    v->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_ARRAY_VALUE;
    v->array_value = arr;
    return v;
}

/* A NULL-terminated list of key/value pairs into an attribute array. */
static size_t kvs(td_arena *a, td_otlp_kv ***out, ...)
{
    va_list ap;
    size_t n = 0;
    td_otlp_kv **v = td_arena_alloc(a, 16 * sizeof(*v));
    va_start(ap, out);
    for (;;) {
        const char *k = va_arg(ap, const char *);
        if (!k) {
            break;
        }
        td_otlp_kv *kv = td_arena_alloc(a, sizeof(*kv));
        opentelemetry__proto__common__v1__key_value__init(kv);
        kv->key = (char *)k;
        kv->value = va_arg(ap, td_otlp_any *);
        v[n++] = kv;
    }
    va_end(ap);
    *out = v;
    return n;
}

static ProtobufCBinaryData id8(td_arena *a, uint8_t last)
{
    uint8_t *p = td_arena_calloc(a, 1, 8);
    p[7] = last;
    return (ProtobufCBinaryData){8, p};
}

static td_otlp_span *span_new(fixture *f, int i, const char *name, int parent, int kind, int status,
                              const char *msg, uint64_t start_ms, uint64_t end_ms)
{
    td_arena *a = &f->a;
    td_otlp_span *s = td_arena_alloc(a, sizeof(*s));
    opentelemetry__proto__trace__v1__span__init(s);
    static uint8_t tid[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0x23};
    s->trace_id = (ProtobufCBinaryData){16, tid};
    s->span_id = id8(a, (uint8_t)(i + 1));
    if (parent >= 0) {
        s->parent_span_id = id8(a, (uint8_t)(parent + 1));
    }
    s->name = (char *)name;
    s->kind = (Opentelemetry__Proto__Trace__V1__Span__SpanKind)kind;
    s->start_time_unix_nano = T0 + start_ms * MS;
    s->end_time_unix_nano = T0 + end_ms * MS;
    if (status >= 0) {
        td_otlp_status *st = td_arena_alloc(a, sizeof(*st));
        opentelemetry__proto__trace__v1__status__init(st);
        st->code = (Opentelemetry__Proto__Trace__V1__Status__StatusCode)status;
        st->message = (char *)(msg ? msg : "");
        s->status = st;
    }
    f->sp[i] = s;
    return s;
}

/*
 * The trace (times in ms after T0; tree 0 -> {1, 5}, 1 -> 2, 2 -> {3, 4}):
 *   0 "GET /cart"    frontend SERVER   ok     0..600   status_code=200 route url cache_hit=true
 *                                                       tags=[a,b] ratio=0.5
 *   1 "call api"     frontend CLIENT   (none) 10..110  status_code=503 note="line1\nline2"
 *                                                       tags=[b,c]
 *   2 "handle"       api      SERVER   error  20..420  status_code=500 retries=3, events
 *                                      "boom"           exception(+10ms) retry(+20ms, attempt=2)
 *   3 "query orders" api      CLIENT   unset  30..80   db.system=postgresql db.name=orders
 *                                                       nums=[1,2,3] ratio=2
 *   4 "query users"  api      CLIENT   ok     90..110  db.system=mysql db.name=users
 *                                                       status_code="404" cache_hit=false, a link
 *   5 "render"       frontend INTERNAL unset  5..1205  span attr service.name="override"
 *                                                       tags=[] ratio=1.5
 */
static void fixture_init(fixture *f)
{
    memset(f, 0, sizeof(*f));
    td_arena *a = &f->a;
    td_arena_init(a, 0, 0);
    td_otlp_resource *res[2];
    for (int i = 0; i < 2; i++) {
        res[i] = td_arena_alloc(a, sizeof(td_otlp_resource));
        opentelemetry__proto__resource__v1__resource__init(res[i]);
    }
    res[0]->n_attributes =
        kvs(a, &res[0]->attributes, "service.name", str_(a, "frontend"), "cloud.region",
            str_(a, "us-east-1"), "k8s.pod.name", str_(a, "fe-1"), NULL);
    res[1]->n_attributes = kvs(a, &res[1]->attributes, "service.name", str_(a, "api"),
                               "cloud.region", str_(a, "us-west-1"), NULL);
    td_otlp_scope *sc[2];
    for (int i = 0; i < 2; i++) {
        sc[i] = td_arena_alloc(a, sizeof(td_otlp_scope));
        opentelemetry__proto__common__v1__instrumentation_scope__init(sc[i]);
    }
    sc[0]->name = "fe-lib";
    sc[0]->version = "1.2";
    sc[0]->n_attributes = kvs(a, &sc[0]->attributes, "lib.flag", bool_(a, true), NULL);
    sc[1]->name = "api-lib";

    td_otlp_span *s;
    td_otlp_any *ab[2] = {str_(a, "a"), str_(a, "b")};
    td_otlp_any *bc[2] = {str_(a, "b"), str_(a, "c")};
    td_otlp_any *nums[3] = {int_(a, 1), int_(a, 2), int_(a, 3)};

    s = span_new(f, 0, "GET /cart", -1, 2, 1, NULL, 0, 600);
    s->n_attributes = kvs(a, &s->attributes, "http.status_code", int_(a, 200), "http.route",
                          str_(a, "/cart"), "http.url", str_(a, "http://shop/cart"), "cache_hit",
                          bool_(a, true), "tags", arr_(a, 2, ab), "ratio", dbl_(a, 0.5), NULL);
    s = span_new(f, 1, "call api", 0, 3, -1, NULL, 10, 110);
    s->n_attributes = kvs(a, &s->attributes, "http.status_code", int_(a, 503), "note",
                          str_(a, "line1\nline2"), "tags", arr_(a, 2, bc), NULL);
    s = span_new(f, 2, "handle", 1, 2, 2, "boom", 20, 420);
    s->n_attributes =
        kvs(a, &s->attributes, "http.status_code", int_(a, 500), "retries", int_(a, 3), NULL);
    s->n_events = 2;
    s->events = td_arena_alloc(a, 2 * sizeof(td_otlp_event *));
    for (int i = 0; i < 2; i++) {
        td_otlp_event *ev = td_arena_alloc(a, sizeof(*ev));
        opentelemetry__proto__trace__v1__span__event__init(ev);
        ev->name = i == 0 ? "exception" : "retry";
        ev->time_unix_nano = T0 + (uint64_t)(30 + 10 * i) * MS;
        if (i == 0) {
            ev->n_attributes = kvs(a, &ev->attributes, "exception.message", str_(a, "boom"), NULL);
        } else {
            ev->n_attributes = kvs(a, &ev->attributes, "attempt", int_(a, 2), NULL);
        }
        s->events[i] = ev;
    }
    s = span_new(f, 3, "query orders", 2, 3, 0, NULL, 30, 80);
    s->n_attributes = kvs(a, &s->attributes, "db.system", str_(a, "postgresql"), "db.name",
                          str_(a, "orders"), "nums", arr_(a, 3, nums), "ratio", int_(a, 2), NULL);
    s = span_new(f, 4, "query users", 2, 3, 1, NULL, 90, 110);
    s->n_attributes =
        kvs(a, &s->attributes, "db.system", str_(a, "mysql"), "db.name", str_(a, "users"),
            "http.status_code", str_(a, "404"), "cache_hit", bool_(a, false), NULL);
    s->n_links = 1;
    s->links = td_arena_alloc(a, sizeof(td_otlp_link *));
    {
        td_otlp_link *lk = td_arena_alloc(a, sizeof(*lk));
        opentelemetry__proto__trace__v1__span__link__init(lk);
        static uint8_t ltid[16] = {0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa,
                                   0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa};
        lk->trace_id = (ProtobufCBinaryData){16, ltid};
        lk->span_id = id8(a, 0xbb);
        lk->n_attributes = kvs(a, &lk->attributes, "link.kind", str_(a, "follows"), NULL);
        s->links[0] = lk;
    }
    s = span_new(f, 5, "render", 0, 1, 0, NULL, 5, 1205);
    s->n_attributes = kvs(a, &s->attributes, "service.name", str_(a, "override"), "tags",
                          arr_(a, 0, NULL), "ratio", dbl_(a, 1.5), NULL);
    f->n = 6;
    for (size_t i = 0; i < f->n; i++) {
        bool fe = i == 0 || i == 1 || i == 5;
        f->v[i] = (td_traceql_span){f->sp[i], res[fe ? 0 : 1], sc[fe ? 0 : 1], 99};
    }
    td_err err;
    TD_ASSERT_OK(td_traceql_trace_init(&f->t, f->v, f->n, a, &err));
}

static void value_str(const td_traceql_value *v, td_buf *b)
{
    char buf[40];
    switch (v->type) {
    case TD_TRACEQL_NIL:
        td_buf_addstr(b, "nil");
        break;
    case TD_TRACEQL_INT:
        td_buf_addf(b, "%lld", (long long)v->i);
        break;
    case TD_TRACEQL_FLOAT:
        td_buf_addf(b, "%g", v->f);
        break;
    case TD_TRACEQL_STRING:
        td_buf_add(b, v->s.ptr, v->s.len);
        break;
    case TD_TRACEQL_BOOL:
        td_buf_addstr(b, v->b ? "true" : "false");
        break;
    case TD_TRACEQL_DURATION:
        td_traceql_format_duration(v->i, buf);
        td_buf_addstr(b, buf);
        break;
    case TD_TRACEQL_STATUS:
        td_buf_addf(b, "status%lld", (long long)v->i);
        break;
    case TD_TRACEQL_KIND:
        td_buf_addf(b, "kind%lld", (long long)v->i);
        break;
    case TD_TRACEQL_OTLP:
        td_buf_addstr(b, "<otlp>");
        break;
    }
}

static int cmp_u32(const void *x, const void *y)
{
    uint32_t a = *(const uint32_t *)x, b = *(const uint32_t *)y;
    return a < b ? -1 : a > b;
}

/*
 * Evaluate q over trace t: "-" for no match, else the spansets separated by
 * " ; ", each as {sorted span indices} followed by its attributes.
 */
static const char *eval_on(const td_traceql_trace *t, const char *q, bool sorted)
{
    td_arena a;
    td_arena_init(&a, 0, 0);
    td_err err;
    td_err_init(&err);
    td_traceql_query *tq;
    td_traceql_eval *ev = NULL;
    td_traceql_result r;
    td_buf b = TD_BUF_INIT;
    td_status st = td_traceql_parse(q, strlen(q), &a, &tq, &err);
    if (st == TD_OK) {
        st = td_traceql_eval_new(tq, &ev, &err);
    }
    if (st == TD_OK) {
        st = td_traceql_eval_trace(ev, t, &a, &r, &err);
    }
    if (st != TD_OK) {
        td_buf_addf(&b, "ERR: %s", err.msg);
    } else if (r.nsets == 0) {
        td_buf_addstr(&b, "-");
    }
    for (size_t i = 0; st == TD_OK && i < r.nsets; i++) {
        const td_traceql_spanset *s = &r.sets[i];
        TD_CHECK(s->matched > 0);
        if (sorted) {
            qsort(s->spans, s->matched, sizeof(uint32_t), cmp_u32);
        }
        td_buf_addstr(&b, i ? " ; {" : "{");
        for (size_t k = 0; k < s->matched; k++) {
            TD_CHECK(s->spans[k] < t->nspans);
            td_buf_addf(&b, "%s%u", k ? "," : "", s->spans[k]);
        }
        td_buf_addch(&b, '}');
        for (size_t k = 0; k < s->nattrs; k++) {
            td_buf_addf(&b, " %s=", s->attrs[k].key);
            value_str(&s->attrs[k].value, &b);
        }
    }
    snprintf(g_out, sizeof(g_out), "%s", b.data);
    td_buf_release(&b);
    td_traceql_eval_free(ev);
    td_arena_release(&a);
    return g_out;
}

static fixture g_fx;

#define EVAL(q, want) TD_ASSERT_EQ_STR(eval_on(&g_fx.t, q, true), want)

static void test_trace_init(void)
{
    fixture_init(&g_fx);
    const td_traceql_trace *t = &g_fx.t;
    static const int32_t parents[6] = {-1, 0, 1, 2, 2, 0};
    for (size_t i = 0; i < 6; i++) {
        TD_ASSERT_EQ_INT(g_fx.v[i].parent, parents[i]);
    }
    TD_ASSERT_EQ_STR(t->root_name, "GET /cart");
    TD_ASSERT_EQ_STR(t->root_service, "frontend");
    TD_ASSERT_EQ_U64(t->duration_ns, 1205 * MS);
    TD_ASSERT_EQ_INT(t->trace_id_len, 16);

    /* missing parent, self parent, duplicate span ID, two roots (earliest wins) */
    fixture f;
    memset(&f, 0, sizeof(f));
    td_arena_init(&f.a, 0, 0);
    span_new(&f, 0, "late-root", -1, 0, -1, NULL, 50, 60);
    span_new(&f, 1, "orphan", 6, 0, -1, NULL, 10, 20);
    span_new(&f, 2, "early-root", -1, 0, -1, NULL, 5, 100);
    span_new(&f, 3, "self", 3, 0, -1, NULL, 10, 20);
    span_new(&f, 4, "child-of-dup", 0, 0, -1, NULL, 10, 20);
    span_new(&f, 5, "dup", -1, 0, -1, NULL, 70, 80);
    f.sp[5]->span_id = f.sp[0]->span_id; /* same ID as span 0: the first one wins */
    f.sp[5]->parent_span_id = id8(&f.a, 3);
    for (int i = 0; i < 6; i++) {
        f.v[i] = (td_traceql_span){f.sp[i], NULL, NULL, 42};
    }
    td_traceql_trace t2;
    td_err err;
    TD_ASSERT_OK(td_traceql_trace_init(&t2, f.v, 6, &f.a, &err));
    static const int32_t want[6] = {-1, -1, -1, -1, 0, 2};
    for (int i = 0; i < 6; i++) {
        TD_ASSERT_EQ_INT(f.v[i].parent, want[i]);
    }
    TD_ASSERT_EQ_STR(t2.root_name, "early-root");
    TD_CHECK(t2.root_service == NULL); /* no resource */
    TD_ASSERT_EQ_U64(t2.duration_ns, 95 * MS);
    /* rootServiceName unknown: every comparison is false */
    TD_ASSERT_EQ_STR(eval_on(&t2, "{ rootServiceName = \"\" }", true), "-");
    TD_ASSERT_EQ_STR(eval_on(&t2, "{ rootName = \"early-root\" } | count() = 6", true),
                     "{0,1,2,3,4,5} count()=6");
    /* an empty trace matches nothing */
    td_traceql_trace t3;
    TD_ASSERT_OK(td_traceql_trace_init(&t3, f.v, 0, &f.a, &err));
    TD_ASSERT_EQ_STR(eval_on(&t3, "{}", true), "-");
    td_arena_release(&f.a);
    td_arena_release(&g_fx.a);
    TD_CHECK(f.a.head == NULL && g_fx.a.head == NULL);
}

static void test_eval_intrinsics(void)
{
    fixture_init(&g_fx);
    EVAL("{}", "{0,1,2,3,4,5}");
    EVAL("{ true }", "{0,1,2,3,4,5}");
    EVAL("{ false }", "-");
    EVAL("{ status = error }", "{2}");
    EVAL("{ status = ok }", "{0,4}");
    EVAL("{ status = unset }", "{1,3,5}");
    EVAL("{ status != ok }", "{1,2,3,5}");
    EVAL("{ kind = server }", "{0,2}");
    EVAL("{ kind = client }", "{1,3,4}");
    EVAL("{ kind = internal }", "{5}");
    EVAL("{ kind != client }", "{0,2,5}");
    EVAL("{ name = \"handle\" }", "{2}");
    EVAL("{ name != \"handle\" }", "{0,1,3,4,5}");
    EVAL("{ name > \"q\" }", "{3,4,5}");
    EVAL("{ name <= \"call api\" }", "{0,1}");
    EVAL("{ statusMessage = \"boom\" }", "{2}");
    EVAL("{ statusMessage = \"\" }", "{0,1,3,4,5}");
    EVAL("{ duration > 100ms }", "{0,2,5}");
    EVAL("{ duration >= 100ms }", "{0,1,2,5}");
    EVAL("{ duration = 50ms }", "{3}");
    EVAL("{ duration < 50ms }", "{4}");
    EVAL("{ duration <= 50ms }", "{3,4}");
    EVAL("{ traceDuration > 1s }", "{0,1,2,3,4,5}");
    EVAL("{ traceDuration > 2s }", "-");
    EVAL("{ traceDuration = 1.205s }", "{0,1,2,3,4,5}");
    EVAL("{ rootName = \"GET /cart\" }", "{0,1,2,3,4,5}");
    EVAL("{ rootServiceName = \"frontend\" }", "{0,1,2,3,4,5}");
    EVAL("{ rootServiceName = \"api\" }", "-");
    EVAL("{ span:id = \"0000000000000003\" }", "{2}");
    EVAL("{ span:parentID = \"0000000000000003\" }", "{3,4}");
    EVAL("{ span:id =~ \"0+[56]\" }", "{4,5}");
    EVAL("{ trace:id = \"123\" }", "{0,1,2,3,4,5}");
    EVAL("{ trace:id = \"00000123\" }", "{0,1,2,3,4,5}");
    EVAL("{ trace:id = \"00000000000000000000000000000123\" }", "{0,1,2,3,4,5}");
    EVAL("{ trace:id = \"124\" }", "-");
    EVAL("{ span:childCount = 2 }", "{0,2}");
    EVAL("{ span:childCount = 0 }", "{3,4,5}");
    EVAL("{ span:childCount > 0 }", "{0,1,2}");
    EVAL("{ instrumentation:name = \"fe-lib\" }", "{0,1,5}");
    EVAL("{ instrumentation:version = \"\" }", "{2,3,4}");
    EVAL("{ instrumentation.lib.flag = true }", "{0,1,5}");
    EVAL("{ instrumentation.lib.flag }", "{0,1,5}");
    td_arena_release(&g_fx.a);
    TD_CHECK(g_fx.a.head == NULL);
}

static void test_eval_attributes(void)
{
    fixture_init(&g_fx);
    EVAL("{ span.http.status_code >= 500 }", "{1,2}");
    EVAL("{ span.http.status_code >= 500 && kind = server }", "{2}");
    EVAL("{ span.http.status_code = \"404\" }", "{4}");
    /* mismatched types are false, for != too; a missing attribute too */
    EVAL("{ span.http.status_code != 200 }", "{1,2}");
    EVAL("{ span.http.status_code = \"200\" }", "-");
    EVAL("{ span.http.route > 5 }", "-");
    EVAL("{ span.missing != 1 }", "-");
    EVAL("{ span.missing = nil }", "{0,1,2,3,4,5}");
    EVAL("{ span.http.route != nil }", "{0}");
    EVAL("{ span.http.route = nil }", "{1,2,3,4,5}");
    EVAL("{ !(span.missing = 1) }", "{0,1,2,3,4,5}");
    /* int and float compare numerically */
    EVAL("{ span.ratio > 1 }", "{3,5}");
    EVAL("{ span.ratio = 2.0 }", "{3}");
    EVAL("{ span.ratio < 1 }", "{0}");
    /* bare booleans */
    EVAL("{ span.cache_hit }", "{0}");
    EVAL("{ span.cache_hit = false }", "{4}");
    EVAL("{ span.cache_hit != true }", "{4}");
    EVAL("{ !span.cache_hit }", "{4}");
    EVAL("{ span.cache_hit > false }", "ERR: parse error at line 1, col 3: illegal operation for "
                                       "the given types: span.cache_hit > false");
    /* scopes, and the unscoped lookup order: span first, then resource */
    EVAL("{ resource.service.name = \"api\" }", "{2,3,4}");
    EVAL("{ .service.name = \"frontend\" }", "{0,1}");
    EVAL("{ .service.name = \"override\" }", "{5}");
    EVAL("{ span.service.name = \"frontend\" }", "-");
    EVAL("{ resource.service.name = \"frontend\" }", "{0,1,5}");
    EVAL("{ .cloud.region = \"us-east-1\" }", "{0,1,5}");
    EVAL("{ .exception.message = \"boom\" }", "-"); /* unscoped never reads events */
    /* regexes are anchored, `.` matches newline */
    EVAL("{ .db.system =~ \"postgresql|mysql\" }", "{3,4}");
    EVAL("{ .db.system =~ \"sql\" }", "-");
    EVAL("{ .db.system =~ \".*sql\" }", "{3,4}");
    EVAL("{ .db.system !~ \"my.*\" }", "{3}");
    EVAL("{ name =~ \"(?i)QUERY.*\" }", "{3,4}");
    EVAL("{ span.note =~ \"line1.line2\" }", "{1}");
    EVAL("{ span.note =~ \"line1.*\" }", "{1}");
    EVAL("{ span.note =~ \"(?-s)line1.*\" }", "-");
    EVAL("{ span.http.status_code =~ \"5.*\" }", "-"); /* ints are not strings */
    /* arrays: = matches any element; != and !~ must hold for every element */
    EVAL("{ span.tags = \"b\" }", "{0,1}");
    EVAL("{ span.tags = \"c\" }", "{1}");
    EVAL("{ span.tags != \"a\" }", "{1,5}");
    EVAL("{ span.tags =~ \"a|c\" }", "{0,1}");
    EVAL("{ span.tags !~ \"a|c\" }", "{5}");
    EVAL("{ span.tags != nil }", "{0,1,5}");
    EVAL("{ \"b\" = span.tags }", "{0,1}");
    EVAL("{ span.nums > 2 }", "{3}");
    EVAL("{ span.nums = 4 }", "-");
    EVAL("{ span.nums < 2 && span.nums > 2 }", "{3}");
    EVAL("{ span.nums != 2 }", "-");
    /* durations compare with plain numbers as nanoseconds */
    EVAL("{ duration > 100000000 }", "{0,2,5}");
    EVAL("{ duration = 50000000 }", "{3}");
    EVAL("{ duration < 2.5e7 }", "{4}");
    EVAL("{ 100000000 < duration }", "{0,2,5}");
    /* events and links: any event/link carrying the attribute */
    EVAL("{ event.exception.message = \"boom\" }", "{2}");
    EVAL("{ event.attempt > 1 }", "{2}");
    EVAL("{ event:name = \"retry\" }", "{2}");
    EVAL("{ event:name != \"exception\" }", "-");
    EVAL("{ event:name != \"other\" }", "{2}");
    EVAL("{ event:timeSinceStart > 15ms }", "{2}");
    EVAL("{ event:timeSinceStart > 25ms }", "-");
    EVAL("{ event.missing = nil }", "{0,1,2,3,4,5}");
    EVAL("{ event.attempt != nil }", "{2}");
    EVAL("{ link.link.kind = \"follows\" }", "{4}");
    EVAL("{ link:traceID = \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\" }", "{4}");
    EVAL("{ link:spanID = \"00000000000000bb\" }", "{4}");
    td_arena_release(&g_fx.a);
    TD_CHECK(g_fx.a.head == NULL);
}

static void test_eval_arithmetic_logic(void)
{
    fixture_init(&g_fx);
    EVAL("{ span.retries * 2 = 6 }", "{2}");
    EVAL("{ span.retries + 0.5 = 3.5 }", "{2}");
    EVAL("{ span.http.status_code / 100 = 5 }", "{1,2}");
    EVAL("{ span.retries % 2 = 1 }", "{2}");
    EVAL("{ span.retries ^ 2 = 9 }", "{2}");
    EVAL("{ -span.retries = -3 }", "{2}");
    EVAL("{ span.retries / 0 = 1 }", "-");
    EVAL("{ span.retries / 0 = nil }", "{0,1,2,3,4,5}");
    EVAL("{ duration / 2 > 200ms }", "{0,5}");
    EVAL("{ duration - 100ms > 0 }", "{0,2,5}");
    EVAL("{ span.http.route + 1 > 0 }", "-");
    EVAL("{ kind = server || status = error }", "{0,2}");
    EVAL("{ kind = client && status = ok }", "{4}");
    EVAL("{ !(kind = client) }", "{0,2,5}");
    EVAL("{ kind = server || kind = client && status = ok }", "{0,4}");
    EVAL("{ kind = server || (kind = client && status = ok) }", "{0,2,4}");
    EVAL("{ span.cache_hit || span.retries = 3 }", "{0,2}");
    EVAL("{ span.cache_hit && span.http.status_code = 200 }", "{0}");
    td_arena_release(&g_fx.a);
    TD_CHECK(g_fx.a.head == NULL);
}

static void test_eval_spanset_ops(void)
{
    fixture_init(&g_fx);
    EVAL("{ resource.service.name = \"frontend\" } && { resource.service.name = \"api\" }",
         "{0,1,2,3,4,5}");
    EVAL("{ resource.cloud.region = \"us-east-1\" } && { resource.cloud.region = \"us-west-1\" }",
         "{0,1,2,3,4,5}");
    EVAL("{ status = error } && { name = \"nope\" }", "-");
    EVAL("{ status = error } || { name = \"nope\" }", "{2}");
    EVAL("{ status = error } || { kind = internal }", "{2,5}");
    /* structural: the right-hand side's spans */
    EVAL("{ name = \"call api\" } > { }", "{2}");
    EVAL("{ name = \"handle\" } < { }", "{1}");
    EVAL("{ name = \"GET /cart\" } >> { kind = client }", "{1,3,4}");
    EVAL("{ resource.service.name = \"api\" } >> { span.db.name = \"orders\" }", "{3}");
    EVAL("{ resource.service.name = \"api\" } >> { resource.service.name = \"api\" }", "{3,4}");
    EVAL("{ kind = client } << { }", "{0,1,2}");
    EVAL("{ name = \"query orders\" } ~ { }", "{4}");
    EVAL("{ kind = client } ~ { kind = client }", "{3,4}");
    EVAL("{ name = \"query orders\" } ~ { name = \"query orders\" }", "-");
    EVAL("{ name = \"GET /cart\" } ~ { }", "-"); /* roots have no siblings */
    EVAL("{ name = \"nope\" } >> { }", "-");
    /* negations */
    EVAL("{ name = \"call api\" } !> { }", "{0,1,3,4,5}");
    EVAL("{ name = \"handle\" } !< { }", "{0,2,3,4,5}");
    EVAL("{ resource.service.name = \"api\" } !>> { }", "{0,1,2,5}");
    EVAL("{ kind = client } !<< { }", "{3,4,5}");
    EVAL("{ name = \"query orders\" } !~ { }", "{0,1,2,3,5}");
    EVAL("{ name = \"nope\" } !>> { kind = server }", "{0,2}");
    /* union forms: both sides */
    EVAL("{ name = \"handle\" } &> { }", "{2,3,4}");
    EVAL("{ name = \"handle\" } &>> { kind = client }", "{2,3,4}");
    EVAL("{ kind = client } &<< { kind = server }", "{0,1,2,3,4}");
    EVAL("{ name = \"query orders\" } &~ { }", "{3,4}");
    EVAL("{ name = \"call api\" } &< { }", "{0,1}");
    EVAL("{ name = \"nope\" } &>> { }", "-");
    /* chains and precedence */
    EVAL("{ kind = server } > { kind = client } > { }", "{2}");
    EVAL("{ status = error } && { name = \"GET /cart\" } >> { kind = client }", "{1,2,3,4}");
    EVAL("({ status = error } && { name = \"GET /cart\" }) >> { kind = client }", "{1,3,4}");
    td_arena_release(&g_fx.a);
    TD_CHECK(g_fx.a.head == NULL);
}

static void test_eval_pipelines(void)
{
    fixture_init(&g_fx);
    EVAL("{ duration > 500ms } | count() > 1", "{0,5} count()=2");
    EVAL("{ duration > 500ms } | count() > 2", "-");
    EVAL("{ } | count() > 5", "{0,1,2,3,4,5} count()=6");
    EVAL("{ } | 5 < count()", "{0,1,2,3,4,5} count()=6");
    EVAL("count() = 6", "{0,1,2,3,4,5} count()=6");
    EVAL("{ } | avg(duration) > 100ms", "{0,1,2,3,4,5} avg(duration)=395ms");
    EVAL("{ } | avg(duration) > 395ms", "-");
    EVAL("{ kind = client } | max(duration) = 100ms", "{1,3,4} max(duration)=100ms");
    EVAL("{ kind = client } | min(duration) < 30ms", "{1,3,4} min(duration)=20ms");
    EVAL("{ kind = client } | sum(duration) = 170ms", "{1,3,4} sum(duration)=170ms");
    EVAL("{ } | sum(span.http.status_code) = 1203",
         "{0,1,2,3,4,5} sum(span.http.status_code)=1203");
    EVAL("{ } | avg(span.ratio) > 1.3", "{0,1,2,3,4,5} avg(span.ratio)=1.33333");
    EVAL("{ } | max(span.ratio) = 2", "{0,1,2,3,4,5} max(span.ratio)=2");
    EVAL("{ } | min(span.missing) > 0", "-");
    EVAL("{ } | count() > 1 | avg(duration) < 1s", "{0,1,2,3,4,5} count()=6 avg(duration)=395ms");
    /* by() groups, in value order (type, then value) */
    EVAL("{ } | by(resource.service.name)",
         "{2,3,4} by(resource.service.name)=api ; {0,1,5} by(resource.service.name)=frontend");
    EVAL("{ } | by(resource.service.name) | count() > 2",
         "{2,3,4} by(resource.service.name)=api count()=3 ; "
         "{0,1,5} by(resource.service.name)=frontend count()=3");
    EVAL("{ } | by(span.http.status_code)",
         "{3,5} by(span.http.status_code)=nil ; {0} by(span.http.status_code)=200 ; "
         "{2} by(span.http.status_code)=500 ; {1} by(span.http.status_code)=503 ; "
         "{4} by(span.http.status_code)=404");
    EVAL("{ } | by(kind, status) | count() > 1",
         "{1,3} by(kind)=kind3 by(status)=status0 count()=2");
    EVAL("{ } | by(event:name) | { event:name != nil }", "{2} by(event:name)=exception");
    EVAL("{ } | by(span:id =~ \"0+[12]\")",
         "{2,3,4,5} by(span:id =~ \"0+[12]\")=false ; {0,1} by(span:id =~ \"0+[12]\")=true");
    EVAL("{ } | by(resource.service.name) | coalesce()", "{0,1,2,3,4,5}");
    EVAL("{ } | by(resource.service.name) | { kind = server }",
         "{2} by(resource.service.name)=api ; {0} by(resource.service.name)=frontend");
    /* structural operators per group: the right side's group spans */
    EVAL("{ } | by(resource.service.name) | { kind = server } > { }",
         "{3,4} by(resource.service.name)=api ; {1,5} by(resource.service.name)=frontend");
    EVAL("({ } | by(resource.service.name)) >> { }",
         "ERR: spanset operators are not supported for multiple spansets per trace. consider "
         "using coalesce()");
    EVAL("({ } | by(resource.service.name) | coalesce()) >> { kind = client }", "{1,3,4}");
    /* && / || of pipelines: the union, with the input spanset's attributes */
    EVAL("({ kind = client } | count() > 2) && { status = error }", "{1,2,3,4}");
    EVAL("({ kind = client } | count() > 3) && { status = error }", "-");
    EVAL("({ kind = client } | count() > 3) || { status = error }", "{2}");
    /* later filters, select */
    EVAL("{ } | { status = error }", "{2}");
    EVAL("{ kind = client } | { status = ok }", "{4}");
    EVAL("{ status = error } | select(span.http.url)", "{2}");
    EVAL("select(span.http.url)", "{0,1,2,3,4,5}");
    /* a metrics query evaluates its spanset pipeline */
    EVAL("{ status = error } | rate() by (resource.service.name)", "{2}");
    td_arena_release(&g_fx.a);
    TD_CHECK(g_fx.a.head == NULL);
}

static void test_eval_order_and_reuse(void)
{
    fixture_init(&g_fx);
    /* spans of a spanset come by start time: 0 (T0), 5 (+5ms), 1, 2, 3, 4 */
    TD_ASSERT_EQ_STR(eval_on(&g_fx.t, "{}", false), "{0,5,1,2,3,4}");
    /* one evaluator over many traces: results are independent */
    td_arena a;
    td_arena_init(&a, 0, 0);
    td_err err;
    td_traceql_query *q;
    const char *s = "{ kind = server } >> { kind = client } | count() > 1";
    TD_ASSERT_OK(td_traceql_parse(s, strlen(s), &a, &q, &err));
    TD_CHECK(q->needs_tree);
    td_traceql_eval *ev;
    TD_ASSERT_OK(td_traceql_eval_new(q, &ev, &err));
    for (int round = 0; round < 50; round++) {
        td_traceql_result r;
        size_t n = round % 2 ? 6 : 3; /* alternate the full trace and a prefix */
        td_traceql_trace t = g_fx.t;
        t.nspans = n;
        TD_ASSERT_OK(td_traceql_eval_trace(ev, &t, &a, &r, &err));
        if (n == 6) {
            TD_ASSERT_EQ_INT(r.nsets, 1);
            TD_ASSERT_EQ_INT(r.sets[0].matched, 3);
            TD_ASSERT_EQ_STR(r.sets[0].attrs[0].key, "count()");
            TD_ASSERT_EQ_INT(r.sets[0].attrs[0].value.i, 3);
        } else {
            TD_ASSERT_EQ_INT(r.nsets, 0); /* spans 0..2: only span 1 is a client */
        }
    }
    td_traceql_eval_free(ev);
    td_arena_release(&a);
    td_arena_release(&g_fx.a);
    TD_CHECK(a.head == NULL && g_fx.a.head == NULL);
}

static void test_eval_cycle(void)
{
    /* corrupt parent links: 0 <-> 1 form a cycle, 2 hangs below 1; no root */
    fixture f;
    memset(&f, 0, sizeof(f));
    td_arena_init(&f.a, 0, 0);
    span_new(&f, 0, "a", 1, 0, -1, NULL, 0, 10);
    span_new(&f, 1, "b", 0, 0, -1, NULL, 1, 10);
    span_new(&f, 2, "c", 1, 0, -1, NULL, 2, 10);
    span_new(&f, 3, "d", 3, 0, -1, NULL, 3, 10); /* its own parent */
    for (int i = 0; i < 4; i++) {
        f.v[i] = (td_traceql_span){f.sp[i], NULL, NULL, -1};
    }
    td_traceql_trace t;
    td_err err;
    TD_ASSERT_OK(td_traceql_trace_init(&t, f.v, 4, &f.a, &err));
    TD_ASSERT_EQ_INT(f.v[0].parent, 1);
    TD_ASSERT_EQ_INT(f.v[1].parent, 0);
    TD_ASSERT_EQ_INT(f.v[3].parent, -1);
    TD_CHECK(t.root_name == NULL);
    /* the cycle is cut at span 0: it becomes a root with 1 and 2 below it */
    TD_ASSERT_EQ_STR(eval_on(&t, "{ } >> { }", true), "{1,2}");
    TD_ASSERT_EQ_STR(eval_on(&t, "{ } << { }", true), "{0,1}");
    TD_ASSERT_EQ_STR(eval_on(&t, "{ span:childCount = 1 }", true), "{0,1}");
    TD_ASSERT_EQ_STR(eval_on(&t, "{ rootName = \"a\" }", true), "-");
    /* parent indices out of range are ignored */
    f.v[2].parent = 77;
    f.v[1].parent = -5;
    TD_ASSERT_EQ_STR(eval_on(&t, "{ } > { }", true), "{0}");
    td_arena_release(&f.a);
    TD_CHECK(f.a.head == NULL);
}

/* ------------------------------------------------------------------------ */
/* span attributes for search results                                       */
/* ------------------------------------------------------------------------ */

static const char *span_attrs(const char *q, size_t span)
{
    td_arena a;
    td_arena_init(&a, 0, 0);
    td_err err;
    td_traceql_query *tq;
    td_buf b = TD_BUF_INIT;
    if (td_traceql_parse(q, strlen(q), &a, &tq, &err) == TD_OK) {
        td_traceql_kv *kv;
        size_t n;
        TD_ASSERT_OK(td_traceql_span_attrs(tq, &g_fx.t, span, &a, &kv, &n, &err));
        for (size_t i = 0; i < n; i++) {
            td_buf_addf(&b, "%s%s=", i ? " " : "", kv[i].key);
            value_str(&kv[i].value, &b);
        }
    } else {
        td_buf_addf(&b, "ERR: %s", err.msg);
    }
    snprintf(g_out, sizeof(g_out), "%s", b.data);
    td_buf_release(&b);
    td_arena_release(&a);
    return g_out;
}

static void test_span_attrs(void)
{
    fixture_init(&g_fx);
    const char *q = "{ resource.service.name = \"api\" && status = error && "
                    "span.http.status_code >= 500 && name = \"handle\" && duration > 1ms } | "
                    "select(span.http.url, .service.name, kind, statusMessage, span.tags)";
    TD_ASSERT_EQ_STR(span_attrs(q, 2),
                     "service.name=api status=error http.status_code=500 kind=server "
                     "statusMessage=boom");
    TD_ASSERT_EQ_STR(span_attrs(q, 0), "service.name=frontend status=ok http.status_code=200 "
                                       "http.url=http://shop/cart kind=server tags=<otlp>");
    /* .service.name on span 5 resolves to its span attribute */
    TD_ASSERT_EQ_STR(span_attrs("{ .service.name != nil }", 5), "service.name=override");
    TD_ASSERT_EQ_STR(span_attrs("{ event.attempt > 0 || event:name = \"x\" }", 2),
                     "attempt=2 event:name=exception");
    TD_ASSERT_EQ_STR(span_attrs("{ span:childCount > 0 && instrumentation:name != \"\" }", 2),
                     "childCount=2 instrumentation:name=api-lib");
    TD_ASSERT_EQ_STR(span_attrs("{ rootName = \"x\" || traceDuration > 1s || span:id = \"1\" }", 2),
                     "");
    td_arena_release(&g_fx.a);
    TD_CHECK(g_fx.a.head == NULL);
}

/* ------------------------------------------------------------------------ */
/* index hints                                                              */
/* ------------------------------------------------------------------------ */

static const char *hints(const char *q)
{
    static const char *const fields[] = {"service",  "name",        "status",
                                         "kind",     "duration",    "traceDuration",
                                         "rootName", "rootService", "attr"};
    static const char *const scopes[] = {"", "span", "resource"};
    td_arena a;
    td_arena_init(&a, 0, 0);
    td_err err;
    td_traceql_query *tq;
    td_buf b = TD_BUF_INIT;
    TD_ASSERT_OK(td_traceql_parse(q, strlen(q), &a, &tq, &err));
    td_traceql_hint *h;
    size_t n;
    TD_ASSERT_OK(td_traceql_hints(tq, &a, &h, &n, &err));
    for (size_t i = 0; i < n; i++) {
        td_buf_addf(&b, "%s%s", i ? ", " : "", fields[h[i].field]);
        if (h[i].field == TD_TRACEQL_HINT_ATTR) {
            td_buf_addf(&b, " %s.%s", scopes[h[i].scope], h[i].attr);
        }
        td_buf_addf(&b, " %s ", td__tql_op_text(h[i].op));
        value_str(&h[i].value, &b);
    }
    snprintf(g_out, sizeof(g_out), "%s", b.data);
    td_buf_release(&b);
    td_arena_release(&a);
    return g_out;
}

static void test_hints(void)
{
    TD_ASSERT_EQ_STR(hints("{}"), "");
    TD_ASSERT_EQ_STR(hints("{ resource.service.name = \"frontend\" && name = \"GET /cart\" }"),
                     "service = frontend, name = GET /cart");
    TD_ASSERT_EQ_STR(hints("{ status = error && kind = server && duration > 1s && "
                           "span.http.status_code >= 500 && .foo = \"x\" && span.b = true && "
                           "resource.r < 2.5 }"),
                     "status = status2, kind = kind2, duration > 1s, attr span.http.status_code >= "
                     "500, attr .foo = x, attr span.b = true, attr resource.r < 2.5");
    TD_ASSERT_EQ_STR(hints("{ 500 <= span.http.status_code && 100 > duration }"),
                     "attr span.http.status_code >= 500, duration < 100ns");
    TD_ASSERT_EQ_STR(
        hints("{ traceDuration > 2s && rootServiceName = \"gw\" && rootName = \"r\" }"),
        "traceDuration > 2s, rootService = gw, rootName = r");
    /* nothing from ||, !, !=, regex, nil, arithmetic, attribute vs attribute, floats on durations
     */
    TD_ASSERT_EQ_STR(hints("{ status = error || kind = server }"), "");
    TD_ASSERT_EQ_STR(hints("{ !(status = error) && status != ok && name =~ \"x\" && .a != nil && "
                           "span.a + 1 = 2 && span.a = span.b && duration > 1.5 && "
                           "resource.service.name =~ \"x\" }"),
                     "");
    TD_ASSERT_EQ_STR(hints("{ (status = error && kind = server) || name = \"x\" }"), "");
    /* spanset operators: both sides of && and structural, the right of negations */
    TD_ASSERT_EQ_STR(hints("{ status = error } && { name = \"a\" }"), "status = status2, name = a");
    TD_ASSERT_EQ_STR(hints("{ status = error } || { name = \"a\" }"), "");
    TD_ASSERT_EQ_STR(hints("{ resource.service.name = \"api\" } >> { span.db.name = \"orders\" }"),
                     "service = api, attr span.db.name = orders");
    TD_ASSERT_EQ_STR(hints("{ name = \"a\" } !>> { name = \"b\" }"), "name = b");
    TD_ASSERT_EQ_STR(hints("{ name = \"a\" } &>> { name = \"b\" }"), "name = a, name = b");
    TD_ASSERT_EQ_STR(hints("{ } | by(resource.service.name) | { status = error } | count() > 1"),
                     "status = status2");
    TD_ASSERT_EQ_STR(hints("({ name = \"a\" } | count() > 1) && { kind = client }"),
                     "name = a, kind = kind3");
    TD_ASSERT_EQ_STR(hints("{ event.a = 1 && link.b = 2 && instrumentation.c = 3 }"), "");
}

/* ------------------------------------------------------------------------ */
/* canonical round trips, allocation failures                               */
/* ------------------------------------------------------------------------ */

static void test_roundtrip(void)
{
    static const char *const qs[] = {
        "{ span.\"a\\\"b\" = \"\\x00\\xff\\u263a\" }",
        "{ .a = 1e308 * 10 }",
        "{ .a = 0.1 + 0.2 }",
        "{ .a = minInt && .b = -9223372036854775807 }",
        "{ (-1.5) * span.x > 0 && -1.5 < span.x }",
        "{ span.x ^ -2 > 0 }",
        "{ .a = 1.0 / 0.0 }",
        "{ duration > -1ns - 1ns }",
        "{ 1 = 1 } && { span.x } | by(span.x + 1)",
        "{ .\"\u00a0\" = 1 && .\"é\" = 2 && .\"a b\" = 3 && .\"x,y\" = 4 }",
    };
    for (size_t i = 0; i < sizeof(qs) / sizeof(qs[0]); i++) {
        char first[8192];
        snprintf(first, sizeof(first), "%s", canon(qs[i]));
        if (strncmp(first, "ERR:", 4) == 0) {
            TD__FAIL("%s: %s", qs[i], first);
        }
        TD_ASSERT_EQ_STR(canon(first), first);
    }
    TD_ASSERT_EQ_STR(canon("{ .a = 1e308 * 10 }"), "{ .a = (1e+308 * 10) }");
    TD_ASSERT_EQ_STR(canon("{ .a = 0.1 + 0.2 }"), "{ .a = 0.30000000000000004 }");
}

/* Parse and evaluate with the Nth allocation failing, N = 1, 2, ... until none fails. */
static void test_nomem(void)
{
    fixture_init(&g_fx);
    const char *q = "{ resource.service.name =~ \"a.*\" && span.x != 1 } >> { } | "
                    "by(resource.service.name) | count() > 0 | { kind = server } &~ { }";
    bool done = false;
    for (long n = 1; n < 10000 && !done; n++) {
        td_arena a;
        td_arena_init(&a, 1024, 0);
        td_err err;
        td_err_init(&err);
        td_traceql_query *tq = NULL;
        td_traceql_eval *ev = NULL;
        td_traceql_result r;
        td_mem_fail_after(n);
        td_status st = td_traceql_parse(q, strlen(q), &a, &tq, &err);
        if (st == TD_OK) {
            st = td_traceql_eval_new(tq, &ev, &err);
        }
        if (st == TD_OK) {
            st = td_traceql_eval_trace(ev, &g_fx.t, &a, &r, &err);
        }
        bool injected = td_mem_fail_after(0);
        if (injected) {
            TD_ASSERT_EQ_INT(st, TD_NOMEM);
            TD_ASSERT_EQ_INT(err.code, TD_NOMEM);
        } else {
            TD_ASSERT_OK(st);
            done = true;
        }
        td_traceql_eval_free(ev);
        td_arena_release(&a);
    }
    TD_CHECK(done);
    /* an arena limit turns into TD_NOMEM as well */
    td_arena a;
    td_arena_init(&a, 1024, 4096);
    td_err err;
    td_traceql_query *tq;
    td_buf b = TD_BUF_INIT;
    td_buf_addstr(&b, "{ ");
    for (int i = 0; i < 200; i++) {
        td_buf_addf(&b, "%s.attribute_%d = \"value\"", i ? " && " : "", i);
    }
    td_buf_addstr(&b, " }");
    TD_ASSERT_EQ_INT(td_traceql_parse(b.data, b.len, &a, &tq, &err), TD_NOMEM);
    td_buf_release(&b);
    td_arena_release(&a);
    td_arena_release(&g_fx.a);
    TD_CHECK(a.head == NULL && g_fx.a.head == NULL);
}

TEST_LIST = {
    {"contract_examples", test_contract_examples},
    {"parse_identifiers", test_parse_identifiers},
    {"parse_literals", test_parse_literals},
    {"parse_operators", test_parse_operators},
    {"parse_pipelines", test_parse_pipelines},
    {"parse_metrics_ast", test_parse_metrics_ast},
    {"parse_errors", test_parse_errors},
    {"parse_unsupported", test_parse_unsupported},
    {"parse_limits", test_parse_limits},
    {"parse_attr", test_parse_attr},
    {"format_duration", test_format_duration},
    {"regex", test_regex},
    {"trace_init", test_trace_init},
    {"eval_intrinsics", test_eval_intrinsics},
    {"eval_attributes", test_eval_attributes},
    {"eval_arithmetic_logic", test_eval_arithmetic_logic},
    {"eval_spanset_ops", test_eval_spanset_ops},
    {"eval_pipelines", test_eval_pipelines},
    {"eval_order_and_reuse", test_eval_order_and_reuse},
    {"eval_cycle", test_eval_cycle},
    {"span_attrs", test_span_attrs},
    {"hints", test_hints},
    {"roundtrip", test_roundtrip},
    {"nomem", test_nomem},
    {NULL, NULL},
};
