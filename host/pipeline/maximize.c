/* Activation maximisation (show: maximize): for each selected channel of a
 * layer, an image optimised on the device to excite it (viz/featvis.h),
 * all channels of a tap as one batch.
 *
 * Objective of image n: the mean of channel sel[n] over its positions
 * (objective: neuron: its centre position; a flat layer: unit sel[n]),
 * times `sign`.  Each step: the images from the parameters, a random
 * transform each, the forward up to the layer, the backward from it seeded
 * with d objective / d layer, then the ascent step.  Every 8th step the
 * objective under the step's transform goes into the curve; at the end it
 * is measured on the image itself (no transform).
 *
 * Files: model/<layer>/maximize.png (a tile per channel), maximize/cNNN.png
 * per channel, maximize.npy ([n, C, H, W] in [0, 1]) with --npy, and
 * maximize.json (per channel: the objective reached, the curve, and the
 * best value of an examples tap on the same layer when the run has one).
 *
 * diversity: K > 1 makes K images per channel (image n: channel n / K) and
 * subtracts w * sum over pairs i != j of a channel's images of the cosine
 * similarity of their Gram matrices G = A A^T (A: the layer's [C, P]
 * output; Lucid's diversity objective).  Its gradient goes into the seed
 * on the device: with Gh = G / |G|, S the sum of a channel's Gh and
 * s_i = <Gh_i, S - Gh_i>, d/dA_i of -w * sum is
 * -4 w (S - (1 + s_i) Gh_i) / |G_i| * A_i. */
#include "pipeline/job_impl.h"
#include "core/error.h"
#include "core/log.h"
#include "core/util.h"
#include "ops/blas.h"
#include "viz/featvis.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { CURVE_EVERY = 8, TILE_MIN = 48, GAP = 2 };

/* The run's pipeline with the layers up to t's at t's size (shallow). */
static cnn_pipeline sized_pipe(const cnn_job *s, const cnn_vtap *t)
{
    cnn_pipeline p = s->l.pipe;
    p.input.h = t->img_h;
    p.input.w = t->img_w;
    p.n_layers = t->layer + 1;
    return p;
}

static int sized_error(int status, const cnn_vtap *t)
{
    return cnn_error_prefix(status, "maximize %s: size [%d, %d]: the layers up to '%s' do not take that input",
                            t->layer_name, t->img_h, t->img_w, t->layer_name);
}

static int sized_check(const cnn_job *s, const cnn_vtap *t)
{
    cnn_pipeline p = sized_pipe(s, t);
    cnn_graph g;
    int status = cnn_graph_build(&p, s->l.weights.n ? &s->l.weights : NULL, &g);
    if (status < 0) return sized_error(status, t);
    const cnn_layer *ly = &g.layers[t->layer];
    if (!t->flat && (ly->flat || ly->c != t->n_maps))
        status = cnn_error_set(CNN_ERR_INPUT, "maximize %s: size [%d, %d]: '%s' is %s at that size", t->layer_name,
                               t->img_h, t->img_w, t->layer_name, ly->flat ? "flat" : "another shape");
    else if (t->flat && cnn_layer_numel(ly) != (size_t)t->n_maps)
        status = cnn_error_set(CNN_ERR_INPUT, "maximize %s: size [%d, %d]: '%s' has %zu units at that size, not %d",
                               t->layer_name, t->img_h, t->img_w, t->layer_name, cnn_layer_numel(ly), t->n_maps);
    cnn_graph_free(&g);
    return status;
}

