/* Dimension keys: the SQL version's format (so stored series keep their names), escaping that
 * keeps different combinations apart, and a length cap that never splits a character. */
#include "scan.c"
#include "../test.h"

static const char *key_of(bp_buf_t *key, const char *const *names, const char *const *values, size_t n)
{
    bp_buf_reset(key);
    for (size_t i = 0; i < n; i++)
        append_dim(key, names[i], values[i] ? values[i] : "", values[i] ? strlen(values[i]) : 0,
                   values[i] == NULL);
    return key->base;
}

static void test_keys_read_name_equals_value_joined_by_commas(void)
{
    bp_buf_t key;
    bp_buf_init(&key, 1u << 16);
    const char *names[] = {"country", "platform"};
    const char *values[] = {"DE", "ios"};
    CHECK_STR(key_of(&key, names, values, 2), "country=DE,platform=ios");
    const char *missing[] = {"DE", NULL};
    CHECK_STR(key_of(&key, names, missing, 2), "country=DE,platform=(none)");
    bp_buf_free(&key);
}

static void test_separators_inside_values_are_escaped(void)
{
    bp_buf_t key;
    bp_buf_init(&key, 1u << 16);
    const char *names[] = {"a", "b"};
    /* without escaping both would read a=x,b=y,b=z */
    const char *v1[] = {"x,b=y", "z"}, *v2[] = {"x", "y,b=z"};
    char k1[64];
    snprintf(k1, sizeof(k1), "%s", key_of(&key, names, v1, 2));
    CHECK_STR(k1, "a=x%2Cb%3Dy,b=z");
    CHECK_STR(key_of(&key, names, v2, 2), "a=x,b=y%2Cb%3Dz");
    const char *pct[] = {"100%", "%2C"};
    CHECK_STR(key_of(&key, names, pct, 2), "a=100%25,b=%252C");
    bp_buf_free(&key);
}

static void test_long_values_are_cut_at_a_character_boundary_and_stay_apart(void)
{
    bp_buf_t key;
    bp_buf_init(&key, 1u << 16);
    char v[1200];
    /* "é" is two bytes: an odd cut would split one */
    for (int i = 0; i < 600; i++)
        memcpy(v + 2 * i, "\xc3\xa9", 2);
    v[1199] = '\0';
    const char *names[] = {"n"}, *values[] = {v};
    key_of(&key, names, values, 1);
    CHECK(key.len <= 2 + KEY_VALUE_MAX);
    CHECK(key.base[key.len - 17] == '~');
    CHECK((key.len - 2 - 17) % 2 == 0);
    /* an escape is never cut in half */
    char pct[400];
    memset(pct, '%', sizeof(pct) - 1);
    pct[sizeof(pct) - 1] = '\0';
    values[0] = pct;
    key_of(&key, names, values, 1);
    CHECK((key.len - 2 - 17) % 3 == 0);
    CHECK(key.base[key.len - 18] == '5');
    /* two values alike in their first 300 bytes are two series */
    char a[320], b[320], ka[400];
    memset(a, 'L', 319);
    memset(b, 'L', 319);
    a[318] = '1';
    b[318] = '2';
    a[319] = b[319] = '\0';
    values[0] = a;
    snprintf(ka, sizeof(ka), "%s", key_of(&key, names, values, 1));
    values[0] = b;
    CHECK(strcmp(ka, key_of(&key, names, values, 1)) != 0);
    CHECK(strlen(ka) == key.len);
    bp_buf_free(&key);
}

int main(void)
{
    RUN(test_keys_read_name_equals_value_joined_by_commas);
    RUN(test_separators_inside_values_are_escaped);
    RUN(test_long_values_are_cut_at_a_character_boundary_and_stay_apart);
    TEST_DONE();
}
