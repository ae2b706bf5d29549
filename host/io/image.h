/* Image files: PNG (libpng) and JPEG (libjpeg-turbo) in, PNG out.
 * Decoded images are 8-bit, interleaved HWC, 1 (gray) or 3 (RGB) channels. */
#ifndef CNN_IO_IMAGE_H
#define CNN_IO_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#define CNN_IMAGE_MAX_SIDE 16384
#define CNN_IMAGE_MAX_PIXELS (64u << 20)
#define CNN_IMAGE_MAX_FILE (256u << 20)

typedef struct cnn_image {
    int w, h, c;  /* c = 1 or 3 */
    uint8_t *px;  /* [h, w, c] */
} cnn_image;

/* Reads PNG or JPEG (detected from the first bytes, not the extension).
 * PNG: gray, gray+alpha, RGB, RGBA, palette, 1/2/4/8/16-bit; alpha is dropped
 * (composited on black is NOT done: the colour channels are kept as stored),
 * 16-bit is reduced to 8 by rounding (v * 255 + 32767) / 65535.
 * JPEG: gray or YCbCr/RGB; CMYK is refused (RGB from CMYK needs the
 * file's colour profile).  An EXIF orientation is not applied: the pixels
 * come as stored, as PIL.Image.open and torchvision's decoders give them
 * (test/io/test_decode.py checks the layouts against Pillow).
 * Errors: CNN_ERR_INPUT with "path: what" (not an image, truncated, zero or
 * absurd size beyond the limits above, CMYK). */
int cnn_image_load(const char *path, cnn_image *img);

/* Same from memory; `name` is used in messages. */
int cnn_image_decode(const char *name, const void *data, size_t len, cnn_image *img);

void cnn_image_free(cnn_image *img);

/* Writes an 8-bit PNG (c = 1 gray, 3 RGB, 4 RGBA) atomically: a temporary
 * name in the same folder, then rename.  level: zlib level 0..9 (1 is a fast
 * default).  Errors: CNN_ERR_IO naming the path. Thread-safe. */
int cnn_png_write(const char *path, const uint8_t *px, int w, int h, int c, int level);

#endif
