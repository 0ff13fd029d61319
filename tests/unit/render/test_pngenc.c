/* pngenc: the PNG decodes (zlib checks the adler32, the test every chunk CRC) to exactly the
 * pixels of the surface, for a chart, for noise (nothing but literals: many deflate blocks and
 * IDAT chunks) and for the widest surface (the row-above distance is the longest); the Huffman
 * codes stay complete and within deflate's length limits. */
#include <stdlib.h>
#include <zlib.h>

#include "../test.h"
#include "../../../functions/render/pngenc.c"

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Walks the chunks checking each CRC, inflates the IDAT data and compares it with surface.
 * Returns the number of IDAT chunks, or -1 (with a diagnostic) when anything is off. */
static int decode_and_compare(const bp_buf_t *png, cairo_surface_t *surface)
{
    const unsigned char *b = (const unsigned char *)png->base;
    int w = cairo_image_surface_get_width(surface), h = cairo_image_surface_get_height(surface);
    if (png->len < 8 || memcmp(b, "\x89PNG\r\n\x1a\n", 8) != 0)
        return -1;
    size_t raw_len = (size_t)h * (size_t)(3 * w + 1);
    unsigned char *z = malloc(png->len), *raw = malloc(raw_len + 1);
    size_t zlen = 0, pos = 8;
    int idats = 0, rc = 0;
    bool iend = false;
    while (rc == 0 && pos + 12 <= png->len && !iend) {
        uint32_t len = be32(b + pos);
        if (pos + 12 + len > png->len) {
            rc = -1;
            break;
        }
        const unsigned char *type = b + pos + 4, *data = b + pos + 8;
        if ((uint32_t)crc32(0, type, 4 + len) != be32(data + len)) {
            printf("#   bad CRC on chunk %.4s\n", (const char *)type);
            rc = -1;
        } else if (memcmp(type, "IHDR", 4) == 0) {
            if (len != 13 || be32(data) != (uint32_t)w || be32(data + 4) != (uint32_t)h || data[8] != 8 ||
                data[9] != 2)
                rc = -1;
        } else if (memcmp(type, "IDAT", 4) == 0) {
            memcpy(z + zlen, data, len);
            zlen += len;
            idats++;
        } else if (memcmp(type, "IEND", 4) == 0) {
            iend = true;
        }
        pos += 12 + len;
    }
    uLongf got = (uLongf)raw_len + 1;
    if (rc == 0 && (!iend || pos != png->len)) {
        printf("#   IEND missing or not last\n");
        rc = -1;
    }
    if (rc == 0 && uncompress(raw, &got, z, (uLong)zlen) != Z_OK) {
        printf("#   the zlib stream does not inflate (or its adler32 is wrong)\n");
        rc = -1;
    }
    if (rc == 0 && got != raw_len) {
        printf("#   inflated %lu bytes, expected %zu\n", (unsigned long)got, raw_len);
        rc = -1;
    }
    const unsigned char *px = cairo_image_surface_get_data(surface);
    int stride = cairo_image_surface_get_stride(surface);
    for (int y = 0; rc == 0 && y < h; y++) {
        const unsigned char *row = raw + (size_t)y * (size_t)(3 * w + 1);
        const uint32_t *src = (const uint32_t *)(const void *)(px + (size_t)y * (size_t)stride);
        if (row[0] != 0)
            rc = -1;
        for (int x = 0; rc == 0 && x < w; x++) {
            uint32_t p = src[x];
            if (row[1 + 3 * x] != (p >> 16 & 0xff) || row[2 + 3 * x] != (p >> 8 & 0xff) ||
                row[3 + 3 * x] != (p & 0xff)) {
                printf("#   pixel %d,%d differs\n", x, y);
                rc = -1;
            }
        }
    }
    free(z);
    free(raw);
    return rc == 0 ? idats : -1;
}

/* Flat colour, runs, a diagonal, a few rows equal to the one above: what a chart is made of. */
static cairo_surface_t *chart_like(int w, int h)
{
    cairo_surface_t *s = cairo_image_surface_create(CAIRO_FORMAT_RGB24, w, h);
    cairo_t *cr = cairo_create(s);
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_paint(cr);
    cairo_set_source_rgb(cr, 0.9, 0.9, 0.9);
    cairo_rectangle(cr, 10, 10, w - 20, h - 20);
    cairo_fill(cr);
    cairo_set_source_rgb(cr, 0.39, 0.58, 0.93);
    cairo_set_line_width(cr, 1.6);
    cairo_move_to(cr, 0, h);
    cairo_line_to(cr, w, 0);
    cairo_stroke(cr);
    cairo_destroy(cr);
    cairo_surface_flush(s);
    return s;
}

