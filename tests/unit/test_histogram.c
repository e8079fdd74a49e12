/* Unit tests of the tools' latency histogram (tools/histogram.c). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include "testutil.h"
#include "../../tools/histogram.h"

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint64_t rnd(void) {
  uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return (x > y) - (x < y);
}

/* Exact percentile of sorted values, same rank rule as the histogram. */
static uint64_t exact_pct(const uint64_t *v, size_t n, double p) {
  double r = p / 100.0 * (double)n;
  size_t rank = (size_t)r;
  if ((double)rank < r) rank++;
  if (rank == 0) rank = 1;
  return v[rank - 1];
}

static void test_empty(void) {
  histogram *h = histogram_new();
  CU_ASSERT_PTR_NOT_NULL_FATAL(h);
  CU_ASSERT_EQUAL(histogram_count(h), 0);
  CU_ASSERT_EQUAL(histogram_max(h), 0);
  CU_ASSERT_EQUAL(histogram_min(h), 0);
  CU_ASSERT_EQUAL(histogram_percentile(h, 50), 0);
  CU_ASSERT_DOUBLE_EQUAL(histogram_mean(h), 0.0, 1e-9);
  histogram_free(h);
}

/* Small values are exact. */
static void test_small_exact(void) {
  histogram *h = histogram_new();
  for (uint64_t v = 1; v <= 100; v++) histogram_record(h, v);
  CU_ASSERT_EQUAL(histogram_count(h), 100);
  CU_ASSERT_EQUAL(histogram_percentile(h, 50), 50);
  CU_ASSERT_EQUAL(histogram_percentile(h, 99), 99);
  CU_ASSERT_EQUAL(histogram_percentile(h, 100), 100);
  CU_ASSERT_EQUAL(histogram_percentile(h, 0), 1);
  CU_ASSERT_DOUBLE_EQUAL(histogram_mean(h), 50.5, 1e-9);
  histogram_free(h);
}

/* Log-uniform values over 1 µs .. 100 s: every percentile within 1%. */
static void test_precision(void) {
  enum { N = 200000 };
  uint64_t *v = malloc(N * sizeof *v);
  histogram *h = histogram_new();
  double sum = 0;
  for (size_t i = 0; i < N; i++) {
    double e = (double)(rnd() >> 11) / 9007199254740992.0 * 8.0; /* 0..8 */
    v[i] = (uint64_t)pow(10.0, e);
    if (v[i] == 0) v[i] = 1;
    sum += (double)v[i];
    histogram_record(h, v[i]);
  }
  qsort(v, N, sizeof *v, cmp_u64);
  const double ps[] = {1, 10, 25, 50, 75, 90, 99, 99.9, 99.99};
  for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++) {
    uint64_t want = exact_pct(v, N, ps[i]);
    uint64_t got = histogram_percentile(h, ps[i]);
    CU_ASSERT_TRUE(got >= want);
    CU_ASSERT_TRUE((double)(got - want) <= 0.01 * (double)want);
  }
  CU_ASSERT_EQUAL(histogram_max(h), v[N - 1]);
  CU_ASSERT_EQUAL(histogram_min(h), v[0]);
  CU_ASSERT_DOUBLE_EQUAL(histogram_mean(h), sum / N, 1e-6 * sum / N);
  free(v);
  histogram_free(h);
}

static void test_out_of_range(void) {
  histogram *h = histogram_new();
  histogram_record(h, 0);
  histogram_record(h, 500ull * 1000000);   /* 500 s */
  CU_ASSERT_EQUAL(histogram_max(h), 500ull * 1000000);
  CU_ASSERT_EQUAL(histogram_percentile(h, 100), 500ull * 1000000);
  CU_ASSERT_EQUAL(histogram_percentile(h, 50), 0);
  uint64_t p99 = histogram_percentile(h, 99);
  CU_ASSERT_TRUE(p99 >= HISTOGRAM_MAX_US * 99 / 100);
  histogram_free(h);
}

/* merge(a, b) equals recording a's and b's values into one. */
static void test_merge(void) {
  histogram *a = histogram_new(), *b = histogram_new(), *all = histogram_new();
  for (int i = 0; i < 50000; i++) {
    uint64_t x = rnd() % 1000000, y = rnd() % 5000;
    histogram_record(a, x);
    histogram_record(b, y);
    histogram_record(all, x);
    histogram_record(all, y);
  }
  histogram_merge(a, b);
  CU_ASSERT_EQUAL(histogram_count(a), histogram_count(all));
  CU_ASSERT_EQUAL(histogram_max(a), histogram_max(all));
  CU_ASSERT_EQUAL(histogram_min(a), histogram_min(all));
  CU_ASSERT_DOUBLE_EQUAL(histogram_mean(a), histogram_mean(all), 1e-9);
  for (double p = 0; p <= 100; p += 0.5)
    CU_ASSERT_EQUAL(histogram_percentile(a, p), histogram_percentile(all, p));
  histogram *c = histogram_new();
  histogram_copy(c, a);
  CU_ASSERT_EQUAL(histogram_percentile(c, 99.9), histogram_percentile(a, 99.9));
  histogram_reset(c);
  CU_ASSERT_EQUAL(histogram_count(c), 0);
  histogram_free(a);
  histogram_free(b);
  histogram_free(c);
  histogram_free(all);
}

int main(int argc, char **argv) {
  static const test_case cases[] = {
    {"empty", test_empty},
    {"small_exact", test_small_exact},
    {"precision", test_precision},
    {"out_of_range", test_out_of_range},
    {"merge", test_merge},
    {NULL, NULL}
  };
  return testutil_run("histogram", cases, argc, argv);
}
