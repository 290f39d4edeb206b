// The churn helper, built static for the guest (see Tests/Reliability/churn.c).
#include "../../Reliability/churn.c"