static cairo_surface_t *noise(int w, int h)
{
    cairo_surface_t *s = cairo_image_surface_create(CAIRO_FORMAT_RGB24, w, h);
    unsigned char *d = cairo_image_surface_get_data(s);
    int stride = cairo_image_surface_get_stride(s);
    uint32_t x = 2463534242u;
    for (int y = 0; y < h; y++) {
        uint32_t *row = (uint32_t *)(void *)(d + (size_t)y * (size_t)stride);
        for (int i = 0; i < w; i++) {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            row[i] = x; /* the top byte is garbage on purpose: it must be ignored */
        }
    }
    cairo_surface_mark_dirty(s);
    return s;
}

static void check_roundtrip(cairo_surface_t *s, int min_idats)
{
    bp_buf_t png;
    bp_buf_init(&png, 64 << 20);
    bp_err_t err = {0};
    CHECK_INT(bp_pngenc_write(s, &png, &err), 0);
    int idats = decode_and_compare(&png, s);
    CHECK(idats >= min_idats);
    if (idats < min_idats)
        printf("#   %d IDAT chunks, wanted >= %d\n", idats, min_idats);
    bp_buf_free(&png);
    cairo_surface_destroy(s);
}

static void a_chart_like_picture_decodes_to_its_pixels(void)
{
    check_roundtrip(chart_like(1200, 600), 1);
}

static void noise_decodes_to_its_pixels_over_many_idat_chunks(void)
{
    check_roundtrip(noise(700, 300), 10);
}

static void the_widest_surface_decodes_to_its_pixels(void)
{
    check_roundtrip(chart_like(4000, 50), 1);
    check_roundtrip(noise(4000, 7), 1);
}

static void a_one_pixel_surface_decodes(void)
{
    check_roundtrip(noise(1, 1), 1);
}

/* Sum of 2^(15 - len) over the coded symbols: exactly 2^15 for a complete prefix code. */
static long kraft(const uint8_t *len, int n)
{
    long sum = 0;
    for (int i = 0; i < n; i++)
        sum += len[i] > 0 ? 1L << (15 - len[i]) : 0;
    return sum;
}

static void huffman_codes_are_complete_and_no_longer_than_allowed(void)
{
    uint32_t freq[NUM_LITLEN] = {0};
    uint8_t len[NUM_LITLEN];
    /* Fibonacci counts make the deepest tree there is: 29 levels for 30 symbols */
    freq[0] = freq[1] = 1;
    for (int i = 2; i < 30; i++)
        freq[i] = freq[i - 1] + freq[i - 2];
    huffman_lengths(freq, 30, MAX_BITS, len);
    int deepest = 0;
    for (int i = 0; i < 30; i++)
        deepest = len[i] > deepest ? len[i] : deepest;
    CHECK(deepest <= MAX_BITS);
    CHECK_INT(kraft(len, 30), 1L << 15);
    huffman_lengths(freq, NUM_CL, MAX_CL_BITS, len);
    for (int i = 0; i < NUM_CL; i++)
        CHECK(len[i] >= 1 && len[i] <= MAX_CL_BITS);
    CHECK_INT(kraft(len, NUM_CL), 1L << 15);
    /* one symbol in use still makes a complete code of two (inflate refuses less) */
    memset(freq, 0, sizeof(freq));
    freq[7] = 1000;
    huffman_lengths(freq, NUM_DIST, MAX_BITS, len);
    CHECK_INT(len[7], 1);
    CHECK_INT(kraft(len, NUM_DIST), 1L << 15);
}

static void the_ceiling_is_enforced(void)
{
    cairo_surface_t *s = noise(300, 200);
    bp_buf_t png;
    bp_buf_init(&png, 4096);
    bp_err_t err = {0};
    CHECK_INT(bp_pngenc_write(s, &png, &err), BP_ETOOBIG);
    CHECK(strstr(err.msg, "4096 bytes") != NULL);
    bp_buf_free(&png);
    cairo_surface_destroy(s);
}

static void a_non_image_surface_is_refused(void)
{
    cairo_surface_t *s = cairo_recording_surface_create(CAIRO_CONTENT_COLOR, NULL);
    bp_buf_t png;
    bp_buf_init(&png, 4096);
    bp_err_t err = {0};
    CHECK_INT(bp_pngenc_write(s, &png, &err), BP_EINTERNAL);
    CHECK_INT((int)png.len, 0);
    bp_buf_free(&png);
    cairo_surface_destroy(s);
}

int main(void)
{
    RUN(a_chart_like_picture_decodes_to_its_pixels);
    RUN(noise_decodes_to_its_pixels_over_many_idat_chunks);
    RUN(the_widest_surface_decodes_to_its_pixels);
    RUN(a_one_pixel_surface_decodes);
    RUN(huffman_codes_are_complete_and_no_longer_than_allowed);
    RUN(the_ceiling_is_enforced);
    RUN(a_non_image_surface_is_refused);
    cairo_debug_reset_static_data();
    TEST_DONE();
}
