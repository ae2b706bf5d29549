/* SLIC superpixels (viz/slic.h). */
#include "viz/slic.h"
#include "core/error.h"
#include "core/util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* sRGB byte -> linear light. */
static double srgb_linear(int v)
{
    double u = v / 255.0;
    return u <= 0.04045 ? u / 12.92 : pow((u + 0.055) / 1.055, 2.4);
}

static double lab_f(double t)
{
    const double d = 6.0 / 29.0;
    return t > d * d * d ? cbrt(t) : t / (3 * d * d) + 4.0 / 29.0;
}

/* CIELAB of every pixel (D65 white), lab[3 * p + 0..2]. */
static void to_lab(const uint8_t *img, size_t n, int c, double *lab)
{
    double lin[256];
    for (int v = 0; v < 256; v++) lin[v] = srgb_linear(v);
    for (size_t p = 0; p < n; p++) {
        double r, g, b;
        if (c == 1) {
            r = g = b = lin[img[p]];
        } else {
            r = lin[img[3 * p]];
            g = lin[img[3 * p + 1]];
            b = lin[img[3 * p + 2]];
        }
        double x = (0.4124564 * r + 0.3575761 * g + 0.1804375 * b) / 0.95047;
        double y = 0.2126729 * r + 0.7151522 * g + 0.0721750 * b;
        double z = (0.0193339 * r + 0.1191920 * g + 0.9503041 * b) / 1.08883;
        double fx = lab_f(x), fy = lab_f(y), fz = lab_f(z);
        lab[3 * p] = 116 * fy - 16;
        lab[3 * p + 1] = c == 1 ? 0 : 500 * (fx - fy);
        lab[3 * p + 2] = c == 1 ? 0 : 200 * (fy - fz);
    }
}

static double sq3(const double *a, const double *b)
{
    double d0 = a[0] - b[0], d1 = a[1] - b[1], d2 = a[2] - b[2];
    return d0 * d0 + d1 * d1 + d2 * d2;
}

/* The colour gradient at (y, x) (interior pixels; +inf at the border). */
static double gradient(const double *lab, int h, int w, int y, int x)
{
    if (y < 1 || x < 1 || y >= h - 1 || x >= w - 1) return INFINITY;
    size_t p = (size_t)y * w + x;
    return sq3(lab + 3 * (p + 1), lab + 3 * (p - 1)) + sq3(lab + 3 * (p + w), lab + 3 * (p - w));
}

/* Relabels 4-connected pieces (viz/slic.h); labels in and out. */
static int enforce_connectivity(int32_t *labels, int h, int w, int min_size)
{
    size_t n = (size_t)h * w;
    int32_t *out = cnn_malloc(n * sizeof *out);
    size_t *queue = cnn_malloc(n * sizeof *queue);
    if (!out || !queue) {
        free(out);
        free(queue);
        return CNN_ERR_NOMEM;
    }
    for (size_t p = 0; p < n; p++) out[p] = -1;
    static const int dy[4] = {0, -1, 0, 1}, dx[4] = {-1, 0, 1, 0};
    int next = 0;
    for (size_t start = 0; start < n; start++) {
        if (out[start] >= 0) continue;
        int sy = (int)(start / (size_t)w), sx = (int)(start % (size_t)w);
        int adj = -1; /* a segment already made next to the first pixel */
        for (int d = 0; d < 4; d++) {
            int ny = sy + dy[d], nx = sx + dx[d];
            if (ny >= 0 && nx >= 0 && ny < h && nx < w && out[(size_t)ny * w + nx] >= 0) {
                adj = out[(size_t)ny * w + nx];
                break;
            }
        }
        size_t head = 0, tail = 0;
        queue[tail++] = start;
        out[start] = next;
        while (head < tail) {
            size_t p = queue[head++];
            int y = (int)(p / (size_t)w), x = (int)(p % (size_t)w);
            for (int d = 0; d < 4; d++) {
                int ny = y + dy[d], nx = x + dx[d];
                if (ny < 0 || nx < 0 || ny >= h || nx >= w) continue;
                size_t q = (size_t)ny * w + nx;
                if (out[q] < 0 && labels[q] == labels[start]) {
                    out[q] = next;
                    queue[tail++] = q;
                }
            }
        }
        if ((int)tail < min_size && adj >= 0) {
            for (size_t i = 0; i < tail; i++) out[queue[i]] = adj;
        } else {
            next++;
        }
    }
    memcpy(labels, out, n * sizeof *out);
    free(out);
    free(queue);
    return next;
}

