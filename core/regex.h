/*
 * regex.h - RE2-syntax regexes run with POSIX regcomp(3)/regexec(3).
 *
 * td_regex_translate turns an RE2 pattern (as Go's regexp, so Tempo's TraceQL
 * and Prometheus/Pyroscope label matchers, read it) into a POSIX extended
 * regex with the same match/no-match answer, fully anchored and with `.`
 * matching newline (Go's ^(?s:p)$). Compile the result with
 * regcomp(&re, posix, REG_EXTENDED | REG_NOSUB) in the C locale, where regexec
 * works on bytes; the translation handles UTF-8 itself. Supported: literals,
 * `.`, classes (with negation, ranges, \d \w \s and their negations, POSIX
 * [:name:] classes), groups (capturing, non-capturing, named), alternation,
 * * + ? {n,m} and their lazy forms, flags i s U (scoped or not), ^ $ \A \z
 * \b \B, \Q...\E, \x escapes. Rejected rather than approximated: \p Unicode
 * classes, \C, (?m), backreferences, and patterns whose compiled size would
 * be too large (counted repetitions are bounded).
 *
 * Thread-safety: pure functions; reentrant.
 */
#ifndef TD_REGEX_H
#define TD_REGEX_H

#include "core/arena.h"
#include "core/status.h"

#include <stddef.h>
#include <stdint.h>

/* Longest pattern td_regex_translate accepts, in bytes. */
#define TD_REGEX_MAX 4096

/*
 * Translate RE2 pattern src[0..n) into an anchored POSIX extended regex,
 * NUL-terminated, in arena a. On error returns TD_INVALID (or TD_NOMEM) with
 * a reason in why[0..whylen) and leaves *out untouched.
 */
td_status td_regex_translate(const char *src, size_t n, td_arena *a, const char **out, char *why,
                             size_t whylen);

#endif
