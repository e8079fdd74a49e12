/* error: names and messages of the cellar error codes (CELLAR_ERRNO_MAP). */
#include <strings.h>
#include "cellar/cellar.h"

const char *cellar_strerror(int code) {
  switch (code) {
#define X(name, val, msg) case val: return msg;
    CELLAR_ERRNO_MAP(X)
#undef X
  }
  return "unknown error";
}

const char *cellar_err_name(int code) {
  switch (code) {
#define X(name, val, msg) case val: return "CELLAR_" #name;
    CELLAR_ERRNO_MAP(X)
#undef X
  }
  return "CELLAR_EUNKNOWN";
}

static const char *const cl_names[] = {
  NULL, "ONE", "TWO", "THREE", "QUORUM", "ALL",
  "LOCAL_ONE", "LOCAL_QUORUM", "EACH_QUORUM", "ANY"
};

const char *cellar_consistency_name(cellar_consistency_t cl) {
  if ((int)cl < 1 || (int)cl > CELLAR_CL_ANY) return NULL;
  return cl_names[cl];
}

int cellar_consistency_parse(const char *name, cellar_consistency_t *out) {
  if (name == NULL) return CELLAR_EBADCL;
  for (int i = 1; i <= CELLAR_CL_ANY; i++) {
    if (strcasecmp(name, cl_names[i]) == 0) {
      *out = (cellar_consistency_t)i;
      return 0;
    }
  }
  return CELLAR_EBADCL;
}
