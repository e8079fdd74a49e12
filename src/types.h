/*
** Small value types shared by the server modules: borrowed byte ranges and
** the cells/rows of a write as decoded from the wire. Header only.
*/
#ifndef CELLAR_TYPES_H
#define CELLAR_TYPES_H

#include <stddef.h>
#include <stdint.h>

/* A borrowed byte range. Never owns its memory. */
typedef struct cbytes {
  const uint8_t *p;
  size_t n;
} cbytes;

/* One cell of a write: column name and value (both borrowed). */
typedef struct req_cell {
  cbytes name;
  cbytes value;
} req_cell;

/* One row of a write: clustering key and its cells (all borrowed). */
typedef struct req_row {
  cbytes ck;
  size_t ncells;
  req_cell *cells;
} req_row;

#define CBYTES(ptr, len) ((cbytes){(const uint8_t *)(ptr), (len)})

#endif
