/* Shared body of the PNG and JPEG targets: decode, check the result's
 * invariants, free. */
#ifndef CNN_FUZZ_IMAGE_COMMON_H
#define CNN_FUZZ_IMAGE_COMMON_H

#include "core/error.h"
#include "io/image.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

static void fuzz_decode(const char *name, const uint8_t *data, size_t size)
{
    cnn_image img;
    cnn_error_clear();
    int status = cnn_image_decode(name, data, size, &img);
    if (status < 0) {
        const char *msg = cnn_error_message();
        CNN_ASSERT(msg[0] != '\0');
        CNN_ASSERT(strchr(msg, '\n') == NULL);
        CNN_ASSERT(img.px == NULL);
        return;
    }
    CNN_ASSERT(img.w > 0 && img.h > 0 && (img.c == 1 || img.c == 3) && img.px);
    CNN_ASSERT(img.w <= CNN_IMAGE_MAX_SIDE && img.h <= CNN_IMAGE_MAX_SIDE);
    /* Touch the first and last pixel byte: ASan checks the buffer's size. */
    size_t n = (size_t)img.w * (size_t)img.h * (size_t)img.c;
    volatile uint8_t sink = (uint8_t)(img.px[0] ^ img.px[n - 1]);
    (void)sink;
    cnn_image_free(&img);
}

#endif
