/* fd: phi accrual failure detection over a window of heartbeat intervals. */
#include "fd.h"

#define LOG10_E 0.4342944819032518

static void add_sample(fd_history *h, uint64_t interval_ns) {
  uint32_t us = interval_ns / 1000 > UINT32_MAX ? UINT32_MAX : (uint32_t)(interval_ns / 1000);
  if (h->n == FD_WINDOW) {
    h->sum_ns -= (double)h->samples_us[h->head] * 1000.0;
  } else {
    h->n++;
  }
  h->samples_us[h->head] = us;
  h->sum_ns += (double)us * 1000.0;
  h->head = (h->head + 1) % FD_WINDOW;
}

void fd_init(fd_history *h, uint64_t now_ns, uint64_t initial_ns,
             uint64_t max_interval_ns) {
  h->last_ns = now_ns;
  h->max_interval_ns = max_interval_ns;
  h->sum_ns = 0;
  h->n = h->head = 0;
  add_sample(h, initial_ns);
}

void fd_report(fd_history *h, uint64_t now_ns) {
  if (now_ns > h->last_ns) {
    uint64_t d = now_ns - h->last_ns;
    if (d <= h->max_interval_ns) add_sample(h, d);
  }
  h->last_ns = now_ns;
}

void fd_rearm(fd_history *h, uint64_t now_ns) { h->last_ns = now_ns; }

double fd_mean_ns(const fd_history *h) {
  return h->n ? h->sum_ns / h->n : 1e9;
}

double fd_phi(const fd_history *h, uint64_t now_ns) {
  if (now_ns <= h->last_ns) return 0.0;
  double mean = fd_mean_ns(h);
  if (mean <= 0) mean = 1.0;
  return (double)(now_ns - h->last_ns) / mean * LOG10_E;
}
