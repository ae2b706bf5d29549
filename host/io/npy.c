#define _POSIX_C_SOURCE 200809L
#include "io/npy.h"
#include "core/error.h"
#include "core/util.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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

/* ---------------------------------------------------------------------- */
/* Reading                                                                 */

typedef struct hdr_parser {
    const char *s;
    size_t i, n;
} hdr_parser;

static void skip_ws(hdr_parser *p)
{
    while (p->i < p->n && (p->s[p->i] == ' ' || p->s[p->i] == '\t')) p->i++;
}

static bool eat(hdr_parser *p, char c)
{
    skip_ws(p);
    if (p->i < p->n && p->s[p->i] == c) {
        p->i++;
        return true;
    }
    return false;
}

/* A single-quoted Python string without escapes (all the header uses). */
static bool quoted(hdr_parser *p, char *out, size_t size)
{
    skip_ws(p);
    if (p->i >= p->n || (p->s[p->i] != '\'' && p->s[p->i] != '"')) return false;
    char q = p->s[p->i++];
    size_t k = 0;
    while (p->i < p->n && p->s[p->i] != q) {
        if (p->s[p->i] == '\\' || k + 1 >= size) return false;
        out[k++] = p->s[p->i++];
    }
    if (p->i >= p->n) return false;
    p->i++;
    out[k] = '\0';
    return true;
}

static bool word(hdr_parser *p, const char *w)
{
    skip_ws(p);
    size_t l = strlen(w);
    if (p->n - p->i < l || memcmp(p->s + p->i, w, l) != 0) return false;
    p->i += l;
    return true;
}

int cnn_npy_parse_header(const char *name, const unsigned char *buf, size_t len, cnn_npy_info *info)
{
    memset(info, 0, sizeof *info);
    if (len < 10 || memcmp(buf, "\x93NUMPY", 6) != 0)
        return cnn_error_set(CNN_ERR_INPUT, "%s: not a .npy file (no \\x93NUMPY magic)", name);
    unsigned major = buf[6], minor = buf[7];
    size_t hlen, start;
    if (major == 1 && minor == 0) {
        hlen = (size_t)buf[8] | (size_t)buf[9] << 8;
        start = 10;
    } else if ((major == 2 || major == 3) && minor == 0) {
        if (len < 12) return cnn_error_set(CNN_ERR_INPUT, "%s: truncated .npy header", name);
        hlen = (size_t)buf[8] | (size_t)buf[9] << 8 | (size_t)buf[10] << 16 | (size_t)buf[11] << 24;
        start = 12;
    } else {
        return cnn_error_set(CNN_ERR_INPUT, "%s: .npy format version %u.%u (1.0, 2.0 and 3.0 are read)", name, major,
                             minor);
    }
    if (hlen > CNN_NPY_MAX_HEADER)
        return cnn_error_set(CNN_ERR_INPUT, "%s: .npy header of %zu bytes (at most %d)", name, hlen,
                             CNN_NPY_MAX_HEADER);
    if (hlen == 0 || len - start < hlen) return cnn_error_set(CNN_ERR_INPUT, "%s: truncated .npy header", name);
    hdr_parser p = {(const char *)buf + start, 0, hlen};
    if (p.s[hlen - 1] != '\n') return cnn_error_set(CNN_ERR_INPUT, "%s: .npy header does not end in a newline", name);
    p.n = hlen - 1;
    while (p.n > 0 && p.s[p.n - 1] == ' ') p.n--;
    for (size_t i = 0; i < p.n; i++)
        if (p.s[i] == '\0' || p.s[i] == '\n')
            return cnn_error_set(CNN_ERR_INPUT, "%s: .npy header holds a control character", name);
    bool seen_descr = false, seen_order = false, seen_shape = false;
    if (!eat(&p, '{')) return cnn_error_set(CNN_ERR_INPUT, "%s: .npy header is not a dict", name);
    while (!eat(&p, '}')) {
        char key[32], val[32];
        if (!quoted(&p, key, sizeof key) || !eat(&p, ':'))
            return cnn_error_set(CNN_ERR_INPUT, "%s: .npy header is not a dict of 'descr', 'fortran_order', 'shape'",
                                 name);
        if (!strcmp(key, "descr") && !seen_descr) {
            seen_descr = true;
            if (!quoted(&p, val, sizeof val)) return cnn_error_set(CNN_ERR_INPUT, "%s: .npy descr is not a string", name);
            if (strcmp(val, "<f4") != 0)
                return cnn_error_set(CNN_ERR_INPUT, "%s: dtype '%s': float32 ('<f4', little-endian) is needed (in "
                                     "NumPy: x.astype(np.float32))", name, val);
        } else if (!strcmp(key, "fortran_order") && !seen_order) {
            seen_order = true;
            if (word(&p, "True"))
                return cnn_error_set(CNN_ERR_INPUT, "%s: the array is in Fortran order; C order is needed "
                                     "(np.ascontiguousarray)", name);
            if (!word(&p, "False")) return cnn_error_set(CNN_ERR_INPUT, "%s: .npy fortran_order is not a bool", name);
        } else if (!strcmp(key, "shape") && !seen_shape) {
            seen_shape = true;
            if (!eat(&p, '(')) return cnn_error_set(CNN_ERR_INPUT, "%s: .npy shape is not a tuple", name);
            while (!eat(&p, ')')) {
                skip_ws(&p);
                uint64_t d = 0;
                size_t digits = 0;
                while (p.i < p.n && p.s[p.i] >= '0' && p.s[p.i] <= '9') {
                    if (d > (1ull << 40)) return cnn_error_set(CNN_ERR_INPUT, "%s: .npy dimension too large", name);
                    d = d * 10 + (uint64_t)(p.s[p.i++] - '0');
                    digits++;
                }
                if (!digits || info->ndim >= 8)
                    return cnn_error_set(CNN_ERR_INPUT, "%s: .npy shape is not a tuple of at most 8 sizes", name);
                info->shape[info->ndim++] = (int64_t)d;
                if (!eat(&p, ',')) {
                    if (!eat(&p, ')')) return cnn_error_set(CNN_ERR_INPUT, "%s: .npy shape is not a tuple", name);
                    break;
                }
            }
        } else {
            return cnn_error_set(CNN_ERR_INPUT, "%s: .npy header has an unexpected or repeated key '%s'", name, key);
        }
        if (!eat(&p, ',')) {
            if (!eat(&p, '}')) return cnn_error_set(CNN_ERR_INPUT, "%s: .npy header is not a dict", name);
            break;
        }
    }
    skip_ws(&p);
    if (p.i != p.n) return cnn_error_set(CNN_ERR_INPUT, "%s: .npy header has text after the dict", name);
    if (!seen_descr || !seen_order || !seen_shape)
        return cnn_error_set(CNN_ERR_INPUT, "%s: .npy header lacks '%s'", name,
                             !seen_descr ? "descr" : !seen_order ? "fortran_order" : "shape");
    size_t n = 1, bytes;
    for (int i = 0; i < info->ndim; i++)
        if (!cnn_mul_size(n, (size_t)info->shape[i], &n))
            return cnn_error_set(CNN_ERR_INPUT, "%s: .npy shape too large", name);
    if (!cnn_mul_size(n, sizeof(float), &bytes)) return cnn_error_set(CNN_ERR_INPUT, "%s: .npy shape too large", name);
    info->numel = n;
    info->data_offset = start + hlen;
    return CNN_OK;
}