int cnn_maximize_prepare(cnn_job *s)
{
    for (int t = 0; t < s->n_taps; t++) {
        const cnn_vtap *vt = &s->taps[t];
        if (vt->kind != CNN_TAP_MAXIMIZE) continue;
        const cnn_input_spec *in = &s->l.pipe.input;
        if (in->tensor || (in->c != 1 && in->c != 3))
            return cnn_error_set(CNN_ERR_USAGE, "run: maximize makes images; this network takes a tensor (color: "
                                 "none)");
        if (s->o.shard_count || cnn_cl_wants_several(s->o.device))
            return cnn_error_set(CNN_ERR_USAGE, "run: maximize runs once per run: not with --shard or several "
                                 "devices");
        if (vt->diversity > 1) {
            const cnn_layer *ly = &s->l.graph.layers[vt->layer];
            size_t c = vt->flat ? cnn_layer_numel(ly) : (size_t)ly->c;
            if (c > 2048)
                return cnn_error_set(CNN_ERR_USAGE, "maximize %s: diversity compares %zu x %zu Gram matrices; at "
                                     "most 2048 channels", vt->layer_name, c, c);
        }
        s->maximize = true;
        if (vt->colour_inputs && vt->decorrelate && in->c == 3) {
            if (s->o.n_inputs == 0)
                return cnn_error_set(CNN_ERR_USAGE, "maximize %s: decorrelate: inputs takes the colours of the run's "
                                     "images: give them with --input", vt->layer_name);
            s->colour_stats = true;
        }
        if (vt->own_net) {
            /* its own network, built when it runs: its shapes checked now */
            CNN_TRY_RET(sized_check(s, vt));
            s->mx_sized = true;
            continue;
        }
        if (vt->n_sel * vt->diversity > s->mx_batch) s->mx_batch = vt->n_sel * vt->diversity;
        s->gradients = true;
    }
    return CNN_OK;
}

/* The objective of image n from the layer's output (host, one image). */
static double objective(const cnn_vtap *t, const float *a, int n)
{
    int ch = cnn_vtap_channel(t, n / t->diversity);
    size_t plane = (size_t)t->h * t->w;
    const float *p = a + (size_t)ch * plane;
    double v;
    if (t->flat) v = p[0];
    else if (t->neuron) v = p[(size_t)(t->h / 2) * t->w + t->w / 2];
    else {
        double sum = 0;
        for (size_t i = 0; i < plane; i++) sum += p[i];
        v = sum / (double)plane;
    }
    return t->sign * v;
}

/* The objectives of the batch's n images after a forward. */
static int measure(cnn_net *net, const cnn_vtap *t, int n, float *host, double *out)
{
    size_t numel = cnn_layer_numel(&net->g->layers[t->layer]);
    CNN_TRY_RET(cnn_net_read(net, t->layer, n, host));
    for (int i = 0; i < n; i++) out[i] = objective(t, host + (size_t)i * numel, i);
    return CNN_OK;
}

/* The best value of an examples tap on the same layer for channel ch, if
 * the run has one (NAN otherwise). */
static double best_example(const cnn_job *s, const cnn_vtap *t, int ch)
{
    for (int i = 0; i < s->n_taps; i++) {
        const cnn_vtap *e = &s->taps[i];
        if (e->kind != CNN_TAP_EXAMPLES || e->layer != t->layer || !e->ex || e->by_mean == t->neuron) continue;
        double v = cnn_examples_best(e, ch);
        if (!isnan(v)) return v;
    }
    return NAN;
}

/* The diversity term's state: the layer's Gram matrices on the device and
 * their copy on the host, and each image's s_i (see the header). */
typedef struct divctx {
    cnn_job *s;
    cnn_net *net;
    const cnn_vtap *t;
    int N, K;
    size_t C, P, numel;
    cl_mem G, M;   /* [N][C][C]: the Gram matrices; the seed's factor */
    float *hg;     /* [N][C][C] */
    double *sim;   /* [N] s_i: the sum of image i's cosine similarity to its channel's other images */
} divctx;

static void div_free(divctx *d)
{
    if (d->G) clReleaseMemObject(d->G);
    if (d->M) clReleaseMemObject(d->M);
    free(d->hg);
    free(d->sim);
}

