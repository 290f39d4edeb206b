// The churn judge and signal test, built static for the guest (see
// Tests/Reliability/churn_check.c).
#include "../../Reliability/churn_check.c"
