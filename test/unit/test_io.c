/* Image, .npy and JSON files: PNG/JPEG decoding of every layout the loader
 * promises, the error paths (truncated, crafted headers, CMYK, not an
 * image), atomic writers leaving no temporary files, exact JSON text, and
 * manifests read back and written again byte for byte (merge). */
#define _POSIX_C_SOURCE 200809L
#include "check.h"
#include "core/util.h"
#include "io/image.h"
#include "io/json.h"
#include "io/jsonparse.h"
#include "io/manifest.h"
#include "io/npy.h"

#include <dirent.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <png.h>
#include <turbojpeg.h>
#include <zlib.h>

static char g_dir[4096];

static char *in_dir(const char *name) { return cnn_strfmt("%s/%s", g_dir, name); }

static void write_raw(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL, "cannot create %s", path);
    if (!f) return;
    CHECK(n == 0 || fwrite(data, 1, n, f) == n, "short write to %s", path);
    fclose(f);
}

static uint8_t rand_byte(void) { return (uint8_t)rng_uniform(0.0f, 256.0f); }

/* Expects a failed load: the status, the path in the message, an optional
 * phrase, and an image left empty. */
static void expect_input_error(const char *path, const char *phrase)
{
    cnn_image img = {.w = 7, .px = (uint8_t *)&img};
    int s = cnn_image_load(path, &img);
    const char *msg = cnn_error_message();
    CHECK(s == CNN_ERR_INPUT, "%s: status %d (%s)", path, s, msg);
    CHECK(strstr(msg, path) != NULL, "message does not name the path: %s", msg);
    if (phrase) CHECK(strstr(msg, phrase) != NULL, "message lacks '%s': %s", phrase, msg);
    bool cleared = img.px == NULL && img.w == 0;
    CHECK(cleared, "image not cleared after error");
    if (cleared) cnn_image_free(&img);
}

/* ------------------------------------------------ PNGs made in the test */

struct membuf {
    uint8_t *p;
    size_t n, cap;
};

static void mem_write(png_structp png, png_bytep d, size_t n)
{
    struct membuf *m = png_get_io_ptr(png);
    if (m->n + n > m->cap) {
        size_t cap = (m->n + n) * 2;
        uint8_t *p = realloc(m->p, cap);
        if (!p) png_error(png, "oom");
        m->p = p;
        m->cap = cap;
    }
    memcpy(m->p + m->n, d, n);
    m->n += n;
}

static void mem_flush(png_structp png) { (void)png; }

struct png_spec {
    int w, h, color, depth, interlace;
    const png_color *pal;
    int npal;
    const png_byte *trns; /* palette alpha */
    int ntrns;
    const png_color_16 *trns_color; /* gray/RGB tRNS */
    const uint8_t *rows;            /* packed, PNG byte order */
    size_t stride;
};

static int make_png_inner(png_structp png, png_infop info, const struct png_spec *s,
                          struct membuf *out)
{
    if (setjmp(png_jmpbuf(png))) return -1;
    png_set_write_fn(png, out, mem_write, mem_flush);
    png_set_IHDR(png, info, (png_uint_32)s->w, (png_uint_32)s->h, s->depth, s->color,
                 s->interlace, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (s->pal) png_set_PLTE(png, info, s->pal, s->npal);
    if (s->trns || s->trns_color) png_set_tRNS(png, info, s->trns, s->ntrns, s->trns_color);
    png_write_info(png, info);
    int passes = png_set_interlace_handling(png);
    for (int p = 0; p < passes; p++)
        for (int y = 0; y < s->h; y++) png_write_row(png, s->rows + (size_t)y * s->stride);
    png_write_end(png, NULL);
    return 0;
}

static struct membuf make_png(const struct png_spec *s)
{
    struct membuf out = {0};
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    int rc = make_png_inner(png, info, s, &out);
    png_destroy_write_struct(&png, &info);
    CHECK(rc == 0, "test PNG encoder failed");
    return out;
}

/* Decodes from a file so the path-based entry point is exercised too. */
static int load_buf(const char *name, const struct membuf *m, cnn_image *img)
{
    char *path = in_dir(name);
    write_raw(path, m->p, m->n);
    int s = cnn_image_load(path, img);
    CHECK(s == 0, "load %s: %s", name, cnn_error_message());
    free(path);
    return s;
}

static void test_png_roundtrip(void)
{
    static const int levels[] = {0, 1, 9};
    rng_seed(7);
    for (int c = 1; c <= 4; c++) {
        if (c == 2) continue;
        int w = 37, h = 23;
        size_t n = (size_t)w * h * c;
        uint8_t *px = malloc(n);
        for (size_t i = 0; i < n; i++) px[i] = rand_byte();
        char name[64];
        snprintf(name, sizeof name, "rt%d.png", c);
        char *path = in_dir(name);
        CHECK_OK(cnn_png_write(path, px, w, h, c, levels[c % 3]));
        cnn_image img;
        CHECK_OK(cnn_image_load(path, &img));
        int want_c = c == 4 ? 3 : c;
        CHECK(img.w == w && img.h == h && img.c == want_c, "c=%d: got %dx%dx%d", c, img.w,
              img.h, img.c);
        if (img.px && img.c == want_c) {
            size_t bad = 0;
            for (size_t p = 0; p < (size_t)w * h; p++)
                for (int k = 0; k < want_c; k++)
                    bad += img.px[p * (size_t)want_c + (size_t)k] != px[p * (size_t)c + (size_t)k];
            CHECK(bad == 0, "c=%d: %zu values differ (alpha must be dropped, not composited)",
                  c, bad);
        }
        cnn_image_free(&img);
        /* Overwriting an existing file goes through the same rename. */
        CHECK_OK(cnn_png_write(path, px, w, h, c, 9));
        free(path);
        free(px);
    }
}

static void test_png_palette(void)
{
    static const png_color pal[5] = {
        {255, 0, 0}, {0, 255, 0}, {0, 0, 255}, {10, 20, 30}, {200, 100, 50}};
    static const png_byte trns[5] = {0, 128, 255, 7, 99};
    enum { W = 9, H = 4 };
    /* 4-bit indices, two per byte. */
    uint8_t idx[W * H];
    uint8_t rows[H][(W + 1) / 2];
    memset(rows, 0, sizeof rows);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            idx[y * W + x] = (uint8_t)((x + 2 * y) % 5);
            rows[y][x / 2] |= (uint8_t)(idx[y * W + x] << (x % 2 ? 0 : 4));
        }
    for (int with_trns = 0; with_trns < 2; with_trns++) {
        struct png_spec s = {.w = W, .h = H, .color = PNG_COLOR_TYPE_PALETTE, .depth = 4,
                             .pal = pal, .npal = 5, .trns = with_trns ? trns : NULL,
                             .ntrns = with_trns ? 5 : 0, .rows = &rows[0][0],
                             .stride = sizeof rows[0]};
        struct membuf m = make_png(&s);
        cnn_image img;
        if (load_buf("pal.png", &m, &img) == 0) {
            CHECK(img.w == W && img.h == H && img.c == 3, "palette (tRNS %d): %dx%dx%d",
                  with_trns, img.w, img.h, img.c);
            int bad = 0;
            for (int i = 0; i < W * H && img.c == 3; i++) {
                const png_color *e = &pal[idx[i]];
                bad += img.px[3 * i] != e->red || img.px[3 * i + 1] != e->green ||
                       img.px[3 * i + 2] != e->blue;
            }
            CHECK(bad == 0, "palette (tRNS %d): %d pixels differ", with_trns, bad);
        }
        cnn_image_free(&img);
        free(m.p);
    }
}

