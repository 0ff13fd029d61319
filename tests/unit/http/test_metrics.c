/* Unit tests of shared/metrics.c: registry, text exposition format 0.0.4, thread safety. */
#include "../../../shared/metrics.c"

#include <pthread.h>

#include "../test.h"

static char *render(void)
{
    bp_buf_t b;
    bp_buf_init(&b, 1 << 20);
    int rc = bp_metrics_render(&b);
    CHECK_INT(rc, 0);
    return bp_buf_release(&b, NULL);
}

static void counter_renders_help_type_and_one_line_per_label_set(void)
{
    bp_metrics_register("t_requests_total", BP_METRIC_COUNTER, "Requests.");
    bp_metrics_inc("t_requests_total", "route=\"a\",status=\"200\"");
    bp_metrics_inc("t_requests_total", "route=\"a\",status=\"200\"");
    bp_metrics_add("t_requests_total", "route=\"b\",status=\"503\"", 3);
    char *text = render();
    CHECK(strstr(text, "# HELP t_requests_total Requests.\n# TYPE t_requests_total counter\n") != NULL);
    CHECK(strstr(text, "t_requests_total{route=\"a\",status=\"200\"} 2\n") != NULL);
    CHECK(strstr(text, "t_requests_total{route=\"b\",status=\"503\"} 3\n") != NULL);
    free(text);
    bp_metrics_free();
}

static void series_without_labels_have_no_braces(void)
{
    bp_metrics_register("t_up", BP_METRIC_GAUGE, "Up.");
    bp_metrics_set("t_up", "", 1);
    bp_metrics_set("t_up", NULL, 0.5);
    char *text = render();
    CHECK(strstr(text, "\nt_up 0.5\n") != NULL);
    CHECK(strstr(text, "t_up{") == NULL);
    free(text);
    bp_metrics_free();
}

static void histogram_buckets_are_cumulative_with_inf_sum_and_count(void)
{
    bp_metrics_register("t_latency_seconds", BP_METRIC_HISTOGRAM, "Latency.");
    bp_metrics_observe("t_latency_seconds", "route=\"x\"", 0.001); /* le=0.005 */
    bp_metrics_observe("t_latency_seconds", "route=\"x\"", 0.2);   /* le=0.25 */
    bp_metrics_observe("t_latency_seconds", "route=\"x\"", 30);    /* only +Inf */
    char *text = render();
    CHECK(strstr(text, "# TYPE t_latency_seconds histogram\n") != NULL);
    CHECK(strstr(text, "t_latency_seconds_bucket{route=\"x\",le=\"0.005\"} 1\n") != NULL);
    CHECK(strstr(text, "t_latency_seconds_bucket{route=\"x\",le=\"0.1\"} 1\n") != NULL);
    CHECK(strstr(text, "t_latency_seconds_bucket{route=\"x\",le=\"0.25\"} 2\n") != NULL);
    CHECK(strstr(text, "t_latency_seconds_bucket{route=\"x\",le=\"10\"} 2\n") != NULL);
    CHECK(strstr(text, "t_latency_seconds_bucket{route=\"x\",le=\"+Inf\"} 3\n") != NULL);
    CHECK(strstr(text, "t_latency_seconds_count{route=\"x\"} 3\n") != NULL);
    const char *sum = strstr(text, "t_latency_seconds_sum{route=\"x\"} ");
    CHECK(sum != NULL);
    if (sum != NULL)
        CHECK_NEAR(strtod(sum + strlen("t_latency_seconds_sum{route=\"x\"} "), NULL), 30.201, 1e-9);
    free(text);
    bp_metrics_free();
}

static void histogram_without_labels_puts_only_le_in_braces(void)
{
    bp_metrics_register("t_h", BP_METRIC_HISTOGRAM, "H.");
    bp_metrics_observe("t_h", "", 0.01);
    char *text = render();
    CHECK(strstr(text, "t_h_bucket{le=\"0.01\"} 1\n") != NULL);
    CHECK(strstr(text, "t_h_sum 0.01\n") != NULL);
    CHECK(strstr(text, "t_h_count 1\n") != NULL);
    free(text);
    bp_metrics_free();
}

