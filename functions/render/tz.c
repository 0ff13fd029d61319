#include "tz.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A TZif file is a few KB; anything near this is not one. */
#define TZIF_MAX (256 * 1024)

/* One local time type of a TZif file. */
typedef struct st_tz_type_t {
    int32_t utoff;
    bool isdst;
    uint8_t abbr; /* index into abbrs */
} tz_type_t;

/* When a POSIX TZ rule switches: Jn (n 1..365, Feb 29 never counted), n (0..365), or Mm.w.d. */
typedef struct st_tz_when_t {
    char kind; /* 'J', 'n', 'M' */
    int m, w, d, n;
    int32_t time; /* local seconds after midnight, may be negative or past 24 h (TZif v3) */
} tz_when_t;

/* The TZif v2+ footer: the rule for times after the last transition. */
typedef struct st_tz_rule_t {
    int32_t std_off, dst_off; /* seconds east of UTC */
    char std_abbr[8], dst_abbr[8];
    bool has_dst;
    tz_when_t start, end;
} tz_rule_t;

struct st_bp_tz_t {
    char name[BP_TZ_NAME_MAX];
    int64_t *trans;
    uint8_t *trans_type;
    size_t ntrans;
    tz_type_t *types;
    size_t ntypes;
    char *abbrs;
    size_t nabbrs;
    bool has_rule;
    tz_rule_t rule;
};

