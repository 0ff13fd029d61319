#include "counts.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One index-only count per wanted (type, minute) on (event_type, event_timestamp): each reads
 * only that type's entries of that minute, where one GROUP BY over the window would hash every
 * event of every type. */
static const bp_db_stmt_t counts_sql = {
    "bp_agg_counts",
    "SELECT p.i, (SELECT count(*) FROM business_events e WHERE e.event_type = p.t"
    "   AND e.event_timestamp >= to_timestamp(p.m) AND e.event_timestamp < to_timestamp(p.m + 60)) AS n"
    " FROM unnest($1::text[], $2::bigint[]) WITH ORDINALITY AS p(t, m, i)",
    2};

#define MINUTE 60

int bp_counts_want(bp_counts_t *c, const bp_metric_t *m, int64_t from, int64_t to, bp_err_t *err)
{
    const char *types[2];
    size_t nt = bp_config_metric_types(m, types);
    for (size_t i = 0; i < nt && from < to; i++) {
        uint32_t id;
        if (bp_strtab_intern(&c->types, types[i], strlen(types[i]), &id, NULL) != 0)
            return bp_err_set(err, BP_ENOMEM, "out of memory");
        if (c->num_wants == c->cap_wants) {
            size_t cap = c->cap_wants ? 2 * c->cap_wants : 16;
            bp_counts_want_t *p = realloc(c->wants, cap * sizeof(*p));
            if (p == NULL)
                return bp_err_set(err, BP_ENOMEM, "out of memory");
            c->wants = p;
            c->cap_wants = cap;
        }
        c->wants[c->num_wants++] = (bp_counts_want_t){id, from, to};
    }
    for (int64_t t = from; t < to; t += MINUTE) {
        if (c->num_minutes == c->cap_minutes) {
            size_t cap = c->cap_minutes ? 2 * c->cap_minutes : 64;
            int64_t *p = realloc(c->minutes, cap * sizeof(int64_t));
            if (p == NULL)
                return bp_err_set(err, BP_ENOMEM, "out of memory");
            c->minutes = p;
            c->cap_minutes = cap;
        }
        c->minutes[c->num_minutes++] = t;
    }
    return 0;
}

/* Sorts the wanted minutes, drops repeats and sets every cell to v. */
static int lay_out(bp_counts_t *c, int64_t v, bp_err_t *err)
{
    qsort(c->minutes, c->num_minutes, sizeof(int64_t), bp_cmp_i64);
    size_t k = 0;
    for (size_t i = 0; i < c->num_minutes; i++)
        if (k == 0 || c->minutes[i] != c->minutes[k - 1])
            c->minutes[k++] = c->minutes[i];
    c->num_minutes = k;
    size_t cells = (size_t)c->types.n * k;
    free(c->n);
    if ((c->n = malloc((cells + 1) * sizeof(int64_t))) == NULL)
        return bp_err_set(err, BP_ENOMEM, "out of memory");
    for (size_t i = 0; i < cells; i++)
        c->n[i] = v;
    return 0;
}

int bp_counts_zero(bp_counts_t *c, bp_err_t *err)
{
    return lay_out(c, 0, err);
}

void bp_counts_add(bp_counts_t *c, const char *type, size_t len, int64_t t)
{
    int64_t minute = t - (t % MINUTE + MINUTE) % MINUTE;
    if (c->num_minutes == 0 || minute < c->minutes[0] || minute > c->minutes[c->num_minutes - 1])
        return;
    const int64_t *at = bsearch(&minute, c->minutes, c->num_minutes, sizeof(int64_t), bp_cmp_i64);
    int64_t id = at != NULL ? bp_strtab_find(&c->types, type, len) : -1;
    if (id >= 0)
        c->n[(size_t)id * c->num_minutes + (size_t)(at - c->minutes)]++;
}

int bp_counts_measure(bp_db_t *db, bp_counts_t *c, bp_err_t *err)
{
    if (c->num_minutes == 0 || c->types.n == 0)
        return 0;
    int rc = lay_out(c, -1, err); /* -1: not measured */
    if (rc != 0)
        return rc;
    /* the wanted cells, each once: a metric's types over its own minutes, not every type over
     * every minute (an hourly window beside 1-minute ones) */
    size_t k = c->num_minutes, cells = (size_t)c->types.n * k, npairs = 0;
    bool *listed = calloc(cells + 1, sizeof(bool));
    size_t *cell_of = malloc((cells + 1) * sizeof(size_t));
    const char **names = malloc((cells + 1) * sizeof(char *));
    int64_t *mins = malloc((cells + 1) * sizeof(int64_t));
    bp_buf_t types, minutes;
    bp_buf_init(&types, 64u << 20);
    bp_buf_init(&minutes, 64u << 20);
    PGresult *res = NULL;
    if (listed == NULL || cell_of == NULL || names == NULL || mins == NULL) {
        rc = bp_err_set(err, BP_ENOMEM, "out of memory");
        goto out;
    }
    for (size_t w = 0; w < c->num_wants; w++) {
        const bp_counts_want_t *want = &c->wants[w];
        for (int64_t t = want->from; t < want->to; t += MINUTE) {
            const int64_t *at = bsearch(&t, c->minutes, k, sizeof(int64_t), bp_cmp_i64);
            size_t cell = (size_t)want->type * k + (size_t)(at - c->minutes);
            if (listed[cell])
                continue;
            listed[cell] = true;
            cell_of[npairs] = cell;
            names[npairs] = bp_strtab_str(&c->types, want->type);
            mins[npairs++] = t;
        }
    }
    if ((rc = bp_db_append_text_array(&types, names, npairs)) != 0 ||
        (rc = bp_db_append_int8_array(&minutes, mins, npairs)) != 0) {
        rc = bp_err_set(err, rc, "too many event types or minutes to count");
        goto out;
    }
    const char *p[] = {types.base, minutes.base};
    if ((rc = bp_db_query(db, &counts_sql, p, &res, err)) != 0)
        goto out;
    for (int r = 0; r < PQntuples(res); r++) {
        long long i = bp_db_int(res, r, "i") - 1;
        if (i >= 0 && (size_t)i < npairs)
            c->n[cell_of[i]] = bp_db_int(res, r, "n");
    }
out:
    PQclear(res);
    bp_buf_free(&types);
    bp_buf_free(&minutes);
    free(listed);
    free(cell_of);
    free(names);
    free(mins);
    return rc;
}

