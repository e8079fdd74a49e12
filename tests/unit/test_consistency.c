/* Unit tests of the consistency-level arithmetic: requirements per
** strategy, unavailable vs ok with replicas down, the ack tracker. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cellar/cellar.h"
#include "consistency.h"
#include "testutil.h"

#define NLEVELS 9
static const cellar_consistency_t levels[NLEVELS] = {
  CELLAR_CL_ONE, CELLAR_CL_TWO, CELLAR_CL_THREE, CELLAR_CL_QUORUM, CELLAR_CL_ALL,
  CELLAR_CL_LOCAL_ONE, CELLAR_CL_LOCAL_QUORUM, CELLAR_CL_EACH_QUORUM, CELLAR_CL_ANY};

static keyspace_def simple(uint32_t rf) {
  keyspace_def k;
  memset(&k, 0, sizeof k);
  strcpy(k.name, "ks");
  k.strategy = REPL_SIMPLE;
  k.rf = rf;
  return k;
}

static keyspace_def nts(uint32_t rf1, uint32_t rf2) {
  keyspace_def k;
  memset(&k, 0, sizeof k);
  strcpy(k.name, "ks");
  k.strategy = REPL_NETWORK_TOPOLOGY;
  k.ndcs = 2;
  strcpy(k.dcs[0].name, "dc1");
  k.dcs[0].rf = rf1;
  strcpy(k.dcs[1].name, "dc2");
  k.dcs[1].rf = rf2;
  return k;
}

static cl_replica rep(uint32_t member, const char *dc, int alive) {
  cl_replica r;
  memset(&r, 0, sizeof r);
  r.member = member;
  snprintf(r.dc, sizeof r.dc, "%s", dc);
  r.alive = alive;
  return r;
}

/* SimpleStrategy rf 1..5: what each level requires, literally. */
static const uint32_t simple_need[5][NLEVELS] = {
  /* ONE TWO THREE QUORUM ALL L_ONE L_QUORUM EACH ANY */
  {1, 2, 3, 1, 1, 1, 1, 1, 1},
  {1, 2, 3, 2, 2, 1, 2, 2, 1},
  {1, 2, 3, 2, 3, 1, 2, 2, 1},
  {1, 2, 3, 3, 4, 1, 3, 3, 1},
  {1, 2, 3, 3, 5, 1, 3, 3, 1},
};

static void test_simple_strategy_table(void) {
  for (uint32_t rf = 1; rf <= 5; rf++) {
    keyspace_def ks = simple(rf);
    for (int l = 0; l < NLEVELS; l++) {
      cl_need n;
      char err[128];
      /* SimpleStrategy: LOCAL_* without a local datacenter is fine */
      CU_ASSERT_EQUAL_FATAL(cl_need_init(&n, &ks, NULL, levels[l], 1, err, sizeof err), 0);
      CU_ASSERT_EQUAL(n.total, simple_need[rf - 1][l]);
      CU_ASSERT_EQUAL(n.scope, CL_SCOPE_ANY_DC);
      for (uint32_t down = 0; down <= rf; down++) {
        cl_replica r[5];
        /* down replicas spread over positions and datacenters: SimpleStrategy
        ** ignores datacenters, even for LOCAL_* */
        for (uint32_t i = 0; i < rf; i++)
          r[i] = rep(i, i % 2 ? "dc2" : "dc1", (i + 1) % rf >= down);
        int expect_ok = levels[l] == CELLAR_CL_ANY || rf - down >= simple_need[rf - 1][l];
        err[0] = '\0';
        int rc = cl_check_alive(&n, r, rf, err, sizeof err);
        CU_ASSERT_EQUAL(rc, expect_ok ? 0 : CELLAR_EUNAVAILABLE);
        if (rc != (expect_ok ? 0 : CELLAR_EUNAVAILABLE))
          printf("\n  rf %u %s down %u: rc %d (%s)", rf, cellar_consistency_name(levels[l]),
                 down, rc, err);
        if (rc) {
          char want[128];
          snprintf(want, sizeof want, "%s requires %u replicas, %u alive",
                   cellar_consistency_name(levels[l]), simple_need[rf - 1][l], rf - down);
          CU_ASSERT_STRING_EQUAL(err, want);
        }
      }
      /* reads: the same, except ANY */
      int rc = cl_need_init(&n, &ks, "dc1", levels[l], 0, err, sizeof err);
      CU_ASSERT_EQUAL(rc, levels[l] == CELLAR_CL_ANY ? CELLAR_EBADCL : 0);
    }
  }
}

