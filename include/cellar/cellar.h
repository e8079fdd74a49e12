/*
** libcellar: the client library of cellar, a Dynamo-style wide-column store.
**
** Thread-safety: every function here may be called from any thread, at any
** time, on a shared cellar_client_t, except cellar_close(), which must be
** called once, after the caller's other threads stopped using the client.
** Callbacks of the *_async functions run on the client's own I/O thread:
** they may start more async requests, but must not make a synchronous call
** (it would wait on the very thread that has to answer it; such a call
** returns CELLAR_EDEADLOCK) and should not block.
**
** Errors: every function returning int returns 0 or a negative code from
** CELLAR_ERRNO_MAP below; cellar_strerror() and cellar_err_name() describe
** it. The same codes are used on the wire, so a server error arrives with the
** server's code and message.
**
** Callback rule (libuv's): when an *_async function returns an error, its
** callback is never called. When it returns 0, the callback is called exactly
** once, with the outcome, even if the client is closed first (then with
** CELLAR_ESHUTDOWN).
**
** Ownership words: "borrowed, valid until X" means the library keeps the
** memory; "caller frees with Y" means the caller must release it.
** Every pointer argument given to a request function is copied before the
** function returns: the caller may free or reuse it at once.
*/
#ifndef CELLAR_CELLAR_H
#define CELLAR_CELLAR_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
** Error codes. X(NAME, value, message). Values are stable: they travel on
** the wire. Never renumber; add at the end.
*/
#define CELLAR_ERRNO_MAP(X)                                                  \
  X(OK, 0, "success")                                                        \
  X(EINVAL, -1, "invalid argument")                                          \
  X(ENOMEM, -2, "out of memory")                                             \
  X(EPROTO, -3, "malformed frame or message")                                \
  X(ETOOBIG, -4, "size limit exceeded")                                      \
  X(ENOKEYSPACE, -5, "unknown keyspace")                                     \
  X(ENOTABLE, -6, "unknown table")                                           \
  X(EEXISTS, -7, "already exists")                                           \
  X(EBADNAME, -8, "invalid name")                                            \
  X(EBADTYPE, -9, "unknown message type")                                    \
  X(ESTORAGE, -10, "storage error")                                          \
  X(EIO, -11, "input/output error")                                          \
  X(ETIMEDOUT, -12, "timed out")                                             \
  X(ECONNECT, -13, "cannot connect")                                         \
  X(ECLOSED, -14, "connection closed")                                       \
  X(EUNAVAILABLE, -15, "not enough replicas alive")                          \
  X(EBADCL, -16, "invalid consistency level")                                \
  X(EBADCURSOR, -17, "invalid paging cursor")                                \
  X(ECONFIG, -18, "invalid configuration")                                   \
  X(EOVERLOAD, -19, "server overloaded")                                     \
  X(ESHUTDOWN, -20, "shutting down")                                         \
  X(EINTERNAL, -21, "internal error")                                        \
  X(ENOTFOUND, -22, "not found")                                             \
  X(EBADVERSION, -23, "unsupported protocol version")                        \
  X(EDEADLOCK, -24, "synchronous call from a callback")                      \
  X(EEMPTY, -25, "nothing to write")                                         \
  X(ESIBLINGS, -26, "too many siblings: read and write with the context")   \
  X(ESTALECONTEXT, -27, "context older than gc_grace: read again")        \
  X(ESTARTING, -28, "node is starting: ask another node")

typedef enum cellar_errno {
#define CELLAR__ERR_ENUM(name, val, msg) CELLAR_##name = (val),
  CELLAR_ERRNO_MAP(CELLAR__ERR_ENUM)
#undef CELLAR__ERR_ENUM
  CELLAR__ERR_LAST = -26
} cellar_errno_t;

/* Static strings: never free them. Unknown codes give "unknown error". */
const char *cellar_strerror(int code);
const char *cellar_err_name(int code);

