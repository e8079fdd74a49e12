/*
** history_check: the checker of a history of versioned writes, judged by
** what a client can see (values and contexts), shared by the model-checked
** histories (tests/sim/test_history_sim.c) and the history test against a
** real loopback cluster (tests/loopback/test_history.c).
**
** The history: every write attempted (key, its value, unique per attempt,
** and the values the read whose context it carried had returned, none for
** a blind write), whether it was acknowledged, and every read's values.
** Rules (docs/versions.md, "Tests"):
**   1. no value appears that was never written (reads and final states);
**   2. every acknowledged write is present in the final state of its key,
**      or was superseded: some write (acknowledged or not: it may have been
**      applied) carried a context from a read that returned it;
**   3. no final value was superseded by an acknowledged write whose
**      context had it, unless that value's write may have been applied
**      twice (a client retry: the second copy has a dot the context never
**      saw; the caller marks such writes `retried`).
** Convergence (every replica the same) is the caller's check: it knows how
** to read one replica alone.
**
** Not thread-safe: one checker per test, fed under the caller's lock.
*/
#ifndef CELLAR_HISTORY_CHECK_H
#define CELLAR_HISTORY_CHECK_H

#include <stddef.h>

#define HC_VAL 32                /* value bytes, NUL included */

typedef struct hc_write {
  int key;
  char val[HC_VAL];
  int acked, retried;
  long tag;                      /* the caller's (e.g. when), in messages */
  size_t nseen;                  /* values the read before it returned */
  char (*seen)[HC_VAL];          /* owned */
} hc_write;

typedef struct history_check {
  size_t n, cap;
  hc_write *w;                   /* owned */
  long violations;
  long reads, checked_values, superseded, present;
  char first[256];               /* the first violation, for the message */
} history_check;

void hc_init(history_check *h);
void hc_free(history_check *h);

/* Records a write attempt of val (copied, < HC_VAL bytes) on key, carrying
** the context of a read that returned seen[0..nseen) (nseen 0: blind).
** Returns its index, or -1 (out of memory: counted as a violation). */
long hc_write_add(history_check *h, int key, const char *val,
                  const char *const *seen, size_t nseen);
/* The outcome of write i. */
void hc_write_done(history_check *h, long i, int acked, int retried);
/* A read of key returned vals[0..n): rule 1. */
void hc_read(history_check *h, int key, const char *const *vals, size_t n);
/* The final state of key (every replica agreeing): rules 1-3. */
void hc_final(history_check *h, int key, const char *const *vals, size_t n);

#endif