/* NTS {dc1:3, dc2:3}, coordinator in dc1: ok (1) or unavailable (0) with
** d1 replicas of dc1 and d2 of dc2 down, rows d1 = 0..3, columns d2 = 0..3. */
static const char *const nts33[NLEVELS][4] = {
  {"1111", "1111", "1111", "1110"},   /* ONE */
  {"1111", "1111", "1110", "1100"},   /* TWO */
  {"1111", "1110", "1100", "1000"},   /* THREE */
  {"1110", "1100", "1000", "0000"},   /* QUORUM = 4 */
  {"1000", "0000", "0000", "0000"},   /* ALL = 6 */
  {"1111", "1111", "1111", "0000"},   /* LOCAL_ONE */
  {"1111", "1111", "0000", "0000"},   /* LOCAL_QUORUM = 2 in dc1 */
  {"1100", "1100", "0000", "0000"},   /* EACH_QUORUM = 2 + 2 */
  {"1111", "1111", "1111", "1111"},   /* ANY */
};
static const uint32_t nts33_need[NLEVELS] = {1, 2, 3, 4, 6, 1, 2, 4, 1};

/* NTS {dc1:3, dc2:2}: rows d1 = 0..3, columns d2 = 0..2; local dc1. */
static const char *const nts32[NLEVELS][4] = {
  {"111", "111", "111", "110"},       /* ONE */
  {"111", "111", "110", "100"},       /* TWO */
  {"111", "110", "100", "000"},       /* THREE */
  {"111", "110", "100", "000"},       /* QUORUM = 5/2+1 = 3 */
  {"100", "000", "000", "000"},       /* ALL = 5 */
  {"111", "111", "111", "000"},       /* LOCAL_ONE */
  {"111", "111", "000", "000"},       /* LOCAL_QUORUM = 2 in dc1 */
  {"100", "100", "000", "000"},       /* EACH_QUORUM = 2 + 2 */
  {"111", "111", "111", "111"},       /* ANY */
};
static const uint32_t nts32_need[NLEVELS] = {1, 2, 3, 3, 5, 1, 2, 4, 1};

/* Checks every subset of down replicas against a table. Replicas
** alternate between the datacenters so that position does not matter. */
static void check_nts(uint32_t rf1, uint32_t rf2, const char *local,
                      const char *const table[NLEVELS][4], const uint32_t *need) {
  keyspace_def ks = nts(rf1, rf2);
  uint32_t nr = rf1 + rf2;
  cl_replica r[8];
  const char *dcof[8];
  for (uint32_t i = 0, a = 0, b = 0; i < nr; i++) {
    int in1 = (i % 2 == 0 && a < rf1) || b >= rf2;
    dcof[i] = in1 ? "dc1" : "dc2";
    if (in1) a++;
    else b++;
  }
  for (int l = 0; l < NLEVELS; l++) {
    cl_need n;
    char err[128];
    CU_ASSERT_EQUAL_FATAL(cl_need_init(&n, &ks, local, levels[l], 1, err, sizeof err), 0);
    CU_ASSERT_EQUAL(n.total, need[l]);
    for (uint32_t mask = 0; mask < (1u << nr); mask++) {
      uint32_t d1 = 0, d2 = 0;
      for (uint32_t i = 0; i < nr; i++) {
        int down = (mask >> i) & 1;
        r[i] = rep(i, dcof[i], !down);
        if (down && !strcmp(dcof[i], "dc1")) d1++;
        if (down && !strcmp(dcof[i], "dc2")) d2++;
      }
      int expect_ok = table[l][d1][d2] == '1';
      int rc = cl_check_alive(&n, r, nr, err, sizeof err);
      CU_ASSERT_EQUAL(rc, expect_ok ? 0 : CELLAR_EUNAVAILABLE);
      if (rc != (expect_ok ? 0 : CELLAR_EUNAVAILABLE))
        printf("\n  {dc1:%u, dc2:%u} %s down %u+%u: rc %d", rf1, rf2,
               cellar_consistency_name(levels[l]), d1, d2, rc);
    }
  }
}

