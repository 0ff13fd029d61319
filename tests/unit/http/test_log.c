/* Unit tests of shared/log.c: the JSON line shape, trace ids from traceparent, levels. */
#include "../../../shared/log.c"

#include <cjson/cJSON.h>

#include "../test.h"

#define VALID_TP "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
#define VALID_ID "4bf92f3577b34da6a3ce929d0e0e4736"

/* Runs fn with stdout pointed at a temporary file and returns what it wrote (caller frees). */
static char *capture(void (*fn)(void))
{
    fflush(stdout);
    FILE *tmp = tmpfile();
    int saved = dup(STDOUT_FILENO);
    dup2(fileno(tmp), STDOUT_FILENO);
    fn();
    dup2(saved, STDOUT_FILENO);
    close(saved);
    off_t n = lseek(fileno(tmp), 0, SEEK_END);
    char *out = calloc(1, n > 0 ? (size_t)n + 1 : 1);
    if (out != NULL && n > 0 && pread(fileno(tmp), out, (size_t)n, 0) != (ssize_t)n)
        out[0] = '\0';
    fclose(tmp);
    return out;
}

static void log_with_fields(void)
{
    bp_log_fields(BP_LOG_WARNING, "\"rows\":3,\"metric\":\"signup\"", "said \"%s\"\n", "hi");
}

static void a_line_is_one_json_object_with_severity_time_message_service_and_fields(void)
{
    char *out = capture(log_with_fields);
    CHECK(out != NULL && strlen(out) > 0 && out[strlen(out) - 1] == '\n');
    CHECK(strchr(out, '\n') == out + strlen(out) - 1); /* exactly one line */
    cJSON *doc = cJSON_Parse(out);
    CHECK(doc != NULL);
    CHECK_STR(cJSON_GetObjectItem(doc, "severity")->valuestring, "WARNING");
    CHECK_STR(cJSON_GetObjectItem(doc, "message")->valuestring, "said \"hi\"\n");
    CHECK_STR(cJSON_GetObjectItem(doc, "service")->valuestring, "testsvc");
    CHECK_INT(cJSON_GetObjectItem(doc, "rows")->valueint, 3);
    CHECK_STR(cJSON_GetObjectItem(doc, "metric")->valuestring, "signup");
    const char *t = cJSON_GetObjectItem(doc, "time")->valuestring;
    CHECK(t != NULL && strlen(t) == 24 && t[10] == 'T' && t[23] == 'Z');
    CHECK(cJSON_GetObjectItem(doc, "logging.googleapis.com/trace") == NULL);
    cJSON_Delete(doc);
    free(out);
}

static void log_traced(void)
{
    bp_log_set_traceparent(VALID_TP);
    bp_log(BP_LOG_INFO, "traced");
    bp_log_set_traceparent(NULL);
}

static void a_valid_traceparent_puts_its_trace_id_on_the_line(void)
{
    char *out = capture(log_traced);
    cJSON *doc = cJSON_Parse(out);
    CHECK(doc != NULL);
    cJSON *tr = cJSON_GetObjectItem(doc, "logging.googleapis.com/trace");
    CHECK(tr != NULL && cJSON_IsString(tr));
    if (tr != NULL)
        CHECK_STR(tr->valuestring, VALID_ID);
    cJSON_Delete(doc);
    free(out);
    CHECK_STR(bp_log_trace_id(), "");
}

static void with_a_project_the_trace_is_the_cloud_logging_resource_name(void)
{
    snprintf(settings.project, sizeof(settings.project), "my-proj");
    char *out = capture(log_traced);
    CHECK(strstr(out, "\"logging.googleapis.com/trace\":\"projects/my-proj/traces/" VALID_ID "\"") != NULL);
    free(out);
    settings.project[0] = '\0';
}

static void invalid_traceparents_clear_the_trace_id(void)
{
    static const char *bad[] = {
        "",
        "garbage",
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",   /* uppercase */
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",   /* zero trace id */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",   /* zero parent id */
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",   /* forbidden version */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x", /* v00 has no extra fields */
        "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        bp_log_set_traceparent(VALID_TP);
        CHECK_STR(bp_log_trace_id(), VALID_ID);
        bp_log_set_traceparent(bad[i]);
        if (strcmp(bp_log_trace_id(), "") != 0)
            printf("#   accepted bad traceparent '%s'\n", bad[i]);
        CHECK_STR(bp_log_trace_id(), "");
    }
}

static void a_future_version_with_extra_fields_is_accepted(void)
{
    bp_log_set_traceparent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra");
    CHECK_STR(bp_log_trace_id(), VALID_ID);
    bp_log_set_traceparent(NULL);
}

static void *read_trace_in_thread(void *arg)
{
    *(int *)arg = strcmp(bp_log_trace_id(), "") == 0;
    return NULL;
}

static void the_trace_id_belongs_to_the_thread_that_set_it(void)
{
    bp_log_set_traceparent(VALID_TP);
    int other_empty = 0;
    pthread_t t;
    pthread_create(&t, NULL, read_trace_in_thread, &other_empty);
    pthread_join(t, NULL);
    CHECK(other_empty);
    CHECK_STR(bp_log_trace_id(), VALID_ID);
    bp_log_set_traceparent(NULL);
}

static void log_info_and_error(void)
{
    bp_log(BP_LOG_DEBUG, "hidden debug");
    bp_log(BP_LOG_INFO, "hidden info");
    bp_log(BP_LOG_ERROR, "shown error");
}

static void lines_below_the_minimum_level_are_dropped(void)
{
    settings.min_level = BP_LOG_WARNING;
    char *out = capture(log_info_and_error);
    CHECK(strstr(out, "hidden") == NULL);
    CHECK(strstr(out, "\"severity\":\"ERROR\"") != NULL);
    CHECK(strstr(out, "shown error") != NULL);
    free(out);
    settings.min_level = BP_LOG_INFO;
}

static void log_huge(void)
{
    char *big = malloc(200000);
    memset(big, 'a', 199999);
    big[199999] = '\0';
    bp_log(BP_LOG_INFO, "%s", big);
    free(big);
}

static void an_oversized_message_is_cut_but_still_one_valid_line(void)
{
    char *out = capture(log_huge);
    CHECK(strlen(out) <= LOG_LINE_MAX);
    cJSON *doc = cJSON_Parse(out);
    CHECK(doc != NULL);
    cJSON_Delete(doc);
    free(out);
}

int main(void)
{
    unsetenv("K_SERVICE");
    unsetenv("K_REVISION");
    unsetenv("GOOGLE_CLOUD_PROJECT");
    unsetenv("BIZPULSE_LOG_LEVEL");
    bp_log_init("testsvc");
    RUN(a_line_is_one_json_object_with_severity_time_message_service_and_fields);
    RUN(a_valid_traceparent_puts_its_trace_id_on_the_line);
    RUN(with_a_project_the_trace_is_the_cloud_logging_resource_name);
    RUN(invalid_traceparents_clear_the_trace_id);
    RUN(a_future_version_with_extra_fields_is_accepted);
    RUN(the_trace_id_belongs_to_the_thread_that_set_it);
    RUN(lines_below_the_minimum_level_are_dropped);
    RUN(an_oversized_message_is_cut_but_still_one_valid_line);
    TEST_DONE();
}
