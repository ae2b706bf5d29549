/* The attribution methods whose maps come from shared backward passes, the
 * table of all methods (pipeline/methods.h), and the scheduling of a
 * batch's shared passes.  The methods with passes of their own and the
 * deletion/insertion curves are in sampling.c. */
#include "pipeline/methods.h"
#include "core/error.h"
#include "core/log.h"
#include "core/util.h"
#include "viz/gradmap.h"
#include "viz/vizops.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------------- */
/* Buffers                                                                */

/* Buffers of the gradient taps: the backward pass, the 8-bit inputs for
 * overlays, map scratch.  SmoothGrad and Integrated Gradients run their
 * copies in chunks of up to `chunk` images through the same network. */
int cnn_job_setup_gradients(cnn_job *s, int batch)
{
    const cnn_graph *g = &s->l.graph;
    cnn_cl *cl = &s->cl;
    if (s->gradients) {
        CNN_TRY_RET(cnn_backward_create(&s->bw, &s->net));
        s->bw_ready = true;
    }
    size_t px = (size_t)cnn_job_px(s), len = (size_t)g->in_c * px;
    size_t n_win = 1;
    for (int t = 0; t < s->n_taps; t++)
        if (s->taps[t].kind == CNN_TAP_GRADIENT && s->taps[t].method == CNN_GM_OCCLUSION) {
            const cnn_vtap *v = &s->taps[t];
            size_t nw = (size_t)cnn_gm_positions(g->in_h, v->window, v->stride) *
                        (size_t)cnn_gm_positions(g->in_w, v->window, v->stride);
            if (nw > n_win) n_win = nw;
        }
    CNN_TRY_RET(cnn_cl_buffer(cl, len * sizeof(float), &s->tmp, "blur scratch"));
    CNN_TRY_RET(cnn_cl_buffer(cl, len * sizeof(float), &s->zero, "zero baseline"));
    CNN_TRY_RET(cnn_grad_zero(cl, s->zero, 0, len, "zero baseline"));
    CNN_TRY_RET(cnn_cl_buffer(cl, n_win * sizeof(float), &s->occ, "occlusion scores"));
    s->occ_cap = n_win;
    CNN_TRY_RET(cnn_cl_buffer(cl, px * sizeof(cl_uint), &s->rankbuf, "pixel ranks"));
    int nb = s->net.plan.max_batch;
    size_t maxplane = 1, maxc = 1, maxnumel = len;
    /* a session's maps may be asked of any layer; FullGrad reads every one */
    bool all = s->session;
    for (int t = 0; t < s->n_taps; t++)
        all |= s->taps[t].kind == CNN_TAP_GRADIENT && s->taps[t].method == CNN_GM_FULLGRAD;
    for (int t = 0; t < (all ? g->n : s->n_taps); t++) {
        const cnn_vtap *v = all ? NULL : &s->taps[t];
        if (v && (v->kind != CNN_TAP_GRADIENT || v->layer < 0)) continue;
        /* the tap's layer, or each layer it fuses */
        for (int i = 0; i < (v && v->n_fuse ? v->n_fuse : 1); i++) {
            const cnn_layer *ly = &g->layers[!v ? t : v->n_fuse ? v->fuse[i] : v->layer];
            if ((size_t)ly->h * ly->w > maxplane) maxplane = (size_t)ly->h * ly->w;
            if ((size_t)ly->c > maxc) maxc = (size_t)ly->c;
            if (cnn_layer_numel(ly) > maxnumel) maxnumel = cnn_layer_numel(ly);
        }
    }
    CNN_TRY_RET(cnn_cl_buffer(cl, maxnumel * sizeof(float), &s->acts, "layer tensor"));
    CNN_TRY_RET(cnn_cl_buffer(cl, 10 * px * sizeof(float), &s->tsum, "per-class sums"));
    CNN_TRY_RET(cnn_cl_buffer(cl, px * sizeof(cl_int), &s->segbuf, "superpixels"));
    size_t cells = 7; /* the session's default; a run's largest RISE grid */
    for (int t = 0; t < s->n_taps; t++)
        if (s->taps[t].kind == CNN_TAP_GRADIENT && s->taps[t].method == CNN_GM_RISE && (size_t)s->taps[t].cells > cells)
            cells = (size_t)s->taps[t].cells;
    CNN_TRY_RET(cnn_cl_buffer(cl, (size_t)nb * (cells * cells + 2) * sizeof(float), &s->rgrid, "RISE grids"));
    s->rgrid_cells = (int)cells;
    CNN_TRY_RET(cnn_cl_buffer(cl, (size_t)nb * CNN_MAX_SEGMENTS * sizeof(float), &s->zbuf, "superpixel samples"));
    size_t nst = (size_t)nb > maxc ? (size_t)nb : maxc;
    if ((size_t)g->in_c > nst) nst = (size_t)g->in_c;
    CNN_TRY_RET(cnn_cl_buffer(cl, nst * CNN_STATS_STRIDE * sizeof(float), &s->mstats, "map statistics"));
    s->img8 = cnn_calloc((size_t)batch, sizeof *s->img8);
    s->n_img8 = batch;
    s->rank = cnn_calloc((size_t)nb * 10, sizeof *s->rank);
    if (!s->img8 || !s->rank) return CNN_ERR_NOMEM;
    for (int b = 0; b < batch; b++) CNN_TRY_RET(cnn_cl_buffer(cl, len, &s->img8[b], "input image"));
    CNN_TRY_RET(cnn_cl_buffer(cl, (size_t)nb * px * sizeof(float), &s->maps, "gradient maps"));
    CNN_TRY_RET(cnn_cl_buffer(cl, (size_t)nb * maxplane * sizeof(float), &s->cams, "class activation maps"));
    size_t nw = (size_t)nb * maxc < CNN_STATS_STRIDE ? CNN_STATS_STRIDE : (size_t)nb * maxc; /* also stats */
    CNN_TRY_RET(cnn_cl_buffer(cl, nw * sizeof(float), &s->camw, "class activation weights"));
    CNN_TRY_RET(cnn_cl_buffer(cl, (size_t)nb * len * sizeof(float), &s->xsave, "saved inputs"));
    CNN_TRY_RET(cnn_cl_buffer(cl, len * sizeof(float), &s->acc, "map sums"));
    CNN_TRY_RET(cnn_cl_buffer(cl, len * sizeof(float), &s->gsum, "gradient sums"));
    CNN_TRY_RET(cnn_cl_buffer(cl, len * sizeof(float), &s->base, "baseline"));
    for (int t = 0; t < s->n_taps; t++)
        if (s->taps[t].kind == CNN_TAP_GRADIENT && s->taps[t].method == CNN_GM_GUIDED_GRADCAM)
            CNN_TRY_RET(cnn_cl_buffer(cl, (size_t)nb * px * sizeof(float), &s->taps[t].cam, "guided Grad-CAM"));
    s->chunk = nb;
    return CNN_OK;
}