static void test_nts_3_3_table(void) { check_nts(3, 3, "dc1", nts33, nts33_need); }

static void test_nts_3_2_table(void) { check_nts(3, 2, "dc1", nts32, nts32_need); }

/* From dc2 (rf 2) LOCAL_QUORUM needs both local replicas. */
static void test_nts_3_2_from_dc2(void) {
  keyspace_def ks = nts(3, 2);
  cl_need n;
  char err[128];
  CU_ASSERT_EQUAL(cl_need_init(&n, &ks, "dc2", CELLAR_CL_LOCAL_QUORUM, 0, err, sizeof err), 0);
  CU_ASSERT_EQUAL(n.total, 2);
  CU_ASSERT_EQUAL(n.scope, CL_SCOPE_LOCAL_DC);
  cl_replica r[5] = {rep(0, "dc1", 1), rep(1, "dc2", 1), rep(2, "dc1", 1), rep(3, "dc2", 0),
                     rep(4, "dc1", 1)};
  CU_ASSERT_EQUAL(cl_check_alive(&n, r, 5, err, sizeof err), CELLAR_EUNAVAILABLE);
  CU_ASSERT_STRING_EQUAL(err, "LOCAL_QUORUM requires 2 replicas in dc2, 1 alive");
  r[3].alive = 1;
  CU_ASSERT_EQUAL(cl_check_alive(&n, r, 5, err, sizeof err), 0);
  CU_ASSERT_EQUAL(cl_need_init(&n, &ks, "dc2", CELLAR_CL_EACH_QUORUM, 0, err, sizeof err), 0);
  CU_ASSERT_EQUAL(n.ndcs, 2);
  CU_ASSERT_EQUAL(n.dcs[0].need, 2);
  CU_ASSERT_EQUAL(n.dcs[1].need, 2);
  r[0].alive = r[2].alive = 0;
  CU_ASSERT_EQUAL(cl_check_alive(&n, r, 5, err, sizeof err), CELLAR_EUNAVAILABLE);
  CU_ASSERT_STRING_EQUAL(err, "EACH_QUORUM requires 2 replicas in dc1, 1 alive");
}

static void test_invalid_levels(void) {
  keyspace_def s = simple(3), t = nts(3, 3);
  cl_need n;
  char err[128];
  CU_ASSERT_EQUAL(cl_need_init(&n, &s, NULL, CELLAR_CL_ANY, 0, err, sizeof err), CELLAR_EBADCL);
  CU_ASSERT_STRING_EQUAL(err, "consistency level ANY is only valid for writes");
  CU_ASSERT_EQUAL(cl_need_init(&n, &s, NULL, CELLAR_CL_DEFAULT, 1, err, sizeof err),
                  CELLAR_EBADCL);
  CU_ASSERT_STRING_EQUAL(err, "invalid consistency level 0");
  CU_ASSERT_EQUAL(cl_need_init(&n, &s, NULL, (cellar_consistency_t)10, 1, err, sizeof err),
                  CELLAR_EBADCL);
  CU_ASSERT_EQUAL(cl_need_init(&n, &s, NULL, (cellar_consistency_t)-3, 1, NULL, 0),
                  CELLAR_EBADCL);
  /* NTS: LOCAL_* needs to know which datacenter is local */
  CU_ASSERT_EQUAL(cl_need_init(&n, &t, NULL, CELLAR_CL_LOCAL_QUORUM, 1, err, sizeof err),
                  CELLAR_EBADCL);
  CU_ASSERT_STRING_EQUAL(err, "LOCAL_QUORUM needs the coordinator's datacenter");
  CU_ASSERT_EQUAL(cl_need_init(&n, &t, "", CELLAR_CL_LOCAL_ONE, 1, err, sizeof err),
                  CELLAR_EBADCL);
  /* ... but not the other levels */
  CU_ASSERT_EQUAL(cl_need_init(&n, &t, NULL, CELLAR_CL_EACH_QUORUM, 1, err, sizeof err), 0);
  CU_ASSERT_EQUAL(cl_need_init(&n, &t, NULL, CELLAR_CL_QUORUM, 0, err, sizeof err), 0);
}