static void registering_twice_is_a_no_op_and_keeps_the_series(void)
{
    bp_metrics_register("t_c", BP_METRIC_COUNTER, "First help.");
    bp_metrics_inc("t_c", "");
    bp_metrics_register("t_c", BP_METRIC_COUNTER, "Second help.");
    char *text = render();
    CHECK(strstr(text, "First help.") != NULL);
    CHECK(strstr(text, "Second help.") == NULL);
    CHECK(strstr(text, "\nt_c 1\n") != NULL);
    free(text);
    bp_metrics_free();
}

static void help_text_escapes_backslash_and_newline(void)
{
    bp_metrics_register("t_e", BP_METRIC_GAUGE, "a\\b\nc");
    char *text = render();
    CHECK(strstr(text, "# HELP t_e a\\\\b\\nc\n") != NULL);
    free(text);
    bp_metrics_free();
}

static void large_and_fractional_values_keep_their_precision(void)
{
    bp_metrics_register("t_v", BP_METRIC_GAUGE, "V.");
    bp_metrics_set("t_v", "k=\"int\"", 123456789012.0);
    bp_metrics_set("t_v", "k=\"frac\"", 0.125);
    bp_metrics_set("t_v", "k=\"neg\"", -2);
    char *text = render();
    CHECK(strstr(text, "t_v{k=\"int\"} 123456789012\n") != NULL);
    CHECK(strstr(text, "t_v{k=\"frac\"} 0.125\n") != NULL);
    CHECK(strstr(text, "t_v{k=\"neg\"} -2\n") != NULL);
    free(text);
    bp_metrics_free();
}

static void render_into_a_too_small_buffer_fails_with_etoobig(void)
{
    bp_metrics_register("t_small", BP_METRIC_COUNTER, "A help text longer than the buffer.");
    bp_buf_t b;
    bp_buf_init(&b, 16);
    CHECK_INT(bp_metrics_render(&b), BP_ETOOBIG);
    bp_buf_free(&b);
    bp_metrics_free();
}

static void *add_many(void *arg)
{
    (void)arg;
    for (int i = 0; i < 10000; i++) {
        bp_metrics_inc("t_conc", "");
        bp_metrics_observe("t_conc_h", "", 0.001);
    }
    return NULL;
}

static void concurrent_increments_from_threads_are_all_counted(void)
{
    bp_metrics_register("t_conc", BP_METRIC_COUNTER, "C.");
    bp_metrics_register("t_conc_h", BP_METRIC_HISTOGRAM, "C.");
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, add_many, NULL);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    char *text = render();
    CHECK(strstr(text, "\nt_conc 40000\n") != NULL);
    CHECK(strstr(text, "t_conc_h_count 40000\n") != NULL);
    free(text);
    bp_metrics_free();
}

static void free_empties_the_registry(void)
{
    bp_metrics_register("t_gone", BP_METRIC_COUNTER, "Gone.");
    bp_metrics_inc("t_gone", "");
    bp_metrics_free();
    bp_buf_t b;
    bp_buf_init(&b, 1024);
    CHECK_INT(bp_metrics_render(&b), 0);
    CHECK_INT(b.len, 0);
    bp_buf_free(&b);
}

int main(void)
{
    RUN(counter_renders_help_type_and_one_line_per_label_set);
    RUN(series_without_labels_have_no_braces);
    RUN(histogram_buckets_are_cumulative_with_inf_sum_and_count);
    RUN(histogram_without_labels_puts_only_le_in_braces);
    RUN(registering_twice_is_a_no_op_and_keeps_the_series);
    RUN(help_text_escapes_backslash_and_newline);
    RUN(large_and_fractional_values_keep_their_precision);
    RUN(render_into_a_too_small_buffer_fails_with_etoobig);
    RUN(concurrent_increments_from_threads_are_all_counted);
    RUN(free_empties_the_registry);
    TEST_DONE();
}
