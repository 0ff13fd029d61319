#include "timeaxis.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

typedef enum { UNIT_SECOND, UNIT_DAY, UNIT_WEEK, UNIT_MONTH, UNIT_YEAR } unit_t;

typedef struct st_step_t {
    unit_t unit;
    int n;          /* of the unit */
    int64_t approx; /* seconds, for choosing */
} step_t;

static const step_t steps[] = {
    {UNIT_SECOND, 1, 1},
    {UNIT_SECOND, 5, 5},
    {UNIT_SECOND, 10, 10},
    {UNIT_SECOND, 15, 15},
    {UNIT_SECOND, 30, 30},
    {UNIT_SECOND, 60, 60},
    {UNIT_SECOND, 120, 120},
    {UNIT_SECOND, 300, 300},
    {UNIT_SECOND, 600, 600},
    {UNIT_SECOND, 900, 900},
    {UNIT_SECOND, 1800, 1800},
    {UNIT_SECOND, 3600, 3600},
    {UNIT_SECOND, 7200, 7200},
    {UNIT_SECOND, 10800, 10800},
    {UNIT_SECOND, 21600, 21600},
    {UNIT_SECOND, 43200, 43200},
    {UNIT_DAY, 1, 86400},
    {UNIT_DAY, 2, 2 * 86400},
    {UNIT_WEEK, 1, 7 * 86400},
    {UNIT_WEEK, 2, 14 * 86400},
    {UNIT_MONTH, 1, 30 * 86400},
    {UNIT_MONTH, 3, 91 * 86400},
    {UNIT_MONTH, 6, 182 * 86400},
    {UNIT_YEAR, 1, (int64_t)365 * 86400},
    {UNIT_YEAR, 2, (int64_t)2 * 365 * 86400},
    {UNIT_YEAR, 5, (int64_t)5 * 365 * 86400},
    {UNIT_YEAR, 10, (int64_t)10 * 365 * 86400},
    {UNIT_YEAR, 50, (int64_t)50 * 365 * 86400},
    {UNIT_YEAR, 100, (int64_t)100 * 365 * 86400},
};

static const char *const month_names[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                          "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

static const step_t *pick(int64_t span, int max_labels)
{
    size_t n = sizeof(steps) / sizeof(steps[0]);
    if (max_labels < 2)
        max_labels = 2;
    for (size_t i = 0; i < n; i++) {
        if (span / steps[i].approx + 1 <= max_labels)
            return &steps[i];
    }
    return &steps[n - 1];
}

static void add(bp_timeaxis_t *ax, int64_t t)
{
    if (ax->num_ticks < BP_TIMEAXIS_MAX_TICKS)
        ax->ticks[ax->num_ticks++].t = t;
}

/* Ticks at local wall-clock times that are multiples of n seconds since local midnight. */
static void clock_ticks(const bp_tz_t *tz, int64_t from, int64_t to, int n, bp_timeaxis_t *ax)
{
    /* Candidates: every instant that could be such a time. Zone offsets are whole minutes
     * (whole quarter hours since 1972), so sub-minute steps align with UTC and larger ones are
     * found among minutes or quarter hours. */
    int64_t g = n <= 60 ? n : n % 900 == 0 ? 900 : 60;
    int64_t t = from - ((from % g) + g) % g;
    if (t < from)
        t += g;
    for (; t <= to && ax->num_ticks < BP_TIMEAXIS_MAX_TICKS; t += g) {
        int64_t local = t + bp_tz_offset(tz, t);
        int64_t sod = ((local % 86400) + 86400) % 86400;
        if (sod % n == 0)
            add(ax, t);
    }
}

/* Ticks at local midnights of the days selected by keep(). */
static void day_ticks(const bp_tz_t *tz, int64_t from, int64_t to, const step_t *st, bp_timeaxis_t *ax)
{
    bp_tz_civil_t c;
    bp_tz_civil(tz, from, &c);
    int64_t day = bp_tz_days_from_civil(c.year, c.month, c.day);
    int guard = 0;
    for (;; day++) {
        int y, m, d;
        bp_tz_civil_from_days(day, &y, &m, &d);
        bool keep;
        switch (st->unit) {
        case UNIT_DAY:
            keep = day % st->n == 0;
            break;
        case UNIT_WEEK: /* Mondays; every other one counted from 1970-01-05 */
            keep = ((day - 4) % 7 + 7) % 7 == 0 && ((day - 4) / 7) % st->n == 0;
            break;
        case UNIT_MONTH:
            keep = d == 1 && (m - 1) % st->n == 0;
            break;
        default:
            keep = d == 1 && m == 1 && y % st->n == 0;
            break;
        }
        if (st->unit == UNIT_YEAR && !(m == 1 && d == 1)) { /* jump to the next Jan 1 */
            day = bp_tz_days_from_civil(y + 1, 1, 1) - 1;
            continue;
        }
        if (st->unit == UNIT_MONTH && d != 1) {
            day = bp_tz_days_from_civil(m == 12 ? y + 1 : y, m == 12 ? 1 : m + 1, 1) - 1;
            continue;
        }
        if (!keep)
            continue;
        int64_t t = bp_tz_from_civil(tz, y, m, d, 0, 0, 0);
        if (t > to || ++guard > 100000)
            break;
        if (t >= from)
            add(ax, t);
    }
}

static void label(const bp_tz_t *tz, const step_t *st, bp_timeaxis_t *ax)
{
    bp_tz_civil_t prev = {0}, c;
    for (int i = 0; i < ax->num_ticks; i++) {
        bp_timeaxis_tick_t *k = &ax->ticks[i];
        bp_tz_civil(tz, k->t, &c);
        k->line2[0] = '\0';
        bool first = i == 0;
        bool new_day = first || c.day != prev.day || c.month != prev.month || c.year != prev.year;
        bool new_year = first || c.year != prev.year;
        switch (st->unit) {
        case UNIT_SECOND:
            if (st->n < 60)
                snprintf(k->line1, sizeof(k->line1), "%02d:%02d:%02d", c.hour, c.min, c.sec);
            else
                snprintf(k->line1, sizeof(k->line1), "%02d:%02d", c.hour, c.min);
            if (new_day)
                snprintf(k->line2, sizeof(k->line2), "%s %d, %d", month_names[c.month - 1], c.day, c.year);
            break;
        case UNIT_DAY:
        case UNIT_WEEK:
            snprintf(k->line1, sizeof(k->line1), "%s %d", month_names[c.month - 1], c.day);
            if (new_year)
                snprintf(k->line2, sizeof(k->line2), "%d", c.year);
            break;
        case UNIT_MONTH:
            snprintf(k->line1, sizeof(k->line1), "%s", month_names[c.month - 1]);
            if (new_year)
                snprintf(k->line2, sizeof(k->line2), "%d", c.year);
            break;
        default:
            snprintf(k->line1, sizeof(k->line1), "%d", c.year);
            break;
        }
        prev = c;
    }
}

void bp_timeaxis_build(const bp_tz_t *tz, int64_t from, int64_t to, int max_labels, bp_timeaxis_t *out)
{
    memset(out, 0, sizeof(*out));
    if (to <= from)
        return;
    const step_t *st = pick(to - from, max_labels);
    out->step_s = st->approx;
    if (st->unit == UNIT_SECOND)
        clock_ticks(tz, from, to, st->n, out);
    else
        day_ticks(tz, from, to, st, out);
    label(tz, st, out);
}