/* A coordinator in a datacenter without replicas of the keyspace. */
static void test_local_dc_without_replicas(void) {
  keyspace_def t = nts(3, 3);
  cl_need n;
  char err[128];
  cl_replica r[6];
  for (int i = 0; i < 6; i++) r[i] = rep((uint32_t)i, i < 3 ? "dc1" : "dc2", 1);
  CU_ASSERT_EQUAL(cl_need_init(&n, &t, "dc9", CELLAR_CL_LOCAL_ONE, 1, err, sizeof err), 0);
  CU_ASSERT_EQUAL(cl_check_alive(&n, r, 6, err, sizeof err), CELLAR_EUNAVAILABLE);
  CU_ASSERT_STRING_EQUAL(err, "LOCAL_ONE requires 1 replicas in dc9, 0 alive");
  CU_ASSERT_EQUAL(cl_need_init(&n, &t, "dc9", CELLAR_CL_LOCAL_QUORUM, 1, err, sizeof err), 0);
  CU_ASSERT_EQUAL(n.total, 1);
  CU_ASSERT_EQUAL(cl_check_alive(&n, r, 6, err, sizeof err), CELLAR_EUNAVAILABLE);
  /* QUORUM does not care where the coordinator is */
  CU_ASSERT_EQUAL(cl_need_init(&n, &t, "dc9", CELLAR_CL_QUORUM, 1, err, sizeof err), 0);
  CU_ASSERT_EQUAL(cl_check_alive(&n, r, 6, err, sizeof err), 0);
  /* a datacenter with rf 0 is left out of EACH_QUORUM */
  t = nts(3, 0);
  CU_ASSERT_EQUAL(cl_need_init(&n, &t, "dc1", CELLAR_CL_EACH_QUORUM, 1, err, sizeof err), 0);
  CU_ASSERT_EQUAL(n.ndcs, 1);
  CU_ASSERT_EQUAL(n.total, 2);
}

/* ALL is about the replication factor, not the replicas found: a ring with
** two members cannot meet ALL at rf 3, can meet QUORUM. */
static void test_fewer_members_than_rf(void) {
  keyspace_def s = simple(3);
  cl_need n;
  char err[128];
  cl_replica r[2] = {rep(0, "dc1", 1), rep(1, "dc1", 1)};
  CU_ASSERT_EQUAL(cl_need_init(&n, &s, NULL, CELLAR_CL_ALL, 1, err, sizeof err), 0);
  CU_ASSERT_EQUAL(cl_check_alive(&n, r, 2, err, sizeof err), CELLAR_EUNAVAILABLE);
  CU_ASSERT_STRING_EQUAL(err, "ALL requires 3 replicas, 2 alive");
  CU_ASSERT_EQUAL(cl_need_init(&n, &s, NULL, CELLAR_CL_QUORUM, 1, err, sizeof err), 0);
  CU_ASSERT_EQUAL(cl_check_alive(&n, r, 2, err, sizeof err), 0);
  /* ANY: only an empty replica set fails */
  CU_ASSERT_EQUAL(cl_need_init(&n, &s, NULL, CELLAR_CL_ANY, 1, err, sizeof err), 0);
  r[0].alive = r[1].alive = 0;
  CU_ASSERT_EQUAL(cl_check_alive(&n, r, 2, err, sizeof err), 0);
  CU_ASSERT_EQUAL(cl_check_alive(&n, r, 0, err, sizeof err), CELLAR_EUNAVAILABLE);
}

