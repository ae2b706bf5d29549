#define _POSIX_C_SOURCE 200809L
#include "io/image.h"
#include "core/error.h"
#include "core/util.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <png.h>
#include <turbojpeg.h>

/* Shared size check for both decoders, done on the header's numbers before
 * any pixel memory is requested, so a crafted 100000x100000 header costs
 * nothing.  On success *bytes is w*h*c. */
static int check_dims(const char *name, unsigned long w, unsigned long h, int c, size_t *bytes)
{
    if (w == 0 || h == 0)
        return cnn_error_set(CNN_ERR_INPUT, "%s: image has zero size (%lux%lu)", name, w, h);
    if (w > CNN_IMAGE_MAX_SIDE || h > CNN_IMAGE_MAX_SIDE)
        return cnn_error_set(CNN_ERR_INPUT,
                             "%s: image is %lux%lu, more than the %d pixels per side allowed",
                             name, w, h, CNN_IMAGE_MAX_SIDE);
    size_t npix;
    if (!cnn_mul_size((size_t)w, (size_t)h, &npix) || npix > CNN_IMAGE_MAX_PIXELS)
        return cnn_error_set(CNN_ERR_INPUT,
                             "%s: image is %lux%lu, more than the %u pixels allowed", name, w,
                             h, CNN_IMAGE_MAX_PIXELS);
    if (!cnn_mul_size(npix, (size_t)c, bytes))
        return cnn_error_set(CNN_ERR_INPUT, "%s: image is too large", name);
    return CNN_OK;
}

/* ---------------------------------------------------------------- PNG in */

/* Everything the PNG reader owns lives here, in the frame of the function
 * that calls the setjmp-ing one.  Values changed after setjmp in the
 * setjmp-ing function's own locals would be indeterminate after longjmp;
 * reached through an unchanged pointer they are not, so the error path can
 * free them without volatile gymnastics. */
struct png_reader {
    const char *name;
    const uint8_t *data;
    size_t len, pos;
    png_structp png;
    png_infop info;
    uint8_t *px;
    png_bytep *rows;
    char msg[256];
    char warn[256];
};

static void png_read_error_fn(png_structp png, png_const_charp msg)
{
    struct png_reader *r = png_get_error_ptr(png);
    snprintf(r->msg, sizeof r->msg, "%s", msg);
    png_longjmp(png, 1);
}

/* Warnings are kept, not printed: libpng reports the reason for "Invalid
 * IHDR data" (zero width, ...) only as a warning just before the error. */
static void png_read_warning_fn(png_structp png, png_const_charp msg)
{
    struct png_reader *r = png_get_error_ptr(png);
    if (!r->warn[0]) snprintf(r->warn, sizeof r->warn, "%s", msg);
}

static void png_mem_read(png_structp png, png_bytep out, size_t n)
{
    struct png_reader *r = png_get_io_ptr(png);
    if (n > r->len - r->pos) png_error(png, "truncated file");
    memcpy(out, r->data + r->pos, n);
    r->pos += n;
}

