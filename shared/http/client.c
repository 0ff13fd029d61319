#include "http/client.h"

#include <curl/curl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

struct st_bp_http_client_t {
    CURL *curl;
};

bp_http_client_t *bp_http_client_new(void)
{
    bp_http_client_t *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    c->curl = curl_easy_init();
    if (c->curl == NULL) {
        free(c);
        return NULL;
    }
    return c;
}

void bp_http_client_free(bp_http_client_t *c)
{
    if (c == NULL)
        return;
    curl_easy_cleanup(c->curl);
    free(c);
}

/* The sink's answer body is not needed; discard it rather than let curl print it. */
static size_t discard(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    (void)ptr;
    (void)userdata;
    return size * nmemb;
}

int bp_http_client_send_ce(bp_http_client_t *c, const char *url, const bp_ce_t *ev, int *status,
                           bp_err_t *err)
{
    *status = 0;
    bp_http_header_t hdrs[10];
    int n = bp_ce_encode_binary(ev, hdrs, sizeof(hdrs) / sizeof(hdrs[0]) - 1);
    if (n < 0)
        return bp_err_set(err, n, "cannot encode CloudEvent headers");
    struct curl_slist *list = NULL;
    int rc = 0;
    char line[2048];
    for (int i = 0; i < n && rc == 0; i++) {
        snprintf(line, sizeof(line), "%s: %s", hdrs[i].name, hdrs[i].value);
        struct curl_slist *l = curl_slist_append(list, line);
        if (l == NULL)
            rc = bp_err_set(err, BP_ENOMEM, "out of memory");
        else
            list = l;
    }
    const char *trace = bp_log_trace_id();
    if (rc == 0 && trace[0] != '\0') {
        /* Propagate the trace so one incident's logs line up across the three functions. */
        snprintf(line, sizeof(line), "traceparent: 00-%s-%016llx-01", trace,
                 (unsigned long long)(((uint64_t)rand() << 32) | (unsigned)rand()) | 1ULL);
        struct curl_slist *l = curl_slist_append(list, line);
        if (l != NULL)
            list = l;
    }
    if (rc == 0) {
        /* Expect: 100-continue would add a round trip for every small event. */
        struct curl_slist *l = curl_slist_append(list, "Expect:");
        if (l != NULL)
            list = l;
    }
    bp_ce_free_headers(hdrs, (size_t)n);
    if (rc != 0) {
        curl_slist_free_all(list);
        return rc;
    }

    CURL *h = c->curl;
    curl_easy_reset(h);
    char errbuf[CURL_ERROR_SIZE] = "";
    CURLcode cc = CURLE_OK;
    if ((cc = curl_easy_setopt(h, CURLOPT_URL, url)) != CURLE_OK ||
        (cc = curl_easy_setopt(h, CURLOPT_HTTPHEADER, list)) != CURLE_OK ||
        (cc = curl_easy_setopt(h, CURLOPT_POSTFIELDS, ev->data ? ev->data : "")) != CURLE_OK ||
        (cc = curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(ev->data ? ev->data_len : 0))) !=
            CURLE_OK ||
        (cc = curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 2000L)) != CURLE_OK ||
        (cc = curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 10000L)) != CURLE_OK ||
        (cc = curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L)) != CURLE_OK ||
        (cc = curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf)) != CURLE_OK ||
        (cc = curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard)) != CURLE_OK ||
        (cc = curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https")) != CURLE_OK) {
        curl_slist_free_all(list);
        return bp_err_set(err, BP_EINTERNAL, "curl setup: %s", curl_easy_strerror(cc));
    }
    cc = curl_easy_perform(h);
    long code = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    /* The slist must outlive the transfer; the handle keeps no pointer after reset. */
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, NULL);
    curl_slist_free_all(list);
    *status = (int)code;
    if (cc != CURLE_OK)
        return bp_err_set(err, BP_EIO, "POST %s: %s", url, errbuf[0] ? errbuf : curl_easy_strerror(cc));
    if (code >= 200 && code < 300)
        return 0;
    /* Only answers that say this event can never be accepted end its retries (the Knative
     * delivery contract): a sink answering 404 or 401 may be a broker not ready yet or a
     * secret being rotated. */
    if (code == 400 || code == 413 || code == 415 || code == 422)
        return bp_err_set(err, BP_EINVAL, "POST %s: HTTP %ld (rejected)", url, code);
    return bp_err_set(err, BP_EIO, "POST %s: HTTP %ld (will retry)", url, code);
}
