/* Visualization ops (host/viz/vizops.c, cl/viz.cl) against C references in
 * double precision (or in float where the contract fixes float arithmetic),
 * on random non-zero data, with every output poisoned before each run.
 *
 * Tolerances:
 *  - stats: counts, min and max exact; mean within 1e-6 * max|x| and std
 *    within 2e-6 * max|x| + 1e-5 * std of the double reference (Welford in
 *    float chunks merged with Chan: a few ulp per merge level).
 *  - ranges_minmax, ranges_fixed: exact (they only pick floats).
 *  - histogram: every group's total exact; bins equal the C float formula
 *    (correctly rounded division, no contraction) on all but 0.1% of the
 *    values; accumulate across two calls exactly equals one call.
 *  - percentiles: within one bin width (hi - lo) / bins of numpy's 'linear'
 *    percentile of the sorted finite values, + 1e-6 * max(|lo|, |hi|).
 *  - render: crafted levels exact; random data equal to the C float
 *    reference except +-1 level on < 0.1% of the pixels.
 *  - montage and input image: exact (integer copies; float ops in the
 *    documented order). */
#define _POSIX_C_SOURCE 200809L
#include "check.h"
#include "viz/colormap.h"
#include "viz/vizops.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

static cnn_cl g_cl;
static cnn_viz g_viz;

/* ---- helpers ---- */


static size_t rng_index(size_t n) { return (size_t)rng_uniform(0.0f, (float)n) % n; }

static cl_mem buffer(size_t bytes)
{
    cl_mem b = NULL;
    CHECK_OK(cnn_cl_buffer(&g_cl, bytes, &b, "test buffer"));
    return b;
}

static cl_mem upload(const void *h, size_t bytes)
{
    cl_mem b = buffer(bytes);
    if (b) CHECK_OK(cnn_cl_write(&g_cl, b, 0, bytes, h, "test input"));
    return b;
}

static void poison_bytes(cl_mem b, size_t bytes, uint8_t value)
{
    uint8_t *p = malloc(bytes);
    memset(p, value, bytes);
    CHECK_OK(cnn_cl_write(&g_cl, b, 0, bytes, p, "poison"));
    free(p);
}

static void poison_floats(cl_mem b, size_t n)
{
    float *p = malloc(n * sizeof *p);
    for (size_t i = 0; i < n; i++) p[i] = NAN;
    CHECK_OK(cnn_cl_write(&g_cl, b, 0, n * sizeof *p, p, "poison"));
    free(p);
}

static void *download(cl_mem b, size_t bytes)
{
    void *h = malloc(bytes ? bytes : 1);
    CHECK_OK(cnn_cl_read(&g_cl, b, 0, bytes, h, "test output"));
    return h;
}

static void release(cl_mem b)
{
    if (b) clReleaseMemObject(b);
}

/* ---- stats ---- */

typedef struct ref_stats {
    double min, max, mean, std, maxabs;
    size_t finite, nan, pinf, ninf;
} ref_stats;

static ref_stats ref_stats_of(const float *x, size_t len)
{
    ref_stats r = {0};
    double sum = 0, mn = INFINITY, mx = -INFINITY;
    for (size_t i = 0; i < len; i++) {
        float v = x[i];
        if (isfinite(v)) {
            r.finite++;
            sum += v;
            if (v < mn) mn = v;
            if (v > mx) mx = v;
            if (fabs(v) > r.maxabs) r.maxabs = fabs(v);
        } else if (isnan(v)) {
            r.nan++;
        } else if (v > 0) {
            r.pinf++;
        } else {
            r.ninf++;
        }
    }
    if (r.finite) {
        r.min = mn;
        r.max = mx;
        r.mean = sum / (double)r.finite;
        double q = 0;
        for (size_t i = 0; i < len; i++)
            if (isfinite(x[i])) q += ((double)x[i] - r.mean) * ((double)x[i] - r.mean);
        r.std = sqrt(q / (double)r.finite);
    }
    return r;
}

static double g_worst_mean, g_worst_std; /* relative to max|x|, reported */

/* Checks stats[m] of map m against the reference; returns 1 when it agrees. */
static int check_stats_map(const float *st, const float *x, size_t len, const char *what, int m)
{
    ref_stats r = ref_stats_of(x, len);
    int ok = 1;
    ok &= st[CNN_ST_FINITE] == (float)r.finite && st[CNN_ST_NAN] == (float)r.nan &&
          st[CNN_ST_POSINF] == (float)r.pinf && st[CNN_ST_NEGINF] == (float)r.ninf;
    ok &= st[CNN_ST_MIN] == (float)r.min && st[CNN_ST_MAX] == (float)r.max;
    double em = fabs(st[CNN_ST_MEAN] - r.mean), es = fabs(st[CNN_ST_STD] - r.std);
    ok &= em <= 1e-6 * r.maxabs && es <= 2e-6 * r.maxabs + 1e-5 * r.std;
    if (r.maxabs > 0) {
        if (em / r.maxabs > g_worst_mean) g_worst_mean = em / r.maxabs;
        if (es / r.maxabs > g_worst_std) g_worst_std = es / r.maxabs;
    }
    if (!ok)
        fprintf(stderr,
                "  %s map %d (len %zu): got min %.9g max %.9g mean %.9g std %.9g n %g nan %g +inf %g "
                "-inf %g; ref min %.9g max %.9g mean %.9g std %.9g n %zu nan %zu +inf %zu -inf %zu\n",
                what, m, len, (double)st[0], (double)st[1], (double)st[2], (double)st[3],
                (double)st[4], (double)st[5], (double)st[6], (double)st[7], r.min, r.max, r.mean,
                r.std, r.finite, r.nan, r.pinf, r.ninf);
    return ok;
}

enum { SP_NONE = 0, SP_SPECIALS = 1, SP_CONSTANT = 2, SP_ALLNAN = 3 };

/* n_maps maps of len values at off, stride = len + gap apart; the gaps hold
 * 1e30 so a read outside a map shows in its max.  kind per map: m % 4 ==
 * 1 -> `kinds[1]` etc. (kinds NULL: all plain). */
