#include "scan.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"

#define SCAN_CHUNK_ROWS 100000        /* events per query, about: bounds a result's memory */
#define FIRST_CHUNK_S 900             /* a steady tick's window (lateness + a minute) in one query */
#define KEY_VALUE_MAX 256             /* escaped bytes of one dimension value kept in a series key */
#define PG_EPOCH_US 946684800000000LL /* 2000-01-01 in Unix microseconds: timestamptz's zero */

/* What a scan row carries besides type and timestamp. Columns are planned over the whole
 * configuration, so the statement text depends on nothing but the configuration. */
typedef enum { COL_TEXT, COL_NUM, COL_FILTER } col_kind_t;

typedef struct {
    col_kind_t kind;
    const char *arg;  /* payload field, or filter JSON */
    const char *type; /* the first event type it is read for */
    bool multi;       /* read for more than one event type in the configuration: ANY($n) */
} col_t;

/* Numbers, and strings that are plainly numbers, as numeric text; anything else is NULL and
 * does not count toward a sum. Every %1$s is the field's parameter number. */
static const char numval_fmt[] =
    ", CASE WHEN e.event_type %2$s THEN CASE jsonb_typeof(e.payload -> $%1$s::text)"
    " WHEN 'number' THEN e.payload ->> $%1$s::text"
    " WHEN 'string' THEN CASE WHEN e.payload ->> $%1$s::text ~"
    " '^\\s*[-+]?([0-9]+\\.?[0-9]*|\\.[0-9]+)([eE][-+]?[0-9]{1,3})?\\s*$'"
    " THEN (e.payload ->> $%1$s::text)::numeric::text END END END";

static int add_col(col_t *cols, size_t *n, col_kind_t kind, const char *arg)
{
    for (size_t i = 0; i < *n; i++)
        if (cols[i].kind == kind && strcmp(cols[i].arg, arg) == 0)
            return (int)i;
    cols[*n] = (col_t){kind, arg, NULL, false};
    return (int)(*n)++;
}

/* Where metric m's inputs sit among cols (adding columns as needed). */
static void plan_metric(const bp_metric_t *m, col_t *cols, size_t *n, int *a_filter, int *b_filter,
                        int *field_col, int *dim_cols)
{
    const bp_event_sel_t *a = m->kind == BP_KIND_RATIO ? &m->num : &m->sel;
    *a_filter = a->filter_json ? add_col(cols, n, COL_FILTER, a->filter_json) : -1;
    *b_filter = m->kind == BP_KIND_RATIO && m->den.filter_json
                    ? add_col(cols, n, COL_FILTER, m->den.filter_json)
                    : -1;
    *field_col = m->kind == BP_KIND_SUM        ? add_col(cols, n, COL_NUM, m->field)
                 : m->kind == BP_KIND_DISTINCT ? add_col(cols, n, COL_TEXT, m->field)
                                               : -1;
    for (size_t d = 0; d < BP_CONFIG_MAX_DIMENSIONS; d++)
        dim_cols[d] = d < m->num_dimensions ? add_col(cols, n, COL_TEXT, m->dimensions[d]) : -1;
}

/* Columns never exceed 3 + dimensions per metric. */
static size_t max_cols(const bp_config_t *cfg)
{
    return cfg->num_metrics * (3 + BP_CONFIG_MAX_DIMENSIONS) + 1;
}

/* The event types (at most two) whose events metric m needs column c of. */
static size_t column_users(const bp_metric_t *m, int a_filter, int b_filter, int field_col,
                           const int *dim_cols, int c, const char **out)
{
    bool a = field_col == c || a_filter == c, b = b_filter == c;
    for (size_t d = 0; d < BP_CONFIG_MAX_DIMENSIONS; d++)
        if (dim_cols[d] == c)
            a = b = true; /* a key is needed for every event of the metric */
    size_t n = 0;
    if (a)
        out[n++] = m->kind == BP_KIND_RATIO ? m->num.event_type : m->sel.event_type;
    if (b && m->kind == BP_KIND_RATIO)
        out[n++] = m->den.event_type;
    return n;
}

static size_t add_name(const char **names, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(names[i], name) == 0)
            return n;
    names[n] = name;
    return n + 1;
}