static int png_decode_inner(struct png_reader *r, cnn_image *img)
{
    if (setjmp(png_jmpbuf(r->png))) {
        if (r->warn[0])
            return cnn_error_set(CNN_ERR_INPUT, "%s: bad PNG: %s (%s)", r->name, r->msg,
                                 r->warn);
        return cnn_error_set(CNN_ERR_INPUT, "%s: bad PNG: %s", r->name, r->msg);
    }
    png_set_read_fn(r->png, r, png_mem_read);
    /* Only IHDR, PLTE, tRNS, IDAT and IEND matter to us.  Every other chunk
     * (text, ICC profiles, unknown ones) is skipped unread: libpng would
     * otherwise allocate a buffer of whatever length a chunk claims, up to
     * 2 GiB for a text chunk in a file of a few bytes. */
    png_set_keep_unknown_chunks(r->png, PNG_HANDLE_CHUNK_NEVER, NULL, -1);
    png_read_info(r->png, r->info);

    png_uint_32 w, h;
    int depth, color, interlace;
    png_get_IHDR(r->png, r->info, &w, &h, &depth, &color, &interlace, NULL, NULL);
    int c = (color & PNG_COLOR_MASK_COLOR) ? 3 : 1; /* palette has the colour bit */
    size_t bytes;
    int status = check_dims(r->name, w, h, c, &bytes);
    if (status < 0) return status;
    /* Deflate expands at most 1032 times, so the file must hold at least
     * 1/1032 of the image's bytes: a short file that claims a large image
     * is refused before its pixel memory is requested. */
    uint64_t packed = ((uint64_t)w * png_get_channels(r->png, r->info) * (uint64_t)depth + 7) / 8 *
                      (uint64_t)h;
    if (packed / 1032 > (uint64_t)r->len)
        return cnn_error_set(CNN_ERR_INPUT,
                             "%s: bad PNG: a %ux%u image cannot fit in a %zu-byte file (truncated?)",
                             r->name, (unsigned)w, (unsigned)h, r->len);

    if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(r->png);
    if (color == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(r->png);
    if (depth == 16) png_set_scale_16(r->png); /* rounds, unlike png_set_strip_16 */
    /* Alpha (real or from tRNS) is dropped, never composited. */
    png_set_strip_alpha(r->png);
    png_set_interlace_handling(r->png);
    png_read_update_info(r->png, r->info);

    /* The transforms above must have produced exactly 8-bit gray or RGB; a
     * mismatch would make libpng write past our rows. */
    if (png_get_channels(r->png, r->info) != c || png_get_bit_depth(r->png, r->info) != 8 ||
        png_get_rowbytes(r->png, r->info) != (size_t)w * (size_t)c)
        return cnn_error_set(CNN_ERR_INPUT, "%s: unsupported PNG layout (colour type %d, %d-bit)",
                             r->name, color, depth);

    r->px = cnn_malloc(bytes);
    r->rows = cnn_malloc(sizeof *r->rows * (size_t)h);
    if (!r->px || !r->rows) return CNN_ERR_NOMEM;
    for (png_uint_32 y = 0; y < h; y++) r->rows[y] = r->px + (size_t)y * w * (size_t)c;
    png_read_image(r->png, r->rows);
    /* Reads the remaining chunks up to IEND, so a file cut after the image
     * data is still reported as truncated. */
    png_read_end(r->png, NULL);

    img->w = (int)w;
    img->h = (int)h;
    img->c = c;
    img->px = r->px;
    r->px = NULL;
    return CNN_OK;
}

static int png_decode(const char *name, const uint8_t *data, size_t len, cnn_image *img)
{
    struct png_reader r = {.name = name, .data = data, .len = len};
    r.png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &r, png_read_error_fn,
                                   png_read_warning_fn);
    if (!r.png) return cnn_error_set(CNN_ERR_NOMEM, "%s: cannot create PNG reader", name);
    r.info = png_create_info_struct(r.png);
    int status;
    if (!r.info)
        status = cnn_error_set(CNN_ERR_NOMEM, "%s: cannot create PNG reader", name);
    else
        status = png_decode_inner(&r, img);
    png_destroy_read_struct(&r.png, r.info ? &r.info : NULL, NULL);
    free(r.rows);
    free(r.px);
    return status;
}

/* --------------------------------------------------------------- JPEG in */

