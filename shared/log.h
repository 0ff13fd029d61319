/*
 * log: one JSON object per line on stdout, in the shape Cloud Logging reads (DESIGN §4):
 *   {"severity":"INFO","time":"2026-11-25T20:00:00.123Z","message":"...","service":"detect",
 *    "revision":"detect-00001","logging.googleapis.com/trace":"projects/P/traces/T", ...}
 *
 * The trace id is per thread: the HTTP layer sets it from the W3C `traceparent` header before
 * a handler runs and clears it afterwards, so every line a handler logs carries it.
 * `service`/`revision` come from K_SERVICE/K_REVISION (or the name given to bp_log_init).
 * The trace field is "projects/<GOOGLE_CLOUD_PROJECT>/traces/<id>" when that env var is set,
 * else the bare 32-hex trace id.
 *
 * Thread-safe: each line is written with one write(2), so lines of concurrent threads never
 * interleave. A message is cut to 32 KiB; a line that still exceeds 64 KiB (huge `fields`) is
 * replaced by a short "log line too long" line rather than dropped. Messages must not contain credentials;
 * callers never log connection strings.
 */
#ifndef BP_LOG_H
#define BP_LOG_H

typedef enum {
    BP_LOG_DEBUG,
    BP_LOG_INFO,
    BP_LOG_WARNING,
    BP_LOG_ERROR,
} bp_log_level_t;

/* Sets the service name used when K_SERVICE is unset, and the minimum level
 * (BIZPULSE_LOG_LEVEL=debug|info|warning|error, default info). Call once at startup. */
void bp_log_init(const char *default_service);

/* Logs one line. Extra fields: pass a JSON object text without braces in `fields` (e.g.
 * "\"metric\":\"x\",\"rows\":3"), or NULL. The message is JSON-escaped here. */
void bp_log_fields(bp_log_level_t level, const char *fields, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define bp_log(level, ...) bp_log_fields((level), NULL, __VA_ARGS__)

/* Sets this thread's trace id from a traceparent header value ("00-<32 hex>-<16 hex>-<2 hex>");
 * an invalid or NULL value clears it. */
void bp_log_set_traceparent(const char *traceparent);

/* This thread's trace id (32 lowercase hex) or "" when none. Valid until the next set call on
 * this thread. */
const char *bp_log_trace_id(void);

#endif
