/* Attribution by perturbing the input and scoring the copies in batches
 * (pipeline/methods.h): RISE (Petsiuk et al. 2018).  configs/README.md
 * gives the formula; gradmap.h the masks' generator. */
#include "pipeline/methods.h"
#include "core/error.h"
#include "core/log.h"
#include "core/util.h"
#include "viz/gradmap.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* RISE's masks' seed for input k of the run. */
#define RISE_SEED 0x715eu

/* The map of each target: sum over masks M_i of score_i M_i / (N keep),
 * score_i the target's score of the input times M_i (0 in network units
 * where a mask is 0).  Per-target sums in s->tsum. */
int cnn_method_rise_passes(cnn_job *s, cnn_vtap *t, int b, int k, const float *logits0)
{
    (void)logits0;
    const cnn_graph *g = &s->l.graph;
    cnn_cl *cl = &s->cl;
    int px = cnn_job_px(s), n = t->samples, nt = t->cls_fixed >= 0 ? 1 : t->topk;
    size_t len = (size_t)g->in_c * px, nout = cnn_layer_numel(&g->layers[g->n - 1]);
    const char *what = "input rise";
    float *lg = cnn_malloc((size_t)s->chunk * nout * sizeof *lg), *w = cnn_malloc((size_t)s->chunk * sizeof *w);
    int status = lg && w ? CNN_OK : CNN_ERR_NOMEM;
    double scale = 1.0 / ((double)n * t->keep);
    for (int i0 = 0; i0 < n && status == CNN_OK; i0 += s->chunk) {
        int m = n - i0 < s->chunk ? n - i0 : s->chunk;
        if ((status = cnn_job_interrupted(s)) < 0) break;
        status = cnn_gm_rise_masks(cl, RISE_SEED + (uint32_t)k, t->cells, t->keep, g->in_h, g->in_w, i0, m, s->rgrid,
                                   s->maps, what);
        if (status == CNN_OK)
            status = cnn_gm_mask_mul(cl, s->xsave, (size_t)b * len, g->in_c, px, s->maps, m, s->net.input, what);
        if (status == CNN_OK) status = cnn_net_forward(&s->net, m);
        if (status == CNN_OK) status = cnn_net_read(&s->net, g->n - 1, m, lg);
        for (int r = 0; r < nt && status == CNN_OK; r++) {
            int c = cnn_method_target(s, t, b, r);
            for (int j = 0; j < m; j++) w[j] = (float)(cnn_method_score(lg + (size_t)j * nout, nout, c, t->prob) * scale);
            /* a blocking write: the previous target's sum has read camw */
            status = cnn_cl_write(cl, s->camw, 0, (size_t)m * sizeof(float), w, what);
            if (status == CNN_OK)
                status = cnn_gm_weighted_sum(cl, s->maps, m, px, s->camw, s->tsum, (size_t)r * px, i0 > 0, what);
        }
    }
    for (int r = 0; r < nt && status == CNN_OK; r++) {
        char note[160];
        snprintf(note, sizeof note, "rise: %d masks of %d x %d cells, keep %g, %s", n, t->cells, t->cells,
                 (double)t->keep, t->prob ? "probabilities" : "logits");
        status = cnn_method_emit(s, t, b, k, cnn_method_target(s, t, b, r), s->tsum, (size_t)r * px, s->tsum,
                                 (size_t)r * px, g->in_h, g->in_w, note);
    }
    free(lg);
    free(w);
    return status;
}

/* ---------------------------------------------------------------------- */
/* Superpixel methods: LIME and KernelSHAP                                */

#include "viz/slic.h"

/* LIME's and KernelSHAP's samples' seeds for input k of the run. */
#define LIME_SEED 0x11e0u
#define SHAP_SEED 0x5a4bu

/* A stream of uniform numbers in [0, 1): draw i is word 0 of Philox of
 * counter (i, 0x5eed) and key seed, u = (word >> 8) / 2^24. */
typedef struct stream {
    uint32_t seed, i;
} stream;

static double uniform(stream *st)
{
    uint32_t r[2];
    cnn_philox2x32(st->i++, 0x5eedu, st->seed, r);
    return (double)(r[0] >> 8) / 16777216.0;
}

