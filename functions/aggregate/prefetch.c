#include "prefetch.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"

static void *run(void *arg)
{
    bp_prefetch_t *pf = arg;
    pf->rc = bp_scan_init(&pf->scan, pf->ms, pf->n, pf->from, pf->to, &pf->err);
    pf->scan.max_events = pf->max_events;
    if (pf->rc == 0)
        pf->rc = bp_scan_run(pf->db, pf->cfg, &pf->scan, &pf->err);
    return NULL;
}

/* Waits for the running prefetch, if any, and forgets its metric list. */
static void join(bp_prefetch_t *pf)
{
    if (pf->running)
        pthread_join(pf->thread, NULL);
    pf->running = false;
    free(pf->ms);
    pf->ms = NULL;
}

int bp_prefetch_start(bp_prefetch_t *pf, const bp_config_t *cfg, const bp_metric_t *const *ms, size_t n,
                      int64_t from, int64_t to, uint64_t max_events)
{
    join(pf);
    bp_scan_free(&pf->scan);
    if (pf->db == NULL && (pf->db = bp_db_new()) == NULL)
        return BP_ENOMEM;
    if ((pf->ms = malloc((n + 1) * sizeof(*pf->ms))) == NULL)
        return BP_ENOMEM;
    memcpy(pf->ms, ms, n * sizeof(*ms));
    pf->cfg = cfg;
    pf->n = n;
    pf->from = from;
    pf->to = to;
    pf->max_events = max_events;
    pf->rc = 0;
    bp_err_clear(&pf->err);
    if (pthread_create(&pf->thread, NULL, run, pf) != 0) {
        free(pf->ms);
        pf->ms = NULL;
        return BP_EINTERNAL;
    }
    pf->running = true;
    return 0;
}

bool bp_prefetch_take(bp_prefetch_t *pf, const bp_metric_t *const *ms, size_t n, int64_t from, int64_t to,
                      bp_scan_t *out)
{
    bool match = pf->running && pf->n == n && pf->from == from && pf->to == to &&
                 memcmp(pf->ms, ms, n * sizeof(*ms)) == 0;
    join(pf);
    if (!match) {
        bp_scan_free(&pf->scan);
        return false;
    }
    if (pf->rc != 0) {
        /* e.g. the second connection refused (a connection limit): the round scans itself */
        bp_log(BP_LOG_WARNING, "aggregate read-ahead failed, scanning in the round: %s", pf->err.msg);
        bp_scan_free(&pf->scan);
        return false;
    }
    *out = pf->scan;
    memset(&pf->scan, 0, sizeof(pf->scan));
    return true;
}

void bp_prefetch_free(bp_prefetch_t *pf)
{
    join(pf);
    bp_scan_free(&pf->scan);
    bp_db_free(pf->db);
    memset(pf, 0, sizeof(*pf));
}
