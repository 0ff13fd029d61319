#include "points.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agg_sql.h"
#include "buf.h"
#include "timefmt.h"

#define ARRAY_MAX (512u << 20)
/* The writes go out in pieces: COPY data every PIECE_BYTES, an upsert every PIECE_POINTS
 * points or PIECE_BYTES of array text, so no window's size makes one buffer unbounded. */
#define PIECE_BYTES (4u << 20)
#define PIECE_POINTS 50000
/* New points beyond this many go in by COPY (a catch-up's day: ~3x cheaper per row than the
 * upsert's speculative insertion); fewer, through the upsert, in one round trip. */
#define COPY_MIN 1000

static int push(bp_metric_points_t *out, size_t *cap, const bp_point_t *p)
{
    if (out->n == *cap) {
        size_t c = *cap ? *cap * 2 : 256;
        bp_point_t *v = realloc(out->pts, c * sizeof(bp_point_t));
        if (v == NULL)
            return BP_ENOMEM;
        out->pts = v;
        *cap = c;
    }
    out->pts[out->n++] = *p;
    return 0;
}

static bp_point_t point_of(const bp_metric_t *m, const bp_acc_t *acc, uint32_t series, uint32_t interval)
{
    static const bp_acc_t none = {0};
    if (acc == NULL)
        acc = &none;
    bp_point_t p = {.series = series, .interval = interval, .parts_null = true, .events = (int64_t)acc->a};
    switch (m->kind) {
    case BP_KIND_COUNT:
        p.value = (double)acc->a;
        break;
    case BP_KIND_SUM:
        p.value = bp_decsum_value(&acc->sum);
        p.value_null = !(fabs(p.value) < 1e300); /* beyond float8's range: no usable value */
        if (p.value_null)
            p.value = 0;
        break;
    case BP_KIND_RATIO:
        p.num = (double)acc->a;
        p.den = (double)acc->b;
        p.parts_null = false;
        p.value_null = acc->b == 0;
        p.value = acc->b > 0 ? p.num / p.den : 0;
        p.events = (int64_t)acc->b;
        break;
    case BP_KIND_DISTINCT:
        p.value = (double)acc->distinct;
        break;
    }
    return p;
}

int bp_points_build(const bp_scan_t *scan, const bp_scan_metric_t *sm, const bool *grid,
                    bp_metric_points_t *out, bp_err_t *err)
{
    memset(out, 0, sizeof(*out));
    size_t cap = 0;
    uint32_t nint = (uint32_t)((scan->to - scan->from) / scan->interval_s);
    bool ratio = sm->m->kind == BP_KIND_RATIO;
    int rc = 0;
    for (uint32_t s = 0; rc == 0 && s < sm->series.n; s++) {
        if (s != 0 && (grid == NULL || !grid[s]))
            continue;
        for (uint32_t iv = 0; rc == 0 && iv < nint; iv++) {
            const bp_acc_t *acc = bp_scan_acc(sm, s, iv);
            bp_point_t p = point_of(sm->m, acc, s, iv);
            p.if_stored = ratio && s != 0 && (acc == NULL || (acc->a == 0 && acc->b == 0));
            rc = push(out, &cap, &p);
        }
    }
    if (rc != 0) {
        bp_points_free(out);
        return bp_err_set(err, rc, "out of memory laying out the window");
    }
    return 0;
}

/* Whether stored row r equals point p. */
static bool same(const PGresult *res, int r, const bp_point_t *p)
{
    bool vnull = PQgetisnull(res, r, 2);
    if (vnull != p->value_null || (!vnull && bp_db_bin_float8(PQgetvalue(res, r, 2)) != p->value))
        return false;
    for (int c = 3; c <= 4; c++) {
        bool null = PQgetisnull(res, r, c);
        if (null != p->parts_null ||
            (!null && bp_db_bin_float8(PQgetvalue(res, r, c)) != (c == 3 ? p->num : p->den)))
            return false;
    }
    return !PQgetisnull(res, r, 5) && bp_db_bin_int8(PQgetvalue(res, r, 5)) == p->events;
}