/* One image's superpixels and the scores of samples of them. */
typedef struct superpixels {
    int32_t *seg; /* [px] */
    int m;        /* segments */
} superpixels;

/* SLIC of image b as the network sees it (8 bits), uploaded to s->segbuf. */
static int make_superpixels(cnn_job *s, const cnn_vtap *t, int b, superpixels *sp, const char *what)
{
    const cnn_graph *g = &s->l.graph;
    size_t px = (size_t)cnn_job_px(s);
    uint8_t *img = cnn_malloc(px * (size_t)g->in_c);
    sp->seg = cnn_malloc(px * sizeof *sp->seg);
    if (!img || !sp->seg) {
        free(img);
        return CNN_ERR_NOMEM;
    }
    int status = cnn_cl_read(&s->cl, s->img8[b], 0, px * (size_t)g->in_c, img, what);
    if (status == CNN_OK) {
        int n = cnn_slic(img, g->in_h, g->in_w, g->in_c, t->segments, 10.0, 10, sp->seg);
        if (n < 0) status = cnn_error_prefix(n, "%s", what);
        else if (n > CNN_MAX_SEGMENTS)
            status = cnn_error_set(CNN_ERR_INPUT, "%s: %d superpixels (at most %d): ask for fewer segments", what, n,
                                   CNN_MAX_SEGMENTS);
        else if (n < 2)
            status = cnn_error_set(CNN_ERR_INPUT, "%s: the image makes one superpixel: nothing to compare", what);
        sp->m = n;
    }
    if (status == CNN_OK) status = cnn_cl_write(&s->cl, s->segbuf, 0, px * sizeof(int32_t), sp->seg, what);
    free(img);
    return status;
}

/* Scores f[i * nt + r] of the n samples z (n x m bytes, 1 = the segment
 * kept) for each target r: the input with the left-out segments taken from
 * the baseline (s->base), run in batches. */
static int score_samples(cnn_job *s, const cnn_vtap *t, int b, const superpixels *sp, const uint8_t *z, int n,
                         double *f, const char *what)
{
    const cnn_graph *g = &s->l.graph;
    int px = cnn_job_px(s), nt = t->cls_fixed >= 0 ? 1 : t->topk, m = sp->m;
    size_t len = (size_t)g->in_c * px, nout = cnn_layer_numel(&g->layers[g->n - 1]);
    float *zf = cnn_malloc((size_t)s->chunk * m * sizeof *zf), *lg = cnn_malloc((size_t)s->chunk * nout * sizeof *lg);
    int status = zf && lg ? CNN_OK : CNN_ERR_NOMEM;
    for (int i0 = 0; i0 < n && status == CNN_OK; i0 += s->chunk) {
        int c = n - i0 < s->chunk ? n - i0 : s->chunk;
        if ((status = cnn_job_interrupted(s)) < 0) break;
        for (size_t i = 0; i < (size_t)c * m; i++) zf[i] = z[(size_t)i0 * m + i];
        status = cnn_cl_write(&s->cl, s->zbuf, 0, (size_t)c * m * sizeof(float), zf, what);
        if (status == CNN_OK)
            status = cnn_gm_segment_mix(&s->cl, s->xsave, (size_t)b * len, s->base, g->in_c, px, s->segbuf, s->zbuf, m,
                                        c, s->net.input, what);
        if (status == CNN_OK) status = cnn_net_forward(&s->net, c);
        if (status == CNN_OK) status = cnn_net_read(&s->net, g->n - 1, c, lg);
        for (int j = 0; j < c && status == CNN_OK; j++)
            for (int r = 0; r < nt; r++)
                f[(size_t)(i0 + j) * nt + r] =
                    cnn_method_score(lg + (size_t)j * nout, nout, cnn_method_target(s, t, b, r), t->prob);
    }
    free(zf);
    free(lg);
    return status;
}

/* Solves the symmetric n x n system a x = rhs (both destroyed; x in rhs) by
 * Gaussian elimination with partial pivoting; CNN_ERR_INPUT when singular. */
