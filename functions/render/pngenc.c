#include "pngenc.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

/* IDAT chunks are written whenever this much compressed data is staged. */
#define CHUNK_DATA 65536
#define ADLER_MOD 65521u
#define MAX_MATCH 258 /* deflate's longest match: 86 pixels of 3 bytes, so runs split evenly */

/* A Huffman code (with any extra bits appended) ready to go out LSB first. */
typedef struct st_code_t {
    uint32_t bits;
    uint32_t len;
} code_t;

/* The fixed literal/length codes for literal bytes and for match lengths 3..258 (length code
 * plus its extra bits), and the distance codes of the two distances used. */
typedef struct st_codes_t {
    code_t lit[256];
    code_t match[MAX_MATCH + 1];
    code_t dist_left; /* 3 bytes back: the pixel to the left */
    code_t dist_up;   /* one row (filter byte + 3 * width) back: the pixel above */
} codes_t;

/* The staged output and the adler32 of what it encodes. */
typedef struct st_writer_t {
    bp_buf_t *out;
    unsigned char *stage; /* CHUNK_DATA plus one worst-case row */
    size_t used;
    uint64_t acc; /* pending bits, LSB first */
    unsigned nacc;
    uint32_t s1, s2;        /* adler32 halves */
    uint64_t row_a, row_b; /* what the last row adds to them (see add_row) */
} writer_t;

static const uint16_t len_base[29] = {3,  4,  5,  6,  7,  8,  9,  10, 11,  13,  15,  17,  19,  23, 27,
                                      31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258};
static const uint8_t len_extra[29] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2,
                                      2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0};
static const uint16_t dist_base[30] = {1,    2,    3,    4,    5,    7,    9,    13,    17,    25,
                                       33,   49,   65,   97,   129,  193,  257,  385,   513,   769,
                                       1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577};
static const uint8_t dist_extra[30] = {0, 0, 0, 0, 1, 1, 2, 2,  3,  3,  4,  4,  5,  5,  6,
                                       6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13};

/* Huffman codes are defined MSB first but deflate packs bits LSB first. */
static uint32_t reverse(uint32_t code, unsigned len)
{
    uint32_t r = 0;
    for (unsigned i = 0; i < len; i++)
        r |= (code >> i & 1) << (len - 1 - i);
    return r;
}

/* RFC 1951 §3.2.6: the fixed literal/length code of symbol 0..287. */
static code_t fixed_lit(unsigned sym)
{
    if (sym < 144)
        return (code_t){reverse(0x30 + sym, 8), 8};
    if (sym < 256)
        return (code_t){reverse(0x190 + sym - 144, 9), 9};
    if (sym < 280)
        return (code_t){reverse(sym - 256, 7), 7};
    return (code_t){reverse(0xc0 + sym - 280, 8), 8};
}

static code_t dist_code(unsigned dist)
{
    int i = 29;
    while (dist_base[i] > dist)
        i--;
    uint32_t bits = reverse((uint32_t)i, 5) | (uint32_t)(dist - dist_base[i]) << 5;
    return (code_t){bits, 5u + dist_extra[i]};
}

static void build_codes(codes_t *c, int width)
{
    for (unsigned b = 0; b < 256; b++)
        c->lit[b] = fixed_lit(b);
    for (unsigned len = 3; len <= MAX_MATCH; len++) {
        int i = 28;
        while (len_base[i] > len)
            i--;
        code_t sym = fixed_lit(257 + (unsigned)i);
        c->match[len] = (code_t){sym.bits | (uint32_t)(len - len_base[i]) << sym.len, sym.len + len_extra[i]};
    }
    c->dist_left = dist_code(3);
    c->dist_up = dist_code(3u * (unsigned)width + 1);
}

static inline void put(writer_t *w, code_t c)
{
    w->acc |= (uint64_t)c.bits << w->nacc;
    w->nacc += c.len;
    if (w->nacc >= 32) {
        unsigned char *p = w->stage + w->used;
        p[0] = (unsigned char)w->acc;
        p[1] = (unsigned char)(w->acc >> 8);
        p[2] = (unsigned char)(w->acc >> 16);
        p[3] = (unsigned char)(w->acc >> 24);
        w->used += 4;
        w->acc >>= 32;
        w->nacc -= 32;
    }
}

static int put_chunk(bp_buf_t *out, const char type[4], const unsigned char *data, size_t len)
{
    unsigned char head[8] = {(unsigned char)(len >> 24), (unsigned char)(len >> 16),
                             (unsigned char)(len >> 8), (unsigned char)len};
    memcpy(head + 4, type, 4);
    uLong crc = crc32(0, head + 4, 4);
    if (len > 0) /* crc32() with no data returns its initial value, not crc */
        crc = crc32(crc, data, (uInt)len);
    unsigned char tail[4] = {(unsigned char)(crc >> 24), (unsigned char)(crc >> 16),
                             (unsigned char)(crc >> 8), (unsigned char)crc};
    int rc = bp_buf_append(out, head, 8);
    if (rc == 0 && len > 0)
        rc = bp_buf_append(out, data, len);
    if (rc == 0)
        rc = bp_buf_append(out, tail, 4);
    return rc;
}

