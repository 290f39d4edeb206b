#include "error.h"
#include <errno.h>
#include <unistd.h>
#include <sys/stat.h>
#include <fcntl.h>

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

// Files given on the command line: a FIFO or a device would block or never
// end, so only regular files are read (O_NONBLOCK: opening a FIFO must not
// wait for a writer).
int kp_open_regular(const char *path, kp_error *err) {
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        kp_fail(err, KP_EIO, errno, "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    if (kp_check_regular(fd, path, err) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

int kp_check_regular(int fd, const char *path, kp_error *err) {
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
        return kp_fail(err, KP_ENOTREG, 0, "%s is not a regular file", path);
    return 0;
}