static size_t plan(const bp_config_t *cfg, col_t *cols)
{
    size_t n = 0;
    for (size_t i = 0; i < cfg->num_metrics; i++) {
        const bp_metric_t *m = &cfg->metrics[i];
        int a, b, f, d[BP_CONFIG_MAX_DIMENSIONS];
        plan_metric(m, cols, &n, &a, &b, &f, d);
        /* single-type columns test with '=': cheaper per event than ANY over an array */
        int used[3 + BP_CONFIG_MAX_DIMENSIONS] = {a, b, f, d[0], d[1], d[2], d[3]};
        for (size_t k = 0; k < sizeof(used) / sizeof(used[0]); k++) {
            const char *users[2];
            size_t nu = used[k] < 0 ? 0 : column_users(m, a, b, f, d, used[k], users);
            for (size_t u = 0; u < nu; u++) {
                col_t *col = &cols[used[k]];
                if (col->type == NULL)
                    col->type = users[u];
                else if (strcmp(col->type, users[u]) != 0)
                    col->multi = true;
            }
        }
    }
    return n;
}

/* The columns' type tests compare COLLATE "C": equality is bytewise under every deterministic
 * collation anyway, and the database's default one costs a collation lookup per test (8% of a
 * scan). Not the WHERE clause: there the column's own collation lets the planner read a few
 * rare types through (event_type, event_timestamp) (4x faster for a one-metric catch-up).
 * $1 group types, $2 from, $3 to; column c: $(4+2c) the types that need it, $(5+2c) its
 * field or filter. Only placeholders are generated: no value from the configuration or an
 * event ever becomes SQL text. */
static int statement_text(const col_t *cols, size_t n, bp_buf_t *sql)
{
    int rc = bp_buf_appendf(sql, "SELECT e.event_type, e.event_timestamp");
    for (size_t c = 0; rc == 0 && c < n; c++) {
        char test[64], p[24];
        if (cols[c].multi)
            snprintf(test, sizeof(test), "COLLATE \"C\" = ANY($%zu::text[])", 4 + 2 * c);
        else
            snprintf(test, sizeof(test), "COLLATE \"C\" = $%zu::text", 4 + 2 * c);
        snprintf(p, sizeof(p), "%zu", 5 + 2 * c);
        switch (cols[c].kind) {
        case COL_TEXT:
            rc = bp_buf_appendf(sql, ", CASE WHEN e.event_type %s THEN e.payload ->> $%s::text END", test, p);
            break;
        case COL_NUM:
            rc = bp_buf_appendf(sql, numval_fmt, p, test);
            break;
        case COL_FILTER:
            rc = bp_buf_appendf(sql, ", CASE WHEN e.event_type %s THEN e.payload @> $%s::jsonb END", test, p);
            break;
        }
    }
    return rc ? rc
              : bp_buf_appendf(sql, " FROM business_events e WHERE e.event_type = ANY($1::text[])"
                                    " AND e.event_timestamp >= to_timestamp($2::bigint)"
                                    " AND e.event_timestamp < to_timestamp($3::bigint)");
}

int bp_scan_init(bp_scan_t *scan, const bp_metric_t *const *metrics, size_t n, int64_t from, int64_t to,
                 bp_err_t *err)
{
    memset(scan, 0, sizeof(*scan));
    scan->from = from;
    scan->to = to;
    scan->interval_s = n > 0 ? metrics[0]->interval_s : 60;
    scan->metrics = calloc(n + 1, sizeof(bp_scan_metric_t));
    if (scan->metrics == NULL)
        return bp_err_set(err, BP_ENOMEM, "out of memory");
    scan->num_metrics = n;
    size_t nint = (size_t)((to - from) / scan->interval_s);
    for (size_t i = 0; i < n; i++) {
        bp_scan_metric_t *sm = &scan->metrics[i];
        uint32_t id;
        sm->m = metrics[i];
        sm->num_intervals = (uint32_t)nint;
        if ((sm->total_acc = malloc((nint + 1) * sizeof(uint32_t))) == NULL)
            return bp_err_set(err, BP_ENOMEM, "out of memory");
        memset(sm->total_acc, 0xff, (nint + 1) * sizeof(uint32_t));
        const bp_event_sel_t *a = sm->m->kind == BP_KIND_RATIO ? &sm->m->num : &sm->m->sel;
        if (bp_strtab_intern(&sm->series, "", 0, &id, NULL) != 0 ||
            bp_strtab_intern(&scan->types, a->event_type, strlen(a->event_type), &id, NULL) != 0)
            return bp_err_set(err, BP_ENOMEM, "out of memory");
        sm->a_type = (int)id;
        sm->b_type = -1;
        if (sm->m->kind == BP_KIND_RATIO) {
            if (bp_strtab_intern(&scan->types, sm->m->den.event_type, strlen(sm->m->den.event_type), &id,
                                 NULL) != 0)
                return bp_err_set(err, BP_ENOMEM, "out of memory");
            sm->b_type = (int)id;
        }
    }
    return 0;
}

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return q - ((a % b != 0) && ((a < 0) != (b < 0)));
}