size_t bp_points_format(double v, char *out)
{
    /* range first: converting a double beyond int64 is undefined */
    if (v > -9007199254740992.0 && v < 9007199254740992.0 && v == (double)(int64_t)v &&
        !(v == 0 && signbit(v))) {
        char tmp[24];
        int64_t x = (int64_t)v;
        uint64_t u = x < 0 ? (uint64_t)0 - (uint64_t)x : (uint64_t)x;
        size_t n = 0, len = 0;
        do {
            tmp[n++] = (char)('0' + u % 10);
            u /= 10;
        } while (u > 0);
        if (x < 0)
            out[len++] = '-';
        while (n > 0)
            out[len++] = tmp[--n];
        out[len] = '\0';
        return len;
    }
    return (size_t)snprintf(out, BP_POINTS_NUM_MAX, "%.17g", v);
}

/* null: the array's NULL, or COPY's \N */
static int append_double(bp_buf_t *b, bool null, const char *null_text, double v)
{
    char num[BP_POINTS_NUM_MAX];
    return null ? bp_buf_append(b, null_text, strlen(null_text))
                : bp_buf_append(b, num, bp_points_format(v, num));
}

static bool selected(const bp_point_t *p, int which)
{
    return p->changed && (which == 2 || (which == 1) == p->stored);
}

/* COPY's text format: backslash, tab, newline and carriage return escaped. */
static int append_copy_text(bp_buf_t *b, const char *s)
{
    int rc = 0;
    for (; rc == 0 && *s; s++) {
        const char *esc = *s == '\\'   ? "\\\\"
                          : *s == '\t' ? "\\t"
                          : *s == '\n' ? "\\n"
                          : *s == '\r' ? "\\r"
                                       : NULL;
        rc = esc ? bp_buf_append(b, esc, 2) : bp_buf_append(b, s, 1);
    }
    return rc;
}

/* The new points (no stored row, under the metrics' locks) as COPY rows. */
static int copy_row(bp_buf_t *data, const bp_scan_t *scan, const bp_scan_metric_t *sm, const bp_point_t *p)
{
    char ts[BP_TIME_STRLEN];
    bp_time_format(scan->from + (int64_t)p->interval * scan->interval_s, ts);
    int rc = append_copy_text(data, sm->m->name);
    rc = rc ? rc : bp_buf_append(data, "\t", 1);
    rc = rc ? rc : append_copy_text(data, bp_strtab_str(&sm->series, p->series));
    rc = rc ? rc : bp_buf_appendf(data, "\t%s\t", ts);
    rc = rc ? rc : append_double(data, p->value_null, "\\N", p->value);
    rc = rc ? rc : bp_buf_append(data, "\t", 1);
    rc = rc ? rc : append_double(data, p->parts_null, "\\N", p->num);
    rc = rc ? rc : bp_buf_append(data, "\t", 1);
    rc = rc ? rc : append_double(data, p->parts_null, "\\N", p->den);
    return rc ? rc : bp_buf_appendf(data, "\t%" PRId64 "\n", p->events);
}

/* The new points (no stored row, under the metrics' locks) as COPY rows, streamed. */
static int copy_new(bp_db_t *db, const bp_scan_t *scan, const bp_metric_points_t *mp, bp_err_t *err)
{
    int rc = bp_db_copy_begin(db, bp_agg_sql_copy(), err);
    if (rc != 0)
        return rc;
    bp_buf_t data;
    bp_buf_init(&data, ARRAY_MAX);
    const char *failure = NULL;
    for (size_t i = 0; failure == NULL && i < scan->num_metrics; i++) {
        for (size_t j = 0; failure == NULL && j < mp[i].n; j++) {
            if (!selected(&mp[i].pts[j], 0))
                continue;
            if (copy_row(&data, scan, &scan->metrics[i], &mp[i].pts[j]) != 0) {
                failure = "out of memory";
                rc = bp_err_set(err, BP_ENOMEM, "out of memory writing new points");
            } else if (data.len >= PIECE_BYTES) {
                if ((rc = bp_db_copy_put(db, data.base, data.len, err)) != 0)
                    failure = "not sent";
                bp_buf_reset(&data);
            }
        }
    }
    if (failure == NULL && data.len > 0 && (rc = bp_db_copy_put(db, data.base, data.len, err)) != 0)
        failure = "not sent";
    bp_buf_free(&data);
    int end = bp_db_copy_end(db, failure, err);
    return rc != 0 ? rc : end;
}

/* One upsert of points[0..n) (metric names and series alongside) as the write statement's
 * seven array parameters. */
