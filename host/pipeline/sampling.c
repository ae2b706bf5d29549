/* The attribution methods with forward passes of their own (SmoothGrad,
 * Integrated Gradients, occlusion: pipeline/methods.h) and the
 * deletion/insertion curves of every map, which run after a batch's other
 * outputs because they overwrite the network's tensors. */
#include "pipeline/methods.h"
#include "core/error.h"
#include "core/log.h"
#include "core/util.h"
#include "viz/gradmap.h"
#include "viz/road.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A tap whose method runs passes of its own. */
static bool own_passes(const cnn_vtap *t) { return cnn_method_of(t->method)->own_passes != NULL; }

double cnn_method_score(const float *logits, size_t nout, int c, bool prob)
{
    if (!prob) return logits[c];
    double mx = -INFINITY, sum = 0;
    for (size_t k = 0; k < nout; k++) mx = fmax(mx, logits[k]);
    for (size_t k = 0; k < nout; k++) sum += exp((double)logits[k] - mx);
    return exp((double)logits[c] - mx) / sum;
}

/* The baseline of tap t's method for the image at xsave + x_off into
 * s->base: the input blurred, 0 in network units, or a constant pixel
 * value through the input's normalisation (black = 0). */
int cnn_method_baseline(cnn_job *s, const cnn_vtap *t, size_t x_off, const char *what)
{
    const cnn_graph *g = &s->l.graph;
    const cnn_input_spec *in = &s->l.pipe.input;
    size_t px = (size_t)cnn_job_px(s), len = (size_t)g->in_c * px;
    if (t->base_blur)
        return cnn_gm_blur(&s->cl, s->xsave, x_off, g->in_c, g->in_h, g->in_w, cnn_gm_blur_sigma(g->in_h, g->in_w),
                           s->tmp, s->base, 0, what);
    float *base = cnn_malloc(len * sizeof *base);
    if (!base) return CNN_ERR_NOMEM;
    for (int c = 0; c < g->in_c; c++)
        for (size_t p = 0; p < px; p++)
            base[c * px + p] = t->base_zero ? 0.0f : (t->base_pixel * in->scale - in->mean[c]) / in->std[c];
    int status = cnn_cl_write(&s->cl, s->base, 0, len * sizeof(float), base, what);
    free(base);
    return status;
}

/* SmoothGrad and Integrated Gradients of image b (its input saved at
 * xsave + b * len): the copies run through the network in chunks; this
 * overwrites the network's tensors, so it comes after everything else of
 * the batch. */
