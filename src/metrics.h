/*
** metrics: the node's counters, kept in one place so that the admin
** command "metrics" (and the metrics endpoint of a later issue) reads them
** all the same way. Each counter is a process-wide atomic: any thread adds
** to it, without a lock. A node process has one set (tests that run several
** nodes in one process see their sum).
**
** Adding a counter: one line in the METRICS_LIST X-macro below; its name in
** the admin output is the second argument.
*/
#ifndef CELLAR_METRICS_H
#define CELLAR_METRICS_H

#include <stdint.h>
#include "result.h"

#define METRICS_LIST(X)                                                   \
  X(HINTS_STORED, "hints.stored")       /* hints written for a target */ \
  X(HINTS_REPLAYED, "hints.replayed")   /* acknowledged by their target */ \
  X(HINTS_EXPIRED, "hints.expired")     /* older than the hint window */ \
  X(HINTS_REFUSED, "hints.refused")     /* over the per-target disk cap */ \
  X(HINTS_FAILED, "hints.failed")       /* not written, or refused by  */ \
                                        /* the target (dropped)        */ \
  X(REPAIR_RANGES, "repair.ranges_compared")                              \
  X(REPAIR_MISMATCHES, "repair.mismatches")                               \
  X(REPAIR_ROWS, "repair.rows_streamed")                                  \
  X(REPAIR_BYTES, "repair.bytes_streamed")                                \
  X(SIBLINGS_WARNED, "versions.siblings_warned")                          \
  X(SIBLINGS_REFUSED, "versions.siblings_refused")

typedef enum metric {
#define METRICS_ENUM(id, name) METRIC_##id,
  METRICS_LIST(METRICS_ENUM)
#undef METRICS_ENUM
  METRIC_COUNT
} metric;

/* Adds n to counter m (any thread). */
void metrics_add(metric m, uint64_t n);

/* The current value of counter m (any thread). */
uint64_t metrics_get(metric m);

/* Sets every counter to 0 (tests). */
void metrics_reset(void);

/* Appends every counter to res as an info pair "name" -> decimal value.
** 0 or a code. */
int metrics_report(result *res);

#endif
