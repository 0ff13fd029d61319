/*
 * pngenc: encoding a cairo image surface as PNG, fast, for charts. A chart is mostly flat
 * colour: long runs of one pixel and rows equal to the row above over most of their width. A
 * general deflate (zlib, even at level 1, plus libpng's filtering) spent ~5 ms on a 1200x600
 * chart searching for matches it does not need. Here the only matches tried are the two that
 * pay on a chart -- "same pixels as the row above" and "same pixel as the one to the left" --
 * compared a pixel (4 bytes) at a time straight from cairo's memory, and emitted as one deflate
 * block with the fixed Huffman codes (RFC 1951 §3.2.6), so there is no second pass and no
 * table to build. Every row uses PNG filter type 0 (None): the row-above match does the work of
 * the Up filter. The file is a plain 8-bit RGB PNG any decoder reads. It costs ~1 ms for a
 * 1200x600 chart instead of ~5 ms; the price is size: fixed codes spend 8-9 bits on each
 * antialiased pixel byte, so a busy day chart is ~35% larger than libpng's level-1 file
 * (~205 KB vs ~155 KB), a week chart about the same (~90 KB).
 *
 * Thread-safe: no shared state (the code tables are built per call).
 */
#ifndef BP_RENDER_PNGENC_H
#define BP_RENDER_PNGENC_H

#include <cairo.h>

#include "buf.h"
#include "err.h"

/* Appends the PNG of surface (CAIRO_FORMAT_RGB24, or ARGB32 read as opaque; flushed) to out.
 * Returns 0, BP_ETOOBIG when out's ceiling is hit (out then holds a partial PNG the caller
 * must discard), BP_ENOMEM, or BP_EINTERNAL (a surface that is not an image of those formats)
 * with err. */
int bp_pngenc_write(cairo_surface_t *surface, bp_buf_t *out, bp_err_t *err);

#endif