static void test_stats_case(size_t len, int n_maps, size_t off, size_t gap, float lo, float hi,
                            const int *kinds)
{
    size_t stride = len + gap, total = off + (size_t)(n_maps - 1) * stride + len + 5;
    float *x = malloc(total * sizeof *x);
    for (size_t i = 0; i < total; i++) x[i] = 1e30f;
    for (int m = 0; m < n_maps; m++) {
        float *map = x + off + (size_t)m * stride;
        int kind = kinds ? kinds[m % 4] : SP_NONE;
        if (kind == SP_CONSTANT) {
            for (size_t i = 0; i < len; i++) map[i] = 1.2345f;
        } else if (kind == SP_ALLNAN) {
            for (size_t i = 0; i < len; i++) map[i] = NAN;
        } else {
            fill_nonzero(map, len, lo, hi);
            if (kind == SP_SPECIALS) {
                size_t ns = len / 50 + 1;
                for (size_t s = 0; s < ns; s++) {
                    size_t i = rng_index(len);
                    map[i] = s % 3 == 0 ? NAN : s % 3 == 1 ? INFINITY : -INFINITY;
                }
            }
        }
    }
    cl_mem bx = upload(x, total * sizeof *x), bs = buffer((size_t)n_maps * CNN_STATS_STRIDE * 4);
    poison_floats(bs, (size_t)n_maps * CNN_STATS_STRIDE);
    char what[96];
    snprintf(what, sizeof what, "stats len %zu x %d maps", len, n_maps);
    CHECK_OK(cnn_viz_stats(&g_viz, bx, off, stride, len, n_maps, bs, what));
    float *st = download(bs, (size_t)n_maps * CNN_STATS_STRIDE * 4);
    int bad = 0;
    for (int m = 0; m < n_maps; m++)
        if (!check_stats_map(st + m * CNN_STATS_STRIDE, x + off + (size_t)m * stride, len, what, m))
            bad++;
    CHECK(bad == 0, "%s: %d maps wrong", what, bad);
    if (kinds)
        for (int m = 0; m < n_maps; m++) {
            const float *s = st + m * CNN_STATS_STRIDE;
            if (kinds[m % 4] == SP_CONSTANT)
                CHECK(s[CNN_ST_MEAN] == 1.2345f && s[CNN_ST_STD] == 0.0f && s[CNN_ST_MIN] == 1.2345f &&
                          s[CNN_ST_MAX] == 1.2345f,
                      "%s: constant map %d: mean %.9g std %.9g (exactly 1.2345 and 0 expected)", what,
                      m, (double)s[CNN_ST_MEAN], (double)s[CNN_ST_STD]);
            if (kinds[m % 4] == SP_ALLNAN)
                CHECK(s[0] == 0 && s[1] == 0 && s[2] == 0 && s[3] == 0 && s[4] == 0 &&
                          s[CNN_ST_NAN] == (float)len,
                      "%s: all-NaN map %d: %g %g %g %g n %g nan %g", what, m, (double)s[0],
                      (double)s[1], (double)s[2], (double)s[3], (double)s[4], (double)s[5]);
        }
    free(st);
    free(x);
    release(bx);
    release(bs);
}

static void test_stats(void)
{
    static const size_t lens[] = {1, 7, 255, 256, 257, 1000, 50176, (size_t)1 << 20};
    static const int kinds[4] = {SP_NONE, SP_SPECIALS, SP_CONSTANT, SP_ALLNAN};
    rng_seed(101);
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        size_t len = lens[i];
        int n_maps = len >= ((size_t)1 << 20) ? 2 : len >= 50176 ? 3 : 5;
        test_stats_case(len, n_maps, 11, 3, -2.0f, 3.0f, NULL);
        if (len < ((size_t)1 << 20)) test_stats_case(len, 8, 5, len + 1, -1.0f, 1.0f, kinds);
    }
    /* Offset data: the mean dwarfs the spread (Welford's reason to be). */
    test_stats_case(100000, 2, 0, 0, 1000.0f, 1001.0f, NULL);
    /* Many small maps: many work-groups; more maps than one launch holds
     * would be 65536+, too slow here, so 3000 tiny maps. */
    test_stats_case(3, 3000, 1, 2, -5.0f, 5.0f, kinds);
    /* One map: the stride does not matter. */
    {
        float x[9];
        fill_nonzero(x, 9, -1.0f, 1.0f);
        cl_mem bx = upload(x, sizeof x), bs = buffer(CNN_STATS_STRIDE * 4);
        CHECK_OK(cnn_viz_stats(&g_viz, bx, 0, 0, 9, 1, bs, "one map, stride 0"));
        float *st = download(bs, CNN_STATS_STRIDE * 4);
        CHECK(check_stats_map(st, x, 9, "one map", 0), "one map with stride 0");
        free(st);
        release(bx);
        release(bs);
    }
    printf("stats: worst mean error %.3g, std error %.3g (relative to max|x|)\n", g_worst_mean,
           g_worst_std);
}

/* ---- ranges ---- */

/* Device stats of n_maps random maps (map `nan_map` all NaN, others with a
 * few specials), downloaded into *host_stats. */
static cl_mem stats_of(cl_mem bx, size_t len, int n_maps, float **host_stats)
{
    cl_mem bs = buffer((size_t)n_maps * CNN_STATS_STRIDE * 4);
    CHECK_OK(cnn_viz_stats(&g_viz, bx, 0, len, len, n_maps, bs, "stats for ranges"));
    *host_stats = download(bs, (size_t)n_maps * CNN_STATS_STRIDE * 4);
    return bs;
}

/* Maps whose scales differ (map m in [-(m + 1), (m + 1) / 2)); map nan_map
 * all NaN, a few +-Inf in the others. */
static float *make_maps(size_t len, int n_maps, int nan_map)
{
    float *x = malloc(len * n_maps * sizeof *x);
    for (int m = 0; m < n_maps; m++) {
        float *map = x + (size_t)m * len;
        fill_nonzero(map, len, -(float)(m + 1), (float)(m + 1) * 0.5f);
        if (m == nan_map)
            for (size_t i = 0; i < len; i++) map[i] = NAN;
        else
            for (int s = 0; s < 3; s++) map[rng_index(len)] = s == 0 ? NAN : s == 1 ? INFINITY : -INFINITY;
    }
    return x;
}

