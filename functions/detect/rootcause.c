#include "rootcause.h"

#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

/* Per series: sums in the incident window and in the baseline before it; the total series
 * also brings the detector's expected values for the window. */
static const bp_db_stmt_t parts_sql = {
    "bp_rc_parts",
    "SELECT series,"
    " coalesce(sum(metric_value) FILTER (WHERE metric_timestamp >= to_timestamp($2::bigint)), 0) AS actual,"
    " coalesce(sum(numerator) FILTER (WHERE metric_timestamp >= to_timestamp($2::bigint)), 0) AS num,"
    " coalesce(sum(denominator) FILTER (WHERE metric_timestamp >= to_timestamp($2::bigint)), 0) AS den,"
    " coalesce(sum(expected) FILTER (WHERE metric_timestamp >= to_timestamp($2::bigint)), 0) AS expected,"
    " coalesce(sum(metric_value) FILTER (WHERE metric_timestamp < to_timestamp($2::bigint)), 0) AS "
    "base_value,"
    " coalesce(sum(numerator) FILTER (WHERE metric_timestamp < to_timestamp($2::bigint)), 0) AS base_num,"
    " coalesce(sum(denominator) FILTER (WHERE metric_timestamp < to_timestamp($2::bigint)), 0) AS base_den"
    " FROM aggregated_metrics WHERE metric_name = $1"
    " AND metric_timestamp >= to_timestamp($2::bigint - $4::bigint) AND metric_timestamp < "
    "to_timestamp($3::bigint)"
    " GROUP BY series",
    4};

typedef struct {
    const char *series;
    double expected, actual, gap;
} part_t;

static int by_gap(const void *a, const void *b)
{
    double x = ((const part_t *)a)->gap, y = ((const part_t *)b)->gap;
    return (x < y) - (x > y);
}

static void add(bp_rootcause_t *rc, const part_t *p, double gap_sum)
{
    bp_contribution_t *c = &rc->top[rc->n++];
    snprintf(c->series, sizeof(c->series), "%s", p->series);
    c->expected = p->expected;
    c->actual = p->actual;
    c->share = p->gap / gap_sum;
}

/* Does the combination "a=1,b=2" contain the single value "b=2"? */
static bool contains(const char *combo, const char *single)
{
    size_t n = strlen(single);
    for (const char *p = combo; p != NULL; p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL)
        if (strncmp(p, single, n) == 0 && (p[n] == ',' || p[n] == '\0'))
            return true;
    return false;
}

#define VALUE_MAX 128

/* Sums the combinations into their single values, sorted by gap. out and names have room for
 * `room` entries; a value longer than VALUE_MAX gives up the roll-up (returns 0). */
static size_t roll_up(const part_t *parts, size_t k, part_t *out, char (*names)[VALUE_MAX], size_t room)
{
    size_t n = 0;
    for (size_t i = 0; i < k; i++) {
        for (const char *p = parts[i].series; p != NULL && *p;) {
            const char *end = strchr(p, ',');
            size_t len = end ? (size_t)(end - p) : strlen(p);
            size_t j = 0;
            while (j < n && !(strlen(out[j].series) == len && strncmp(out[j].series, p, len) == 0))
                j++;
            if (j == n) {
                if (n == room || len >= VALUE_MAX)
                    return 0; /* keep the combinations only */
                snprintf(names[n], VALUE_MAX, "%.*s", (int)len, p);
                out[n] = (part_t){.series = names[n]};
                n++;
            }
            out[j].expected += parts[i].expected;
            out[j].actual += parts[i].actual;
            out[j].gap += parts[i].gap;
            p = end ? end + 1 : NULL;
        }
    }
    qsort(out, n, sizeof(part_t), by_gap);
    return n;
}

