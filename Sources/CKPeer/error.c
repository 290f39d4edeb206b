#include "error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int kp_fail(kp_error *err, int code, int err_errno, const char *fmt, ...) {
    if (err) {
        err->code = code;
        err->err_errno = err_errno;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->message, sizeof err->message, fmt, ap);
        va_end(ap);
    }
    return code;
}