/* Writes the whole bytes staged so far as one IDAT chunk. */
static int flush_idat(writer_t *w)
{
    int rc = put_chunk(w->out, "IDAT", w->stage, w->used);
    w->used = 0;
    return rc;
}

#define SAME(a, b) ((((a) ^ (b)) & 0xffffffu) == 0) /* cairo's top byte is unused in RGB24 */
#define SAME2_MASK UINT64_C(0x00ffffff00ffffff)

static inline uint64_t load2(const uint32_t *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof(v));
    return v;
}

/* The first j >= i (or n) where px[j] differs from above[j]; two pixels per compare, as these
 * scans are most of the encoder's time. */
static inline int same_above_until(const uint32_t *px, const uint32_t *above, int i, int n)
{
    while (i + 2 <= n && ((load2(px + i) ^ load2(above + i)) & SAME2_MASK) == 0)
        i += 2;
    while (i < n && SAME(px[i], above[i]))
        i++;
    return i;
}

/* The first j >= i (or n) where px[j] is not colour. */
static inline int same_colour_until(const uint32_t *px, uint32_t colour, int i, int n)
{
    uint64_t two = (uint64_t)colour << 32 | colour;
    while (i + 2 <= n && ((load2(px + i) ^ two) & SAME2_MASK) == 0)
        i += 2;
    while (i < n && SAME(px[i], colour))
        i++;
    return i;
}

/* adler32 (RFC 1950 §8.2) over k pixels of one colour, in closed form: a byte b adds b to s1
 * and the new s1 to s2, so a pixel R,G,B adds R+G+B to s1 and 3*s1 + 3R+2G+B to s2. A row is
 * summed on its own from s1 = s2 = 0 (the sums stay far below 2^64) and then added by add_row,
 * so a row equal to the one above reuses its sums. */
static inline void adler_run(uint64_t *s1, uint64_t *s2, uint32_t px, uint64_t k)
{
    uint64_t r = px >> 16 & 0xff, g = px >> 8 & 0xff, b = px & 0xff;
    uint64_t c = r + g + b, d = 3 * r + 2 * g + b;
    *s2 += 3 * k * *s1 + 3 * c * (k * (k - 1) / 2) + k * d;
    *s1 += k * c;
}

static void adler_pixels(uint64_t *s1, uint64_t *s2, const uint32_t *px, int n)
{
    int i = 0;
    while (i < n) {
        uint32_t c = px[i] & 0xffffff;
        int j = same_colour_until(px, c, i + 1, n);
        adler_run(s1, s2, c, (uint64_t)(j - i));
        i = j;
    }
}

static void put_match(writer_t *w, const codes_t *c, int pixels, code_t dist)
{
    int bytes = 3 * pixels;
    while (bytes > 0) {
        int len = bytes > MAX_MATCH ? MAX_MATCH : bytes;
        code_t m = c->match[len]; /* at most 13 + 18 bits: one put */
        put(w, (code_t){m.bits | dist.bits << m.len, m.len + dist.len});
        bytes -= len;
    }
}

/* One row: filter byte 0, then greedily the longer of "same as above" and "same as left", a
 * literal pixel when neither holds. The row's adler32 is summed from the same decisions: a
 * left match is one colour. */
static void encode_row(writer_t *w, const codes_t *c, const uint32_t *px, const uint32_t *up, int width)
{
    uint64_t s1 = 0, s2 = 0;
    put(w, c->lit[0]); /* filter type None */
    int i = 0;
    while (i < width) {
        bool left = i > 0 && SAME(px[i], px[i - 1]), above = up != NULL && SAME(px[i], up[i]);
        if (!left && !above) {
            uint32_t p = px[i];
            code_t r = c->lit[p >> 16 & 0xff], g = c->lit[p >> 8 & 0xff], b = c->lit[p & 0xff];
            put(w, (code_t){r.bits | g.bits << r.len | b.bits << (r.len + g.len), r.len + g.len + b.len});
            adler_run(&s1, &s2, p, 1);
            i++;
            continue;
        }
        uint32_t prev = px[i > 0 ? i - 1 : 0];
        int k_left = left ? same_colour_until(px, prev, i, width) - i : 0;
        int k_up = above ? same_above_until(px, up, i, width) - i : 0;
        if (k_left >= k_up) {
            put_match(w, c, k_left, c->dist_left);
            adler_run(&s1, &s2, prev, (uint64_t)k_left);
            i += k_left;
        } else {
            put_match(w, c, k_up, c->dist_up);
            adler_pixels(&s1, &s2, px + i, k_up);
            i += k_up;
        }
    }
    w->row_a = s1;
    w->row_b = s2;
}

