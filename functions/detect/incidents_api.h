/*
 * incidents_api: the HTTP face of incidents for people and tools: `GET /incidents` (filter by
 * status and metric, newest first) and `POST /incidents/<id>/ack` (acknowledge: idempotent,
 * emits dev.bizpulse.incident.updated.v1 once; needs Authorization: Bearer
 * <BIZPULSE_ADMIN_TOKEN> when that is set). Handlers run on server workers (bp_worker_t).
 */
#ifndef BP_INCIDENTS_API_H
#define BP_INCIDENTS_API_H

#include "http/server.h"

void bp_incidents_list(void *wctx, const bp_http_request_t *req, bp_http_response_t *res);
void bp_incidents_ack(void *wctx, const bp_http_request_t *req, bp_http_response_t *res);

#endif
