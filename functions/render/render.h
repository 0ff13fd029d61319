/*
 * render: what the render function does, callable from HTTP handlers (routes.c) and the CLI
 * (main.c) alike: a metric's chart as PNG, an incident's PDF report, and the handling of an
 * incident CloudEvent (dedup, report built, stored in PostgreSQL, cached in the report
 * directory), all against the caller's bp_worker_t (its DB connection).
 *
 * Reports: the bytes in incident_reports (migration 004) are the truth, so any replica serves
 * and e-mails any report; report_dir (a per-pod emptyDir in Knative) holds only a cache of what
 * this process built, used when present and never required.
 *
 * Threads: bp_render_t is read-only after bp_render_init and shared by every worker; each call
 * uses only the worker it is given.
 */
#ifndef BP_RENDER_RENDER_H
#define BP_RENDER_RENDER_H

#include <limits.h>
#include <stdint.h>

#include "app.h"
#include "chart.h"
#include "buf.h"
#include "cloudevents.h"
#include "err.h"
#include "mail.h"
#include "store.h"
#include "tz.h"

/* Longest chart range (the points query returns at most BP_STORE_MAX_POINTS). */
#define BP_RENDER_MAX_SPAN (90 * 86400)
/* Default chart range: the last 24 hours. */
#define BP_RENDER_DEFAULT_SPAN 86400
/* Ceilings of what a call may produce. */
#define BP_RENDER_PNG_MAX (16u << 20)
#define BP_RENDER_PDF_MAX (32u << 20)

/* The function's own state (bp_app_t.fn), owned by main. */
typedef struct st_bp_render_t {
    char report_dir[PATH_MAX]; /* absolute; exists; this process's cache of report PDFs */
    const char *public_url;    /* BIZPULSE_PUBLIC_URL (chart links in reports), or NULL */
    const char *token;         /* BIZPULSE_RENDER_TOKEN, or NULL: no bearer check */
    bp_mail_config_t mail;     /* BIZPULSE_SMTP_*, BIZPULSE_MAIL_FROM; mail.url NULL: no email */
    const char *mail_to;       /* BIZPULSE_MAIL_TO: recipients of every metric's reports, or NULL */
    long mail_retry_ms;        /* BIZPULSE_MAIL_RETRY_MS: first retry delay, doubling to an hour */
    long mail_max_attempts;    /* BIZPULSE_MAIL_MAX_ATTEMPTS: then the email is 'failed' */
    long mail_lease_s;         /* a send not finished by then is taken over by another replica */
} bp_render_t;

/* What handling an incident event came to. */
typedef enum {
    BP_RENDER_IGNORED,   /* not an incident.opened/resolved event: nothing done */
    BP_RENDER_DUPLICATE, /* (source, id) was already processed: nothing done */
    BP_RENDER_WRITTEN,   /* the report was built, written and recorded now */
    BP_RENDER_EXISTING,  /* a report for this incident state was already stored (other event id) */
} bp_render_outcome_t;

typedef struct st_bp_render_result_t {
    bp_render_outcome_t outcome;
    long long incident_id;
    char state[16];      /* "opened" / "resolved" */
    char path[PATH_MAX]; /* WRITTEN: the cached copy here; EXISTING: the builder's (maybe another pod's) */
    size_t bytes;        /* WRITTEN: its size */
} bp_render_result_t;

/* Reads BIZPULSE_REPORT_DIR (default ./reports), creates it (and parents) when missing,
 * resolves it to an absolute path; reads BIZPULSE_PUBLIC_URL, BIZPULSE_RENDER_TOKEN, the email
 * settings (BIZPULSE_SMTP_URL, _USER, _PASSWORD, _STARTTLS, _TIMEOUT_MS, BIZPULSE_MAIL_FROM,
 * _TO, _RETRY_MS, _MAX_ATTEMPTS); registers render's Prometheus series. Returns 0 or
 * BP_ECONFIG/BP_EIO with err. */
int bp_render_init(bp_render_t *r, bp_err_t *err);

/* Parses a chart's from/to (RFC 3339 or relative like "-24h", relative to now). NULL or ""
 * means the default: to = now, from = to - 24 h. BP_EINVAL with err naming the parameter
 * ("from", "to") when one is malformed, from >= to, or the range passes BP_RENDER_MAX_SPAN. */
