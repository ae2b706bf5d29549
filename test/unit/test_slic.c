/* SLIC superpixels (viz/slic.h) on synthetic images with known regions:
 *
 *  - quadrants: four flat colours; every segment lies inside one quadrant
 *    (no segment crosses a colour edge), the count is within [K/2, 2K];
 *  - a disc on a background, with +-6 levels of noise: each segment is at
 *    least 95 % disc or 95 % background, and the disc's edge is followed
 *    (the pixels of segments mostly inside the disc cover >= 90 % of it);
 *  - a flat gray image: compactness, every segment's area within [1/4, 3]
 *    of H W / K and its bounding box at most 3 S a side (S = sqrt(H W / K));
 *    with compactness 40 (shape over colour) the disc's segments still hold.
 *    (At compactness 1 the +-6 noise fragments the segments and the
 *    connectivity step merges the fragments across the edge: SLIC's known
 *    behaviour, left as it is);
 *  - for each: labels are 0 .. n - 1, each label one 4-connected piece,
 *    numbered in raster order of first pixels; a second run gives the same
 *    labels (deterministic);
 *  - argument errors: CNN_ERR_INPUT.
 * No device needed. */
#include "check.h"
#include "viz/slic.h"

#include <stdbool.h>
#include <string.h>

static uint32_t g_rng = 12345;
static int noise(int amp)
{
    g_rng = g_rng * 1664525u + 1013904223u;
    return (int)((g_rng >> 8) % (uint32_t)(2 * amp + 1)) - amp;
}

static uint8_t clamp8(int v) { return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v); }

/* Labels are 0 .. n-1, first seen in raster order, each one 4-connected
 * piece. */
static void check_labels(const int32_t *lab, int h, int w, int n, const char *what)
{
    size_t np = (size_t)h * w;
    int next = 0;
    bool ok_range = true, ok_order = true;
    for (size_t p = 0; p < np; p++) {
        if (lab[p] < 0 || lab[p] >= n) ok_range = false;
        else if (lab[p] == next) next++;
        else if (lab[p] > next) ok_order = false;
    }
    CHECK(ok_range && next == n, "%s: labels outside 0..%d or some unused (%d seen)", what, n - 1, next);
    CHECK(ok_order, "%s: labels not numbered in raster order", what);
    /* connectivity: flood each label from its first pixel, count pixels */
    int *count = calloc((size_t)n, sizeof *count), *reached = calloc((size_t)n, sizeof *reached);
    size_t *queue = malloc(np * sizeof *queue);
    bool *seen = calloc(np, 1);
    for (size_t p = 0; p < np; p++)
        if (lab[p] >= 0 && lab[p] < n) count[lab[p]]++;
    for (size_t s = 0; s < np; s++) {
        if (seen[s] || lab[s] < 0 || lab[s] >= n || reached[lab[s]]) continue;
        size_t head = 0, tail = 0;
        queue[tail++] = s;
        seen[s] = true;
        while (head < tail) {
            size_t p = queue[head++];
            int y = (int)(p / (size_t)w), x = (int)(p % (size_t)w);
            int nb[4][2] = {{y - 1, x}, {y + 1, x}, {y, x - 1}, {y, x + 1}};
            for (int d = 0; d < 4; d++) {
                if (nb[d][0] < 0 || nb[d][1] < 0 || nb[d][0] >= h || nb[d][1] >= w) continue;
                size_t q = (size_t)nb[d][0] * w + nb[d][1];
                if (!seen[q] && lab[q] == lab[s]) {
                    seen[q] = true;
                    queue[tail++] = q;
                }
            }
        }
        reached[lab[s]] = (int)tail;
    }
    int split = 0;
    for (int i = 0; i < n; i++) split += reached[i] != count[i];
    CHECK(split == 0, "%s: %d segments are not one 4-connected piece", what, split);
    free(count);
    free(reached);
    free(queue);
    free(seen);
}

static int run(const uint8_t *img, int h, int w, int c, int k, double m, int32_t *lab, const char *what)
{
    int n = cnn_slic(img, h, w, c, k, m, 10, lab);
    CHECK(n >= 1, "%s: cnn_slic returned %d: %s", what, n, cnn_error_message());
    if (n < 1) return n;
    check_labels(lab, h, w, n, what);
    int32_t *again = malloc((size_t)h * w * sizeof *again);
    int n2 = cnn_slic(img, h, w, c, k, m, 10, again);
    CHECK(n2 == n && memcmp(again, lab, (size_t)h * w * sizeof *lab) == 0, "%s: a second run differs", what);
    free(again);
    return n;
}

/* share[i] = fraction of segment i's pixels where region() is true */
static void region_share(const int32_t *lab, const bool *in, size_t np, int n, double *share)
{
    int *tot = calloc((size_t)n, sizeof *tot), *hit = calloc((size_t)n, sizeof *hit);
    for (size_t p = 0; p < np; p++) {
        tot[lab[p]]++;
        hit[lab[p]] += in[p];
    }
    for (int i = 0; i < n; i++) share[i] = tot[i] ? (double)hit[i] / tot[i] : 0;
    free(tot);
    free(hit);
}