static int div_create(divctx *d, cnn_job *s, cnn_net *net, const cnn_vtap *t, int N)
{
    const cnn_layer *ly = &net->g->layers[t->layer];
    *d = (divctx){.s = s, .net = net, .t = t, .N = N, .K = t->diversity, .numel = cnn_layer_numel(ly)};
    d->C = t->flat ? d->numel : (size_t)ly->c;
    d->P = d->numel / d->C;
    size_t cc = (size_t)N * d->C * d->C;
    d->hg = cnn_malloc(cc * sizeof *d->hg);
    d->sim = cnn_calloc((size_t)N, sizeof *d->sim);
    if (!d->hg || !d->sim) return CNN_ERR_NOMEM;
    CNN_TRY_RET(cnn_cl_buffer(&s->cl, cc * sizeof(float), &d->G, "maximize: Gram matrices"));
    return cnn_cl_buffer(&s->cl, cc * sizeof(float), &d->M, "maximize: diversity seed");
}

/* The Gram matrices of the layer's output for the batch, s_i, and (write)
 * the seed's factor -4 w (S - (1 + s_i) Gh_i) / |G_i| into d->M. */
static int div_grams(divctx *d, bool write)
{
    cnn_job *s = d->s;
    const size_t C = d->C, P = d->P, cc = C * C;
    cl_mem A = cnn_net_buffer(d->net, d->t->layer);
    const char *what = d->t->layer_name;
    for (int n = 0; n < d->N; n++)
        CNN_TRY_RET(cnn_blas_sgemm(&s->cl, false, true, C, C, P, A, (size_t)n * d->numel, P, A, (size_t)n * d->numel,
                                   P, d->G, (size_t)n * cc, C, what));
    CNN_TRY_RET(cnn_cl_read(&s->cl, d->G, 0, (size_t)d->N * cc * sizeof(float), d->hg, "maximize: Gram matrices"));
    double *S = cnn_malloc(cc * sizeof *S), *norm = cnn_malloc((size_t)d->K * sizeof *norm);
    if (!S || !norm) {
        free(S);
        free(norm);
        return CNN_ERR_NOMEM;
    }
    for (int g0 = 0; g0 < d->N; g0 += d->K) {
        memset(S, 0, cc * sizeof *S);
        for (int k = 0; k < d->K; k++) {
            const float *G = d->hg + (size_t)(g0 + k) * cc;
            double q = 0;
            for (size_t i = 0; i < cc; i++) q += (double)G[i] * G[i];
            norm[k] = sqrt(q);
            if (norm[k] > 0)
                for (size_t i = 0; i < cc; i++) S[i] += G[i] / norm[k];
        }
        for (int k = 0; k < d->K; k++) {
            float *G = d->hg + (size_t)(g0 + k) * cc;
            double dot = 0;
            if (norm[k] > 0)
                for (size_t i = 0; i < cc; i++) dot += S[i] * (G[i] / norm[k]);
            d->sim[g0 + k] = norm[k] > 0 ? dot - 1 : 0;
            if (!write) continue;
            /* G becomes the factor in place (the host copy is not read again) */
            double f = norm[k] > 0 ? -4.0 * d->t->div_weight / norm[k] : 0, keep = 1 + d->sim[g0 + k];
            for (size_t i = 0; i < cc; i++)
                G[i] = norm[k] > 0 ? (float)(f * (S[i] - keep * (G[i] / norm[k]))) : 0.0f;
        }
    }
    free(S);
    free(norm);
    if (!write) return CNN_OK;
    return cnn_cl_write(&s->cl, d->M, 0, (size_t)d->N * cc * sizeof(float), d->hg, "maximize: diversity seed");
}

