/*
 * score_csv: the offline scorer (`bizpulse-detect score --csv FILE|-`), how detection quality
 * is measured on NAB: reads `timestamp,value` rows (a header line is skipped), writes
 * `timestamp,value,anomaly_score` rows, streaming in one pass with the live path's scorer
 * (currently the 3σ rule; score 0 while learning).
 */
#ifndef BP_SCORE_CSV_H
#define BP_SCORE_CSV_H

#include <stdio.h>

#include "err.h"

/* path "-" reads stdin. Returns 0, BP_EIO (cannot open/read), or BP_EINVAL naming the line. */
int bp_score_csv(const char *path, FILE *out, bp_err_t *err);

#endif
