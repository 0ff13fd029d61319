#include "err.h"

#include <stdarg.h>
#include <stdio.h>

int bp_err_set(bp_err_t *err, int code, const char *fmt, ...)
{
    if (err == NULL)
        return code;
    err->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
    return code;
}

void bp_err_clear(bp_err_t *err)
{
    if (err == NULL)
        return;
    err->code = BP_OK;
    err->msg[0] = '\0';
}

const char *bp_strerror(int code)
{
    switch (code) {
    case BP_OK:
        return "ok";
    case BP_EINVAL:
        return "invalid_argument";
    case BP_ENOTFOUND:
        return "not_found";
    case BP_ETOOBIG:
        return "too_large";
    case BP_EMEDIA:
        return "unsupported_media_type";
    case BP_EDB:
        return "database_unavailable";
    case BP_EIO:
        return "io_error";
    case BP_ENOMEM:
        return "out_of_memory";
    case BP_ECONFIG:
        return "bad_config";
    case BP_EBUSY:
        return "busy";
    case BP_EAUTH:
        return "unauthorized";
    default:
        return "internal";
    }
}

int bp_err_http_status(int code)
{
    switch (code) {
    case BP_OK:
        return 200;
    case BP_EINVAL:
        return 400;
    case BP_EAUTH:
        return 401;
    case BP_ENOTFOUND:
        return 404;
    case BP_ETOOBIG:
        return 413;
    case BP_EMEDIA:
        return 415;
    case BP_EDB:
    case BP_EIO:
    case BP_EBUSY:
        return 503;
    default:
        return 500;
    }
}
