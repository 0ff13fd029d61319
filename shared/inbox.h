/*
 * inbox: dedup of received CloudEvents on (source, id), DESIGN §5. Delivery is at least once,
 * so a receiver claims the event in the same transaction as its effect: the first delivery
 * inserts the key and does the work; a redelivery finds the key and does nothing (and answers
 * 200). Concurrent deliveries of one event serialise on the primary key: the second waits for
 * the first transaction and then sees the row.
 */
#ifndef BP_INBOX_H
#define BP_INBOX_H

#include <stdbool.h>

#include "cloudevents.h"
#include "db/conn.h"

/* Inside the caller's open transaction: records (ev->source, ev->id, ev->type). *first is true
 * when this is the first delivery. Returns 0 or BP_EDB. */
int bp_inbox_claim(bp_db_t *db, const bp_ce_t *ev, bool *first, bp_err_t *err);

#endif