static void test_quadrants(void)
{
    const int h = 224, w = 224, k = 16;
    uint8_t *img = malloc((size_t)h * w * 3);
    static const uint8_t col[4][3] = {{200, 30, 30}, {30, 180, 40}, {20, 40, 210}, {230, 220, 60}};
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            int q = (y >= h / 2) * 2 + (x >= w / 2);
            memcpy(img + ((size_t)y * w + x) * 3, col[q], 3);
        }
    int32_t *lab = malloc((size_t)h * w * sizeof *lab);
    int n = run(img, h, w, 3, k, 10, lab, "quadrants");
    if (n >= 1) {
        CHECK(n >= k / 2 && n <= 2 * k, "quadrants: %d segments for K = %d", n, k);
        int *quad = malloc((size_t)n * sizeof *quad), mixed = 0;
        for (int i = 0; i < n; i++) quad[i] = -1;
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                int q = (y >= h / 2) * 2 + (x >= w / 2), l = lab[(size_t)y * w + x];
                if (quad[l] < 0) quad[l] = q;
                else if (quad[l] != q) mixed++;
            }
        CHECK(mixed == 0, "quadrants: %d pixels in a segment that crosses a colour edge", mixed);
        free(quad);
    }
    /* gray version (c = 1) of the same layout */
    uint8_t *gray = malloc((size_t)h * w);
    for (size_t p = 0; p < (size_t)h * w; p++) gray[p] = img[3 * p + 1];
    n = run(gray, h, w, 1, k, 10, lab, "gray quadrants");
    CHECK(n >= k / 2 && n <= 2 * k, "gray quadrants: %d segments for K = %d", n, k);
    free(gray);
    free(img);
    free(lab);
}

static void test_disc(double m, const char *what)
{
    const int h = 160, w = 200, k = 60;
    size_t np = (size_t)h * w;
    uint8_t *img = malloc(np * 3);
    bool *in = malloc(np);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            size_t p = (size_t)y * w + x;
            double dy = y - 77.3, dx = x - 103.7;
            in[p] = dy * dy + dx * dx < 52.0 * 52.0;
            int base[3] = {in[p] ? 40 : 180, in[p] ? 90 : 170, in[p] ? 200 : 120};
            for (int ch = 0; ch < 3; ch++) img[3 * p + ch] = clamp8(base[ch] + noise(6));
        }
    int32_t *lab = malloc(np * sizeof *lab);
    int n = run(img, h, w, 3, k, m, lab, what);
    if (n >= 1) {
        double *share = malloc((size_t)n * sizeof *share);
        region_share(lab, in, np, n, share);
        int impure = 0;
        for (int i = 0; i < n; i++) impure += share[i] > 0.05 && share[i] < 0.95;
        CHECK(impure == 0, "%s: %d segments are neither 95 %% disc nor 95 %% background", what, impure);
        size_t disc = 0, covered = 0;
        for (size_t p = 0; p < np; p++) {
            disc += in[p];
            covered += in[p] && share[lab[p]] >= 0.5;
        }
        CHECK(covered >= 0.9 * disc, "%s: segments mostly inside the disc cover %.1f %% of it", what,
              100.0 * covered / disc);
        free(share);
    }
    free(img);
    free(in);
    free(lab);
}

static void test_flat(void)
{
    const int h = 120, w = 180, k = 24;
    size_t np = (size_t)h * w;
    uint8_t *img = malloc(np * 3);
    memset(img, 128, np * 3);
    int32_t *lab = malloc(np * sizeof *lab);
    int n = run(img, h, w, 3, k, 10, lab, "flat");
    if (n >= 1) {
        double S = sqrt((double)np / k), area = (double)np / k;
        int *cnt = calloc((size_t)n, sizeof *cnt), *y0 = malloc((size_t)n * sizeof *y0), *y1 = calloc((size_t)n, sizeof *y1);
        int *x0 = malloc((size_t)n * sizeof *x0), *x1 = calloc((size_t)n, sizeof *x1);
        for (int i = 0; i < n; i++) y0[i] = x0[i] = 1 << 30;
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                int l = lab[(size_t)y * w + x];
                cnt[l]++;
                if (y < y0[l]) y0[l] = y;
                if (y > y1[l]) y1[l] = y;
                if (x < x0[l]) x0[l] = x;
                if (x > x1[l]) x1[l] = x;
            }
        int bad_area = 0, bad_box = 0;
        for (int i = 0; i < n; i++) {
            bad_area += cnt[i] < area / 4 || cnt[i] > 3 * area;
            bad_box += y1[i] - y0[i] + 1 > 3 * S || x1[i] - x0[i] + 1 > 3 * S;
        }
        CHECK(n >= k / 2 && n <= 2 * k, "flat: %d segments for K = %d", n, k);
        CHECK(bad_area == 0, "flat: %d segments with an area outside [1/4, 3] x %.0f", bad_area, area);
        CHECK(bad_box == 0, "flat: %d segments wider or taller than 3 S = %.0f", bad_box, 3 * S);
        free(cnt);
        free(y0);
        free(y1);
        free(x0);
        free(x1);
    }
    free(img);
    free(lab);
}

static void test_errors(void)
{
    uint8_t img[12] = {0};
    int32_t lab[4];
    CHECK(cnn_slic(img, 2, 2, 2, 4, 10, 10, lab) == CNN_ERR_INPUT, "2 channels accepted");
    CHECK(cnn_slic(img, 0, 2, 3, 4, 10, 10, lab) == CNN_ERR_INPUT, "height 0 accepted");
    CHECK(cnn_slic(img, 2, 2, 3, 0, 10, 10, lab) == CNN_ERR_INPUT, "0 segments accepted");
    CHECK(cnn_slic(img, 2, 2, 3, 4, 0, 10, lab) == CNN_ERR_INPUT, "compactness 0 accepted");
    /* more segments than pixels: still one label per piece */
    int n = cnn_slic(img, 2, 2, 3, 100, 10, 10, lab);
    CHECK(n >= 1 && n <= 4, "2 x 2 image, 100 segments: %d", n);
}

int main(void)
{
    test_quadrants();
    test_disc(10, "disc");
    test_disc(40, "disc, compactness 40");
    test_flat();
    test_errors();
    return test_summary("test_slic");
}
