/* Values travel to PostgreSQL as text (COPY, array literals) and must read back as the same
 * double: the stored-point comparison depends on it. */
#include <float.h>
#include <stdlib.h>

#include "../test.h"
#include "points.h"

static void test_whole_numbers_print_as_integers(void)
{
    char out[BP_POINTS_NUM_MAX];
    CHECK_STR((bp_points_format(0, out), out), "0");
    CHECK_STR((bp_points_format(42, out), out), "42");
    CHECK_STR((bp_points_format(-7, out), out), "-7");
    CHECK_STR((bp_points_format(9007199254740991.0, out), out), "9007199254740991");
}

static void test_every_value_reads_back_exactly(void)
{
    const double v[] = {0.1,  1.0 / 3, -2.5,    1e300,   -1e-300,   9007199254740992.0,
                        1e20, -0.0,    DBL_MIN, DBL_MAX, 123456.789};
    char out[BP_POINTS_NUM_MAX];
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        size_t n = bp_points_format(v[i], out);
        CHECK(n > 0 && n < BP_POINTS_NUM_MAX);
        double back = strtod(out, NULL);
        CHECK(back == v[i] && signbit(back) == signbit(v[i]));
    }
}

int main(void)
{
    RUN(test_whole_numbers_print_as_integers);
    RUN(test_every_value_reads_back_exactly);
    TEST_DONE();
}
