/*
** fd: the phi accrual failure detector (Hayashibara et al.), as Cassandra
** computes it: heartbeat inter-arrival times are assumed exponentially
** distributed, so phi(t) = (t - last) / mean * log10(e), where mean is the
** mean of the last FD_WINDOW inter-arrival times. A peer is convicted when
** phi exceeds the threshold (8 by default: about 18 mean intervals of
** silence). Pure computation: times come in as arguments.
*/
#ifndef CELLAR_FD_H
#define CELLAR_FD_H

#include <stdint.h>

#define FD_WINDOW 1000
#define FD_DEFAULT_THRESHOLD 8.0

typedef struct fd_history {
  uint64_t last_ns;            /* arrival of the last heartbeat */
  uint64_t max_interval_ns;    /* longer intervals are not sampled */
  double sum_ns;               /* of the samples in the window */
  uint32_t n, head;
  uint32_t samples_us[FD_WINDOW];
} fd_history;

/* Starts a history at now, seeded with one interval of initial_ns (the
** gossip interval); intervals above max_interval_ns (e.g. a peer that was
** down) are not sampled. */
void fd_init(fd_history *h, uint64_t now_ns, uint64_t initial_ns,
             uint64_t max_interval_ns);

/* A heartbeat arrived at now. */
void fd_report(fd_history *h, uint64_t now_ns);

/* Restarts the silence at now without sampling an interval (this node
** itself was paused: the silence was its own, not the peer's). */
void fd_rearm(fd_history *h, uint64_t now_ns);

/* Suspicion level at now. */
double fd_phi(const fd_history *h, uint64_t now_ns);

/* Mean sampled interval, ns. */
double fd_mean_ns(const fd_history *h);

#endif