/* Consistency levels. DEFAULT means the client's default (ONE unless set). */
typedef enum cellar_consistency {
  CELLAR_CL_DEFAULT = 0,
  CELLAR_CL_ONE = 1,
  CELLAR_CL_TWO = 2,
  CELLAR_CL_THREE = 3,
  CELLAR_CL_QUORUM = 4,
  CELLAR_CL_ALL = 5,
  CELLAR_CL_LOCAL_ONE = 6,
  CELLAR_CL_LOCAL_QUORUM = 7,
  CELLAR_CL_EACH_QUORUM = 8,
  CELLAR_CL_ANY = 9
} cellar_consistency_t;

/* "ONE", "QUORUM", ... (static). NULL for an invalid value. */
const char *cellar_consistency_name(cellar_consistency_t cl);
/* Parses a level name, case-insensitive. Returns 0 or CELLAR_EBADCL. */
int cellar_consistency_parse(const char *name, cellar_consistency_t *out);

/* Documented limits, enforced by the server (and checked early by the
** client so an oversized request fails without a round trip). */
#define CELLAR_MAX_KEY_BYTES 65535u          /* partition and clustering keys */
#define CELLAR_MAX_COLUMN_BYTES 1024u        /* column names */
#define CELLAR_MAX_VALUE_BYTES (1u << 20)    /* one cell value: 1 MiB */
#define CELLAR_MAX_FRAME_BYTES (16u << 20)   /* one frame's payload: 16 MiB */
#define CELLAR_MAX_NAME_BYTES 48u            /* keyspace and table names */

/* ------------------------------------------------------------------ client */

typedef struct cellar_client cellar_client_t;  /* opaque */
typedef struct cellar_result cellar_result_t;  /* opaque */

/*
** Routing of data requests (put, get, slice, delete). The client learns
** the ring from the node it connects to (admin "ring" and "status", every
** 2 s and at once after a connection failure) and the replication of each
** keyspace it uses (describe, once, cached), and sends each data request
** to a live replica of its partition key, in the local datacenter when
** one is alive. Any node coordinates any request, so routing saves a hop
** and lets the client steer around dead nodes; while the ring or a
** keyspace is not known yet the request goes to the node connected to.
** Schema, admin and ping requests go to the node connected to while it is
** reachable, else to another live node.
*/
typedef enum cellar_routing {
  CELLAR_ROUTE_TOKEN_AWARE = 0,  /* default: a live local replica; the node
                                    connected to first when it is one (a
                                    client of node X reads X's copy at ONE),
                                    else the replicas in ring order */
  CELLAR_ROUTE_SPREAD = 1,       /* token-aware, rotating over the live local
                                    replicas (spreads coordination when the
                                    replication factor is above 1) */
  CELLAR_ROUTE_NONE = 2          /* no ring: every request to the node
                                    connected to, as before routing existed */
} cellar_routing_t;

typedef struct cellar_options {
  const char *hosts;           /* "host:port[,host:port...]"; borrowed during
                                  cellar_connect only. Default "127.0.0.1:7400" */
  int connect_timeout_ms;      /* default 2000 */
  int request_timeout_ms;      /* default 10000; 0 = none. The overall limit of
                                  a request, its retry included */
  int connections;             /* TCP connections per node, default 1; opened
                                  when a request first needs them */
  cellar_consistency_t consistency;  /* default level, CELLAR_CL_ONE */
  size_t max_in_flight;        /* per client; 0 = unlimited. Async calls beyond
                                  it fail with CELLAR_EOVERLOAD. */
  /* --- routing (additions; cellar_options_init sets the defaults) --- */
  cellar_routing_t routing;    /* default CELLAR_ROUTE_TOKEN_AWARE */
  const char *local_dc;        /* datacenter whose replicas are preferred;
                                  borrowed during cellar_connect only. NULL or
                                  "" (default): the datacenter of the node
                                  connected to */
  int speculative_read_ms;     /* 0 (default) = off. A get or slice without an
                                  answer after this many ms is sent to a second
                                  replica (or node); the first answer wins, the
                                  other is dropped */
  double speculative_percentile;  /* 0 (default) = off; e.g. 99: the delay is
                                  the running 99th percentile of read latency
                                  of the node asked (once it has 100 samples;
                                  until then speculative_read_ms applies) */
} cellar_options_t;

