/*
** engine: runs one decoded request against the schema and the storage.
**
** Called on a worker thread with a request the wire module already checked
** for shape (names, sizes, levels). What needs the schema is checked here:
** the keyspace and table exist, TTL and timestamps are filled from the
** table and the clock. Consistency levels are accepted as given: a single
** node is the only replica there is; the coordinator of the replication
** issue judges them against the ring.
*/
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "cellar/cellar.h"
#include "cell.h"
#include "clock.h"
#include "cluster.h"
#include "engine.h"
#include "frame.h"
#include "handoff.h"
#include "log.h"
#include "metrics.h"
#include "repair.h"

#define CURSOR_VERSION 1

size_t engine_cursor_encode(const uint8_t *ck, size_t nck, uint8_t *out,
                            size_t outlen) {
  if (outlen < nck + 1) return 0;
  out[0] = CURSOR_VERSION;
  if (nck) memcpy(out + 1, ck, nck);
  return nck + 1;
}

int engine_cursor_decode(const uint8_t *p, size_t n, cbytes *ck) {
  if (n < 1 || p[0] != CURSOR_VERSION || n - 1 > CELLAR_MAX_KEY_BYTES)
    return CELLAR_EBADCURSOR;
  *ck = CBYTES(p + 1, n - 1);
  return 0;
}

int engine_table(engine *e, const request *q, table_def *t, result *res) {
  int rc = schema_get_table(e->sc, q->keyspace, q->table, t);
  if (rc == CELLAR_ENOKEYSPACE)
    return result_error(res, rc, "unknown keyspace %s", q->keyspace);
  if (rc == CELLAR_ENOTABLE)
    return result_error(res, rc, "unknown table %s.%s", q->keyspace, q->table);
  return rc;
}

static int storage_failed(result *res, int rc, const char *what) {
  if (res->code) return res->code;
  return result_error(res, rc, "%s failed: %s", what, cellar_strerror(rc));
}

int engine_event(engine *e, const table_def *t, const request *req,
                 const storage_entries *mut, storage_entries *out,
                 result *res) {
  /* one context per row: the row's own, else the request's */
  size_t nrows = req->type == FRAME_PUT ? req->nrows : 1;
  cell_rowctx small[4];
  storage_event_ctx sctx[4];
  cell_rowctx *rc_ = nrows <= 4 ? small : calloc(nrows, sizeof *rc_);
  storage_event_ctx *ec = nrows <= 4 ? sctx : calloc(nrows, sizeof *ec);
  int rc = rc_ && ec ? 0 : CELLAR_ENOMEM;
  size_t nctx = 0;
  uint32_t now = clock_now_s();
  /* a context's vectors are per column of one row: another row's cells
  ** have their own dots */
  if (rc == 0 && req->type == FRAME_PUT && nrows > 1 && req->context.n)
    rc = result_error(res, CELLAR_EINVAL,
                      "a put context applies to one row (give rows their own)");
  for (size_t i = 0; rc == 0 && i < nrows; i++) {
    cbytes c = req->row_ctx && req->type == FRAME_PUT && req->row_ctx[i].n
                   ? req->row_ctx[i] : req->context;
    if (c.n == 0) continue;
    rc = cell_rowctx_decode(c.p, c.n, &rc_[nctx]);
    if (rc) {
      result_error(res, rc == CELLAR_ENOMEM ? rc : CELLAR_EPROTO,
                   "invalid context: %s", cellar_strerror(rc));
      rc = res->code;
      break;
    }
    for (size_t k = 0; k < rc_[nctx].n; k++)
      if ((uint64_t)rc_[nctx].c[k].issued_s + t->gc_grace < now) {
        cell_rowctx_close(&rc_[nctx]);
        rc = result_error(res, CELLAR_ESTALECONTEXT,
                          "context older than gc_grace (%u s): read again",
                          t->gc_grace);
        break;
      }
    if (rc) break;
    ec[nctx].ck = req->type == FRAME_PUT ? req->rows[i].ck : req->ck;
    ec[nctx].ctx = &rc_[nctx];
    nctx++;
  }
  if (rc == 0) {
    /* an engine made without an identity (tests) still never mints
    ** dots under the legacy actor (incarnation 0) */
    dvv_actor self = e->self.inc ? e->self
                     : dvv_actor_of(e->node_id ? e->node_id : "local", 1);
    storage_event_opts o = {
        .expand_deletes = 1,   /* row and partition deletes are versioned */
        .self = self,
        .warn = e->siblings_warn ? e->siblings_warn : DVV_SIBLINGS_WARN,
        .limit = e->siblings_limit ? e->siblings_limit : DVV_SIBLINGS_LIMIT};
    char err[200];
    rc = storage_event_entries(e->st, mut->e, mut->n, ec, nctx, &o, out, err,
                               sizeof err);
    if (rc && err[0]) result_error(res, rc, "%s.%s: %s", t->keyspace, t->name, err);
    else if (rc) storage_failed(res, rc, "write");
  }
  for (size_t i = 0; i < nctx; i++) cell_rowctx_close(&rc_[i]);
  if (rc_ != small) free(rc_);
  if (ec != sctx) free(ec);
  return rc;
}

