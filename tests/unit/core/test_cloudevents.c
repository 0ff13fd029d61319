/* CloudEvents codec: both modes, percent-encoding, required attributes, batch, bad JSON. */
#include <stdlib.h>

#include "../test.h"
#include "cloudevents.h"

#define H(n, v)                                                                                              \
    {                                                                                                        \
        (char *)(n), (char *)(v)                                                                             \
    }

static int decode(bp_http_header_t *h, size_t n, const char *body, bp_ce_t *ev, bp_err_t *err)
{
    return bp_ce_decode(h, n, body, strlen(body), ev, err);
}

static void binary_mode_event_is_decoded_with_its_body_as_data(void)
{
    bp_http_header_t h[] = {H("ce-id", "abc"),          H("ce-source", "/bizpulse/aggregate"),
                            H("ce-specversion", "1.0"), H("ce-type", "dev.bizpulse.metrics.aggregated.v1"),
                            H("ce-subject", "signups"), H("content-type", "application/json")};
    bp_ce_t ev;
    bp_err_t err;
    CHECK_INT(decode(h, 6, "{\"metric\":\"signups\"}", &ev, &err), 0);
    CHECK_STR(ev.id, "abc");
    CHECK_STR(ev.source, "/bizpulse/aggregate");
    CHECK_STR(ev.type, "dev.bizpulse.metrics.aggregated.v1");
    CHECK_STR(ev.subject, "signups");
    CHECK_STR(ev.datacontenttype, "application/json");
    CHECK_STR(ev.data, "{\"metric\":\"signups\"}");
    CHECK_INT(ev.data_len, 20);
    bp_ce_clear(&ev);
}

static void binary_mode_header_values_are_percent_decoded(void)
{
    bp_http_header_t h[] = {H("ce-id", "a%20b%22c%25"), H("ce-source", "/s"), H("ce-specversion", "1.0"),
                            H("ce-type", "t"), H("ce-subject", "%E6%B3%A8%E5%86%8C")};
    bp_ce_t ev;
    bp_err_t err;
    CHECK_INT(decode(h, 5, "", &ev, &err), 0);
    CHECK_STR(ev.id, "a b\"c%");
    CHECK_STR(ev.subject, "注册");
    CHECK(ev.data == NULL);
    bp_ce_clear(&ev);
}

static void broken_percent_encoding_is_refused(void)
{
    const char *bad[] = {"a%2", "a%zz", "%", "a%00b"};
    for (size_t i = 0; i < 4; i++) {
        bp_http_header_t h[] = {H("ce-id", bad[i]), H("ce-source", "/s"), H("ce-specversion", "1.0"),
                                H("ce-type", "t")};
        bp_ce_t ev;
        bp_err_t err;
        CHECK_INT(decode(h, 4, "", &ev, &err), BP_EINVAL);
        CHECK(strstr(err.msg, "ce-id") != NULL);
    }
}

static void each_missing_required_attribute_is_named(void)
{
    const char *names[] = {"id", "source", "specversion", "type"};
    for (size_t skip = 0; skip < 4; skip++) {
        bp_http_header_t all[] = {H("ce-id", "1"), H("ce-source", "/s"), H("ce-specversion", "1.0"),
                                  H("ce-type", "t")};
        bp_http_header_t h[4];
        size_t n = 0;
        for (size_t i = 0; i < 4; i++)
            if (i != skip)
                h[n++] = all[i];
        bp_ce_t ev;
        bp_err_t err;
        int rc = decode(h, n, "", &ev, &err);
        CHECK_INT(rc, BP_EINVAL);
        char want[64];
        snprintf(want, sizeof(want), "'%s'", names[skip]);
        CHECK(strstr(err.msg, want) != NULL);
    }
}

static void wrong_specversion_is_refused(void)
{
    bp_http_header_t h[] = {H("ce-id", "1"), H("ce-source", "/s"), H("ce-specversion", "0.3"),
                            H("ce-type", "t")};
    bp_ce_t ev;
    bp_err_t err;
    CHECK_INT(decode(h, 4, "", &ev, &err), BP_EINVAL);
    CHECK(strstr(err.msg, "0.3") != NULL);
}

