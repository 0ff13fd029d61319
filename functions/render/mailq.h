/*
 * mailq: the email state of each incident report, in incident_reports (migration 003), so
 * exactly one email goes out per incident state however many times the event arrives and
 * however many render replicas run:
 *
 *   none ──enqueue (same transaction as the report row)──▶ pending ──claim──▶ sending
 *   sending ──sent──▶ sent          sending ──error──▶ pending (backoff) or failed (last attempt)
 *   sending, lease expired (the replica died mid-send) ──claim──▶ sending (a new attempt)
 *
 * A claim is one UPDATE over rows picked FOR UPDATE SKIP LOCKED: two replicas polling at once
 * take disjoint rows, and the claim token (random per claim) makes a late finisher whose lease
 * expired unable to overwrite the new owner's outcome.
 *
 * Not thread-safe beyond bp_db_t's rule: one connection per thread.
 */
#ifndef BP_RENDER_MAILQ_H
#define BP_RENDER_MAILQ_H

#include <stdbool.h>
#include <stddef.h>

#include "db/conn.h"
#include "err.h"

/* A claimed email: everything needed to build and send it. Strings are malloc'd (clear). */
typedef struct st_bp_mailq_item_t {
    long long incident_id;
    char *state;   /* "opened", "resolved"; the PDF is the report of (incident_id, state) */
    size_t bytes;  /* the PDF's recorded size */
    char *to;      /* comma list */
    char *metric;  /* incident's metric */
    char *series;  /* incident's series ("" total) */
    char *summary; /* the sentence */
    int attempts;  /* including this one */
    char claim[40];
} bp_mailq_item_t;

/* Inside the caller's transaction: marks the report of (incident, state) pending for to (a
 * comma list). A report already past 'none' is left alone. */
int bp_mailq_enqueue(bp_db_t *db, long long incident_id, const char *state, const char *to, bp_err_t *err);

/* Claims up to max due emails (pending and due, or sending with an expired lease) for lease_s
 * seconds, counting an attempt each. *items is malloc'd (bp_mailq_items_free), *n may be 0. */
int bp_mailq_claim(bp_db_t *db, int max, int lease_s, bp_mailq_item_t **items, size_t *n, bp_err_t *err);

void bp_mailq_items_free(bp_mailq_item_t *items, size_t n); /* NULL-safe */

/* Records the outcome of a claimed send: sent, or the error with a retry after retry_ms (or
 * failed for good when final). A claim that was taken over meanwhile changes nothing. */
int bp_mailq_sent(bp_db_t *db, const bp_mailq_item_t *it, bp_err_t *err);
int bp_mailq_failed(bp_db_t *db, const bp_mailq_item_t *it, const char *error, long retry_ms, bool final,
                    bp_err_t *err);

/* Emails per status, for /metrics. */
typedef struct st_bp_mailq_counts_t {
    long long pending, sending, sent, failed;
} bp_mailq_counts_t;

int bp_mailq_count(bp_db_t *db, bp_mailq_counts_t *out, bp_err_t *err);

#endif
