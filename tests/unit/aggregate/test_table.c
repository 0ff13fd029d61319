/* The hash tables: ids are dense and stable, lookups survive growth and reset. */
#include <stdio.h>

#include "table.h"
#include "../test.h"

static void test_strings_get_dense_ids_that_survive_growth(void)
{
    bp_strtab_t t = {0};
    char buf[32];
    for (int i = 0; i < 50000; i++) {
        uint32_t id;
        bool added;
        int n = snprintf(buf, sizeof(buf), "user-%d", i);
        CHECK_INT(bp_strtab_intern(&t, buf, (size_t)n, &id, &added), 0);
        CHECK(added);
        CHECK_INT(id, i);
    }
    uint32_t id;
    bool added;
    CHECK_INT(bp_strtab_intern(&t, "user-123", 8, &id, &added), 0);
    CHECK(!added);
    CHECK_INT(id, 123);
    CHECK_STR(bp_strtab_str(&t, 49999), "user-49999");
    CHECK_INT(bp_strtab_find(&t, "user-777", 8), 777);
    CHECK_INT(bp_strtab_find(&t, "user-50000", 10), -1);
    /* a prefix is another string; an empty string is one too */
    CHECK_INT(bp_strtab_find(&t, "user-1", 6), 1);
    CHECK_INT(bp_strtab_intern(&t, "", 0, &id, &added), 0);
    CHECK(added);
    bp_strtab_reset(&t);
    CHECK_INT(bp_strtab_find(&t, "user-1", 6), -1);
    CHECK_INT(bp_strtab_intern(&t, "again", 5, &id, &added), 0);
    CHECK_INT(id, 0);
    CHECK_STR(bp_strtab_str(&t, 0), "again");
    bp_strtab_free(&t);
}

static void test_the_map_keeps_the_first_value_of_a_key(void)
{
    bp_u64map_t m = {0};
    for (uint64_t k = 0; k < 100000; k++) {
        uint32_t v;
        bool added;
        CHECK_INT(bp_u64map_upsert(&m, k << 32 | (k * 7), (uint32_t)k, &v, &added), 0);
        CHECK(added);
    }
    uint32_t v;
    bool added;
    CHECK_INT(bp_u64map_upsert(&m, 5ULL << 32 | 35, 999, &v, &added), 0);
    CHECK(!added);
    CHECK_INT(v, 5);
    CHECK(bp_u64map_find(&m, 99999ULL << 32 | (99999 * 7), &v));
    CHECK_INT(v, 99999);
    CHECK(!bp_u64map_find(&m, 1ULL << 32, &v));
    CHECK_INT(m.n, 100000);
    bp_u64map_reset(&m);
    CHECK(!bp_u64map_find(&m, 5ULL << 32 | 35, &v));
    CHECK_INT(m.n, 0);
    bp_u64map_free(&m);
}

int main(void)
{
    RUN(test_strings_get_dense_ids_that_survive_growth);
    RUN(test_the_map_keeps_the_first_value_of_a_key);
    TEST_DONE();
}