/* Fills *o with the defaults above. */
void cellar_options_init(cellar_options_t *o);

/*
** Connects to the first reachable host of o->hosts (each tried in turn
** within connect_timeout_ms). On success *out is a new client: caller frees
** with cellar_close(). On failure *out is NULL and the code says why.
**
** Retries: a put, get, slice or delete whose connection failed
** (CELLAR_ECLOSED, CELLAR_ECONNECT) or that the coordinator answered with
** CELLAR_ETIMEDOUT, CELLAR_ECLOSED or CELLAR_ECONNECT (its replicas did not
** answer, or their connection failed) or CELLAR_ESHUTDOWN (node stopping)
** is sent again, if its request_timeout_ms leaves time: once after a
** connection failure, to another replica or node, and once after such a
** coordinator's answer (a request whose node was killed may be retried on
** a coordinator that does not know yet, and fail there), to another node,
** except after "a replica's connection failed" (ECLOSED, ECONNECT): that
** coordinator now counts the replica down, so it is asked again. Other server
** answers (unavailable, invalid...) are returned as they are. Puts
** and deletes are retried too: cells are last-write-wins, so a retry of a
** write that was in fact applied only writes the same cells again (with a
** newer timestamp when the request left it to the server, timestamp 0).
** Callers that need exactly-once effects must give their own timestamp.
** The callback rule below holds with retries and speculative reads: one
** callback per accepted call.
*/
int cellar_connect(const cellar_options_t *o, cellar_client_t **out);

/*
** Closes every connection, fails requests still in flight with
** CELLAR_ESHUTDOWN (their callbacks run before this returns), joins the I/O
** thread and frees the client.
*/
void cellar_close(cellar_client_t *c);

/* The address ("host:port") the client is connected to. Borrowed, valid
** until cellar_close(). */
const char *cellar_client_peer(const cellar_client_t *c);

/* What the client knows and did, per node and in total (a snapshot). */
typedef struct cellar_node_stats {
  char address[64];            /* client address host:port */
  char host_id[40];            /* "" until learned */
  char datacenter[CELLAR_MAX_NAME_BYTES + 1];
  char rack[CELLAR_MAX_NAME_BYTES + 1];
  int in_ring;                 /* owns tokens on the client's ring */
  int up;                      /* the client would send to it now: up in the
                                  ring's view and no recent connection failure */
  int contact;                 /* the node cellar_connect reached */
  uint64_t requests;           /* the caller's requests sent to it, retries
                                  and speculative copies included (not the
                                  client's own ring and describe requests) */
  uint64_t failures;           /* of those, lost with its connection */
  uint32_t read_p99_us;        /* running p99 of its read latency, 0 = fewer
                                  than 100 samples */
} cellar_node_stats_t;

typedef struct cellar_client_stats {
  uint64_t routed;             /* data requests sent to a replica of their key */
  uint64_t unrouted;           /* ... sent elsewhere (ring or keyspace not known
                                  yet, no live replica, routing off) */
  uint64_t retries;            /* second attempts after a failure */
  uint64_t speculative;        /* speculative read copies sent */
  uint64_t speculative_wins;   /* reads answered by the copy first */
  uint64_t ring_refreshes;     /* ring answers applied */
  size_t ring_members;         /* members on the client's ring, 0 = unknown */
  char local_dc[CELLAR_MAX_NAME_BYTES + 1];  /* "" = not known yet */
} cellar_client_stats_t;

/*
** Fills *out (may be NULL) and the first max entries of nodes (may be NULL
** when max is 0), in the order nodes became known (the contact first).
** *nnodes (may be NULL) is set to the number of nodes known, which may be
** more than max. Returns 0 or CELLAR_EINVAL. Any thread, callbacks too.
*/
int cellar_client_stats(cellar_client_t *c, cellar_client_stats_t *out,
                        cellar_node_stats_t *nodes, size_t max, size_t *nnodes);

