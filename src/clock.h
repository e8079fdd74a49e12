/*
** clock: the node's sources of time and randomness, behind one small
** interface so protocol logic can run under a deterministic simulator.
*/
#ifndef CELLAR_CLOCK_H
#define CELLAR_CLOCK_H

#include <stdint.h>

int64_t clock_now_us(void);      /* wall clock, microseconds since epoch */
uint32_t clock_now_s(void);      /* wall clock, seconds since epoch */
uint64_t clock_mono_ns(void);    /* monotonic, nanoseconds */
uint64_t clock_random64(void);   /* from the OS's entropy; thread-safe */

/* A test may pin the wall clock (0 = real clock again). Process-wide. */
void clock_set_fake_us(int64_t us);

#endif