int cnn_method_sampling_passes(cnn_job *s, cnn_vtap *t, int b, int k, const float *logits0)
{
    const cnn_graph *g = &s->l.graph;
    cnn_cl *cl = &s->cl;
    size_t px = (size_t)cnn_job_px(s), len = (size_t)g->in_c * px;
    size_t nout = cnn_layer_numel(&g->layers[g->n - 1]);
    char what[256];
    snprintf(what, sizeof what, "input %s", cnn_gmethod_names[t->method]);
    size_t x_off = (size_t)b * len;
    float sigma = 0;
    if (t->method == CNN_GM_SMOOTHGRAD) {
        /* sigma is a fraction of the input's value range */
        float st[CNN_STATS_STRIDE];
        CNN_TRY_RET(cnn_viz_stats(&s->viz.viz, s->xsave, x_off, len, len, 1, s->camw, what));
        CNN_TRY_RET(cnn_cl_read(cl, s->camw, 0, sizeof st, st, what));
        sigma = t->sigma * (st[CNN_ST_MAX] - st[CNN_ST_MIN]);
    } else {
        CNN_TRY_RET(cnn_method_baseline(s, t, x_off, what));
    }
    float *lg = cnn_malloc((size_t)s->chunk * nout * sizeof *lg);
    int *cls = cnn_malloc((size_t)s->chunk * sizeof *cls);
    int status = lg && cls ? CNN_OK : CNN_ERR_NOMEM;
    for (int r = 0; r < (t->cls_fixed >= 0 ? 1 : t->topk) && status == CNN_OK; r++) {
        int c = cnn_method_target(s, t, b, r);
        for (int k0 = 0; k0 < t->samples && status == CNN_OK; k0 += s->chunk) {
            int m = t->samples - k0 < s->chunk ? t->samples - k0 : s->chunk;
            if ((status = cnn_job_interrupted(s)) < 0) break;
            if (t->method == CNN_GM_SMOOTHGRAD)
                status = cnn_gm_noise(cl, s->xsave, x_off, len, m, k0, sigma, 0x5eedu + (uint32_t)k, s->net.input, 0,
                                      what);
            else
                status = cnn_gm_path(cl, s->xsave, x_off, s->base, 0, len, m, k0, t->samples, s->net.input, 0, what);
            if (status == CNN_OK) status = cnn_net_forward(&s->net, m);
            if (status == CNN_OK && t->prob) status = cnn_net_read(&s->net, g->n - 1, m, lg);
            for (int j = 0; j < m; j++) cls[j] = c;
            if (status == CNN_OK) status = cnn_backward_run(&s->bw, m, cls, t->prob, lg, CNN_GRAD_PLAIN, CNN_GRAPH_INPUT);
            cl_mem din = cnn_backward_grad(&s->bw, CNN_GRAPH_INPUT);
            if (status == CNN_OK && t->method == CNN_GM_SMOOTHGRAD && t->reduce == CNN_SG_PER_COPY) {
                status = cnn_gm_chan_maxabs(cl, din, 0, m, g->in_c, (int)px, s->maps, 0, what);
                if (status == CNN_OK)
                    status = cnn_gm_sum_blocks(cl, s->maps, 0, m, px, 1.0f / (float)t->samples, s->acc, 0, k0 > 0,
                                               what);
            } else if (status == CNN_OK) {
                /* the mean over copies of g (or g^2), reduced over channels below */
                if (t->method == CNN_GM_SMOOTHGRAD && t->reduce == CNN_SG_MAGNITUDE)
                    status = cnn_gm_mul(cl, din, 0, din, 0, din, 0, (size_t)m * len, what);
                if (status == CNN_OK)
                    status =
                        cnn_gm_sum_blocks(cl, din, 0, m, len, 1.0f / (float)t->samples, s->gsum, 0, k0 > 0, what);
            }
        }
        char note[256] = "";
        if (status == CNN_OK && t->method == CNN_GM_INTEGRATED) {
            /* attribution = (x - x') * mean gradient, summed over channels;
             * completeness: its sum against score(x) - score(x') */
            CNN_CL_TRY(clEnqueueCopyBuffer(cl->queue, s->xsave, s->acc, x_off * sizeof(float), 0, len * sizeof(float),
                                           0, NULL, NULL),
                       what, done);
            status = cnn_gm_axpby(cl, s->base, 0, -1.0f, s->acc, 0, 1.0f, len, what);
            if (status == CNN_OK)
                status = cnn_gm_chan_dot(cl, s->gsum, 0, s->acc, 0, 1, g->in_c, (int)px, s->maps, 0, what);
            /* the baseline's score */
            if (status == CNN_OK)
                CNN_CL_TRY(clEnqueueCopyBuffer(cl->queue, s->base, s->net.input, 0, 0, len * sizeof(float), 0, NULL,
                                               NULL),
                           what, done);
            if (status == CNN_OK) status = cnn_net_forward(&s->net, 1);
            if (status == CNN_OK) status = cnn_net_read(&s->net, g->n - 1, 1, lg);
            float st[CNN_STATS_STRIDE];
            if (status == CNN_OK) status = cnn_viz_stats(&s->viz.viz, s->maps, 0, px, px, 1, s->camw, what);
            if (status == CNN_OK) status = cnn_cl_read(cl, s->camw, 0, sizeof st, st, what);
            if (status == CNN_OK) {
                double sum = (double)st[CNN_ST_MEAN] * st[CNN_ST_FINITE];
                double diff = cnn_method_score(logits0, nout, c, t->prob) - cnn_method_score(lg, nout, c, t->prob);
                snprintf(note, sizeof note, "completeness: attributions sum to %.6g, score difference %.6g (%.2f%%)",
                         sum, diff, fabs(diff) > 0 ? 100.0 * fabs(sum - diff) / fabs(diff) : 0.0);
            }
        } else if (status == CNN_OK && t->reduce == CNN_SG_PER_COPY) {
            CNN_CL_TRY(clEnqueueCopyBuffer(cl->queue, s->acc, s->maps, 0, 0, px * sizeof(float), 0, NULL, NULL), what,
                       done);
        } else if (status == CNN_OK) {
            status = cnn_gm_chan_maxabs(cl, s->gsum, 0, 1, g->in_c, (int)px, s->maps, 0, what);
        }
        if (status == CNN_OK)
            status = cnn_method_emit(s, t, b, k, c, s->maps, 0, s->maps, 0, g->in_h, g->in_w, note[0] ? note : NULL);
    }
done:
    free(lg);
    free(cls);
    return status;
}

