/*
** metrics: process-wide counters. See metrics.h.
*/
#include <stdatomic.h>
#include "metrics.h"

static _Atomic uint64_t counters[METRIC_COUNT];

static const char *const names[METRIC_COUNT] = {
#define METRICS_NAME(id, name) name,
  METRICS_LIST(METRICS_NAME)
#undef METRICS_NAME
};

void metrics_add(metric m, uint64_t n) {
  if ((unsigned)m < METRIC_COUNT)
    atomic_fetch_add_explicit(&counters[m], n, memory_order_relaxed);
}

uint64_t metrics_get(metric m) {
  if ((unsigned)m >= METRIC_COUNT) return 0;
  return atomic_load_explicit(&counters[m], memory_order_relaxed);
}

void metrics_reset(void) {
  for (int i = 0; i < METRIC_COUNT; i++)
    atomic_store_explicit(&counters[i], 0, memory_order_relaxed);
}

int metrics_report(result *res) {
  for (int i = 0; i < METRIC_COUNT; i++) {
    int rc = result_add_info(res, names[i], "%llu",
                             (unsigned long long)metrics_get((metric)i));
    if (rc) return rc;
  }
  return 0;
}