/* cnn_seed_add: grad_i += M_i A_i. */
static int div_add(void *ctx, cl_mem grad)
{
    divctx *d = ctx;
    cnn_job *s = d->s;
    const size_t C = d->C, P = d->P, cc = C * C;
    cl_mem A = cnn_net_buffer(d->net, d->t->layer);
    for (int n = 0; n < d->N; n++)
        CNN_TRY_RET(cnn_blas_sgemm_beta(&s->cl, false, false, C, P, C, d->M, (size_t)n * cc, C, A,
                                        (size_t)n * d->numel, P, 1.0f, grad, (size_t)n * d->numel, P,
                                        d->t->layer_name));
    return CNN_OK;
}

static int write_outputs(cnn_job *s, cnn_vtap *t, const cnn_fv *f, const float *img, const double *final,
                         const double *sim, const float *curve, int n_curve, double secs)
{
    const int N = f->N, C = f->C, H = f->H, W = f->W, K = t->diversity, n_ch = N / K;
    int fac = H >= TILE_MIN ? 1 : (TILE_MIN + H - 1) / H;
    int th = H * fac, tw = W * fac;
    /* a tile per image; with diversity a row per channel */
    int cols = K > 1 ? K : t->columns ? t->columns : (int)ceil(sqrt((double)N));
    if (cols > N) cols = N;
    int rows = (N + cols - 1) / cols;
    int MW = cols * tw + (cols - 1) * GAP, MH = rows * th + (rows - 1) * GAP;
    int SW = K * W + (K - 1) * GAP; /* one channel's strip at the input's size */
    size_t tile_bytes = (size_t)H * W * C, mont_bytes = (size_t)MW * MH * C, strip_bytes = (size_t)SW * H * C;
    cnn_png_buf *pb = cnn_png_buf_new((size_t)N * tile_bytes + mont_bytes + (K > 1 ? (size_t)n_ch * strip_bytes : 0));
    if (!pb) return CNN_ERR_NOMEM;
    uint8_t *px = cnn_png_buf_data(pb), *mont = px + (size_t)N * tile_bytes, *strips = mont + mont_bytes;
    memset(mont, 255, mont_bytes);
    if (K > 1) memset(strips, 255, (size_t)n_ch * strip_bytes);
    for (int n = 0; n < N; n++) {
        uint8_t *tile = px + (size_t)n * tile_bytes;
        int r = n / cols, c0 = n % cols;
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++)
                for (int c = 0; c < C; c++) {
                    float v = img[(((size_t)n * C + c) * H + y) * W + x];
                    long q = lrintf(v * 255.0f);
                    uint8_t b = (uint8_t)(q < 0 ? 0 : q > 255 ? 255 : q);
                    tile[((size_t)y * W + x) * C + c] = b;
                    if (K > 1)
                        strips[(size_t)(n / K) * strip_bytes + ((size_t)y * SW + (size_t)(n % K) * (W + GAP) + x) * C +
                               c] = b;
                    for (int dy = 0; dy < fac; dy++)
                        for (int dx = 0; dx < fac; dx++)
                            mont[(((size_t)r * (th + GAP) + y * fac + dy) * MW + (size_t)c0 * (tw + GAP) + x * fac +
                                  dx) * C + c] = b;
                }
    }
    char rel[512], note[256], dnote[64] = "";
    if (K > 1) snprintf(dnote, sizeof dnote, "; %d images per channel (diversity)", K);
    snprintf(note, sizeof note, "%d steps, %s parameters%s%s; objective: %s%s%s", t->steps,
             t->fourier ? "Fourier" : "pixel",
             !f->decorrelate ? "" : t->colour_inputs ? ", colours decorrelated as the inputs'" : ", decorrelated colours",
             t->transforms ? ", random transforms" : "", t->sign < 0 ? "minus " : "",
             t->flat ? "the unit" : t->neuron ? "the centre position" : "the channel's mean", dnote);
    snprintf(rel, sizeof rel, "model/%s/maximize.png", t->dir);
    cnn_manifest_entry e = {.kind = "maximize", .role = "montage", .layer = (char *)t->layer_name, .channel = -1,
                            .note = note};
    int status = cnn_vctx_emit(&s->viz, rel, pb, (size_t)N * tile_bytes, MW, MH, C, &e);
    for (int i = 0; i < n_ch && status == CNN_OK; i++) {
        snprintf(rel, sizeof rel, "model/%s/maximize/c%03d.png", t->dir, cnn_vtap_channel(t, i));
        cnn_manifest_entry ce = {.kind = "maximize", .role = "channel", .layer = (char *)t->layer_name,
                                 .channel = cnn_vtap_channel(t, i), .has_stats = 1};
        double lo = final[i * K], hi = lo, sum = 0;
        for (int k = 0; k < K; k++) {
            lo = fmin(lo, final[i * K + k]);
            hi = fmax(hi, final[i * K + k]);
            sum += final[i * K + k];
        }
        ce.stats[0] = lo;
        ce.stats[1] = hi;
        ce.stats[2] = sum / K;
        status = K > 1 ? cnn_vctx_emit(&s->viz, rel, pb, (size_t)N * tile_bytes + mont_bytes +
                                       (size_t)i * strip_bytes, SW, H, C, &ce)
                       : cnn_vctx_emit(&s->viz, rel, pb, (size_t)i * tile_bytes, W, H, C, &ce);
    }
    cnn_png_buf_release(pb);
    if (status == CNN_OK && s->o.npy) {
        snprintf(rel, sizeof rel, "model/%s/maximize.npy", t->dir);
        int64_t shape[4] = {N, C, H, W}; /* with diversity: channel i's image k at i * K + k */
        status = cnn_job_write_npy(s, rel, img, shape, 4, "maximize", "tensor", t->layer_name, NULL);
    }
    if (status < 0) return status;

    cnn_json j;
    cnn_json_init(&j, true);
    cnn_json_object_begin(&j);
    cnn_json_key(&j, "layer");
    cnn_json_string(&j, t->layer_name);
    cnn_json_key(&j, "objective");
    cnn_json_string(&j, t->flat ? "unit" : t->neuron ? "neuron" : "channel");
    cnn_json_key(&j, "sign");
    cnn_json_int(&j, t->sign);
    cnn_json_key(&j, "steps");
    cnn_json_int(&j, t->steps);
    cnn_json_key(&j, "lr");
    cnn_json_number(&j, t->lr);
    cnn_json_key(&j, "size");
    cnn_json_array_begin(&j);
    cnn_json_int(&j, H);
    cnn_json_int(&j, W);
    cnn_json_array_end(&j);
    cnn_json_key(&j, "param");
    cnn_json_string(&j, t->fourier ? "fourier" : "pixel");
    cnn_json_key(&j, "decorrelate");
    cnn_json_bool(&j, f->decorrelate);
    if (f->decorrelate) {
        cnn_json_key(&j, "colour");
        cnn_json_string(&j, t->colour_inputs ? "inputs" : "imagenet");
        if (t->colour_inputs) {
            cnn_json_key(&j, "colour_pixels");
            cnn_json_number(&j, s->col_n);
        }
        cnn_json_key(&j, "colour_matrix"); /* rows R, G, B; largest column norm 1 */
        cnn_json_array_begin(&j);
        for (int r = 0; r < 3; r++) {
            cnn_json_array_begin(&j);
            for (int c = 0; c < 3; c++) cnn_json_number(&j, f->colour[r * 3 + c]);
            cnn_json_array_end(&j);
        }
        cnn_json_array_end(&j);
    }
    cnn_json_key(&j, "transforms");
    cnn_json_bool(&j, t->transforms);
    cnn_json_key(&j, "tv");
    cnn_json_number(&j, t->tv);
    cnn_json_key(&j, "l2");
    cnn_json_number(&j, t->l2);
    cnn_json_key(&j, "blur_every");
    cnn_json_int(&j, t->blur_every);
    cnn_json_key(&j, "blur_sigma");
    cnn_json_number(&j, t->blur_sigma);
    cnn_json_key(&j, "diversity");
    cnn_json_int(&j, K);
    cnn_json_key(&j, "diversity_weight");
    cnn_json_number(&j, t->div_weight);
    cnn_json_key(&j, "seed");
    cnn_json_int(&j, t->seed);
    cnn_json_key(&j, "seconds");
    cnn_json_number(&j, secs);
    cnn_json_key(&j, "curve_every");
    cnn_json_int(&j, CURVE_EVERY);
    cnn_json_key(&j, "channels");
    cnn_json_array_begin(&j);
    for (int i = 0; i < n_ch; i++) {
        int ch = cnn_vtap_channel(t, i);
        cnn_json_object_begin(&j);
        cnn_json_key(&j, "channel");
        cnn_json_int(&j, ch);
        /* value: the best of the channel's images; with diversity every
         * image's, their mean curve and mean pairwise similarity too */
        double best_v = final[i * K];
        for (int k = 1; k < K; k++) best_v = fmax(best_v, final[i * K + k]);
        cnn_json_key(&j, "value");
        cnn_json_number(&j, best_v);
        if (K > 1) {
            cnn_json_key(&j, "values");
            cnn_json_array_begin(&j);
            for (int k = 0; k < K; k++) cnn_json_number(&j, final[i * K + k]);
            cnn_json_array_end(&j);
            double ss = 0;
            for (int k = 0; k < K; k++) ss += sim[i * K + k];
            cnn_json_key(&j, "similarity");
            cnn_json_number(&j, ss / ((double)K * (K - 1)));
        }
        double best = best_example(s, t, ch);
        cnn_json_key(&j, "best_example");
        if (isnan(best)) cnn_json_null(&j);
        else cnn_json_number(&j, t->sign * best);
        cnn_json_key(&j, "curve");
        cnn_json_array_begin(&j);
        for (int p = 0; p < n_curve; p++) {
            double m = 0;
            for (int k = 0; k < K; k++) m += curve[(size_t)p * N + i * K + k];
            cnn_json_number(&j, K > 1 ? m / K : (double)curve[(size_t)p * N + i * K]);
        }
        cnn_json_array_end(&j);
        cnn_json_object_end(&j);
    }
    cnn_json_array_end(&j);
    cnn_json_object_end(&j);
    snprintf(rel, sizeof rel, "model/%s/maximize.json", t->dir);
    status = cnn_job_write_json(s, rel, &j, "maximize", "values", t->layer_name);
    cnn_json_free(&j);
    return status;
}