void cnn_job_free_gradients(cnn_job *s)
{
    if (s->bw_ready) cnn_backward_free(&s->bw);
    if (s->img8)
        for (int b = 0; b < s->n_img8; b++)
            if (s->img8[b]) clReleaseMemObject(s->img8[b]);
    free(s->img8);
    cl_mem *all[] = {&s->maps, &s->cams, &s->camw, &s->xsave, &s->acc, &s->gsum, &s->base,
                     &s->tmp,  &s->zero, &s->occ,  &s->rankbuf, &s->acts, &s->mstats, &s->tsum, &s->segbuf, &s->zbuf, &s->rgrid};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        if (*all[i]) clReleaseMemObject(*all[i]);
    for (int t = 0; t < s->n_taps; t++)
        if (s->taps[t].cam) clReleaseMemObject(s->taps[t].cam);
    free(s->rank);
    for (int i = 0; i < s->n_pend; i++) {
        free(s->pend[i].rank);
        free(s->pend[i].map);
    }
    free(s->pend);
}

int cnn_job_batch_copies(const cnn_job *s)
{
    int most = 0;
    for (int t = 0; t < s->n_taps; t++) {
        const cnn_vtap *v = &s->taps[t];
        if (v->kind != CNN_TAP_GRADIENT) continue;
        const cnn_method *m = cnn_method_of(v->method);
        int want = m->copies ? m->copies(v, s->l.graph.in_h, s->l.graph.in_w) : 0;
        if (v->curves && v->curves + 1 > want) want = v->curves + 1;
        if (v->n_road && 2 * v->n_road > want) want = 2 * v->n_road;
        if (want > most) most = want;
    }
    return most;
}

/* ---------------------------------------------------------------------- */
/* Emitting a map, and queueing its curves                               */

typedef struct ranked {
    float v;
    uint32_t i;
} ranked;

static int cmp_ranked(const void *pa, const void *pb)
{
    const ranked *a = pa, *b = pb;
    bool na = isnan(a->v), nb = isnan(b->v); /* NaN last */
    if (na != nb) return na ? 1 : -1;
    if (!na && a->v != b->v) return a->v > b->v ? -1 : 1;
    return (a->i > b->i) - (a->i < b->i);
}