bool bp_counts_get(const bp_counts_t *c, const char *type, int64_t t, int64_t *out)
{
    if (c == NULL || c->n == NULL)
        return false;
    const int64_t *at = bsearch(&t, c->minutes, c->num_minutes, sizeof(int64_t), bp_cmp_i64);
    int64_t id = at != NULL ? bp_strtab_find(&c->types, type, strlen(type)) : -1;
    if (id < 0 || c->n[(size_t)id * c->num_minutes + (size_t)(at - c->minutes)] < 0)
        return false;
    *out = c->n[(size_t)id * c->num_minutes + (size_t)(at - c->minutes)];
    return true;
}

int bp_counts_literal(const bp_counts_t *before, const bp_counts_t *after, int64_t split,
                      const bp_metric_t *m, int64_t from, int64_t to, bp_buf_t *out, bool *counted)
{
    const char *types[2];
    size_t nt = bp_config_metric_types(m, types);
    int64_t v;
    *counted = false;
    for (size_t i = 0; i < nt; i++)
        for (int64_t t = from; t < to; t += MINUTE)
            if (!bp_counts_get(t < split ? before : after, types[i], t, &v))
                return 0;
    size_t mark = out->len;
    int rc = bp_buf_append(out, "{", 1);
    for (size_t i = 0; i < nt; i++)
        for (int64_t t = from; rc == 0 && t < to; t += MINUTE) {
            bp_counts_get(t < split ? before : after, types[i], t, &v);
            rc = bp_buf_appendf(out, "%s%" PRId64, i > 0 || t > from ? "," : "", v);
        }
    if (rc == 0)
        rc = bp_buf_append(out, "}", 1);
    if (rc != 0)
        out->len = mark;
    *counted = rc == 0;
    return rc;
}

int64_t bp_counts_key(const bp_metric_t *m)
{
    uint64_t h = BP_FNV_BASIS;
    char nums[64];
    snprintf(nums, sizeof(nums), "%d/%d/%d", (int)m->kind, m->interval_s, m->max_series);
    bp_fnv_str(&h, nums);
    const bp_event_sel_t *sels[] = {&m->sel, &m->num, &m->den};
    for (size_t i = 0; i < 3; i++) {
        bp_fnv_str(&h, sels[i]->event_type);
        bp_fnv_str(&h, sels[i]->filter_json);
    }
    bp_fnv_str(&h, m->field);
    for (size_t i = 0; i < m->num_dimensions; i++)
        bp_fnv_str(&h, m->dimensions[i]);
    return (int64_t)(h >> 1); /* a bigint, never negative */
}

int bp_counts_parse(const char *lit, int64_t **out, size_t *len)
{
    *out = NULL;
    *len = 0;
    if (lit[0] != '{')
        return BP_EINVAL;
    size_t cap = 1;
    for (const char *s = lit; *s; s++)
        cap += *s == ',';
    int64_t *v = malloc(cap * sizeof(int64_t));
    if (v == NULL)
        return BP_ENOMEM;
    size_t n = 0;
    const char *s = lit + 1;
    if (*s == '}' && s[1] == '\0') {
        *out = v;
        return 0;
    }
    for (;;) {
        char *end;
        errno = 0;
        long long x = strtoll(s, &end, 10);
        if (end == s || errno != 0 || x < 0 || n == cap || (*end != ',' && *end != '}')) {
            free(v);
            return BP_EINVAL;
        }
        v[n++] = x;
        if (*end == '}') {
            if (end[1] != '\0') {
                free(v);
                return BP_EINVAL;
            }
            break;
        }
        s = end + 1;
    }
    *out = v;
    *len = n;
    return 0;
}

void bp_counts_free(bp_counts_t *c)
{
    free(c->wants);
    bp_strtab_free(&c->types);
    free(c->minutes);
    free(c->n);
    memset(c, 0, sizeof(*c));
}
