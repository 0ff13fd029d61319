/*
 * pngenc: encoding a cairo image surface as PNG, fast, for charts. A chart is mostly flat
 * colour: long runs of one pixel and rows equal to the row above over most of their width. A
 * general deflate (zlib, even at level 1, plus libpng's filtering) spent ~5 ms on a 1200x600
 * chart searching for matches it does not need. Here the only matches tried are the two that
 * pay on a chart -- "same pixels as the row above" and "same pixel as the one to the left" --
 * compared two pixels at a time straight from cairo's memory. Every row uses PNG filter type 0
 * (None): the row-above match does the work of the Up filter. The matches and literals are
 * then Huffman coded in deflate blocks of 64 Ki tokens with codes made for each block (RFC
 * 1951 §3.2.7): with two distances and a few colours in play that is a fifth to a third
 * smaller than deflate's fixed codes. The file is a plain 8-bit RGB PNG any decoder reads. About 1 ms for a
 * 1200x600 chart instead of ~5 ms, and about the size of libpng's level-1 file (165 KB vs
 * 155 KB for the benchmark's day, 72 KB vs 89 KB for its week).
 *
 * Thread-safe: no shared state (the tables are built per call).
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
