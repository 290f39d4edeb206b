// Internal: fill a kp_error.
#ifndef CKPEER_ERROR_H
#define CKPEER_ERROR_H
#include "ckpeer.h"
int kp_fail(kp_error *err, int code, int err_errno, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
// A regular file opened read-only, or -1 with `err` filled.
int kp_open_regular(const char *path, kp_error *err);
// 0 when `fd` is a regular file, else KP_ENOTREG with `err` filled (the
// one wording of "not a regular file").
int kp_check_regular(int fd, const char *path, kp_error *err);
#endif