static void test_ranges_minmax(void)
{
    enum { LEN = 300, NM = 12, NAN_MAP = 4 };
    rng_seed(202);
    float *x = make_maps(LEN, NM, NAN_MAP);
    /* All positive: a map without finite values (stats [0, 0]) that were
     * not ignored would pull lo to 0. */
    for (size_t i = 0; i < (size_t)LEN * NM; i++) x[i] += 20.0f;
    cl_mem bx = upload(x, sizeof(float) * LEN * NM), br = buffer(NM * 2 * 4);
    float *st;
    cl_mem bs = stats_of(bx, LEN, NM, &st);
    static const int groups[] = {1, 3, 4, 12};
    for (size_t gi = 0; gi < sizeof groups / sizeof groups[0]; gi++)
        for (int sig = 0; sig < 2; sig++) {
            int group = groups[gi], ng = NM / group;
            poison_floats(br, NM * 2);
            CHECK_OK(cnn_viz_ranges_minmax(&g_viz, bs, NM, group, sig, br, "minmax"));
            float *r = download(br, NM * 2 * 4);
            int bad = 0;
            for (int g = 0; g < ng; g++) {
                double lo = INFINITY, hi = -INFINITY;
                for (int m = g * group; m < (g + 1) * group; m++) {
                    ref_stats rs = ref_stats_of(x + (size_t)m * LEN, LEN);
                    if (!rs.finite) continue;
                    lo = fmin(lo, rs.min);
                    hi = fmax(hi, rs.max);
                }
                if (isinf(lo)) lo = hi = 0; /* no finite value in the group */
                if (sig) {
                    double a = fmax(fabs(lo), fabs(hi));
                    lo = -a;
                    hi = a;
                }
                if (r[2 * g] != (float)lo || r[2 * g + 1] != (float)hi) {
                    fprintf(stderr, "  minmax group %d of %d signed %d: got [%.9g, %.9g] ref [%.9g, %.9g]\n",
                            g, group, sig, (double)r[2 * g], (double)r[2 * g + 1], lo, hi);
                    bad++;
                }
            }
            CHECK(bad == 0, "ranges_minmax group %d signed %d", group, sig);
            if (group == 1) CHECK(r[2 * NAN_MAP] == 0 && r[2 * NAN_MAP + 1] == 0, "all-NaN map -> [0, 0]");
            free(r);
        }
    /* fixed */
    poison_floats(br, NM * 2);
    CHECK_OK(cnn_viz_ranges_fixed(&g_viz, br, 5, -0.25f, 7.5f, "fixed"));
    float *r = download(br, NM * 2 * 4);
    int ok = 1;
    for (int g = 0; g < 5; g++) ok &= r[2 * g] == -0.25f && r[2 * g + 1] == 7.5f;
    ok &= isnan(r[10]); /* past n_groups: untouched */
    CHECK(ok, "ranges_fixed");
    free(r);
    free(st);
    free(x);
    release(bx);
    release(bs);
    release(br);
}

/* ---- histograms and percentiles ---- */