/* A tap at its own size (`size:`): the layers up to its own, built at
 * that size from the run's weights, with their own backward. */
typedef struct sized {
    cnn_pipeline pipe; /* the run's, shallow: its input's h and w and the layer count changed */
    cnn_graph g;
    cnn_net net;
    cnn_backward bw;
    bool g_ready, net_ready, bw_ready;
} sized;

static void sized_free(sized *z)
{
    if (z->bw_ready) cnn_backward_free(&z->bw);
    if (z->net_ready) cnn_net_free(&z->net);
    if (z->g_ready) cnn_graph_free(&z->g);
}

static int sized_create(sized *z, cnn_job *s, cnn_vtap *t, int N)
{
    z->pipe = sized_pipe(s, t);
    int status = cnn_graph_build(&z->pipe, s->l.weights.n ? &s->l.weights : NULL, &z->g);
    if (status < 0) return sized_error(status, t);
    z->g_ready = true;
    bool *keep = cnn_malloc((size_t)z->g.n * sizeof *keep);
    if (!keep) return CNN_ERR_NOMEM;
    for (int i = 0; i < z->g.n; i++) keep[i] = true;
    status = cnn_net_create(&z->net, &s->cl, &z->g, keep, N, CNN_NET_BACKWARD_FAST);
    free(keep);
    if (status < 0) return status;
    z->net_ready = true;
    CNN_TRY_RET(cnn_backward_create(&z->bw, &z->net));
    z->bw_ready = true;
    const cnn_layer *ly = &z->g.layers[t->layer];
    t->h = ly->flat ? 1 : ly->h; /* the objective's plane at this size */
    t->w = ly->flat ? 1 : ly->w;
    if (!s->o.quiet)
        cnn_logf(CNN_LOG_INFO, "maximize %s: the layers up to it at %d x %d (%s: %d x %d x %d)", t->layer_name,
                 t->img_h, t->img_w, t->layer_name, ly->c, ly->h, ly->w);
    return CNN_OK;
}