int64_t bp_tz_days_from_civil(int year, int month, int day)
{
    /* H. Hinnant, "chrono-Compatible Low-Level Date Algorithms". */
    int64_t y = (int64_t)year - (month <= 2);
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

void bp_tz_civil_from_days(int64_t days, int *year, int *month, int *day)
{
    days += 719468;
    int64_t era = (days >= 0 ? days : days - 146096) / 146097;
    int64_t doe = days - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t y = yoe + era * 400;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    int64_t d = doy - (153 * mp + 2) / 5 + 1;
    int64_t m = mp < 10 ? mp + 3 : mp - 9;
    *year = (int)(y + (m <= 2));
    *month = (int)m;
    *day = (int)d;
}

static bool is_leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in_month(int y, int m)
{
    static const int dim[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && is_leap(y) ? 29 : dim[m - 1];
}

static int64_t floor_div(int64_t a, int64_t b)
{
    return a / b - (a % b != 0 && (a < 0) != (b < 0));
}

/* ---- POSIX TZ strings (the TZif footer), POSIX.1-2017 §8.3 with the TZif v3 extensions ---- */

static const char *parse_abbr(const char *s, char *out, size_t outsz)
{
    size_t n = 0;
    if (*s == '<') {
        s++;
        while (*s != '\0' && *s != '>') {
            if (n + 1 < outsz)
                out[n++] = *s;
            s++;
        }
        if (*s != '>')
            return NULL;
        s++;
    } else {
        while ((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z')) {
            if (n + 1 < outsz)
                out[n++] = *s;
            s++;
        }
    }
    out[n] = '\0';
    return n >= 3 ? s : NULL;
}

/* [+-]hh[:mm[:ss]], hours up to 167 (v3). */
static const char *parse_hms(const char *s, int32_t *out)
{
    int sign = 1;
    if (*s == '+' || *s == '-') {
        sign = *s == '-' ? -1 : 1;
        s++;
    }
    int parts[3] = {0, 0, 0}, np = 0;
    while (np < 3) {
        if (*s < '0' || *s > '9')
            return NULL;
        int v = 0;
        while (*s >= '0' && *s <= '9' && v < 1000)
            v = v * 10 + (*s++ - '0');
        parts[np++] = v;
        if (*s != ':')
            break;
        s++;
    }
    if (parts[0] > 167 || parts[1] > 59 || parts[2] > 59)
        return NULL;
    *out = sign * (parts[0] * 3600 + parts[1] * 60 + parts[2]);
    return s;
}

static const char *parse_num(const char *s, int lo, int hi, int *out)
{
    if (*s < '0' || *s > '9')
        return NULL;
    int v = 0;
    while (*s >= '0' && *s <= '9' && v <= hi)
        v = v * 10 + (*s++ - '0');
    if (v < lo || v > hi)
        return NULL;
    *out = v;
    return s;
}

static const char *parse_when(const char *s, tz_when_t *w)
{
    memset(w, 0, sizeof(*w));
    if (*s == 'M') {
        w->kind = 'M';
        s = parse_num(s + 1, 1, 12, &w->m);
        if (s == NULL || *s != '.' || (s = parse_num(s + 1, 1, 5, &w->w)) == NULL || *s != '.' ||
            (s = parse_num(s + 1, 0, 6, &w->d)) == NULL)
            return NULL;
    } else if (*s == 'J') {
        w->kind = 'J';
        s = parse_num(s + 1, 1, 365, &w->n);
    } else {
        w->kind = 'n';
        s = parse_num(s, 0, 365, &w->n);
    }
    if (s == NULL)
        return NULL;
    w->time = 2 * 3600;
    if (*s == '/')
        s = parse_hms(s + 1, &w->time);
    return s;
}

static bool parse_rule(const char *s, tz_rule_t *r)
{
    memset(r, 0, sizeof(*r));
    int32_t off;
    s = parse_abbr(s, r->std_abbr, sizeof(r->std_abbr));
    if (s == NULL || (s = parse_hms(s, &off)) == NULL)
        return false;
    r->std_off = -off; /* POSIX offsets count west of Greenwich */
    if (*s == '\0')
        return true;
    s = parse_abbr(s, r->dst_abbr, sizeof(r->dst_abbr));
    if (s == NULL)
        return false;
    r->has_dst = true;
    r->dst_off = r->std_off + 3600;
    if (*s != ',' && *s != '\0') {
        if ((s = parse_hms(s, &off)) == NULL)
            return false;
        r->dst_off = -off;
    }
    if (*s == '\0') { /* no rule given: POSIX leaves it to the implementation; US rules */
        r->start = (tz_when_t){'M', 3, 2, 0, 0, 7200};
        r->end = (tz_when_t){'M', 11, 1, 0, 0, 7200};
        return true;
    }
    if (*s != ',' || (s = parse_when(s + 1, &r->start)) == NULL || *s != ',' ||
        (s = parse_when(s + 1, &r->end)) == NULL)
        return false;
    return *s == '\0';
}

/* Local seconds since the epoch (as if local time were UTC) of a rule's switch in year y. */
static int64_t when_local(const tz_when_t *w, int y)
{
    int64_t day;
    if (w->kind == 'J') {
        day = bp_tz_days_from_civil(y, 1, 1) + w->n - 1 + (is_leap(y) && w->n >= 60 ? 1 : 0);
    } else if (w->kind == 'n') {
        day = bp_tz_days_from_civil(y, 1, 1) + w->n;
    } else {
        int64_t first = bp_tz_days_from_civil(y, w->m, 1);
        int wd1 = (int)((first % 7 + 7 + 4) % 7); /* 1970-01-01 was a Thursday */
        int d = 1 + (w->d - wd1 + 7) % 7 + (w->w - 1) * 7;
        while (d > days_in_month(y, w->m))
            d -= 7;
        day = first + d - 1;
    }
    return day * 86400 + w->time;
}

/* The rule's offset at t; *dst says which half. */
static int32_t rule_offset(const tz_rule_t *r, int64_t t, bool *dst)
{
    *dst = false;
    if (!r->has_dst)
        return r->std_off;
    int y, m, d;
    bp_tz_civil_from_days(floor_div(t + r->std_off, 86400), &y, &m, &d);
    /* start is given in standard time, end in daylight time */
    int64_t start = when_local(&r->start, y) - r->std_off;
    int64_t end = when_local(&r->end, y) - r->dst_off;
    bool in = start < end ? (t >= start && t < end) : !(t >= end && t < start);
    *dst = in;
    return in ? r->dst_off : r->std_off;
}

/* ---- TZif (RFC 8536) ---- */

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int64_t be64(const unsigned char *p)
{
    return (int64_t)((uint64_t)be32(p) << 32 | be32(p + 4));
}

typedef struct st_tzif_counts_t {
    uint32_t isut, isstd, leap, time, type, chars;
} tzif_counts_t;

static bool read_counts(const unsigned char *p, size_t len, tzif_counts_t *c)
{
    if (len < 44 || memcmp(p, "TZif", 4) != 0)
        return false;
    c->isut = be32(p + 20);
    c->isstd = be32(p + 24);
    c->leap = be32(p + 28);
    c->time = be32(p + 32);
    c->type = be32(p + 36);
    c->chars = be32(p + 40);
    return c->type >= 1 && c->type <= 256 && c->chars <= 1024 && c->time <= 100000 && c->leap <= 10000;
}

static size_t block_size(const tzif_counts_t *c, size_t tsize)
{
    return c->time * tsize + c->time + c->type * 6 + c->chars + c->leap * (tsize + 4) + c->isstd + c->isut;
}

static int bad_file(const char *name, const char *why, bp_err_t *err)
{
    return bp_err_set(err, BP_EINVAL, "parameter 'tz': %s is not a usable zone file (%s)", name, why);
}

int bp_tz_parse(const char *name, const unsigned char *data, size_t len, bp_tz_t **out, bp_err_t *err)
{
    *out = NULL;
    tzif_counts_t c;
    if (!read_counts(data, len, &c))
        return bad_file(name, "header", err);
    size_t tsize = 4;
    const unsigned char *p = data + 44;
    size_t left = len - 44;
    bool v2 = data[4] >= '2';
    if (v2) { /* skip the 32-bit block: the 64-bit one follows with its own header */
        size_t skip = block_size(&c, 4);
        if (skip > left || !read_counts(p + skip, left - skip, &c))
            return bad_file(name, "v2 header", err);
        p += skip + 44;
        left -= skip + 44;
        tsize = 8;
    }
    size_t need = block_size(&c, tsize);
    if (need > left)
        return bad_file(name, "truncated", err);

    bp_tz_t *tz = calloc(1, sizeof(*tz));
    if (tz == NULL)
        return bp_err_set(err, BP_ENOMEM, "out of memory loading a zone");
    snprintf(tz->name, sizeof(tz->name), "%s", name);
    tz->ntrans = c.time;
    tz->ntypes = c.type;
    tz->nabbrs = c.chars;
    tz->trans = calloc(c.time + 1, sizeof(*tz->trans));
    tz->trans_type = calloc(c.time + 1, 1);
    tz->types = calloc(c.type, sizeof(*tz->types));
    tz->abbrs = calloc(c.chars + 1, 1);
    if (tz->trans == NULL || tz->trans_type == NULL || tz->types == NULL || tz->abbrs == NULL) {
        bp_tz_free(tz);
        return bp_err_set(err, BP_ENOMEM, "out of memory loading a zone");
    }
    int rc = 0;
    for (size_t i = 0; i < c.time; i++) {
        tz->trans[i] = tsize == 8 ? be64(p + i * 8) : (int32_t)be32(p + i * 4);
        if (i > 0 && tz->trans[i] <= tz->trans[i - 1])
            rc = bad_file(name, "transitions out of order", err);
    }
    p += c.time * tsize;
    for (size_t i = 0; i < c.time; i++) {
        tz->trans_type[i] = p[i];
        if (p[i] >= c.type)
            rc = bad_file(name, "transition type", err);
    }
    p += c.time;
    for (size_t i = 0; i < c.type; i++) {
        tz->types[i].utoff = (int32_t)be32(p + i * 6);
        tz->types[i].isdst = p[i * 6 + 4] != 0;
        tz->types[i].abbr = p[i * 6 + 5];
        if (p[i * 6 + 5] >= c.chars)
            rc = bad_file(name, "abbreviation index", err);
    }
    p += c.type * 6;
    memcpy(tz->abbrs, p, c.chars);
    p += need - (c.time * tsize + c.time + c.type * 6);
    left -= need;
    /* The footer: "\n<POSIX TZ string>\n"; empty when the zone has no rule. */
    if (rc == 0 && v2 && left >= 2 && p[0] == '\n') {
        const unsigned char *nl = memchr(p + 1, '\n', left - 1);
        char footer[128];
        size_t flen = nl != NULL ? (size_t)(nl - p - 1) : 0;
        if (nl != NULL && flen > 0 && flen < sizeof(footer)) {
            memcpy(footer, p + 1, flen);
            footer[flen] = '\0';
            tz->has_rule = parse_rule(footer, &tz->rule);
        }
    }
    if (rc != 0) {
        bp_tz_free(tz);
        return rc;
    }
    *out = tz;
    return 0;
}

static bool valid_name(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n >= BP_TZ_NAME_MAX || name[0] == '/' || strstr(name, "..") != NULL)
        return false;
    for (const char *p = name; *p != '\0'; p++) {
        char ch = *p;
        if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '/' ||
              ch == '_' || ch == '-' || ch == '+'))
            return false;
    }
    return true;
}

