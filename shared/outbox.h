/*
 * outbox: the transactional outbox of DESIGN §5. An event is written to the `outbox` table in
 * the same transaction as the state change it announces, and POSTed to K_SINK only after
 * commit; if the sink is down it stays and is retried with backoff. So an event is never lost
 * because a network call failed, and never sent for a change that rolled back.
 *
 * Event ids are the caller's (deterministic: a retried tick writes the same id, and
 * (source, id) is unique in the outbox, so the retry adds nothing).
 */
#ifndef BP_OUTBOX_H
#define BP_OUTBOX_H

#include <stdbool.h>

#include "cloudevents.h"
#include "db/conn.h"
#include "http/client.h"

/* Inserts ev into the outbox inside the caller's open transaction. An event with the same
 * (source, id) already there is left as is; *added (may be NULL) says which happened. */
int bp_outbox_add(bp_db_t *db, const bp_ce_t *ev, bool *added, bp_err_t *err);

/* bp_outbox_add for n events in one statement (one round trip): a tick's events per metric. */
int bp_outbox_add_many(bp_db_t *db, const bp_ce_t *evs, size_t n, bp_err_t *err);

/* Sends up to max due events written by `source` (the outbox table is shared by the three
 * functions; each sends only its own), oldest first, each in its own short transaction that locks the
 * row (FOR UPDATE SKIP LOCKED: replicas flushing at once never send the same row concurrently).
 * With sink_url NULL or empty, events stay queued. A delivered row is marked sent; a failed
 * one gets attempts+1, last_error and a next attempt time (1 s doubling to 5 min); a 4xx
 * answer marks it failed for good. *sent (may be NULL) counts delivered events.
 * Returns 0 or BP_EDB. */
int bp_outbox_flush(bp_db_t *db, bp_http_client_t *client, const char *sink_url, const char *source, int max,
                    int *sent, bp_err_t *err);

#endif
