#include "pngenc.h"

#include <png.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* Where libpng's output and errors go. libpng reports errors by longjmp from its error
 * callback; the jump lands in write_png, which only returns, so no resource leaks past it. */
typedef struct st_sink_t {
    bp_buf_t *out;
    int rc;
    char msg[128];
} sink_t;

static void on_write(png_structp png, png_bytep data, png_size_t len)
{
    sink_t *s = png_get_io_ptr(png);
    int rc = bp_buf_append(s->out, data, len);
    if (rc != 0) {
        s->rc = rc;
        png_error(png, rc == BP_ETOOBIG ? "over the size ceiling" : "out of memory");
    }
}

static void on_flush(png_structp png)
{
    (void)png;
}

static void on_error(png_structp png, png_const_charp msg)
{
    sink_t *s = png_get_error_ptr(png);
    snprintf(s->msg, sizeof(s->msg), "%s", msg);
    png_longjmp(png, 1);
}

static void on_warning(png_structp png, png_const_charp msg)
{
    (void)png;
    (void)msg;
}

/* Everything between setjmp and the end is here, with no local state a longjmp could leave
 * stale (-Wclobbered). Returns 0 or -1 (the sink says why). */
static int write_png(png_structp png, png_infop info, const unsigned char *data, int w, int h, int stride,
                     int level)
{
    if (setjmp(png_jmpbuf(png)))
        return -1;
    png_set_compression_level(png, level);
    /* SUB: each byte minus its left neighbour; flat runs become zeros, at almost no cost. */
    png_set_filter(png, PNG_FILTER_TYPE_BASE, PNG_FILTER_SUB);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_BASE, PNG_FILTER_TYPE_BASE);
    png_write_info(png, info);
    /* cairo keeps a pixel as one native-endian uint32 0xXXRRGGBB: B,G,R,X in memory on a
     * little-endian machine. libpng drops the filler byte and swaps to RGB while writing. */
    const uint32_t probe = 1;
    if (*(const unsigned char *)&probe == 1) {
        png_set_bgr(png);
        png_set_filler(png, 0, PNG_FILLER_AFTER);
    } else {
        png_set_filler(png, 0, PNG_FILLER_BEFORE);
    }
    for (int y = 0; y < h; y++)
        png_write_row(png, (png_const_bytep)(data + (size_t)y * (size_t)stride));
    png_write_end(png, NULL);
    return 0;
}

int bp_pngenc_write(cairo_surface_t *surface, int level, bp_buf_t *out, bp_err_t *err)
{
    cairo_format_t fmt = cairo_image_surface_get_format(surface);
    if (fmt != CAIRO_FORMAT_RGB24 && fmt != CAIRO_FORMAT_ARGB32)
        return bp_err_set(err, BP_EINTERNAL, "png: unsupported surface format %d", (int)fmt);
    const unsigned char *data = cairo_image_surface_get_data(surface);
    int w = cairo_image_surface_get_width(surface), h = cairo_image_surface_get_height(surface);
    int stride = cairo_image_surface_get_stride(surface);
    if (data == NULL || w <= 0 || h <= 0)
        return bp_err_set(err, BP_EINTERNAL, "png: empty surface");
    sink_t sink = {.out = out};
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &sink, on_error, on_warning);
    if (png == NULL)
        return bp_err_set(err, BP_ENOMEM, "png: cannot create the encoder");
    png_infop info = png_create_info_struct(png);
    if (info == NULL) {
        png_destroy_write_struct(&png, NULL);
        return bp_err_set(err, BP_ENOMEM, "png: cannot create the encoder");
    }
    png_set_write_fn(png, &sink, on_write, on_flush);
    int rc = write_png(png, info, data, w, h, stride, level < 0 ? 0 : level > 9 ? 9 : level);
    png_destroy_write_struct(&png, &info);
    if (rc == 0)
        return 0;
    if (sink.rc == BP_ETOOBIG)
        return bp_err_set(err, BP_ETOOBIG, "chart: PNG larger than %zu bytes", out->max);
    if (sink.rc != 0)
        return bp_err_set(err, sink.rc, "png: out of memory");
    return bp_err_set(err, BP_EINTERNAL, "png: %s", sink.msg);
}
