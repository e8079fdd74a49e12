/* Unit tests of the phi accrual failure detector. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include "fd.h"
#include "testutil.h"

#define S 1000000000ull

static void test_phi_grows_with_silence(void) {
  fd_history h;
  fd_init(&h, 0, S, 10 * S);
  uint64_t t = 0;
  for (int i = 0; i < 100; i++) {
    t += S;
    fd_report(&h, t);
  }
  CU_ASSERT_DOUBLE_EQUAL(fd_mean_ns(&h), (double)S, 1.0);
  CU_ASSERT_DOUBLE_EQUAL(fd_phi(&h, t), 0.0, 1e-9);
  /* exponential model: phi = dt/mean * log10(e) */
  CU_ASSERT_DOUBLE_EQUAL(fd_phi(&h, t + S), 0.4343, 1e-3);
  CU_ASSERT(fd_phi(&h, t + 18 * S) < FD_DEFAULT_THRESHOLD);
  CU_ASSERT(fd_phi(&h, t + 19 * S) > FD_DEFAULT_THRESHOLD);
  double prev = 0;
  for (uint64_t d = 0; d < 30; d++) {
    double p = fd_phi(&h, t + d * S);
    CU_ASSERT(p >= prev);
    prev = p;
  }
}

static void test_adapts_to_interval_and_ignores_outages(void) {
  fd_history h;
  fd_init(&h, 0, S, 5 * S);
  uint64_t t = 0;
  for (int i = 0; i < 2000; i++) {
    t += S / 4;
    fd_report(&h, t);
  }
  /* the seed sample has left the window */
  CU_ASSERT_DOUBLE_EQUAL(fd_mean_ns(&h), (double)S / 4, 1000.0);
  CU_ASSERT(fd_phi(&h, t + 5 * S) > FD_DEFAULT_THRESHOLD);
  /* a 60 s outage is not sampled: the mean stays put */
  t += 60 * S;
  fd_report(&h, t);
  CU_ASSERT_DOUBLE_EQUAL(fd_mean_ns(&h), (double)S / 4, 1000.0);
  CU_ASSERT_DOUBLE_EQUAL(fd_phi(&h, t), 0.0, 1e-9);
}

static void test_jitter_no_false_conviction(void) {
  fd_history h;
  fd_init(&h, 0, S, 10 * S);
  srand(7);
  uint64_t t = 0;
  double maxphi = 0;
  for (int i = 0; i < 100000; i++) {
    uint64_t gap = S / 2 + (uint64_t)(rand() % 1000) * (S / 1000);   /* 0.5 .. 1.5 s */
    double p = fd_phi(&h, t + gap);
    if (p > maxphi) maxphi = p;
    t += gap;
    fd_report(&h, t);
  }
  printf("\n  max phi with 0.5-1.5 s jitter over 100k heartbeats: %.2f\n", maxphi);
  CU_ASSERT(maxphi < FD_DEFAULT_THRESHOLD);
}

int main(int argc, char **argv) {
  static const test_case cases[] = {
    {"phi_grows_with_silence", test_phi_grows_with_silence},
    {"adapts_to_interval_and_ignores_outages", test_adapts_to_interval_and_ignores_outages},
    {"jitter_no_false_conviction", test_jitter_no_false_conviction},
    {NULL, NULL}};
  return testutil_run("fd", cases, argc, argv);
}