/* Queues curves and ROAD for the map just drawn by tap t for image b (h x
 * w floats at map + off on the device): for the curves its pixels ranked
 * by value, largest first, ties by position; for ROAD the map. */
static int queue_curves(cnn_job *s, cnn_vtap *t, int b, int cls, cl_mem map, size_t off)
{
    if ((!t->curves && !t->n_road) || s->timing || t->entry < 0) return CNN_OK;
    size_t px = (size_t)cnn_job_px(s);
    float *v = cnn_malloc(px * sizeof *v);
    ranked *r = t->curves ? cnn_malloc(px * sizeof *r) : NULL;
    uint32_t *rank = t->curves ? cnn_malloc(px * sizeof *rank) : NULL;
    int status = v && (!t->curves || (r && rank)) ? CNN_OK : CNN_ERR_NOMEM;
    if (status == CNN_OK) status = cnn_cl_read(&s->cl, map, off * sizeof(float), px * sizeof(float), v, "curves");
    if (status == CNN_OK && s->n_pend == s->cap_pend) {
        int cap = s->cap_pend ? 2 * s->cap_pend : 16;
        pending *p = cnn_realloc(s->pend, (size_t)cap * sizeof *p);
        if (p) {
            s->pend = p;
            s->cap_pend = cap;
        } else {
            status = CNN_ERR_NOMEM;
        }
    }
    if (status == CNN_OK) {
        if (t->curves) {
            for (size_t i = 0; i < px; i++) r[i] = (ranked){v[i], (uint32_t)i};
            qsort(r, px, sizeof *r, cmp_ranked);
            for (size_t i = 0; i < px; i++) rank[r[i].i] = (uint32_t)i;
        }
        s->pend[s->n_pend++] =
            (pending){.t = t, .b = b, .cls = cls, .entry = t->entry, .rank = rank, .map = t->n_road ? v : NULL};
        rank = NULL;
        if (t->n_road) v = NULL;
    }
    free(v);
    free(r);
    free(rank);
    return status;
}

int cnn_method_emit(cnn_job *s, cnn_vtap *t, int b, int k, int cls, cl_mem map, size_t off, cl_mem raw,
                    size_t raw_off, int raw_h, int raw_w, const char *note)
{
    if (s->san_step) return cnn_sanity_map(s, t, map, off); /* a --sanity step: compared, not drawn */
    if (s->timing) return CNN_OK;
    const cnn_graph *g = &s->l.graph;
    if (s->session) {
        /* a library call: the map to the caller, nothing drawn */
        cl_mem src = s->capture_input ? map : raw;
        size_t src_off = s->capture_input ? off : raw_off;
        int h = s->capture_input ? g->in_h : raw_h, w = s->capture_input ? g->in_w : raw_w;
        s->capture_h = h;
        s->capture_w = w;
        (void)k;
        (void)cls;
        (void)note;
        return cnn_cl_read(&s->cl, src, src_off * sizeof(float), (size_t)h * w * sizeof(float),
                           s->capture + (size_t)b * h * w, t->layer_name);
    }
    CNN_TRY_RET(cnn_vtap_map(&s->viz, t, map, off, g->in_h, g->in_w, s->img8[b], g->in_c, cls, s->inputs.paths[k],
                             s->stems[k], s->o.npy, raw, raw_off, raw_h, raw_w, note));
    if (s->n_san_layer) CNN_TRY_RET(cnn_sanity_map(s, t, map, off));
    return queue_curves(s, t, b, cls, map, off);
}

/* ---------------------------------------------------------------------- */
/* The shared-pass methods                                               */

static cnn_grad_mode plain_mode(cnn_gmethod m)
{
    return m == CNN_GM_GUIDED ? CNN_GRAD_GUIDED : m == CNN_GM_DECONVNET ? CNN_GRAD_DECONV : CNN_GRAD_PLAIN;
}

static bool in_own_mode(const cnn_vtap *t, cnn_grad_mode mode) { return plain_mode(t->method) == mode; }

/* Guided Grad-CAM needs two passes: the plain one for its CAM, the guided
 * one for the saliency it multiplies. */
static bool in_guided_gradcam_mode(const cnn_vtap *t, cnn_grad_mode mode)
{
    (void)t;
    return mode == CNN_GRAD_PLAIN || mode == CNN_GRAD_GUIDED;
}

static int lowest_input(const cnn_vtap *t, cnn_grad_mode mode)
{
    (void)t;
    (void)mode;
    return CNN_GRAPH_INPUT;
}

static int lowest_layer(const cnn_vtap *t, cnn_grad_mode mode)
{
    (void)mode;
    int low = t->layer;
    for (int i = 0; i < t->n_fuse; i++)
        if (t->fuse[i] < low) low = t->fuse[i];
    return low;
}