/* ------------------------------------------------------------ requests */

typedef struct cellar_cell {
  const void *name;
  size_t name_len;
  const void *value;
  size_t value_len;
} cellar_cell_t;

typedef struct cellar_row {
  const void *clustering;      /* may be NULL when clustering_len is 0 */
  size_t clustering_len;
  const cellar_cell_t *cells;
  size_t ncells;
} cellar_row_t;

/* Put: one or many cells of one or many rows of one partition, atomically. */
typedef struct cellar_put {
  const char *keyspace;
  const char *table;
  const void *partition;
  size_t partition_len;
  const cellar_row_t *rows;
  size_t nrows;
  uint32_t ttl;                /* seconds; 0 = the table's default TTL */
  int64_t timestamp;           /* microseconds since epoch; 0 = server clock */
  cellar_consistency_t consistency;
  /* Siblings tables: the context of a read of the row written
  ** (cellar_result_row_context), so that the write replaces exactly the
  ** versions that read returned; NULL = a blind write, kept next to the
  ** versions it did not see. One row only (CELLAR_EINVAL otherwise).
  ** Opaque bytes, copied on the call. */
  const void *context;
  size_t context_len;
} cellar_put_t;

/* Get one row (clustering key may be empty), all or some columns. */
typedef struct cellar_get {
  const char *keyspace;
  const char *table;
  const void *partition;
  size_t partition_len;
  const void *clustering;
  size_t clustering_len;
  const cellar_cell_t *columns;  /* only name/name_len are used; NULL = all */
  size_t ncolumns;
  cellar_consistency_t consistency;
} cellar_get_t;

/*
** Slice of one partition in clustering order: rows with start <= ck <= end
** (a NULL bound is open), at most limit rows (0 = server maximum, 1000).
** To read the next page, pass the previous result's cursor.
** A slice with both bounds NULL reads the whole partition.
*/
typedef struct cellar_slice {
  const char *keyspace;
  const char *table;
  const void *partition;
  size_t partition_len;
  const void *start;           /* NULL = from the first row */
  size_t start_len;
  const void *end;             /* NULL = to the last row */
  size_t end_len;
  uint32_t limit;
  const void *cursor;          /* NULL = first page */
  size_t cursor_len;
  const cellar_cell_t *columns;  /* NULL = all columns */
  size_t ncolumns;
  cellar_consistency_t consistency;
} cellar_slice_t;

typedef enum cellar_delete_scope {
  CELLAR_DELETE_PARTITION = 0,
  CELLAR_DELETE_ROW = 1,
  CELLAR_DELETE_CELLS = 2
} cellar_delete_scope_t;

typedef struct cellar_delete {
  const char *keyspace;
  const char *table;
  const void *partition;
  size_t partition_len;
  cellar_delete_scope_t scope;
  const void *clustering;      /* ROW and CELLS */
  size_t clustering_len;
  const cellar_cell_t *columns;  /* CELLS: names to delete */
  size_t ncolumns;
  int64_t timestamp;           /* microseconds; 0 = server clock */
  cellar_consistency_t consistency;
  /* Siblings tables (as in cellar_put_t): the versions the read returned
  ** are deleted, a write concurrent with it stays; NULL = delete what the
  ** coordinating replica holds. Copied on the call. */
  const void *context;
  size_t context_len;
} cellar_delete_t;

/*
** Table options. conflict_policy "siblings" (default) or "lww";
** gc_grace_seconds < 0 means the default (10 days).
*/
typedef struct cellar_table_options {
  const char *conflict_policy;
  int64_t gc_grace_seconds;
  uint32_t default_ttl;
} cellar_table_options_t;

void cellar_table_options_init(cellar_table_options_t *t);

/*
** Callback of every async call. res: borrowed, valid until the callback
** returns, never NULL (on error it carries the code and message). status is
** 0 or the negative error code (the same as cellar_result_code(res)).
*/
typedef void (*cellar_callback_t)(int status, cellar_result_t *res, void *arg);