static bp_acc_t *acc_of(bp_scan_metric_t *sm, uint32_t series, uint32_t interval, uint32_t *idx)
{
    if (series == 0 && sm->total_acc[interval] != UINT32_MAX) {
        *idx = sm->total_acc[interval];
        return &sm->accs[*idx];
    }
    bool added;
    if (bp_u64map_upsert(&sm->index, (uint64_t)series << 32 | interval, sm->num_accs, idx, &added) != 0)
        return NULL;
    if (added) {
        if (sm->num_accs == sm->cap_accs) {
            uint32_t cap = sm->cap_accs ? sm->cap_accs * 2 : 256;
            bp_acc_t *accs = realloc(sm->accs, cap * sizeof(bp_acc_t));
            if (accs == NULL)
                return NULL;
            sm->accs = accs;
            uint32_t *s = realloc(sm->acc_series, cap * sizeof(uint32_t));
            if (s == NULL)
                return NULL;
            sm->acc_series = s;
            uint32_t *iv = realloc(sm->acc_interval, cap * sizeof(uint32_t));
            if (iv == NULL)
                return NULL;
            sm->acc_interval = iv;
            sm->cap_accs = cap;
        }
        memset(&sm->accs[*idx], 0, sizeof(bp_acc_t));
        sm->acc_series[*idx] = series;
        sm->acc_interval[*idx] = interval;
        sm->num_accs++;
        if (series == 0)
            sm->total_acc[interval] = *idx;
    }
    return &sm->accs[*idx];
}

const bp_acc_t *bp_scan_acc(const bp_scan_metric_t *sm, uint32_t series, uint32_t interval)
{
    uint32_t idx;
    return bp_u64map_find(&sm->index, (uint64_t)series << 32 | interval, &idx) ? &sm->accs[idx] : NULL;
}

/* Appends "name=value" with ',' '=' '%' escaped as the SQL version did, so keys stay what they
 * were; a value longer than KEY_VALUE_MAX bytes is cut (at a character boundary) and ends in a
 * hash of all of it, so no payload can make
 * a key too long for the index. */
static int append_dim(bp_buf_t *key, const char *name, const char *v, size_t len, bool null)
{
    int rc = key->len ? bp_buf_append(key, ",", 1) : 0;
    rc = rc ? rc : bp_buf_append(key, name, strlen(name));
    rc = rc ? rc : bp_buf_append(key, "=", 1);
    if (null || rc != 0)
        return rc ? rc : bp_buf_append(key, "(none)", 6);
    size_t start = key->len, i = 0;
    while (rc == 0 && i < len) {
        size_t run = i;
        while (run < len && v[run] != '%' && v[run] != ',' && v[run] != '=')
            run++;
        rc = bp_buf_append(key, v + i, run - i);
        if (rc == 0 && run < len)
            rc = bp_buf_append(key, v[run] == '%' ? "%25" : v[run] == ',' ? "%2C" : "%3D", 3);
        i = run + 1;
    }
    if (rc == 0 && key->len - start > KEY_VALUE_MAX) {
        /* cut, then drop a partial escape or UTF-8 sequence at the cut; a hash of the whole
         * value keeps two long values that share the kept part apart */
        size_t j = start + KEY_VALUE_MAX - 17;
        if (key->base[j - 1] == '%')
            j -= 1;
        else if (key->base[j - 2] == '%')
            j -= 2;
        while (j > start && ((unsigned char)key->base[j] & 0xC0) == 0x80)
            j--;
        uint64_t h = 1469598103934665603ULL;
        for (size_t k = 0; k < len; k++)
            h = (h ^ (unsigned char)v[k]) * 1099511628211ULL;
        key->len = j;
        rc = bp_buf_appendf(key, "~%016" PRIx64, h);
    }
    return rc;
}