static void test_png_gray16(void)
{
    /* Every 16-bit value once: the reduction must be exactly
     * (v * 255 + 32767) / 65535 for all of them. */
    enum { W = 256, H = 256 };
    uint8_t *rows = malloc((size_t)W * H * 2);
    for (int v = 0; v < 65536; v++) {
        rows[2 * v] = (uint8_t)(v >> 8);
        rows[2 * v + 1] = (uint8_t)(v & 0xff);
    }
    struct png_spec s = {.w = W, .h = H, .color = PNG_COLOR_TYPE_GRAY, .depth = 16,
                         .rows = rows, .stride = 2 * W};
    struct membuf m = make_png(&s);
    cnn_image img;
    if (load_buf("g16.png", &m, &img) == 0) {
        CHECK(img.w == W && img.h == H && img.c == 1, "gray16: %dx%dx%d", img.w, img.h, img.c);
        int bad = 0, first_bad = -1;
        for (int v = 0; v < 65536 && img.c == 1; v++) {
            unsigned want = ((unsigned)v * 255u + 32767u) / 65535u;
            if (img.px[v] != want) {
                bad++;
                if (first_bad < 0) first_bad = v;
            }
        }
        CHECK(bad == 0, "gray16: %d values not rounded as specified (first v=%d)", bad,
              first_bad);
        /* Known values, worked by hand: 128 rounds down, 129 up, 32767 is
         * just below 128.0 and 32896 just above 127.5. */
        CHECK(img.px[0] == 0 && img.px[65535] == 255, "gray16 ends: %u %u", img.px[0],
              img.px[65535]);
        CHECK(img.px[128] == 0 && img.px[129] == 1, "gray16 128/129: %u %u", img.px[128],
              img.px[129]);
        CHECK(img.px[257] == 1 && img.px[32767] == 127 && img.px[32896] == 128,
              "gray16 257/32767/32896: %u %u %u", img.px[257], img.px[32767], img.px[32896]);
    }
    cnn_image_free(&img);
    free(m.p);
    free(rows);
}

static void test_png_gray_alpha_and_low_bits(void)
{
    enum { W = 11, H = 5 };
    /* 8-bit gray + alpha: the gray channel is kept as stored. */
    uint8_t ga[H][W * 2];
    rng_seed(99);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < 2 * W; x++) ga[y][x] = rand_byte();
    struct png_spec s = {.w = W, .h = H, .color = PNG_COLOR_TYPE_GRAY_ALPHA, .depth = 8,
                         .rows = &ga[0][0], .stride = sizeof ga[0]};
    struct membuf m = make_png(&s);
    cnn_image img;
    if (load_buf("ga.png", &m, &img) == 0) {
        CHECK(img.w == W && img.h == H && img.c == 1, "gray+alpha: %dx%dx%d", img.w, img.h,
              img.c);
        int bad = 0;
        for (int y = 0; y < H && img.c == 1; y++)
            for (int x = 0; x < W; x++) bad += img.px[y * W + x] != ga[y][2 * x];
        CHECK(bad == 0, "gray+alpha: %d gray values differ", bad);
    }
    cnn_image_free(&img);
    free(m.p);

    /* 1-bit gray, with a tRNS colour that must be ignored: 0 -> 0, 1 -> 255. */
    uint8_t bits[H][(W + 7) / 8];
    memset(bits, 0, sizeof bits);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            if ((x * 3 + y) % 4 == 0) bits[y][x / 8] |= (uint8_t)(0x80 >> (x % 8));
    png_color_16 tc = {.gray = 1};
    s = (struct png_spec){.w = W, .h = H, .color = PNG_COLOR_TYPE_GRAY, .depth = 1,
                          .trns_color = &tc, .rows = &bits[0][0], .stride = sizeof bits[0]};
    m = make_png(&s);
    if (load_buf("g1.png", &m, &img) == 0) {
        CHECK(img.w == W && img.h == H && img.c == 1, "gray1: %dx%dx%d", img.w, img.h, img.c);
        int bad = 0;
        for (int y = 0; y < H && img.c == 1; y++)
            for (int x = 0; x < W; x++)
                bad += img.px[y * W + x] != ((x * 3 + y) % 4 == 0 ? 255 : 0);
        CHECK(bad == 0, "gray1: %d pixels differ", bad);
    }
    cnn_image_free(&img);
    free(m.p);

    /* 2-bit gray: levels 0, 85, 170, 255. */
    uint8_t two[1][2] = {{0x1b, 0xe4}}; /* 0 1 2 3 3 2 1 0 */
    static const uint8_t want2[8] = {0, 85, 170, 255, 255, 170, 85, 0};
    s = (struct png_spec){.w = 8, .h = 1, .color = PNG_COLOR_TYPE_GRAY, .depth = 2,
                          .rows = &two[0][0], .stride = 2};
    m = make_png(&s);
    if (load_buf("g2.png", &m, &img) == 0)
        CHECK(img.c == 1 && img.w == 8 && memcmp(img.px, want2, 8) == 0, "gray2 levels wrong");
    cnn_image_free(&img);
    free(m.p);

    /* 16-bit RGBA, interlaced: alpha dropped, colour rounded. */
    enum { W2 = 13, H2 = 9 };
    uint8_t rgba[H2][W2 * 8];
    for (int y = 0; y < H2; y++)
        for (int x = 0; x < W2 * 8; x++) rgba[y][x] = rand_byte();
    s = (struct png_spec){.w = W2, .h = H2, .color = PNG_COLOR_TYPE_RGB_ALPHA, .depth = 16,
                          .interlace = PNG_INTERLACE_ADAM7, .rows = &rgba[0][0],
                          .stride = sizeof rgba[0]};
    m = make_png(&s);
    if (load_buf("rgba16i.png", &m, &img) == 0) {
        CHECK(img.w == W2 && img.h == H2 && img.c == 3, "rgba16: %dx%dx%d", img.w, img.h,
              img.c);
        int bad = 0;
        for (int y = 0; y < H2 && img.c == 3; y++)
            for (int x = 0; x < W2; x++)
                for (int k = 0; k < 3; k++) {
                    unsigned v = (unsigned)rgba[y][x * 8 + k * 2] << 8 | rgba[y][x * 8 + k * 2 + 1];
                    bad += img.px[(y * W2 + x) * 3 + k] != (v * 255u + 32767u) / 65535u;
                }
        CHECK(bad == 0, "rgba16 interlaced: %d values differ", bad);
    }
    cnn_image_free(&img);
    free(m.p);
}

