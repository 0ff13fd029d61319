/*
 * utf8: making text safe for the drawing libraries. cairo refuses invalid UTF-8 with a sticky
 * error (the whole chart would fail) and libharu's base-14 fonts only know single bytes, so
 * text from the database or a URL passes through here first.
 * Thread-safe: no state.
 */
#ifndef BP_RENDER_UTF8_H
#define BP_RENDER_UTF8_H

#include <stdbool.h>
#include <stddef.h>

/* Copies s (NUL-terminated) into out (outsz > 0 bytes, always NUL-terminated), replacing each
 * invalid UTF-8 byte by '?' and, when ascii_only, each non-ASCII character by '?' too.
 * Truncates on a character boundary when out is too small. Returns true when the copy kept
 * non-ASCII characters (the caller then needs a font that has them). */
bool bp_utf8_sanitize(const char *s, char *out, size_t outsz, bool ascii_only);

#endif
