/* imgdump IMAGE: decodes IMAGE with cnn_image_load() and writes
 * "W H C\n" and the pixels (8-bit, HWC) to stdout, for the Python tests that
 * compare the loader with other decoders.  An image the loader refuses: its
 * one-line message on stderr, exit 2. */
#include "core/error.h"
#include "io/image.h"

#include <stdio.h>

int main(int argc, char **argv)
{
    if (argc != 2) {
        fputs("usage: imgdump IMAGE\n", stderr);
        return 2;
    }
    cnn_image img;
    int status = cnn_image_load(argv[1], &img);
    if (status < 0) {
        cnn_print_line(stderr, "imgdump: error: ", cnn_error_message());
        return cnn_status_exit_code(status);
    }
    size_t n = (size_t)img.w * (size_t)img.h * (size_t)img.c;
    printf("%d %d %d\n", img.w, img.h, img.c);
    int ok = fwrite(img.px, 1, n, stdout) == n && fflush(stdout) == 0;
    cnn_image_free(&img);
    return ok ? 0 : 1;
}