/*
** Synchronous calls. They return 0 or a negative code. When out is not NULL,
** *out is always set, on error too, to a result carrying the code and
** message: caller frees with cellar_result_free().
*/
int cellar_ping(cellar_client_t *c, cellar_result_t **out);
int cellar_put(cellar_client_t *c, const cellar_put_t *p, cellar_result_t **out);
int cellar_get(cellar_client_t *c, const cellar_get_t *g, cellar_result_t **out);
int cellar_slice(cellar_client_t *c, const cellar_slice_t *s, cellar_result_t **out);
int cellar_delete(cellar_client_t *c, const cellar_delete_t *d, cellar_result_t **out);
/* replication: "SimpleStrategy:3" or "NetworkTopologyStrategy:dc1=3,dc2=2" */
int cellar_create_keyspace(cellar_client_t *c, const char *name,
                           const char *replication, int if_not_exists,
                           cellar_result_t **out);
int cellar_drop_keyspace(cellar_client_t *c, const char *name, int if_exists,
                         cellar_result_t **out);
/* t may be NULL for the defaults */
int cellar_create_table(cellar_client_t *c, const char *keyspace,
                        const char *name, const cellar_table_options_t *t,
                        int if_not_exists, cellar_result_t **out);
int cellar_drop_table(cellar_client_t *c, const char *keyspace,
                      const char *name, int if_exists, cellar_result_t **out);
/* keyspace NULL = every keyspace */
int cellar_describe(cellar_client_t *c, const char *keyspace,
                    cellar_result_t **out);
/* command: "info", "compact", "flush", "snapshot" (argument: a name) */
int cellar_admin(cellar_client_t *c, const char *command, const char *argument,
                 cellar_result_t **out);

/* Asynchronous twins: same arguments, the outcome goes to cb(arg). */
int cellar_ping_async(cellar_client_t *c, cellar_callback_t cb, void *arg);
int cellar_put_async(cellar_client_t *c, const cellar_put_t *p,
                     cellar_callback_t cb, void *arg);
int cellar_get_async(cellar_client_t *c, const cellar_get_t *g,
                     cellar_callback_t cb, void *arg);
int cellar_slice_async(cellar_client_t *c, const cellar_slice_t *s,
                       cellar_callback_t cb, void *arg);
int cellar_delete_async(cellar_client_t *c, const cellar_delete_t *d,
                        cellar_callback_t cb, void *arg);
int cellar_create_keyspace_async(cellar_client_t *c, const char *name,
                                 const char *replication, int if_not_exists,
                                 cellar_callback_t cb, void *arg);
int cellar_drop_keyspace_async(cellar_client_t *c, const char *name,
                               int if_exists, cellar_callback_t cb, void *arg);
int cellar_create_table_async(cellar_client_t *c, const char *keyspace,
                              const char *name, const cellar_table_options_t *t,
                              int if_not_exists, cellar_callback_t cb,
                              void *arg);
int cellar_drop_table_async(cellar_client_t *c, const char *keyspace,
                            const char *name, int if_exists,
                            cellar_callback_t cb, void *arg);
int cellar_describe_async(cellar_client_t *c, const char *keyspace,
                          cellar_callback_t cb, void *arg);
int cellar_admin_async(cellar_client_t *c, const char *command,
                       const char *argument, cellar_callback_t cb, void *arg);

/* ------------------------------------------------------------- results */

void cellar_result_free(cellar_result_t *r);       /* NULL is fine */
int cellar_result_code(const cellar_result_t *r);
/* Error text ("" on success). Borrowed, valid until cellar_result_free(). */
const char *cellar_result_message(const cellar_result_t *r);

/*
** Rows of a GET or SLICE, in clustering order. Every pointer returned below
** is borrowed, valid until cellar_result_free(r). Index arguments out of
** range give NULL / 0.
*/
size_t cellar_result_row_count(const cellar_result_t *r);
const void *cellar_result_clustering(const cellar_result_t *r, size_t row,
                                     size_t *len);
