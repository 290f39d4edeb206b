/* The benchmark crowd (Benchmarks/crowd.c), built static into the guest's
 * /bin by Tests/VM/run.sh for guest.d/bench.sh. One source for both. */
#include "../../../Benchmarks/crowd.c"
