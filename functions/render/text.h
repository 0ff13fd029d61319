/*
 * text: drawing UTF-8 labels with cairo so that any mix of scripts comes out. cairo's toy text
 * API draws a string with one font and has no per-glyph fallback, so a Chinese title in DejaVu
 * Sans would be boxes. Here each character is drawn with the first font of a chain that has
 * it: DejaVu Sans (Latin, Greek, Cyrillic, symbols), then WenQuanYi Zen Hei (CJK, kana,
 * hangul), whose coverage comes from fontconfig (the font's charset), not from guessing by
 * code point ranges. No shaping is done: scripts that need it (Arabic joining, Indic
 * reordering) show their characters unjoined; labels here are metric names, numbers, dates.
 *
 * Thread-safe: the font faces and charsets are resolved once (pthread_once) and only read
 * afterwards; cairo font faces are reference counted atomically.
 */
#ifndef BP_RENDER_TEXT_H
#define BP_RENDER_TEXT_H

#include <stdbool.h>

#include <cairo.h>

#define BP_TEXT_FONT_LATIN "DejaVu Sans"
#define BP_TEXT_FONT_CJK "WenQuanYi Zen Hei"

/* Advance width of s (valid UTF-8, see utf8.h) at size in user units. */
double bp_text_width(cairo_t *cr, const char *s, double size, bool bold);

/* Draws s with its baseline at y; ax 0 left-aligns at x, 0.5 centres, 1 right-aligns. Uses the
 * current source colour. */
void bp_text_draw(cairo_t *cr, const char *s, double x, double y, double ax, double size, bool bold);

/* Drops the font faces and charsets (then fontconfig's caches may be freed). Call once at exit,
 * when nothing is drawing; text drawn afterwards falls back to cairo's default font. */
void bp_text_release(void);

#endif