size_t cellar_result_cell_count(const cellar_result_t *r, size_t row);
const void *cellar_result_cell_name(const cellar_result_t *r, size_t row,
                                    size_t cell, size_t *len);
const void *cellar_result_cell_value(const cellar_result_t *r, size_t row,
                                     size_t cell, size_t *len);
int64_t cellar_result_cell_timestamp(const cellar_result_t *r, size_t row,
                                     size_t cell);
/* seconds since epoch; 0 = never expires */
uint32_t cellar_result_cell_expires(const cellar_result_t *r, size_t row,
                                    size_t cell);
/*
** Siblings tables (docs/versions.md): a cell written concurrently holds
** several versions. cellar_result_cell_value gives the last-write-wins
** one among the values; the count is 0 for a cell with one version, else
** the number of versions, delete markers included. cellar_result_cell_sibling
** gives version i (value borrowed, valid until cellar_result_free(r); for
** a delete marker *deleted = 1 and no value); any out pointer may be NULL.
** Returns 0 or CELLAR_EINVAL (index out of range).
*/
size_t cellar_result_cell_sibling_count(const cellar_result_t *r, size_t row,
                                        size_t cell);
int cellar_result_cell_sibling(const cellar_result_t *r, size_t row,
                               size_t cell, size_t i, const void **value,
                               size_t *len, int64_t *timestamp, int *deleted);
/* The row's causal context, to give back with a put or delete of that row
** (cellar_put_t.context). Opaque; borrowed, valid until
** cellar_result_free(r); NULL (len 0) for lww tables. */
const void *cellar_result_row_context(const cellar_result_t *r, size_t row,
                                      size_t *len);

/* SLICE: cursor for the next page, NULL when the slice is complete. */
const void *cellar_result_cursor(const cellar_result_t *r, size_t *len);

/* DESCRIBE */
size_t cellar_result_keyspace_count(const cellar_result_t *r);
const char *cellar_result_keyspace_name(const cellar_result_t *r, size_t i);
/* "SimpleStrategy:3" / "NetworkTopologyStrategy:dc1=3,dc2=3" */
const char *cellar_result_keyspace_replication(const cellar_result_t *r,
                                               size_t i);
size_t cellar_result_table_count(const cellar_result_t *r);
const char *cellar_result_table_keyspace(const cellar_result_t *r, size_t i);
const char *cellar_result_table_name(const cellar_result_t *r, size_t i);
const char *cellar_result_table_policy(const cellar_result_t *r, size_t i);
uint32_t cellar_result_table_gc_grace(const cellar_result_t *r, size_t i);
uint32_t cellar_result_table_default_ttl(const cellar_result_t *r, size_t i);

/* ADMIN: key/value pairs */
size_t cellar_result_info_count(const cellar_result_t *r);
const char *cellar_result_info_key(const cellar_result_t *r, size_t i);
const char *cellar_result_info_value(const cellar_result_t *r, size_t i);

/* ADMIN "status" and "getendpoints": members of the cluster as the node
** answering sees them. Strings are borrowed, valid until
** cellar_result_free(r). */
typedef struct cellar_member {
  const char *host_id;
  const char *address;         /* client address host:port */
  const char *peer_address;    /* node-to-node address */
  const char *datacenter;
  const char *rack;
  const char *status;          /* joining | normal | leaving | left */
  int up;                      /* the answering node's failure detector */
  uint64_t load;               /* bytes on disk */
  uint32_t tokens;
  double owns;                 /* 0..1: effective for the keyspace asked, else primary */
  uint64_t generation;
  double phi;
  const char *schema;          /* schema version */
} cellar_member_t;

size_t cellar_result_member_count(const cellar_result_t *r);
/* 0, or CELLAR_EINVAL when i is out of range. */
int cellar_result_member(const cellar_result_t *r, size_t i, cellar_member_t *out);

#ifdef __cplusplus
}
#endif
#endif /* CELLAR_CELLAR_H */
