/*
 * score_csv: the offline scorer (`bizpulse-detect score --csv FILE|-`), how detection quality
 * is measured on NAB: reads `timestamp,value` rows and writes `timestamp,value,anomaly_score`
 * rows (timestamp and value echoed as read), streaming in one pass and constant memory with
 * the live path's detector (detector.h, default parameters; score 0 while it learns).
 *
 * Input: an optional header line (a first line whose value does not parse), then one
 * `timestamp,value` per line; blank lines are skipped; "\r\n" endings are accepted. The
 * timestamp is RFC 3339, or "YYYY-MM-DD HH:MM:SS[.fff]" without a zone (taken as UTC, as NAB
 * writes them), or integer epoch seconds within years 0000-9999. The value is the text after the
 * last comma.
 */
#ifndef BP_SCORE_CSV_H
#define BP_SCORE_CSV_H

#include <stdio.h>

#include "err.h"

/* Scores the rows of path ("-" reads stdin) and writes the result rows to out. Returns 0;
 * BP_EIO when the input cannot be opened or read, or out cannot be written; BP_ENOMEM; or
 * BP_EINVAL with a message naming the file and line of the first bad row (rows before it
 * have been written). */
int bp_score_csv(const char *path, FILE *out, bp_err_t *err);

#endif
