/*
 * http/client: the outgoing HTTP of the project (libcurl): POSTing CloudEvents in binary mode
 * to K_SINK. Timeouts are short (connect 2 s, total 10 s) so a dead sink costs a worker little;
 * the outbox retries later.
 *
 * Not thread-safe: one bp_http_client_t (one CURL handle) per thread. curl_global_init is the
 * process's job (bp_app does it before starting threads).
 */
#ifndef BP_HTTP_CLIENT_H
#define BP_HTTP_CLIENT_H

#include "cloudevents.h"
#include "err.h"

typedef struct st_bp_http_client_t bp_http_client_t;

bp_http_client_t *bp_http_client_new(void);
void bp_http_client_free(bp_http_client_t *c); /* NULL-safe */

/* POSTs ev to url. Adds `traceparent` when the calling thread has a trace id. Returns 0 for a
 * 2xx answer; BP_EINVAL for 400, 413, 415, 422 (the event will never be accepted); BP_EIO for
 * anything else, unreachable included (retry later). *status gets the HTTP status (0: none). */
int bp_http_client_send_ce(bp_http_client_t *c, const char *url, const bp_ce_t *ev, int *status,
                           bp_err_t *err);

#endif