/* ------------------------------------------------------------------ JPEG */

static struct membuf make_jpeg(const uint8_t *px, int w, int h, int pf, int subsamp)
{
    struct membuf out = {0};
    tjhandle tj = tjInitCompress();
    unsigned char *jpeg = NULL;
    unsigned long size = 0;
    int rc = tjCompress2(tj, px, w, 0, h, pf, &jpeg, &size, subsamp, 100, TJFLAG_ACCURATEDCT);
    CHECK(rc == 0, "tjCompress2: %s", tjGetErrorStr2(tj));
    if (rc == 0) {
        out.p = malloc(size);
        memcpy(out.p, jpeg, size);
        out.n = out.cap = size;
    }
    tjFree(jpeg);
    tjDestroy(tj);
    return out;
}

static void smooth_image(uint8_t *px, int w, int h, int c)
{
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int k = 0; k < c; k++)
                px[((size_t)y * w + x) * c + k] =
                    (uint8_t)(128 + 90 * sin(0.07 * x * (k + 1) + 0.05 * y) * cos(0.03 * y));
}

static double mean_abs_err(const uint8_t *a, const uint8_t *b, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++) s += fabs((double)a[i] - b[i]);
    return s / (double)n;
}

static void test_jpeg(void)
{
    static const struct { int c, pf, subsamp; const char *what; } cases[] = {
        {3, TJPF_RGB, TJSAMP_444, "rgb444"},
        {3, TJPF_RGB, TJSAMP_420, "rgb420"},
        {1, TJPF_GRAY, TJSAMP_GRAY, "gray"},
    };
    int w = 61, h = 45;
    for (size_t t = 0; t < sizeof cases / sizeof cases[0]; t++) {
        int c = cases[t].c;
        size_t n = (size_t)w * h * c;
        uint8_t *px = malloc(n);
        smooth_image(px, w, h, c);
        struct membuf m = make_jpeg(px, w, h, cases[t].pf, cases[t].subsamp);
        cnn_image img;
        if (m.p && load_buf("j.jpg", &m, &img) == 0) {
            CHECK(img.w == w && img.h == h && img.c == c, "%s: %dx%dx%d", cases[t].what, img.w,
                  img.h, img.c);
            if (img.c == c) {
                double e = mean_abs_err(img.px, px, n);
                CHECK(e < 3.0, "%s: mean abs error %.3f", cases[t].what, e);
            }
        }
        cnn_image_free(&img);

        /* Cut short: libjpeg only warns; we must refuse. */
        if (m.p) {
            char *path = in_dir("trunc.jpg");
            write_raw(path, m.p, m.n * 6 / 10);
            expect_input_error(path, "truncated");
            free(path);
        }
        free(m.p);
        free(px);
    }

    /* CMYK (libjpeg-turbo stores it as YCCK): refused with a clear reason. */
    uint8_t *cmyk = malloc((size_t)w * h * 4);
    smooth_image(cmyk, w, h, 4);
    struct membuf m = make_jpeg(cmyk, w, h, TJPF_CMYK, TJSAMP_444);
    if (m.p) {
        char *path = in_dir("cmyk.jpg");
        write_raw(path, m.p, m.n);
        expect_input_error(path, "CMYK is not supported");
        free(path);
    }
    free(m.p);
    free(cmyk);
}

/* ---------------------------------------------------------------- errors */

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* Appends one chunk with a correct CRC (over type and data). */
static size_t put_chunk(uint8_t *out, const char *type, const uint8_t *data, uint32_t n)
{
    put_be32(out, n);
    memcpy(out + 4, type, 4);
    if (n) memcpy(out + 8, data, n);
    uLong crc = crc32(0L, Z_NULL, 0);
    crc = crc32(crc, out + 4, 4 + n);
    put_be32(out + 8 + n, (uint32_t)crc);
    return 12 + n;
}

/* Signature, IHDR with the given size, a small IDAT and IEND: enough for
 * libpng to accept the header and hand the size to us. */
static size_t crafted_png(uint8_t *out, uint32_t w, uint32_t h, bool bad_crc)
{
    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    memcpy(out, sig, 8);
    size_t n = 8;
    uint8_t ihdr[13];
    put_be32(ihdr, w);
    put_be32(ihdr + 4, h);
    ihdr[8] = 8;  /* depth */
    ihdr[9] = 2;  /* RGB */
    ihdr[10] = ihdr[11] = ihdr[12] = 0;
    n += put_chunk(out + n, "IHDR", ihdr, 13);
    if (bad_crc) out[n - 1] ^= 0x55;
    static const uint8_t idat[8] = {0x78, 0x9c, 0x63, 0x00, 0x00, 0x00, 0x01, 0x00};
    n += put_chunk(out + n, "IDAT", idat, sizeof idat);
    n += put_chunk(out + n, "IEND", NULL, 0);
    return n;
}

