/*
 * cloudevents: the CloudEvents 1.0 HTTP protocol binding, done once for all three functions
 * (no C SDK exists). Decodes binary mode (ce-* headers, body = data) and structured mode
 * (Content-Type application/cloudevents+json); encodes binary mode for sending.
 *
 * Refused with BP_EINVAL (HTTP 400, never retried): a missing or empty required attribute
 * (id, source, specversion, type), specversion other than "1.0", a datacontenttype with a
 * control character (it would break the Content-Type header when sent), malformed structured JSON,
 * a batch (application/cloudevents-batch+json), broken percent-encoding in a header.
 *
 * Ownership: a decoded bp_ce_t owns every string in it (malloc'd); bp_ce_clear frees them.
 * Thread-safe: no shared state.
 */
#ifndef BP_CLOUDEVENTS_H
#define BP_CLOUDEVENTS_H

#include <stddef.h>

#include "err.h"
#include "http/server.h"

#define BP_CE_TYPE_AGGREGATED "dev.bizpulse.metrics.aggregated.v1"
#define BP_CE_TYPE_INCIDENT_OPENED "dev.bizpulse.incident.opened.v1"
#define BP_CE_TYPE_INCIDENT_UPDATED "dev.bizpulse.incident.updated.v1"
#define BP_CE_TYPE_INCIDENT_RESOLVED "dev.bizpulse.incident.resolved.v1"
#define BP_CE_TYPE_PING "dev.knative.sources.ping"

typedef struct st_bp_ce_t {
    char *id;
    char *source;
    char *specversion;
    char *type;
    char *subject;         /* optional: NULL when absent */
    char *time;            /* optional RFC 3339 text */
    char *datacontenttype; /* optional */
    char *data;            /* the data bytes, NUL-terminated; NULL when the event has none */
    size_t data_len;
} bp_ce_t;

/* Decodes an event from request headers (lowercase names) and body. On success returns 0 and
 * fills ev (caller bp_ce_clear()s it); on failure returns BP_EINVAL or BP_EMEDIA with err
 * saying which attribute or what is wrong, and ev holds nothing. A request that is not a
 * CloudEvent at all (no ce-specversion header, no cloudevents content type) is BP_EINVAL
 * "not a CloudEvent". */
int bp_ce_decode(const bp_http_header_t *headers, size_t num_headers, const char *body, size_t body_len,
                 bp_ce_t *ev, bp_err_t *err);

/* Builds the binary-mode headers for ev: "ce-id", "ce-source", "ce-specversion", "ce-type",
 * "ce-subject"/"ce-time" when set, and "content-type" (datacontenttype or application/json).
 * Values are percent-encoded as the HTTP binding §3.1.3.2 requires. Writes up to max headers
 * into out (malloc'd name/value strings the caller frees with bp_ce_free_headers) and returns
 * the count, or BP_ENOMEM/BP_ETOOBIG, or BP_EINVAL when datacontenttype is a CloudEvents media
 * type (application/cloudevents+json or -batch+json), which a receiver would take for a
 * structured event or a batch. */
int bp_ce_encode_binary(const bp_ce_t *ev, bp_http_header_t *out, size_t max);

void bp_ce_free_headers(bp_http_header_t *hdrs, size_t n);

/* Frees the strings of ev and zeroes it. NULL-safe. */
void bp_ce_clear(bp_ce_t *ev);

#endif