static int lowest_guided_gradcam(const cnn_vtap *t, cnn_grad_mode mode)
{
    return mode == CNN_GRAD_GUIDED ? CNN_GRAPH_INPUT : t->layer;
}

/* Each image's map at the input's size in s->maps, drawn. */
static int emit_input_maps(cnn_job *s, cnn_vtap *t, int nb, const int *cls, const int *slot_of)
{
    int px = cnn_job_px(s);
    for (int b = 0; slot_of && b < nb; b++)
        CNN_TRY_RET(cnn_method_emit(s, t, b, slot_of[b], cls[b], s->maps, (size_t)b * px, s->maps, (size_t)b * px,
                                    s->l.graph.in_h, s->l.graph.in_w, NULL));
    return CNN_OK;
}

static void what_of(const cnn_vtap *t, char *what, size_t size)
{
    snprintf(what, size, "%s %s", t->layer_name, cnn_gmethod_names[t->method]);
}

/* saliency, guided, deconvnet: max over channels of |d score / d x|. */
static int saliency_from_pass(cnn_job *s, cnn_vtap *t, int nb, const int *cls, const int *slot_of,
                              cnn_grad_mode mode)
{
    (void)mode;
    char what[256];
    what_of(t, what, sizeof what);
    const cnn_graph *g = &s->l.graph;
    CNN_TRY_RET(cnn_gm_chan_maxabs(&s->cl, cnn_backward_grad(&s->bw, CNN_GRAPH_INPUT), 0, nb, g->in_c,
                                   cnn_job_px(s), s->maps, 0, what));
    return emit_input_maps(s, t, nb, cls, slot_of);
}

/* gradient x input: sum over channels of x * d score / d x. */
static int gradxinput_from_pass(cnn_job *s, cnn_vtap *t, int nb, const int *cls, const int *slot_of,
                                cnn_grad_mode mode)
{
    (void)mode;
    char what[256];
    what_of(t, what, sizeof what);
    const cnn_graph *g = &s->l.graph;
    CNN_TRY_RET(cnn_gm_chan_dot(&s->cl, cnn_backward_grad(&s->bw, CNN_GRAPH_INPUT), 0, s->net.input, 0, nb, g->in_c,
                                cnn_job_px(s), s->maps, 0, what));
    return emit_input_maps(s, t, nb, cls, slot_of);
}

/* The CAM of tap t's method at `layer` for images [0, nb) into s->cams
 * (the layer's resolution). */
static int cam_at(cnn_job *s, const cnn_vtap *t, int layer, int nb, const char *what)
{
    const cnn_layer *ly = &s->l.graph.layers[layer];
    cnn_cam_kind kind = t->method == CNN_GM_GRADCAMPP  ? CNN_CAM_GRADCAMPP
                        : t->method == CNN_GM_LAYERCAM ? CNN_CAM_LAYERCAM
                        : t->method == CNN_GM_XGRADCAM ? CNN_CAM_XGRADCAM
                        : t->method == CNN_GM_HIRESCAM ? CNN_CAM_HIRESCAM
                                                       : CNN_CAM_GRADCAM;
    return cnn_gm_cam(&s->cl, kind, cnn_net_buffer(&s->net, layer), 0, cnn_backward_grad(&s->bw, layer), 0, nb, ly->c,
                      ly->h * ly->w, s->camw, s->cams, 0, what);
}

/* The CAM of tap t's layer for images [0, nb) into s->cams (the layer's
 * resolution), upsampled into dst. */
static int cam_of(cnn_job *s, cnn_vtap *t, int nb, cl_mem dst, const char *what)
{
    const cnn_graph *g = &s->l.graph;
    const cnn_layer *ly = &g->layers[t->layer];
    CNN_TRY_RET(cam_at(s, t, t->layer, nb, what));
    return cnn_gm_resize(&s->cl, s->cams, 0, nb, ly->h, ly->w, dst, 0, g->in_h, g->in_w, what);
}

/* One map fused over the tap's layers, as pytorch-grad-cam fuses target
 * layers: each layer's CAM min-max normalised ((v - min) / (1e-7 + max -
 * min)) and upsampled to the input, their mean normalised the same way. */