static void test_errors(void)
{
    uint8_t buf[256];
    char *path = in_dir("crafted.png");

    write_raw(path, buf, crafted_png(buf, 0, 10, false));
    expect_input_error(path, NULL);
    write_raw(path, buf, crafted_png(buf, 100000, 100000, false));
    expect_input_error(path, "100000x100000");
    /* Under libpng's own limits and ours per side, over ours in total. */
    write_raw(path, buf, crafted_png(buf, 10000, 10000, false));
    expect_input_error(path, "pixels allowed");
    write_raw(path, buf, crafted_png(buf, 16, 16, true));
    expect_input_error(path, NULL);

    /* A real PNG cut in half. */
    rng_seed(3);
    uint8_t px[32 * 32 * 3];
    for (size_t i = 0; i < sizeof px; i++) px[i] = rand_byte();
    char *good = in_dir("good.png");
    CHECK_OK(cnn_png_write(good, px, 32, 32, 3, 1));
    char *data;
    size_t len;
    CHECK_OK(cnn_file_read(good, 1 << 20, &data, &len));
    if (data) {
        write_raw(path, data, len / 2);
        expect_input_error(path, "truncated");
        /* Image data complete, IEND missing. */
        write_raw(path, data, len - 12);
        expect_input_error(path, "truncated");
        /* Decoding from memory names the given name. */
        cnn_image img;
        int s = cnn_image_decode("mem:thing", data, len / 3, &img);
        CHECK(s == CNN_ERR_INPUT && strstr(cnn_error_message(), "mem:thing"),
              "decode from memory: %d %s", s, cnn_error_message());
        free(data);
    }
    free(good);
    free(path);

    path = in_dir("notes.png");
    write_raw(path, "hello, this is text\n", 20);
    expect_input_error(path, "not a PNG or JPEG image");
    free(path);

    path = in_dir("empty.jpg");
    write_raw(path, "", 0);
    expect_input_error(path, "not a PNG or JPEG image");
    free(path);

    path = in_dir("missing.png");
    expect_input_error(path, NULL);
    free(path);

    /* Write errors: a folder that does not exist. */
    path = in_dir("no/such/folder/x.png");
    int s = cnn_png_write(path, px, 32, 32, 3, 1);
    CHECK(s == CNN_ERR_IO && strstr(cnn_error_message(), path),
          "png write to missing folder: %d %s", s, cnn_error_message());
    free(path);
}

/* --------------------------------------------------------------- threads */

struct thread_job {
    int id;
    int failures;
};

static void *png_thread(void *arg)
{
    struct thread_job *job = arg;
    enum { W = 64, H = 40 };
    uint8_t px[W * H * 3];
    for (int round = 0; round < 8; round++) {
        for (size_t i = 0; i < sizeof px; i++)
            px[i] = (uint8_t)(i * 31 + (size_t)job->id * 7 + (size_t)round);
        char name[64];
        snprintf(name, sizeof name, "thr%d.png", job->id);
        char *path = in_dir(name);
        cnn_image img;
        if (cnn_png_write(path, px, W, H, 3, 1) != 0 || cnn_image_load(path, &img) != 0) {
            job->failures++;
        } else {
            if (img.w != W || img.h != H || img.c != 3 || memcmp(img.px, px, sizeof px) != 0)
                job->failures++;
            cnn_image_free(&img);
        }
        /* A per-thread error that other threads must not overwrite. */
        char *bad = in_dir("does-not-exist.png");
        if (cnn_image_load(bad, &img) != CNN_ERR_INPUT || !strstr(cnn_error_message(), bad))
            job->failures++;
        free(bad);
        free(path);
    }
    return NULL;
}

static void test_threads(void)
{
    enum { N = 4 };
    pthread_t t[N];
    struct thread_job jobs[N];
    for (int i = 0; i < N; i++) {
        jobs[i] = (struct thread_job){.id = i};
        CHECK(pthread_create(&t[i], NULL, png_thread, &jobs[i]) == 0, "pthread_create");
    }
    for (int i = 0; i < N; i++) {
        pthread_join(t[i], NULL);
        CHECK(jobs[i].failures == 0, "thread %d: %d failures", i, jobs[i].failures);
    }
}

/* ------------------------------------------------------------------- npy */

static void check_npy(const char *name, const int64_t *shape, int ndim, const char *shape_text)
{
    size_t count = 1;
    for (int i = 0; i < ndim; i++) count *= (size_t)shape[i];
    float *x = malloc((count ? count : 1) * sizeof *x);
    for (size_t i = 0; i < count; i++) x[i] = (float)i * 0.5f - 3.0f;
    char *path = in_dir(name);
    CHECK_OK(cnn_npy_write_f32(path, x, shape, ndim));
    char *data;
    size_t len;
    CHECK_OK(cnn_file_read(path, 1 << 24, &data, &len));
    if (data && len >= 10) {
        const uint8_t *u = (const uint8_t *)data;
        CHECK(memcmp(data, "\x93NUMPY\x01\x00", 8) == 0, "%s: bad magic/version", name);
        size_t hlen = (size_t)u[8] | (size_t)u[9] << 8;
        size_t total = 10 + hlen;
        CHECK(total % 64 == 0, "%s: header of %zu bytes is not a multiple of 64", name, total);
        CHECK(len == total + count * 4, "%s: file is %zu bytes, want %zu", name, len,
              total + count * 4);
        char *want = cnn_strfmt("{'descr': '<f4', 'fortran_order': False, 'shape': %s, }",
                                shape_text);
        size_t wl = strlen(want);
        bool ok = total <= len && hlen > wl && memcmp(data + 10, want, wl) == 0 &&
                  data[total - 1] == '\n';
        for (size_t i = 10 + wl; ok && i < total - 1; i++) ok = data[i] == ' ';
        CHECK(ok, "%s: header text is '%.*s'", name, (int)hlen, data + 10);
        if (len == total + count * 4) {
            int bad = 0;
            for (size_t i = 0; i < count; i++) {
                uint32_t bits = (uint32_t)u[total + 4 * i] | (uint32_t)u[total + 4 * i + 1] << 8 |
                                (uint32_t)u[total + 4 * i + 2] << 16 |
                                (uint32_t)u[total + 4 * i + 3] << 24;
                float f;
                memcpy(&f, &bits, 4);
                bad += f != x[i];
            }
            CHECK(bad == 0, "%s: %d values differ", name, bad);
        }
        free(want);
    }
    free(data);

    /* Our reader gives back the shape and the exact values. */
    cnn_npy_info info;
    float *back = NULL;
    CHECK_OK(cnn_npy_read_f32(path, 1 << 24, &info, &back));
    bool same = back && info.ndim == ndim && info.numel == count;
    for (int i = 0; same && i < ndim; i++) same = info.shape[i] == shape[i];
    for (size_t i = 0; same && i < count; i++) same = back[i] == x[i];
    CHECK(same, "%s: read back differs (ndim %d, %zu values)", name, info.ndim, info.numel);
    free(back);

    /* NumPy itself, when the system interpreter has it. */
    if (system("/usr/bin/python3 -c 'import numpy' >/dev/null 2>&1") == 0) {
        char *cmd = cnn_strfmt(
            "/usr/bin/python3 -c 'import numpy as np, sys; a = np.load(sys.argv[1]); "
            "shape = tuple(int(v) for v in sys.argv[2:]); "
            "want = (np.arange(a.size, dtype=np.float32) * np.float32(0.5) - np.float32(3))"
            ".reshape(shape); "
            "sys.exit(0 if a.dtype == np.float32 and a.shape == shape "
            "and np.array_equal(a, want) else 1)' "
            "'%s'",
            path);
        for (int i = 0; i < ndim; i++) {
            char *c2 = cnn_strfmt("%s %lld", cmd, (long long)shape[i]);
            free(cmd);
            cmd = c2;
        }
        CHECK(system(cmd) == 0, "%s: numpy does not load it as expected", name);
        free(cmd);
    }
    free(path);
    free(x);
}

