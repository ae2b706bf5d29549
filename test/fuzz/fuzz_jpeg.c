/* libFuzzer target: the JPEG reader.  The input is taken as a JPEG whatever
 * its first bytes (the SOI marker is written over them). */
#include "fuzz_image_common.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3) {
        fuzz_decode("fuzz.jpg", data, size);
        return 0;
    }
    uint8_t *buf = malloc(size);
    if (!buf) return 0;
    memcpy(buf, data, size);
    buf[0] = 0xff;
    buf[1] = 0xd8;
    buf[2] = 0xff;
    fuzz_decode("fuzz.jpg", buf, size);
    free(buf);
    return 0;
}