/* The bin the contract defines, in float like the kernel. */
static int ref_bin(float v, float lo, float hi, int bins)
{
    float d = hi - lo;
    if (!(d > 0.0f)) return 0;
    float f = (v - lo) / d;
    f = f * (float)bins;
    if (!(f >= 0.0f)) return 0;
    if (f >= (float)(bins - 1)) return bins - 1;
    return (int)f;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* numpy.percentile(v, p) ('linear') of n sorted values. */
static double np_percentile(const double *v, size_t n, double p)
{
    double r = p / 100.0 * (double)(n - 1);
    size_t k = (size_t)floor(r);
    if (k >= n - 1) return v[n - 1];
    double f = r - (double)k;
    return v[k] + f * (v[k + 1] - v[k]);
}

/* Histogram of maps x ([n_maps, len] contiguous) per group with the given
 * bounds and bins, then percentiles; checks both. */
static void check_hist_case(const float *x, size_t len, int n_maps, int group, int bins,
                            const char *label)
{
    int ng = n_maps / group;
    size_t nvals = len * (size_t)n_maps;
    cl_mem bx = upload(x, nvals * 4);
    float *st;
    cl_mem bs = stats_of(bx, len, n_maps, &st);
    cl_mem bb = buffer((size_t)ng * 8), bh = buffer((size_t)ng * bins * 4), br = buffer((size_t)ng * 8);
    CHECK_OK(cnn_viz_ranges_minmax(&g_viz, bs, n_maps, group, false, bb, "bounds"));
    float *bounds = download(bb, (size_t)ng * 8);
    poison_bytes(bh, (size_t)ng * bins * 4, 0xFF); /* accumulate = false must zero it */
    char what[128];
    snprintf(what, sizeof what, "histogram %s: %d maps of %zu, group %d, %d bins", label, n_maps, len,
             group, bins);
    CHECK_OK(cnn_viz_histogram(&g_viz, bx, 0, len, len, n_maps, group, bb, bins, false, bh, what));
    uint32_t *h = download(bh, (size_t)ng * bins * 4);
    uint32_t *ref = calloc((size_t)ng * bins, sizeof *ref);
    double *vals = malloc(len * group * sizeof *vals);
    for (int g = 0; g < ng; g++) {
        float lo = bounds[2 * g], hi = bounds[2 * g + 1];
        size_t n = 0;
        for (size_t i = 0; i < len * group; i++) {
            float v = x[(size_t)g * group * len + i];
            if (!isfinite(v)) continue;
            ref[(size_t)g * bins + ref_bin(v, lo, hi, bins)]++;
            vals[n++] = v;
        }
        uint64_t tot = 0, diff = 0;
        for (int b = 0; b < bins; b++) {
            uint32_t a = h[(size_t)g * bins + b], e = ref[(size_t)g * bins + b];
            tot += a;
            diff += a > e ? a - e : e - a;
        }
        CHECK(tot == n, "%s: group %d counts %llu values, %zu finite", what, g, (unsigned long long)tot, n);
        CHECK(diff / 2 <= n / 1000, "%s: group %d: %llu values in other bins than the reference", what, g,
              (unsigned long long)(diff / 2));
        if (diff) printf("%s: group %d: %llu values moved a bin\n", what, g, (unsigned long long)diff / 2);
        /* percentiles */
        qsort(vals, n, sizeof *vals, cmp_double);
        static const float ps[][2] = {{0, 100}, {1, 99}, {0.5f, 99.5f}, {50, 99.9f}, {2, 3}};
        for (size_t pi = 0; pi < sizeof ps / sizeof ps[0]; pi++)
            for (int sig = 0; sig < 2; sig++) {
                poison_floats(br, (size_t)ng * 2);
                CHECK_OK(cnn_viz_ranges_percentile(&g_viz, bh, bins, bb, ng, ps[pi][0], ps[pi][1], sig, br,
                                                   what));
                float *r = download(br, (size_t)ng * 8);
                double plo = np_percentile(vals, n, ps[pi][0]), phi = np_percentile(vals, n, ps[pi][1]);
                if (sig) {
                    double a = fmax(fabs(plo), fabs(phi));
                    plo = -a;
                    phi = a;
                }
                double tol = ((double)hi - lo) / bins + 1e-6 * fmax(fabs(lo), fabs(hi));
                CHECK(fabs(r[2 * g] - plo) <= tol && fabs(r[2 * g + 1] - phi) <= tol,
                      "%s: group %d percentiles %g..%g signed %d: got [%.9g, %.9g] ref [%.9g, %.9g] "
                      "tol %.3g", what, g, (double)ps[pi][0], (double)ps[pi][1], sig, (double)r[2 * g],
                      (double)r[2 * g + 1], plo, phi, tol);
                free(r);
            }
    }
    free(vals);
    free(ref);
    free(h);
    free(bounds);
    free(st);
    release(bx);
    release(bs);
    release(bb);
    release(bh);
    release(br);
}

static void test_histogram(void)
{
    rng_seed(303);
    {
        enum { LEN = 1000, NM = 6 };
        float *x = make_maps(LEN, NM, -1);
        static const int groups[] = {1, 3, 6};
        for (size_t gi = 0; gi < 3; gi++) {
            check_hist_case(x, LEN, NM, groups[gi], CNN_VIZ_BINS, "random");
            check_hist_case(x, LEN, NM, groups[gi], 100, "random");
        }
        check_hist_case(x, LEN, NM, 2, 4096, "random");
        check_hist_case(x, LEN, NM, 6, 1, "random");
        free(x);
    }
    {
        /* One big map: several work-groups per group. */
        size_t len = 50176;
        float *x = malloc(len * sizeof *x);
        for (size_t i = 0; i < len; i++) { /* skewed: x^3 of uniform */
            float u = rng_uniform(-1.0f, 1.0f);
            x[i] = u * u * u + 1e-3f;
        }
        check_hist_case(x, len, 1, 1, CNN_VIZ_BINS, "one big map");
        free(x);
    }
    {
        /* Many tiny maps in one group: the work-group spans several maps. */
        float *x = make_maps(7, 300, 5);
        check_hist_case(x, 7, 300, 300, CNN_VIZ_BINS, "tiny maps");
        check_hist_case(x, 7, 300, 30, 64, "tiny maps");
        free(x);
    }
}

/* accumulate = true over A then B equals one call over [A | B]. */
static void test_histogram_accumulate(void)
{
    enum { LEN = 500, NM = 4, BINS = 256 };
    rng_seed(404);
    float a[LEN * NM], b[LEN * NM], c[2 * LEN * NM];
    fill_nonzero(a, LEN * NM, -2.5f, 2.5f); /* some outside the bounds [-2, 2] */
    fill_nonzero(b, LEN * NM, -1.0f, 3.0f);
    a[17] = NAN;
    b[3] = INFINITY;
    for (int m = 0; m < NM; m++) {
        memcpy(c + (size_t)m * 2 * LEN, a + (size_t)m * LEN, LEN * 4);
        memcpy(c + (size_t)m * 2 * LEN + LEN, b + (size_t)m * LEN, LEN * 4);
    }
    cl_mem ba = upload(a, sizeof a), bb = upload(b, sizeof b), bc = upload(c, sizeof c);
    cl_mem bounds = buffer(NM * 8), h1 = buffer(NM * BINS * 4), h2 = buffer(NM * BINS * 4);
    for (int group = 1; group <= NM; group *= 2) {
        int ng = NM / group;
        CHECK_OK(cnn_viz_ranges_fixed(&g_viz, bounds, ng, -2.0f, 2.0f, "bounds"));
        poison_bytes(h1, NM * BINS * 4, 0x55);
        CHECK_OK(cnn_viz_histogram(&g_viz, ba, 0, LEN, LEN, NM, group, bounds, BINS, false, h1, "hist A"));
        CHECK_OK(cnn_viz_histogram(&g_viz, bb, 0, LEN, LEN, NM, group, bounds, BINS, true, h1, "hist B"));
        CHECK_OK(cnn_viz_histogram(&g_viz, bc, 0, 2 * LEN, 2 * LEN, NM, group, bounds, BINS, false, h2,
                                   "hist A|B"));
        uint32_t *x1 = download(h1, (size_t)ng * BINS * 4), *x2 = download(h2, (size_t)ng * BINS * 4);
        CHECK(memcmp(x1, x2, (size_t)ng * BINS * 4) == 0, "accumulate: A + B != [A|B] (group %d)", group);
        uint64_t tot = 0;
        for (int i = 0; i < ng * BINS; i++) tot += x1[i];
        CHECK(tot == 2 * LEN * NM - 2, "accumulate: %llu values counted", (unsigned long long)tot);
        /* Out-of-bounds values land in the end bins: both are populated. */
        CHECK(x1[0] > 0 && x1[BINS - 1] > 0, "end bins %u %u", x1[0], x1[BINS - 1]);
        free(x1);
        free(x2);
    }
    /* An empty histogram (all NaN) gives the bounds. */
    float nanmap[64];
    for (int i = 0; i < 64; i++) nanmap[i] = NAN;
    cl_mem bn = upload(nanmap, sizeof nanmap), br = buffer(8);
    CHECK_OK(cnn_viz_ranges_fixed(&g_viz, bounds, 1, -1.0f, 2.0f, "bounds"));
    CHECK_OK(cnn_viz_histogram(&g_viz, bn, 0, 64, 64, 1, 1, bounds, BINS, false, h1, "nan hist"));
    CHECK_OK(cnn_viz_ranges_percentile(&g_viz, h1, BINS, bounds, 1, 1.0f, 99.0f, false, br, "nan pct"));
    float *r = download(br, 8);
    CHECK(r[0] == -1.0f && r[1] == 2.0f, "empty histogram -> bounds: [%g, %g]", (double)r[0], (double)r[1]);
    free(r);
    /* Bounds lo == hi: everything in bin 0. */
    CHECK_OK(cnn_viz_ranges_fixed(&g_viz, bounds, 1, 0.5f, 0.5f, "bounds"));
    CHECK_OK(cnn_viz_histogram(&g_viz, ba, 0, LEN, LEN, 1, 1, bounds, BINS, false, h1, "flat hist"));
    uint32_t *hf = download(h1, BINS * 4);
    uint32_t rest = 0;
    for (int i = 1; i < BINS; i++) rest += hf[i];
    CHECK(hf[0] == LEN - 1 && rest == 0, "flat bounds: bin 0 has %u, others %u", hf[0], rest);
    free(hf);
    release(bn);
    release(br);
    release(ba);
    release(bb);
    release(bc);
    release(bounds);
    release(h1);
    release(h2);
}

/* ---- render ---- */

static int ref_level(float v, float lo, float hi)
{
    float t;
    if (isnan(v)) {
        t = 0.0f;
    } else if (isinf(v)) {
        t = v > 0 ? 1.0f : 0.0f;
    } else {
        float d = hi - lo;
        if (!(d > 0.0f)) {
            t = 0.5f;
        } else {
            float num = v - lo;
            t = num / d;
            if (t < 0.0f) t = 0.0f;
            if (t > 1.0f) t = 1.0f;
        }
    }
    float s = t * 255.0f;
    s = s + 0.5f;
    return (int)s;
}

/* Renders [n_maps, planes, h, w] maps at off/stride into a poisoned buffer
 * at DST_OFF; returns the n_maps * h * w * ncomp bytes (NULL on failure)
 * after checking the bytes around them are untouched. */
enum { DST_OFF = 7, DST_TAIL = 9 };
static uint8_t *run_render(cl_mem bx, size_t off, size_t stride, int n_maps, int planes, int h, int w,
                           cl_mem ranges, int group, cnn_cmap cmap)
{
    int ncomp = cnn_viz_ncomp(planes, cmap);
    size_t n = (size_t)n_maps * h * w * ncomp, tot = DST_OFF + n + DST_TAIL;
    cl_mem bd = buffer(tot);
    poison_bytes(bd, tot, 0xA7);
    int st = cnn_viz_render(&g_viz, bx, off, stride, n_maps, planes, h, w, ranges, group, cmap, bd, DST_OFF,
                            "render");
    CHECK(st == 0, "render: %s", cnn_error_message());
    uint8_t *all = download(bd, tot), *out = NULL;
    release(bd);
    if (st) goto done;
    int untouched = 1;
    for (size_t i = 0; i < tot; i++)
        if ((i < DST_OFF || i >= DST_OFF + n) && all[i] != 0xA7) untouched = 0;
    CHECK(untouched, "render wrote outside [dst_off, dst_off + n)");
    out = malloc(n);
    memcpy(out, all + DST_OFF, n);
done:
    free(all);
    return out;
}

static void test_render_crafted(void)
{
    /* Map 0 in [-1, 3]: t = 0, 0.25, 0.5, 1, clamped, NaN, +-Inf, 0.75.
     * Map 1 in [2, 2] (constant): 128, but NaN/Inf keep their levels. */
    enum { H = 2, W = 5, HW = H * W };
    const float m0[HW] = {-1, 0, 1, 3, -5, 10, NAN, INFINITY, -INFINITY, 2};
    const int l0[HW] = {0, 64, 128, 255, 0, 255, 0, 255, 0, 191};
    const float m1[HW] = {2, 2, 2, 2, NAN, 2, INFINITY, 2, -INFINITY, 2};
    const int l1[HW] = {128, 128, 128, 128, 0, 128, 255, 128, 0, 128};
    const float ranges[4] = {-1, 3, 2, 2};
    /* Planes = 3: map 0 as three planes (0: m0, 1: m0 reversed, 2: m1) in
     * range [-1, 3]. */
    float x[4 + 3 * HW + 3];
    memset(x, 0, sizeof x);
    cl_mem br = upload(ranges, sizeof ranges);
    /* planes 1: maps at off 4, stride HW + 3 */
    {
        float y[4 + 2 * (HW + 3)];
        for (size_t i = 0; i < sizeof y / sizeof y[0]; i++) y[i] = 1e30f;
        memcpy(y + 4, m0, sizeof m0);
        memcpy(y + 4 + HW + 3, m1, sizeof m1);
        cl_mem by = upload(y, sizeof y);
        uint8_t *g = run_render(by, 4, HW + 3, 2, 1, H, W, br, 1, CNN_CMAP_GRAY);
        if (g) {
            int ok = 1;
            for (int i = 0; i < HW; i++) ok &= g[i] == l0[i] && g[HW + i] == l1[i];
            CHECK(ok, "crafted gray levels");
            if (!ok)
                for (int i = 0; i < 2 * HW; i++)
                    fprintf(stderr, "  px %d: got %d want %d\n", i, g[i], i < HW ? l0[i] : l1[i - HW]);
        }
        free(g);
        for (int cm = 1; cm < CNN_CMAP_COUNT; cm++) {
            const uint8_t *lut = cnn_colormap_lut((cnn_cmap)cm);
            uint8_t *c = run_render(by, 4, HW + 3, 2, 1, H, W, br, 1, (cnn_cmap)cm);
            if (!c) continue;
            int ok = 1;
            for (int i = 0; i < 2 * HW; i++) {
                int l = i < HW ? l0[i] : l1[i - HW];
                ok &= memcmp(c + 3 * i, lut + 3 * l, 3) == 0;
            }
            CHECK(ok, "crafted levels through colormap %s", cnn_colormap_name((cnn_cmap)cm));
            free(c);
        }
        /* group 2: both maps share range 0, [-1, 3] */
        uint8_t *g2 = run_render(by, 4, HW + 3, 2, 1, H, W, br, 2, CNN_CMAP_GRAY);
        if (g2) {
            int ok = 1;
            for (int i = 0; i < HW; i++) ok &= g2[HW + i] == ref_level(m1[i], -1, 3);
            CHECK(ok && g2[HW] == 191, "crafted: group 2 uses the first range for map 1");
        }
        free(g2);
        release(by);
    }
    /* planes 3, one map at offset 4 (stride ignored) */
    {
        memcpy(x + 4, m0, sizeof m0);
        for (int i = 0; i < HW; i++) x[4 + HW + i] = m0[HW - 1 - i];
        memcpy(x + 4 + 2 * HW, m1, sizeof m1);
        cl_mem bx = upload(x, sizeof x);
        for (int cm = 0; cm < 2; cm++) { /* the colormap is ignored */
            uint8_t *c = run_render(bx, 4, 0, 1, 3, H, W, br, 1, (cnn_cmap)cm);
            if (!c) continue;
            int ok = 1;
            for (int i = 0; i < HW; i++)
                ok &= c[3 * i] == l0[i] && c[3 * i + 1] == l0[HW - 1 - i] &&
                      c[3 * i + 2] == ref_level(m1[i], -1, 3);
            CHECK(ok, "crafted planes = 3 (cmap %d)", cm);
            free(c);
        }
        release(bx);
    }
    release(br);
}

static void test_render_random(void)
{
    enum { NM = 8, H = 61, W = 67, GROUP = 2, OFF = 5 };
    rng_seed(505);
    for (int planes = 1; planes <= 3; planes += 2) {
        size_t len = (size_t)planes * H * W, stride = len + 11, total = OFF + NM * stride;
        float *x = malloc(total * sizeof *x);
        for (size_t i = 0; i < total; i++) x[i] = 1e30f;
        for (int m = 0; m < NM; m++) {
            fill_nonzero(x + OFF + m * stride, len, -(float)(m + 1), (float)(m + 2));
            x[OFF + m * stride + rng_index(len)] = NAN;
            x[OFF + m * stride + rng_index(len)] = INFINITY;
        }
        cl_mem bx = upload(x, total * 4), bs = buffer(NM * CNN_STATS_STRIDE * 4), br = buffer(NM * 8);
        CHECK_OK(cnn_viz_stats(&g_viz, bx, OFF, stride, len, NM, bs, "render stats"));
        CHECK_OK(cnn_viz_ranges_minmax(&g_viz, bs, NM, GROUP, false, br, "render ranges"));
        float *ranges = download(br, NM * 8);
        static const cnn_cmap cmaps[] = {CNN_CMAP_GRAY, CNN_CMAP_VIRIDIS, CNN_CMAP_RDBU};
        for (size_t ci = 0; ci < (planes == 3 ? 1 : 3); ci++) {
            cnn_cmap cm = cmaps[ci];
            int ncomp = cnn_viz_ncomp(planes, cm);
            const uint8_t *lut = cnn_colormap_lut(cm);
            uint8_t *out = run_render(bx, OFF, stride, NM, planes, H, W, br, GROUP, cm);
            if (!out) continue;
            size_t off1 = 0, bad = 0, n = (size_t)NM * H * W * (planes == 3 ? 3 : 1);
            for (int m = 0; m < NM; m++)
                for (int p = 0; p < H * W; p++)
                    for (int c = 0; c < planes; c++) {
                        float v = x[OFF + m * stride + (size_t)c * H * W + p];
                        float lo = ranges[2 * (m / GROUP)], hi = ranges[2 * (m / GROUP) + 1];
                        int l = ref_level(v, lo, hi);
                        const uint8_t *o = out + ((size_t)m * H * W + p) * ncomp;
                        int exact, near = 0;
                        if (planes == 3) {
                            exact = o[c] == l;
                            near = abs(o[c] - l) == 1;
                        } else if (cm == CNN_CMAP_GRAY) {
                            exact = o[0] == l;
                            near = abs(o[0] - l) == 1;
                        } else {
                            exact = memcmp(o, lut + 3 * l, 3) == 0;
                            near = (l > 0 && memcmp(o, lut + 3 * (l - 1), 3) == 0) ||
                                   (l < 255 && memcmp(o, lut + 3 * (l + 1), 3) == 0);
                        }
                        if (!exact) {
                            if (near) off1++;
                            else bad++;
                        }
                    }
            CHECK(bad == 0 && off1 * 1000 < n, "render random planes %d cmap %s: %zu wrong, %zu off by one of %zu",
                  planes, cnn_colormap_name(cm), bad, off1, n);
            free(out);
        }
        free(ranges);
        free(x);
        release(bx);
        release(bs);
        release(br);
    }
}

/* ---- montage ---- */

static void test_montage_plan(void)
{
    cnn_montage m;
    cnn_montage_plan(64, 224, 224, 0, 64, 4096, &m);
    CHECK(m.n == 64 && m.n_shown == 64 && m.cols == 8 && m.rows == 8 && m.scale == 1 &&
              m.width == 8 * 224 + 7 && m.height == 8 * 224 + 7 && m.tile_h == 224 && m.tile_w == 224,
          "plan 64 of 224: cols %d rows %d scale %d %dx%d", m.cols, m.rows, m.scale, m.width, m.height);
    cnn_montage_plan(10, 7, 7, 0, 48, 4096, &m);
    CHECK(m.n_shown == 10 && m.cols == 4 && m.rows == 3 && m.scale == 7 && m.width == 4 * 49 + 3 &&
              m.height == 3 * 49 + 2,
          "plan 10 of 7x7 min 48: cols %d rows %d scale %d %dx%d", m.cols, m.rows, m.scale, m.width,
          m.height);
    cnn_montage_plan(1000000, 7, 7, 0, 48, 4096, &m);
    CHECK(m.n_shown >= 1 && m.n_shown < 1000000 && m.scale == 1 && m.width <= 4096 && m.height <= 4096 &&
              m.cols == 512 && m.rows == 512 && m.n_shown == 512 * 512 && m.width == 512 * 8 - 1,
          "plan 1e6 of 7x7: shown %d cols %d rows %d scale %d %dx%d", m.n_shown, m.cols, m.rows, m.scale,
          m.width, m.height);
    /* scale lowered to fit: s0 = 10, fits up to 7 */
    cnn_montage_plan(4, 10, 10, 0, 100, 150, &m);
    CHECK(m.cols == 2 && m.rows == 2 && m.scale == 7 && m.width == 141 && m.height == 141,
          "plan lowered scale: %d %dx%d", m.scale, m.width, m.height);
    /* columns given, capped at n; non-square tiles use the longer side */
    cnn_montage_plan(5, 3, 12, 10, 48, 4096, &m);
    CHECK(m.cols == 5 && m.rows == 1 && m.scale == 4 && m.width == 5 * 48 + 4 && m.height == 12,
          "plan columns 10 of 5: cols %d rows %d scale %d %dx%d", m.cols, m.rows, m.scale, m.width,
          m.height);
    cnn_montage_plan(5, 3, 12, 2, 0, 4096, &m);
    CHECK(m.cols == 2 && m.rows == 3 && m.scale == 1 && m.width == 25 && m.height == 11, "plan columns 2");
    /* one column, too many rows */
    cnn_montage_plan(100, 9, 9, 1, 0, 99, &m);
    CHECK(m.cols == 1 && m.rows == 10 && m.n_shown == 10 && m.height == 99 && m.width == 9,
          "plan one column: shown %d rows %d height %d", m.n_shown, m.rows, m.height);
    /* a tile larger than max_side: still one shown */
    cnn_montage_plan(3, 5000, 10, 0, 0, 4096, &m);
    CHECK(m.n_shown >= 1 && m.rows == 1 && m.width <= 4096, "plan tile over max_side: shown %d %dx%d",
          m.n_shown, m.width, m.height);
    /* invariants on random plans */
    rng_seed(606);
    int bad = 0;
    for (int it = 0; it < 20000; it++) {
        int n = 1 + (int)rng_index(it % 3 ? 600 : 100000), h = 1 + (int)rng_index(300),
            w = 1 + (int)rng_index(300), cols = (int)rng_index(40) - 5, mt = (int)rng_index(400),
            ms = 300 + (int)rng_index(8000);
        cnn_montage_plan(n, h, w, cols, mt, ms, &m);
        int side = h > w ? h : w;
        int ok = m.n == n && m.n_shown >= 1 && m.n_shown <= n && m.cols >= 1 && m.scale >= 1 &&
                 m.rows == (m.n_shown + m.cols - 1) / m.cols && m.cols <= m.n_shown &&
                 m.width == m.cols * w * m.scale + m.cols - 1 &&
                 m.height == m.rows * h * m.scale + m.rows - 1 && m.width <= ms && m.height <= ms;
        /* default columns unless the square-ish grid does not fit at scale
         * 1 (then fewer columns) */
        int c0 = cols > 0 ? (cols < n ? cols : n) : (int)ceil(sqrt((double)n));
        int r0 = (n + c0 - 1) / c0;
        bool fits1 = (long long)c0 * (w + 1) - 1 <= ms && (long long)r0 * (h + 1) - 1 <= ms;
        ok &= fits1 ? m.cols == c0 && m.n_shown == n : m.scale == 1 && m.cols <= c0;
        /* smallest scale reaching min_tile, unless the next one does not fit */
        if (m.scale > 1) ok &= side * (m.scale - 1) < mt;
        if (side * m.scale < mt)
            ok &= (long long)m.cols * w * (m.scale + 1) + m.cols - 1 > ms ||
                  (long long)m.rows * h * (m.scale + 1) + m.rows - 1 > ms;
        if (m.n_shown < n) ok &= m.scale == 1;
        if (!ok && bad++ < 5)
            fprintf(stderr, "  plan(%d, %d, %d, %d, %d, %d): shown %d cols %d rows %d scale %d %dx%d\n", n, h,
                    w, cols, mt, ms, m.n_shown, m.cols, m.rows, m.scale, m.width, m.height);
    }
    CHECK(bad == 0, "montage plan invariants: %d bad", bad);
}

static void test_montage_case(int n, int th, int tw, int ncomp, int columns, int min_tile, int max_side)
{
    enum { TOFF = 13, OOFF = 9, SEP = 37 };
    cnn_montage m;
    cnn_montage_plan(n, th, tw, columns, min_tile, max_side, &m);
    size_t tsize = TOFF + (size_t)n * th * tw * ncomp;
    uint8_t *t = malloc(tsize);
    for (size_t i = 0; i < tsize; i++) t[i] = (uint8_t)(1 + rng_index(255)); /* never SEP by chance? */
    for (size_t i = 0; i < tsize; i++)
        if (t[i] == SEP) t[i] = SEP + 1;
    size_t osize = (size_t)m.width * m.height * ncomp, tot = OOFF + osize + 4;
    cl_mem bt = upload(t, tsize), bo = buffer(tot);
    poison_bytes(bo, tot, 0xEE);
    char what[96];
    snprintf(what, sizeof what, "montage %d of %dx%d x%d scale %d", n, th, tw, ncomp, m.scale);
    CHECK_OK(cnn_viz_montage(&g_viz, bt, TOFF, ncomp, &m, SEP, bo, OOFF, what));
    uint8_t *o = download(bo, tot);
    int bad = 0, seps = 0, empties = 0;
    for (int y = 0; y < m.height; y++)
        for (int x = 0; x < m.width; x++) {
            int pw = tw * m.scale + 1, ph = th * m.scale + 1;
            int col = x / pw, xi = x % pw, row = y / ph, yi = y % ph, tile = row * m.cols + col;
            for (int c = 0; c < ncomp; c++) {
                int want;
                if (xi == tw * m.scale || yi == th * m.scale) {
                    want = SEP;
                    seps++;
                } else if (tile >= m.n_shown) {
                    want = SEP;
                    empties++;
                } else {
                    want = t[TOFF + (((size_t)tile * th + yi / m.scale) * tw + xi / m.scale) * ncomp + c];
                }
                if (o[OOFF + ((size_t)y * m.width + x) * ncomp + c] != want) bad++;
            }
        }
    int outside = 0;
    for (size_t i = 0; i < tot; i++)
        if ((i < OOFF || i >= OOFF + osize) && o[i] != 0xEE) outside++;
    CHECK(bad == 0 && outside == 0, "%s: %d wrong bytes, %d outside", what, bad, outside);
    printf("%s: %dx%d, %d shown, %d sep and %d empty-cell bytes\n", what, m.width, m.height, m.n_shown,
           seps, empties);
    free(o);
    free(t);
    release(bt);
    release(bo);
}

static void test_montage(void)
{
    rng_seed(707);
    for (int ncomp = 1; ncomp <= 3; ncomp += 2) {
        test_montage_case(10, 5, 7, ncomp, 0, 0, 4096);   /* 4x3, two empty cells */
        test_montage_case(10, 5, 7, ncomp, 0, 20, 4096);  /* scale 3 */
        test_montage_case(10, 5, 7, ncomp, 0, 0, 20);     /* n_shown 6 */
        test_montage_case(1, 9, 4, ncomp, 0, 30, 4096);   /* one tile, scale 4, no separators */
        test_montage_case(37, 3, 3, ncomp, 5, 8, 4096);   /* 5 columns, scale 3 */
    }
}

/* ---- input image ---- */

static void test_input_image(void)
{
    enum { H = 23, W = 29, OFF = 6 };
    static const float mean[3] = {0.485f, 0.456f, 0.406f}, sd[3] = {0.229f, 0.224f, 0.225f};
    rng_seed(808);
    for (int c = 1; c <= 3; c += 2) {
        float x[OFF + 3 * H * W];
        fill_nonzero(x, sizeof x / sizeof x[0], -2.6f, 2.7f); /* some beyond [0, 255] */
        x[OFF + 5] = NAN;
        float a[3], b[3];
        for (int i = 0; i < 3; i++) {
            a[i] = sd[i] / (1.0f / 255.0f);
            b[i] = mean[i] / (1.0f / 255.0f);
        }
        cl_mem bx = upload(x, sizeof x), bd = buffer((size_t)H * W * c + 8);
        poison_bytes(bd, (size_t)H * W * c + 8, 0x5A);
        CHECK_OK(cnn_viz_input_image(&g_viz, bx, OFF, c, H, W, a, b, bd, "input image"));
        uint8_t *o = download(bd, (size_t)H * W * c + 8);
        int bad = 0, lo_clamped = 0, hi_clamped = 0;
        for (int ch = 0; ch < c; ch++)
            for (int p = 0; p < H * W; p++) {
                float v = x[OFF + ch * H * W + p];
                float f = v * a[ch];
                f = f + b[ch];
                f = f + 0.5f;
                int want = isnan(f) ? 0 : f <= 0.0f ? 0 : f >= 255.0f ? 255 : (int)f;
                lo_clamped += want == 0;
                hi_clamped += want == 255;
                if (o[p * c + ch] != want) bad++;
                /* and the double formula of the header, within one level */
                if (!isnan(v)) {
                    double d = (double)v * a[ch] + b[ch] + 0.5;
                    int wd = d < 0 ? 0 : d > 255 ? 255 : (int)d;
                    if (abs(wd - o[p * c + ch]) > 1) bad++;
                }
            }
        int tail = 1;
        for (int i = 0; i < 8; i++) tail &= o[H * W * c + i] == 0x5A;
        CHECK(bad == 0 && tail && lo_clamped && hi_clamped, "input image c=%d: %d wrong, tail %d, clamped %d/%d",
              c, bad, tail, lo_clamped, hi_clamped);
        free(o);
        release(bx);
        release(bd);
    }
}

/* ---- argument errors ---- */

static void expect_input_error(int st, const char *what)
{
    CHECK(st == CNN_ERR_INPUT && strstr(cnn_error_message(), "tap X"), "%s: status %d, message '%s'", what,
          st, cnn_error_message());
}

static void test_errors(void)
{
    cl_mem b = buffer(4096), small = buffer(16);
    expect_input_error(cnn_viz_stats(&g_viz, b, 0, 4, 4, 0, b, "tap X"), "0 maps");
    expect_input_error(cnn_viz_stats(&g_viz, b, 0, 4, 0, 2, b, "tap X"), "len 0");
    expect_input_error(cnn_viz_stats(&g_viz, b, 0, 3, 4, 2, b, "tap X"), "stride < len");
    expect_input_error(cnn_viz_stats(&g_viz, small, 0, 4, 4, 2, b, "tap X"), "source too small");
    expect_input_error(cnn_viz_stats(&g_viz, b, 0, 4, 4, 4, small, "tap X"), "stats too small");
    expect_input_error(cnn_viz_ranges_minmax(&g_viz, b, 6, 4, false, b, "tap X"), "group 4 of 6");
    expect_input_error(cnn_viz_ranges_minmax(&g_viz, b, 6, 0, false, b, "tap X"), "group 0");
    expect_input_error(cnn_viz_ranges_fixed(&g_viz, b, 0, 0, 1, "tap X"), "0 groups");
    expect_input_error(cnn_viz_histogram(&g_viz, b, 0, 4, 4, 4, 1, b, 4097, false, b, "tap X"), "4097 bins");
    expect_input_error(cnn_viz_histogram(&g_viz, b, 0, 4, 4, 4, 1, b, 0, false, b, "tap X"), "0 bins");
    expect_input_error(cnn_viz_histogram(&g_viz, b, 0, 4, 4, 4, 3, b, 16, false, b, "tap X"), "group 3 of 4");
    expect_input_error(cnn_viz_ranges_percentile(&g_viz, b, 16, small, 1, 50, 50, false, b, "tap X"),
                       "p_lo == p_hi");
    expect_input_error(cnn_viz_ranges_percentile(&g_viz, b, 16, small, 1, -1, 50, false, b, "tap X"),
                       "p_lo < 0");
    expect_input_error(cnn_viz_ranges_percentile(&g_viz, b, 16, small, 1, 1, 101, false, b, "tap X"),
                       "p_hi > 100");
    expect_input_error(cnn_viz_ranges_percentile(&g_viz, b, 16, b, 1, 1, 99, false, b, "tap X"),
                       "ranges aliasing bounds");
    expect_input_error(cnn_viz_render(&g_viz, b, 0, 16, 2, 2, 4, 4, b, 1, CNN_CMAP_GRAY, b, 0, "tap X"),
                       "2 planes");
    expect_input_error(cnn_viz_render(&g_viz, b, 0, 16, 2, 1, 4, 4, b, 1, (cnn_cmap)CNN_CMAP_COUNT, b, 0,
                                      "tap X"),
                       "cmap out of range");
    expect_input_error(cnn_viz_render(&g_viz, b, 0, 16, 2, 1, 4, 4, b, 1, CNN_CMAP_GRAY, small, 0, "tap X"),
                       "render destination too small");
    cnn_montage m;
    cnn_montage_plan(4, 2, 2, 0, 0, 100, &m);
    expect_input_error(cnn_viz_montage(&g_viz, b, 0, 2, &m, 0, b, 0, "tap X"), "montage ncomp 2");
    m.width++;
    expect_input_error(cnn_viz_montage(&g_viz, b, 0, 1, &m, 0, b, 0, "tap X"), "inconsistent plan");
    float a[3] = {1, 1, 1};
    expect_input_error(cnn_viz_input_image(&g_viz, b, 0, 2, 4, 4, a, a, b, "tap X"), "2 channels");
    release(b);
    release(small);
}

int main(void)
{
    CHECK_OK(cnn_cl_init(&g_cl, NULL, NULL, false));
    if (!g_cl.ctx) return test_summary("test_viz");
    printf("device: %s (%s)\n", g_cl.device_name, g_cl.platform_name);
    CHECK_OK(cnn_viz_init(&g_viz, &g_cl));
    if (!g_viz.luts) {
        cnn_cl_free(&g_cl);
        return test_summary("test_viz");
    }

    test_montage_plan();
    test_stats();
    test_ranges_minmax();
    test_histogram();
    test_histogram_accumulate();
    test_render_crafted();
    test_render_random();
    test_montage();
    test_input_image();
    test_errors();

    cnn_viz_free(&g_viz);
    cnn_cl_free(&g_cl);
    return test_summary("test_viz");
}