static void test_npy(void)
{
    check_npy("a.npy", (const int64_t[]){3, 4}, 2, "(3, 4)");
    check_npy("b.npy", (const int64_t[]){5}, 1, "(5,)");
    check_npy("c.npy", (const int64_t[]){0, 3}, 2, "(0, 3)");
    check_npy("d.npy", (const int64_t[]){1, 2, 1, 3, 1, 2, 1, 2}, 8,
              "(1, 2, 1, 3, 1, 2, 1, 2)");
    check_npy("e.npy", (const int64_t[]){1, 64, 13, 17}, 4, "(1, 64, 13, 17)");

    char *path = in_dir("nope/x.npy");
    float v = 1;
    int s = cnn_npy_write_f32(path, &v, (const int64_t[]){1}, 1);
    CHECK(s == CNN_ERR_IO && strstr(cnn_error_message(), path), "npy to missing folder: %d %s", s,
          cnn_error_message());
    free(path);
}

/* A .npy header: version 1.0, the dict padded with spaces, '\n' (len < 200). */
static size_t npy_bytes(unsigned char *out, const char *dict)
{
    size_t n = strlen(dict);
    memcpy(out, "\x93NUMPY\x01\x00", 8);
    out[8] = (unsigned char)(n + 1);
    out[9] = 0;
    memcpy(out + 10, dict, n);
    out[10 + n] = '\n';
    return 11 + n;
}

/* Headers the strict reader accepts and refuses, each refusal naming the
 * file and saying what. */
static void test_npy_headers(void)
{
    static const struct {
        const char *dict;
        const char *want; /* NULL: accepted */
    } cases[] = {
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", NULL},
        {"{'shape': (4,), 'fortran_order': False, 'descr': '<f4'}", NULL},
        {"{\"descr\": \"<f4\", \"fortran_order\": False, \"shape\": ()}", NULL},
        {"{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }", "dtype '<f8'"},
        {"{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }", "dtype '>f4'"},
        {"{'descr': '<f4', 'fortran_order': True, 'shape': (2,), }", "Fortran order"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (2, -1), }", "not a tuple"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (1,1,1,1,1,1,1,1,1), }", "at most 8"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296), }", "too large"},
        {"{'descr': '<f4', 'fortran_order': False}", "lacks 'shape'"},
        {"{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (1,)}", "repeated key 'descr'"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'x': 1}", "unexpected or repeated key 'x'"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (1,)} junk", "text after the dict"},
        {"['descr', '<f4']", "not a dict"},
    };
    unsigned char buf[256];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t n = npy_bytes(buf, cases[i].dict);
        cnn_npy_info info;
        int s = cnn_npy_parse_header("h.npy", buf, n, &info);
        if (!cases[i].want) {
            CHECK(s == CNN_OK && info.data_offset == n, "%s: %s", cases[i].dict, cnn_error_message());
        } else {
            CHECK(s == CNN_ERR_INPUT && strstr(cnn_error_message(), cases[i].want) &&
                      strncmp(cnn_error_message(), "h.npy: ", 7) == 0,
                  "%s: status %d, message '%s' (want '%s')", cases[i].dict, s, cnn_error_message(), cases[i].want);
        }
    }
    cnn_npy_info info;
    size_t n = npy_bytes(buf, "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }");
    CHECK(cnn_npy_parse_header("h.npy", buf, 9, &info) == CNN_ERR_INPUT, "9 bytes accepted");
    CHECK(cnn_npy_parse_header("h.npy", buf, n - 1, &info) == CNN_ERR_INPUT, "a header cut short accepted");
    buf[6] = 4;
    CHECK(cnn_npy_parse_header("h.npy", buf, n, &info) == CNN_ERR_INPUT && strstr(cnn_error_message(), "version 4"),
          "version 4: %s", cnn_error_message());
    buf[6] = 2; /* 2.0: a 4-byte length, here 0x0a..: far past the end */
    CHECK(cnn_npy_parse_header("h.npy", buf, n, &info) == CNN_ERR_INPUT, "version 2 length accepted");
    /* a file whose data is one float short */
    char *path = in_dir("short.npy");
    FILE *f = fopen(path, "wb");
    n = npy_bytes(buf, "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }");
    fwrite(buf, 1, n, f);
    fwrite("\0\0\0\0\0\0\0\0", 1, 8, f);
    fclose(f);
    float *v = NULL;
    int s = cnn_npy_read_f32(path, 1 << 20, &info, &v);
    CHECK(s == CNN_ERR_INPUT && strstr(cnn_error_message(), "its header says 3 elements") && !v,
          "short file: %d %s", s, cnn_error_message());
    s = cnn_npy_read_info(path, &info);
    CHECK(s == CNN_ERR_INPUT && strstr(cnn_error_message(), "its header says 3 elements"), "short file info: %s",
          cnn_error_message());
    free(v);
    remove(path);
    free(path);
}

/* ------------------------------------------------------------------ json */