static int jpeg_decode(const char *name, const uint8_t *data, size_t len, cnn_image *img)
{
    tjhandle tj = tjInitDecompress();
    if (!tj) return cnn_error_set(CNN_ERR_NOMEM, "%s: cannot create JPEG decoder", name);
    int status = CNN_OK;
    uint8_t *px = NULL;
    int w = 0, h = 0, subsamp = 0, cs = 0;
    if (tjDecompressHeader3(tj, data, (unsigned long)len, &w, &h, &subsamp, &cs) != 0) {
        status = cnn_error_set(CNN_ERR_INPUT, "%s: bad JPEG: %s", name, tjGetErrorStr2(tj));
        goto done;
    }
    /* libjpeg reaches the end of a file without a frame header (SOF)
     * without an error, and reports the size as 0x0. */
    if (w < 1 || h < 1) {
        status = cnn_error_set(CNN_ERR_INPUT, "%s: bad JPEG: no frame header with the image size (got %dx%d)",
                               name, w, h);
        goto done;
    }
    if (cs == TJCS_CMYK || cs == TJCS_YCCK) {
        status = cnn_error_set(CNN_ERR_INPUT,
                               "%s: CMYK is not supported (convert the JPEG to RGB)", name);
        goto done;
    }
    int c = cs == TJCS_GRAY ? 1 : 3;
    size_t bytes;
    status = check_dims(name, (unsigned long)w, (unsigned long)h, c, &bytes);
    if (status < 0) goto done;
    px = cnn_malloc(bytes);
    if (!px) {
        status = CNN_ERR_NOMEM;
        goto done;
    }
    /* LIMITSCANS: a progressive file of a few KiB can hold thousands of
     * scans, each a pass over the whole image. */
    if (tjDecompress2(tj, data, (unsigned long)len, px, w, 0, h, c == 1 ? TJPF_GRAY : TJPF_RGB,
                      TJFLAG_ACCURATEDCT | TJFLAG_LIMITSCANS) != 0) {
        /* libjpeg treats a missing end of data as a warning and fills the
         * rest with grey; for us any warning means the pixels are not what
         * the file was meant to hold. */
        const char *msg = tjGetErrorStr2(tj);
        if (tjGetErrorCode(tj) == TJERR_WARNING && strstr(msg, "Premature end"))
            status = cnn_error_set(CNN_ERR_INPUT, "%s: truncated JPEG (%s)", name, msg);
        else
            status = cnn_error_set(CNN_ERR_INPUT, "%s: bad JPEG: %s", name, msg);
        goto done;
    }
    img->w = w;
    img->h = h;
    img->c = c;
    img->px = px;
    px = NULL;
done:
    free(px);
    tjDestroy(tj);
    return status;
}

/* ------------------------------------------------------------ dispatch */

