/*
 * log.h - structured logging: one JSON (or logfmt) line per event on stderr.
 *
 * Each line has fixed keys: ts, level, module, msg, and request_id/tenant when a
 * request context is pushed on the calling thread. td_log checks the level
 * before formatting anything. TD_LOG_THROTTLED limits a call site to one line
 * per second (use it for errors a client can cause), reporting how many lines
 * it suppressed.
 *
 * Thread-safety: all functions are thread-safe; the request context is
 * thread-local. The level and format are set once at start-up.
 */
#ifndef TD_LOG_H
#define TD_LOG_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

typedef enum { TD_LOG_DEBUG, TD_LOG_INFO, TD_LOG_WARN, TD_LOG_ERROR, TD_LOG_OFF } td_log_level;

extern td_log_level td__log_level;

/* Parse "debug|info|warn|error|off"; returns false for anything else. */
bool td_log_parse_level(const char *s, td_log_level *out);
void td_log_set_level(td_log_level lvl);
/* true: logfmt lines; false (default): JSON lines. */
void td_log_set_logfmt(bool logfmt);

void td__log(td_log_level lvl, const char *module, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define td_log(lvl, module, ...)                                                                   \
    do {                                                                                           \
        if ((lvl) >= td__log_level) {                                                              \
            td__log((lvl), (module), __VA_ARGS__);                                                 \
        }                                                                                          \
    } while (0)

/* Per call site rate limit: at most one line per second. */
bool td__log_throttle(_Atomic int64_t *last_sec, _Atomic uint64_t *suppressed, uint64_t *out_n);
#define TD_LOG_THROTTLED(lvl, module, fmt, ...)                                                    \
    do {                                                                                           \
        static _Atomic int64_t td__last;                                                           \
        static _Atomic uint64_t td__supp;                                                          \
        uint64_t td__n;                                                                            \
        if ((lvl) >= td__log_level && td__log_throttle(&td__last, &td__supp, &td__n)) {            \
            td__log((lvl), (module), fmt " (%llu similar suppressed)", ##__VA_ARGS__,              \
                    (unsigned long long)td__n);                                                    \
        }                                                                                          \
    } while (0)

/*
 * Request context of the calling thread, copied into every line until popped.
 * Strings are copied (bounded); pass NULL for absent values.
 */
void td_log_ctx_push(const char *request_id, const char *tenant);
void td_log_ctx_pop(void);

/* Write a fresh random request id (16 lowercase hex chars + NUL) into out[17]. */
void td_log_new_request_id(char out[17]);

#endif
