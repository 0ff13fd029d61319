#include "text.h"

#include <fontconfig/fontconfig.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#define NUM_FONTS 2

/* The fallback chain, regular and bold, with what each font covers. Set once by init_fonts. */
static const char *const families[NUM_FONTS] = {BP_TEXT_FONT_LATIN, BP_TEXT_FONT_CJK};
static cairo_font_face_t *faces[NUM_FONTS][2];
static FcCharSet *charsets[NUM_FONTS];
static pthread_once_t fonts_once = PTHREAD_ONCE_INIT;
static bool released;

static FcCharSet *charset_of(const char *family)
{
    FcPattern *pat = FcNameParse((const FcChar8 *)family);
    if (pat == NULL)
        return NULL;
    FcConfigSubstitute(NULL, pat, FcMatchPattern);
    FcDefaultSubstitute(pat);
    FcResult result;
    FcPattern *match = FcFontMatch(NULL, pat, &result);
    FcPatternDestroy(pat);
    FcCharSet *cs = NULL, *copy = NULL;
    if (match != NULL && FcPatternGetCharSet(match, FC_CHARSET, 0, &cs) == FcResultMatch)
        copy = FcCharSetCopy(cs);
    if (match != NULL)
        FcPatternDestroy(match);
    return copy;
}

static void init_fonts(void)
{
    for (int i = 0; i < NUM_FONTS; i++) {
        for (int b = 0; b < 2; b++)
            faces[i][b] = cairo_toy_font_face_create(families[i], CAIRO_FONT_SLANT_NORMAL,
                                                     b ? CAIRO_FONT_WEIGHT_BOLD : CAIRO_FONT_WEIGHT_NORMAL);
        charsets[i] = charset_of(families[i]);
    }
}

/* Decodes one UTF-8 character at s (already validated); *len gets its length. */
static uint32_t decode(const unsigned char *s, int *len)
{
    if (s[0] < 0x80) {
        *len = 1;
        return s[0];
    }
    if (s[0] < 0xe0) {
        *len = 2;
        return (uint32_t)(s[0] & 0x1f) << 6 | (s[1] & 0x3f);
    }
    if (s[0] < 0xf0) {
        *len = 3;
        return (uint32_t)(s[0] & 0x0f) << 12 | (uint32_t)(s[1] & 0x3f) << 6 | (s[2] & 0x3f);
    }
    *len = 4;
    return (uint32_t)(s[0] & 0x07) << 18 | (uint32_t)(s[1] & 0x3f) << 12 | (uint32_t)(s[2] & 0x3f) << 6 |
           (s[3] & 0x3f);
}

/* The first font of the chain that has c; the last one when none does (it shows a box). */
static int font_for(uint32_t c)
{
    if (c < 0x80)
        return 0;
    for (int i = 0; i < NUM_FONTS - 1; i++) {
        if (charsets[i] != NULL && FcCharSetHasChar(charsets[i], c))
            return i;
    }
    return NUM_FONTS - 1;
}

/* Calls fn for each run of characters drawn with one font. */
typedef void (*run_fn)(cairo_t *cr, const char *run, int font, void *arg);

static void for_runs(cairo_t *cr, const char *s, double size, bool bold, run_fn fn, void *arg)
{
    pthread_once(&fonts_once, init_fonts);
    char run[512];
    const unsigned char *p = (const unsigned char *)s;
    while (*p != '\0') {
        int len;
        int font = font_for(decode(p, &len));
        size_t n = 0;
        for (;;) {
            if (n + (size_t)len >= sizeof(run))
                break;
            memcpy(run + n, p, (size_t)len);
            n += (size_t)len;
            p += len;
            if (*p == '\0')
                break;
            int next_len;
            uint32_t c = decode(p, &next_len);
            /* spaces and ASCII punctuation stay in the current run: CJK fonts have them too */
            int next = c == ' ' ? font : font_for(c);
            if (next != font)
                break;
            len = next_len;
        }
        run[n] = '\0';
        if (!released)
            cairo_set_font_face(cr, faces[font][bold ? 1 : 0]);
        cairo_set_font_size(cr, size);
        fn(cr, run, font, arg);
    }
}

static void add_width(cairo_t *cr, const char *run, int font, void *arg)
{
    (void)font;
    cairo_text_extents_t ext;
    cairo_text_extents(cr, run, &ext);
    *(double *)arg += ext.x_advance;
}

static void show(cairo_t *cr, const char *run, int font, void *arg)
{
    (void)font;
    (void)arg;
    cairo_show_text(cr, run); /* advances the current point */
}

double bp_text_width(cairo_t *cr, const char *s, double size, bool bold)
{
    double w = 0;
    for_runs(cr, s, size, bold, add_width, &w);
    return w;
}

void bp_text_draw(cairo_t *cr, const char *s, double x, double y, double ax, double size, bool bold)
{
    double w = ax != 0 ? bp_text_width(cr, s, size, bold) : 0;
    cairo_move_to(cr, x - ax * w, y);
    for_runs(cr, s, size, bold, show, NULL);
    cairo_new_path(cr);
}

void bp_text_release(void)
{
    pthread_once(&fonts_once, init_fonts); /* so a later call cannot initialise again */
    released = true;
    for (int i = 0; i < NUM_FONTS; i++) {
        for (int b = 0; b < 2; b++) {
            cairo_font_face_destroy(faces[i][b]);
            faces[i][b] = NULL;
        }
        if (charsets[i] != NULL)
            FcCharSetDestroy(charsets[i]);
        charsets[i] = NULL;
    }
}