int bp_tz_load(const char *name, bp_tz_t **out, bp_err_t *err)
{
    *out = NULL;
    if (name == NULL || name[0] == '\0' || strcmp(name, "UTC") == 0) {
        bp_tz_t *tz = calloc(1, sizeof(*tz));
        if (tz == NULL)
            return bp_err_set(err, BP_ENOMEM, "out of memory loading a zone");
        snprintf(tz->name, sizeof(tz->name), "UTC");
        tz->has_rule = true;
        snprintf(tz->rule.std_abbr, sizeof(tz->rule.std_abbr), "UTC");
        *out = tz;
        return 0;
    }
    if (!valid_name(name))
        return bp_err_set(err, BP_EINVAL,
                          "parameter 'tz': '%.64s' is not an IANA zone name like Europe/Berlin", name);
    const char *dir = getenv("TZDIR");
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir != NULL && dir[0] != '\0' ? dir : BP_TZ_DIR, name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return bp_err_set(err, BP_EINVAL, "parameter 'tz': unknown time zone '%s'", name);
    unsigned char *buf = malloc(TZIF_MAX);
    if (buf == NULL) {
        close(fd);
        return bp_err_set(err, BP_ENOMEM, "out of memory loading a zone");
    }
    size_t len = 0;
    int rc = 0;
    for (;;) {
        ssize_t n = read(fd, buf + len, TZIF_MAX - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) /* a directory (tz=Europe) reads as EISDIR */
            rc = bp_err_set(err, BP_EINVAL, "parameter 'tz': unknown time zone '%s'", name);
        if (n <= 0)
            break;
        len += (size_t)n;
        if (len == TZIF_MAX) {
            rc = bad_file(name, "too large", err);
            break;
        }
    }
    close(fd);
    if (rc == 0)
        rc = bp_tz_parse(name, buf, len, out, err);
    free(buf);
    return rc;
}