static void build_doc(cnn_json *j)
{
    cnn_json_object_begin(j);
    cnn_json_key(j, "name");
    cnn_json_string(j, "quote\" back\\ nl\n tab\t cr\r bs\b ff\f bell\a esc\x1b del\x7f");
    cnn_json_key(j, "utf8 \xc3\xa9\xe2\x82\xac");
    cnn_json_string(j, "caf\xc3\xa9 \xff");
    cnn_json_key(j, "nums");
    cnn_json_array_begin(j);
    cnn_json_number(j, 1.5);
    cnn_json_number(j, -0.1);
    cnn_json_number(j, 1e300 * 1e300);
    cnn_json_number(j, NAN);
    cnn_json_number(j, 123456789012.0);
    cnn_json_int(j, -9223372036854775807LL - 1);
    cnn_json_bool(j, true);
    cnn_json_bool(j, false);
    cnn_json_null(j);
    cnn_json_string(j, NULL);
    cnn_json_array_end(j);
    cnn_json_key(j, "empty_obj");
    cnn_json_object_begin(j);
    cnn_json_object_end(j);
    cnn_json_key(j, "empty_arr");
    cnn_json_array_begin(j);
    cnn_json_array_end(j);
    cnn_json_key(j, "nested");
    cnn_json_array_begin(j);
    cnn_json_object_begin(j);
    cnn_json_key(j, "");
    cnn_json_array_begin(j);
    cnn_json_array_begin(j);
    cnn_json_array_end(j);
    cnn_json_int(j, 0);
    cnn_json_array_end(j);
    cnn_json_object_end(j);
    cnn_json_array_end(j);
    cnn_json_object_end(j);
}

static const char k_compact[] =
    "{\"name\":\"quote\\\" back\\\\ nl\\n tab\\t cr\\r bs\\b ff\\f bell\\u0007 esc\\u001b "
    "del\x7f\",\"utf8 \xc3\xa9\xe2\x82\xac\":\"caf\xc3\xa9 \xef\xbf\xbd\","
    "\"nums\":[1.5,-0.1,null,null,1.23456789e+11,-9223372036854775808,true,false,null,"
    "null],\"empty_obj\":{},\"empty_arr\":[],\"nested\":[{\"\":[[],0]}]}";

static const char k_pretty[] =
    "{\n"
    "  \"name\": \"quote\\\" back\\\\ nl\\n tab\\t cr\\r bs\\b ff\\f bell\\u0007 esc\\u001b "
    "del\x7f\",\n"
    "  \"utf8 \xc3\xa9\xe2\x82\xac\": \"caf\xc3\xa9 \xef\xbf\xbd\",\n"
    "  \"nums\": [\n"
    "    1.5,\n"
    "    -0.1,\n"
    "    null,\n"
    "    null,\n"
    "    1.23456789e+11,\n"
    "    -9223372036854775808,\n"
    "    true,\n"
    "    false,\n"
    "    null,\n"
    "    null\n"
    "  ],\n"
    "  \"empty_obj\": {},\n"
    "  \"empty_arr\": [],\n"
    "  \"nested\": [\n"
    "    {\n"
    "      \"\": [\n"
    "        [],\n"
    "        0\n"
    "      ]\n"
    "    }\n"
    "  ]\n"
    "}";

static void test_json(void)
{
    for (int pretty = 0; pretty < 2; pretty++) {
        cnn_json j;
        cnn_json_init(&j, pretty);
        build_doc(&j);
        const char *want = pretty ? k_pretty : k_compact;
        CHECK(!j.failed && j.buf && strcmp(j.buf, want) == 0 && j.len == strlen(want),
              "json (pretty %d):\n%s\nwant:\n%s", pretty, j.buf ? j.buf : "(null)", want);
        char *path = in_dir(pretty ? "pretty.json" : "compact.json");
        CHECK_OK(cnn_json_write_file(&j, path));
        char *data;
        size_t len;
        CHECK_OK(cnn_file_read(path, 1 << 20, &data, &len));
        CHECK(data && len == strlen(want) + 1 && memcmp(data, want, len - 1) == 0 &&
                  data[len - 1] == '\n',
              "json file (pretty %d) differs", pretty);
        CHECK(j.buf && strcmp(j.buf, want) == 0, "buffer changed by write_file");
        free(data);
        free(path);
        cnn_json_free(&j);
    }

    /* A scalar document and a long string (buffer growth). */
    cnn_json j;
    cnn_json_init(&j, false);
    char *big = malloc(5001);
    memset(big, 'x', 5000);
    big[5000] = '\0';
    big[2500] = '\n';
    cnn_json_string(&j, big);
    CHECK(!j.failed && j.len == 5003 && j.buf[0] == '"' && j.buf[5002] == '"' &&
              memcmp(j.buf + 2501, "\\n", 2) == 0,
          "long string: len %zu", j.len);
    free(big);
    cnn_json_free(&j);

    /* Misuse is recorded, and the file is refused. */
    struct { const char *what; int kind; } misuse[] = {
        {"two top-level values", 0}, {"end without begin", 1}, {"key at top level", 2},
        {"key then end", 3}, {"unclosed", 4}, {"too deep", 5}, {"nothing", 6}};
    for (size_t m = 0; m < sizeof misuse / sizeof misuse[0]; m++) {
        cnn_json_init(&j, m % 2 == 0);
        switch (misuse[m].kind) {
        case 0: cnn_json_int(&j, 1); cnn_json_int(&j, 2); break;
        case 1: cnn_json_array_end(&j); break;
        case 2: cnn_json_key(&j, "k"); break;
        case 3: cnn_json_object_begin(&j); cnn_json_key(&j, "k"); cnn_json_object_end(&j); break;
        case 4: cnn_json_array_begin(&j); break;
        case 5:
            for (int d = 0; d < CNN_JSON_MAX_DEPTH; d++) cnn_json_array_begin(&j);
            CHECK(j.failed, "too deep: not marked failed");
            break;
        default: break;
        }
        char *path = in_dir("misuse.json");
        int s = cnn_json_write_file(&j, path);
        CHECK(s == CNN_ERR_NOMEM && strstr(cnn_error_message(), path), "%s: status %d (%s)",
              misuse[m].what, s, cnn_error_message());
        CHECK(access(path, F_OK) != 0, "%s: file written anyway", misuse[m].what);
        free(path);
        cnn_json_free(&j);
    }

    /* The deepest allowed nesting still works. */
    cnn_json_init(&j, false);
    for (int d = 0; d < CNN_JSON_MAX_DEPTH - 1; d++) cnn_json_array_begin(&j);
    for (int d = 0; d < CNN_JSON_MAX_DEPTH - 1; d++) cnn_json_array_end(&j);
    CHECK(!j.failed && j.len == 2 * (CNN_JSON_MAX_DEPTH - 1), "depth %d failed",
          CNN_JSON_MAX_DEPTH - 1);
    cnn_json_free(&j);
}

/* Strings that are not UTF-8: every byte that does not begin a well-formed
 * sequence becomes U+FFFD (overlong forms, surrogates, code points past
 * U+10FFFF, cut sequences, stray continuation bytes); file names keep their
 * bytes in base64. */
