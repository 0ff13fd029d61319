/*
 * mail: one email with a PDF attached, over SMTP with libcurl (DESIGN §6 render): a
 * multipart/mixed message (curl's MIME API) whose text part is the summary sentence and the
 * links, and whose second part is the report (base64). smtp:// or smtps:// URLs; STARTTLS
 * required when configured (CURLUSESSL_ALL: the send fails rather than going out in clear);
 * login when a user is set.
 *
 * Sending is at least once at this level: a server that takes the message and then drops the
 * connection before answering looks like a failure and gets a retry. The Message-ID is
 * deterministic (incident and state), so such a repeat is recognisable as the same message.
 *
 * Thread-safe: each call makes and cleans up its own CURL handle (curl_global_init was done
 * by bp_app_init). Blocks up to the configured timeout.
 */
#ifndef BP_RENDER_MAIL_H
#define BP_RENDER_MAIL_H

#include <stdbool.h>
#include <stddef.h>

#include "err.h"

#define BP_MAIL_MAX_RECIPIENTS 50

/* Where and how to send; from the BIZPULSE_SMTP_* / BIZPULSE_MAIL_* environment. */
typedef struct st_bp_mail_config_t {
    const char *url;      /* smtp://host:port or smtps://host:port; NULL: email is off */
    const char *user;     /* NULL: no login */
    const char *password; /* with user */
    const char *from;     /* envelope and From: address */
    bool starttls;        /* require STARTTLS on smtp:// */
    long timeout_ms;      /* whole transfer; connecting gets a third of it */
} bp_mail_config_t;

/* One message. Strings are UTF-8 and the caller's. */
typedef struct st_bp_mail_t {
    const char *const *to;
    size_t num_to;
    const char *subject;
    const char *text;        /* the body's text part */
    const void *attach;      /* the PDF to attach (copied by bp_mail_send), or NULL for none */
    size_t attach_len;       /* its size */
    const char *attach_name; /* its file name in the message */
    const char *message_id;  /* "<...@...>", or NULL for none */
} bp_mail_t;

/* Sends m. Returns 0, or BP_EIO (connection, TLS, or the server refused: retry later) or
 * BP_EINVAL (a recipient or header that can never be sent) or BP_ENOMEM, with err saying what
 * the server or libcurl said. Does NOT log the password. */
int bp_mail_send(const bp_mail_config_t *cfg, const bp_mail_t *m, bp_err_t *err);

/* Splits a comma list of addresses ("a@x, b@y") into out (at most max; duplicates dropped),
 * appending to the n already there. Entries without '@' or with CR, LF, '<', '>' are skipped.
 * Returns the new count. The strings point into buf, which the call modifies. */
size_t bp_mail_split(char *buf, const char **out, size_t n, size_t max);

/* Appends the RFC 2047 form of a header value to out (outsz bytes): unchanged when plain
 * ASCII, else one or more =?UTF-8?B?...?= words. CR and LF become spaces (no header
 * injection). */
void bp_mail_header_value(const char *s, char *out, size_t outsz);

#endif