/* A write of a siblings table on the only replica there is: the mutation
** built by do_put/do_delete (build_rc: its code) goes through the event
** with nothing to replicate. Frees mut. */
static int event_local(engine *e, const table_def *t, const request *q,
                       storage_entries *mut, int build_rc, const char *what,
                       result *res) {
  int rc = build_rc ? storage_failed(res, build_rc, what)
                    : engine_event(e, t, q, mut, NULL, res);
  storage_entries_free(mut);
  return rc;
}

static int do_put(engine *e, const request *q, result *res) {
  table_def t;
  int rc = engine_table(e, q, &t, res);
  if (rc) return rc;
  uint32_t ttl = q->ttl ? q->ttl : t.default_ttl;
  int64_t ts = q->timestamp ? q->timestamp : clock_now_us();
  if (t.policy == POLICY_SIBLINGS) {
    storage_entries mut;
    storage_entries_init(&mut);
    rc = storage_put_entries(&t, q->partition, q->rows, q->nrows, ts, ttl,
                             clock_now_s(), &mut);
    return event_local(e, &t, q, &mut, rc, "put", res);
  }
  rc = storage_put(e->st, &t, q->partition, q->rows, q->nrows, ts, ttl,
                   clock_now_s());
  return rc ? storage_failed(res, rc, "put") : 0;
}

static int do_delete(engine *e, const request *q, result *res) {
  table_def t;
  int rc = engine_table(e, q, &t, res);
  if (rc) return rc;
  int64_t ts = q->timestamp ? q->timestamp : clock_now_us();
  if (t.policy == POLICY_SIBLINGS) {
    storage_entries mut;
    storage_entries_init(&mut);
    rc = storage_delete_entries(&t, q->partition, q->scope, q->ck, q->cols,
                                q->ncols, ts, clock_now_s(), &mut);
    return event_local(e, &t, q, &mut, rc, "delete", res);
  }
  rc = storage_delete(e->st, &t, q->partition, q->scope, q->ck, q->cols,
                      q->ncols, ts, clock_now_s());
  return rc ? storage_failed(res, rc, "delete") : 0;
}

int engine_query(const engine *e, const request *q, storage_query *sq, result *res) {
  if (q->type == FRAME_GET) {
    *sq = (storage_query){
      .pk = q->partition, .has_start = 1, .start = q->ck, .has_end = 1,
      .end = q->ck, .limit = 1, .cols = q->ncols ? q->cols : NULL,
      .ncols = q->ncols,
    };
    return 0;
  }
  uint32_t limit = q->limit ? q->limit : e->max_slice_rows;
  if (limit > e->max_slice_rows) limit = e->max_slice_rows;
  *sq = (storage_query){
    .pk = q->partition, .has_start = q->has_start, .start = q->start,
    .has_end = q->has_end, .end = q->end, .limit = limit,
    .cols = q->ncols ? q->cols : NULL, .ncols = q->ncols,
  };
  if (q->cursor.n) {
    cbytes after;
    if (engine_cursor_decode(q->cursor.p, q->cursor.n, &after))
      return result_error(res, CELLAR_EBADCURSOR, "invalid paging cursor");
    /* resume strictly after the cursor, unless the start bound is later */
    int later = 1;
    if (q->has_start) {
      size_t m = after.n < q->start.n ? after.n : q->start.n;
      int c = memcmp(after.p, q->start.p, m);
      later = c > 0 || (c == 0 && after.n >= q->start.n);
    }
    if (later) {
      sq->has_start = 1;
      sq->start = after;
      sq->start_exclusive = 1;
    }
  }
  return 0;
}

int engine_finish_slice(const request *q, result *res, int more) {
  if (q->type != FRAME_SLICE || !more || res->nrows == 0) return 0;
  const res_row *last = &res->rows[res->nrows - 1];
  uint8_t buf[CELLAR_MAX_KEY_BYTES + 1];
  size_t n = engine_cursor_encode(last->ck, last->nck, buf, sizeof buf);
  if (result_set_cursor(res, buf, n))
    return result_error(res, CELLAR_ENOMEM, "out of memory");
  return 0;
}

static int do_read(engine *e, const request *q, result *res) {
  table_def t;
  int rc = engine_table(e, q, &t, res);
  if (rc) return rc;
  storage_query sq;
  rc = engine_query(e, q, &sq, res);
  if (rc) return rc;
  int more = 0;
  rc = storage_read(e->st, &t, &sq, clock_now_s(), res, &more);
  if (rc) return storage_failed(res, rc, q->type == FRAME_GET ? "get" : "slice");
  return engine_finish_slice(q, res, more);
}