static int solve(double *a, double *rhs, int n, const char *what)
{
    double scale = 0;
    for (size_t i = 0; i < (size_t)n * n; i++) scale = fmax(scale, fabs(a[i]));
    for (int col = 0; col < n; col++) {
        int piv = col;
        for (int r = col + 1; r < n; r++)
            if (fabs(a[(size_t)r * n + col]) > fabs(a[(size_t)piv * n + col])) piv = r;
        if (!(fabs(a[(size_t)piv * n + col]) > 1e-12 * scale))
            return cnn_error_set(CNN_ERR_INPUT, "%s: the samples do not determine the attributions (a singular "
                                 "system): give more samples or fewer segments", what);
        if (piv != col) {
            for (int k = 0; k < n; k++) {
                double tmp = a[(size_t)col * n + k];
                a[(size_t)col * n + k] = a[(size_t)piv * n + k];
                a[(size_t)piv * n + k] = tmp;
            }
            double tmp = rhs[col];
            rhs[col] = rhs[piv];
            rhs[piv] = tmp;
        }
        for (int r = col + 1; r < n; r++) {
            double f = a[(size_t)r * n + col] / a[(size_t)col * n + col];
            if (f == 0) continue;
            for (int k = col; k < n; k++) a[(size_t)r * n + k] -= f * a[(size_t)col * n + k];
            rhs[r] -= f * rhs[col];
        }
    }
    for (int r = n - 1; r >= 0; r--) {
        double v = rhs[r];
        for (int k = r + 1; k < n; k++) v -= a[(size_t)r * n + k] * rhs[k];
        rhs[r] = v / a[(size_t)r * n + r];
    }
    return CNN_OK;
}

/* Draws map r (value per segment: coef[seg[p]]) and, with --npy, the
 * samples behind it (once per image: r == 0). */
static int emit_segments(cnn_job *s, cnn_vtap *t, int b, int k, int r, const superpixels *sp, const double *coef,
                         const char *note, const char *what)
{
    const cnn_graph *g = &s->l.graph;
    int px = cnn_job_px(s);
    float *map = cnn_malloc((size_t)px * sizeof *map);
    if (!map) return CNN_ERR_NOMEM;
    for (int p = 0; p < px; p++) map[p] = (float)coef[sp->seg[p]];
    int status = cnn_cl_write(&s->cl, s->tsum, (size_t)r * px * sizeof(float), (size_t)px * sizeof(float), map, what);
    free(map);
    if (status == CNN_OK)
        status = cnn_method_emit(s, t, b, k, cnn_method_target(s, t, b, r), s->tsum, (size_t)r * px, s->tsum,
                                 (size_t)r * px, g->in_h, g->in_w, note);
    return status;
}

/* With --npy: <stem>/<method>_segments.npy [H, W] (the labels),
 * <method>_samples.npy [N, M] (1 = segment kept) and <method>_weights.npy
 * [N] (the regression's sample weights), so the map can be recomputed. */
static int export_samples(cnn_job *s, const cnn_vtap *t, int k, const superpixels *sp, const uint8_t *z,
                          const double *w, int n)
{
    if (s->timing || s->session || !s->o.npy) return CNN_OK;
    const cnn_graph *g = &s->l.graph;
    const char *name = cnn_gmethod_names[t->method];
    size_t px = (size_t)cnn_job_px(s), zn = (size_t)n * sp->m;
    float *buf = cnn_malloc((px > zn ? px : zn) * sizeof *buf);
    if (!buf) return CNN_ERR_NOMEM;
    char rel[600];
    int64_t shape[2];
    for (size_t p = 0; p < px; p++) buf[p] = (float)sp->seg[p];
    snprintf(rel, sizeof rel, "%s/%s_segments.npy", s->stems[k], name);
    shape[0] = g->in_h;
    shape[1] = g->in_w;
    int status = cnn_job_write_npy(s, rel, buf, shape, 2, name, "segments", "input", s->inputs.paths[k]);
    if (status == CNN_OK) {
        for (size_t i = 0; i < zn; i++) buf[i] = z[i];
        snprintf(rel, sizeof rel, "%s/%s_samples.npy", s->stems[k], name);
        shape[0] = n;
        shape[1] = sp->m;
        status = cnn_job_write_npy(s, rel, buf, shape, 2, name, "samples", "input", s->inputs.paths[k]);
    }
    if (status == CNN_OK) {
        for (int i = 0; i < n; i++) buf[i] = (float)w[i];
        snprintf(rel, sizeof rel, "%s/%s_weights.npy", s->stems[k], name);
        shape[0] = n;
        status = cnn_job_write_npy(s, rel, buf, shape, 1, name, "weights", "input", s->inputs.paths[k]);
    }
    free(buf);
    return status;
}

