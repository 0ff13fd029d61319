#include "raster.h"

#include "err.h"

#include <math.h>
#include <stdlib.h>

/* A segment with what the distance test needs; a dot has both ends equal. */
typedef struct st_seg_t {
    double x0, y0, x1, y1;
    double dx, dy;
    double len2, inv_len; /* both 0 for a dot */
} seg_t;

static seg_t make_seg(const bp_raster_vertex_t *a, const bp_raster_vertex_t *b)
{
    seg_t s = {a->x, a->y, b->x, b->y, b->x - a->x, b->y - a->y, 0, 0};
    if (s.dx < 0) { /* keep x0 <= x1 so the column window can slide */
        s = (seg_t){b->x, b->y, a->x, a->y, a->x - b->x, a->y - b->y, 0, 0};
    }
    s.len2 = s.dx * s.dx + s.dy * s.dy;
    s.inv_len = s.len2 > 0 ? 1 / sqrt(s.len2) : 0;
    return s;
}

/* The y values the segment takes for x in [xa, xb] (clamped to the segment). */
static void y_range(const seg_t *s, double xa, double xb, double *lo, double *hi)
{
    double ya = s->y0, yb = s->y1;
    if (s->dx > 0) {
        double ta = (xa - s->x0) / s->dx, tb = (xb - s->x0) / s->dx;
        ta = ta < 0 ? 0 : ta > 1 ? 1 : ta;
        tb = tb < 0 ? 0 : tb > 1 ? 1 : tb;
        ya = s->y0 + ta * s->dy;
        yb = s->y0 + tb * s->dy;
    }
    *lo = fmin(ya, yb);
    *hi = fmax(ya, yb);
}

/* Coverage of the pixels of column px by one segment, max-combined into cov (a union of
 * round-pen strokes: where two segments overlap at a join the pixel is not drawn twice).
 * Beside the segment the distance is the cross product over the length, updated by a
 * constant per row; only pixels past an end need the distance to that end. */
static void cover(const seg_t *s, int px, double r, const bp_raster_clip_t *clip, float *cov, int *tmin,
                  int *tmax)
{
    double lo, hi;
    y_range(s, px - r, px + 1 + r, &lo, &hi);
    if (lo - r - 1 > clip->y1 || hi + r < clip->y0)
        return; /* also keeps a vertex far outside the clip from overflowing the ints below */
    int y0 = (int)fmax(ceil(lo - r - 1), clip->y0), y1 = (int)fmin(floor(hi + r), clip->y1 - 1);
    if (y0 > y1)
        return;
    double outer = r + 0.5, outer2 = outer * outer;
    double cx = px + 0.5 - s->x0, cy = y0 + 0.5 - s->y0;
    double dot = cx * s->dx + cy * s->dy, cross = cx * s->dy - cy * s->dx;
    for (int py = y0; py <= y1; py++, dot += s->dy, cross -= s->dx) {
        double d;
        if (dot > 0 && dot < s->len2) {
            d = fabs(cross) * s->inv_len;
        } else {
            double ex = dot <= 0 ? cx : cx - s->dx, ey = (dot <= 0 ? py + 0.5 - s->y0 : py + 0.5 - s->y1);
            double d2 = ex * ex + ey * ey;
            if (d2 >= outer2)
                continue;
            d = sqrt(d2);
        }
        float c = (float)(outer - d);
        if (c <= 0)
            continue;
        if (c > 1)
            c = 1;
        if (c > cov[py])
            cov[py] = c;
    }
    if (y0 < *tmin)
        *tmin = y0;
    if (y1 > *tmax)
        *tmax = y1;
}

static inline uint32_t blend(uint32_t dst, uint32_t rgb, unsigned a)
{
    uint32_t out = dst & 0xff000000u;
    for (int sh = 0; sh <= 16; sh += 8) {
        unsigned d = dst >> sh & 0xff, s = rgb >> sh & 0xff;
        out |= (uint32_t)((s * a + d * (255 - a) + 127) / 255) << sh;
    }
    return out;
}

int bp_raster_polyline(cairo_surface_t *surface, const bp_raster_clip_t *clip, const bp_raster_vertex_t *v,
                       size_t n, double width, uint32_t rgb)
{
    if (cairo_surface_get_type(surface) != CAIRO_SURFACE_TYPE_IMAGE)
        return BP_EINVAL;
    cairo_format_t fmt = cairo_image_surface_get_format(surface);
    if (fmt != CAIRO_FORMAT_RGB24 && fmt != CAIRO_FORMAT_ARGB32)
        return BP_EINVAL;
    if (n == 0)
        return 0;
    cairo_surface_flush(surface);
    unsigned char *data = cairo_image_surface_get_data(surface);
    int sw = cairo_image_surface_get_width(surface), sh = cairo_image_surface_get_height(surface);
    int stride = cairo_image_surface_get_stride(surface);
    bp_raster_clip_t c = *clip;
    c.x0 = c.x0 < 0 ? 0 : c.x0;
    c.y0 = c.y0 < 0 ? 0 : c.y0;
    c.x1 = c.x1 > sw ? sw : c.x1;
    c.y1 = c.y1 > sh ? sh : c.y1;
    if (data == NULL || c.x0 >= c.x1 || c.y0 >= c.y1)
        return 0;

    seg_t *segs = malloc(n * sizeof(*segs));
    float *cov = calloc((size_t)sh, sizeof(*cov));
    if (segs == NULL || cov == NULL) {
        free(segs);
        free(cov);
        return BP_ENOMEM;
    }
    size_t ns = 0;
    double xmin = INFINITY, xmax = -INFINITY;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(v[i].x) || !isfinite(v[i].y))
            continue;
        if (!v[i].move && i > 0 && isfinite(v[i - 1].x) && isfinite(v[i - 1].y))
            segs[ns++] = make_seg(&v[i - 1], &v[i]);
        else if (i + 1 == n || v[i + 1].move)
            segs[ns++] = make_seg(&v[i], &v[i]); /* a piece of one vertex: a dot */
        xmin = fmin(xmin, v[i].x);
        xmax = fmax(xmax, v[i].x);
    }
    double r = width / 2;
    if (!(xmin - r - 1 < c.x1 && xmax + r + 1 > c.x0)) { /* also: no vertex, or none in reach */
        free(segs);
        free(cov);
        return 0;
    }
    int px0 = (int)fmax(floor(xmin - r - 1), c.x0), px1 = (int)fmin(ceil(xmax + r + 1), c.x1);
    size_t lo = 0;
    for (int px = px0; px < px1; px++) {
        /* only segments within r of this column reach it; x0 and x1 never decrease along the
         * polyline, so the window only slides right */
        while (lo < ns && segs[lo].x1 < px - r - 1)
            lo++;
        int tmin = c.y1, tmax = c.y0 - 1;
        for (size_t k = lo; k < ns && segs[k].x0 <= px + 1 + r; k++) {
            if (segs[k].x1 >= px - r)
                cover(&segs[k], px, r, &c, cov, &tmin, &tmax);
        }
        for (int py = tmin; py <= tmax; py++) {
            unsigned a = (unsigned)(cov[py] * 255 + 0.5f);
            cov[py] = 0;
            if (a == 0)
                continue;
            uint32_t *p = (uint32_t *)(void *)(data + (size_t)py * (size_t)stride) + px;
            *p = a >= 255 ? (*p & 0xff000000u) | (rgb & 0xffffff) : blend(*p, rgb, a);
        }
    }
    free(segs);
    free(cov);
    cairo_surface_mark_dirty(surface);
    return 0;
}