/* Accumulates one event into metric sm. */
static int accumulate(bp_scan_t *scan, bp_scan_metric_t *sm, const PGresult *res, int r, int type,
                      uint32_t iv, bp_buf_t *key)
{
    uint32_t sid = 0, idx[2];
    int nacc = 1;
    const bp_metric_t *m = sm->m;
    if (m->num_dimensions > 0) {
        bp_buf_reset(key);
        for (size_t d = 0; d < m->num_dimensions; d++) {
            int c = sm->dim_cols[d] + 2;
            if (append_dim(key, m->dimensions[d], PQgetvalue(res, r, c), (size_t)PQgetlength(res, r, c),
                           PQgetisnull(res, r, c)) != 0)
                return BP_ENOMEM;
        }
        if (bp_strtab_intern(&sm->series, key->base, key->len, &sid, NULL) != 0)
            return BP_ENOMEM;
        nacc = 2;
    }
    /* indices first: the second lookup may move the accumulators */
    if (acc_of(sm, 0, iv, &idx[0]) == NULL || (nacc == 2 && acc_of(sm, sid, iv, &idx[1]) == NULL))
        return BP_ENOMEM;
    bool a = type == sm->a_type && (sm->a_filter < 0 || (!PQgetisnull(res, r, sm->a_filter + 2) &&
                                                         PQgetvalue(res, r, sm->a_filter + 2)[0]));
    bool b = type == sm->b_type && (sm->b_filter < 0 || (!PQgetisnull(res, r, sm->b_filter + 2) &&
                                                         PQgetvalue(res, r, sm->b_filter + 2)[0]));
    int fc = sm->field_col + 2;
    bool field = a && sm->field_col >= 0 && !PQgetisnull(res, r, fc);
    uint32_t vid = 0;
    if (field && m->kind == BP_KIND_DISTINCT &&
        bp_strtab_intern(&scan->values, PQgetvalue(res, r, fc), (size_t)PQgetlength(res, r, fc), &vid,
                         NULL) != 0)
        return BP_ENOMEM;
    for (int k = 0; k < nacc; k++) {
        bp_acc_t *x = &sm->accs[idx[k]];
        x->rows++;
        x->a += a;
        x->b += b;
        if (!field)
            continue;
        if (m->kind == BP_KIND_SUM) {
            bp_decsum_add(&x->sum, PQgetvalue(res, r, fc), (size_t)PQgetlength(res, r, fc));
        } else {
            uint32_t unused;
            bool added;
            if (bp_u64map_upsert(&sm->values, (uint64_t)idx[k] << 32 | vid, 0, &unused, &added) != 0)
                return BP_ENOMEM;
            x->distinct += added;
        }
    }
    return 0;
}

/* Column c's type parameter for this group: a text[] of the types whose events need it when
 * the column is multi, else the one type or NULL (*out NULL too). */
static int column_types(const bp_scan_t *scan, const col_t *col, size_t c, bp_buf_t *buf, const char **out)
{
    const char **names = calloc(2 * scan->num_metrics + 1, sizeof(char *)), *users[2];
    if (names == NULL)
        return BP_ENOMEM;
    size_t n = 0;
    for (size_t i = 0; i < scan->num_metrics; i++) {
        const bp_scan_metric_t *sm = &scan->metrics[i];
        size_t nu =
            column_users(sm->m, sm->a_filter, sm->b_filter, sm->field_col, sm->dim_cols, (int)c, users);
        for (size_t u = 0; u < nu; u++)
            n = add_name(names, n, users[u]);
    }
    int rc = 0;
    if (col->multi) {
        rc = bp_db_append_text_array(buf, names, n);
        *out = buf->base;
    } else {
        *out = n > 0 ? names[0] : NULL;
    }
    free(names);
    return rc;
}

/* What accumulating a chunk's rows needs. Touched by one thread at a time: the caller's, or
 * the accumulating thread of a multi-chunk window. */
typedef struct {
    bp_scan_t *scan;
    size_t *type_count;              /* by type: how many metrics read it */
    bp_scan_metric_t **type_metrics; /* by type: those metrics, num_metrics + 1 apart */
    bp_buf_t key;
} consumer_t;

