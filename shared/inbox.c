#include "inbox.h"

static const bp_db_stmt_t claim_sql = {"bp_inbox_claim",
                                       "INSERT INTO processed_events (source, id, type) VALUES ($1, $2, $3) "
                                       "ON CONFLICT (source, id) DO NOTHING",
                                       3};

int bp_inbox_claim(bp_db_t *db, const bp_ce_t *ev, bool *first, bp_err_t *err)
{
    const char *params[] = {ev->source, ev->id, ev->type};
    PGresult *res = NULL;
    int rc = bp_db_query(db, &claim_sql, params, &res, err);
    if (rc != 0)
        return rc;
    *first = PQcmdTuples(res)[0] == '1';
    PQclear(res);
    return 0;
}