/* LIME (Ribeiro et al. 2016), as the lime package's image explainer: n
 * samples z of the segments (the first keeps all; the others each segment
 * with probability 1/2), weights sqrt(exp(-d^2 / width^2)) with d the cosine
 * distance of z to all-ones, and a weighted ridge regression (alpha 1, with
 * intercept) of the scores on z: the map is each segment's coefficient. */
int cnn_method_lime_passes(cnn_job *s, cnn_vtap *t, int b, int k, const float *logits0)
{
    (void)logits0;
    const char *what = "input lime";
    const cnn_graph *g = &s->l.graph;
    size_t len = (size_t)g->in_c * cnn_job_px(s);
    superpixels sp = {0};
    int n = t->samples, nt = t->cls_fixed >= 0 ? 1 : t->topk;
    int status = make_superpixels(s, t, b, &sp, what);
    if (status == CNN_OK) status = cnn_method_baseline(s, t, (size_t)b * len, what);
    int m = sp.m;
    uint8_t *z = status == CNN_OK ? cnn_malloc((size_t)n * m) : NULL;
    double *f = status == CNN_OK ? cnn_malloc((size_t)n * nt * sizeof *f) : NULL;
    double *w = status == CNN_OK ? cnn_malloc((size_t)n * sizeof *w) : NULL;
    double *a = status == CNN_OK ? cnn_malloc((size_t)m * m * sizeof *a) : NULL;
    double *rhs = status == CNN_OK ? cnn_malloc((size_t)m * sizeof *rhs) : NULL;
    double *xm = status == CNN_OK ? cnn_malloc((size_t)m * sizeof *xm) : NULL;
    if (status == CNN_OK && !(z && f && w && a && rhs && xm)) status = CNN_ERR_NOMEM;
    if (status == CNN_OK) {
        for (int i = 0; i < n; i++) {
            int on = 0;
            for (int j = 0; j < m; j++) {
                uint32_t r[2];
                cnn_philox2x32((uint32_t)j, (uint32_t)i, LIME_SEED + (uint32_t)k, r);
                z[(size_t)i * m + j] = i == 0 ? 1 : (uint8_t)(r[0] >> 31);
                on += z[(size_t)i * m + j];
            }
            double d = on ? 1.0 - on / (sqrt((double)on) * sqrt((double)m)) : 1.0;
            w[i] = sqrt(exp(-d * d / ((double)t->kernel_width * t->kernel_width)));
        }
        status = score_samples(s, t, b, &sp, z, n, f, what);
    }
    if (status == CNN_OK) status = export_samples(s, t, k, &sp, z, w, n);
    for (int r = 0; r < nt && status == CNN_OK; r++) {
        /* centred by the weighted means: (Xc' W Xc + I) beta = Xc' W yc */
        double sw = 0, ym = 0;
        for (int i = 0; i < n; i++) sw += w[i], ym += w[i] * f[(size_t)i * nt + r];
        ym /= sw;
        for (int j = 0; j < m; j++) {
            double v = 0;
            for (int i = 0; i < n; i++) v += w[i] * z[(size_t)i * m + j];
            xm[j] = v / sw;
        }
        for (int j = 0; j < m; j++) {
            for (int l = j; l < m; l++) {
                double v = 0;
                for (int i = 0; i < n; i++)
                    v += w[i] * (z[(size_t)i * m + j] - xm[j]) * (z[(size_t)i * m + l] - xm[l]);
                a[(size_t)j * m + l] = a[(size_t)l * m + j] = v;
            }
            a[(size_t)j * m + j] += 1.0;
            double v = 0;
            for (int i = 0; i < n; i++) v += w[i] * (z[(size_t)i * m + j] - xm[j]) * (f[(size_t)i * nt + r] - ym);
            rhs[j] = v;
        }
        status = solve(a, rhs, m, what);
        if (status < 0) break;
        /* the weighted fit's R^2, as lime reports it */
        double ss_res = 0, ss_tot = 0, icpt = ym;
        for (int j = 0; j < m; j++) icpt -= xm[j] * rhs[j];
        for (int i = 0; i < n; i++) {
            double pred = icpt;
            for (int j = 0; j < m; j++) pred += rhs[j] * z[(size_t)i * m + j];
            double e = f[(size_t)i * nt + r] - pred, d = f[(size_t)i * nt + r] - ym;
            ss_res += w[i] * e * e;
            ss_tot += w[i] * d * d;
        }
        char note[200];
        snprintf(note, sizeof note, "lime: %d superpixels, %d samples, kernel width %g, %s; weighted R^2 %.3f", m, n,
                 (double)t->kernel_width, t->prob ? "probabilities" : "logits", ss_tot > 0 ? 1 - ss_res / ss_tot : 1.0);
        status = emit_segments(s, t, b, k, r, &sp, rhs, note, what);
    }
    free(sp.seg);
    free(z);
    free(f);
    free(w);
    free(a);
    free(rhs);
    free(xm);
    return status;
}