/* Occlusion of image b (input at xsave + b * len): every window position
 * covered by the baseline in turn, the copies run in chunks; the map is
 * each pixel's mean score drop over the windows that cover it, for each
 * target class from the same passes. */
int cnn_method_occlusion_passes(cnn_job *s, cnn_vtap *t, int b, int k, const float *logits0)
{
    const cnn_graph *g = &s->l.graph;
    cnn_cl *cl = &s->cl;
    size_t px = (size_t)cnn_job_px(s), len = (size_t)g->in_c * px;
    size_t nout = cnn_layer_numel(&g->layers[g->n - 1]);
    const char *what = "input occlusion";
    size_t x_off = (size_t)b * len;
    CNN_TRY_RET(cnn_method_baseline(s, t, x_off, what));
    int ny = cnn_gm_positions(g->in_h, t->window, t->stride), nx = cnn_gm_positions(g->in_w, t->window, t->stride);
    int nw = ny * nx, nt = t->cls_fixed >= 0 ? 1 : t->topk;
    float *lg = cnn_malloc((size_t)s->chunk * nout * sizeof *lg);
    float *d = cnn_malloc((size_t)nt * nw * sizeof *d);
    int status = lg && d ? CNN_OK : CNN_ERR_NOMEM;
    for (int w0 = 0; w0 < nw && status == CNN_OK; w0 += s->chunk) {
        int m = nw - w0 < s->chunk ? nw - w0 : s->chunk;
        if ((status = cnn_job_interrupted(s)) < 0) break;
        status = cnn_gm_occlude(cl, s->xsave, x_off, s->base, 0, g->in_c, g->in_h, g->in_w, t->window, t->stride, m,
                                w0, s->net.input, 0, what);
        if (status == CNN_OK) status = cnn_net_forward(&s->net, m);
        if (status == CNN_OK) status = cnn_net_read(&s->net, g->n - 1, m, lg);
        for (int r = 0; r < nt && status == CNN_OK; r++) {
            int c = cnn_method_target(s, t, b, r);
            double s0 = cnn_method_score(logits0, nout, c, t->prob);
            for (int j = 0; j < m; j++)
                d[(size_t)r * nw + w0 + j] = (float)(s0 - cnn_method_score(lg + (size_t)j * nout, nout, c, t->prob));
        }
    }
    for (int r = 0; r < nt && status == CNN_OK; r++) {
        int c = cnn_method_target(s, t, b, r);
        char note[160];
        snprintf(note, sizeof note, "occlusion: %d x %d windows of %d px, stride %d, %s baseline", ny, nx, t->window,
                 t->stride, t->base_blur ? "blurred" : t->base_zero ? "zero" : "pixel-value");
        status = cnn_cl_write(cl, s->occ, 0, (size_t)nw * sizeof(float), d + (size_t)r * nw, what);
        if (status == CNN_OK)
            status = cnn_gm_occlusion_map(cl, s->occ, 0, g->in_h, g->in_w, t->window, t->stride, s->maps, 0, what);
        if (status == CNN_OK) status = cnn_method_emit(s, t, b, k, c, s->maps, 0, s->maps, 0, g->in_h, g->in_w, note);
    }
    free(lg);
    free(d);
    return status;
}

