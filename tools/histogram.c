/*
** histogram: log-linear latency histogram (see histogram.h).
**
** Bucket index of a value v (after clamping to HISTOGRAM_MAX_US):
**   shift = max(0, msb(v) - SUB_BITS)
**   index = shift * SUB + (v >> shift)
** For v < 2*SUB, shift is 0 and the index is v itself. Above, v >> shift
** lies in [SUB, 2*SUB), so each power of two gets SUB consecutive indexes
** of width 2^shift. The inverse is bucket_low()/bucket_high().
*/
#include <stdlib.h>
#include <string.h>
#include "histogram.h"

#define SUB_BITS 7
#define SUB (1u << SUB_BITS)

static unsigned index_of(uint64_t v) {
  if (v > HISTOGRAM_MAX_US) v = HISTOGRAM_MAX_US;
  if (v < 2 * SUB) return (unsigned)v;
  unsigned msb = 63u - (unsigned)__builtin_clzll(v);
  unsigned shift = msb - SUB_BITS;
  return shift * SUB + (unsigned)(v >> shift);
}

/* Values below 2^27 have shift <= 19, so indexes <= 19*SUB + 2*SUB - 1. */
_Static_assert(HISTOGRAM_MAX_US < (1ull << 27), "NBUCKETS too small");
#define NBUCKETS (21u * SUB)

struct histogram {
  uint64_t count;
  uint64_t sum;
  uint64_t min;
  uint64_t max;
  uint64_t counts[NBUCKETS];
};

static uint64_t bucket_low(unsigned i) {
  if (i < 2 * SUB) return i;
  unsigned shift = i / SUB - 1;
  return (uint64_t)(i - shift * SUB) << shift;
}

static uint64_t bucket_high(unsigned i) {
  if (i < 2 * SUB) return i;
  unsigned shift = i / SUB - 1;
  return bucket_low(i) + ((uint64_t)1 << shift) - 1;
}

histogram *histogram_new(void) {
  histogram *h = malloc(sizeof *h);
  if (h) histogram_reset(h);
  return h;
}

void histogram_free(histogram *h) { free(h); }

void histogram_reset(histogram *h) {
  memset(h, 0, sizeof *h);
  h->min = UINT64_MAX;
}

void histogram_record(histogram *h, uint64_t us) {
  h->counts[index_of(us)]++;
  h->count++;
  h->sum += us;
  if (us < h->min) h->min = us;
  if (us > h->max) h->max = us;
}

void histogram_merge(histogram *dst, const histogram *src) {
  if (src->count == 0) return;
  for (unsigned i = 0; i < NBUCKETS; i++) dst->counts[i] += src->counts[i];
  dst->count += src->count;
  dst->sum += src->sum;
  if (src->min < dst->min) dst->min = src->min;
  if (src->max > dst->max) dst->max = src->max;
}

void histogram_copy(histogram *dst, const histogram *src) {
  memcpy(dst, src, sizeof *dst);
}

uint64_t histogram_count(const histogram *h) { return h->count; }
uint64_t histogram_min(const histogram *h) { return h->count ? h->min : 0; }
uint64_t histogram_max(const histogram *h) { return h->max; }

double histogram_mean(const histogram *h) {
  return h->count ? (double)h->sum / (double)h->count : 0.0;
}

uint64_t histogram_percentile(const histogram *h, double p) {
  if (h->count == 0) return 0;
  if (p <= 0) return h->min;
  if (p >= 100) return h->max;
  /* rank of the wanted value, 1-based: ceil(p% of count) */
  double r = p / 100.0 * (double)h->count;
  uint64_t rank = (uint64_t)r;
  if ((double)rank < r) rank++;
  if (rank == 0) rank = 1;
  uint64_t seen = 0;
  for (unsigned i = 0; i < NBUCKETS; i++) {
    seen += h->counts[i];
    if (seen >= rank) {
      uint64_t v = bucket_high(i);
      if (v > h->max) v = h->max;
      if (v < h->min) v = h->min;
      return v;
    }
  }
  return h->max;
}