int cnn_image_decode(const char *name, const void *data, size_t len, cnn_image *img)
{
    static const uint8_t png_magic[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    static const uint8_t jpeg_magic[3] = {0xff, 0xd8, 0xff};
    memset(img, 0, sizeof *img);
    const uint8_t *p = data;
    if (len > CNN_IMAGE_MAX_FILE)
        return cnn_error_set(CNN_ERR_INPUT, "%s: %zu bytes, more than the %u allowed for an image",
                             name, len, CNN_IMAGE_MAX_FILE);
    if (len >= sizeof png_magic && memcmp(p, png_magic, sizeof png_magic) == 0)
        return png_decode(name, p, len, img);
    if (len >= sizeof jpeg_magic && memcmp(p, jpeg_magic, sizeof jpeg_magic) == 0)
        return jpeg_decode(name, p, len, img);
    if (len == 0)
        return cnn_error_set(CNN_ERR_INPUT, "%s: empty file, not a PNG or JPEG image", name);
    return cnn_error_set(CNN_ERR_INPUT, "%s: not a PNG or JPEG image", name);
}

int cnn_image_load(const char *path, cnn_image *img)
{
    memset(img, 0, sizeof *img);
    char *data;
    size_t len;
    int status = cnn_file_read(path, CNN_IMAGE_MAX_FILE, &data, &len);
    if (status < 0) return status;
    status = cnn_image_decode(path, data, len, img);
    free(data);
    return status;
}

void cnn_image_free(cnn_image *img)
{
    if (!img) return;
    free(img->px);
    memset(img, 0, sizeof *img);
}

/* --------------------------------------------------------------- PNG out */

/* Same reasoning as png_reader: state lives in the caller's frame. */
struct png_writer {
    png_structp png;
    png_infop info;
    FILE *f;
    char msg[256];
};

static void png_write_error_fn(png_structp png, png_const_charp msg)
{
    struct png_writer *wr = png_get_error_ptr(png);
    snprintf(wr->msg, sizeof wr->msg, "%s", msg);
    png_longjmp(png, 1);
}

static void png_write_warning_fn(png_structp png, png_const_charp msg)
{
    (void)png;
    (void)msg;
}

/* Own write callback rather than png_init_io: a short fwrite (disk full)
 * must become an error, and libpng's stdio path does not report errno. */
static void png_file_write(png_structp png, png_bytep buf, size_t n)
{
    struct png_writer *wr = png_get_io_ptr(png);
    if (fwrite(buf, 1, n, wr->f) != n) png_error(png, strerror(errno ? errno : EIO));
}

static void png_file_flush(png_structp png)
{
    (void)png; /* fclose flushes; nothing to gain from flushing earlier */
}

static int png_write_inner(struct png_writer *wr, const uint8_t *px, int w, int h, int c,
                           int level)
{
    if (setjmp(png_jmpbuf(wr->png))) return -1;
    png_set_write_fn(wr->png, wr, png_file_write, png_file_flush);
    png_set_compression_level(wr->png, level);
    /* The fast levels skip libpng's adaptive filter choice (five trial
     * filters per row): one Sub filter keeps most of the gain on smooth
     * maps at a fraction of the time. */
    if (level <= 2) png_set_filter(wr->png, PNG_FILTER_TYPE_BASE, level == 0 ? PNG_FILTER_NONE : PNG_FILTER_SUB);
    int color = c == 1 ? PNG_COLOR_TYPE_GRAY : c == 3 ? PNG_COLOR_TYPE_RGB : PNG_COLOR_TYPE_RGBA;
    png_set_IHDR(wr->png, wr->info, (png_uint_32)w, (png_uint_32)h, 8, color,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(wr->png, wr->info);
    size_t stride = (size_t)w * (size_t)c;
    for (int y = 0; y < h; y++) png_write_row(wr->png, px + (size_t)y * stride);
    png_write_end(wr->png, NULL);
    return 0;
}

int cnn_png_write(const char *path, const uint8_t *px, int w, int h, int c, int level)
{
    CNN_ASSERT(px && w > 0 && h > 0 && (c == 1 || c == 3 || c == 4));
    if (level < 0) level = 0;
    if (level > 9) level = 9;
    char *tmp = cnn_tmp_path(path);
    if (!tmp) return CNN_ERR_NOMEM;
    struct png_writer wr = {0};
    int status = CNN_OK;
    errno = 0;
    wr.f = fopen(tmp, "wb");
    if (!wr.f) {
        status = cnn_error_set(CNN_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
        goto fail;
    }
    wr.png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &wr, png_write_error_fn,
                                     png_write_warning_fn);
    if (wr.png) wr.info = png_create_info_struct(wr.png);
    if (!wr.png || !wr.info) {
        status = cnn_error_set(CNN_ERR_IO, "%s: cannot create PNG writer (out of memory)", path);
        goto fail;
    }
    if (png_write_inner(&wr, px, w, h, c, level) != 0) {
        status = cnn_error_set(CNN_ERR_IO, "%s: cannot write PNG: %s", path, wr.msg);
        goto fail;
    }
    png_destroy_write_struct(&wr.png, &wr.info);
    FILE *f = wr.f;
    wr.f = NULL;
    if (fclose(f) != 0) {
        status = cnn_error_set(CNN_ERR_IO, "%s: cannot write PNG: %s", path, strerror(errno));
        goto fail;
    }
    status = cnn_file_commit(tmp, path);
    free(tmp);
    return status;

fail:
    if (wr.png) png_destroy_write_struct(&wr.png, wr.info ? &wr.info : NULL);
    if (wr.f) fclose(wr.f);
    cnn_file_abort(tmp);
    free(tmp);
    return status;
}