/* ROAD of a queued map (viz/road.h): for each percentile p, MoRF and LeRF
 * images with the removed pixels imputed on the host, scored in chunks;
 * each score is the target's softmax probability minus that of the
 * input, and the result (mean LeRF - mean MoRF) / 2 is pytorch-grad-cam's
 * ROADCombined with ClassifierOutputSoftmaxTarget.  The noise of a
 * percentile and order is the same for every map of every input, so that
 * maps are compared under the same perturbation.  lg: chunk x nout
 * floats. */
#define ROAD_SEED 0x70adu

static int run_road(cnn_job *s, const pending *p, float *lg)
{
    const cnn_graph *g = &s->l.graph;
    cnn_cl *cl = &s->cl;
    size_t px = (size_t)cnn_job_px(s), len = (size_t)g->in_c * px;
    size_t nout = cnn_layer_numel(&g->layers[g->n - 1]);
    const cnn_vtap *t = p->t;
    int n = 2 * t->n_road, chunk = s->chunk < n ? s->chunk : n;
    char what[200];
    snprintf(what, sizeof what, "%s:%s ROAD", t->layer_name, cnn_gmethod_names[t->method]);
    float *img = cnn_malloc(len * sizeof *img), *batch = cnn_malloc((size_t)chunk * len * sizeof *batch);
    uint8_t *keep = cnn_malloc(px);
    double *diff = cnn_malloc((size_t)n * sizeof *diff);
    int status = img && batch && keep && diff ? CNN_OK : CNN_ERR_NOMEM;
    if (status == CNN_OK) status = cnn_cl_read(cl, s->xsave, (size_t)p->b * len * sizeof(float), len * sizeof(float), img, what);
    double s0 = cnn_method_score(s->logits + (size_t)p->b * nout, nout, p->cls, true);
    /* image j: order j / n_road (0 MoRF, 1 LeRF), percentile j % n_road */
    for (int j0 = 0; j0 < n && status == CNN_OK; j0 += chunk) {
        int m = n - j0 < chunk ? n - j0 : chunk;
        if ((status = cnn_job_interrupted(s)) < 0) break;
        for (int j = 0; j < m && status == CNN_OK; j++) {
            int lerf = (j0 + j) / t->n_road, pi = (j0 + j) % t->n_road;
            long removed = cnn_road_mask(p->map, px, t->road[pi], lerf, keep);
            if (removed < 0) status = (int)removed;
            else
                status = cnn_road_impute(img, g->in_c, g->in_h, g->in_w, keep, t->road_noise,
                                         ROAD_SEED + 2u * (uint32_t)pi + (uint32_t)lerf, 0, batch + (size_t)j * len);
        }
        if (status == CNN_OK) status = cnn_cl_write(cl, s->net.input, 0, (size_t)m * len * sizeof(float), batch, what);
        if (status == CNN_OK) status = cnn_net_forward(&s->net, m);
        if (status == CNN_OK) status = cnn_net_read(&s->net, g->n - 1, m, lg);
        for (int j = 0; j < m && status == CNN_OK; j++)
            diff[j0 + j] = cnn_method_score(lg + (size_t)j * nout, nout, p->cls, true) - s0;
    }
    if (status == CNN_OK) {
        double morf = 0, lerf = 0;
        for (int k = 0; k < t->n_road; k++) {
            morf += diff[k] / t->n_road;
            lerf += diff[t->n_road + k] / t->n_road;
        }
        status = cnn_manifest_set_road(&s->manifest, p->entry, t->road, diff, diff + t->n_road, t->n_road,
                                       (lerf - morf) / 2);
    }
    free(img);
    free(batch);
    free(keep);
    free(diff);
    return status;
}