static int fused_from_pass(cnn_job *s, cnn_vtap *t, int nb, const int *cls, const int *slot_of, const char *what)
{
    const cnn_graph *g = &s->l.graph;
    int px = cnn_job_px(s);
    for (int i = 0; i < t->n_fuse; i++) {
        const cnn_layer *ly = &g->layers[t->fuse[i]];
        int plane = ly->h * ly->w;
        CNN_TRY_RET(cam_at(s, t, t->fuse[i], nb, what));
        for (int b = 0; b < nb; b++) {
            CNN_TRY_RET(cnn_viz_stats(&s->viz.viz, s->cams, (size_t)b * plane, (size_t)plane, (size_t)plane, 1,
                                      s->mstats, what));
            CNN_TRY_RET(cnn_gm_fullgrad_acc(&s->cl, s->cams, (size_t)b * plane, 1, ly->h, ly->w, s->mstats, s->maps,
                                            (size_t)b * px, g->in_h, g->in_w, i > 0, what));
        }
    }
    float *m = cnn_malloc((size_t)px * sizeof *m);
    int status = m ? CNN_OK : CNN_ERR_NOMEM;
    for (int b = 0; b < nb && status == CNN_OK; b++) {
        status = cnn_cl_read(&s->cl, s->maps, (size_t)b * px * sizeof(float), (size_t)px * sizeof(float), m, what);
        if (status < 0) break;
        double lo = INFINITY, hi = -INFINITY;
        for (int p = 0; p < px; p++) {
            double v = (double)m[p] / t->n_fuse;
            lo = fmin(lo, v);
            hi = fmax(hi, v);
        }
        for (int p = 0; p < px; p++) m[p] = (float)(((double)m[p] / t->n_fuse - lo) / (1e-7 + (hi - lo)));
        status = cnn_cl_write(&s->cl, s->maps, (size_t)b * px * sizeof(float), (size_t)px * sizeof(float), m, what);
    }
    free(m);
    if (status < 0) return status;
    char note[96];
    snprintf(note, sizeof note, "fused over %d layers", t->n_fuse);
    for (int b = 0; slot_of && b < nb; b++)
        CNN_TRY_RET(cnn_method_emit(s, t, b, slot_of[b], cls[b], s->maps, (size_t)b * px, s->maps, (size_t)b * px,
                                    g->in_h, g->in_w, note));
    return CNN_OK;
}

/* Grad-CAM, Grad-CAM++, LayerCAM: the map at the input's size; the .npy
 * keeps the layer's resolution. */
static int cam_from_pass(cnn_job *s, cnn_vtap *t, int nb, const int *cls, const int *slot_of, cnn_grad_mode mode)
{
    (void)mode;
    char what[256];
    what_of(t, what, sizeof what);
    if (t->n_fuse) return fused_from_pass(s, t, nb, cls, slot_of, what);
    CNN_TRY_RET(cam_of(s, t, nb, s->maps, what));
    const cnn_graph *g = &s->l.graph;
    const cnn_layer *ly = &g->layers[t->layer];
    int px = cnn_job_px(s), plane = ly->h * ly->w;
    for (int b = 0; slot_of && b < nb; b++)
        CNN_TRY_RET(cnn_method_emit(s, t, b, slot_of[b], cls[b], s->maps, (size_t)b * px, s->cams, (size_t)b * plane,
                                    ly->h, ly->w, NULL));
    return CNN_OK;
}

/* Guided Grad-CAM: the plain pass leaves the upsampled CAM in t->cam, the
 * guided pass multiplies its saliency by it and draws. */
static int guided_gradcam_from_pass(cnn_job *s, cnn_vtap *t, int nb, const int *cls, const int *slot_of,
                                    cnn_grad_mode mode)
{
    char what[256];
    what_of(t, what, sizeof what);
    if (mode != CNN_GRAD_GUIDED) return cam_of(s, t, nb, t->cam, what);
    const cnn_graph *g = &s->l.graph;
    int px = cnn_job_px(s);
    CNN_TRY_RET(cnn_gm_chan_maxabs(&s->cl, cnn_backward_grad(&s->bw, CNN_GRAPH_INPUT), 0, nb, g->in_c, px, s->maps, 0,
                                   what));
    CNN_TRY_RET(cnn_gm_mul(&s->cl, s->maps, 0, t->cam, 0, s->maps, 0, (size_t)nb * px, what));
    return emit_input_maps(s, t, nb, cls, slot_of);
}

/* FullGrad (Srinivas and Fleuret 2019), as pytorch-grad-cam's FullGrad:
 * |x * dscore/dx| per input channel, and |b_k * dscore/dz_k| per channel k
 * of every conv layer with a bias and every batch norm (its shift beta -
 * mean * gamma / sqrt(var + eps)), z the layer's output; each map min-max
 * normalised at its own resolution, upsampled to the input, all summed. */
