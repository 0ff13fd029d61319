/*
 * test.h: the unit-test harness. Each unit test file is one executable that includes the
 * module's .c (so static helpers are testable, as h2o's t/00unit does), declares test
 * functions whose names are sentences, and lists them in main with RUN(). Output is TAP;
 * the exit status is non-zero when any check failed, which is what meson's test runner reads.
 */
#ifndef BP_TEST_H
#define BP_TEST_H

#include <math.h>
#include <stdio.h>
#include <string.h>

static int test_failures;
static int test_count;
static int test_current_failed;

#define CHECK(cond)                                                                                          \
    do {                                                                                                     \
        if (!(cond)) {                                                                                       \
            printf("#   %s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);                              \
            test_current_failed = 1;                                                                         \
        }                                                                                                    \
    } while (0)

#define CHECK_STR(a, b)                                                                                      \
    do {                                                                                                     \
        const char *a_ = (a), *b_ = (b);                                                                     \
        if (a_ == NULL || b_ == NULL || strcmp(a_, b_) != 0) {                                               \
            printf("#   %s:%d: \"%s\" != \"%s\"\n", __FILE__, __LINE__, a_ ? a_ : "(null)",                  \
                   b_ ? b_ : "(null)");                                                                      \
            test_current_failed = 1;                                                                         \
        }                                                                                                    \
    } while (0)

#define CHECK_INT(a, b)                                                                                      \
    do {                                                                                                     \
        long long a_ = (long long)(a), b_ = (long long)(b);                                                  \
        if (a_ != b_) {                                                                                      \
            printf("#   %s:%d: %s == %lld, expected %lld\n", __FILE__, __LINE__, #a, a_, b_);                \
            test_current_failed = 1;                                                                         \
        }                                                                                                    \
    } while (0)

#define CHECK_NEAR(a, b, eps)                                                                                \
    do {                                                                                                     \
        double a_ = (a), b_ = (b);                                                                           \
        if (!(fabs(a_ - b_) <= (eps))) {                                                                     \
            printf("#   %s:%d: %s == %.9g, expected %.9g\n", __FILE__, __LINE__, #a, a_, b_);                \
            test_current_failed = 1;                                                                         \
        }                                                                                                    \
    } while (0)

#define RUN(fn)                                                                                              \
    do {                                                                                                     \
        test_current_failed = 0;                                                                             \
        fn();                                                                                                \
        test_count++;                                                                                        \
        printf("%s %d - %s\n", test_current_failed ? "not ok" : "ok", test_count, #fn);                      \
        test_failures += test_current_failed;                                                                \
    } while (0)

#define TEST_DONE()                                                                                          \
    do {                                                                                                     \
        printf("1..%d\n", test_count);                                                                       \
        return test_failures == 0 ? 0 : 1;                                                                   \
    } while (0)

#endif