/* KernelSHAP's samples: masks (n x m bytes) and weights, as the shap
 * package's KernelExplainer draws them (configs/README.md): every subset of the smallest sizes (and their
 * complements) while the budget covers their share of the Shapley kernel,
 * then random subsets, sizes drawn by the kernel's remaining weight, each
 * with its complement, repeats adding weight instead of a sample. */
typedef struct coalitions {
    uint8_t *z;
    double *w;
    int n, cap, m;
    int *table; /* open addressing on the masks: index + 1, 0 empty */
    size_t tsize;
} coalitions;

static uint64_t mask_hash(const uint8_t *z, int m)
{
    uint64_t h = 1469598103934665603ull;
    for (int j = 0; j < m; j++) h = (h ^ z[j]) * 1099511628211ull;
    return h;
}

/* Adds mask z with weight w; an existing one gets w added.  Returns 1 when
 * it was new, 0 when not, < 0 on errors. */
static int add_coalition(coalitions *c, const uint8_t *z, double w)
{
    size_t at = (size_t)(mask_hash(z, c->m) % c->tsize);
    while (c->table[at]) {
        int i = c->table[at] - 1;
        if (!memcmp(c->z + (size_t)i * c->m, z, (size_t)c->m)) {
            c->w[i] += w;
            return 0;
        }
        at = (at + 1) % c->tsize;
    }
    CNN_ASSERT(c->n < c->cap); /* the sampler never adds more than its budget */
    memcpy(c->z + (size_t)c->n * c->m, z, (size_t)c->m);
    c->w[c->n] = w;
    c->table[at] = ++c->n;
    return 1;
}

static double binom(int n, int k)
{
    double r = 1;
    for (int i = 1; i <= k; i++) r = r * (n - k + i) / i;
    return r;
}

