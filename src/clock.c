/* clock: wall and monotonic time, and randomness, for the whole node. */
#include <stdatomic.h>
#include <sys/random.h>
#include <time.h>
#include "clock.h"

static _Atomic int64_t fake_us;

int64_t clock_now_us(void) {
  int64_t f = atomic_load_explicit(&fake_us, memory_order_relaxed);
  if (f) return f;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

uint32_t clock_now_s(void) { return (uint32_t)(clock_now_us() / 1000000); }

uint64_t clock_mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t clock_random64(void) {
  uint64_t v = 0;
  if (getrandom(&v, sizeof v, 0) != (ssize_t)sizeof v) {
    /* getrandom cannot fail for 8 bytes once the pool is ready; fall back */
    v = clock_mono_ns() * 0x9E3779B97F4A7C15ull;
  }
  return v;
}

void clock_set_fake_us(int64_t us) {
  atomic_store_explicit(&fake_us, us, memory_order_relaxed);
}