int cnn_slic(const uint8_t *img, int h, int w, int c, int k, double compactness, int iters, int32_t *labels)
{
    if (h < 1 || w < 1 || (c != 1 && c != 3) || k < 1 || !(compactness > 0) || iters < 1)
        return cnn_error_set(CNN_ERR_INPUT, "slic: %d x %d x %d image, %d segments, compactness %g, %d rounds", h, w,
                             c, k, compactness, iters);
    size_t n = (size_t)h * w;
    double S = sqrt((double)n / k);
    int ny = (int)lround(h / S), nx = (int)lround(w / S);
    if (ny < 1) ny = 1;
    if (nx < 1) nx = 1;
    int nc = ny * nx;
    double *lab = cnn_malloc(3 * n * sizeof *lab), *dist = cnn_malloc(n * sizeof *dist);
    double *cen = cnn_malloc((size_t)nc * 5 * sizeof *cen), *sum = cnn_malloc((size_t)nc * 6 * sizeof *sum);
    int status = lab && dist && cen && sum ? CNN_OK : CNN_ERR_NOMEM;
    if (status < 0) goto done;
    to_lab(img, n, c, lab);
    for (int i = 0; i < ny; i++)
        for (int j = 0; j < nx; j++) {
            int y = (int)((i + 0.5) * h / ny), x = (int)((j + 0.5) * w / nx);
            /* the lowest gradient of the 3 x 3 neighbourhood (the first on ties) */
            int by = y, bx = x;
            double best = gradient(lab, h, w, y, x);
            for (int yy = y - 1; yy <= y + 1; yy++)
                for (int xx = x - 1; xx <= x + 1; xx++) {
                    double gv = gradient(lab, h, w, yy, xx);
                    if (gv < best) best = gv, by = yy, bx = xx;
                }
            double *ce = cen + (size_t)(i * nx + j) * 5;
            size_t p = (size_t)by * w + bx;
            ce[0] = lab[3 * p];
            ce[1] = lab[3 * p + 1];
            ce[2] = lab[3 * p + 2];
            ce[3] = by;
            ce[4] = bx;
        }
    double wxy = compactness * compactness / (S * S);
    int R = (int)ceil(S);
    for (int it = 0; it < iters; it++) {
        for (size_t p = 0; p < n; p++) {
            labels[p] = -1;
            dist[p] = INFINITY;
        }
        for (int kk = 0; kk < nc; kk++) {
            const double *ce = cen + (size_t)kk * 5;
            int y0 = (int)floor(ce[3]) - R, y1 = (int)ceil(ce[3]) + R;
            int x0 = (int)floor(ce[4]) - R, x1 = (int)ceil(ce[4]) + R;
            if (y0 < 0) y0 = 0;
            if (x0 < 0) x0 = 0;
            if (y1 > h - 1) y1 = h - 1;
            if (x1 > w - 1) x1 = w - 1;
            for (int y = y0; y <= y1; y++)
                for (int x = x0; x <= x1; x++) {
                    size_t p = (size_t)y * w + x;
                    double ddy = y - ce[3], ddx = x - ce[4];
                    double d = sq3(lab + 3 * p, ce) + (ddy * ddy + ddx * ddx) * wxy;
                    if (d < dist[p]) {
                        dist[p] = d;
                        labels[p] = kk;
                    }
                }
        }
        /* a pixel no window reached takes the nearest centre */
        for (size_t p = 0; p < n; p++) {
            if (labels[p] >= 0) continue;
            int y = (int)(p / (size_t)w), x = (int)(p % (size_t)w);
            for (int kk = 0; kk < nc; kk++) {
                const double *ce = cen + (size_t)kk * 5;
                double ddy = y - ce[3], ddx = x - ce[4];
                double d = sq3(lab + 3 * p, ce) + (ddy * ddy + ddx * ddx) * wxy;
                if (d < dist[p]) {
                    dist[p] = d;
                    labels[p] = kk;
                }
            }
        }
        memset(sum, 0, (size_t)nc * 6 * sizeof *sum);
        for (size_t p = 0; p < n; p++) {
            double *su = sum + (size_t)labels[p] * 6;
            su[0] += lab[3 * p];
            su[1] += lab[3 * p + 1];
            su[2] += lab[3 * p + 2];
            su[3] += (double)(p / (size_t)w);
            su[4] += (double)(p % (size_t)w);
            su[5] += 1;
        }
        for (int kk = 0; kk < nc; kk++) {
            const double *su = sum + (size_t)kk * 6;
            if (su[5] > 0)
                for (int d = 0; d < 5; d++) cen[(size_t)kk * 5 + d] = su[d] / su[5];
        }
    }
    int min_size = (int)(S * S / 4);
    status = enforce_connectivity(labels, h, w, min_size > 1 ? min_size : 1);
done:
    free(lab);
    free(dist);
    free(cen);
    free(sum);
    return status;
}
