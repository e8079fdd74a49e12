/*
** histogram: an HDR-style latency histogram for the tools (cellar-bench).
**
** Values are unsigned integers in microseconds. Buckets are log-linear:
** values below 256 have one bucket each; above, every power of two
** [2^k, 2^(k+1)) is split into 128 equal sub-buckets, so a reported value
** is within 1/128 (0.8%) of the recorded one. The tracked range is 0 ..
** HISTOGRAM_MAX_US (100 s); larger values are counted in the top bucket,
** and max() still reports them exactly. Memory is fixed (about 21 KiB),
** record() is O(1) and allocation free.
**
** Not thread-safe: callers sharing a histogram between threads lock.
*/
#ifndef CELLAR_HISTOGRAM_H
#define CELLAR_HISTOGRAM_H

#include <stdint.h>

#define HISTOGRAM_MAX_US 100000000ull   /* 100 s */

typedef struct histogram histogram;

/* Returns a new empty histogram (malloc'd, caller frees with
** histogram_free), or NULL when out of memory. */
histogram *histogram_new(void);
void histogram_free(histogram *h);      /* NULL is fine */

/* Empties h. */
void histogram_reset(histogram *h);

/* Records one value (µs). */
void histogram_record(histogram *h, uint64_t us);

/* Adds every value of src to dst (src is unchanged). */
void histogram_merge(histogram *dst, const histogram *src);

/* Copies src into dst (both allocated). */
void histogram_copy(histogram *dst, const histogram *src);

uint64_t histogram_count(const histogram *h);
/* Exact extremes of the recorded values; 0 when empty. */
uint64_t histogram_min(const histogram *h);
uint64_t histogram_max(const histogram *h);
/* Exact mean of the recorded values; 0 when empty. */
double histogram_mean(const histogram *h);

/*
** The value at percentile p (0..100): the smallest recorded value v such
** that at least p% of the values are <= v, reported as the highest value
** of v's bucket (so never below the true percentile), clipped to
** [min, max]. p <= 0 gives min, p >= 100 gives max, empty gives 0.
*/
uint64_t histogram_percentile(const histogram *h, double p);

#endif
