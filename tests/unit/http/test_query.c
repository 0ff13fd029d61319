/* Unit tests of the request/response helpers of shared/http/server.c: query parameter
 * decoding, header lookup, JSON error bodies, route matching. */
#include "../../../shared/http/server.c"

#include <cjson/cJSON.h>

#include "../test.h"

static bp_http_request_t req_with_query(const char *query)
{
    return (bp_http_request_t){.method = "GET", .path = "/x", .query = query, .body = ""};
}

static void a_present_parameter_is_found_and_percent_decoded(void)
{
    bp_http_request_t req = req_with_query("metric=sign%20ups&from=-24h");
    char out[64];
    CHECK_INT(bp_http_query_param(&req, "metric", out, sizeof(out)), 1);
    CHECK_STR(out, "sign ups");
    CHECK_INT(bp_http_query_param(&req, "from", out, sizeof(out)), 1);
    CHECK_STR(out, "-24h");
}

static void an_absent_parameter_returns_0(void)
{
    bp_http_request_t req = req_with_query("metric=a");
    char out[16];
    CHECK_INT(bp_http_query_param(&req, "to", out, sizeof(out)), 0);
    req = req_with_query("");
    CHECK_INT(bp_http_query_param(&req, "to", out, sizeof(out)), 0);
    req = req_with_query(NULL);
    CHECK_INT(bp_http_query_param(&req, "to", out, sizeof(out)), 0);
}

static void a_longer_or_shorter_name_does_not_match(void)
{
    bp_http_request_t req = req_with_query("msx=1&m=2&ms=3");
    char out[16];
    CHECK_INT(bp_http_query_param(&req, "ms", out, sizeof(out)), 1);
    CHECK_STR(out, "3");
}

static void plus_stays_a_plus_so_rfc3339_offsets_survive(void)
{
    bp_http_request_t req = req_with_query("from=2026-11-25T14:05:00+01:00&to=2026-11-25T15:00:00%2B01:00");
    char out[64];
    CHECK_INT(bp_http_query_param(&req, "from", out, sizeof(out)), 1);
    CHECK_STR(out, "2026-11-25T14:05:00+01:00");
    CHECK_INT(bp_http_query_param(&req, "to", out, sizeof(out)), 1);
    CHECK_STR(out, "2026-11-25T15:00:00+01:00");
}

static void utf8_and_reserved_characters_decode(void)
{
    bp_http_request_t req = req_with_query("q=%C3%A9t%C3%A9%26%3D%2f");
    char out[32];
    CHECK_INT(bp_http_query_param(&req, "q", out, sizeof(out)), 1);
    CHECK_STR(out, "\xc3\xa9t\xc3\xa9&=/");
}

static void an_encoded_key_matches_its_decoded_name(void)
{
    bp_http_request_t req = req_with_query("m%65tric=x");
    char out[8];
    CHECK_INT(bp_http_query_param(&req, "metric", out, sizeof(out)), 1);
    CHECK_STR(out, "x");
}

static void the_first_occurrence_wins(void)
{
    bp_http_request_t req = req_with_query("a=1&a=2");
    char out[8];
    CHECK_INT(bp_http_query_param(&req, "a", out, sizeof(out)), 1);
    CHECK_STR(out, "1");
}

static void a_key_without_value_is_found_empty(void)
{
    bp_http_request_t req = req_with_query("flag&&x=1&empty=");
    char out[8] = "junk";
    CHECK_INT(bp_http_query_param(&req, "flag", out, sizeof(out)), 1);
    CHECK_STR(out, "");
    CHECK_INT(bp_http_query_param(&req, "empty", out, sizeof(out)), 1);
    CHECK_STR(out, "");
    CHECK_INT(bp_http_query_param(&req, "x", out, sizeof(out)), 1);
    CHECK_STR(out, "1");
}

static void broken_percent_encoding_is_einval(void)
{
    static const char *bad[] = {"v=%zz", "v=%4", "v=%", "v=abc%2", "v=%00"};
    char out[16];
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        bp_http_request_t req = req_with_query(bad[i]);
        CHECK_INT(bp_http_query_param(&req, "v", out, sizeof(out)), BP_EINVAL);
    }
}

static void a_value_that_does_not_fit_is_etoobig(void)
{
    bp_http_request_t req = req_with_query("v=12345");
    char out[5];
    CHECK_INT(bp_http_query_param(&req, "v", out, sizeof(out)), BP_ETOOBIG);
    char fits[6];
    CHECK_INT(bp_http_query_param(&req, "v", fits, sizeof(fits)), 1);
    CHECK_STR(fits, "12345");
    req = req_with_query("v=%41%42%43%44%45"); /* decodes to 5 bytes: still fits in 6 */
    CHECK_INT(bp_http_query_param(&req, "v", fits, sizeof(fits)), 1);
    CHECK_STR(fits, "ABCDE");
}