int cnn_method_fullgrad_from_pass(cnn_job *s, cnn_vtap *t, int nb, const int *cls, const int *slot_of,
                                  cnn_grad_mode mode)
{
    (void)mode;
    char what[256];
    what_of(t, what, sizeof what);
    const cnn_graph *g = &s->l.graph;
    const cnn_plan *pl = &s->net.plan;
    cnn_cl *cl = &s->cl;
    int px = cnn_job_px(s);
    size_t len = (size_t)g->in_c * px;
    cl_mem din = cnn_backward_grad(&s->bw, CNN_GRAPH_INPUT);
    for (int b = 0; b < nb; b++) {
        CNN_TRY_RET(cnn_gm_absmul(cl, s->net.input, (size_t)b * len, din, (size_t)b * len, g->in_c, px, false, s->acts,
                                  what));
        CNN_TRY_RET(cnn_viz_stats(&s->viz.viz, s->acts, 0, (size_t)px, (size_t)px, g->in_c, s->mstats, what));
        CNN_TRY_RET(cnn_gm_fullgrad_acc(cl, s->acts, 0, g->in_c, g->in_h, g->in_w, s->mstats, s->maps, (size_t)b * px,
                                        g->in_h, g->in_w, false, what));
        for (int i = 0; i < g->n; i++) {
            const cnn_layer *ly = &g->layers[i];
            bool conv = cnn_layer_is_conv(ly) && pl->fold_bn[i] < 0;
            bool bn = ly->spec->op == CNN_OP_BATCHNORM && pl->computes[i];
            if (!(conv || bn) || !s->net.b[i] || ly->flat) continue;
            int plane = ly->h * ly->w;
            size_t numel = cnn_layer_numel(ly);
            CNN_TRY_RET(cnn_gm_absmul(cl, cnn_backward_grad(&s->bw, i), (size_t)b * numel, s->net.b[i], 0, ly->c, plane,
                                      true, s->acts, what));
            CNN_TRY_RET(cnn_viz_stats(&s->viz.viz, s->acts, 0, (size_t)plane, (size_t)plane, ly->c, s->mstats, what));
            CNN_TRY_RET(cnn_gm_fullgrad_acc(cl, s->acts, 0, ly->c, ly->h, ly->w, s->mstats, s->maps, (size_t)b * px,
                                            g->in_h, g->in_w, true, what));
        }
    }
    return emit_input_maps(s, t, nb, cls, slot_of);
}

static int sampling_copies(const cnn_vtap *t, int in_h, int in_w)
{
    (void)in_h;
    (void)in_w;
    return t->samples;
}

static int occlusion_copies(const cnn_vtap *t, int in_h, int in_w)
{
    return cnn_gm_positions(in_h, t->window, t->stride) * cnn_gm_positions(in_w, t->window, t->stride);
}

/* KernelSHAP's default: shap's 2 M + 2048 for the segments asked for */
static int shap_copies(const cnn_vtap *t, int in_h, int in_w)
{
    (void)in_h;
    (void)in_w;
    return t->samples ? t->samples : 2 * t->segments + 2048;
}

static int channel_copies(const cnn_vtap *t, int in_h, int in_w)
{
    (void)in_h;
    (void)in_w;
    return t->chans;
}