/* Adds the last row (filter byte and 3 * width bytes) to the adler32. */
static void add_row(writer_t *w, int width)
{
    uint64_t len = 3 * (uint64_t)width + 1;
    w->s2 = (uint32_t)((w->s2 + len % ADLER_MOD * w->s1 + w->row_b) % ADLER_MOD);
    w->s1 = (uint32_t)((w->s1 + w->row_a) % ADLER_MOD);
}

static int encode(writer_t *w, const unsigned char *data, int width, int height, int stride)
{
    static const unsigned char signature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    unsigned char ihdr[13] = {(unsigned char)(width >> 24),
                              (unsigned char)(width >> 16),
                              (unsigned char)(width >> 8),
                              (unsigned char)width,
                              (unsigned char)(height >> 24),
                              (unsigned char)(height >> 16),
                              (unsigned char)(height >> 8),
                              (unsigned char)height,
                              8 /* bits per channel */,
                              2 /* RGB */,
                              0 /* deflate */,
                              0 /* filter method 0 */,
                              0 /* no interlace */};
    int rc = bp_buf_append(w->out, signature, sizeof(signature));
    if (rc == 0)
        rc = put_chunk(w->out, "IHDR", ihdr, sizeof(ihdr));
    if (rc != 0)
        return rc;
    codes_t *codes = malloc(sizeof(*codes));
    if (codes == NULL)
        return BP_ENOMEM;
    build_codes(codes, width);
    /* zlib header: deflate, 32 KiB window, no dictionary, check bits (RFC 1950 §2.2) */
    w->stage[w->used++] = 0x78;
    w->stage[w->used++] = 0x01;
    put(w, (code_t){1 /* BFINAL */ | 1 << 1 /* BTYPE 01: fixed codes */, 3});
    const uint32_t *up = NULL;
    for (int y = 0; y < height && rc == 0; y++) {
        const uint32_t *px = (const uint32_t *)(const void *)(data + (size_t)y * (size_t)stride);
        if (up != NULL && memcmp(px, up, (size_t)width * 4) == 0) {
            /* the same row again (blank margins): one pass, and the sums of the last one */
            put(w, codes->lit[0]);
            put_match(w, codes, width, codes->dist_up);
        } else {
            encode_row(w, codes, px, up, width);
        }
        add_row(w, width);
        up = px;
        if (w->used >= CHUNK_DATA)
            rc = flush_idat(w);
    }
    free(codes);
    if (rc != 0)
        return rc;
    put(w, (code_t){0, 7}); /* end of block: symbol 256 */
    while (w->nacc > 0) {
        w->stage[w->used++] = (unsigned char)w->acc;
        w->acc >>= 8;
        w->nacc = w->nacc > 8 ? w->nacc - 8 : 0;
    }
    uint32_t adler = w->s2 << 16 | w->s1;
    unsigned char *p = w->stage + w->used;
    p[0] = (unsigned char)(adler >> 24);
    p[1] = (unsigned char)(adler >> 16);
    p[2] = (unsigned char)(adler >> 8);
    p[3] = (unsigned char)adler;
    w->used += 4;
    rc = flush_idat(w);
    if (rc == 0)
        rc = put_chunk(w->out, "IEND", NULL, 0);
    return rc;
}

int bp_pngenc_write(cairo_surface_t *surface, bp_buf_t *out, bp_err_t *err)
{
    if (cairo_surface_get_type(surface) != CAIRO_SURFACE_TYPE_IMAGE)
        return bp_err_set(err, BP_EINTERNAL, "png: not an image surface");
    cairo_format_t fmt = cairo_image_surface_get_format(surface);
    if (fmt != CAIRO_FORMAT_RGB24 && fmt != CAIRO_FORMAT_ARGB32)
        return bp_err_set(err, BP_EINTERNAL, "png: unsupported surface format %d", (int)fmt);
    const unsigned char *data = cairo_image_surface_get_data(surface);
    int width = cairo_image_surface_get_width(surface), height = cairo_image_surface_get_height(surface);
    int stride = cairo_image_surface_get_stride(surface);
    if (data == NULL || width <= 0 || height <= 0)
        return bp_err_set(err, BP_EINTERNAL, "png: empty surface");
    /* A row is at most 3 * width + 1 literals of 9 bits, plus the bits still pending. */
    size_t stage_size = CHUNK_DATA + (size_t)(3 * width + 1) * 9 / 8 + 64;
    writer_t w = {.out = out, .stage = malloc(stage_size), .s1 = 1, .s2 = 0};
    if (w.stage == NULL)
        return bp_err_set(err, BP_ENOMEM, "png: out of memory");
    int rc = encode(&w, data, width, height, stride);
    free(w.stage);
    if (rc == BP_ETOOBIG)
        return bp_err_set(err, BP_ETOOBIG, "chart: PNG larger than %zu bytes", out->max);
    if (rc != 0)
        return bp_err_set(err, rc, "png: out of memory");
    return 0;
}
