/*
 * backtest: what detection would have done over stored history, so a user can pick a
 * sensitivity before enabling a metric: the same scorer and the same episode state machine as
 * the live path, over [from, to), with no alert window (every past episode counts) and no
 * writes. `bizpulse-detect backtest --metric M --from T1 --to T2`; the BIZPULSE_DETECT_*
 * variables set the sensitivity tried.
 */
#ifndef BP_BACKTEST_H
#define BP_BACKTEST_H

#include <stdint.h>

#include "app.h"
#include "buf.h"
#include "detect.h"

/* Appends a JSON report to out: {"metric","method","from","to","points","anomalous_points",
 * "learning_points","incidents":[{"started","ended","peak_at","peak","expected","anomalies"}],
 * "incidents_per_week","params":{...}}. BP_EDB, BP_ETOOBIG, BP_EINVAL (range). */
int bp_backtest_run(bp_worker_t *w, const bp_metric_t *m, int64_t from, int64_t to, const bp_detect_options_t *o,
                    bp_buf_t *out, bp_err_t *err);

#endif
