#include "log.h"
#include "buf.h"
#include "json.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

/* A line longer than this is cut (the message is truncated first), so a runaway message can
 * never make one log call allocate without bound. */
#define LOG_LINE_MAX (64 * 1024)
#define LOG_MSG_STACK 1024

/* Process-wide settings, written by bp_log_init (or lazily from the environment on first use)
 * before threads start and read-only afterwards. */
static struct {
    char service[64];
    char revision[96];
    char project[128];
    bp_log_level_t min_level;
} settings = {.service = "bizpulse", .min_level = BP_LOG_INFO};

static pthread_once_t settings_once = PTHREAD_ONCE_INIT;

/* 32 lowercase hex chars + NUL, "" when the thread has no trace. */
static _Thread_local char trace_id[33];

static const char *level_name(bp_log_level_t level)
{
    switch (level) {
    case BP_LOG_DEBUG:
        return "DEBUG";
    case BP_LOG_INFO:
        return "INFO";
    case BP_LOG_WARNING:
        return "WARNING";
    default:
        return "ERROR";
    }
}

static void copy_env(char *dst, size_t dstsz, const char *name)
{
    const char *v = getenv(name);
    if (v != NULL && v[0] != '\0')
        snprintf(dst, dstsz, "%s", v);
}

static void load_env(void)
{
    copy_env(settings.service, sizeof(settings.service), "K_SERVICE");
    copy_env(settings.revision, sizeof(settings.revision), "K_REVISION");
    copy_env(settings.project, sizeof(settings.project), "GOOGLE_CLOUD_PROJECT");
    const char *lvl = getenv("BIZPULSE_LOG_LEVEL");
    if (lvl == NULL)
        return;
    if (strcasecmp(lvl, "debug") == 0)
        settings.min_level = BP_LOG_DEBUG;
    else if (strcasecmp(lvl, "warning") == 0 || strcasecmp(lvl, "warn") == 0)
        settings.min_level = BP_LOG_WARNING;
    else if (strcasecmp(lvl, "error") == 0)
        settings.min_level = BP_LOG_ERROR;
    else
        settings.min_level = BP_LOG_INFO;
}

void bp_log_init(const char *default_service)
{
    pthread_once(&settings_once, load_env);
    /* K_SERVICE wins: Knative names the service, the binary only knows its own name. */
    const char *k = getenv("K_SERVICE");
    if (default_service != NULL && (k == NULL || k[0] == '\0'))
        snprintf(settings.service, sizeof(settings.service), "%s", default_service);
}

static bool is_lower_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return false;
    }
    return true;
}

static bool is_all_zero(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != '0')
            return false;
    return true;
}

/* W3C Trace Context §3.2: version "-" trace-id "-" parent-id "-" flags, lowercase hex; version ff
 * and all-zero ids are invalid. Versions above 00 may append fields after another '-'. */
static bool traceparent_valid(const char *tp)
{
    size_t len = strlen(tp);
    if (len < 55 || tp[2] != '-' || tp[35] != '-' || tp[52] != '-')
        return false;
    if (!is_lower_hex(tp, 2) || memcmp(tp, "ff", 2) == 0)
        return false;
    if (memcmp(tp, "00", 2) == 0 ? len != 55 : (len > 55 && tp[55] != '-'))
        return false;
    if (!is_lower_hex(tp + 3, 32) || is_all_zero(tp + 3, 32))
        return false;
    if (!is_lower_hex(tp + 36, 16) || is_all_zero(tp + 36, 16))
        return false;
    return is_lower_hex(tp + 53, 2);
}

void bp_log_set_traceparent(const char *traceparent)
{
    if (traceparent == NULL || !traceparent_valid(traceparent)) {
        trace_id[0] = '\0';
        return;
    }
    memcpy(trace_id, traceparent + 3, 32);
    trace_id[32] = '\0';
}

const char *bp_log_trace_id(void)
{
    return trace_id;
}

static void format_time(char *out, size_t outsz)
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(out, outsz, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, outsz - n, ".%03dZ", (int)(ts.tv_nsec / 1000000));
}

/* One write(2) per line keeps concurrent lines whole (pipes guarantee it up to PIPE_BUF; longer
 * lines still go out in one call unless the kernel splits them). */
static void write_line(const char *p, size_t len)
{
    while (len > 0) {
        ssize_t n = write(STDOUT_FILENO, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return; /* nowhere left to report it */
        }
        p += n;
        len -= (size_t)n;
    }
}

static int build_line(bp_buf_t *line, bp_log_level_t level, const char *fields, const char *msg)
{
    char when[40];
    format_time(when, sizeof(when));
    int rc =
        bp_buf_appendf(line, "{\"severity\":\"%s\",\"time\":\"%s\",\"message\":", level_name(level), when);
    if (rc == 0)
        rc = bp_json_append_str(line, msg);
    if (rc == 0) {
        rc = bp_buf_append(line, ",\"service\":", 11);
        if (rc == 0)
            rc = bp_json_append_str(line, settings.service);
    }
    if (rc == 0 && settings.revision[0] != '\0') {
        rc = bp_buf_append(line, ",\"revision\":", 12);
        if (rc == 0)
            rc = bp_json_append_str(line, settings.revision);
    }
    if (rc == 0 && trace_id[0] != '\0') {
        if (settings.project[0] != '\0')
            rc = bp_buf_appendf(line, ",\"logging.googleapis.com/trace\":\"projects/%s/traces/%s\"",
                                settings.project, trace_id);
        else
            rc = bp_buf_appendf(line, ",\"logging.googleapis.com/trace\":\"%s\"", trace_id);
    }
    if (rc == 0 && fields != NULL && fields[0] != '\0')
        rc = bp_buf_appendf(line, ",%s", fields);
    if (rc == 0)
        rc = bp_buf_append(line, "}\n", 2);
    return rc;
}

void bp_log_fields(bp_log_level_t level, const char *fields, const char *fmt, ...)
{
    pthread_once(&settings_once, load_env);
    if (level < settings.min_level)
        return;

    char stackmsg[LOG_MSG_STACK];
    char *msg = stackmsg;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(stackmsg, sizeof(stackmsg), fmt, ap);
    va_end(ap);
    if (n < 0) {
        snprintf(stackmsg, sizeof(stackmsg), "(unformattable log message)");
    } else if ((size_t)n >= sizeof(stackmsg)) {
        size_t sz = (size_t)n + 1 < LOG_LINE_MAX / 2 ? (size_t)n + 1 : LOG_LINE_MAX / 2;
        char *big = malloc(sz);
        if (big != NULL) {
            va_start(ap, fmt);
            vsnprintf(big, sz, fmt, ap);
            va_end(ap);
            msg = big;
        } /* else keep the truncated stack copy */
    }

    bp_buf_t line;
    bp_buf_init(&line, LOG_LINE_MAX);
    int rc = build_line(&line, level, fields, msg);
    if (rc != 0) {
        /* Too long or out of memory: say so rather than drop the line silently; the extra
         * fields are what usually makes it long, so leave them out. */
        bp_buf_reset(&line);
        rc = build_line(&line, level, "\"log_truncated\":true", "(log line too long or out of memory)");
    }
    if (rc == 0)
        write_line(line.base, line.len);
    bp_buf_free(&line);
    if (msg != stackmsg)
        free(msg);
}
