/*
 * http/internal: what shared/http's files share with each other and nobody else (module-private,
 * hence the double underscore).
 */
#ifndef BP_HTTP_INTERNAL_H
#define BP_HTTP_INTERNAL_H

#include "buf.h"
#include "http/server.h"

/* A response as handlers get it: status 200, no headers, an empty body with ceiling max. */
void bp_http__response_init(bp_http_response_t *res, size_t max);

/* Frees the headers and the body. */
void bp_http__response_free(bp_http_response_t *res);

/* Sets a JSON error response (msg is escaped); on allocation failure a bodiless 500. */
void bp_http__respond_error_msg(bp_http_response_t *res, int status, const char *code, const char *msg);

/* Appends {"error":{"code":code,"message":msg}} to out. */
int bp_http__append_error_json(bp_buf_t *out, const char *code, const char *msg);

#endif