static int upsert_piece(bp_db_t *db, const bp_scan_t *scan, const bp_point_t *const *pts,
                        const char *const *names, const char *const *series, size_t n, bp_err_t *err)
{
    bp_buf_t arr[7];
    for (int k = 0; k < 7; k++)
        bp_buf_init(&arr[k], ARRAY_MAX);
    int rc = bp_db_append_text_array(&arr[0], names, n);
    rc = rc ? rc : bp_db_append_text_array(&arr[1], series, n);
    for (int k = 2; rc == 0 && k < 7; k++)
        rc = bp_buf_append(&arr[k], "{", 1);
    for (size_t j = 0; rc == 0 && j < n; j++) {
        const bp_point_t *p = pts[j];
        const char *sep = j ? "," : "";
        rc = bp_buf_appendf(&arr[2], "%s%" PRId64, sep, scan->from + (int64_t)p->interval * scan->interval_s);
        rc = rc ? rc : bp_buf_append(&arr[3], sep, *sep ? 1 : 0);
        rc = rc ? rc : append_double(&arr[3], p->value_null, "NULL", p->value);
        rc = rc ? rc : bp_buf_append(&arr[4], sep, *sep ? 1 : 0);
        rc = rc ? rc : append_double(&arr[4], p->parts_null, "NULL", p->num);
        rc = rc ? rc : bp_buf_append(&arr[5], sep, *sep ? 1 : 0);
        rc = rc ? rc : append_double(&arr[5], p->parts_null, "NULL", p->den);
        rc = rc ? rc : bp_buf_appendf(&arr[6], "%s%" PRId64, sep, p->events);
    }
    for (int k = 2; rc == 0 && k < 7; k++)
        rc = bp_buf_append(&arr[k], "}", 1);
    if (rc != 0) {
        rc = bp_err_set(err, rc,
                        rc == BP_ENOMEM ? "out of memory writing points" : "points too large to write");
    } else {
        const char *p[7];
        for (int k = 0; k < 7; k++)
            p[k] = arr[k].base;
        rc = bp_db_query(db, bp_agg_sql_write(), p, NULL, err);
    }
    for (int k = 0; k < 7; k++)
        bp_buf_free(&arr[k]);
    return rc;
}

/* The changed points of every metric (which: 0 new, 1 stored, 2 both), upserted in pieces. */
static int write_changed(bp_db_t *db, const bp_scan_t *scan, const bp_metric_points_t *mp, int which,
                         bp_err_t *err)
{
    const bp_point_t **pts = malloc(PIECE_POINTS * sizeof(bp_point_t *));
    const char **names = malloc(PIECE_POINTS * sizeof(char *)),
               **series = malloc(PIECE_POINTS * sizeof(char *));
    int rc = pts == NULL || names == NULL || series == NULL ? bp_err_set(err, BP_ENOMEM, "out of memory") : 0;
    size_t n = 0, bytes = 0;
    for (size_t i = 0; rc == 0 && i < scan->num_metrics; i++) {
        const bp_scan_metric_t *sm = &scan->metrics[i];
        for (size_t j = 0; rc == 0 && j < mp[i].n; j++) {
            if (!selected(&mp[i].pts[j], which))
                continue;
            pts[n] = &mp[i].pts[j];
            names[n] = sm->m->name;
            series[n] = bp_strtab_str(&sm->series, mp[i].pts[j].series);
            bytes += strlen(series[n++]) + 64;
            if (n == PIECE_POINTS || bytes >= PIECE_BYTES) {
                rc = upsert_piece(db, scan, pts, names, series, n, err);
                n = bytes = 0;
            }
        }
    }
    if (rc == 0 && n > 0)
        rc = upsert_piece(db, scan, pts, names, series, n, err);
    free(pts);
    free(names);
    free(series);
    return rc;
}

