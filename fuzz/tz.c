/*
 * The TZif reader of render (functions/render/tz.c, bp_tz_parse, RFC 8536) and the POSIX TZ
 * rule it evaluates past the last transition. Zone files come from the system, not from users,
 * but a chart request picks which one is read, and a malformed or truncated file must give
 * BP_EINVAL, not a crash.
 *
 * Input: the TZif bytes. A parsed zone is evaluated at a spread of instants, including the
 * far past and future, where the rule arithmetic is stretched.
 */
#include "fuzz.h"
#include "tz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    bp_tz_t *tz = NULL;
    bp_err_t err;
    bp_err_clear(&err);
    int rc = bp_tz_parse("fuzz", data, size, &tz, &err);
    if (rc != 0) {
        FUZZ_CHECK(tz == NULL && (rc == BP_EINVAL || rc == BP_ENOMEM) && err.msg[0] != '\0', "tz error %d",
                   rc);
        return 0;
    }
    static const int64_t instants[] = {
        -4000000000LL, -1, 0, 1000000000LL, 1711846800LL, 1795000000LL, 4102444800LL, 32503680000LL};
    for (size_t i = 0; i < sizeof(instants) / sizeof(instants[0]); i++) {
        bp_tz_civil_t c;
        bp_tz_civil(tz, instants[i], &c);
        FUZZ_CHECK(c.month >= 1 && c.month <= 12 && c.day >= 1 && c.day <= 31 && c.hour >= 0 && c.hour < 24 &&
                       c.min >= 0 && c.min < 60 && c.sec >= 0 && c.sec < 61,
                   "civil %d-%d-%d %d:%d:%d at %lld", c.year, c.month, c.day, c.hour, c.min, c.sec,
                   (long long)instants[i]);
        FUZZ_CHECK(memchr(c.abbr, '\0', sizeof(c.abbr)) != NULL, "abbr unterminated");
        (void)bp_tz_offset(tz, instants[i]);
        (void)bp_tz_from_civil(tz, c.year, c.month, c.day, c.hour, c.min, c.sec);
    }
    bp_tz_free(tz);
    return 0;
}
