/*
 * json.h - the one JSON writer (STYLE rule 7): every JSON body the daemon emits
 * is built with these calls on a td_buf.
 *
 *   td_buf b = TD_BUF_INIT;
 *   td_json j;
 *   td_json_init(&j, &b);
 *   td_json_begin_object(&j);
 *   td_json_key(&j, "version");
 *   td_json_string(&j, "2.9.0");
 *   td_json_end_object(&j);            -> {"version":"2.9.0"}
 *
 * Commas are inserted automatically: before a key or value that follows a
 * complete value at the same level. The writer does not check nesting; callers
 * pair begin/end and key/value themselves.
 *
 * Text rules: strings are escaped per RFC 8259 (`"` `\` and \b \f \n \r \t,
 * other control characters as \u00XX); bytes that are not valid UTF-8 become
 * U+FFFD (one per invalid byte, as Go does); valid multi-byte UTF-8 is copied.
 * Numbers follow the Tempo JSON style (API-CONTRACT §0): 64-bit integers are
 * written as strings by the *_str calls, doubles in their shortest round-trip
 * form (Go encoding/json layout), NaN/Inf as the strings "NaN", "Infinity",
 * "-Infinity".
 *
 * Memory: output is appended to the caller's td_buf, which grows with
 * td_buf_add (abort on OOM: callers bound the input size beforehand).
 * Thread-safety: a td_json belongs to one thread at a time.
 */
#ifndef TD_API_JSON_H
#define TD_API_JSON_H

#include "core/buf.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct td_json {
    td_buf *out;
    bool comma; /* a complete value precedes the next key or value */
} td_json;

/* Start writing into out (appends after whatever out already holds). */
void td_json_init(td_json *j, td_buf *out);

void td_json_begin_object(td_json *j);
void td_json_end_object(td_json *j);
void td_json_begin_array(td_json *j);
void td_json_end_array(td_json *j);

/* An object key (NUL-terminated or counted); the next call writes its value. */
void td_json_key(td_json *j, const char *key);
void td_json_key_n(td_json *j, const char *key, size_t n);

void td_json_string(td_json *j, const char *s);
void td_json_string_n(td_json *j, const char *s, size_t n);
/* 64-bit integers as decimal strings ("123"), the protojson/Tempo way. */
void td_json_int64_str(td_json *j, int64_t v);
void td_json_uint64_str(td_json *j, uint64_t v);
/* A plain JSON number (use for 32-bit fields). */
void td_json_int(td_json *j, int64_t v);
void td_json_double(td_json *j, double v);
void td_json_bool(td_json *j, bool v);
void td_json_null(td_json *j);
/* Already-encoded JSON text, copied as is (it counts as one value). */
void td_json_raw(td_json *j, const char *s, size_t n);
/* Standard padded base64 of n bytes, as a JSON string. */
void td_json_base64(td_json *j, const uint8_t *p, size_t n);

/* Append s[0..n) escaped (no surrounding quotes) to out. */
void td_json_append_escaped(td_buf *out, const char *s, size_t n);
/* Append standard padded base64 of p[0..n) to out. */
void td_json_append_base64(td_buf *out, const uint8_t *p, size_t n);
/* Append the JSON number text for v (or the quoted NaN/Infinity string) to out. */
void td_json_append_double(td_buf *out, double v);

#endif