/* Accumulates one chunk's rows, then forgets what only that chunk needed. Frees res. */
static int consume(consumer_t *c, PGresult *res)
{
    bp_scan_t *scan = c->scan;
    int64_t iv = scan->interval_s, nint = (scan->to - scan->from) / iv;
    int rc = 0, nrows = PQntuples(res);
    for (int r = 0; rc == 0 && r < nrows; r++) {
        int64_t t = bp_strtab_find(&scan->types, PQgetvalue(res, r, 0), (size_t)PQgetlength(res, r, 0));
        if (t < 0)
            continue;
        int64_t us = bp_db_bin_int8(PQgetvalue(res, r, 1)) + PG_EPOCH_US;
        int64_t slot = floor_div(us, iv * 1000000) - scan->from / iv;
        if (slot < 0 || slot >= nint)
            continue;
        if (scan->tally.n != NULL)
            bp_counts_add(&scan->tally, PQgetvalue(res, r, 0), (size_t)PQgetlength(res, r, 0),
                          floor_div(us, 1000000));
        bp_scan_metric_t **ms = &c->type_metrics[t * (int64_t)(scan->num_metrics + 1)];
        for (size_t k = 0; rc == 0 && k < c->type_count[t]; k++)
            rc = accumulate(scan, ms[k], res, r, (int)t, (uint32_t)slot, &c->key);
    }
    PQclear(res);
    /* Intervals never straddle chunks, so distinct values need only be told apart within one:
     * the tables stay chunk-sized. (value, accumulator) pairs are kept for a metric with
     * dimensions, whose series the cap may still fold (ids stay distinct per chunk). */
    bp_strtab_reset(&scan->values);
    for (size_t i = 0; i < scan->num_metrics; i++)
        if (scan->metrics[i].m->num_dimensions == 0)
            bp_u64map_reset(&scan->metrics[i].values);
    return rc;
}

/* A catch-up batch spans many chunks: a second thread accumulates chunk k while PostgreSQL
 * produces chunk k+1 (the two take about the same time; on two cores this hides most of the
 * accumulating). One slot between them: at most two results in memory. */
typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    PGresult *slot;
    bool closed;
    int rc;
    consumer_t *c;
} handoff_t;

static void *consumer_main(void *arg)
{
    handoff_t *h = arg;
    for (;;) {
        pthread_mutex_lock(&h->mu);
        while (h->slot == NULL && !h->closed)
            pthread_cond_wait(&h->cv, &h->mu);
        PGresult *res = h->slot;
        h->slot = NULL;
        bool failed = h->rc != 0;
        pthread_cond_broadcast(&h->cv);
        pthread_mutex_unlock(&h->mu);
        if (res == NULL)
            return NULL;
        if (failed) {
            PQclear(res);
            continue;
        }
        int rc = consume(h->c, res);
        if (rc != 0) {
            pthread_mutex_lock(&h->mu);
            h->rc = rc;
            pthread_cond_broadcast(&h->cv);
            pthread_mutex_unlock(&h->mu);
        }
    }
}

/* Hands res over (waiting for the slot). The consumer's error, if it has failed. */
static int hand_over(handoff_t *h, PGresult *res)
{
    pthread_mutex_lock(&h->mu);
    while (h->slot != NULL && h->rc == 0)
        pthread_cond_wait(&h->cv, &h->mu);
    int rc = h->rc;
    if (rc == 0) {
        h->slot = res;
        pthread_cond_broadcast(&h->cv);
    }
    pthread_mutex_unlock(&h->mu);
    if (rc != 0)
        PQclear(res);
    return rc;
}

static int close_handoff(handoff_t *h, pthread_t thread)
{
    pthread_mutex_lock(&h->mu);
    h->closed = true;
    pthread_cond_broadcast(&h->cv);
    pthread_mutex_unlock(&h->mu);
    pthread_join(thread, NULL);
    return h->rc;
}

/* The statement's parameters for this group: $1 its types, column c's types and argument. */
static int group_params(bp_scan_t *scan, const col_t *cols, size_t ncols, bp_buf_t *bufs, const char **params)
{
    bp_buf_init(&bufs[ncols], 1u << 20);
    int rc = bp_db_append_text_array(&bufs[ncols], (const char *const *)scan->types.strs, scan->types.n);
    params[0] = bufs[ncols].base;
    for (size_t c = 0; rc == 0 && c < ncols; c++) {
        bp_buf_init(&bufs[c], 1u << 20);
        rc = column_types(scan, &cols[c], c, &bufs[c], &params[3 + 2 * c]);
        params[4 + 2 * c] = cols[c].arg;
    }
    return rc;
}

