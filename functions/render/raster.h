/*
 * raster: an antialiased polyline drawn straight into the pixels of a cairo image surface.
 * cairo strokes a polyline by building its outline (joins and caps at every vertex) and scan
 * converting that polygon; for a chart's metric line -- up to two vertices per pixel column --
 * that took 5 ms at 1 440 points and 12 ms at 10 080 of the whole ~10 ms and ~17 ms chart.
 * Here each pixel near the line gets the coverage of a round pen of the line's width, from its
 * distance to the nearest segment (clamp(width / 2 + 0.5 - distance, 0, 1), which is the exact
 * area covered for a horizontal or vertical line), computed one pixel column at a time, so the
 * cost is the number of pixels the line touches. Joins and ends are round, as a round pen
 * makes them. Where segments overlap a pixel takes the largest of their coverages (cairo
 * unites their areas instead), so where two teeth of a dense zigzag nearly touch a pixel can
 * come out lighter than cairo's; the total ink stays within a few percent (test_raster.c).
 *
 * The polyline must run left to right (x never decreases), which a time series does.
 *
 * Thread-safe: no shared state.
 */
#ifndef BP_RENDER_RASTER_H
#define BP_RENDER_RASTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cairo.h>

/* A vertex in device pixels (0,0 is the top left corner of the top left pixel). move starts a
 * new piece: no segment joins it to the vertex before. A piece of one vertex is a dot. */
typedef struct st_bp_raster_vertex_t {
    double x, y;
    bool move;
} bp_raster_vertex_t;

/* Pixels drawn are those with x0 <= x < x1 and y0 <= y < y1 (clipped to the surface too). */
typedef struct st_bp_raster_clip_t {
    int x0, y0, x1, y1;
} bp_raster_clip_t;

/* Blends the polyline v[0..n) of the given width (device pixels) in colour rgb (0xRRGGBB,
 * opaque) over surface, an RGB24 or ARGB32 image surface. Flushes the surface before and marks
 * it dirty after, so cairo drawing may continue on it. The caller keeps v. Returns 0, or
 * BP_ENOMEM (nothing drawn) or BP_EINVAL (not an image surface of those formats). */
int bp_raster_polyline(cairo_surface_t *surface, const bp_raster_clip_t *clip, const bp_raster_vertex_t *v,
                       size_t n, double width, uint32_t rgb);

#endif
