/*
 * json: the few cJSON helpers every module needs, so field access and escaping are written
 * once. cJSON objects stay owned by whoever created them (cJSON_Delete there).
 * Thread-safe: no shared state (cJSON's default allocator hooks are never changed).
 */
#ifndef BP_JSON_H
#define BP_JSON_H

#include <stdbool.h>
#include <cjson/cJSON.h>

#include "buf.h"
#include "err.h"

/* The string member `key` of obj, or NULL when missing or not a string. */
const char *bp_json_str(const cJSON *obj, const char *key);

/* The number member `key` into *out; returns 1 when found and a number, 0 when absent,
 * BP_EINVAL when present but not a number. */
int bp_json_num(const cJSON *obj, const char *key, double *out);

/* Appends s as a JSON string literal (with quotes), escaping as RFC 8259 requires. Invalid
 * UTF-8 bytes are replaced by U+FFFD so the output is always valid JSON. */
int bp_json_append_str(bp_buf_t *out, const char *s);

/* Parses text (len bytes, need not be NUL-terminated) into *out; on failure returns BP_EINVAL
 * with err naming the byte offset. Caller cJSON_Delete()s *out. */
int bp_json_parse(const char *text, size_t len, cJSON **out, bp_err_t *err);

/* Prints obj unformatted into a malloc'd string (caller frees), or NULL on allocation
 * failure. */
char *bp_json_print(const cJSON *obj);

#endif