int bp_rootcause_compute(bp_db_t *db, const bp_metric_t *m, int64_t from, int64_t to, bp_rootcause_t *rc,
                         bp_err_t *err)
{
    memset(rc, 0, sizeof(*rc));
    char s_from[24], s_to[24], s_base[24];
    snprintf(s_from, sizeof(s_from), "%" PRId64, from);
    snprintf(s_to, sizeof(s_to), "%" PRId64, to);
    snprintf(s_base, sizeof(s_base), "%d", BP_ROOTCAUSE_BASELINE_S);
    const char *p[] = {m->name, s_from, s_to, s_base};
    PGresult *res = NULL;
    int r = bp_db_query(db, &parts_sql, p, &res, err);
    if (r != 0)
        return r;
    int rows = PQntuples(res);
    part_t *parts = calloc((size_t)rows + 1, sizeof(part_t));
    if (parts == NULL) {
        PQclear(res);
        return bp_err_set(err, BP_ENOMEM, "out of memory");
    }
    bool ratio = m->kind == BP_KIND_RATIO;
    double base_total = 0, expected_total = 0, actual_total = 0;
    for (int i = 0; i < rows; i++)
        if (bp_db_text(res, i, "series")[0] == '\0') {
            base_total = bp_db_double(res, i, "base_value");
            expected_total = bp_db_double(res, i, "expected");
            actual_total = ratio ? bp_db_double(res, i, "num") : bp_db_double(res, i, "actual");
        }
    size_t k = 0;
    double gap_sum = 0;
    for (int i = 0; i < rows; i++) {
        const char *series = bp_db_text(res, i, "series");
        if (series[0] == '\0')
            continue;
        part_t *pt = &parts[k++];
        pt->series = series;
        if (ratio) {
            /* In numerator units: what this series' own usual rate would have given now. */
            double base_den = bp_db_double(res, i, "base_den");
            double rate = base_den > 0 ? bp_db_double(res, i, "base_num") / base_den : 0;
            pt->expected = rate * bp_db_double(res, i, "den");
            pt->actual = bp_db_double(res, i, "num");
        } else {
            double share = base_total > 0 ? bp_db_double(res, i, "base_value") / base_total : 0;
            pt->expected = share * expected_total;
            pt->actual = bp_db_double(res, i, "actual");
        }
        pt->gap = pt->expected - pt->actual;
    }
    if (ratio) {
        expected_total = 0;
        for (size_t i = 0; i < k; i++)
            expected_total += parts[i].expected;
    }
    /* Orient so that the incident's direction (a drop, or a rise) is a positive gap. */
    double sign = expected_total >= actual_total ? 1 : -1;
    for (size_t i = 0; i < k; i++) {
        parts[i].gap *= sign;
        if (parts[i].gap > 0)
            gap_sum += parts[i].gap;
    }
    qsort(parts, k, sizeof(part_t), by_gap);
    rc->expected_total = expected_total;
    rc->actual_total = actual_total;
    /* Single dimension values ("country=DE"), each the sum of its combinations: often the
     * plainer explanation when one value explains the gap across every other dimension. */
    size_t room = k * m->num_dimensions + 1, ns = 0;
    part_t *singles = m->num_dimensions > 1 && gap_sum > 0 ? calloc(room, sizeof(part_t)) : NULL;
    char(*names)[VALUE_MAX] = singles ? calloc(room, VALUE_MAX) : NULL;
    if (names != NULL)
        ns = roll_up(parts, k, singles, names, room);
    const part_t *first = k > 0 && parts[0].gap > 0 ? &parts[0] : NULL;
    if (ns > 0 && singles[0].gap > 0 &&
        (first == NULL || !contains(first->series, singles[0].series) || first->gap < 0.8 * singles[0].gap))
        first = &singles[0];
    if (first != NULL)
        add(rc, first, gap_sum);
    for (size_t i = 0, j = 0; rc->n < BP_ROOTCAUSE_TOP && (i < k || j < ns);) {
        const part_t *next =
            j >= ns || (i < k && parts[i].gap >= singles[j].gap) ? &parts[i++] : &singles[j++];
        if (next->gap <= 0)
            break;
        if (next != first)
            add(rc, next, gap_sum);
    }
    free(singles);
    free(names);
    free(parts);
    PQclear(res);
    return 0;
}

int bp_rootcause_json(const bp_rootcause_t *rc, bp_buf_t *out)
{
    int r = bp_buf_appendf(out, "\"root_cause\":[");
    for (int i = 0; r == 0 && i < rc->n; i++) {
        r = bp_buf_appendf(out, "%s{\"series\":", i ? "," : "");
        r = r ? r : bp_json_append_str(out, rc->top[i].series);
        r = r ? r
              : bp_buf_appendf(out, ",\"expected\":%.6g,\"actual\":%.6g,\"share\":%.4f}", rc->top[i].expected,
                               rc->top[i].actual, rc->top[i].share);
    }
    return r ? r : bp_buf_append(out, "]", 1);
}

void bp_rootcause_sentence(const bp_rootcause_t *rc, char *out, size_t outsz)
{
    out[0] = '\0';
    if (rc->n == 0)
        return;
    /* "country=DE,platform=android" reads better with a space after each comma. */
    char pretty[300];
    size_t o = 0;
    for (const char *p = rc->top[0].series; *p && o + 2 < sizeof(pretty); p++) {
        pretty[o++] = *p;
        if (*p == ',')
            pretty[o++] = ' ';
    }
    pretty[o] = '\0';
    snprintf(out, outsz, "; %.0f%% of the gap is %s", rc->top[0].share * 100, pretty);
}
