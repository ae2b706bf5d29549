/* DeepDream (show: dream; Mordvintsev, Olah and Tyka 2015): each input is
 * changed by gradient ascent on 0.5 * mean(A^2) of a layer (of its chosen
 * channels with `channels:`), over octaves, with a random shift per step.
 *
 * The image v lives on the host in [0, 1] per channel.  Octave o of O has
 * the input's size divided by octave_scale^(O - 1 - o); its base is the
 * input resized to it (bilinear, half-pixel centres, as torch's
 * interpolate with align_corners=False), and the detail dreamt at the octave
 * below is resized up and added.  The network has one input size: an
 * octave smaller than it runs centred on a canvas of the normalisation's
 * mean colour (network input 0, what a first convolution's zero padding
 * reads), so its features see the image at that scale.  Each step shifts
 * the octave's image cyclically by (dy, dx), uniform in [-jitter, jitter]
 * (Philox of the seed, the step counted over all octaves, and the image),
 * runs forward to the layer and backward from it seeded with A (d / dA of
 * 0.5 * sum A^2; the mean's constant factor goes with the normalisation),
 * takes the gradient back to pixels (shifted back, times d input / d v),
 * and adds lr / 255 * g / mean|g| (the mean over the image's pixels and
 * channels), clipped to [0, 1].
 *
 * Files per input: <stem>/<layer>/dream.png, dream.json (the settings,
 * each octave's size, every step's shift and objective under it, the
 * objective of the input and of the result with no shift), and dream.npy
 * ([C, H, W] in [0, 1]) with --npy. */
#include "pipeline/job_impl.h"
#include "core/error.h"
#include "core/log.h"
#include "core/util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { MIN_SIDE = 8 };

/* dst [C][h2][w2] from src [C][h][w], bilinear with half-pixel centres
 * (source = (d + 0.5) * h / h2 - 0.5, clamped at 0; torch's formula). */
static void resize(const float *src, int C, int h, int w, float *dst, int h2, int w2)
{
    double sy = (double)h / h2, sx = (double)w / w2;
    for (int c = 0; c < C; c++)
        for (int y = 0; y < h2; y++) {
            double fy = (y + 0.5) * sy - 0.5;
            if (fy < 0) fy = 0;
            int y0 = (int)fy, y1 = y0 + (y0 < h - 1);
            double ly = fy - y0;
            for (int x = 0; x < w2; x++) {
                double fx = (x + 0.5) * sx - 0.5;
                if (fx < 0) fx = 0;
                int x0 = (int)fx, x1 = x0 + (x0 < w - 1);
                double lx = fx - x0;
                const float *p = src + (size_t)c * h * w;
                double v = (1 - ly) * ((1 - lx) * p[(size_t)y0 * w + x0] + lx * p[(size_t)y0 * w + x1]) +
                           ly * ((1 - lx) * p[(size_t)y1 * w + x0] + lx * p[(size_t)y1 * w + x1]);
                dst[((size_t)c * h2 + y) * w2 + x] = (float)v;
            }
        }
}

static int wrap(int i, int n) { return ((i % n) + n) % n; }

typedef struct dream {
    cnn_job *s;
    const cnn_vtap *t;
    int nb, C, H, W;
    size_t numel;               /* the layer's elements per image */
    float gain[3], bias[3];     /* network input = gain * v + bias */
    float *canvas, *grad, *act; /* [nb] network inputs, their gradients, the layer's outputs */
} dream;

/* The batch's images v[n] ([C][h][w]) shifted by sh[n] onto the canvas and
 * into the network input, forward to the layer; obj[n]: 0.5 mean(A^2). */
