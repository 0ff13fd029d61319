#include "pngenc.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

/* IDAT chunks are written whenever this much compressed data is staged. */
#define CHUNK_DATA 65536
/* A deflate block (with its own Huffman codes) is closed after this many tokens. */
#define BLOCK_TOKENS 65536
#define ADLER_MOD 65521u
#define MAX_MATCH 258 /* deflate's longest match: 86 pixels of 3 bytes, so runs split evenly */
#define NUM_LITLEN 286
#define NUM_DIST 30
#define NUM_CL 19
#define MAX_BITS 15
#define MAX_CL_BITS 7

/* A token of the deflate stream before entropy coding: a literal byte (0..255) or a match. */
#define TOK_MATCH 0x8000u
#define TOK_UP 0x4000u /* the match is with the row above, else with the pixel to the left */
#define TOK_LEN 0x3fffu

/* A Huffman code (with any extra bits appended) ready to go out LSB first. */
typedef struct st_code_t {
    uint32_t bits;
    uint32_t len;
} code_t;

/* How match lengths and the two distances map to deflate symbols and extra bits (RFC 1951
 * §3.2.5), and the Huffman codes of the current block. */
typedef struct st_codes_t {
    uint16_t len_sym[MAX_MATCH + 1];
    uint8_t len_xbits[MAX_MATCH + 1];
    uint16_t len_xval[MAX_MATCH + 1];
    unsigned dist_sym[2], dist_xbits[2], dist_xval[2]; /* [0] left (3 bytes), [1] up (a row) */
    code_t lit[NUM_LITLEN];
    code_t dist[NUM_DIST];
} codes_t;

/* Bits on their way to the stage. Kept apart from writer_t so the hot loop can work on a local
 * copy: stores through the unsigned char stage pointer may alias anything reached through a
 * pointer, which would reload every field after every byte. */
typedef struct st_bits_t {
    unsigned char *stage; /* CHUNK_DATA plus what one put or one block header adds */
    size_t used;
    uint64_t acc; /* pending bits, LSB first */
    unsigned nacc;
} bits_t;