static int draw_coalitions(coalitions *c, int m, int nsamples, uint32_t seed)
{
    c->m = m;
    c->cap = nsamples;
    c->tsize = 2 * (size_t)nsamples + 1;
    c->z = cnn_malloc((size_t)nsamples * m);
    c->w = cnn_malloc((size_t)nsamples * sizeof *c->w);
    c->table = cnn_calloc(c->tsize, sizeof *c->table);
    int n_sizes = (m - 1 + 1) / 2, n_paired = (m - 1) / 2; /* ceil, floor of (m - 1) / 2 */
    double *wv = cnn_malloc((size_t)(n_sizes + 1) * sizeof *wv), *rem = cnn_malloc((size_t)(n_sizes + 1) * sizeof *rem);
    uint8_t *mask = cnn_malloc((size_t)m);
    int *perm = cnn_malloc((size_t)m * sizeof *perm), *pick = cnn_malloc((size_t)m * sizeof *pick);
    int status = c->z && c->w && c->table && wv && rem && mask && perm && pick ? CNN_OK : CNN_ERR_NOMEM;
    if (status < 0) goto done;
    double total = 0;
    for (int i = 1; i <= n_sizes; i++) {
        wv[i - 1] = (m - 1.0) / ((double)i * (m - i));
        if (i <= n_paired) wv[i - 1] *= 2;
        total += wv[i - 1];
    }
    for (int i = 0; i < n_sizes; i++) rem[i] = wv[i] /= total;
    int n_full = 0, left = nsamples;
    for (int size = 1; size <= n_sizes && status == CNN_OK; size++) {
        double nsub = binom(m, size) * (size <= n_paired ? 2 : 1);
        if (!(left * rem[size - 1] / nsub >= 1.0 - 1e-8)) break;
        n_full++;
        left -= (int)nsub;
        if (rem[size - 1] < 1.0) {
            double d = 1.0 - rem[size - 1];
            for (int i = 0; i < n_sizes; i++) rem[i] /= d;
        }
        double w = wv[size - 1] / binom(m, size);
        if (size <= n_paired) w /= 2;
        /* every subset of `size` indices, in lexicographic order */
        for (int i = 0; i < size; i++) pick[i] = i;
        for (;;) {
            memset(mask, 0, (size_t)m);
            for (int i = 0; i < size; i++) mask[pick[i]] = 1;
            int added = add_coalition(c, mask, w);
            if (added >= 0 && size <= n_paired) {
                for (int j = 0; j < m; j++) mask[j] ^= 1;
                added = add_coalition(c, mask, w);
            }
            if (added < 0) {
                status = added;
                break;
            }
            int i = size - 1;
            while (i >= 0 && pick[i] == m - size + i) i--;
            if (i < 0) break;
            pick[i]++;
            for (int j = i + 1; j < size; j++) pick[j] = pick[j - 1] + 1;
        }
    }
    int n_fixed = c->n;
    if (status == CNN_OK && n_full != n_sizes && left > 0) {
        stream st = {seed, 0};
        double rsum = 0;
        for (int i = n_full; i < n_sizes; i++) {
            rem[i] = wv[i] / (i < n_paired ? 2 : 1);
            rsum += rem[i];
        }
        for (int draw = 0; draw < 4 * (nsamples - n_fixed) && left > 0 && status == CNN_OK; draw++) {
            /* a size by the remaining kernel weight */
            double u = uniform(&st) * rsum, acc = 0;
            int ind = n_sizes - 1;
            for (int i = n_full; i < n_sizes; i++) {
                acc += rem[i];
                if (u < acc) {
                    ind = i;
                    break;
                }
            }
            int size = ind + 1;
            /* a uniform subset of that size: the first `size` of a shuffle */
            for (int j = 0; j < m; j++) perm[j] = j;
            for (int j = m - 1; j > 0; j--) {
                int r = (int)(uniform(&st) * (j + 1));
                int tmp = perm[j];
                perm[j] = perm[r];
                perm[r] = tmp;
            }
            memset(mask, 0, (size_t)m);
            for (int j = 0; j < size; j++) mask[perm[j]] = 1;
            int added = add_coalition(c, mask, 1.0);
            if (added < 0) status = added;
            left -= added > 0;
            if (status == CNN_OK && left > 0 && size <= n_paired) {
                for (int j = 0; j < m; j++) mask[j] ^= 1;
                added = add_coalition(c, mask, 1.0);
                if (added < 0) status = added;
                left -= added > 0;
            }
        }
        /* the random samples share the kernel weight the full sizes left */
        double wleft = 0, wsum = 0;
        for (int i = n_full; i < n_sizes; i++) wleft += wv[i];
        for (int i = n_fixed; i < c->n; i++) wsum += c->w[i];
        for (int i = n_fixed; i < c->n && wsum > 0; i++) c->w[i] *= wleft / wsum;
    }
done:
    free(wv);
    free(rem);
    free(mask);
    free(perm);
    free(pick);
    return status;
}