static int run_tap(cnn_job *s, cnn_vtap *t)
{
    const cnn_input_spec *in = &s->l.pipe.input;
    const int K = t->diversity, N = t->n_sel * K, H = t->img_h, W = t->img_w;
    sized z = {0};
    cnn_net *net = &s->net;
    cnn_backward *bw = &s->bw;
    if (t->own_net) {
        int st = sized_create(&z, s, t, N);
        if (st < 0) {
            sized_free(&z);
            return st;
        }
        net = &z.net;
        bw = &z.bw;
    }
    const cnn_layer *ly = &net->g->layers[t->layer];
    size_t numel = cnn_layer_numel(ly);
    float gain[3], bias[3], start[3];
    for (int c = 0; c < in->c; c++) {
        gain[c] = 255.0f * in->scale / in->std[c];
        bias[c] = -in->mean[c] / in->std[c];
        start[c] = in->mean[c] / (255.0f * in->scale); /* the normalisation's mean colour: network input 0 */
    }
    double t0 = cnn_now_ms();
    cnn_fv f;
    double colour[9];
    const double *cm = t->decorrelate && in->c == 3 ? cnn_fv_imagenet_colour : NULL;
    if (cm && t->colour_inputs) {
        if (s->col_n < 2) {
            sized_free(&z);
            return cnn_error_set(CNN_ERR_INPUT, "maximize %s: decorrelate: inputs: no input image could be read",
                                 t->layer_name);
        }
        cnn_fv_colour_from_moments(s->col_n, s->col_sum, s->col_sxx, colour);
        cm = colour;
    }
    int status = cnn_fv_create(&f, &s->cl, N, in->c, H, W, t->fourier, cm, gain, bias,
                               t->start_mean ? start : NULL, t->seed);
    if (status < 0) {
        sized_free(&z);
        return status;
    }
    divctx dv = {0};
    int n_curve = (t->steps + CURVE_EVERY - 1) / CURVE_EVERY;
    float *seed = cnn_calloc((size_t)N * numel, sizeof *seed);
    float *host = cnn_malloc((size_t)N * numel * sizeof *host);
    float *aff = cnn_malloc((size_t)6 * N * sizeof *aff);
    float *curve = cnn_malloc((size_t)n_curve * N * sizeof *curve);
    float *img = cnn_malloc((size_t)N * in->c * H * W * sizeof *img);
    double *val = cnn_malloc((size_t)N * sizeof *val);
    status = seed && host && aff && curve && img && val ? CNN_OK : CNN_ERR_NOMEM;
    if (status == CNN_OK && K > 1) status = div_create(&dv, s, net, t, N);
    /* d objective / d layer: constant over the steps */
    size_t plane = (size_t)t->h * t->w;
    for (int n = 0; n < N && status == CNN_OK; n++) {
        float *sd = seed + (size_t)n * numel + (size_t)cnn_vtap_channel(t, n / K) * plane;
        if (t->flat) sd[0] = (float)t->sign;
        else if (t->neuron) sd[(size_t)(t->h / 2) * t->w + t->w / 2] = (float)t->sign;
        else
            for (size_t i = 0; i < plane; i++) sd[i] = (float)(t->sign / (double)plane);
    }
    if (status == CNN_OK && !t->own_net && !s->bw_ready) {
        status = cnn_backward_create(&s->bw, &s->net);
        s->bw_ready = status == CNN_OK;
    }
    if (status == CNN_OK && !s->o.quiet)
        cnn_logf(CNN_LOG_INFO, "maximize %s: %d channel%s%s, %d steps", t->layer_name, t->n_sel,
                 t->n_sel == 1 ? "" : "s", K > 1 ? " x diversity" : "", t->steps);
    int k = 0;
    for (int step = 0; step < t->steps && status == CNN_OK; step++) {
        status = cnn_job_interrupted(s);
        if (status == CNN_OK) status = cnn_fv_image(&f);
        for (int n = 0; n < N; n++) cnn_fv_affine(t->seed, step, n, H, W, t->transforms, aff + 6 * n);
        if (status == CNN_OK) status = cnn_fv_input(&f, aff, net->input);
        if (status == CNN_OK) status = cnn_net_forward_range(net, 0, t->layer + 1, N);
        if (status == CNN_OK && step % CURVE_EVERY == 0) {
            status = measure(net, t, N, host, val);
            for (int n = 0; n < N; n++) curve[(size_t)k * N + n] = (float)val[n];
            k++;
        }
        if (status == CNN_OK && K > 1) status = div_grams(&dv, true);
        if (status == CNN_OK)
            status = cnn_backward_seeded_add(bw, N, t->layer, seed, K > 1 ? div_add : NULL, &dv, CNN_GRAD_PLAIN,
                                             CNN_GRAPH_INPUT);
        if (status == CNN_OK)
            status = cnn_fv_step(&f, cnn_backward_grad(bw, CNN_GRAPH_INPUT), t->tv, t->l2, t->lr);
        if (status == CNN_OK && t->blur_every && (step + 1) % t->blur_every == 0)
            status = cnn_fv_blur(&f, t->blur_sigma);
        if (status == CNN_OK && !s->o.quiet && (step + 1) % 64 == 0 && step + 1 < t->steps)
            cnn_log_progress(step + 1, t->steps, (step + 1) / ((cnn_now_ms() - t0) / 1000.0 + 1e-9), false);
    }
    /* the result, measured without a transform */
    if (status == CNN_OK) status = cnn_fv_image(&f);
    if (status == CNN_OK) status = cnn_fv_input(&f, NULL, net->input);
    if (status == CNN_OK) status = cnn_net_forward_range(net, 0, t->layer + 1, N);
    if (status == CNN_OK) status = measure(net, t, N, host, val);
    if (status == CNN_OK && K > 1) status = div_grams(&dv, false);
    if (status == CNN_OK)
        status = cnn_cl_read(&s->cl, f.img, 0, (size_t)N * in->c * H * W * sizeof *img, img,
                             "feature visualisation: images");
    double secs = (cnn_now_ms() - t0) / 1000.0;
    if (status == CNN_OK) status = write_outputs(s, t, &f, img, val, dv.sim, curve, k, secs);
    if (status == CNN_OK && !s->o.quiet)
        cnn_logf(CNN_LOG_INFO, "maximize %s: %d steps in %.1f s", t->layer_name, t->steps, secs);
    if (status < 0) cnn_error_prefix(status, "maximize %s", t->layer_name);
    cnn_fv_free(&f);
    div_free(&dv);
    sized_free(&z);
    free(seed);
    free(host);
    free(aff);
    free(curve);
    free(img);
    free(val);
    return status;
}

int cnn_maximize_run(cnn_job *s)
{
    for (int t = 0; t < s->n_taps; t++)
        if (s->taps[t].kind == CNN_TAP_MAXIMIZE) CNN_TRY_RET(run_tap(s, &s->taps[t]));
    return CNN_OK;
}