static int forward(dream *d, float *const *v, int h, int w, const int *sh, double *obj)
{
    cnn_job *s = d->s;
    const cnn_vtap *t = d->t;
    const int C = d->C, H = d->H, W = d->W, top = (H - h) / 2, left = (W - w) / 2;
    size_t in_numel = (size_t)C * H * W;
    for (int n = 0; n < d->nb; n++) {
        float *cv = d->canvas + (size_t)n * in_numel;
        memset(cv, 0, in_numel * sizeof *cv);
        for (int c = 0; c < C; c++)
            for (int y = 0; y < h; y++)
                for (int x = 0; x < w; x++)
                    cv[((size_t)c * H + top + y) * W + left + x] =
                        d->gain[c] * v[n][((size_t)c * h + wrap(y - sh[2 * n], h)) * w + wrap(x - sh[2 * n + 1], w)] +
                        d->bias[c];
    }
    CNN_TRY_RET(cnn_cl_write(&s->cl, s->net.input, 0, (size_t)d->nb * in_numel * sizeof(float), d->canvas,
                             "dream: network input"));
    CNN_TRY_RET(cnn_net_forward_range(&s->net, 0, t->layer + 1, d->nb));
    CNN_TRY_RET(cnn_net_read(&s->net, t->layer, d->nb, d->act));
    size_t plane = (size_t)t->h * t->w;
    int nch = t->sel ? t->n_sel : t->n_maps;
    for (int n = 0; n < d->nb; n++) {
        float *a = d->act + (size_t)n * d->numel;
        /* the seed: A on the channels of the objective, 0 elsewhere */
        double sum = 0;
        if (t->sel) {
            float *keep = d->grad; /* scratch: at least numel floats */
            memset(keep, 0, d->numel * sizeof *keep);
            for (int i = 0; i < t->n_sel; i++)
                memcpy(keep + (size_t)t->sel[i] * plane, a + (size_t)t->sel[i] * plane, plane * sizeof *keep);
            memcpy(a, keep, d->numel * sizeof *a);
        }
        for (size_t i = 0; i < d->numel; i++) sum += (double)a[i] * a[i];
        obj[n] = 0.5 * sum / ((double)nch * plane);
    }
    return CNN_OK;
}

/* Backward from the layer seeded with the (masked) activations; g[n]
 * ([C][h][w]) gets d objective / d v, shifted back. */
static int backward(dream *d, float *const *g, int h, int w, const int *sh)
{
    cnn_job *s = d->s;
    const int C = d->C, H = d->H, W = d->W, top = (H - h) / 2, left = (W - w) / 2;
    size_t in_numel = (size_t)C * H * W;
    CNN_TRY_RET(cnn_backward_seeded(&s->bw, d->nb, d->t->layer, d->act, CNN_GRAD_PLAIN, CNN_GRAPH_INPUT));
    CNN_TRY_RET(cnn_cl_read(&s->cl, cnn_backward_grad(&s->bw, CNN_GRAPH_INPUT), 0,
                            (size_t)d->nb * in_numel * sizeof(float), d->grad, "dream: input gradient"));
    for (int n = 0; n < d->nb; n++) {
        const float *gv = d->grad + (size_t)n * in_numel;
        for (int c = 0; c < C; c++)
            for (int y = 0; y < h; y++)
                for (int x = 0; x < w; x++)
                    g[n][((size_t)c * h + wrap(y - sh[2 * n], h)) * w + wrap(x - sh[2 * n + 1], w)] =
                        gv[((size_t)c * H + top + y) * W + left + x] * d->gain[c];
    }
    return CNN_OK;
}