int cnn_npy_read_info(const char *path, cnn_npy_info *info)
{
    struct stat st;
    int fd = cnn_file_open_read(path, &st);
    if (fd < 0) return fd;
    unsigned char *buf = cnn_malloc(CNN_NPY_MAX_HEADER + 12);
    if (!buf) {
        close(fd);
        return CNN_ERR_NOMEM;
    }
    size_t got = 0;
    while (got < CNN_NPY_MAX_HEADER + 12) {
        ssize_t r = read(fd, buf + got, CNN_NPY_MAX_HEADER + 12 - got);
        if (r < 0 && errno == EINTR && !cnn_signal_pending()) continue;
        if (r < 0) {
            int e = errno;
            free(buf);
            close(fd);
            return e == EINTR ? cnn_error_interrupted() : cnn_error_set(CNN_ERR_IO, "%s: read failed: %s", path,
                                                                        strerror(e));
        }
        if (r == 0) break;
        got += (size_t)r;
    }
    close(fd);
    int status = cnn_npy_parse_header(path, buf, got, info);
    free(buf);
    if (status == CNN_OK && (unsigned long long)st.st_size != info->data_offset + info->numel * sizeof(float))
        status = cnn_error_set(CNN_ERR_INPUT, "%s: .npy file of %lld bytes; its header says %zu elements, which need "
                               "%zu", path, (long long)st.st_size, info->numel,
                               info->data_offset + info->numel * sizeof(float));
    return status;
}

int cnn_npy_read_f32(const char *path, size_t max_bytes, cnn_npy_info *info, float **data)
{
    *data = NULL;
    char *text = NULL;
    size_t len = 0;
    int status = cnn_file_read(path, max_bytes, &text, &len);
    if (status < 0) return status;
    status = cnn_npy_parse_header(path, (const unsigned char *)text, len, info);
    if (status == CNN_OK && len != info->data_offset + info->numel * sizeof(float))
        status = cnn_error_set(CNN_ERR_INPUT, "%s: .npy file of %zu bytes; its header says %zu elements, which need "
                               "%zu", path, len, info->numel, info->data_offset + info->numel * sizeof(float));
    float *v = NULL;
    if (status == CNN_OK && !(v = cnn_malloc((info->numel ? info->numel : 1) * sizeof(float)))) status = CNN_ERR_NOMEM;
    if (status == CNN_OK) {
        const unsigned char *src = (const unsigned char *)text + info->data_offset;
        if (host_is_little_endian()) {
            if (info->numel) memcpy(v, src, info->numel * sizeof(float));
        } else {
            for (size_t i = 0; i < info->numel; i++) {
                uint32_t b = (uint32_t)src[4 * i] | (uint32_t)src[4 * i + 1] << 8 | (uint32_t)src[4 * i + 2] << 16 |
                             (uint32_t)src[4 * i + 3] << 24;
                memcpy(&v[i], &b, 4);
            }
        }
        *data = v;
    }
    free(text);
    return status;
}