static void header_lookup_ignores_case(void)
{
    bp_http_header_t h[] = {{"content-type", "application/json"}, {"traceparent", "tp"}};
    bp_http_request_t req = {.headers = h, .num_headers = 2};
    CHECK_STR(bp_http_header(&req, "Content-Type"), "application/json");
    CHECK_STR(bp_http_header(&req, "traceparent"), "tp");
    CHECK(bp_http_header(&req, "authorization") == NULL);
}

static void respond_error_writes_an_escaped_json_error(void)
{
    bp_http_response_t res;
    bp_http__response_init(&res, 1 << 20);
    bp_http_respond_error(&res, 400, "invalid_argument", "bad \"%s\"\n", "x");
    CHECK_INT(res.status, 400);
    CHECK_STR(res.content_type, "application/json");
    cJSON *doc = cJSON_Parse(res.body.base);
    CHECK(doc != NULL);
    cJSON *e = cJSON_GetObjectItem(doc, "error");
    CHECK_STR(cJSON_GetObjectItem(e, "code")->valuestring, "invalid_argument");
    CHECK_STR(cJSON_GetObjectItem(e, "message")->valuestring, "bad \"x\"\n");
    cJSON_Delete(doc);
    bp_http__response_free(&res);
}

static void respond_err_maps_the_code_to_status_and_name(void)
{
    bp_http_response_t res;
    bp_http__response_init(&res, 1 << 20);
    bp_err_t err;
    bp_err_set(&err, BP_EDB, "connection refused");
    bp_http_respond_err(&res, &err);
    CHECK_INT(res.status, 503);
    CHECK_STR(res.body.base,
              "{\"error\":{\"code\":\"database_unavailable\",\"message\":\"connection refused\"}}");
    bp_err_set(&err, BP_ETOOBIG, "%s", "");
    bp_http_respond_err(&res, &err);
    CHECK_INT(res.status, 413);
    CHECK_STR(res.body.base, "{\"error\":{\"code\":\"too_large\",\"message\":\"too_large\"}}");
    bp_http__response_free(&res);
}

static void add_header_copies_lowercases_and_stops_when_full(void)
{
    bp_http_response_t res;
    bp_http__response_init(&res, 1024);
    char name[16] = "Cache-Control";
    CHECK_INT(bp_http_add_header(&res, name, "no-store"), 0);
    name[0] = 'X';
    CHECK_STR(res.headers[0].name, "cache-control");
    CHECK_STR(res.headers[0].value, "no-store");
    for (int i = 1; i < BP_HTTP_MAX_RES_HEADERS; i++)
        CHECK_INT(bp_http_add_header(&res, "x-n", "v"), 0);
    CHECK_INT(bp_http_add_header(&res, "x-over", "v"), BP_ETOOBIG);
    CHECK_INT(res.num_headers, BP_HTTP_MAX_RES_HEADERS);
    bp_http__response_free(&res);
}

static void noop(void *w, const bp_http_request_t *r, bp_http_response_t *s)
{
    (void)w;
    (void)r;
    (void)s;
}

static void routes_match_exactly_or_by_prefix_ending_in_slash(void)
{
    static const bp_http_route_t routes[] = {
        {"GET", "/charts/", "charts", noop},
        {"POST", "/events", "events", noop},
    };
    bp_http_server_config_t cfg = {.routes = routes, .num_routes = 2};
    server_t srv = {.cfg = &cfg};
    bool known;
#define MATCH(m, p) match_route(&srv, m, strlen(m), p, strlen(p), &known)
    CHECK(MATCH("GET", "/charts/x.png") == &routes[0]);
    CHECK(MATCH("GET", "/charts") == NULL && !known);
    CHECK(MATCH("POST", "/events") == &routes[1]);
    CHECK(MATCH("POST", "/events/x") == NULL && !known);
    CHECK(MATCH("GET", "/events") == NULL && known);
    const bp_http_route_t *r = MATCH("GET", "/healthz");
    CHECK(r != NULL && r->handler == NULL && strcmp(r->name, "healthz") == 0);
#undef MATCH
    char allow[64];
    allowed_methods(&srv, "/events", 7, allow, sizeof(allow));
    CHECK_STR(allow, "POST");
}

int main(void)
{
    RUN(a_present_parameter_is_found_and_percent_decoded);
    RUN(an_absent_parameter_returns_0);
    RUN(a_longer_or_shorter_name_does_not_match);
    RUN(plus_stays_a_plus_so_rfc3339_offsets_survive);
    RUN(utf8_and_reserved_characters_decode);
    RUN(an_encoded_key_matches_its_decoded_name);
    RUN(the_first_occurrence_wins);
    RUN(a_key_without_value_is_found_empty);
    RUN(broken_percent_encoding_is_einval);
    RUN(a_value_that_does_not_fit_is_etoobig);
    RUN(header_lookup_ignores_case);
    RUN(respond_error_writes_an_escaped_json_error);
    RUN(respond_err_maps_the_code_to_status_and_name);
    RUN(add_header_copies_lowercases_and_stops_when_full);
    RUN(routes_match_exactly_or_by_prefix_ending_in_slash);
    TEST_DONE();
}
