/*
 * pngenc: encoding a cairo image surface as PNG with libpng, tuned for speed. cairo's own writer
 * uses zlib's default level and adaptive filtering; for a chart that is ~75-80% of the render
 * time (DESIGN §8). Charts are mostly flat colour, so zlib level 1 with the SUB filter costs a
 * fraction of that for a file ~15% larger.
 *
 * Thread-safe: no shared state (libpng keeps everything in its per-call structs).
 */
#ifndef BP_RENDER_PNGENC_H
#define BP_RENDER_PNGENC_H

#include <cairo.h>

#include "buf.h"
#include "err.h"

#define BP_PNGENC_FAST_LEVEL 1

/* Appends the PNG of surface (CAIRO_FORMAT_RGB24 or ARGB32 read as opaque; flushed) to out at
 * zlib level 0..9. Returns 0, BP_ETOOBIG when out's ceiling is hit (out then holds a partial
 * PNG the caller must discard), BP_ENOMEM, or BP_EINTERNAL (libpng failed) with err. */
int bp_pngenc_write(cairo_surface_t *surface, int level, bp_buf_t *out, bp_err_t *err);

#endif