static int write_outputs(dream *d, int n, int k, const float *v, const int (*size)[2], int n_oct, const int *shifts,
                         const float *curve, int n_steps, double start, double end)
{
    cnn_job *s = d->s;
    const cnn_vtap *t = d->t;
    const int C = d->C, H = d->H, W = d->W;
    const char *stem = s->stems[k], *path = s->inputs.paths[k];
    char rel[512], note[200];
    cnn_png_buf *pb = cnn_png_buf_new((size_t)C * H * W);
    if (!pb) return CNN_ERR_NOMEM;
    uint8_t *px = cnn_png_buf_data(pb);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            for (int c = 0; c < C; c++) {
                long q = lrintf(v[((size_t)c * H + y) * W + x] * 255.0f);
                px[((size_t)y * W + x) * C + c] = (uint8_t)(q < 0 ? 0 : q > 255 ? 255 : q);
            }
    snprintf(note, sizeof note, "%d octave%s x %d steps; 0.5 mean(A^2) %.4g -> %.4g", n_oct, n_oct == 1 ? "" : "s",
             t->steps, start, end);
    snprintf(rel, sizeof rel, "%s/%s/dream.png", stem, t->dir);
    cnn_manifest_entry e = {.kind = "dream", .role = "image", .layer = (char *)t->layer_name, .input = (char *)path,
                            .channel = -1, .note = note};
    int status = cnn_vctx_emit(&s->viz, rel, pb, 0, W, H, C, &e);
    cnn_png_buf_release(pb);
    if (status == CNN_OK && s->o.npy) {
        snprintf(rel, sizeof rel, "%s/%s/dream.npy", stem, t->dir);
        int64_t shape[3] = {C, H, W};
        status = cnn_job_write_npy(s, rel, v, shape, 3, "dream", "tensor", t->layer_name, path);
    }
    if (status < 0) return status;

    cnn_json j;
    cnn_json_init(&j, true);
    cnn_json_object_begin(&j);
    cnn_json_key(&j, "layer");
    cnn_json_string(&j, t->layer_name);
    cnn_json_key(&j, "input");
    cnn_json_string(&j, path);
    cnn_json_key(&j, "objective");
    cnn_json_string(&j, "0.5 mean(A^2)");
    cnn_json_key(&j, "channels");
    if (t->sel) {
        cnn_json_array_begin(&j);
        for (int i = 0; i < t->n_sel; i++) cnn_json_int(&j, t->sel[i]);
        cnn_json_array_end(&j);
    } else {
        cnn_json_null(&j);
    }
    cnn_json_key(&j, "steps");
    cnn_json_int(&j, t->steps);
    cnn_json_key(&j, "lr");
    cnn_json_number(&j, t->lr);
    cnn_json_key(&j, "octave_scale");
    cnn_json_number(&j, round((double)t->octave_scale * 1e6) / 1e6);
    cnn_json_key(&j, "jitter");
    cnn_json_int(&j, t->jitter);
    cnn_json_key(&j, "seed");
    cnn_json_int(&j, t->seed);
    cnn_json_key(&j, "octaves");
    cnn_json_array_begin(&j);
    for (int o = 0; o < n_oct; o++) {
        cnn_json_array_begin(&j);
        cnn_json_int(&j, size[o][0]);
        cnn_json_int(&j, size[o][1]);
        cnn_json_array_end(&j);
    }
    cnn_json_array_end(&j);
    cnn_json_key(&j, "shifts");
    cnn_json_array_begin(&j);
    for (int i = 0; i < n_steps; i++) {
        cnn_json_array_begin(&j);
        cnn_json_int(&j, shifts[((size_t)i * d->nb + n) * 2]);
        cnn_json_int(&j, shifts[((size_t)i * d->nb + n) * 2 + 1]);
        cnn_json_array_end(&j);
    }
    cnn_json_array_end(&j);
    cnn_json_key(&j, "curve");
    cnn_json_array_begin(&j);
    for (int i = 0; i < n_steps; i++) cnn_json_number(&j, curve[(size_t)i * d->nb + n]);
    cnn_json_array_end(&j);
    cnn_json_key(&j, "start");
    cnn_json_number(&j, start);
    cnn_json_key(&j, "end");
    cnn_json_number(&j, end);
    cnn_json_object_end(&j);
    snprintf(rel, sizeof rel, "%s/%s/dream.json", stem, t->dir);
    status = cnn_job_write_json_of(s, rel, &j, "dream", "values", t->layer_name, path);
    cnn_json_free(&j);
    return status;
}