/* KernelSHAP (Lundberg and Lee 2017) on the superpixels: the samples of
 * draw_coalitions scored, then the weighted least squares with the
 * efficiency constraint sum phi = f(x) - f(baseline), the last segment's
 * value eliminated as shap does. */
int cnn_method_kernelshap_passes(cnn_job *s, cnn_vtap *t, int b, int k, const float *logits0)
{
    const char *what = "input kernelshap";
    const cnn_graph *g = &s->l.graph;
    size_t len = (size_t)g->in_c * cnn_job_px(s), nout = cnn_layer_numel(&g->layers[g->n - 1]);
    superpixels sp = {0};
    coalitions co = {0};
    int nt = t->cls_fixed >= 0 ? 1 : t->topk;
    int status = make_superpixels(s, t, b, &sp, what);
    if (status == CNN_OK) status = cnn_method_baseline(s, t, (size_t)b * len, what);
    int m = sp.m, n = 0;
    if (status == CNN_OK) {
        double most = m < 31 ? ldexp(1.0, m) - 2 : 1e9;
        n = t->samples ? t->samples : 2 * m + 2048;
        if (n > most) n = (int)most;
        status = draw_coalitions(&co, m, n, SHAP_SEED + (uint32_t)k);
    }
    /* the scores of the samples and of the baseline (all segments off) */
    double *f = status == CNN_OK ? cnn_malloc(((size_t)co.n + 1) * nt * sizeof *f) : NULL;
    uint8_t *zall = status == CNN_OK ? cnn_malloc(((size_t)co.n + 1) * m) : NULL;
    double *a = status == CNN_OK ? cnn_malloc((size_t)m * m * sizeof *a) : NULL;
    double *rhs = status == CNN_OK ? cnn_malloc((size_t)m * sizeof *rhs) : NULL;
    if (status == CNN_OK && !(f && zall && a && rhs)) status = CNN_ERR_NOMEM;
    if (status == CNN_OK) {
        memcpy(zall, co.z, (size_t)co.n * m);
        memset(zall + (size_t)co.n * m, 0, (size_t)m);
        status = score_samples(s, t, b, &sp, zall, co.n + 1, f, what);
    }
    if (status == CNN_OK) status = export_samples(s, t, k, &sp, co.z, co.w, co.n);
    for (int r = 0; r < nt && status == CNN_OK; r++) {
        int cls = cnn_method_target(s, t, b, r);
        double fx = cnn_method_score(logits0, nout, cls, t->prob), fnull = f[(size_t)co.n * nt + r];
        double total = fx - fnull;
        /* y_i - z_i,last * total = sum_{j < last} (z_ij - z_i,last) phi_j */
        int q = m - 1;
        for (int j = 0; j < q; j++) {
            for (int l = j; l < q; l++) {
                double v = 0;
                for (int i = 0; i < co.n; i++) {
                    const uint8_t *zi = co.z + (size_t)i * m;
                    v += co.w[i] * (zi[j] - zi[q]) * (zi[l] - zi[q]);
                }
                a[(size_t)j * q + l] = a[(size_t)l * q + j] = v;
            }
            double v = 0;
            for (int i = 0; i < co.n; i++) {
                const uint8_t *zi = co.z + (size_t)i * m;
                v += co.w[i] * (zi[j] - zi[q]) * ((f[(size_t)i * nt + r] - fnull) - zi[q] * total);
            }
            rhs[j] = v;
        }
        status = solve(a, rhs, q, what);
        if (status < 0) break;
        double sum = 0;
        for (int j = 0; j < q; j++) sum += rhs[j];
        rhs[q] = total - sum;
        char note[200];
        snprintf(note, sizeof note,
                 "kernelshap: %d superpixels, %d samples; the values sum to %.6g = score %.6g - baseline's %.6g", m,
                 co.n, total, fx, fnull);
        status = emit_segments(s, t, b, k, r, &sp, rhs, note, what);
    }
    free(sp.seg);
    free(co.z);
    free(co.w);
    free(co.table);
    free(f);
    free(zall);
    free(a);
    free(rhs);
    return status;
}
