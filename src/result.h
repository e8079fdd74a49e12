/*
** result: what one request produced, built by the engine and storage on a
** worker thread, then encoded by the wire module on the loop thread.
**
** A result owns everything it points to: bytes are copied into an arena
** that lives as long as the result (result_free releases it at once).
*/
#ifndef CELLAR_RESULT_H
#define CELLAR_RESULT_H

#include <stddef.h>
#include <stdint.h>
#include "schema.h"

/* One version of a cell with siblings (docs/versions.md). */
typedef struct res_sib {
  const uint8_t *value;  /* owned by the result's arena; none when deleted */
  size_t nvalue;
  int64_t timestamp;
  uint32_t expires_at;   /* values */
  int deleted;           /* 1: a delete marker concurrent with a value */
} res_sib;

typedef struct res_cell {
  const uint8_t *name;   /* owned by the result's arena */
  size_t nname;
  const uint8_t *value;  /* owned by the result's arena */
  size_t nvalue;
  int64_t timestamp;     /* microseconds */
  uint32_t expires_at;   /* seconds since epoch, 0 = never */
  size_t nsib;           /* 0, or every version when concurrent ones exist
                            (value above is then their LWW winner) */
  const res_sib *sib;    /* owned by the result's arena */
} res_cell;

typedef struct res_row {
  const uint8_t *ck;     /* owned by the result's arena */
  size_t nck;
  size_t ncells, capcells;
  res_cell *cells;
  const uint8_t *context;  /* siblings tables: the row's context
                              (cell_rowctx encoding), owned by the arena */
  size_t ncontext;
} res_row;

typedef struct res_info {
  char *key, *value;     /* owned by the result's arena */
} res_info;

/* One member of the cluster as a node sees it (ADMIN status, endpoints). */
typedef struct res_member {
  char host_id[40];
  char address[72];            /* client address */
  char peer_address[72];
  char dc[49], rack[49];
  char status[24];             /* joining | normal | leaving | left */
  int up;
  uint64_t load;               /* bytes */
  uint32_t tokens;
  double owns;                 /* 0..1 */
  uint64_t generation;
  double phi;
  char schema[24];
} res_member;

typedef struct arena_block arena_block;

typedef struct result {
  int code;              /* 0 or a negative cellar error code */
  char message[256];     /* error text when code != 0 */
  size_t nrows, caprows;
  res_row *rows;
  const uint8_t *cursor; /* SLICE: next-page cursor, NULL when done */
  size_t ncursor;
  size_t nkeyspaces;
  keyspace_def *keyspaces;  /* malloc'd array */
  size_t ntables;
  table_def *tables;        /* malloc'd array */
  size_t ninfo, capinfo;
  res_info *info;
  size_t nmembers;
  res_member *members;      /* malloc'd array */
  arena_block *arena;
} result;

void result_init(result *r);
/* Releases everything the result owns; r may be reused after result_init. */
void result_free(result *r);

/* Sets code and a printf-style message. Returns code, so callers can write
** `return result_error(r, CELLAR_ENOTABLE, "unknown table %s", t);` */
int result_error(result *r, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Copies n bytes into the arena. Returns the copy or NULL (out of memory). */
const uint8_t *result_copy(result *r, const void *p, size_t n);

/* Appends a row (ck copied); returns it or NULL when out of memory. */
res_row *result_add_row(result *r, const void *ck, size_t nck);
/* Appends a cell to row (name and value copied). Returns 0 or CELLAR_ENOMEM. */
int result_add_cell(result *r, res_row *row, const void *name, size_t nname,
                    const void *value, size_t nvalue, int64_t ts,
                    uint32_t expires_at);
/* Gives the last cell of row its versions (copied). 0 or CELLAR_ENOMEM. */
int result_set_siblings(result *r, res_row *row, const res_sib *sib,
                        size_t n);
/* Sets a row's context (copied). 0 or CELLAR_ENOMEM. */
int result_set_row_context(result *r, res_row *row, const void *p, size_t n);
/* Removes the last row (used when a row turns out to have no live cells). */
void result_drop_last_row(result *r);
/* Sets the cursor (copied). */
int result_set_cursor(result *r, const void *p, size_t n);
/* Appends an info pair (both copied); value printf-style. */
int result_add_info(result *r, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