void bp_tz_free(bp_tz_t *tz)
{
    if (tz == NULL)
        return;
    free(tz->trans);
    free(tz->trans_type);
    free(tz->types);
    free(tz->abbrs);
    free(tz);
}

const char *bp_tz_name(const bp_tz_t *tz)
{
    return tz != NULL ? tz->name : "UTC";
}

/* Offset, DST flag and abbreviation at t. */
static int32_t lookup(const bp_tz_t *tz, int64_t t, bool *dst, const char **abbr)
{
    *dst = false;
    *abbr = "UTC";
    if (tz == NULL)
        return 0;
    if (tz->has_rule && (tz->ntrans == 0 || t >= tz->trans[tz->ntrans - 1])) {
        int32_t off = rule_offset(&tz->rule, t, dst);
        *abbr = *dst ? tz->rule.dst_abbr : tz->rule.std_abbr;
        return off;
    }
    size_t type = 0; /* RFC 8536 §3.2: type 0 before the first transition */
    if (tz->ntrans > 0 && t >= tz->trans[0]) {
        size_t lo = 0, hi = tz->ntrans; /* last transition <= t is in [lo, hi) */
        while (hi - lo > 1) {
            size_t mid = lo + (hi - lo) / 2;
            if (tz->trans[mid] <= t)
                lo = mid;
            else
                hi = mid;
        }
        type = tz->trans_type[lo];
    }
    if (tz->ntypes == 0)
        return 0;
    *dst = tz->types[type].isdst;
    *abbr = tz->abbrs + tz->types[type].abbr;
    return tz->types[type].utoff;
}

int bp_tz_offset(const bp_tz_t *tz, int64_t t)
{
    bool dst;
    const char *abbr;
    return lookup(tz, t, &dst, &abbr);
}

void bp_tz_civil(const bp_tz_t *tz, int64_t t, bp_tz_civil_t *out)
{
    const char *abbr;
    out->utoff = lookup(tz, t, &out->isdst, &abbr);
    snprintf(out->abbr, sizeof(out->abbr), "%s", abbr);
    int64_t local = t + out->utoff;
    int64_t days = floor_div(local, 86400);
    int64_t secs = local - days * 86400;
    bp_tz_civil_from_days(days, &out->year, &out->month, &out->day);
    out->hour = (int)(secs / 3600);
    out->min = (int)(secs / 60 % 60);
    out->sec = (int)(secs % 60);
    out->wday = (int)((days % 7 + 7 + 4) % 7);
}

int64_t bp_tz_from_civil(const bp_tz_t *tz, int year, int month, int day, int hour, int min, int sec)
{
    int64_t local = bp_tz_days_from_civil(year, month, day) * 86400 + hour * 3600 + min * 60 + sec;
    /* Offsets change at most once within a day around local: try the one before and the one
     * after; a candidate is right when the offset in effect at it is the one assumed. */
    int32_t before = bp_tz_offset(tz, local - 86400), after = bp_tz_offset(tz, local + 86400);
    int64_t ta = local - before, tb = local - after;
    bool a_ok = bp_tz_offset(tz, ta) == before, b_ok = bp_tz_offset(tz, tb) == after;
    if (a_ok && b_ok)
        return ta < tb ? ta : tb;
    if (a_ok)
        return ta;
    if (b_ok)
        return tb;
    return ta; /* in a gap */
}