static int do_schema(engine *e, const request *q, result *res) {
  int rc = 0;
  switch (q->type) {
  case FRAME_CREATE_KEYSPACE:
    rc = schema_create_keyspace(e->sc, &q->ks_def, q->if_not_exists);
    if (rc == CELLAR_EEXISTS)
      return result_error(res, rc, "keyspace %s already exists", q->ks_def.name);
    break;
  case FRAME_DROP_KEYSPACE:
    rc = schema_drop_keyspace(e->sc, q->keyspace, q->if_exists);
    if (rc == CELLAR_ENOKEYSPACE)
      return result_error(res, rc, "unknown keyspace %s", q->keyspace);
    break;
  case FRAME_CREATE_TABLE: {
    table_def t = q->table_def;
    rc = schema_create_table(e->sc, &t, q->if_not_exists);
    if (rc == CELLAR_EEXISTS)
      return result_error(res, rc, "table %s.%s already exists", t.keyspace, t.name);
    if (rc == CELLAR_ENOKEYSPACE)
      return result_error(res, rc, "unknown keyspace %s", t.keyspace);
    break;
  }
  case FRAME_DROP_TABLE:
    rc = schema_drop_table(e->sc, q->keyspace, q->table, q->if_exists);
    if (rc == CELLAR_ENOKEYSPACE)
      return result_error(res, rc, "unknown keyspace %s", q->keyspace);
    if (rc == CELLAR_ENOTABLE)
      return result_error(res, rc, "unknown table %s.%s", q->keyspace, q->table);
    break;
  case FRAME_DESCRIBE:
    rc = schema_list(e->sc, q->keyspace, &res->keyspaces, &res->nkeyspaces,
                     &res->tables, &res->ntables);
    if (rc == CELLAR_ENOKEYSPACE)
      return result_error(res, rc, "unknown keyspace %s", q->keyspace);
    break;
  }
  if (rc) return result_error(res, rc, "schema change failed: %s", cellar_strerror(rc));
  if (q->type != FRAME_DESCRIBE) cluster_schema_changed(e->cl);
  return 0;
}

