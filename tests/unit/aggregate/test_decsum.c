/* Sums must equal PostgreSQL's sum(numeric)::float8: exact decimal addition, one rounding. */
#include <float.h>
#include <stdlib.h>
#include <string.h>

#include "decsum.h"
#include "../test.h"

static double sum_of(const char *const *v, size_t n)
{
    bp_decsum_t s = BP_DECSUM_INIT;
    for (size_t i = 0; i < n; i++)
        bp_decsum_add(&s, v[i], strlen(v[i]));
    return bp_decsum_value(&s);
}

static void test_cents_add_up_exactly_where_doubles_drift(void)
{
    /* 0.1 + 0.2 as doubles is 0.30000000000000004; as decimals it is 0.3 */
    const char *v[] = {"0.1", "0.2"};
    CHECK(sum_of(v, 2) == 0.3);
    bp_decsum_t s = BP_DECSUM_INIT;
    double naive = 0;
    for (int i = 0; i < 100000; i++) {
        bp_decsum_add(&s, "19.99", 5);
        naive += 19.99;
    }
    CHECK(bp_decsum_value(&s) == 1999000.0);
    CHECK(naive != 1999000.0); /* why this module exists */
}

static void test_scales_signs_and_exponents_align(void)
{
    const char *v[] = {"1.5", "-0.25", "+2", "1e3", "2.5E-1", " 7 ", "0.000"};
    CHECK(sum_of(v, 7) == 1010.5);
}

static void test_text_that_is_not_a_number_is_refused_and_not_counted(void)
{
    bp_decsum_t s = BP_DECSUM_INIT;
    const char *bad[] = {"", "abc", "1.2.3", "1e", "--1", "1,5", "NaN", "0x10", "."};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        CHECK(!bp_decsum_add(&s, bad[i], strlen(bad[i])));
    CHECK(!s.any);
    CHECK(bp_decsum_value(&s) == 0.0);
}

static void test_beyond_128_bits_the_sum_continues_approximately(void)
{
    const char *v[] = {"1e300", "1e300", "5"};
    bp_decsum_t s = BP_DECSUM_INIT;
    for (int i = 0; i < 3; i++)
        CHECK(bp_decsum_add(&s, v[i], strlen(v[i])));
    CHECK(s.inexact);
    CHECK_NEAR(bp_decsum_value(&s) / 2e300, 1.0, 1e-12);
    /* 40 significant digits */
    const char *w[] = {"1234567890123456789012345678901234567890", "1"};
    CHECK_NEAR(sum_of(w, 2) / 1.234567890123456789e39, 1.0, 1e-12);
}

static void test_numbers_of_hundreds_of_digits_keep_their_magnitude(void)
{
    /* numeric::text never uses an exponent: 1e299 arrives as 300 digits */
    char big[1100];
    big[0] = '1';
    memset(big + 1, '0', 299);
    big[300] = '\0';
    bp_decsum_t s = BP_DECSUM_INIT;
    CHECK(bp_decsum_add(&s, big, strlen(big)));
    CHECK_NEAR(bp_decsum_value(&s) / 1e299, 1.0, 1e-12);
    memset(big + 1, '0', 999);
    big[1000] = '\0';
    s = BP_DECSUM_INIT;
    CHECK(bp_decsum_add(&s, big, strlen(big)));
    CHECK(isinf(bp_decsum_value(&s))); /* beyond float8: the caller stores no value */
    s = BP_DECSUM_INIT;
    CHECK(bp_decsum_add(&s, "1e400", 5));
    CHECK(isinf(bp_decsum_value(&s)));
    /* many digits after the point */
    s = BP_DECSUM_INIT;
    const char *pi = "3.14159265358979323846264338327950288419716939937510582097494459";
    CHECK(bp_decsum_add(&s, pi, strlen(pi)));
    CHECK_NEAR(bp_decsum_value(&s), 3.141592653589793, 1e-15);
}

static void test_merging_two_sums_equals_summing_all(void)
{
    bp_decsum_t a = BP_DECSUM_INIT, b = BP_DECSUM_INIT, all = BP_DECSUM_INIT;
    const char *v[] = {"0.1", "0.7", "3.14159", "-2", "100.001"};
    for (int i = 0; i < 5; i++) {
        bp_decsum_add(i < 2 ? &a : &b, v[i], strlen(v[i]));
        bp_decsum_add(&all, v[i], strlen(v[i]));
    }
    bp_decsum_merge(&a, &b);
    CHECK(bp_decsum_value(&a) == bp_decsum_value(&all));
    CHECK(bp_decsum_value(&all) == 101.94259);
}

int main(void)
{
    RUN(test_cents_add_up_exactly_where_doubles_drift);
    RUN(test_scales_signs_and_exponents_align);
    RUN(test_text_that_is_not_a_number_is_refused_and_not_counted);
    RUN(test_beyond_128_bits_the_sum_continues_approximately);
    RUN(test_numbers_of_hundreds_of_digits_keep_their_magnitude);
    RUN(test_merging_two_sums_equals_summing_all);
    TEST_DONE();
}
