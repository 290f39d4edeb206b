// Shared by churn (which makes the sockets) and churn_check (which paces
// churn from a measured kpeer run and sets how many answers to expect).
#ifndef KPEER_CHURN_H
#define KPEER_CHURN_H
// Open sockets per worker: a crowd for kpeer, bounded. Each worker closes
// its oldest socket when it holds this many.
#define CHURN_HOLD 48
// Sockets a worker comes to hold per round: its client end of a connection,
// the accepted end of the previous worker's, and both ends of a socketpair.
#define CHURN_SOCKETS_PER_ROUND 4
#endif