static const cnn_method METHODS[CNN_GM_COUNT] = {
    [CNN_GM_SALIENCY] = {CNN_GM_SALIENCY, true, true, in_own_mode, lowest_input, saliency_from_pass, NULL, NULL},
    [CNN_GM_GUIDED] = {CNN_GM_GUIDED, true, true, in_own_mode, lowest_input, saliency_from_pass, NULL, NULL},
    [CNN_GM_DECONVNET] = {CNN_GM_DECONVNET, true, true, in_own_mode, lowest_input, saliency_from_pass, NULL, NULL},
    [CNN_GM_GRADXINPUT] = {CNN_GM_GRADXINPUT, true, true, in_own_mode, lowest_input, gradxinput_from_pass, NULL,
                           NULL},
    [CNN_GM_GRADCAM] = {CNN_GM_GRADCAM, true, true, in_own_mode, lowest_layer, cam_from_pass, NULL, NULL},
    [CNN_GM_GRADCAMPP] = {CNN_GM_GRADCAMPP, true, true, in_own_mode, lowest_layer, cam_from_pass, NULL, NULL},
    [CNN_GM_LAYERCAM] = {CNN_GM_LAYERCAM, true, true, in_own_mode, lowest_layer, cam_from_pass, NULL, NULL},
    [CNN_GM_GUIDED_GRADCAM] = {CNN_GM_GUIDED_GRADCAM, true, true, in_guided_gradcam_mode, lowest_guided_gradcam,
                               guided_gradcam_from_pass, NULL, NULL},
    [CNN_GM_SMOOTHGRAD] = {CNN_GM_SMOOTHGRAD, true, false, NULL, NULL, NULL, cnn_method_sampling_passes,
                           sampling_copies},
    [CNN_GM_INTEGRATED] = {CNN_GM_INTEGRATED, true, false, NULL, NULL, NULL, cnn_method_sampling_passes,
                           sampling_copies},
    [CNN_GM_OCCLUSION] = {CNN_GM_OCCLUSION, false, false, NULL, NULL, NULL, cnn_method_occlusion_passes,
                          occlusion_copies},
    [CNN_GM_XGRADCAM] = {CNN_GM_XGRADCAM, true, true, in_own_mode, lowest_layer, cam_from_pass, NULL, NULL},
    [CNN_GM_HIRESCAM] = {CNN_GM_HIRESCAM, true, true, in_own_mode, lowest_layer, cam_from_pass, NULL, NULL},
    [CNN_GM_SCORECAM] = {CNN_GM_SCORECAM, false, false, NULL, NULL, NULL, cnn_method_scorecam_passes,
                         channel_copies},
    [CNN_GM_ABLATIONCAM] = {CNN_GM_ABLATIONCAM, false, false, NULL, NULL, NULL, cnn_method_ablationcam_passes,
                            channel_copies},
    [CNN_GM_EIGENCAM] = {CNN_GM_EIGENCAM, false, false, NULL, NULL, NULL, cnn_method_eigencam_passes, NULL},
    [CNN_GM_FULLGRAD] = {CNN_GM_FULLGRAD, true, true, in_own_mode, lowest_input, cnn_method_fullgrad_from_pass,
                         NULL, NULL},
    [CNN_GM_RISE] = {CNN_GM_RISE, false, false, NULL, NULL, NULL, cnn_method_rise_passes, sampling_copies},
    [CNN_GM_LIME] = {CNN_GM_LIME, false, false, NULL, NULL, NULL, cnn_method_lime_passes, sampling_copies},
    [CNN_GM_KERNELSHAP] = {CNN_GM_KERNELSHAP, false, false, NULL, NULL, NULL, cnn_method_kernelshap_passes,
                           shap_copies},
};

const cnn_method *cnn_method_of(cnn_gmethod id)
{
    CNN_ASSERT(id >= 0 && id < CNN_GM_COUNT && METHODS[id].id == id);
    return &METHODS[id];
}

/* ---------------------------------------------------------------------- */
/* Scheduling the shared passes                                           */

/* Ranks of each image's classes by its output (top 10). */
static int rank_classes(cnn_job *s, int nb)
{
    const cnn_graph *g = &s->l.graph;
    size_t nout = cnn_layer_numel(&g->layers[g->n - 1]);
    int *idx = cnn_malloc(nout * sizeof *idx);
    if (!idx) return CNN_ERR_NOMEM;
    for (int b = 0; b < nb; b++) {
        cnn_job_rank(s->logits + (size_t)b * nout, nout, idx);
        for (int r = 0; r < 10; r++) s->rank[b * 10 + r] = idx[(size_t)r < nout ? r : 0];
    }
    free(idx);
    return CNN_OK;
}

/* Whether tap vt's maps come from the shared pass with ReLU rule `mode`,
 * score prob and target key (rank r >= 0, or fixed class f as -1 - f). */
static bool in_pass(const cnn_vtap *vt, cnn_grad_mode mode, bool prob, int key)
{
    if (vt->kind != CNN_TAP_GRADIENT || vt->prob != prob) return false;
    const cnn_method *m = cnn_method_of(vt->method);
    if (!m->shared || !m->in_mode(vt, mode)) return false;
    return vt->cls_fixed >= 0 ? key == -1 - vt->cls_fixed : key >= 0 && key < vt->topk;
}

/* All shared-pass maps of a batch: one backward per (ReLU rule, score,
 * target rank or fixed class) that some tap asks for, down to the lowest
 * layer one of them reads. */
