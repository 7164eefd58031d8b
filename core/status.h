/*
 * status.h - status codes shared by every module, and the error out-parameter.
 *
 * One X-macro table gives each code its name, HTTP status and gRPC status, so a
 * transport maps an error mechanically (STYLE rule 3). Functions that can fail
 * return td_status and take `td_err *err` last; on failure they fill err with the
 * code and a bounded message that is safe to show to a client.
 *
 * Thread-safety: all functions are reentrant.
 */
#ifndef TD_STATUS_H
#define TD_STATUS_H

#include <stddef.h>

/*       name             HTTP  gRPC (numeric, see API-CONTRACT 2.1) */
#define TD_STATUS_MAP(X)                                                                           \
    X(OK, 200, 0)                                                                                  \
    X(INVALID, 400, 3)          /* INVALID_ARGUMENT */                                             \
    X(UNAUTHENTICATED, 401, 16) /* UNAUTHENTICATED */                                              \
    X(NOT_FOUND, 404, 5)        /* NOT_FOUND */                                                    \
    X(METHOD, 405, 12)          /* wrong HTTP method; UNIMPLEMENTED */                             \
    X(TOO_LARGE, 413, 8)        /* RESOURCE_EXHAUSTED without RetryInfo */                         \
    X(UNSUPPORTED, 415, 12)     /* UNIMPLEMENTED */                                                \
    X(LIMITED, 429, 8)          /* RESOURCE_EXHAUSTED with RetryInfo */                            \
    X(OVERLOADED, 503, 14)      /* UNAVAILABLE with RetryInfo */                                   \
    X(NOMEM, 503, 14)                                                                              \
    X(IO, 500, 13)                                                                                 \
    X(CORRUPT, 500, 15) /* DATA_LOSS */                                                            \
    X(INTERNAL, 500, 13)

typedef enum {
#define TD__ENUM(name, http, grpc) TD_##name,
    TD_STATUS_MAP(TD__ENUM)
#undef TD__ENUM
        TD__STATUS_COUNT
} td_status;

#define TD_ERR_MSG_MAX 256

/* Error detail: a code plus a NUL-terminated message (possibly empty). */
typedef struct td_err {
    td_status code;
    char msg[TD_ERR_MSG_MAX];
} td_err;

/* Reset *err to TD_OK with an empty message. */
void td_err_init(td_err *err);

/*
 * Fill err (may be NULL) with code and a printf-style message, truncated to
 * TD_ERR_MSG_MAX-1 bytes. Returns code, so `return td_err_set(err, ...)` works.
 */
td_status td_err_set(td_err *err, td_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Static name ("INVALID"), HTTP status and gRPC status for a code. */
const char *td_status_name(td_status s);
int td_status_http(td_status s);
int td_status_grpc(td_status s);

#endif
