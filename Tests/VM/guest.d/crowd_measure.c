/* The benchmark timer (Benchmarks/measure.c) for the guest, where busybox
 * has no nanosecond clock to rely on: prints WALL_SECONDS MAXRSS_KB STATUS. */
#include "../../../Benchmarks/measure.c"