/* Deletion and insertion curves of the queued maps (RISE, Petsiuk et al.
 * 2018): at step i of n the first floor(i * px / n) pixels by rank are
 * replaced by 0 in network units (deletion) or taken from the input into
 * its blurred copy (insertion); the curve is the target's softmax
 * probability at each of the n + 1 steps, its area the trapezoid rule on
 * [0, 1]. */
static int run_curves(cnn_job *s)
{
    const cnn_graph *g = &s->l.graph;
    cnn_cl *cl = &s->cl;
    size_t px = (size_t)cnn_job_px(s), len = (size_t)g->in_c * px;
    size_t nout = cnn_layer_numel(&g->layers[g->n - 1]);
    const char *what = "deletion/insertion curves";
    float *lg = cnn_malloc((size_t)s->chunk * nout * sizeof *lg);
    int status = lg ? CNN_OK : CNN_ERR_NOMEM;
    for (int i = 0; i < s->n_pend && status == CNN_OK; i++) {
        const pending *p = &s->pend[i];
        if (p->t->n_road) status = run_road(s, p, lg);
        int n = p->t->curves;
        if (!n || status < 0) continue;
        size_t x_off = (size_t)p->b * len;
        float *curve = cnn_malloc(2 * ((size_t)n + 1) * sizeof *curve);
        if (!curve) {
            status = CNN_ERR_NOMEM;
            break;
        }
        status = cnn_cl_write(cl, s->rankbuf, 0, px * sizeof(uint32_t), p->rank, what);
        if (status == CNN_OK)
            status = cnn_gm_blur(cl, s->xsave, x_off, g->in_c, g->in_h, g->in_w, cnn_gm_blur_sigma(g->in_h, g->in_w),
                                 s->tmp, s->base, 0, what);
        double auc[2] = {0, 0};
        for (int ins = 0; ins < 2 && status == CNN_OK; ins++) {
            float *cv = curve + (size_t)ins * (n + 1);
            cl_mem a = ins ? s->xsave : s->zero, bb = ins ? s->base : s->xsave;
            size_t a_off = ins ? x_off : 0, b_off = ins ? 0 : x_off;
            for (int s0 = 0; s0 <= n && status == CNN_OK; s0 += s->chunk) {
                int m = n + 1 - s0 < s->chunk ? n + 1 - s0 : s->chunk;
                if ((status = cnn_job_interrupted(s)) < 0) break;
                status = cnn_gm_curve(cl, a, a_off, bb, b_off, s->rankbuf, g->in_c, (int)px, m, s0, n, s->net.input, 0,
                                      what);
                if (status == CNN_OK) status = cnn_net_forward(&s->net, m);
                if (status == CNN_OK) status = cnn_net_read(&s->net, g->n - 1, m, lg);
                for (int j = 0; j < m && status == CNN_OK; j++)
                    cv[s0 + j] = (float)cnn_method_score(lg + (size_t)j * nout, nout, p->cls, true);
            }
            for (int j = 0; j < n; j++) auc[ins] += 0.5 * ((double)cv[j] + cv[j + 1]) / n;
        }
        if (status == CNN_OK)
            status = cnn_manifest_set_curves(&s->manifest, p->entry, curve, curve + n + 1, n + 1, auc[0], auc[1]);
        free(curve);
    }
    for (int i = 0; i < s->n_pend; i++) {
        free(s->pend[i].rank);
        free(s->pend[i].map);
    }
    s->n_pend = 0;
    free(lg);
    return status;
}

/* The batch's nb inputs from the network input into s->xsave (save), or
 * back. */
int cnn_job_save_inputs(cnn_job *s, int nb, bool save)
{
    const cnn_graph *g = &s->l.graph;
    size_t bytes = (size_t)nb * g->in_c * cnn_job_px(s) * sizeof(float);
    cl_mem from = save ? s->net.input : s->xsave, to = save ? s->xsave : s->net.input;
    int status = CNN_OK;
    CNN_CL_TRY(clEnqueueCopyBuffer(s->cl.queue, from, to, 0, 0, bytes, 0, NULL, NULL), "saved inputs", done);
done:
    return status;
}