/* The staged output, the tokens of the open block and the adler32 of what they encode. */
typedef struct st_writer_t {
    bp_buf_t *out;
    bits_t bits;
    uint16_t *tok; /* BLOCK_TOKENS plus one worst-case row */
    size_t ntok;
    uint32_t lit_freq[NUM_LITLEN], dist_freq[NUM_DIST]; /* symbol counts of the open block */
    codes_t *codes;
    uint32_t s1, s2;       /* adler32 halves */
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
/* The order code length code lengths are sent in (RFC 1951 §3.2.7). */
static const uint8_t cl_order[NUM_CL] = {16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15};

/* Huffman codes are defined MSB first but deflate packs bits LSB first. */
static uint32_t reverse(uint32_t code, unsigned len)
{
    uint32_t r = 0;
    for (unsigned i = 0; i < len; i++)
        r |= (code >> i & 1) << (len - 1 - i);
    return r;
}

static void build_symbols(codes_t *c, int width)
{
    for (unsigned len = 3; len <= MAX_MATCH; len++) {
        int i = 28;
        while (len_base[i] > len)
            i--;
        c->len_sym[len] = (uint16_t)(257 + i);
        c->len_xbits[len] = len_extra[i];
        c->len_xval[len] = (uint16_t)(len - len_base[i]);
    }
    unsigned dists[2] = {3, 3u * (unsigned)width + 1};
    for (int k = 0; k < 2; k++) {
        int i = 29;
        while (dist_base[i] > dists[k])
            i--;
        c->dist_sym[k] = (unsigned)i;
        c->dist_xbits[k] = dist_extra[i];
        c->dist_xval[k] = dists[k] - dist_base[i];
    }
}

typedef struct st_leaf_t {
    uint64_t weight;
    int sym;
} leaf_t;

static int by_weight(const void *a, const void *b)
{
    const leaf_t *x = a, *y = b;
    if (x->weight != y->weight)
        return x->weight < y->weight ? -1 : 1;
    return x->sym - y->sym;
}

/* Huffman code lengths for freq[0..n) no longer than max_bits: an ordinary Huffman tree (the
 * two-queue construction), and while it is too deep the counts are halved and it is built
 * again. Symbols with a zero count get length 0; at least two symbols get a code, as inflate
 * refuses an incomplete code set. */
static void huffman_lengths(const uint32_t *freq_in, int n, unsigned max_bits, uint8_t *len)
{
    uint64_t freq[NUM_LITLEN];
    int used = 0;
    for (int i = 0; i < n; i++) {
        freq[i] = freq_in[i];
        used += freq[i] > 0;
    }
    for (int i = 0; used < 2 && i < n; i++) {
        if (freq[i] == 0) {
            freq[i] = 1;
            used++;
        }
    }
    for (;;) {
        /* nodes 0..nl-1: the leaves by weight; nl..: internal nodes in the order made, which is
         * also weight order, so the next two lightest are always at the head of one queue */
        leaf_t leaves[NUM_LITLEN];
        uint64_t weight[2 * NUM_LITLEN];
        int parent[2 * NUM_LITLEN], nl = 0;
        for (int i = 0; i < n; i++) {
            if (freq[i] > 0)
                leaves[nl++] = (leaf_t){freq[i], i};
        }
        qsort(leaves, (size_t)nl, sizeof(*leaves), by_weight);
        for (int k = 0; k < nl; k++)
            weight[k] = leaves[k].weight;
        int nn = nl, li = 0, ii = nl;
        for (int k = 0; k < nl - 1; k++) {
            int pick[2];
            for (int j = 0; j < 2; j++)
                pick[j] = li < nl && (ii >= nn || weight[li] <= weight[ii]) ? li++ : ii++;
            weight[nn] = weight[pick[0]] + weight[pick[1]];
            parent[pick[0]] = parent[pick[1]] = nn;
            nn++;
        }
        if (nn < 2)
            return; /* not reached: two symbols at least were given a count above */
        uint8_t depth[2 * NUM_LITLEN];
        depth[nn - 1] = 0;
        for (int k = nn - 2; k >= 0; k--) /* a parent is made after its children */
            depth[k] = (uint8_t)(depth[parent[k]] + 1);
        unsigned deepest = 0;
        memset(len, 0, (size_t)n);
        for (int k = 0; k < nl; k++) {
            len[leaves[k].sym] = depth[k];
            deepest = depth[k] > deepest ? depth[k] : deepest;
        }
        if (deepest <= max_bits)
            return;
        for (int i = 0; i < n; i++)
            freq[i] = freq[i] > 0 ? (freq[i] >> 1) | 1 : 0;
    }
}

/* Canonical codes from lengths (RFC 1951 §3.2.2), reversed for LSB-first output. */
static void canonical_codes(const uint8_t *len, int n, code_t *codes)
{
    unsigned count[MAX_BITS + 1] = {0}, next[MAX_BITS + 1] = {0}, code = 0;
    for (int i = 0; i < n; i++)
        count[len[i]]++;
    count[0] = 0;
    for (unsigned b = 1; b <= MAX_BITS; b++) {
        code = (code + count[b - 1]) << 1;
        next[b] = code;
    }
    for (int i = 0; i < n; i++)
        codes[i] = (code_t){len[i] > 0 ? reverse(next[len[i]]++, len[i]) : 0, len[i]};
}

static inline void put(bits_t *b, uint32_t bits, unsigned len)
{
    b->acc |= (uint64_t)bits << b->nacc;
    b->nacc += len;
    if (b->nacc >= 32) {
        unsigned char *p = b->stage + b->used;
        p[0] = (unsigned char)b->acc;
        p[1] = (unsigned char)(b->acc >> 8);
        p[2] = (unsigned char)(b->acc >> 16);
        p[3] = (unsigned char)(b->acc >> 24);
        b->used += 4;
        b->acc >>= 32;
        b->nacc -= 32;
    }
}

static inline void put_code(bits_t *b, code_t c)
{
    put(b, c.bits, c.len);
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
    int rc = put_chunk(w->out, "IDAT", w->bits.stage, w->bits.used);
    w->bits.used = 0;
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

/* Tokens for a match of pixels * 3 bytes, cut at deflate's longest match. */
static void match_tokens(writer_t *w, int pixels, unsigned up)
{
    int bytes = 3 * pixels;
    while (bytes > 0) {
        int len = bytes > MAX_MATCH ? MAX_MATCH : bytes;
        w->tok[w->ntok++] = (uint16_t)(TOK_MATCH | up | (unsigned)len);
        w->lit_freq[w->codes->len_sym[len]]++;
        w->dist_freq[w->codes->dist_sym[up != 0]]++;
        bytes -= len;
    }
}

/* One row as tokens: filter byte 0, then greedily the longer of "same as above" and "same as
 * left", a literal pixel when neither holds. The row's adler32 is summed from the same
 * decisions: a left match is one colour. */
static void encode_row(writer_t *w, const uint32_t *px, const uint32_t *up, int width)
{
    uint64_t s1 = 0, s2 = 0;
    uint16_t *tok = w->tok;
    tok[w->ntok++] = 0; /* filter type None */
    w->lit_freq[0]++;
    int i = 0;
    while (i < width) {
        bool left = i > 0 && SAME(px[i], px[i - 1]), above = up != NULL && SAME(px[i], up[i]);
        if (!left && !above) {
            uint32_t p = px[i];
            tok[w->ntok] = (uint16_t)(p >> 16 & 0xff);
            tok[w->ntok + 1] = (uint16_t)(p >> 8 & 0xff);
            tok[w->ntok + 2] = (uint16_t)(p & 0xff);
            w->ntok += 3;
            w->lit_freq[p >> 16 & 0xff]++;
            w->lit_freq[p >> 8 & 0xff]++;
            w->lit_freq[p & 0xff]++;
            adler_run(&s1, &s2, p, 1);
            i++;
            continue;
        }
        uint32_t prev = px[i > 0 ? i - 1 : 0];
        int k_left = left ? same_colour_until(px, prev, i, width) - i : 0;
        int k_up = above ? same_above_until(px, up, i, width) - i : 0;
        if (k_left >= k_up) {
            match_tokens(w, k_left, 0);
            adler_run(&s1, &s2, prev, (uint64_t)k_left);
            i += k_left;
        } else {
            match_tokens(w, k_up, TOK_UP);
            adler_pixels(&s1, &s2, px + i, k_up);
            i += k_up;
        }
    }
    w->row_a = s1;
    w->row_b = s2;
}

/* The code length sequence of a dynamic block, run-length coded (RFC 1951 §3.2.7): symbols
 * 0..15 are lengths, 16 repeats the previous 3-6 times, 17 and 18 are runs of 3-10 and
 * 11-138 zeros. Returns the number of (symbol, extra value) pairs written to out. */
static int rle_lengths(const uint8_t *len, int n, uint8_t *sym, uint8_t *extra)
{
    int m = 0;
    for (int i = 0; i < n;) {
        int run = 1;
        while (i + run < n && len[i + run] == len[i])
            run++;
        if (len[i] == 0 && run >= 3) {
            int r = run > 138 ? 138 : run;
            sym[m] = r >= 11 ? 18 : 17;
            extra[m++] = (uint8_t)(r >= 11 ? r - 11 : r - 3);
            i += r;
        } else if (len[i] != 0 && run >= 4) {
            sym[m] = len[i];
            extra[m++] = 0;
            int r = run - 1 > 6 ? 6 : run - 1;
            sym[m] = 16;
            extra[m++] = (uint8_t)(r - 3);
            i += 1 + r;
        } else {
            sym[m] = len[i];
            extra[m++] = 0;
            i++;
        }
    }
    return m;
}

/* Entropy codes the open block's tokens as one deflate block with its own Huffman codes
 * (BTYPE 10), final when last. Stages IDAT chunks as they fill. Returns 0 or a BP_E* code. */
static int flush_block(writer_t *w, bool last)
{
    codes_t *c = w->codes;
    uint32_t *lit_freq = w->lit_freq, *dist_freq = w->dist_freq; /* counted as tokens were made */
    lit_freq[256] = 1;                                           /* end of block */
    uint8_t lens[NUM_LITLEN + NUM_DIST];
    huffman_lengths(lit_freq, NUM_LITLEN, MAX_BITS, lens);
    huffman_lengths(dist_freq, NUM_DIST, MAX_BITS, lens + NUM_LITLEN);
    int nlit = NUM_LITLEN, ndist = NUM_DIST;
    while (nlit > 257 && lens[nlit - 1] == 0)
        nlit--;
    while (ndist > 1 && lens[NUM_LITLEN + ndist - 1] == 0)
        ndist--;
    canonical_codes(lens, NUM_LITLEN, c->lit);
    canonical_codes(lens + NUM_LITLEN, NUM_DIST, c->dist);
    /* the lengths actually sent: nlit literal/length ones, then ndist distance ones */
    uint8_t seq[NUM_LITLEN + NUM_DIST], cl_sym[NUM_LITLEN + NUM_DIST], cl_extra[NUM_LITLEN + NUM_DIST];
    memcpy(seq, lens, (size_t)nlit);
    memcpy(seq + nlit, lens + NUM_LITLEN, (size_t)ndist);
    int ncl_sym = rle_lengths(seq, nlit + ndist, cl_sym, cl_extra);
    uint32_t cl_freq[NUM_CL] = {0};
    for (int k = 0; k < ncl_sym; k++)
        cl_freq[cl_sym[k]]++;
    uint8_t cl_len[NUM_CL];
    code_t cl_code[NUM_CL];
    huffman_lengths(cl_freq, NUM_CL, MAX_CL_BITS, cl_len);
    canonical_codes(cl_len, NUM_CL, cl_code);
    int ncl = NUM_CL;
    while (ncl > 4 && cl_len[cl_order[ncl - 1]] == 0)
        ncl--;

    bits_t b = w->bits;
    put(&b, (last ? 1u : 0u) | 2u << 1, 3); /* BFINAL, BTYPE 10: dynamic codes */
    put(&b, (uint32_t)(nlit - 257), 5);
    put(&b, (uint32_t)(ndist - 1), 5);
    put(&b, (uint32_t)(ncl - 4), 4);
    for (int k = 0; k < ncl; k++)
        put(&b, cl_len[cl_order[k]], 3);
    static const uint8_t cl_xbits[NUM_CL] = {[16] = 2, [17] = 3, [18] = 7};
    for (int k = 0; k < ncl_sym; k++) {
        put_code(&b, cl_code[cl_sym[k]]);
        if (cl_xbits[cl_sym[k]] > 0)
            put(&b, cl_extra[k], cl_xbits[cl_sym[k]]);
    }
    /* a match's length code with its extra bits, and the two distance codes with theirs */
    code_t match_len[MAX_MATCH + 1], dist[2];
    for (unsigned len = 3; len <= MAX_MATCH; len++) {
        code_t lc = c->lit[c->len_sym[len]];
        match_len[len] = (code_t){lc.bits | (uint32_t)c->len_xval[len] << lc.len, lc.len + c->len_xbits[len]};
    }
    for (int d = 0; d < 2; d++) {
        code_t dc = c->dist[c->dist_sym[d]];
        dist[d] = (code_t){dc.bits | c->dist_xval[d] << dc.len, dc.len + c->dist_xbits[d]};
    }
    const uint16_t *tok = w->tok;
    size_t n = w->ntok;
    for (size_t k = 0; k < n; k++) {
        unsigned t = tok[k];
        if (t & TOK_MATCH) {
            put_code(&b, match_len[t & TOK_LEN]);
            put_code(&b, dist[(t & TOK_UP) != 0]);
        } else if (k + 1 < n && !(tok[k + 1] & TOK_MATCH)) {
            /* two literals (at most 15 bits each) in one put: pixels come as three */
            code_t x = c->lit[t], y = c->lit[tok[k + 1]];
            put(&b, x.bits | y.bits << x.len, x.len + y.len);
            k++;
        } else {
            put_code(&b, c->lit[t]);
        }
        if (b.used >= CHUNK_DATA) {
            w->bits = b;
            int rc = flush_idat(w);
            b = w->bits;
            if (rc != 0)
                return rc;
        }
    }
    put_code(&b, c->lit[256]);
    w->bits = b;
    w->ntok = 0;
    memset(w->lit_freq, 0, sizeof(w->lit_freq));
    memset(w->dist_freq, 0, sizeof(w->dist_freq));
    return 0;
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
    build_symbols(w->codes, width);
    /* zlib header: deflate, 32 KiB window, no dictionary, check bits (RFC 1950 §2.2) */
    w->bits.stage[w->bits.used++] = 0x78;
    w->bits.stage[w->bits.used++] = 0x01;
    const uint32_t *up = NULL;
    for (int y = 0; y < height && rc == 0; y++) {
        const uint32_t *px = (const uint32_t *)(const void *)(data + (size_t)y * (size_t)stride);
        if (up != NULL && memcmp(px, up, (size_t)width * 4) == 0) {
            /* the same row again (blank margins): one pass, and the sums of the last one */
            w->tok[w->ntok++] = 0;
            w->lit_freq[0]++;
            match_tokens(w, width, TOK_UP);
        } else {
            encode_row(w, px, up, width);
        }
        add_row(w, width);
        up = px;
        if (w->ntok >= BLOCK_TOKENS)
            rc = flush_block(w, false);
    }
    if (rc == 0)
        rc = flush_block(w, true);
    if (rc != 0)
        return rc;
    bits_t *b = &w->bits;
    while (b->nacc > 0) { /* to a byte boundary */
        b->stage[b->used++] = (unsigned char)b->acc;
        b->acc >>= 8;
        b->nacc = b->nacc > 8 ? b->nacc - 8 : 0;
    }
    uint32_t adler = w->s2 << 16 | w->s1;
    unsigned char *p = b->stage + b->used;
    p[0] = (unsigned char)(adler >> 24);
    p[1] = (unsigned char)(adler >> 16);
    p[2] = (unsigned char)(adler >> 8);
    p[3] = (unsigned char)adler;
    b->used += 4;
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
    /* "same as the row above" is a match 3 * width + 1 bytes back: deflate reaches 32 768. */
    if (3 * width + 1 > 32768)
        return bp_err_set(err, BP_EINTERNAL, "png: %d pixels wide is more than this encoder supports", width);
    /* The stage is flushed once it holds CHUNK_DATA bytes, checked after every token; a block
     * header (at most ~600 bytes) and the stream's end go in without a check. A block closes
     * after the row that takes it past BLOCK_TOKENS; a row is at most 3 * width + 1 tokens. */
    writer_t w = {.out = out,
                  .bits = {.stage = malloc(CHUNK_DATA + 1024)},
                  .tok = malloc(sizeof(uint16_t) * (BLOCK_TOKENS + 3 * (size_t)width + 1)),
                  .codes = malloc(sizeof(codes_t)),
                  .s1 = 1,
                  .s2 = 0};
    int rc = w.bits.stage != NULL && w.tok != NULL && w.codes != NULL
                 ? encode(&w, data, width, height, stride)
                 : BP_ENOMEM;
    free(w.bits.stage);
    free(w.tok);
    free(w.codes);
    if (rc == BP_ETOOBIG)
        return bp_err_set(err, BP_ETOOBIG, "chart: PNG larger than %zu bytes", out->max);
    if (rc != 0)
        return bp_err_set(err, rc, "png: out of memory");
    return 0;
}