static void structured_mode_event_is_decoded_with_data_as_json_text(void)
{
    bp_http_header_t h[] = {H("content-type", "application/cloudevents+json; charset=utf-8")};
    const char *body = "{\"specversion\":\"1.0\",\"id\":\"x1\",\"source\":\"/"
                       "s\",\"type\":\"t\",\"time\":\"2026-11-25T10:00:00Z\","
                       "\"data\":{\"metric\":\"m\",\"n\":1}}";
    bp_ce_t ev;
    bp_err_t err;
    CHECK_INT(decode(h, 1, body, &ev, &err), 0);
    CHECK_STR(ev.id, "x1");
    CHECK_STR(ev.time, "2026-11-25T10:00:00Z");
    CHECK_STR(ev.data, "{\"metric\":\"m\",\"n\":1}");
    bp_ce_clear(&ev);
}

static void structured_mode_data_base64_is_decoded(void)
{
    bp_http_header_t h[] = {H("content-type", "application/cloudevents+json")};
    const char *body = "{\"specversion\":\"1.0\",\"id\":\"x\",\"source\":\"/"
                       "s\",\"type\":\"t\",\"data_base64\":\"aGVsbG8=\"}";
    bp_ce_t ev;
    bp_err_t err;
    CHECK_INT(decode(h, 1, body, &ev, &err), 0);
    CHECK_STR(ev.data, "hello");
    CHECK_INT(ev.data_len, 5);
    bp_ce_clear(&ev);
}

static void structured_mode_missing_id_is_refused(void)
{
    bp_http_header_t h[] = {H("content-type", "application/cloudevents+json")};
    bp_ce_t ev;
    bp_err_t err;
    CHECK_INT(decode(h, 1, "{\"specversion\":\"1.0\",\"source\":\"/s\",\"type\":\"t\"}", &ev, &err),
              BP_EINVAL);
    CHECK(strstr(err.msg, "'id'") != NULL);
    CHECK_INT(decode(h, 1, "{\"specversion\":\"1.0\",\"id\":7,\"source\":\"/s\",\"type\":\"t\"}", &ev, &err),
              BP_EINVAL);
}

/* Found by fuzz/cloudevents.c: the datacontenttype of a structured event is sent verbatim as
 * Content-Type in binary mode, so "\r\n" in it injected a header line. */
static void control_characters_in_datacontenttype_are_refused(void)
{
    bp_http_header_t h[] = {H("content-type", "application/cloudevents+json")};
    bp_ce_t ev;
    bp_err_t err;
    CHECK_INT(decode(h, 1,
                     "{\"specversion\":\"1.0\",\"id\":\"i\",\"source\":\"/s\",\"type\":\"t\","
                     "\"datacontenttype\":\"text/plain\\r\\nx-injected: 1\"}",
                     &ev, &err),
              BP_EINVAL);
    CHECK(strstr(err.msg, "datacontenttype") != NULL);
    CHECK(ev.id == NULL);
    bp_http_header_t b[] = {H("ce-id", "i"), H("ce-source", "/s"), H("ce-specversion", "1.0"),
                            H("ce-type", "t"), H("content-type", "text/plain;\x01")};
    CHECK_INT(decode(b, 5, "x", &ev, &err), BP_EINVAL);
    bp_http_header_t ok[] = {H("ce-id", "i"), H("ce-source", "/s"), H("ce-specversion", "1.0"),
                             H("ce-type", "t"), H("content-type", "text/plain;\tcharset=utf-8")};
    CHECK_INT(decode(ok, 5, "x", &ev, &err), 0);
    bp_ce_clear(&ev);
}

/* Found by fuzz/cloudevents.c: an event whose datacontenttype is application/cloudevents+json,
 * sent in binary mode, reached the receiver as a structured event (and was refused). */
