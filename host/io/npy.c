#define _POSIX_C_SOURCE 200809L
#include "io/npy.h"
#include "core/error.h"
#include "core/util.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The file is streamed through a temporary name instead of being assembled
 * in one buffer for cnn_file_write_atomic: tensors can be hundreds of MB and
 * a second copy would double the peak memory. */

static bool host_is_little_endian(void)
{
    const uint32_t one = 1;
    uint8_t b;
    memcpy(&b, &one, 1);
    return b == 1;
}

/* Builds magic + version + header length + dict, padded so the data starts
 * at a multiple of 64 bytes (what NumPy itself does, so the array can be
 * memory-mapped aligned).  Returns the total header length. */
static size_t npy_header(char *out, size_t cap, const int64_t *shape, int ndim)
{
    char dict[512];
    int n = snprintf(dict, sizeof dict, "{'descr': '<f4', 'fortran_order': False, 'shape': (");
    for (int i = 0; i < ndim; i++)
        n += snprintf(dict + n, sizeof dict - (size_t)n, "%s%" PRId64, i ? ", " : "", shape[i]);
    n += snprintf(dict + n, sizeof dict - (size_t)n, "%s), }", ndim == 1 ? "," : "");
    CNN_ASSERT(n > 0 && (size_t)n < sizeof dict);

    size_t total = 10 + (size_t)n + 1; /* +1 for the final '\n' */
    total = (total + 63) / 64 * 64;
    CNN_ASSERT(total <= cap && total - 10 <= 0xffff);
    size_t hlen = total - 10;
    memcpy(out, "\x93NUMPY\x01\x00", 8);
    out[8] = (char)(hlen & 0xff);
    out[9] = (char)(hlen >> 8);
    memcpy(out + 10, dict, (size_t)n);
    memset(out + 10 + n, ' ', total - 10 - (size_t)n - 1);
    out[total - 1] = '\n';
    return total;
}

static bool write_data(FILE *f, const float *data, size_t count)
{
    if (host_is_little_endian()) return fwrite(data, sizeof(float), count, f) == count;
    uint8_t chunk[4096];
    size_t per = sizeof chunk / 4;
    for (size_t i = 0; i < count; i += per) {
        size_t m = count - i < per ? count - i : per;
        for (size_t k = 0; k < m; k++) {
            uint8_t b[4];
            memcpy(b, &data[i + k], 4);
            for (int t = 0; t < 4; t++) chunk[4 * k + (size_t)t] = b[3 - t];
        }
        if (fwrite(chunk, 4, m, f) != m) return false;
    }
    return true;
}

int cnn_npy_write_f32(const char *path, const float *data, const int64_t *shape, int ndim)
{
    CNN_ASSERT(ndim >= 1 && ndim <= 8 && shape);
    size_t count = 1;
    for (int i = 0; i < ndim; i++) {
        CNN_ASSERT(shape[i] >= 0 && (uint64_t)shape[i] <= SIZE_MAX);
        CNN_ASSERT(cnn_mul_size(count, (size_t)shape[i], &count));
    }
    size_t bytes;
    CNN_ASSERT(cnn_mul_size(count, sizeof(float), &bytes));
    CNN_ASSERT(count == 0 || data);

    char header[512];
    size_t hlen = npy_header(header, sizeof header, shape, ndim);

    char *tmp = cnn_tmp_path(path);
    if (!tmp) return CNN_ERR_NOMEM;
    int status;
    errno = 0;
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        status = cnn_error_set(CNN_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
        cnn_file_abort(tmp);
        free(tmp);
        return status;
    }
    bool ok = fwrite(header, 1, hlen, f) == hlen && write_data(f, data, count);
    int e = errno;
    if (fclose(f) != 0 && ok) {
        ok = false;
        e = errno;
    }
    if (!ok) {
        cnn_file_abort(tmp);
        status = cnn_error_set(CNN_ERR_IO, "%s: write failed: %s", path,
                               strerror(e ? e : EIO));
    } else {
        status = cnn_file_commit(tmp, path);
    }
    free(tmp);
    return status;
}
