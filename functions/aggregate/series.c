#include "series.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"

static const bp_db_stmt_t load_sql = {
    "bp_series_load",
    "SELECT u.i, s.series, extract(epoch FROM s.last_seen)::bigint AS last_seen"
    " FROM unnest($1::text[]) WITH ORDINALITY AS u(n, i) JOIN metric_series s ON s.metric_name = u.n"
    " ORDER BY u.i, s.series COLLATE \"C\"",
    1};

static const bp_db_stmt_t touch_sql = {
    "bp_series_touch",
    "INSERT INTO metric_series (metric_name, series, first_seen, last_seen)"
    " SELECT DISTINCT u.m, u.s, to_timestamp($3::bigint), to_timestamp($3::bigint)"
    " FROM unnest($1::text[], $2::text[]) AS u(m, s)"
    " ON CONFLICT (metric_name, series) DO UPDATE"
    " SET last_seen = greatest(metric_series.last_seen, EXCLUDED.last_seen)",
    3};

int bp_series_load(bp_db_t *db, const char *const *metrics, size_t n, bp_series_set_t *out, bp_err_t *err)
{
    memset(out, 0, n * sizeof(*out));
    bp_buf_t arr;
    bp_buf_init(&arr, 64u << 20);
    PGresult *res = NULL;
    int rc = bp_db_append_text_array(&arr, metrics, n);
    if (rc != 0) {
        bp_buf_free(&arr);
        return bp_err_set(err, rc, "too many metrics");
    }
    const char *p[] = {arr.base};
    rc = bp_db_query(db, &load_sql, p, &res, err);
    bp_buf_free(&arr);
    if (rc != 0)
        return rc;
    size_t rows = (size_t)PQntuples(res);
    size_t *count = calloc(n + 1, sizeof(size_t));
    if (count == NULL) {
        rc = bp_err_set(err, BP_ENOMEM, "out of memory");
        goto out;
    }
    for (size_t r = 0; r < rows; r++) {
        long long i = bp_db_int(res, (int)r, "i") - 1;
        if (i >= 0 && (size_t)i < n)
            count[i]++;
    }
    for (size_t k = 0; rc == 0 && k < n; k++) {
        out[k].names = calloc(count[k] + 1, sizeof(char *));
        out[k].last_seen = calloc(count[k] + 1, sizeof(int64_t));
        if (out[k].names == NULL || out[k].last_seen == NULL)
            rc = bp_err_set(err, BP_ENOMEM, "out of memory");
    }
    free(count);
    if (rc != 0)
        goto out;
    for (size_t r = 0; r < rows; r++) {
        long long i = bp_db_int(res, (int)r, "i") - 1;
        if (i < 0 || (size_t)i >= n)
            continue;
        bp_series_set_t *set = &out[i];
        if ((set->names[set->n] = strdup(bp_db_text(res, (int)r, "series"))) == NULL) {
            rc = bp_err_set(err, BP_ENOMEM, "out of memory");
            goto out;
        }
        set->last_seen[set->n++] = bp_db_int(res, (int)r, "last_seen");
    }
out:
    PQclear(res);
    if (rc != 0)
        for (size_t k = 0; k < n; k++)
            bp_series_clear(&out[k]);
    return rc;
}

static int cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

bool bp_series_has(const bp_series_set_t *set, const char *name)
{
    return set->n > 0 && bsearch(&name, set->names, set->n, sizeof(char *), cmp) != NULL;
}

int bp_series_touch(bp_db_t *db, const char *const *metrics, const char *const *names, size_t n, int64_t seen,
                    bp_err_t *err)
{
    if (n == 0)
        return 0;
    bp_buf_t m_arr, s_arr;
    bp_buf_init(&m_arr, 64u << 20);
    bp_buf_init(&s_arr, 64u << 20);
    char s_seen[24];
    snprintf(s_seen, sizeof(s_seen), "%" PRId64, seen);
    int rc = bp_db_append_text_array(&m_arr, metrics, n);
    rc = rc ? rc : bp_db_append_text_array(&s_arr, names, n);
    if (rc != 0) {
        rc = bp_err_set(err, rc, "too many series to record");
    } else {
        const char *p[] = {m_arr.base, s_arr.base, s_seen};
        rc = bp_db_query(db, &touch_sql, p, NULL, err);
    }
    bp_buf_free(&m_arr);
    bp_buf_free(&s_arr);
    return rc;
}

void bp_series_clear(bp_series_set_t *set)
{
    for (size_t i = 0; i < set->n; i++)
        free(set->names[i]);
    free(set->names);
    free(set->last_seen);
    memset(set, 0, sizeof(*set));
}
