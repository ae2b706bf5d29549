/* libFuzzer target: the PNG reader.  The input is taken as a PNG whatever
 * its first bytes (the signature is written over them), and every complete
 * chunk gets its CRC recomputed, so mutations reach the header checks and
 * the transforms instead of dying at libpng's CRC test. */
#include "fuzz_image_common.h"

#include <stdlib.h>
#include <zlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (size < 8) {
        fuzz_decode("fuzz.png", data, size);
        return 0;
    }
    uint8_t *buf = malloc(size);
    if (!buf) return 0;
    memcpy(buf, data, size);
    memcpy(buf, sig, sizeof sig);
    for (size_t pos = 8; size - pos >= 12;) {
        uint32_t len = be32(buf + pos);
        if (len > size - pos - 12) break;
        uLong crc = crc32(0L, buf + pos + 4, (uInt)len + 4);
        uint8_t *c = buf + pos + 8 + len;
        c[0] = (uint8_t)(crc >> 24);
        c[1] = (uint8_t)(crc >> 16);
        c[2] = (uint8_t)(crc >> 8);
        c[3] = (uint8_t)crc;
        pos += 12 + (size_t)len;
    }
    fuzz_decode("fuzz.png", buf, size);
    free(buf);
    return 0;
}
