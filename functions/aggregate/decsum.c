#include "decsum.h"

#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DIGITS 38 /* 10^38 < 2^127 */

static const __int128 I128_MAX = (__int128)(((unsigned __int128)1 << 127) - 1);

/* v * 10^k, or false on overflow. */
static bool scale_up(__int128 *v, int k)
{
    for (; k > 0; k--) {
        if (*v > I128_MAX / 10 || *v < -(I128_MAX / 10))
            return false;
        *v *= 10;
    }
    return true;
}

static int digits_of(__int128 v, char *out)
{
    unsigned __int128 u = v < 0 ? (unsigned __int128)(-(v + 1)) + 1 : (unsigned __int128)v;
    char tmp[48];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + (int)(u % 10));
        u /= 10;
    } while (u > 0);
    for (int i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    out[n] = '\0';
    return n;
}

/* mant / 10^scale as text, for strtod: the one correctly rounded conversion. */
static long double exact_value(__int128 mant, int scale)
{
    char buf[96];
    int p = 0;
    if (mant < 0)
        buf[p++] = '-';
    p += digits_of(mant, buf + p);
    snprintf(buf + p, sizeof(buf) - (size_t)p, "e%d", -scale);
    return strtold(buf, NULL);
}

static void go_inexact(bp_decsum_t *s)
{
    if (!s->inexact) {
        s->approx = s->mant != 0 ? exact_value(s->mant, s->scale) : 0.0L;
        s->inexact = true;
    }
}

static void add_exact(bp_decsum_t *s, __int128 mant, int scale)
{
    if (!s->inexact) {
        __int128 a = s->mant, b = mant;
        int sc = s->scale > scale ? s->scale : scale;
        if (scale_up(&a, sc - s->scale) && scale_up(&b, sc - scale) &&
            !((b > 0 && a > I128_MAX - b) || (b < 0 && a < -I128_MAX - b))) {
            s->mant = a + b;
            s->scale = sc;
            return;
        }
        go_inexact(s);
    }
    s->approx += exact_value(mant, scale);
}

/* A value exact arithmetic cannot hold: its first 38 significant digits times 10^exp10 go
 * into the long double sum (which reaches infinity for huge values, and the caller's range
 * check then says "no value", as PostgreSQL's float8 conversion would fail). */
static void add_approx(bp_decsum_t *sum, __int128 mant38, long exp10)
{
    go_inexact(sum);
    if (exp10 > 100000)
        exp10 = 100000;
    if (exp10 < -100000)
        exp10 = -100000;
    sum->approx += exact_value(mant38, (int)-exp10);
}

bool bp_decsum_add(bp_decsum_t *sum, const char *s, size_t len)
{
    const char *p = s, *end = s + len;
    while (p < end && isspace((unsigned char)*p))
        p++;
    while (end > p && isspace((unsigned char)end[-1]))
        end--;
    bool neg = false;
    if (p < end && (*p == '-' || *p == '+'))
        neg = *p++ == '-';
    __int128 mant = 0;
    int digits = 0, frac = 0, seen = 0;
    bool dot = false;
    for (; p < end; p++) {
        if (*p == '.' && !dot) {
            dot = true;
            continue;
        }
        if (!isdigit((unsigned char)*p))
            break;
        seen++;
        frac += dot;
        if (digits > 0 || *p != '0') { /* leading zeros carry no precision */
            if (digits < MAX_DIGITS)
                mant = mant * 10 + (*p - '0');
            digits++;
        }
    }
    if (seen == 0)
        return false;
    long exp = 0;
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        bool eneg = false;
        if (p < end && (*p == '-' || *p == '+'))
            eneg = *p++ == '-';
        if (p == end || !isdigit((unsigned char)*p))
            return false;
        for (; p < end && isdigit((unsigned char)*p); p++)
            if (exp < 100000)
                exp = exp * 10 + (*p - '0');
        exp = eneg ? -exp : exp;
    }
    if (p != end)
        return false;
    sum->any = true;
    if (neg)
        mant = -mant;
    /* digits beyond the 38 kept each scale the kept ones by ten */
    long scale = (long)frac - exp - (digits > MAX_DIGITS ? digits - MAX_DIGITS : 0);
    if (digits > MAX_DIGITS || scale > 2 * MAX_DIGITS || scale < -MAX_DIGITS) {
        add_approx(sum, mant, -scale);
        return true;
    }
    if (scale < 0) {
        if (!scale_up(&mant, (int)-scale)) {
            add_approx(sum, mant, -scale);
            return true;
        }
        scale = 0;
    }
    add_exact(sum, mant, (int)scale);
    return true;
}

void bp_decsum_merge(bp_decsum_t *into, const bp_decsum_t *from)
{
    if (!from->any)
        return;
    into->any = true;
    if (from->inexact) {
        go_inexact(into);
        into->approx += from->approx;
    } else {
        add_exact(into, from->mant, from->scale);
    }
}

double bp_decsum_value(const bp_decsum_t *sum)
{
    if (!sum->any)
        return 0.0;
    if (sum->inexact)
        return (double)sum->approx;
    if (sum->mant == 0)
        return 0.0;
    char buf[96];
    int p = 0;
    if (sum->mant < 0)
        buf[p++] = '-';
    p += digits_of(sum->mant, buf + p);
    snprintf(buf + p, sizeof(buf) - (size_t)p, "e%d", -sum->scale);
    return strtod(buf, NULL);
}