/* The batch's maps that run their own forward passes (SmoothGrad,
 * Integrated Gradients, occlusion), then the queued curves. */
int cnn_job_late_batch(cnn_job *s, int nb, const int *slot_of)
{
    bool any = s->n_pend > 0;
    for (int t = 0; t < s->n_taps; t++) any |= s->taps[t].kind == CNN_TAP_GRADIENT && own_passes(&s->taps[t]);
    if (!any) return CNN_OK;
    const cnn_graph *g = &s->l.graph;
    size_t nout = cnn_layer_numel(&g->layers[g->n - 1]);
    if (s->batches_run == 1 && !s->session && !s->san_step)
        /* what the long ones cost, said once, before the first input waits on them */
        for (int t = 0; t < s->n_taps; t++) {
            const cnn_vtap *vt = &s->taps[t];
            if (vt->kind != CNN_TAP_GRADIENT || !own_passes(vt)) continue;
            const cnn_method *m = cnn_method_of(vt->method);
            int copies = m->copies ? m->copies(vt, g->in_h, g->in_w) : 1;
            if (copies >= 256)
                cnn_logf(CNN_LOG_INFO, "%s:%s: %d %s per input (batches of %d)", vt->layer_name,
                         cnn_gmethod_names[vt->method], copies,
                         m->backward ? "forward+backward passes" : "forward passes", s->chunk);
        }
    int status = cnn_job_save_inputs(s, nb, true);
    for (int b = 0; b < nb && status == CNN_OK; b++)
        for (int t = 0; t < s->n_taps && status == CNN_OK; t++) {
            cnn_vtap *vt = &s->taps[t];
            if (vt->kind != CNN_TAP_GRADIENT || !own_passes(vt)) continue;
            status = cnn_method_of(vt->method)->own_passes(s, vt, b, slot_of[b], s->logits + (size_t)b * nout);
        }
    if (status == CNN_OK) status = run_curves(s);
    /* the network input as it was (a later --repeat times it) */
    if (status == CNN_OK) status = cnn_job_save_inputs(s, nb, false);
    return status;
}

/* --repeat, the methods with their own passes: one timed run each of
 * image 0 (after the single-pass timings, so every kernel is built), the
 * map computed, nothing drawn, no curves. */
int cnn_job_repeat_late(cnn_job *s, int nb)
{
    const cnn_graph *g = &s->l.graph;
    int status = cnn_job_save_inputs(s, nb, true);
    if (status < 0) return status;
    s->timing = true;
    for (int ti = 0; ti < s->n_taps && status == CNN_OK; ti++) {
        cnn_vtap *vt = &s->taps[ti];
        if (vt->kind != CNN_TAP_GRADIENT || !own_passes(vt)) continue;
        const cnn_method *m = cnn_method_of(vt->method);
        int passes = m->copies ? m->copies(vt, g->in_h, g->in_w) : 1;
        bool with_backward = m->backward;
        double t0 = cnn_now_ms();
        status = m->own_passes(s, vt, 0, 0, s->logits);
        cl_int err = status == CNN_OK ? clFinish(s->cl.queue) : CL_SUCCESS;
        if (err != CL_SUCCESS)
            status = cnn_error_set(CNN_ERR_DEVICE, "clFinish failed: %s (%s)", cnn_cl_error_name(err),
                                   cnn_gmethod_names[vt->method]);
        double ms = cnn_now_ms() - t0;
        if (status == CNN_OK)
            cnn_logf(CNN_LOG_RESULT, "gradient %s:%s: one run %.2f ms (%d %s%s in batches of up to %d, %.2f ms per copy)",
                     vt->layer_name, cnn_gmethod_names[vt->method], ms, passes,
                     with_backward ? "forward+backward pass" : "forward pass", passes == 1 ? "" : "es", s->chunk,
                     ms / passes);
    }
    s->timing = false;
    return status;
}
