/*
 * retention: trims the two tables that only grow, in bounded deletes so that a first prune of a
 * big table never holds one huge transaction: sent outbox events (failed ones stay for people to
 * read) and received-event ids (the dedup keys: a redelivery older than the retention is no
 * longer recognised, so it must exceed the broker's longest retry).
 */
#ifndef BP_RETENTION_H
#define BP_RETENTION_H

#include "db/conn.h"
#include "err.h"

/* Deletes up to max rows of each kind older than days. *sent and *seen (may be NULL) get the
 * counts. Returns 0 or a BP_EDB-class error from the first failing delete. */
int bp_retention_prune(bp_db_t *db, int days, int max, long *sent, long *seen, bp_err_t *err);

#endif
