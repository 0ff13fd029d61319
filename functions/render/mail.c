#include "mail.h"

#include <curl/curl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static int curl_failed(CURLcode rc, const char *what, const char *detail, bp_err_t *err)
{
    return bp_err_set(err, rc == CURLE_OUT_OF_MEMORY ? BP_ENOMEM : BP_EIO, "smtp: %s: %s%s%s", what,
                      curl_easy_strerror(rc), detail != NULL && detail[0] != '\0' ? ": " : "",
                      detail != NULL ? detail : "");
}

static bool plain_ascii(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        if (*p >= 0x80)
            return false;
    }
    return true;
}

static void base64(const unsigned char *in, size_t n, char *out)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        unsigned v =
            (unsigned)in[i] << 16 | (i + 1 < n ? (unsigned)in[i + 1] << 8 : 0) | (i + 2 < n ? in[i + 2] : 0);
        out[o++] = tab[v >> 18 & 63];
        out[o++] = tab[v >> 12 & 63];
        out[o++] = i + 1 < n ? tab[v >> 6 & 63] : '=';
        out[o++] = i + 2 < n ? tab[v & 63] : '=';
    }
    out[o] = '\0';
}

void bp_mail_header_value(const char *s, char *out, size_t outsz)
{
    char clean[1024];
    size_t n = 0;
    for (const char *p = s; *p != '\0' && n + 1 < sizeof(clean); p++)
        clean[n++] = *p == '\r' || *p == '\n' ? ' ' : *p;
    clean[n] = '\0';
    if (plain_ascii(clean)) {
        snprintf(out, outsz, "%s", clean);
        return;
    }
    /* Encoded words of at most 45 input bytes (60 base64 characters), cut between UTF-8
     * characters: RFC 2047 §5 forbids splitting one across words. */
    size_t o = 0;
    out[0] = '\0';
    for (size_t i = 0; i < n;) {
        size_t len = n - i > 45 ? 45 : n - i;
        while (i + len < n && ((unsigned char)clean[i + len] & 0xc0) == 0x80)
            len--;
        char b64[64];
        base64((const unsigned char *)clean + i, len, b64);
        int w = snprintf(out + o, outsz - o, "%s=?UTF-8?B?%s?=", o > 0 ? " " : "", b64);
        if (w < 0 || (size_t)w >= outsz - o) {
            out[o] = '\0';
            return;
        }
        o += (size_t)w;
        i += len;
    }
}

size_t bp_mail_split(char *buf, const char **out, size_t n, size_t max)
{
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
        while (*tok == ' ' || *tok == '\t')
            tok++;
        char *end = tok + strlen(tok);
        while (end > tok && (end[-1] == ' ' || end[-1] == '\t'))
            *--end = '\0';
        if (strchr(tok, '@') == NULL || strpbrk(tok, "\r\n<>") != NULL)
            continue;
        bool dup = false;
        for (size_t i = 0; i < n && !dup; i++)
            dup = strcmp(out[i], tok) == 0;
        if (!dup && n < max)
            out[n++] = tok;
    }
    return n;
}

/* Adds "Name: value" to the header list; false when out of memory. */
static bool add_header(struct curl_slist **list, const char *name, const char *value)
{
    char line[2048];
    snprintf(line, sizeof(line), "%s: %s", name, value);
    struct curl_slist *next = curl_slist_append(*list, line);
    if (next == NULL)
        return false;
    *list = next;
    return true;
}