int bp_points_sync(bp_db_t *db, const bp_scan_t *scan, bp_metric_points_t *mp, bp_err_t *err)
{
    /* the (metric, series) pairs of the window, and per metric where each of its points is */
    size_t npairs = 0;
    for (size_t i = 0; i < scan->num_metrics; i++)
        npairs += scan->metrics[i].series.n;
    const char **names = malloc((npairs + 1) * sizeof(char *)),
               **series = malloc((npairs + 1) * sizeof(char *));
    uint32_t *pair_metric = malloc((npairs + 1) * sizeof(uint32_t)),
             *pair_series = malloc((npairs + 1) * sizeof(uint32_t));
    bp_u64map_t *where = calloc(scan->num_metrics + 1, sizeof(bp_u64map_t));
    bool *listed = NULL;
    bp_buf_t a_names, a_series;
    bp_buf_init(&a_names, ARRAY_MAX);
    bp_buf_init(&a_series, ARRAY_MAX);
    PGresult *res = NULL;
    int rc = names == NULL || series == NULL || pair_metric == NULL || pair_series == NULL || where == NULL
                 ? BP_ENOMEM
                 : 0;
    size_t np = 0;
    for (size_t i = 0; rc == 0 && i < scan->num_metrics; i++) {
        const bp_scan_metric_t *sm = &scan->metrics[i];
        free(listed);
        if ((listed = calloc(sm->series.n + 1, sizeof(bool))) == NULL) {
            rc = BP_ENOMEM;
            break;
        }
        for (size_t j = 0; rc == 0 && j < mp[i].n; j++) {
            const bp_point_t *p = &mp[i].pts[j];
            uint32_t unused;
            rc = bp_u64map_upsert(&where[i], (uint64_t)p->series << 32 | p->interval, (uint32_t)j, &unused,
                                  NULL);
            if (!listed[p->series]) {
                listed[p->series] = true;
                names[np] = sm->m->name;
                series[np] = bp_strtab_str(&sm->series, p->series);
                pair_metric[np] = (uint32_t)i;
                pair_series[np++] = p->series;
            }
        }
    }
    free(listed);
    if (rc == 0)
        rc = bp_db_append_text_array(&a_names, names, np);
    if (rc == 0)
        rc = bp_db_append_text_array(&a_series, series, np);
    if (rc != 0) {
        rc = bp_err_set(
            err, rc, rc == BP_ENOMEM ? "out of memory comparing the window" : "too many series to compare");
        goto out;
    }
    for (size_t i = 0; i < scan->num_metrics; i++) {
        for (size_t j = 0; j < mp[i].n; j++)
            mp[i].pts[j].changed = true; /* until a stored row says otherwise */
        mp[i].num_changed = mp[i].n;
    }
    char s_from[24], s_to[24];
    snprintf(s_from, sizeof(s_from), "%" PRId64, scan->from);
    snprintf(s_to, sizeof(s_to), "%" PRId64, scan->to);
    const char *p[] = {a_names.base, a_series.base, s_from, s_to};
    if ((rc = bp_db_query_bin(db, bp_agg_sql_stored(), p, NULL, NULL, BP_DB_BINARY, &res, err)) != 0)
        goto out;
    for (int r = 0; r < PQntuples(res); r++) {
        int64_t pair = bp_db_bin_int8(PQgetvalue(res, r, 0)) - 1, ts = bp_db_bin_int8(PQgetvalue(res, r, 1));
        if (pair < 0 || (size_t)pair >= np || (ts - scan->from) % scan->interval_s != 0)
            continue; /* a row off this metric's interval grid (written by hand): left alone */
        uint32_t i = pair_metric[pair], j;
        uint64_t key = (uint64_t)pair_series[pair] << 32 | (uint32_t)((ts - scan->from) / scan->interval_s);
        if (!bp_u64map_find(&where[i], key, &j))
            continue;
        bp_point_t *pt = &mp[i].pts[j];
        pt->stored = true;
        if (pt->changed && same(res, r, pt)) {
            pt->changed = false;
            mp[i].num_changed--;
        }
    }
    for (size_t i = 0; i < scan->num_metrics; i++)
        for (size_t j = 0; j < mp[i].n; j++)
            if (mp[i].pts[j].if_stored && !mp[i].pts[j].stored) {
                mp[i].pts[j].changed = false;
                mp[i].num_changed--;
            }
    size_t fresh = 0;
    for (size_t i = 0; i < scan->num_metrics; i++)
        for (size_t j = 0; j < mp[i].n; j++)
            fresh += selected(&mp[i].pts[j], 0);
    if (fresh < COPY_MIN)
        rc = write_changed(db, scan, mp, 2, err);
    else if ((rc = copy_new(db, scan, mp, err)) == 0)
        rc = write_changed(db, scan, mp, 1, err);
out:
    PQclear(res);
    if (where != NULL)
        for (size_t i = 0; i < scan->num_metrics; i++)
            bp_u64map_free(&where[i]);
    free(where);
    free(names);
    free(series);
    free(pair_metric);
    free(pair_series);
    bp_buf_free(&a_names);
    bp_buf_free(&a_series);
    return rc;
}

void bp_points_free(bp_metric_points_t *mp)
{
    free(mp->pts);
    memset(mp, 0, sizeof(*mp));
}
