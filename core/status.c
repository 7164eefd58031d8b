#include "status.h"

#include <stdarg.h>
#include <stdio.h>

static const struct {
    const char *name;
    int http;
    int grpc;
} status_table[] = {
#define TD__ROW(name, http, grpc) {#name, http, grpc},
    TD_STATUS_MAP(TD__ROW)
#undef TD__ROW
};

void td_err_init(td_err *err)
{
    err->code = TD_OK;
    err->msg[0] = '\0';
}

td_status td_err_set(td_err *err, td_status code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        err->code = code;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
        va_end(ap);
    }
    return code;
}

static int valid(td_status s)
{
    return (unsigned)s < (unsigned)TD__STATUS_COUNT;
}

const char *td_status_name(td_status s)
{
    return valid(s) ? status_table[s].name : "INTERNAL";
}

int td_status_http(td_status s)
{
    return valid(s) ? status_table[s].http : 500;
}

int td_status_grpc(td_status s)
{
    return valid(s) ? status_table[s].grpc : 13;
}