static void test_tracker_quorum(void) {
  keyspace_def s = simple(3);
  cl_need n;
  cl_tracker t;
  cl_replica r[3] = {rep(10, "dc1", 1), rep(11, "dc1", 1), rep(12, "dc1", 1)};
  CU_ASSERT_EQUAL(cl_need_init(&n, &s, NULL, CELLAR_CL_QUORUM, 1, NULL, 0), 0);
  CU_ASSERT_EQUAL(cl_tracker_init(&t, &n, r, 3), 0);
  char buf[128];
  CU_ASSERT_FALSE(cl_tracker_met(&t));
  CU_ASSERT_TRUE(cl_tracker_reachable(&t));
  CU_ASSERT_EQUAL(cl_tracker_ack(&t, 2), 1);
  CU_ASSERT_EQUAL(cl_tracker_ack(&t, 2), 0);        /* duplicate */
  CU_ASSERT_EQUAL(cl_tracker_ack(&t, 3), 0);        /* out of range */
  CU_ASSERT_EQUAL(cl_tracker_ack(&t, 99), 0);
  CU_ASSERT_FALSE(cl_tracker_met(&t));
  cl_tracker_describe(&t, "acks", buf, sizeof buf);
  CU_ASSERT_STRING_EQUAL(buf, "QUORUM required 2 acks, got 1");
  cl_tracker_exclude(&t, 0);
  CU_ASSERT_TRUE(cl_tracker_reachable(&t));
  cl_tracker_exclude(&t, 1);
  CU_ASSERT_FALSE(cl_tracker_reachable(&t));
  CU_ASSERT_EQUAL(cl_tracker_ack(&t, 1), 0);        /* excluded */
  cl_tracker_exclude(&t, 2);                        /* acked stays acked */
  CU_ASSERT_EQUAL(cl_tracker_received(&t), 1);
  CU_ASSERT_EQUAL(cl_tracker_required(&t), 2);
  /* a fresh one meets the level on the second ack */
  cl_tracker_init(&t, &n, r, 3);
  cl_tracker_ack(&t, 0);
  cl_tracker_ack(&t, 1);
  CU_ASSERT_TRUE(cl_tracker_met(&t));
  CU_ASSERT_EQUAL(cl_tracker_ack(&t, 2), 1);        /* later acks still recorded */
  CU_ASSERT_EQUAL(cl_tracker_received(&t), 3);
  CU_ASSERT_EQUAL(cl_tracker_init(&t, &n, r, CL_MAX_REPLICAS + 1), CELLAR_EINVAL);
}

