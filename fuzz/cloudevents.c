/*
 * The CloudEvents decoder (shared/cloudevents.c) on hostile requests, both modes.
 *
 * Input: header lines "name: value" up to the first empty line (names lowercased as h2o
 * hands them over), then the body. Checks what cloudevents.h promises: a decoded event has
 * every required attribute, specversion 1.0, data_len bytes of data; a failure leaves ev
 * empty with a message. Then the round trip the functions rely on when they forward an event:
 * bp_ce_encode_binary's headers decode to the same attributes and data, and carry no byte
 * that would break an HTTP header line.
 */
#include <ctype.h>
#include <stdbool.h>

#include "cloudevents.h"
#include "fuzz.h"

#define MAX_HEADERS 32

static bool same(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static void check_round_trip(const bp_ce_t *ev)
{
    bp_http_header_t hdrs[8];
    int n = bp_ce_encode_binary(ev, hdrs, 8);
    if (n < 0) {
        FUZZ_CHECK(n == BP_ENOMEM || (n == BP_EINVAL && ev->datacontenttype != NULL &&
                                      strcasestr(ev->datacontenttype, "cloudevents") != NULL),
                   "encode failed with %d", n);
        return;
    }
    for (int i = 0; i < n; i++)
        for (const unsigned char *p = (const unsigned char *)hdrs[i].value; *p; p++)
            FUZZ_CHECK((*p >= 0x20 || *p == '\t') && *p != 0x7f, "header %s carries byte 0x%02x",
                       hdrs[i].name, *p); /* RFC 9110 §5.5: no CR, LF, NUL or other controls */
    bp_ce_t back;
    bp_err_t err;
    bp_err_clear(&err);
    int rc = bp_ce_decode(hdrs, (size_t)n, ev->data ? ev->data : "", ev->data_len, &back, &err);
    FUZZ_CHECK(rc == 0, "re-decoding our own binary event failed: %s", err.msg);
    FUZZ_CHECK(same(ev->id, back.id) && same(ev->source, back.source) && same(ev->type, back.type) &&
                   same(ev->specversion, back.specversion) && same(ev->subject, back.subject) &&
                   same(ev->time, back.time),
               "attributes changed in the round trip (id '%s' -> '%s')", ev->id,
               back.id ? back.id : "(null)");
    FUZZ_CHECK(back.data_len == ev->data_len &&
                   (ev->data_len == 0 || memcmp(back.data, ev->data, ev->data_len) == 0),
               "data changed in the round trip (%zu -> %zu bytes)", ev->data_len, back.data_len);
    bp_ce_clear(&back);
    bp_ce_free_headers(hdrs, (size_t)n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* The header block is text; the body is the bytes after the blank line, NULs included. */
    const uint8_t *sep = NULL;
    for (size_t i = 0; i + 1 < size; i++) {
        if (data[i] == '\n' && data[i + 1] == '\n') {
            sep = data + i;
            break;
        }
    }
    size_t head_len = sep ? (size_t)(sep - data) : 0;
    const uint8_t *body = sep ? sep + 2 : data;
    size_t body_len = size - (size_t)(body - data);
    char *head = fuzz_strndup(data, head_len);
    if (head == NULL)
        return 0;
    bp_http_header_t hdrs[MAX_HEADERS];
    size_t nh = 0;
    char *rest = head;
    while (rest != NULL && nh < MAX_HEADERS) {
        char *line = fuzz_next_field(&rest, '\n');
        char *colon = strchr(line, ':');
        if (colon == NULL)
            continue;
        *colon = '\0';
        char *value = colon + 1;
        while (*value == ' ')
            value++;
        for (char *p = line; *p; p++)
            *p = (char)tolower((unsigned char)*p);
        hdrs[nh].name = line;
        hdrs[nh].value = value;
        nh++;
    }
    /* The server hands bodies over NUL-terminated (server.h); so do we. */
    char *b = malloc(body_len + 1);
    if (b == NULL) {
        free(head);
        return 0;
    }
    if (body_len > 0)
        memcpy(b, body, body_len);
    b[body_len] = '\0';

    bp_ce_t ev;
    bp_err_t err;
    bp_err_clear(&err);
    int rc = bp_ce_decode(hdrs, nh, b, body_len, &ev, &err);
    if (rc == 0) {
        FUZZ_CHECK(ev.id && ev.id[0] && ev.source && ev.source[0] && ev.type && ev.type[0],
                   "a decoded event lacks a required attribute");
        FUZZ_CHECK(strcmp(ev.specversion, "1.0") == 0, "specversion '%s' accepted", ev.specversion);
        FUZZ_CHECK((ev.data == NULL) == (ev.data_len == 0) || ev.data != NULL, "data/data_len disagree");
        if (ev.data != NULL)
            FUZZ_CHECK(ev.data[ev.data_len] == '\0', "data is not NUL-terminated");
        check_round_trip(&ev);
        bp_ce_clear(&ev);
    } else {
        FUZZ_CHECK(rc == BP_EINVAL || rc == BP_EMEDIA || rc == BP_ENOMEM, "unexpected code %d", rc);
        FUZZ_CHECK(err.msg[0] != '\0', "error %d without a message", rc);
        FUZZ_CHECK(ev.id == NULL && ev.data == NULL && ev.type == NULL, "a failed decode left strings in ev");
    }
    free(b);
    free(head);
    return 0;
}
