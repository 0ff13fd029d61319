#include "series.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"

static const bp_db_stmt_t load_sql = {
    "bp_series_load",
    "SELECT series, extract(epoch FROM last_seen)::bigint AS last_seen FROM metric_series"
    " WHERE metric_name = $1 ORDER BY series COLLATE \"C\"",
    1};

static const bp_db_stmt_t touch_sql = {
    "bp_series_touch",
    "INSERT INTO metric_series (metric_name, series, first_seen, last_seen)"
    " SELECT DISTINCT $1, s, to_timestamp($3::bigint), to_timestamp($3::bigint) FROM unnest($2::text[]) AS s"
    " ON CONFLICT (metric_name, series) DO UPDATE"
    " SET last_seen = greatest(metric_series.last_seen, EXCLUDED.last_seen)",
    3};

int bp_series_load(bp_db_t *db, const char *metric, bp_series_set_t *out, bp_err_t *err)
{
    memset(out, 0, sizeof(*out));
    const char *p[] = {metric};
    PGresult *res = NULL;
    int rc = bp_db_query(db, &load_sql, p, &res, err);
    if (rc != 0)
        return rc;
    size_t n = (size_t)PQntuples(res);
    out->names = calloc(n + 1, sizeof(char *));
    out->last_seen = calloc(n + 1, sizeof(int64_t));
    if (out->names == NULL || out->last_seen == NULL) {
        rc = bp_err_set(err, BP_ENOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        out->names[i] = strdup(bp_db_text(res, (int)i, "series"));
        if (out->names[i] == NULL) {
            rc = bp_err_set(err, BP_ENOMEM, "out of memory");
            goto out;
        }
        out->last_seen[i] = bp_db_int(res, (int)i, "last_seen");
        out->n++;
    }
out:
    PQclear(res);
    if (rc != 0)
        bp_series_clear(out);
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

int bp_series_touch(bp_db_t *db, const char *metric, const char *const *names, size_t n, int64_t seen,
                    bp_err_t *err)
{
    if (n == 0)
        return 0;
    bp_buf_t arr;
    bp_buf_init(&arr, 64u << 20);
    char s_seen[24];
    snprintf(s_seen, sizeof(s_seen), "%" PRId64, seen);
    int rc = bp_db_append_text_array(&arr, names, n);
    if (rc != 0) {
        bp_buf_free(&arr);
        return bp_err_set(err, rc, "too many series to record");
    }
    const char *p[] = {metric, arr.base, s_seen};
    rc = bp_db_query(db, &touch_sql, p, NULL, err);
    bp_buf_free(&arr);
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
