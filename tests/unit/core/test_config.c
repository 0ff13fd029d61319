/* The metrics file: DESIGN §3's example loads; each kind of mistake is named precisely. */
#include <stdlib.h>

#include "../test.h"
#include "config.h"

static int parse(const char *text, bp_config_t **cfg, bp_err_t *err)
{
    return bp_config_parse("metrics.json", text, strlen(text), cfg, err);
}

static void the_design_example_loads(void)
{
    const char *text =
        "{\"metrics\": ["
        "{\"name\": \"user_registration\", \"kind\": \"count\", \"event_type\": \"user_registration\"},"
        "{\"name\": \"registration_success_rate\", \"kind\": \"ratio\","
        " \"numerator\": {\"event_type\": \"registration_success\"},"
        " \"denominator\": {\"event_type\": \"registration_attempt\"}, \"dimensions\": [\"country\", "
        "\"platform\"]},"
        "{\"name\": \"revenue_eur\", \"kind\": \"sum\", \"event_type\": \"order_placed\", \"field\": "
        "\"amount\","
        " \"filter\": {\"currency\": \"EUR\"}, \"interval\": \"5m\"},"
        "{\"name\": \"active_users\", \"kind\": \"distinct\", \"event_type\": \"login\", \"field\": "
        "\"user_id\"}]}";
    bp_config_t *cfg = NULL;
    bp_err_t err;
    CHECK_INT(parse(text, &cfg, &err), 0);
    if (cfg == NULL)
        return;
    CHECK_INT(cfg->num_metrics, 4);
    const bp_metric_t *r = bp_config_find(cfg, "registration_success_rate");
    CHECK(r != NULL && r->kind == BP_KIND_RATIO);
    CHECK_STR(r->den.event_type, "registration_attempt");
    CHECK_INT(r->num_dimensions, 2);
    const bp_metric_t *rev = bp_config_find(cfg, "revenue_eur");
    CHECK_STR(rev->sel.filter_json, "{\"currency\":\"EUR\"}");
    CHECK_INT(rev->interval_s, 300);
    CHECK_INT(bp_config_find(cfg, "user_registration")->interval_s, 60);
    CHECK_STR(bp_config_find(cfg, "active_users")->method, "auto");
    CHECK(bp_config_find(cfg, "nope") == NULL);
    bp_config_free(cfg);
}

static void expect_error(const char *text, const char *fragment)
{
    bp_config_t *cfg = NULL;
    bp_err_t err;
    bp_err_clear(&err);
    CHECK_INT(parse(text, &cfg, &err), BP_ECONFIG);
    CHECK(cfg == NULL);
    if (strstr(err.msg, fragment) == NULL || strstr(err.msg, "metrics.json") == NULL)
        printf("#   message was: %s (wanted '%s')\n", err.msg, fragment);
    CHECK(strstr(err.msg, fragment) != NULL);
    CHECK(strstr(err.msg, "metrics.json") != NULL);
}

static void mistakes_are_refused_naming_file_metric_and_field(void)
{
    expect_error("{\"metrics\":[{\"name\":\"a\",\"kind\":\"cnt\",\"event_type\":\"e\"}]}",
                 "metric 'a' (#1): field 'kind': unknown kind 'cnt'");
    expect_error("{\"metrics\":[{\"name\":\"a\",\"kind\":\"count\"}]}",
                 "metric 'a' (#1): field 'event_type'");
    expect_error("{\"metrics\":[{\"name\":\"r\",\"kind\":\"ratio\",\"numerator\":{\"event_type\":\"x\"}}]}",
                 "metric 'r' (#1): field 'denominator'");
    expect_error("{\"metrics\":[{\"name\":\"a\",\"kind\":\"count\",\"event_type\":\"e\"},"
                 "{\"name\":\"a\",\"kind\":\"count\",\"event_type\":\"f\"}]}",
                 "metric 'a' (#2): field 'name': duplicate");
    expect_error(
        "{\"metrics\":[{\"name\":\"a\",\"kind\":\"count\",\"event_type\":\"e\",\"dimensions\":\"country\"}]}",
        "field 'dimensions': must be an array of strings");
    expect_error(
        "{\"metrics\":[{\"name\":\"a\",\"kind\":\"count\",\"event_type\":\"e\",\"dimensions\":[1]}]}",
        "field 'dimensions'");
    expect_error("{\"metrics\":[{\"name\":\"s\",\"kind\":\"sum\",\"event_type\":\"e\"}]}",
                 "metric 's' (#1): field 'field'");
    expect_error("{\"metrics\":[{\"name\":\"a b\",\"kind\":\"count\",\"event_type\":\"e\"}]}",
                 "metric #1: field 'name'");
    expect_error(
        "{\"metrics\":[{\"name\":\"a\",\"kind\":\"count\",\"event_type\":\"e\",\"interval\":\"2m\"}]}",
        "field 'interval'");
    expect_error("{\"metrics\":[]}", "at least one metric");
    expect_error("{\"metrics\":[", "malformed JSON");
}

static void env_int_refuses_garbage_naming_the_variable(void)
{
    long v = 0;
    bp_err_t err;
    setenv("BP_TEST_INT", "12x", 1);
    CHECK_INT(bp_config_env_int("BP_TEST_INT", 5, 0, 100, &v, &err), BP_ECONFIG);
    CHECK(strstr(err.msg, "BP_TEST_INT") != NULL);
    setenv("BP_TEST_INT", "101", 1);
    CHECK_INT(bp_config_env_int("BP_TEST_INT", 5, 0, 100, &v, &err), BP_ECONFIG);
    setenv("BP_TEST_INT", "42", 1);
    CHECK_INT(bp_config_env_int("BP_TEST_INT", 5, 0, 100, &v, &err), 0);
    CHECK_INT(v, 42);
    unsetenv("BP_TEST_INT");
    CHECK_INT(bp_config_env_int("BP_TEST_INT", 5, 0, 100, &v, &err), 0);
    CHECK_INT(v, 5);
}

int main(void)
{
    RUN(the_design_example_loads);
    RUN(mistakes_are_refused_naming_file_metric_and_field);
    RUN(env_int_refuses_garbage_naming_the_variable);
    TEST_DONE();
}