int bp_mail_send(const bp_mail_config_t *cfg, const bp_mail_t *m, bp_err_t *err)
{
    if (cfg->url == NULL)
        return bp_err_set(err, BP_EINVAL, "smtp: BIZPULSE_SMTP_URL is not set");
    if (m->num_to == 0)
        return bp_err_set(err, BP_EINVAL, "smtp: no recipients");
    CURL *curl = curl_easy_init();
    if (curl == NULL)
        return bp_err_set(err, BP_ENOMEM, "smtp: cannot create a curl handle");
    struct curl_slist *rcpt = NULL, *headers = NULL;
    curl_mime *mime = NULL;
    char errbuf[CURL_ERROR_SIZE] = "";
    int rc = 0;

    char from[512], to_line[2048] = "", subject[1024], date[64], addr[600];
    snprintf(from, sizeof(from), "<%s>", cfg->from);
    size_t o = 0;
    for (size_t i = 0; i < m->num_to; i++) {
        snprintf(addr, sizeof(addr), "<%s>", m->to[i]);
        struct curl_slist *next = curl_slist_append(rcpt, addr);
        if (next == NULL) {
            rc = bp_err_set(err, BP_ENOMEM, "smtp: out of memory");
            goto out;
        }
        rcpt = next;
        int w = snprintf(to_line + o, sizeof(to_line) - o, "%s%s", i > 0 ? ", " : "", m->to[i]);
        if (w > 0 && (size_t)w < sizeof(to_line) - o)
            o += (size_t)w;
    }
    bp_mail_header_value(m->subject, subject, sizeof(subject));
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
    if (!add_header(&headers, "From", cfg->from) || !add_header(&headers, "To", to_line) ||
        !add_header(&headers, "Subject", subject) || !add_header(&headers, "Date", date) ||
        (m->message_id != NULL && !add_header(&headers, "Message-ID", m->message_id)) ||
        !add_header(&headers, "MIME-Version", "1.0")) {
        rc = bp_err_set(err, BP_ENOMEM, "smtp: out of memory");
        goto out;
    }

    mime = curl_mime_init(curl);
    curl_mimepart *text = mime != NULL ? curl_mime_addpart(mime) : NULL;
    if (text == NULL) {
        rc = bp_err_set(err, BP_ENOMEM, "smtp: out of memory");
        goto out;
    }
    CURLcode cc = curl_mime_data(text, m->text, CURL_ZERO_TERMINATED);
    if (cc == CURLE_OK)
        cc = curl_mime_type(text, "text/plain; charset=utf-8");
    if (cc == CURLE_OK)
        cc = curl_mime_encoder(text, "quoted-printable");
    if (cc == CURLE_OK && m->attach != NULL) {
        curl_mimepart *pdf = curl_mime_addpart(mime);
        cc = pdf == NULL ? CURLE_OUT_OF_MEMORY : curl_mime_data(pdf, m->attach, m->attach_len);
        if (cc == CURLE_OK)
            cc = curl_mime_filename(pdf, m->attach_name);
        if (cc == CURLE_OK)
            cc = curl_mime_type(pdf, "application/pdf");
        if (cc == CURLE_OK)
            cc = curl_mime_encoder(pdf, "base64");
    }
    if (cc != CURLE_OK) {
        rc = curl_failed(cc, "building the message", m->attach_name, err);
        goto out;
    }

    long connect_ms = cfg->timeout_ms / 3 > 1000 ? cfg->timeout_ms / 3 : 1000;
    if ((cc = curl_easy_setopt(curl, CURLOPT_URL, cfg->url)) != CURLE_OK ||
        (cc = curl_easy_setopt(curl, CURLOPT_MAIL_FROM, from)) != CURLE_OK ||
        (cc = curl_easy_setopt(curl, CURLOPT_MAIL_RCPT, rcpt)) != CURLE_OK ||
        (cc = curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers)) != CURLE_OK ||
        (cc = curl_easy_setopt(curl, CURLOPT_MIMEPOST, mime)) != CURLE_OK ||
        (cc = curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L)) != CURLE_OK ||
        (cc = curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, errbuf)) != CURLE_OK ||
        (cc = curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, connect_ms)) != CURLE_OK ||
        (cc = curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, cfg->timeout_ms)) != CURLE_OK ||
        (cfg->starttls && (cc = curl_easy_setopt(curl, CURLOPT_USE_SSL, (long)CURLUSESSL_ALL)) != CURLE_OK) ||
        (cfg->user != NULL && (cc = curl_easy_setopt(curl, CURLOPT_USERNAME, cfg->user)) != CURLE_OK) ||
        (cfg->user != NULL && cfg->password != NULL &&
         (cc = curl_easy_setopt(curl, CURLOPT_PASSWORD, cfg->password)) != CURLE_OK)) {
        rc = curl_failed(cc, "setting up the transfer", NULL, err);
        goto out;
    }
    cc = curl_easy_perform(curl);
    if (cc != CURLE_OK) /* the URL is not in the message: it may carry a password */
        rc = curl_failed(cc, "sending", errbuf, err);

out:
    curl_mime_free(mime);
    curl_slist_free_all(rcpt);
    curl_slist_free_all(headers);
    curl_easy_cleanup(curl);
    return rc;
}