int bp_render_parse_range(const char *from_s, const char *to_s, int64_t now, int64_t *from, int64_t *to,
                          bp_err_t *err);

typedef enum {
    BP_RENDER_PNG = 0,
    BP_RENDER_SVG,
} bp_render_format_t;

/* One chart request, parameters already parsed and in range. Strings are the caller's. */
typedef struct st_bp_render_chart_t {
    const char *metric;
    const char *series; /* NULL or "" is the metric's total */
    int64_t from;
    int64_t to;
    const bp_tz_t *tz; /* NULL: UTC */
    int width;         /* 0: default */
    int height;        /* 0: default */
    bp_chart_theme_t theme;
    const char *title; /* NULL: "Metric Analysis: <metric>" (and the series when not the total) */
    bp_render_format_t format;
} bp_render_chart_t;

/* Bumped when the picture changes for the same data, so cached charts are not reused. */
#define BP_RENDER_LOOK_VERSION "render-2"

/* The chart's ETag (a quoted strong validator, RFC 9110 §8.8.3) into etag (at least 24 bytes):
 * a hash of every parameter and of bp_store_chart_version, so it is computed with one cheap
 * query before anything is drawn and changes when the picture would. BP_EDB when the database
 * is unreachable. */
int bp_render_chart_etag(bp_worker_t *w, const bp_render_chart_t *q, char *etag, size_t etagsz,
                         bp_err_t *err);

/* Appends the chart (PNG or SVG) to out. Returns 0 or BP_EDB/BP_EINVAL/BP_ETOOBIG/BP_ENOMEM/
 * BP_EINTERNAL with err. Does NOT check that the metric is declared: callers do
 * (bp_config_find). */
int bp_render_chart(bp_worker_t *w, const bp_render_chart_t *q, bp_buf_t *out, bp_err_t *err);

/* Appends the PDF report of inc for state ("opened"/"resolved") to out: loads the points around
 * the incident and draws. Writes no file and records nothing. */
int bp_render_report_pdf(bp_worker_t *w, const bp_render_t *r, const bp_store_incident_t *inc,
                         const char *state, bp_buf_t *out, bp_err_t *err);

/* Handles one decoded CloudEvent (DESIGN §5, §6 render). For incident.opened/resolved, in one
 * transaction: claims (source, id) in the inbox, loads the incident named by data.incident_id,
 * builds its report, records it with its bytes in incident_reports, marks its email pending
 * when there are recipients (the metric's and BIZPULSE_MAIL_TO) and SMTP is configured, then
 * commits; only then writes the cache report_dir/incident-<id>-<state>.pdf (temp file + rename;
 * a failure there is logged, not returned). When another event for the same incident state
 * committed its report first, the outcome is EXISTING and nothing of this call's stays. Other
 * types are IGNORED (no DB access). Returns 0 with *res filled, or BP_EINVAL (bad data, unknown
 * incident: never succeeds), BP_EDB (retry later), BP_ETOOBIG/BP_ENOMEM/BP_EINTERNAL; on
 * failure the transaction is rolled back, so a redelivery tries again. */
int bp_render_handle_event(bp_worker_t *w, const bp_render_t *r, const bp_ce_t *ev, bp_render_result_t *res,
                           bp_err_t *err);

/* The background step (bp_app_t.periodic): claims due emails, sends each (mail.h), records
 * the outcome with backoff, and refreshes the bizpulse_render_emails{status} gauges. Errors
 * are logged; nothing is returned. */
void bp_render_periodic(bp_worker_t *w);

/* Reads the latest stored report of incident id into out (empty; its ceiling bounds the size):
 * the cached file in report_dir when it has the recorded size, else the bytes in the database,
 * whichever replica built it. Does NOT fill the cache. BP_ENOTFOUND when none is recorded, or
 * it was recorded before migration 004 and its file is not here; BP_EDB, BP_ETOOBIG. */
int bp_render_read_report(bp_worker_t *w, long long id, bp_buf_t *out, bp_err_t *err);

/* Writes data to path atomically: a temporary file in the same directory, fsync, rename. */
int bp_render_write_file(const char *path, const void *data, size_t len, bp_err_t *err);

#endif