static void test_tracker_local_and_each(void) {
  keyspace_def k = nts(3, 3);
  cl_replica r[6] = {rep(0, "dc1", 1), rep(1, "dc2", 1), rep(2, "dc1", 1),
                     rep(3, "dc2", 1), rep(4, "dc1", 1), rep(5, "dc2", 1)};
  cl_need n;
  cl_tracker t;
  char buf[128];
  /* LOCAL_QUORUM: remote acks are recorded but never count */
  CU_ASSERT_EQUAL(cl_need_init(&n, &k, "dc1", CELLAR_CL_LOCAL_QUORUM, 1, NULL, 0), 0);
  cl_tracker_init(&t, &n, r, 6);
  CU_ASSERT_EQUAL(cl_tracker_ack(&t, 1), 1);
  CU_ASSERT_EQUAL(cl_tracker_ack(&t, 3), 1);
  CU_ASSERT_EQUAL(cl_tracker_ack(&t, 5), 1);
  CU_ASSERT_FALSE(cl_tracker_met(&t));
  CU_ASSERT_EQUAL(cl_tracker_received(&t), 0);
  cl_tracker_describe(&t, "acks", buf, sizeof buf);
  CU_ASSERT_STRING_EQUAL(buf, "LOCAL_QUORUM required 2 acks in dc1, got 0");
  cl_tracker_ack(&t, 4);
  cl_tracker_exclude(&t, 2);
  CU_ASSERT_TRUE(cl_tracker_reachable(&t));         /* replica 0 may still ack */
  cl_tracker_exclude(&t, 0);
  CU_ASSERT_FALSE(cl_tracker_reachable(&t));
  /* EACH_QUORUM: four acks are not enough when they come from one side */
  CU_ASSERT_EQUAL(cl_need_init(&n, &k, "dc1", CELLAR_CL_EACH_QUORUM, 1, NULL, 0), 0);
  cl_tracker_init(&t, &n, r, 6);
  cl_tracker_ack(&t, 0);
  cl_tracker_ack(&t, 2);
  cl_tracker_ack(&t, 4);
  cl_tracker_ack(&t, 1);
  CU_ASSERT_FALSE(cl_tracker_met(&t));
  cl_tracker_describe(&t, "acks", buf, sizeof buf);
  CU_ASSERT_STRING_EQUAL(buf, "EACH_QUORUM required 2 acks in dc2, got 1");
  cl_tracker_exclude(&t, 3);
  CU_ASSERT_TRUE(cl_tracker_reachable(&t));
  cl_tracker_ack(&t, 5);
  CU_ASSERT_TRUE(cl_tracker_met(&t));
  /* ONE from anywhere */
  CU_ASSERT_EQUAL(cl_need_init(&n, &k, "dc1", CELLAR_CL_ONE, 0, NULL, 0), 0);
  cl_tracker_init(&t, &n, r, 6);
  cl_tracker_ack(&t, 5);
  CU_ASSERT_TRUE(cl_tracker_met(&t));
}

static void test_replicas_from_ring(void) {
  ring rg;
  ring_init(&rg);
  int64_t a = 10, b = 20, c = 30;
  CU_ASSERT_EQUAL(ring_add(&rg, "a", "dc1", "r1", &a, 1), 0);
  CU_ASSERT_EQUAL(ring_add(&rg, "b", "dc2", "r1", &b, 1), 1);
  CU_ASSERT_EQUAL(ring_add(&rg, "c", "dc1", "r2", &c, 1), 2);
  keyspace_def k = simple(3);
  uint32_t m[3];
  size_t nm = ring_replicas(&rg, &k, 15, m, 3);
  CU_ASSERT_EQUAL_FATAL(nm, 3);
  cl_replica r[3];
  uint8_t alive[3] = {1, 0, 1};
  cl_replicas_from_ring(&rg, m, nm, alive, r);
  CU_ASSERT_EQUAL(r[0].member, 1);
  CU_ASSERT_STRING_EQUAL(r[0].dc, "dc2");
  CU_ASSERT_FALSE(r[1].alive);
  CU_ASSERT_STRING_EQUAL(r[1].dc, "dc1");
  cl_replicas_from_ring(&rg, m, nm, NULL, r);
  CU_ASSERT_TRUE(r[1].alive);
  ring_free(&rg);
}

int main(int argc, char **argv) {
  static const test_case cases[] = {
    {"simple_strategy_table", test_simple_strategy_table},
    {"nts_3_3_table", test_nts_3_3_table},
    {"nts_3_2_table", test_nts_3_2_table},
    {"nts_3_2_from_dc2", test_nts_3_2_from_dc2},
    {"invalid_levels", test_invalid_levels},
    {"local_dc_without_replicas", test_local_dc_without_replicas},
    {"fewer_members_than_rf", test_fewer_members_than_rf},
    {"tracker_quorum", test_tracker_quorum},
    {"tracker_local_and_each", test_tracker_local_and_each},
    {"replicas_from_ring", test_replicas_from_ring},
    {NULL, NULL}};
  return testutil_run("consistency", cases, argc, argv);
}