static void test_json_utf8(void)
{
    static const struct { const char *in, *out; } cases[] = {
        {"plain", "\"plain\""},
        {"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", "\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\""},
        {"a\xff" "b", "\"a\xef\xbf\xbd" "b\""},
        {"\xc0\xaf", "\"\xef\xbf\xbd\xef\xbf\xbd\""},                  /* overlong '/' */
        {"\xe0\x80\xaf", "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\""},  /* overlong, 3 bytes */
        {"\xed\xa0\x80", "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\""},  /* surrogate U+D800 */
        {"\xf4\x90\x80\x80", "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\""}, /* U+110000 */
        {"x\xe2\x82", "\"x\xef\xbf\xbd\xef\xbf\xbd\""},                /* cut at the end */
        {"\x80" "a", "\"\xef\xbf\xbd" "a\""},                           /* stray continuation */
        {"\xf4\x8f\xbf\xbf", "\"\xf4\x8f\xbf\xbf\""},                  /* U+10FFFF is fine */
        {"\x01\x1f\x7f", "\"\\u0001\\u001f\x7f\""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cnn_json j;
        cnn_json_init(&j, false);
        cnn_json_string(&j, cases[i].in);
        CHECK(!j.failed && j.buf && strcmp(j.buf, cases[i].out) == 0, "case %zu: got %s", i, j.buf ? j.buf : "");
        bool valid = strstr(cases[i].out, "\xef\xbf\xbd") == NULL;
        CHECK(cnn_json_is_utf8(cases[i].in) == valid, "case %zu: is_utf8 says %d", i, !valid);
        cnn_json_free(&j);
    }

    /* RFC 4648's test vectors. */
    static const char *const b64[][2] = {{"", ""},           {"f", "Zg=="},         {"fo", "Zm8="},
                                         {"foo", "Zm9v"},    {"foob", "Zm9vYg=="},  {"fooba", "Zm9vYmE="},
                                         {"foobar", "Zm9vYmFy"}, {"\xff\xfe\xfd", "//79"}};
    for (size_t i = 0; i < sizeof b64 / sizeof b64[0]; i++) {
        cnn_json j;
        cnn_json_init(&j, false);
        cnn_json_base64(&j, b64[i][0], strlen(b64[i][0]));
        char want[32];
        snprintf(want, sizeof want, "\"%s\"", b64[i][1]);
        CHECK(!j.failed && j.buf && strcmp(j.buf, want) == 0, "base64 of '%s': %s", b64[i][1], j.buf ? j.buf : "");
        cnn_json_free(&j);
    }

    cnn_json j;
    cnn_json_init(&j, false);
    cnn_json_object_begin(&j);
    cnn_json_path(&j, "input", "d/ok\xc3\xa9.png");
    cnn_json_path(&j, "other", "d/\xff\xfe.png");
    cnn_json_object_end(&j);
    CHECK(!j.failed && j.buf &&
              strcmp(j.buf, "{\"input\":\"d/ok\xc3\xa9.png\",\"other\":\"d/\xef\xbf\xbd\xef\xbf\xbd.png\","
                            "\"other_b64\":\"ZC///i5wbmc=\"}") == 0,
          "paths: %s", j.buf ? j.buf : "");
    cnn_json_free(&j);
}

/* One terminal line whatever the text: controls and stray bytes escaped,
 * UTF-8 kept, cut to the buffer without splitting an escape. */
static void test_escape_line(void)
{
    static const struct { const char *in, *out; } cases[] = {
        {"a\nb.png", "a\\nb.png"},
        {"\r\t", "\\r\\t"},
        {"\x1b[31mred\x7f", "\\x1b[31mred\\x7f"},
        {"\xff\xfe.png", "\\xff\\xfe.png"},
        {"caf\xc3\xa9", "caf\xc3\xa9"},
        {"csi \xc2\x9b", "csi \\xc2\\x9b"}, /* C1 control as UTF-8 */
        {"nbsp \xc2\xa0", "nbsp \xc2\xa0"},
        {"back\\slash", "back\\slash"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char out[64];
        size_t n = cnn_escape_line(out, sizeof out, cases[i].in);
        CHECK(strcmp(out, cases[i].out) == 0 && n == strlen(out), "escape %zu: '%s'", i, out);
    }
    char small[5];
    cnn_escape_line(small, sizeof small, "ab\ncd");
    CHECK(strcmp(small, "ab\\n") == 0, "cut: '%s'", small);
    cnn_escape_line(small, sizeof small, "abc\x01");
    CHECK(strcmp(small, "abc") == 0, "cut before an escape: '%s'", small);
}

/* A file the user names is read only when it is a regular file: the open
 * never blocks (a FIFO without a writer), and the message says what it is. */
static void test_file_kinds(void)
{
    char *fifo = in_dir("pipe.png");
    CHECK(mkfifo(fifo, 0600) == 0, "mkfifo %s", fifo);
    char *dir = in_dir("folder.png");
    CHECK_OK(cnn_mkdirs(dir, 0755));
    char *sock = in_dir("sock.png");
    int sfd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", sock);
    bool have_sock = strlen(sock) < sizeof sa.sun_path && sfd >= 0 &&
                     bind(sfd, (struct sockaddr *)&sa, sizeof sa) == 0;
    static const char *const dev = "/dev/null";
    const struct { const char *path, *kind; } cases[] = {
        {fifo, "is a FIFO (named pipe), not a regular file"},
        {dir, "is a folder, not a regular file"},
        {dev, "is a character device, not a regular file"},
        {have_sock ? sock : NULL, "is a socket, not a regular file"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (!cases[i].path) continue;
        char *data = NULL;
        size_t len = 0;
        double t0 = cnn_now_ms();
        int s = cnn_file_read(cases[i].path, 1 << 20, &data, &len);
        CHECK(s == CNN_ERR_INPUT && data == NULL && strstr(cnn_error_message(), cases[i].path) &&
                  strstr(cnn_error_message(), cases[i].kind),
              "%s: %d %s", cases[i].path, s, cnn_error_message());
        CHECK(cnn_now_ms() - t0 < 5000, "%s: took %.0f ms", cases[i].path, cnn_now_ms() - t0);
        cnn_image img;
        s = cnn_image_load(cases[i].path, &img);
        CHECK(s == CNN_ERR_INPUT && strstr(cnn_error_message(), cases[i].kind), "image %s: %s", cases[i].path,
              cnn_error_message());
    }
    char *missing = in_dir("missing.png");
    char *data = NULL;
    size_t len = 0;
    int s = cnn_file_read(missing, 1 << 20, &data, &len);
    CHECK(s == CNN_ERR_INPUT && strstr(cnn_error_message(), "No such file"), "missing: %s", cnn_error_message());
    if (sfd >= 0) close(sfd);
    unlink(fifo);
    unlink(sock);
    rmdir(dir);
    free(fifo);
    free(dir);
    free(sock);
    free(missing);
}

/* ------------------------------------------------------------ housekeeping */

static int count_tmp_files(void)
{
    DIR *d = opendir(g_dir);
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strstr(e->d_name, ".tmp.")) {
            fprintf(stderr, "  leftover temporary file: %s\n", e->d_name);
            n++;
        }
    closedir(d);
    return n;
}

static void remove_dir(void)
{
    DIR *d = opendir(g_dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        char *p = in_dir(e->d_name);
        unlink(p);
        free(p);
    }
    closedir(d);
    rmdir(g_dir);
}

/* A manifest with every field, written, read back entry by entry and
 * written again: the same text (what merge relies on), numbers included. */
static void test_manifest_roundtrip(void)
{
    cnn_manifest m = {0}, back = {0};
    float del[3] = {0.9f, 0.25f, 1e-7f}, ins[3] = {0.1f, 0.5f, 0.987654321f};
    cnn_manifest_entry a = {.path = "cat/conv1/activations.png", .kind = "activations", .role = "montage",
                            .layer = "conv1", .input = "in/caf\xe9 \"1\".png", .channel = -1, .format = "png",
                            .shape = {64, 112, 112}, .ndim = 3, .normalize = "global", .range = {-1.5e10f, 3.1415927f},
                            .has_range = 1, .colormap = "viridis", .has_stats = 1,
                            .stats = {-0.1, 1.0 / 3.0, NAN, 2e-300}, .nonfinite = 12, .note = "a\nnote",
                            .has_stat = 1, .bytes = 1234, .mtime_s = 1700000000, .mtime_ns = 5};
    cnn_manifest_entry b = {.path = "cat/gradcam_conv4_c2.png", .kind = "gradient", .layer = "conv4",
                            .input = "in/cat.png", .channel = 7, .format = "png", .shape = {1}, .ndim = 1,
                            .has_cls = 1, .cls = 2, .label = "Pullover", .n_curve = 3, .deletion = del,
                            .insertion = ins, .auc = {0.123456789, 1.0}, .has_stat = 1, .bytes = 1, .mtime_s = 1};
    cnn_manifest_entry c = {.path = "model/fc1/weights.png", .kind = "weights", .channel = -1, .format = "png",
                            .has_stat = 1};
    CHECK_OK(cnn_manifest_add(&m, &a));
    CHECK_OK(cnn_manifest_add(&m, &b));
    CHECK_OK(cnn_manifest_add(&m, &c));
    static const char run[] = "{\"model\":\"00ff\",\"inputs\":3,\"layers\":[{\"macs\":123456789012}],\"x\":-0.0}";
    CHECK_OK(cnn_manifest_set_run(&m, run, sizeof run - 1));
    char *t1 = NULL, *t2 = NULL;
    size_t n1 = 0, n2 = 0;
    CHECK_OK(cnn_manifest_text(&m, &t1, &n1));
    cnn_jv v;
    CHECK_OK(cnn_jv_parse(t1, n1, &v));
    const cnn_jv *files = cnn_jv_get(&v, "files"), *r = cnn_jv_get(&v, "run");
    CHECK(files && files->n == 3 && r, "files and run read back");
    for (int i = 0; files && i < files->n; i++) {
        CHECK_OK(cnn_manifest_add_jv(&back, &files->items[i]));
        back.e[i].has_stat = 1; /* the commit records them again */
        back.e[i].bytes = m.e[i].bytes;
        back.e[i].mtime_s = m.e[i].mtime_s;
        back.e[i].mtime_ns = m.e[i].mtime_ns;
    }
    cnn_json j;
    cnn_json_init(&j, false);
    if (r) cnn_json_value(&j, r);
    CHECK(j.buf && !strcmp(j.buf, run), "the run record written back as it was: %s", j.buf ? j.buf : "");
    if (j.buf) CHECK_OK(cnn_manifest_set_run(&back, j.buf, j.len));
    cnn_json_free(&j);
    CHECK_OK(cnn_manifest_text(&back, &t2, &n2));
    CHECK(t1 && t2 && n1 == n2 && !memcmp(t1, t2, n1), "manifest text differs after a round trip:\n%s\n%s",
          t1 ? t1 : "", t2 ? t2 : "");
    /* what it refuses: a field it does not write, a field of another type */
    cnn_jv bad;
    static const char *const refused[] = {
        "{\"path\": \"a/b.png\", \"kind\": \"x\", \"format\": \"png\", \"extra\": 1}",
        "{\"path\": \"a/b.png\", \"kind\": \"x\", \"format\": \"png\", \"channel\": \"3\"}",
        "{\"path\": \"../b.png\", \"kind\": \"x\", \"format\": \"png\"}",
        "{\"path\": \"a/b.png\", \"kind\": \"x\", \"format\": \"png\", \"min\": 1}",
        "{\"path\": \"a/b.png\", \"kind\": \"x\", \"format\": \"png\", \"input\": \"a\", \"input_b64\": \"%%\"}",
    };
    for (size_t i = 0; i < sizeof refused / sizeof *refused; i++) {
        CHECK_OK(cnn_jv_parse(refused[i], strlen(refused[i]), &bad));
        cnn_manifest none = {0};
        CHECK(cnn_manifest_add_jv(&none, &bad) == CNN_ERR_INPUT, "accepted %s", refused[i]);
        cnn_manifest_free(&none);
        cnn_jv_free(&bad);
    }
    cnn_jv_free(&v);
    free(t1);
    free(t2);
    cnn_manifest_free(&m);
    cnn_manifest_free(&back);
}

int main(void)
{
    const char *base = getenv("CNNVIZ_TEST_TMP");
    snprintf(g_dir, sizeof g_dir, "%s/test_io.%ld", base && base[0] ? base : "/tmp",
             (long)getpid());
    CHECK_OK(cnn_mkdirs(g_dir, 0755));

    test_png_roundtrip();
    test_png_palette();
    test_png_gray16();
    test_png_gray_alpha_and_low_bits();
    test_jpeg();
    test_errors();
    test_threads();
    test_npy();
    test_npy_headers();
    test_json();
    test_json_utf8();
    test_escape_line();
    test_file_kinds();
    test_manifest_roundtrip();

    CHECK(count_tmp_files() == 0, "temporary files left in %s", g_dir);
    int rc = test_summary("test_io");
    if (rc == 0) remove_dir();
    return rc;
}