int cnn_job_gradient_maps(cnn_job *s, int nb, const int *slot_of)
{
    const cnn_input_spec *in = &s->l.pipe.input;
    size_t len = (size_t)in->c * in->h * in->w;
    for (int b = 0; b < nb; b++)
        CNN_TRY_RET(cnn_vctx_input_u8(&s->viz, in, s->net.input, (size_t)b * len, s->img8[b], "input image"));
    /* --sanity's steps explain the classes the model ranked first */
    if (!s->san_step) CNN_TRY_RET(rank_classes(s, nb));
    int cls[4096];
    static const cnn_grad_mode modes[] = {CNN_GRAD_PLAIN, CNN_GRAD_GUIDED, CNN_GRAD_DECONV};
    int nout = (int)cnn_layer_numel(&s->l.graph.layers[s->l.graph.n - 1]);
    for (int mi = 0; mi < 3; mi++) {
        for (int prob = 0; prob < 2; prob++) {
            /* keys: rank r >= 0, or fixed class f as -1 - f */
            for (int key = -nout; key < 10; key++) {
                bool any = false;
                int stop = s->l.graph.n - 1;
                for (int t = 0; t < s->n_taps; t++)
                    if (in_pass(&s->taps[t], modes[mi], prob == 1, key)) {
                        any = true;
                        int need = cnn_method_of(s->taps[t].method)->lowest(&s->taps[t], modes[mi]);
                        if (need < stop) stop = need;
                    }
                if (!any) continue;
                CNN_TRY_RET(cnn_job_interrupted(s));
                for (int b = 0; b < nb; b++) cls[b] = key >= 0 ? s->rank[b * 10 + key] : -1 - key;
                CNN_TRY_RET(cnn_backward_run(&s->bw, nb, cls, prob == 1, s->logits, modes[mi], stop));
                for (int t = 0; t < s->n_taps; t++)
                    if (in_pass(&s->taps[t], modes[mi], prob == 1, key))
                        CNN_TRY_RET(cnn_method_of(s->taps[t].method)
                                        ->from_pass(s, &s->taps[t], nb, cls, slot_of, modes[mi]));
            }
        }
    }
    return CNN_OK;
}

/* --repeat with gradient taps: each shared-pass method timed as the user
 * would run it (forward, backward down to what it needs, the map on the
 * device; no file written), median of the repeats after one warm-up.
 * A method with several passes (guided Grad-CAM) is timed with all of them. */
int cnn_job_repeat_gradients(cnn_job *s, int nb)
{
    const cnn_graph *g = &s->l.graph;
    int reps = s->o.repeat, cls[4096];
    double *t = cnn_calloc((size_t)reps + 1, sizeof *t);
    if (!t) return CNN_ERR_NOMEM;
    int status = CNN_OK;
    for (int ti = 0; ti < s->n_taps && status == CNN_OK; ti++) {
        cnn_vtap *vt = &s->taps[ti];
        if (vt->kind != CNN_TAP_GRADIENT) continue;
        const cnn_method *m = cnn_method_of(vt->method);
        if (!m->shared) continue;
        static const cnn_grad_mode modes[] = {CNN_GRAD_PLAIN, CNN_GRAD_GUIDED, CNN_GRAD_DECONV};
        int passes = 0;
        for (int r = 0; r <= reps && status == CNN_OK; r++) {
            double t0 = cnn_now_ms();
            status = cnn_net_forward(&s->net, nb);
            if (status == CNN_OK) status = cnn_net_read(&s->net, g->n - 1, nb, s->logits);
            if (status == CNN_OK) status = rank_classes(s, nb);
            for (int b = 0; b < nb; b++) cls[b] = cnn_method_target(s, vt, b, 0);
            /* every pass the method takes, in the order a run takes them
             * (guided Grad-CAM: the plain pass for its CAM, then the guided) */
            passes = 0;
            for (int mi = 0; mi < 3 && status == CNN_OK; mi++) {
                if (!m->in_mode(vt, modes[mi])) continue;
                passes++;
                status = cnn_backward_run(&s->bw, nb, cls, vt->prob, s->logits, modes[mi], m->lowest(vt, modes[mi]));
                if (status == CNN_OK) status = m->from_pass(s, vt, nb, cls, NULL, modes[mi]);
            }
            cl_int err = status == CNN_OK ? clFinish(s->cl.queue) : CL_SUCCESS;
            if (err != CL_SUCCESS)
                status = cnn_error_set(CNN_ERR_DEVICE, "clFinish failed: %s (gradient)", cnn_cl_error_name(err));
            t[r] = cnn_now_ms() - t0; /* t[0]: the warm-up */
        }
        if (status != CNN_OK) break;
        cnn_logf(CNN_LOG_RESULT, "gradient %s:%s: median %.2f ms over %d runs (batch %d; forward + %s + map)",
                 vt->layer_name, cnn_gmethod_names[vt->method], cnn_job_median(t + 1, reps), reps, nb,
                 passes > 1 ? "2 backward passes" : "backward");
    }
    free(t);
    return status;
}

int cnn_method_target(const cnn_job *s, const cnn_vtap *t, int b, int r)
{
    return t->cls_fixed >= 0 ? t->cls_fixed : s->rank[b * 10 + r];
}
