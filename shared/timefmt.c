#include "timefmt.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar (Howard Hinnant's
 * days_from_civil), so parsing never depends on the process's TZ like mktime would. */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = (unsigned)(y - era * 400);
    const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static int digits(const char **p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)(*p)[i]))
            return -1;
        v = v * 10 + ((*p)[i] - '0');
    }
    *p += n;
    *out = v;
    return 0;
}

static int expect(const char **p, char c)
{
    if (**p != c && !(c == 'T' && (**p == 't' || **p == ' ')))
        return -1;
    (*p)++;
    return 0;
}

int bp_time_parse(const char *s, int64_t *out, bp_err_t *err)
{
    const char *p = s;
    int y, mo, d, h, mi, sec;
    if (s == NULL || digits(&p, 4, &y) || expect(&p, '-') || digits(&p, 2, &mo) || expect(&p, '-') ||
        digits(&p, 2, &d) || expect(&p, 'T') || digits(&p, 2, &h) || expect(&p, ':') || digits(&p, 2, &mi) ||
        expect(&p, ':') || digits(&p, 2, &sec))
        goto bad;
    if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
        goto bad;
    static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (d > mdays[mo - 1] || (mo == 2 && d == 29 && !leap))
        goto bad;
    if (*p == '.') {
        p++;
        if (!isdigit((unsigned char)*p))
            goto bad;
        while (isdigit((unsigned char)*p))
            p++;
    }
    int64_t offset = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int sign = *p == '-' ? -1 : 1, oh, om;
        p++;
        if (digits(&p, 2, &oh) || expect(&p, ':') || digits(&p, 2, &om) || oh > 23 || om > 59)
            goto bad;
        offset = sign * (oh * 3600 + om * 60);
    } else {
        goto bad;
    }
    if (*p != '\0')
        goto bad;
    if (sec == 60) /* a leap second is the last second of its minute here */
        sec = 59;
    *out = days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 + h * 3600 + mi * 60 + sec - offset;
    return 0;
bad:
    return bp_err_set(err, BP_EINVAL, "'%.40s' is not an RFC 3339 time such as 2026-11-25T14:05:00Z",
                      s ? s : "(null)");
}

int bp_time_parse_rel(const char *s, int64_t now_s, int64_t *out, bp_err_t *err)
{
    if (s != NULL && strcmp(s, "now") == 0) {
        *out = now_s;
        return 0;
    }
    if (s != NULL && s[0] == '-' && isdigit((unsigned char)s[1])) {
        char *end;
        long long n = strtoll(s + 1, &end, 10);
        int64_t unit = 0;
        if (end[0] != '\0' && end[1] == '\0') {
            switch (end[0]) {
            case 's':
                unit = 1;
                break;
            case 'm':
                unit = 60;
                break;
            case 'h':
                unit = 3600;
                break;
            case 'd':
                unit = 86400;
                break;
            }
        }
        /* ten years is far beyond any chart; the bound also keeps n * unit from overflowing */
        if (unit == 0 || n > 10LL * 366 * 86400 / unit)
            return bp_err_set(err, BP_EINVAL, "'%.40s' is not a relative time such as -24h, -30m, -7d", s);
        *out = now_s - n * unit;
        return 0;
    }
    return bp_time_parse(s, out, err);
}

/* The instants RFC 3339 can write: years 0000 to 9999. */

char *bp_time_format(int64_t t, char *out)
{
    /* strftime's %Y does not pad ("24-02-09" for year 24, which PostgreSQL and our own parser
     * read as another date or not at all), and gmtime_r fails past int years: so clamp, then
     * print the fields ourselves. */
    time_t tt = (time_t)(t < BP_TIME_MIN ? BP_TIME_MIN : t > BP_TIME_MAX ? BP_TIME_MAX : t);
    struct tm tm;
    gmtime_r(&tt, &tm);
    /* The clamp keeps every field in range; the modulos only tell the compiler so (-Wformat-truncation). */
    snprintf(out, BP_TIME_STRLEN, "%04u-%02u-%02uT%02u:%02u:%02uZ", (unsigned)(tm.tm_year + 1900) % 10000u,
             (unsigned)tm.tm_mon % 12u + 1, (unsigned)tm.tm_mday % 32u, (unsigned)tm.tm_hour % 24u,
             (unsigned)tm.tm_min % 60u, (unsigned)tm.tm_sec % 61u);
    return out;
}

int64_t bp_time_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec;
}

int64_t bp_time_floor(int64_t t, int64_t interval_s)
{
    int64_t r = t % interval_s;
    return r < 0 ? t - r - interval_s : t - r;
}