static void an_event_with_a_cloudevents_datacontenttype_is_not_encoded_in_binary_mode(void)
{
    bp_ce_t ev = {.id = "i",
                  .source = "/s",
                  .specversion = "1.0",
                  .type = "t",
                  .datacontenttype = " Application/CloudEvents+JSON; charset=utf-8"};
    bp_http_header_t h[8];
    CHECK_INT(bp_ce_encode_binary(&ev, h, 8), BP_EINVAL);
    ev.datacontenttype = "application/cloudevents-batch+json";
    CHECK_INT(bp_ce_encode_binary(&ev, h, 8), BP_EINVAL);
    ev.datacontenttype = "application/cloudevents+jsonx";
    int n = bp_ce_encode_binary(&ev, h, 8);
    CHECK_INT(n, 5);
    bp_ce_free_headers(h, (size_t)n);
}

static void malformed_structured_json_is_refused(void)
{
    bp_http_header_t h[] = {H("content-type", "application/cloudevents+json")};
    bp_ce_t ev;
    bp_err_t err;
    CHECK_INT(decode(h, 1, "{\"specversion\":\"1.0\",", &ev, &err), BP_EINVAL);
    CHECK(strstr(err.msg, "malformed JSON") != NULL);
    CHECK_INT(decode(h, 1, "", &ev, &err), BP_EINVAL);
}

static void batch_is_refused_by_content_type_and_by_array(void)
{
    bp_http_header_t h[] = {H("content-type", "application/cloudevents-batch+json")};
    bp_ce_t ev;
    bp_err_t err;
    CHECK_INT(decode(h, 1, "[]", &ev, &err), BP_EINVAL);
    CHECK(strstr(err.msg, "batch") != NULL);
    bp_http_header_t s[] = {H("content-type", "application/cloudevents+json")};
    CHECK_INT(decode(s, 1, "[{\"id\":\"1\"}]", &ev, &err), BP_EINVAL);
    CHECK(strstr(err.msg, "batch") != NULL);
}

static void a_plain_request_is_not_an_event(void)
{
    bp_http_header_t text[] = {H("content-type", "text/plain")};
    bp_ce_t ev;
    bp_err_t err;
    CHECK_INT(decode(text, 1, "hello", &ev, &err), BP_EMEDIA);
    bp_http_header_t json[] = {H("content-type", "application/json")};
    CHECK_INT(decode(json, 1, "{}", &ev, &err), BP_EINVAL);
    CHECK(strstr(err.msg, "not a CloudEvent") != NULL);
}

static void encoding_then_decoding_gives_the_same_event(void)
{
    bp_ce_t in = {.id = "incident/7/opened",
                  .source = "/bizpulse/detect",
                  .specversion = "1.0",
                  .type = "dev.bizpulse.incident.opened.v1",
                  .subject = "注册 \"rate\" 100%",
                  .data = "{}",
                  .data_len = 2};
    bp_http_header_t h[10];
    int n = bp_ce_encode_binary(&in, h, 10);
    CHECK_INT(n, 6);
    for (int i = 0; i < n; i++)
        for (const char *p = h[i].value; *p; p++)
            CHECK(*p > 0x20 && *p < 0x7f);
    bp_ce_t out;
    bp_err_t err;
    CHECK_INT(bp_ce_decode(h, (size_t)n, "{}", 2, &out, &err), 0);
    CHECK_STR(out.subject, in.subject);
    CHECK_STR(out.id, in.id);
    CHECK_STR(out.datacontenttype, "application/json");
    bp_ce_clear(&out);
    bp_ce_free_headers(h, (size_t)n);
}

int main(void)
{
    RUN(binary_mode_event_is_decoded_with_its_body_as_data);
    RUN(binary_mode_header_values_are_percent_decoded);
    RUN(broken_percent_encoding_is_refused);
    RUN(each_missing_required_attribute_is_named);
    RUN(wrong_specversion_is_refused);
    RUN(structured_mode_event_is_decoded_with_data_as_json_text);
    RUN(structured_mode_data_base64_is_decoded);
    RUN(structured_mode_missing_id_is_refused);
    RUN(control_characters_in_datacontenttype_are_refused);
    RUN(an_event_with_a_cloudevents_datacontenttype_is_not_encoded_in_binary_mode);
    RUN(malformed_structured_json_is_refused);
    RUN(batch_is_refused_by_content_type_and_by_array);
    RUN(a_plain_request_is_not_an_event);
    RUN(encoding_then_decoding_gives_the_same_event);
    TEST_DONE();
}