static int do_admin(engine *e, const request *q, result *res) {
  int rc = 0;
  const char *cmd = q->command ? q->command : "";
  if (!strcmp(cmd, "info")) {
    result_add_info(res, "node.id", "%s", e->node_id ? e->node_id : "");
    result_add_info(res, "node.data_dir", "%s", e->data_dir ? e->data_dir : "");
    result_add_info(res, "schema.version", "%016llx",
                    (unsigned long long)schema_version(e->sc));
    rc = storage_info(e->st, res);
  } else if (!strcmp(cmd, "status") || !strcmp(cmd, "getendpoints") ||
             !strcmp(cmd, "ring")) {
    if (e->cl == NULL)
      return result_error(res, CELLAR_EINVAL, "this node runs without a cluster");
    if (!strcmp(cmd, "ring")) return cluster_view_ring(e->cl, res);
    /* status [KS]; getendpoints KS TABLE KEY (argument: "KS\0TABLE\0KEY"
    ** is awkward in a string, so the key is everything after the second
    ** space) */
    const char *arg = q->argument ? q->argument : "";
    char ks[SCHEMA_NAME_MAX + 1] = "", tb[SCHEMA_NAME_MAX + 1] = "";
    const char *key = NULL;
    if (*arg) {
      const char *sp = strchr(arg, ' ');
      size_t n = sp ? (size_t)(sp - arg) : strlen(arg);
      if (n > SCHEMA_NAME_MAX)
        return result_error(res, CELLAR_EBADNAME, "keyspace name too long");
      memcpy(ks, arg, n);
      ks[n] = '\0';
      if (sp) {
        const char *sp2 = strchr(sp + 1, ' ');
        size_t m = sp2 ? (size_t)(sp2 - sp - 1) : strlen(sp + 1);
        if (m > SCHEMA_NAME_MAX)
          return result_error(res, CELLAR_EBADNAME, "table name too long");
        memcpy(tb, sp + 1, m);
        tb[m] = '\0';
        key = sp2 ? sp2 + 1 : NULL;
      }
    }
    keyspace_def kd;
    if (*ks && schema_get_keyspace(e->sc, ks, &kd) != 0)
      return result_error(res, CELLAR_ENOKEYSPACE, "unknown keyspace %s", ks);
    if (!strcmp(cmd, "status")) {
      rc = cluster_view_status(e->cl, *ks ? &kd : NULL, res);
      /* members this node holds hints for: "hints.<host id>" = count */
      for (size_t i = 0; rc == 0 && i < res->nmembers; i++) {
        uint64_t n = handoff_pending(e->ho, res->members[i].host_id);
        char hk[64];
        snprintf(hk, sizeof hk, "hints.%s", res->members[i].host_id);
        if (n) rc = result_add_info(res, hk, "%llu", (unsigned long long)n);
      }
      return rc;
    }
    if (!*ks || !*tb || key == NULL)
      return result_error(res, CELLAR_EINVAL, "getendpoints needs KEYSPACE TABLE KEY");
    table_def td;
    if (schema_get_table(e->sc, ks, tb, &td) != 0)
      return result_error(res, CELLAR_ENOTABLE, "unknown table %s.%s", ks, tb);
    return cluster_view_endpoints(e->cl, &kd, key, strlen(key), res);
  } else if (!strcmp(cmd, "decommission") || !strcmp(cmd, "removenode") ||
             !strcmp(cmd, "operation")) {
    /* start, and the state of, the node's decommission or removenode */
    if (e->cl == NULL)
      return result_error(res, CELLAR_EINVAL, "this node runs without a cluster");
    if (!strcmp(cmd, "operation")) return cluster_op_status(e->cl, res);
    if (!strcmp(cmd, "decommission")) return cluster_decommission(e->cl, res);
    return cluster_removenode(e->cl, q->argument ? q->argument : "", res);
  } else if (!strcmp(cmd, "repair") || !strcmp(cmd, "repair_status")) {
    /* anti-entropy repair coordinated by this node (repair.h) */
    if (e->rp == NULL)
      return result_error(res, CELLAR_EINVAL, "this node runs without a cluster");
    if (!strcmp(cmd, "repair_status")) return repair_status(e->rp, res);
    return repair_start(e->rp, q->argument ? q->argument : "", res);
  } else if (!strcmp(cmd, "hints")) {
    /* pending hints per target (handoff.h) */
    if (e->ho == NULL)
      return result_error(res, CELLAR_EINVAL, "this node runs without hinted handoff");
    return handoff_view(e->ho, res);
  } else if (!strcmp(cmd, "metrics")) {
    return metrics_report(res);
  } else if (!strcmp(cmd, "flush")) {
    rc = storage_flush(e->st);
  } else if (!strcmp(cmd, "compact")) {
    rc = storage_compact(e->st);
  } else if (!strcmp(cmd, "snapshot")) {
    const char *name = q->argument ? q->argument : "";
    if (schema_check_name(name))
      return result_error(res, CELLAR_EBADNAME,
                          "snapshot name '%s' must be 1..48 of [A-Za-z0-9_]", name);
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/snapshots", e->data_dir);
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
      return result_error(res, CELLAR_EIO, "cannot create %s: %s", dir, strerror(errno));
    snprintf(dir, sizeof dir, "%s/snapshots/%s", e->data_dir, name);
    struct stat sb;
    if (stat(dir, &sb) == 0)
      return result_error(res, CELLAR_EEXISTS, "snapshot %s already exists", name);
    rc = storage_checkpoint(e->st, dir);
    if (rc == 0) {
      /* a node started on this copy bumps its incarnation (cellard.c,
      ** docs/versions.md): its dots after the snapshot are not in it */
      char marker[1100];
      snprintf(marker, sizeof marker, "%s/%s", dir, ENGINE_SNAPSHOT_MARKER);
      FILE *f = fopen(marker, "w");
      int bad = f == NULL;
      if (f) bad |= fputs("restored from a cellar snapshot\n", f) < 0;
      if (f) bad |= fclose(f) != 0;
      if (bad)
        return result_error(res, CELLAR_EIO, "cannot write %s: %s", marker, strerror(errno));
      result_add_info(res, "snapshot.path", "%s", dir);
    }
  } else {
    return result_error(res, CELLAR_EINVAL,
                        "unknown admin command '%s' (info, status, ring, getendpoints, "
                        "decommission, removenode, operation, repair, repair_status, metrics, flush, "
                        "compact, snapshot)", cmd);
  }
  return rc ? storage_failed(res, rc, cmd) : 0;
}

int engine_execute(engine *e, const request *q, result *res) {
  switch (q->type) {
  case FRAME_PING: return 0;
  case FRAME_PUT: return do_put(e, q, res);
  case FRAME_GET:
  case FRAME_SLICE: return do_read(e, q, res);
  case FRAME_DELETE: return do_delete(e, q, res);
  case FRAME_CREATE_KEYSPACE:
  case FRAME_DROP_KEYSPACE:
  case FRAME_CREATE_TABLE:
  case FRAME_DROP_TABLE:
  case FRAME_DESCRIBE: return do_schema(e, q, res);
  case FRAME_ADMIN: return do_admin(e, q, res);
  }
  return result_error(res, CELLAR_EBADTYPE, "unknown message type %u", q->type);
}