/* Queries the window chunk by chunk, each about SCAN_CHUNK_ROWS events in whole intervals,
 * handing every result to h (or, without one, accumulating it here), until the window or
 * max_events events are read; *read_to is where reading stopped. scan->to stays put
 * meanwhile: the accumulating thread reads it. */
static int read_chunks(bp_db_t *db, const bp_db_stmt_t *stmt, const char **params, consumer_t *c,
                       handoff_t *h, int64_t *read_to, bp_err_t *err)
{
    bp_scan_t *scan = c->scan;
    int64_t iv = scan->interval_s, span = FIRST_CHUNK_S > iv ? FIRST_CHUNK_S / iv * iv : iv;
    int rc = 0;
    *read_to = scan->from;
    for (int64_t at = scan->from;
         rc == 0 && at < scan->to && (scan->max_events == 0 || scan->events < scan->max_events);) {
        int64_t end = at + span < scan->to ? at + span : scan->to;
        char s_from[24], s_to[24];
        snprintf(s_from, sizeof(s_from), "%" PRId64, at);
        snprintf(s_to, sizeof(s_to), "%" PRId64, end);
        params[1] = s_from;
        params[2] = s_to;
        PGresult *res = NULL;
        if ((rc = bp_db_query_bin(db, stmt, params, NULL, NULL, BP_DB_BINARY, &res, err)) != 0)
            return rc;
        int nrows = PQntuples(res);
        scan->events += (uint64_t)nrows;
        if ((rc = h ? hand_over(h, res) : consume(c, res)) != 0)
            return bp_err_set(err, rc, "out of memory aggregating the window");
        *read_to = end;
        /* the next chunk: about SCAN_CHUNK_ROWS events, and no more than max_events leaves */
        uint64_t left = scan->max_events > scan->events ? scan->max_events - scan->events : 0;
        double target = scan->max_events > 0 && left < SCAN_CHUNK_ROWS ? (double)left : SCAN_CHUNK_ROWS;
        int64_t want = nrows > 0 ? (int64_t)((double)span * target / nrows) : span * 8;
        if (want > span * 8)
            want = span * 8;
        span = want / iv * iv > iv ? want / iv * iv : iv;
        at = end;
    }
    return 0;
}

int bp_scan_run(bp_db_t *db, const bp_config_t *cfg, bp_scan_t *scan, bp_err_t *err)
{
    size_t ncols_max = max_cols(cfg), ntypes = scan->types.n;
    col_t *cols = calloc(ncols_max, sizeof(col_t));
    const char **params = calloc(3 + 2 * ncols_max, sizeof(char *));
    bp_buf_t *bufs = calloc(ncols_max + 1, sizeof(bp_buf_t));
    consumer_t c = {.scan = scan,
                    .type_count = calloc(ntypes + 1, sizeof(size_t)),
                    .type_metrics = calloc(ntypes * (scan->num_metrics + 1) + 1, sizeof(void *))};
    bp_buf_t sql;
    bp_buf_init(&sql, 1u << 20);
    bp_buf_init(&c.key, 1u << 16);
    int rc = cols == NULL || params == NULL || bufs == NULL || c.type_count == NULL || c.type_metrics == NULL
                 ? bp_err_set(err, BP_ENOMEM, "out of memory")
                 : 0;
    if (rc != 0)
        goto out;
    size_t ncols = plan(cfg, cols);
    for (size_t i = 0; i < scan->num_metrics; i++) {
        bp_scan_metric_t *sm = &scan->metrics[i];
        size_t n = ncols; /* every column exists already: plan() saw the whole configuration */
        plan_metric(sm->m, cols, &n, &sm->a_filter, &sm->b_filter, &sm->field_col, sm->dim_cols);
        for (size_t t = 0; t < ntypes; t++)
            if ((int)t == sm->a_type || (int)t == sm->b_type)
                c.type_metrics[t * (scan->num_metrics + 1) + c.type_count[t]++] = sm;
    }
    if ((rc = group_params(scan, cols, ncols, bufs, params)) != 0 ||
        (rc = statement_text(cols, ncols, &sql)) != 0) {
        rc = bp_err_set(err, rc, "cannot build the scan statement");
        goto out;
    }
    const bp_db_stmt_t stmt = {"bp_agg_scan", sql.base, (int)(3 + 2 * ncols)};
    handoff_t h = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER, .c = &c};
    int64_t read_to = scan->from;
    pthread_t thread;
    if (scan->to - scan->from <= FIRST_CHUNK_S || pthread_create(&thread, NULL, consumer_main, &h) != 0) {
        rc = read_chunks(db, &stmt, params, &c, NULL, &read_to, err); /* one chunk (a tick), or no thread */
    } else {
        rc = read_chunks(db, &stmt, params, &c, &h, &read_to, err);
        int crc = close_handoff(&h, thread);
        if (rc == 0 && crc != 0)
            rc = bp_err_set(err, crc, "out of memory aggregating the window");
    }
    if (rc == 0)
        scan->to = read_to;