static int run_tap(cnn_job *s, const cnn_vtap *t, int nb, const int *slot_of)
{
    const cnn_input_spec *in = &s->l.pipe.input;
    const int C = in->c, H = in->h, W = in->w;
    size_t in_numel = (size_t)C * H * W;
    dream d = {.s = s, .t = t, .nb = nb, .C = C, .H = H, .W = W,
               .numel = cnn_layer_numel(&s->l.graph.layers[t->layer])};
    for (int c = 0; c < C; c++) {
        d.gain[c] = 255.0f * in->scale / in->std[c];
        d.bias[c] = -in->mean[c] / in->std[c];
    }
    /* the octaves that keep at least MIN_SIDE pixels a side */
    int size[8][2], n_oct = 0;
    for (int o = 0; o < t->octaves; o++) {
        double f = pow(t->octave_scale, t->octaves - 1 - o);
        int h = (int)lrint(H / f), w = (int)lrint(W / f);
        if (h >= MIN_SIDE && w >= MIN_SIDE) {
            size[n_oct][0] = h;
            size[n_oct][1] = w;
            n_oct++;
        }
    }
    if (n_oct == 0) {
        size[0][0] = H;
        size[0][1] = W;
        n_oct = 1;
    }
    int n_steps = n_oct * t->steps;
    size_t big = in_numel > d.numel ? in_numel : d.numel;
    float *v = cnn_malloc((size_t)nb * in_numel * sizeof *v), *base = cnn_malloc((size_t)nb * in_numel * sizeof *base);
    float *det = cnn_malloc((size_t)nb * in_numel * sizeof *det), *g = cnn_malloc((size_t)nb * in_numel * sizeof *g);
    float *orig = cnn_malloc((size_t)nb * in_numel * sizeof *orig);
    d.canvas = cnn_malloc((size_t)nb * in_numel * sizeof *d.canvas);
    d.grad = cnn_malloc((size_t)nb * big * sizeof *d.grad);
    d.act = cnn_malloc((size_t)nb * d.numel * sizeof *d.act);
    int *shifts = cnn_calloc((size_t)n_steps * nb * 2 + 2, sizeof *shifts);
    float *curve = cnn_malloc(((size_t)n_steps * nb + 1) * sizeof *curve);
    double *obj = cnn_malloc((size_t)nb * sizeof *obj), *start = cnn_malloc((size_t)nb * sizeof *start);
    float **vp = cnn_malloc((size_t)nb * sizeof *vp), **gp = cnn_malloc((size_t)nb * sizeof *gp);
    int *zero = cnn_calloc((size_t)nb * 2, sizeof *zero);
    int status = v && base && det && g && orig && d.canvas && d.grad && d.act && shifts && curve && obj && start &&
                         vp && gp && zero
                     ? CNN_OK
                     : CNN_ERR_NOMEM;
    if (status == CNN_OK && !s->bw_ready) {
        status = cnn_backward_create(&s->bw, &s->net);
        s->bw_ready = status == CNN_OK;
    }
    /* the inputs as v, from the network input the batch was loaded into
     * (each one again: the taps before may have left other data there) */
    for (int n = 0; n < nb && status == CNN_OK; n++) status = cnn_job_reload_input(s, slot_of[n], n);
    if (status == CNN_OK)
        status = cnn_cl_read(&s->cl, s->net.input, 0, (size_t)nb * in_numel * sizeof(float), orig,
                             "dream: network input");
    for (int n = 0; n < nb && status == CNN_OK; n++)
        for (int c = 0; c < C; c++)
            for (size_t i = 0; i < (size_t)H * W; i++) {
                float *p = orig + (size_t)n * in_numel + (size_t)c * H * W + i;
                *p = (*p - d.bias[c]) / d.gain[c];
            }
    for (int n = 0; n < nb; n++) {
        if (vp) vp[n] = v + (size_t)n * in_numel;
        if (gp) gp[n] = g + (size_t)n * in_numel;
    }
    if (status == CNN_OK) {
        for (int n = 0; n < nb; n++) vp[n] = orig + (size_t)n * in_numel;
        status = forward(&d, vp, H, W, zero, start);
        for (int n = 0; n < nb; n++) vp[n] = v + (size_t)n * in_numel;
    }
    double t0 = cnn_now_ms();
    int step = 0;
    for (int o = 0; o < n_oct && status == CNN_OK; o++) {
        int h = size[o][0], w = size[o][1];
        size_t on = (size_t)C * h * w;
        for (int n = 0; n < nb; n++) {
            float *bn = base + (size_t)n * in_numel, *dn = det + (size_t)n * in_numel;
            resize(orig + (size_t)n * in_numel, C, H, W, bn, h, w);
            if (o == 0) {
                memset(dn, 0, on * sizeof *dn);
            } else {
                float *tmp = g + (size_t)n * in_numel; /* scratch until the step's gradient */
                resize(dn, C, size[o - 1][0], size[o - 1][1], tmp, h, w);
                memcpy(dn, tmp, on * sizeof *dn);
            }
            for (size_t i = 0; i < on; i++) vp[n][i] = bn[i] + dn[i];
        }
        for (int it = 0; it < t->steps && status == CNN_OK; it++, step++) {
            status = cnn_job_interrupted(s);
            int *sh = shifts + (size_t)step * nb * 2;
            for (int n = 0; n < nb; n++) {
                uint32_t r[2];
                cnn_philox2x32((uint32_t)step, (uint32_t)n, t->seed ^ 0x64726561u, r);
                int span = 2 * t->jitter + 1;
                sh[2 * n] = (int)(r[0] % (uint32_t)span) - t->jitter;
                sh[2 * n + 1] = (int)(r[1] % (uint32_t)span) - t->jitter;
            }
            if (status == CNN_OK) status = forward(&d, vp, h, w, sh, obj);
            for (int n = 0; n < nb; n++) curve[(size_t)step * nb + n] = (float)obj[n];
            if (status == CNN_OK) status = backward(&d, gp, h, w, sh);
            for (int n = 0; n < nb && status == CNN_OK; n++) {
                double m = 0;
                for (size_t i = 0; i < on; i++) m += fabs((double)gp[n][i]);
                m /= (double)on;
                float k = (float)(t->lr / 255.0 / (m + 1e-8));
                for (size_t i = 0; i < on; i++) {
                    float x = vp[n][i] + k * gp[n][i];
                    vp[n][i] = x < 0 ? 0 : x > 1 ? 1 : x;
                }
            }
        }
        for (int n = 0; n < nb; n++) {
            float *bn = base + (size_t)n * in_numel, *dn = det + (size_t)n * in_numel;
            for (size_t i = 0; i < on; i++) dn[i] = vp[n][i] - bn[i];
        }
    }
    /* the result (the last octave has the input's size), unshifted */
    if (status == CNN_OK) status = forward(&d, vp, H, W, zero, obj);
    if (status == CNN_OK && !s->o.quiet)
        cnn_logf(CNN_LOG_INFO, "dream %s: %d input%s, %d octave%s x %d steps in %.1f s", t->layer_name, nb,
                 nb == 1 ? "" : "s", n_oct, n_oct == 1 ? "" : "s", t->steps, (cnn_now_ms() - t0) / 1000.0);
    for (int n = 0; n < nb && status == CNN_OK; n++)
        status = write_outputs(&d, n, slot_of[n], vp[n], (const int(*)[2])size, n_oct, shifts, curve, n_steps,
                               start[n], obj[n]);
    if (status < 0) cnn_error_prefix(status, "dream %s", t->layer_name);
    free(v);
    free(base);
    free(det);
    free(g);
    free(orig);
    free(d.canvas);
    free(d.grad);
    free(d.act);
    free(shifts);
    free(curve);
    free(obj);
    free(start);
    free(vp);
    free(gp);
    free(zero);
    return status;
}

int cnn_dream_batch(cnn_job *s, int nb, const int *slot_of)
{
    for (int t = 0; t < s->n_taps; t++)
        if (s->taps[t].kind == CNN_TAP_DREAM) CNN_TRY_RET(run_tap(s, &s->taps[t], nb, slot_of));
    return CNN_OK;
}
