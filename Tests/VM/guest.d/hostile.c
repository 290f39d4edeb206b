// Hostile holders for the kcore method (guest.d/hostile.sh), run as an
// unprivileged user through kpf --run-as: a process named `x,1/s` + U+202E
// (an owner separator and a bidi override) holds both ends of a socketpair
// in a thread of its own, its main thread gone, so /proc/PID/fd shows
// nothing and only /proc/PID/task/TID/fd holds them. Prints
// "pair A B PID" and "ready"; ends at EOF on stdin.
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

static void *hold(void *arg) {
    (void)arg;
    char b[64];
    while (read(0, b, sizeof b) > 0) {}
    exit(0);
}

int main(void) {
    int sv[2];
    struct stat a, b;
    if (prctl(PR_SET_NAME, "x,1/s\xe2\x80\xae", 0, 0, 0) != 0 || socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0 ||
        fstat(sv[0], &a) != 0 || fstat(sv[1], &b) != 0) {
        perror("hostile");
        return 1;
    }
    printf("pair %lu %lu %d\nready\n", (unsigned long)a.st_ino, (unsigned long)b.st_ino, (int)getpid());
    fflush(stdout);
    pthread_t t;
    if (pthread_create(&t, NULL, hold, NULL) != 0) return 1;
    pthread_exit(NULL);
}