out:
    if (bufs != NULL)
        for (size_t i = 0; i <= ncols_max; i++)
            bp_buf_free(&bufs[i]);
    free(bufs);
    free(cols);
    free(params);
    free(c.type_count);
    free(c.type_metrics);
    bp_buf_free(&sql);
    bp_buf_free(&c.key);
    return rc;
}

int bp_scan_fold(bp_scan_metric_t *sm, const bool *keep, bp_err_t *err)
{
    uint32_t other;
    if (bp_strtab_intern(&sm->series, "other", 5, &other, NULL) != 0)
        return bp_err_set(err, BP_ENOMEM, "out of memory");
    bp_scan_metric_t old = *sm;
    sm->index = (bp_u64map_t){0};
    sm->values = (bp_u64map_t){0};
    sm->accs = NULL;
    sm->acc_series = sm->acc_interval = NULL;
    sm->num_accs = sm->cap_accs = 0;
    memset(sm->total_acc, 0xff, ((size_t)(sm->num_intervals) + 1) * sizeof(uint32_t));
    uint32_t *remap = malloc((old.num_accs + 1) * sizeof(uint32_t));
    int rc = remap == NULL ? BP_ENOMEM : 0;
    for (uint32_t i = 0; rc == 0 && i < old.num_accs; i++) {
        uint32_t s = old.acc_series[i];
        if (s != 0 && s != other && !keep[s])
            s = other;
        bp_acc_t *to = acc_of(sm, s, old.acc_interval[i], &remap[i]);
        if (to == NULL) {
            rc = BP_ENOMEM;
            break;
        }
        const bp_acc_t *from = &old.accs[i];
        to->rows += from->rows;
        to->a += from->a;
        to->b += from->b;
        bp_decsum_merge(&to->sum, &from->sum);
    }
    /* distinct sets are unions, not sums: recount from the (accumulator, value) pairs */
    for (size_t j = 0; rc == 0 && j < old.values.cap; j++) {
        if (old.values.vals[j] == UINT32_MAX)
            continue;
        uint32_t acc = remap[old.values.keys[j] >> 32], vid = (uint32_t)old.values.keys[j], unused;
        bool added;
        if (bp_u64map_upsert(&sm->values, (uint64_t)acc << 32 | vid, 0, &unused, &added) != 0)
            rc = BP_ENOMEM;
        else
            sm->accs[acc].distinct += added;
    }
    free(remap);
    bp_u64map_free(&old.index);
    bp_u64map_free(&old.values);
    free(old.accs);
    free(old.acc_series);
    free(old.acc_interval);
    return rc != 0 ? bp_err_set(err, rc, "out of memory folding series") : 0;
}

void bp_scan_free(bp_scan_t *scan)
{
    for (size_t i = 0; i < scan->num_metrics; i++) {
        bp_scan_metric_t *sm = &scan->metrics[i];
        bp_strtab_free(&sm->series);
        bp_u64map_free(&sm->index);
        bp_u64map_free(&sm->values);
        free(sm->accs);
        free(sm->acc_series);
        free(sm->acc_interval);
        free(sm->total_acc);
    }
    free(scan->metrics);
    bp_strtab_free(&scan->types);
    bp_strtab_free(&scan->values);
    bp_counts_free(&scan->tally);
    memset(scan, 0, sizeof(*scan));
}
