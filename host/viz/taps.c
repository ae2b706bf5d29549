/* Taps turned into files (viz/taps.h: kinds and file names).
 *
 * One file: every tap kind shares the buffers, the normalisation and the
 * path from device pixels to the PNG pool and the manifest. */
#define _POSIX_C_SOURCE 200809L
#include "viz/taps.h"
#include "core/error.h"
#include "core/log.h"
#include "core/util.h"
#include "io/npy.h"
#include "viz/colormap.h"
#include "viz/gradmap.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const cnn_scope_names[] = {"per-channel", "per-layer", "global", "fixed", NULL};
const char *const cnn_sg_reduce_names[] = {"paper", "per-copy", "magnitude", NULL};
const char *const cnn_gmethod_names[] = {"saliency",   "guided",  "deconvnet", "smoothgrad",     "integrated",
                                         "gradxinput", "gradcam", "gradcampp", "layercam", "guided-gradcam",
                                         "occlusion",  "xgradcam", "hirescam", "scorecam", "ablationcam",
                                         "eigencam",   "fullgrad", "rise",       "lime",        "kernelshap",
                                         NULL};

/* Montage limits: tiles are enlarged until their longer side reaches
 * MIN_TILE pixels (7x7 maps become 49x49), no image side exceeds MAX_SIDE. */
enum { MIN_TILE = 48, FILTER_MIN_TILE = 24, MATRIX_MIN_TILE = 256, MAX_SIDE = 4096, DEFAULT_MAX_FILTERS = 64 };

/* ---------------------------------------------------------------------- */
/* Configuration                                                          */

static int find_name(const char *const *names, const char *s)
{
    for (int i = 0; names[i]; i++)
        if (!strcmp(names[i], s)) return i;
    return -1;
}

/* The linear layer's input as [C, H, W] when it is fed by a flatten of a
 * spatial tensor (the per-unit montage needs it); false otherwise. */
static bool flatten_source(const cnn_graph *g, int layer, int *c, int *h, int *w)
{
    const cnn_layer *ly = &g->layers[layer];
    int src = ly->in[0];
    while (src >= 0 && (g->layers[src].spec->op == CNN_OP_DROPOUT)) src = g->layers[src].in[0];
    if (src < 0 || g->layers[src].spec->op != CNN_OP_FLATTEN) return false;
    int s = g->layers[src].in[0];
    int sc = s < 0 ? g->in_c : g->layers[s].c, sh = s < 0 ? g->in_h : g->layers[s].h,
        sw = s < 0 ? g->in_w : g->layers[s].w;
    if (s >= 0 && g->layers[s].flat) return false;
    if (sh * sw <= 1) return false;
    *c = sc;
    *h = sh;
    *w = sw;
    return true;
}

/* Which class(es) a gradient tap explains: "top1" (default), "topK", an
 * index or a label. */
static int parse_class(cnn_vtap *t, const char *cls, int n_out, char *const *labels, int n_labels, const char *where)
{
    t->cls_fixed = -1;
    t->topk = 1;
    if (!cls || !strcmp(cls, "top1")) return CNN_OK;
    char *end;
    if (!strncmp(cls, "top", 3) && cls[3]) {
        long k = strtol(cls + 3, &end, 10);
        if (!*end && k >= 1 && k <= 10 && k <= n_out) {
            t->topk = (int)k;
            return CNN_OK;
        }
        return cnn_error_set(CNN_ERR_INPUT, "%s: class '%s': topK needs 1 <= K <= %d", where, cls,
                             n_out < 10 ? n_out : 10);
    }
    long v = strtol(cls, &end, 10);
    if (*cls && !*end) {
        if (v < 0 || v >= n_out)
            return cnn_error_set(CNN_ERR_INPUT, "%s: class %ld is out of range: the network has %d outputs", where, v,
                                 n_out);
        t->cls_fixed = (int)v;
        return CNN_OK;
    }
    for (int i = 0; i < n_labels && i < n_out; i++)
        if (!strcmp(labels[i], cls)) {
            t->cls_fixed = i;
            return CNN_OK;
        }
    return cnn_error_set(CNN_ERR_INPUT, "%s: class '%s' is not top1, topK, an index or a label%s", where, cls,
                         n_labels ? "" : " (the pipeline has no model.labels)");
}

static int configure_gradient(cnn_vtap *t, const cnn_graph *g, int layer, int method, const cnn_tap_spec *spec,
                              const char *where, char *const *labels, int n_labels)
{
    t->kind = CNN_TAP_GRADIENT;
    t->method = (cnn_gmethod)method;
    t->layer = layer;
    bool cam = cnn_gm_is_cam(t->method);
    if (!cam && layer >= 0)
        return cnn_error_set(CNN_ERR_INPUT, "%s: '%s' explains the input: use layer: input (--tap input:%s)", where,
                             cnn_gmethod_names[method], cnn_gmethod_names[method]);
    if (cam && (layer < 0 || g->layers[layer].flat || g->layers[layer].h * g->layers[layer].w <= 1))
        return cnn_error_set(CNN_ERR_INPUT, "%s: '%s' needs a layer with spatial maps (a conv or pool layer), not %s",
                             where, cnn_gmethod_names[method], layer < 0 ? "the input" : g->layers[layer].spec->name);
    t->layer_name = layer < 0 ? "input" : g->layers[layer].spec->name;
    t->chans = layer < 0 ? 0 : g->layers[layer].c;
    if (spec && spec->fuse) {
        cnn_gmethod m = t->method;
        if (m != CNN_GM_GRADCAM && m != CNN_GM_GRADCAMPP && m != CNN_GM_LAYERCAM && m != CNN_GM_XGRADCAM &&
            m != CNN_GM_HIRESCAM)
            return cnn_error_set(CNN_ERR_INPUT, "%s: 'layers' (one map fused over several layers) applies to gradcam, "
                                 "gradcampp, layercam, xgradcam and hirescam, not %s (use 'layer' for a map each)",
                                 where, cnn_gmethod_names[method]);
        for (int i = 0; i < spec->n_layers; i++) {
            int li = -1;
            for (int j = 0; j < g->n && li < 0; j++)
                if (!strcmp(g->layers[j].spec->name, spec->layers[i])) li = j;
            if (li < 0 || g->layers[li].flat || g->layers[li].h * g->layers[li].w <= 1)
                return cnn_error_set(CNN_ERR_INPUT, "%s: '%s' needs layers with spatial maps (conv or pool), not %s",
                                     where, cnn_gmethod_names[method], spec->layers[i]);
            for (int k = 0; k < t->n_fuse; k++)
                if (t->fuse[k] == li)
                    return cnn_error_set(CNN_ERR_INPUT, "%s: 'layers' names %s twice", where, spec->layers[i]);
            t->fuse[t->n_fuse++] = li;
        }
    }
    int n_out = (int)cnn_layer_numel(&g->layers[g->n - 1]);
    int status = parse_class(t, spec ? spec->cls : NULL, n_out, labels, n_labels, where);
    if (status < 0) return status;
    t->is_signed = t->method == CNN_GM_INTEGRATED || t->method == CNN_GM_GRADXINPUT || t->method == CNN_GM_OCCLUSION ||
                   t->method == CNN_GM_LIME || t->method == CNN_GM_KERNELSHAP;
    t->scope = CNN_SCOPE_LAYER;
    t->cmap = t->is_signed ? CNN_CMAP_RDBU : CNN_CMAP_TURBO;
    t->alpha = 0.5f;
    t->road_noise = 0.01f; /* pytorch-grad-cam's NoisyLinearImputer */
    t->samples = t->method == CNN_GM_SMOOTHGRAD ? 25
                 : t->method == CNN_GM_RISE     ? 4000
                 : t->method == CNN_GM_LIME     ? 1000
                 : t->method == CNN_GM_KERNELSHAP ? 0 /* 2 M + 2048, M the segments found */
                                                  : 50;
    t->cells = 7;
    t->keep = 0.5f;
    t->segments = 50;
    t->kernel_width = 0.25f;
    t->sigma = 0.15f;
    /* occlusion: a window of ~1/14 of the shorter side (16 px at 224),
     * half-overlapping, covered with 0 in network units (the mean colour) */
    int side = g->in_h < g->in_w ? g->in_h : g->in_w;
    t->window = (side + 7) / 14 > 1 ? (side + 7) / 14 : 1;
    t->base_zero = t->method == CNN_GM_OCCLUSION || t->method == CNN_GM_LIME || t->method == CNN_GM_KERNELSHAP;
    t->entry = -1;
    if (spec) {
        t->prob = spec->score && !strcmp(spec->score, "prob");
        t->alpha = spec->alpha;
        if (spec->samples) t->samples = spec->samples;
        if (spec->sigma > 0) t->sigma = spec->sigma;
        if (spec->normalize) t->scope = (cnn_scope)find_name(cnn_scope_names, spec->normalize);
        if (spec->has_fixed) {
            t->fixed[0] = spec->fixed[0];
            t->fixed[1] = spec->fixed[1];
        }
        if (spec->has_clip) {
            t->clip = true;
            t->clip_lo = spec->clip[0];
            t->clip_hi = spec->clip[1];
        }
        if (spec->has_signed) t->is_signed = spec->is_signed;
        if (spec->colormap) t->cmap = (cnn_cmap)cnn_colormap_find(spec->colormap);
        if (spec->baseline) {
            t->base_zero = !strcmp(spec->baseline, "zero");
            t->base_blur = !strcmp(spec->baseline, "blur");
            if (!t->base_zero && !t->base_blur && strcmp(spec->baseline, "black") != 0)
                t->base_pixel = strtof(spec->baseline, NULL);
        }
        if (spec->window) t->window = spec->window;
        if (spec->cells) t->cells = spec->cells;
        if (spec->segments) t->segments = spec->segments;
        if (spec->kernel_width > 0) t->kernel_width = spec->kernel_width;
        if (spec->keep > 0) t->keep = spec->keep;
        if (spec->step) t->stride = spec->step;
        t->curves = spec->curves;
        t->n_road = spec->n_road;
        memcpy(t->road, spec->road, sizeof t->road);
        if (spec->has_road_noise) t->road_noise = spec->road_noise;
        if (spec->segments && t->method != CNN_GM_LIME && t->method != CNN_GM_KERNELSHAP)
            return cnn_error_set(CNN_ERR_INPUT, "%s: 'segments' applies to lime and kernelshap, not %s", where,
                                 cnn_gmethod_names[method]);
        if (spec->kernel_width > 0 && t->method != CNN_GM_LIME)
            return cnn_error_set(CNN_ERR_INPUT, "%s: 'kernel_width' applies to lime, not %s", where,
                                 cnn_gmethod_names[method]);
        if ((spec->cells || spec->keep > 0) && t->method != CNN_GM_RISE)
            return cnn_error_set(CNN_ERR_INPUT, "%s: 'cells' and 'keep' apply to rise, not %s", where,
                                 cnn_gmethod_names[method]);
        if (spec->reduce) {
            if (t->method != CNN_GM_SMOOTHGRAD)
                return cnn_error_set(CNN_ERR_INPUT, "%s: 'reduce' applies to smoothgrad, not %s", where,
                                     cnn_gmethod_names[method]);
            int r = find_name(cnn_sg_reduce_names, spec->reduce);
            if (r < 0)
                return cnn_error_set(CNN_ERR_INPUT, "%s: unknown reduce '%s' (known: paper, per-copy, magnitude)",
                                     where, spec->reduce);
            t->reduce = (cnn_sg_reduce)r;
        }
    }
    if (t->method == CNN_GM_OCCLUSION) {
        if (t->window > side)
            return cnn_error_set(CNN_ERR_INPUT, "%s: occlusion window %d is larger than the input (%d x %d)", where,
                                 t->window, g->in_h, g->in_w);
        if (!t->stride) t->stride = t->window / 2 > 1 ? t->window / 2 : 1;
    }
    if (t->method == CNN_GM_RISE && t->cells > side)
        return cnn_error_set(CNN_ERR_INPUT, "%s: rise: %d cells a side on a %d x %d input (at most %d)", where,
                             t->cells, g->in_h, g->in_w, side);
    if (t->scope == CNN_SCOPE_CHANNEL || t->scope == CNN_SCOPE_GLOBAL) t->scope = CNN_SCOPE_LAYER;
    return CNN_OK;
}

int cnn_vtap_configure(cnn_vtap *t, const cnn_graph *g, int layer, const char *kind, const cnn_tap_spec *spec,
                       const char *where, char *const *labels, int n_labels)
{
    memset(t, 0, sizeof *t);
    if (spec && spec->size[0] && strcmp(kind, "maximize"))
        return cnn_error_set(CNN_ERR_INPUT, "%s: 'size' applies to maximize, not %s", where, kind);
    int method = find_name(cnn_gmethod_names, kind);
    if (method >= 0) return configure_gradient(t, g, layer, method, spec, where, labels, n_labels);
    if (layer < 0) return cnn_error_set(CNN_ERR_INPUT, "%s: '%s' needs a layer, not the input", where, kind);
    const cnn_layer *ly = &g->layers[layer];
    t->layer = layer;
    t->layer_name = ly->spec->name;
    if (!strcmp(kind, "activations")) t->kind = CNN_TAP_ACTIVATIONS;
    else if (!strcmp(kind, "filters")) t->kind = CNN_TAP_FILTERS;
    else if (!strcmp(kind, "weights")) t->kind = CNN_TAP_WEIGHTS;
    else if (!strcmp(kind, "examples")) t->kind = CNN_TAP_EXAMPLES;
    else if (!strcmp(kind, "maximize")) t->kind = CNN_TAP_MAXIMIZE;
    else if (!strcmp(kind, "dream")) t->kind = CNN_TAP_DREAM;
    else
        return cnn_error_set(CNN_ERR_INPUT, "%s: tap kind '%s' is not available in this version", where, kind);
    if (t->kind == CNN_TAP_FILTERS && ly->spec->op != CNN_OP_CONV2D)
        return cnn_error_set(CNN_ERR_INPUT, "%s: 'filters' needs a conv2d layer; '%s' is %s", where, t->layer_name,
                             cnn_op_name(ly->spec->op));
    if (t->kind == CNN_TAP_WEIGHTS && ly->spec->op != CNN_OP_LINEAR)
        return cnn_error_set(CNN_ERR_INPUT, "%s: 'weights' needs a linear layer; '%s' is %s%s", where, t->layer_name,
                             cnn_op_name(ly->spec->op),
                             ly->spec->op == CNN_OP_CONV2D ? " (use show: filters)" : "");
    if (t->kind == CNN_TAP_DREAM) {
        if (ly->flat)
            return cnn_error_set(CNN_ERR_INPUT, "%s: 'dream' needs a spatial layer; '%s' is flat", where,
                                 t->layer_name);
        t->n_maps = ly->c;
        t->h = ly->h;
        t->w = ly->w;
        t->scope = CNN_SCOPE_LAYER;
        t->cmap = CNN_CMAP_GRAY;
        if (spec && spec->n_channels) {
            for (int i = 0; i < spec->n_channels; i++)
                if (spec->channels[i] >= t->n_maps)
                    return cnn_error_set(CNN_ERR_INPUT, "%s: 'channels' names channel %d; '%s' has %d", where,
                                         spec->channels[i], t->layer_name, t->n_maps);
            t->sel = spec->channels;
            t->n_sel = spec->n_channels;
        }
        t->steps = spec && spec->steps ? spec->steps : 10;
        t->lr = spec && spec->lr > 0 ? spec->lr : 1.5f;
        t->octaves = spec && spec->octaves ? spec->octaves : 4;
        t->octave_scale = spec && spec->octave_scale > 0 ? spec->octave_scale : 1.4f;
        int side = g->in_h < g->in_w ? g->in_h : g->in_w;
        t->jitter = spec && spec->has_jitter ? spec->jitter : (int)lrint(32.0 * side / 224.0);
        if (!(spec && spec->has_jitter) && t->jitter < 1) t->jitter = 1;
        t->seed = spec && spec->has_seed ? (uint32_t)spec->seed : 0;
        return CNN_OK;
    }
    if (t->kind == CNN_TAP_EXAMPLES || t->kind == CNN_TAP_MAXIMIZE) {
        /* a flat layer's units are its channels (each one value) */
        t->n_maps = ly->flat ? ly->c * ly->h * ly->w : ly->c;
        t->h = ly->flat ? 1 : ly->h;
        t->w = ly->flat ? 1 : ly->w;
        t->flat = ly->flat;
        t->top_k = spec && spec->top ? spec->top : 9;
        t->by_mean = spec && spec->by && !strcmp(spec->by, "mean");
        t->max_channels = spec && spec->max_channels ? spec->max_channels : 16;
        t->columns = spec ? spec->columns : 0;
        t->scope = CNN_SCOPE_LAYER;
        t->cmap = CNN_CMAP_GRAY;
        t->n_sel = t->n_maps < t->max_channels ? t->n_maps : t->max_channels;
        if (spec && spec->n_channels) {
            for (int i = 0; i < spec->n_channels; i++)
                if (spec->channels[i] >= t->n_maps)
                    return cnn_error_set(CNN_ERR_INPUT, "%s: 'channels' names channel %d; '%s' has %d", where,
                                         spec->channels[i], t->layer_name, t->n_maps);
            t->sel = spec->channels;
            t->n_sel = spec->n_channels;
        }
        t->steps = spec && spec->steps ? spec->steps : 256;
        t->lr = spec && spec->lr > 0 ? spec->lr : 0.05f;
        t->fourier = !(spec && spec->param && !strcmp(spec->param, "pixel"));
        t->decorrelate = spec && spec->has_decorrelate ? spec->decorrelate : true;
        t->colour_inputs = spec && spec->decorrelate_inputs;
        t->start_mean = !(spec && spec->start && !strcmp(spec->start, "grey"));
        t->transforms = spec && spec->has_transforms ? spec->transforms : true;
        t->tv = spec ? spec->tv : 0;
        t->blur_every = spec ? spec->blur_every : 0;
        t->blur_sigma = spec && spec->blur_sigma > 0 ? spec->blur_sigma : 0.5f;
        t->l2 = spec ? spec->l2 : 0;
        t->neuron = spec && spec->objective && !strcmp(spec->objective, "neuron");
        t->sign = spec && spec->sign ? spec->sign : 1;
        t->diversity = spec && spec->diversity ? spec->diversity : 1;
        t->div_weight = spec && spec->has_diversity_weight ? spec->diversity_weight : 100.0f;
        t->seed = spec && spec->has_seed ? (uint32_t)spec->seed : 0;
        t->img_h = spec && spec->size[0] ? spec->size[0] : g->in_h;
        t->img_w = spec && spec->size[1] ? spec->size[1] : g->in_w;
        t->own_net = t->img_h != g->in_h || t->img_w != g->in_w;
        if (spec && spec->cls) {
            /* a class: one unit of the network's output */
            if (t->kind != CNN_TAP_MAXIMIZE || layer != g->n - 1 || !ly->flat || spec->n_channels)
                return cnn_error_set(CNN_ERR_INPUT, "%s: 'class' with %s needs the network's last layer ('%s') and "
                                     "no 'channels'", where, kind, g->layers[g->n - 1].spec->name);
            if (!strncmp(spec->cls, "top", 3))
                return cnn_error_set(CNN_ERR_INPUT, "%s: maximize makes an image per class: class: an index or a "
                                     "label, not '%s'", where, spec->cls);
            CNN_TRY_RET(parse_class(t, spec->cls, t->n_maps, labels, n_labels, where));
            t->ch0 = t->cls_fixed;
            t->n_sel = 1;
        }
        return CNN_OK;
    }
    if (t->kind != CNN_TAP_ACTIVATIONS && !ly->weight)
        return cnn_error_set(CNN_ERR_INPUT, "%s: layer '%s' has no weights bound", where, t->layer_name);

    /* Defaults per kind: weights are signed (symmetric around 0, diverging
     * colormap) and compared across the layer; activations are stretched
     * per channel in gray.  A flat activation has 1x1 "channels", which
     * only a shared range can show. */
    bool weights_like = t->kind != CNN_TAP_ACTIVATIONS;
    t->flat = t->kind == CNN_TAP_ACTIVATIONS && (ly->flat || ly->h * ly->w == 1);
    t->scope = weights_like || t->flat ? CNN_SCOPE_LAYER : CNN_SCOPE_CHANNEL;
    t->is_signed = weights_like;
    t->cmap = weights_like ? CNN_CMAP_RDBU : CNN_CMAP_GRAY;
    if (spec) {
        if (spec->normalize) t->scope = (cnn_scope)find_name(cnn_scope_names, spec->normalize);
        if (spec->has_signed) t->is_signed = spec->is_signed;
        if (spec->has_fixed) {
            t->fixed[0] = spec->fixed[0];
            t->fixed[1] = spec->fixed[1];
        }
        if (spec->has_clip) {
            t->clip = true;
            t->clip_lo = spec->clip[0];
            t->clip_hi = spec->clip[1];
        }
        if (spec->colormap) t->cmap = (cnn_cmap)cnn_colormap_find(spec->colormap);
        else if (spec->has_signed && !weights_like && spec->is_signed) t->cmap = CNN_CMAP_RDBU;
        t->columns = spec->columns;
        t->max_channels = spec->max_channels;
        t->units = spec->units;
    }
    CNN_ASSERT((int)t->scope >= 0 && (int)t->cmap >= 0);
    if (t->flat && t->scope == CNN_SCOPE_CHANNEL) t->scope = CNN_SCOPE_LAYER;
    if (t->kind != CNN_TAP_ACTIVATIONS && t->scope == CNN_SCOPE_GLOBAL) t->scope = CNN_SCOPE_LAYER;
    if (t->units) {
        int c, h, w;
        if (t->kind != CNN_TAP_WEIGHTS || !flatten_source(g, layer, &c, &h, &w))
            return cnn_error_set(CNN_ERR_INPUT,
                                 "%s: 'units' needs a weights tap on a linear layer fed by a flatten of [C, H, W]",
                                 where);
        if (t->units > ly->c) t->units = ly->c;
    }
    if (t->kind == CNN_TAP_ACTIVATIONS) {
        t->n_maps = t->flat ? ly->c * ly->h * ly->w : ly->c;
        t->h = t->flat ? 1 : ly->h;
        t->w = t->flat ? 1 : ly->w;
    }
    return CNN_OK;
}

/* ---------------------------------------------------------------------- */
/* Context                                                                */

int cnn_vctx_init(cnn_vctx *v, cnn_cl *cl, const cnn_graph *g, cnn_png_pool *pool, cnn_manifest *m,
                  const char *out_dir, bool quiet)
{
    memset(v, 0, sizeof *v);
    v->cl = cl;
    v->g = g;
    v->pool = pool;
    v->manifest = m;
    v->out_dir = out_dir;
    v->quiet = quiet;
    return cnn_viz_init(&v->viz, cl);
}

void cnn_vctx_free(cnn_vctx *v)
{
    cnn_viz_free(&v->viz);
    free(v->last_dir);
    for (int i = 0; i < v->n_notes; i++) free(v->notes[i]);
    free(v->notes);
    memset(v, 0, sizeof *v);
}

int cnn_vctx_note(cnn_vctx *v, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (!v->quiet) cnn_logf(CNN_LOG_INFO, "note: %s", buf);
    char **p = cnn_realloc(v->notes, (size_t)(v->n_notes + 1) * sizeof *p);
    if (!p) return CNN_ERR_NOMEM;
    v->notes = p;
    if (!(p[v->n_notes] = cnn_strdup(buf))) return CNN_ERR_NOMEM;
    v->n_notes++;
    return CNN_OK;
}

/* ---------------------------------------------------------------------- */
/* Normalise and render one set of maps                                   */

typedef struct bufs {
    cl_mem stats, ranges, bounds, hist, tiles;
} bufs;

static void bufs_release(bufs *b)
{
    cl_mem *all[] = {&b->stats, &b->ranges, &b->bounds, &b->hist, &b->tiles};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        if (*all[i]) {
            clReleaseMemObject(*all[i]);
            *all[i] = NULL;
        }
}

static int bufs_create(cnn_cl *cl, bufs *b, int n_maps, int n_groups, bool clip, size_t tile_bytes,
                       const char *what)
{
    memset(b, 0, sizeof *b);
    int status = cnn_cl_buffer(cl, (size_t)n_maps * CNN_STATS_STRIDE * sizeof(float), &b->stats, what);
    if (status == CNN_OK) status = cnn_cl_buffer(cl, (size_t)n_groups * 2 * sizeof(float), &b->ranges, what);
    if (status == CNN_OK && clip) status = cnn_cl_buffer(cl, (size_t)n_groups * 2 * sizeof(float), &b->bounds, what);
    if (status == CNN_OK && clip)
        status = cnn_cl_buffer(cl, (size_t)n_groups * CNN_VIZ_BINS * sizeof(cl_uint), &b->hist, what);
    if (status == CNN_OK && tile_bytes) status = cnn_cl_buffer(cl, tile_bytes, &b->tiles, what);
    if (status < 0) bufs_release(b);
    return status;
}

typedef struct norm {
    cnn_scope scope; /* CHANNEL or LAYER or FIXED (global arrives as FIXED) */
    bool is_signed, clip;
    float clip_lo, clip_hi, fixed[2];
} norm;

static norm norm_of(const cnn_vtap *t)
{
    norm n = {t->scope, t->is_signed, t->clip, t->clip_lo, t->clip_hi, {t->fixed[0], t->fixed[1]}};
    if (t->scope == CNN_SCOPE_GLOBAL) {
        n.scope = CNN_SCOPE_FIXED;
        n.clip = false;
        n.fixed[0] = t->grange[0];
        n.fixed[1] = t->grange[1];
    }
    return n;
}

/* Stats, ranges and rendered tiles of n_maps maps (planes x h x w each). */
static int normalise_render(cnn_vctx *v, const bufs *b, cl_mem src, size_t off, int n_maps, int planes, int h, int w,
                            const norm *nm, cnn_cmap cmap, const char *what)
{
    size_t len = (size_t)planes * h * w;
    int group = nm->scope == CNN_SCOPE_CHANNEL ? 1 : n_maps, n_groups = n_maps / group;
    int status = cnn_viz_stats(&v->viz, src, off, len, len, n_maps, b->stats, what);
    if (status < 0) return status;
    if (nm->scope == CNN_SCOPE_FIXED) {
        status = cnn_viz_ranges_fixed(&v->viz, b->ranges, n_groups, nm->fixed[0], nm->fixed[1], what);
    } else if (nm->clip) {
        status = cnn_viz_ranges_minmax(&v->viz, b->stats, n_maps, group, false, b->bounds, what);
        if (status == CNN_OK)
            status = cnn_viz_histogram(&v->viz, src, off, len, len, n_maps, group, b->bounds, CNN_VIZ_BINS, false,
                                       b->hist, what);
        if (status == CNN_OK)
            status = cnn_viz_ranges_percentile(&v->viz, b->hist, CNN_VIZ_BINS, b->bounds, n_groups, nm->clip_lo,
                                               nm->clip_hi, nm->is_signed, b->ranges, what);
    } else {
        status = cnn_viz_ranges_minmax(&v->viz, b->stats, n_maps, group, nm->is_signed, b->ranges, what);
    }
    if (status < 0) return status;
    if (!b->tiles) return CNN_OK;
    return cnn_viz_render(&v->viz, src, off, len, n_maps, planes, h, w, b->ranges, group, cmap, b->tiles, 0, what);
}

/* Non-blocking reads; the caller waits with finish(). */
static int read_async(cnn_cl *cl, cl_mem buf, size_t bytes, void *dst, const char *what)
{
    int status = CNN_OK;
    CNN_CL_TRY(clEnqueueReadBuffer(cl->queue, buf, CL_FALSE, 0, bytes, dst, 0, NULL, NULL), what, fail);
fail:
    return status;
}

static int finish(cnn_cl *cl, const char *what)
{
    int status = CNN_OK;
    CNN_CL_TRY(clFinish(cl->queue), what, fail);
fail:
    return status;
}

/* Waits for the queue even after a failed enqueue: reads already queued
 * into host memory must land before that memory is freed. */
static int settle(cnn_cl *cl, int status, const char *what)
{
    int fs = finish(cl, what);
    return status < 0 ? status : fs;
}

/* Summary of maps [from, from + count) of a stats buffer read to the host:
 * min, max, mean, std over all their finite values (Chan's merge), and the
 * count of non-finite values. */
static void summarise(const float *st, int from, int count, double out[4], int64_t *nonfinite)
{
    double n = 0, mean = 0, m2 = 0, mn = INFINITY, mx = -INFINITY;
    int64_t bad = 0;
    for (int m = from; m < from + count; m++) {
        const float *s = st + (size_t)m * CNN_STATS_STRIDE;
        bad += (int64_t)s[CNN_ST_NAN] + (int64_t)s[CNN_ST_POSINF] + (int64_t)s[CNN_ST_NEGINF];
        double nb = s[CNN_ST_FINITE];
        if (nb <= 0) continue;
        double mb = s[CNN_ST_MEAN], m2b = (double)s[CNN_ST_STD] * s[CNN_ST_STD] * nb;
        double d = mb - mean, tot = n + nb;
        mean += d * nb / tot;
        m2 += m2b + d * d * n * nb / tot;
        n = tot;
        mn = fmin(mn, s[CNN_ST_MIN]);
        mx = fmax(mx, s[CNN_ST_MAX]);
    }
    if (n == 0) mn = mx = 0;
    out[0] = mn;
    out[1] = mx;
    out[2] = mean;
    out[3] = n > 0 ? sqrt(m2 / n) : 0;
    *nonfinite = bad;
}

/* Joins out_dir and rel and makes the folder of the result; consecutive
 * files mostly share a folder (the channels of a tap), which is made once. */
static char *out_path(cnn_vctx *v, const char *rel, int *status)
{
    *status = CNN_OK;
    char *p = cnn_path_join(v->out_dir, rel);
    char *d = p ? cnn_path_dir(p) : NULL;
    if (!d) {
        free(p);
        *status = CNN_ERR_NOMEM;
        return NULL;
    }
    if (!v->last_dir || strcmp(v->last_dir, d) != 0) {
        *status = cnn_mkdirs(d, 0755);
        free(v->last_dir);
        v->last_dir = *status == CNN_OK ? d : NULL;
        if (*status < 0) free(d);
    } else {
        free(d);
    }
    if (*status < 0) {
        free(p);
        return NULL;
    }
    return p;
}

/* Queues one PNG and lists it. */
int cnn_vctx_emit(cnn_vctx *v, const char *rel, cnn_png_buf *buf, size_t off, int w, int h, int c,
                cnn_manifest_entry *e)
{
    int status;
    char *p = out_path(v, rel, &status);
    if (!p) return status;
    status = cnn_png_pool_submit(v->pool, p, buf, off, w, h, c);
    free(p);
    if (status < 0) return status;
    e->path = (char *)rel;
    e->format = "png";
    e->ndim = c == 1 ? 2 : 3;
    e->shape[0] = h;
    e->shape[1] = w;
    e->shape[2] = c;
    return cnn_manifest_add(v->manifest, e);
}

static const char *cmap_label(const cnn_vtap *t, int planes)
{
    return planes == 3 ? "rgb" : cnn_colormap_name(t->cmap);
}

static const char *scope_label(const cnn_vtap *t) { return cnn_scope_names[t->scope]; }

static uint8_t sep_of(cnn_cmap cmap) { return cmap == CNN_CMAP_RDBU ? 0 : 255; }

/* ---------------------------------------------------------------------- */
/* Activations                                                            */

int cnn_vtap_prepare(cnn_vctx *v, cnn_vtap *t)
{
    char what[256];
    snprintf(what, sizeof what, "%s activations", t->layer_name);
    t->ncomp = cnn_viz_ncomp(1, t->cmap);
    cnn_montage_plan(t->n_maps, t->h, t->w, t->columns, MIN_TILE, MAX_SIDE, &t->mg);
    int n_groups = t->scope == CNN_SCOPE_CHANNEL ? t->n_maps : 1;
    bufs b;
    size_t tile_bytes = (size_t)t->n_maps * t->h * t->w * t->ncomp;
    int status = bufs_create(v->cl, &b, t->n_maps, n_groups, t->clip, tile_bytes, what);
    if (status < 0) return status;
    t->stats = b.stats;
    t->ranges = b.ranges;
    t->bounds = b.bounds;
    t->hist = b.hist;
    t->tiles = b.tiles;
    status = cnn_cl_buffer(v->cl, (size_t)t->mg.width * t->mg.height * t->ncomp, &t->mont, what);
    t->host_stats = cnn_malloc((size_t)t->n_maps * CNN_STATS_STRIDE * sizeof(float));
    t->host_ranges = cnn_malloc((size_t)n_groups * 2 * sizeof(float));
    if (status == CNN_OK && (!t->host_stats || !t->host_ranges)) status = CNN_ERR_NOMEM;
    t->gmin = INFINITY;
    t->gmax = -INFINITY;
    if (status == CNN_OK && t->mg.n_shown < t->mg.n)
        status = cnn_vctx_note(v, "%s activations: the montage shows %d of %d channels (%d px limit); every channel "
                               "has its own PNG", t->layer_name, t->mg.n_shown, t->mg.n, MAX_SIDE);
    return status;
}

void cnn_vtap_release(cnn_vtap *t)
{
    bufs b = {t->stats, t->ranges, t->bounds, t->hist, t->tiles};
    bufs_release(&b);
    if (t->mont) clReleaseMemObject(t->mont);
    t->stats = t->ranges = t->bounds = t->hist = t->tiles = t->mont = NULL;
    free(t->host_stats);
    free(t->host_ranges);
    t->host_stats = t->host_ranges = NULL;
}

int cnn_vtap_global_minmax(cnn_vctx *v, cnn_vtap *t, cl_mem src, size_t off)
{
    size_t len = (size_t)t->h * t->w;
    int status = cnn_viz_stats(&v->viz, src, off, len, len, t->n_maps, t->stats, t->layer_name);
    if (status == CNN_OK)
        status = cnn_cl_read(v->cl, t->stats, 0, (size_t)t->n_maps * CNN_STATS_STRIDE * sizeof(float),
                             t->host_stats, t->layer_name);
    if (status < 0) return status;
    for (int m = 0; m < t->n_maps; m++) {
        const float *s = t->host_stats + (size_t)m * CNN_STATS_STRIDE;
        if (s[CNN_ST_FINITE] <= 0) continue;
        t->gmin = fmin(t->gmin, s[CNN_ST_MIN]);
        t->gmax = fmax(t->gmax, s[CNN_ST_MAX]);
        t->g_any = true;
    }
    return CNN_OK;
}

int cnn_vtap_global_hist(cnn_vctx *v, cnn_vtap *t, cl_mem src, size_t off, bool first)
{
    size_t len = (size_t)t->h * t->w;
    float lo = t->g_any ? (float)t->gmin : 0, hi = t->g_any ? (float)t->gmax : 0;
    int status = first ? cnn_viz_ranges_fixed(&v->viz, t->bounds, 1, lo, hi, t->layer_name) : CNN_OK;
    if (status == CNN_OK)
        status = cnn_viz_histogram(&v->viz, src, off, len, len, t->n_maps, t->n_maps, t->bounds, CNN_VIZ_BINS, !first,
                                   t->hist, t->layer_name);
    return status;
}

int cnn_vtap_global_set(cnn_vctx *v, cnn_vtap *t, double gmin, double gmax, bool any, const uint32_t *hist)
{
    t->gmin = gmin;
    t->gmax = gmax;
    t->g_any = any;
    if (!hist || !t->hist) return CNN_OK;
    float lo = any ? (float)gmin : 0, hi = any ? (float)gmax : 0;
    CNN_TRY_RET(cnn_viz_ranges_fixed(&v->viz, t->bounds, 1, lo, hi, t->layer_name));
    return cnn_cl_write(v->cl, t->hist, 0, CNN_VIZ_BINS * sizeof *hist, hist, t->layer_name);
}

int cnn_vtap_global_read_hist(cnn_vctx *v, cnn_vtap *t, uint32_t *hist)
{
    return cnn_cl_read(v->cl, t->hist, 0, CNN_VIZ_BINS * sizeof *hist, hist, t->layer_name);
}

int cnn_vtap_global_finish(cnn_vctx *v, cnn_vtap *t)
{
    double lo = t->g_any ? t->gmin : 0, hi = t->g_any ? t->gmax : 0;
    if (t->clip) {
        float r[2];
        int status = cnn_viz_ranges_percentile(&v->viz, t->hist, CNN_VIZ_BINS, t->bounds, 1, t->clip_lo, t->clip_hi,
                                               t->is_signed, t->ranges, t->layer_name);
        if (status == CNN_OK) status = cnn_cl_read(v->cl, t->ranges, 0, sizeof r, r, t->layer_name);
        if (status < 0) return status;
        lo = r[0];
        hi = r[1];
    } else if (t->is_signed) {
        double a = fmax(fabs(lo), fabs(hi));
        lo = -a;
        hi = a;
    }
    t->grange[0] = (float)lo;
    t->grange[1] = (float)hi;
    return CNN_OK;
}

static int report_nonfinite(cnn_vctx *v, cnn_vtap *t, int64_t bad, const char *input)
{
    if (!bad || t->warned_nonfinite) return CNN_OK;
    t->warned_nonfinite = true;
    return cnn_vctx_note(v, "%s: %lld NaN/Inf values in %s%s (drawn at the ends of the range, left out of it)",
                         t->layer_name, (long long)bad, input ? "the output for " : "the weights",
                         input ? input : "");
}

int cnn_vtap_activations(cnn_vctx *v, cnn_vtap *t, cl_mem src, size_t off, const char *input, const char *stem)
{
    char what[256];
    snprintf(what, sizeof what, "%s activations", t->layer_name);
    norm nm = norm_of(t);
    bufs b = {t->stats, t->ranges, t->bounds, t->hist, t->tiles};
    int status = normalise_render(v, &b, src, off, t->n_maps, 1, t->h, t->w, &nm, t->cmap, what);
    if (status == CNN_OK)
        status = cnn_viz_montage(&v->viz, t->tiles, 0, t->ncomp, &t->mg, sep_of(t->cmap), t->mont, 0, what);
    if (status < 0) return status;

    size_t tile_bytes = (size_t)t->n_maps * t->h * t->w * t->ncomp;
    size_t mont_bytes = (size_t)t->mg.width * t->mg.height * t->ncomp;
    bool channels = !t->flat;
    cnn_png_buf *pb = cnn_png_buf_new(mont_bytes + (channels ? tile_bytes : 0));
    if (!pb) return CNN_ERR_NOMEM;
    uint8_t *px = cnn_png_buf_data(pb);
    int n_groups = t->scope == CNN_SCOPE_CHANNEL ? t->n_maps : 1;
    status = read_async(v->cl, t->mont, mont_bytes, px, what);
    if (status == CNN_OK && channels) status = read_async(v->cl, t->tiles, tile_bytes, px + mont_bytes, what);
    if (status == CNN_OK)
        status = read_async(v->cl, t->stats, (size_t)t->n_maps * CNN_STATS_STRIDE * sizeof(float), t->host_stats,
                            what);
    if (status == CNN_OK)
        status = read_async(v->cl, t->ranges, (size_t)n_groups * 2 * sizeof(float), t->host_ranges, what);
    status = settle(v->cl, status, what);
    if (status < 0) goto done;

    double sum[4];
    int64_t bad;
    summarise(t->host_stats, 0, t->n_maps, sum, &bad);
    CNN_TRY(report_nonfinite(v, t, bad, input), done);
    char rel[512];
    snprintf(rel, sizeof rel, "%s/%s/activations.png", stem, t->dir);
    cnn_manifest_entry e = {.kind = "activations", .role = "montage", .layer = (char *)t->layer_name,
                            .input = (char *)input, .channel = -1, .normalize = (char *)scope_label(t),
                            .colormap = (char *)cmap_label(t, 1), .has_stats = 1, .nonfinite = bad};
    memcpy(e.stats, sum, sizeof sum);
    if (n_groups == 1) {
        e.has_range = 1;
        e.range[0] = t->host_ranges[0];
        e.range[1] = t->host_ranges[1];
    }
    char note[160] = "";
    if (t->mg.n_shown < t->mg.n) {
        snprintf(note, sizeof note, "showing %d of %d channels", t->mg.n_shown, t->mg.n);
        e.note = note;
    }
    CNN_TRY(cnn_vctx_emit(v, rel, pb, 0, t->mg.width, t->mg.height, t->ncomp, &e), done);
    if (channels) {
        size_t per = (size_t)t->h * t->w * t->ncomp;
        for (int m = 0; m < t->n_maps; m++) {
            snprintf(rel, sizeof rel, "%s/%s/activations/c%03d.png", stem, t->dir, m);
            cnn_manifest_entry c = e;
            c.role = "channel";
            c.note = NULL;
            c.channel = m;
            summarise(t->host_stats, m, 1, c.stats, &c.nonfinite);
            int gi = n_groups == 1 ? 0 : m;
            c.has_range = 1;
            c.range[0] = t->host_ranges[2 * gi];
            c.range[1] = t->host_ranges[2 * gi + 1];
            CNN_TRY(cnn_vctx_emit(v, rel, pb, mont_bytes + (size_t)m * per, t->w, t->h, t->ncomp, &c), done);
        }
    }
done:
    cnn_png_buf_release(pb);
    return status;
}

/* ---------------------------------------------------------------------- */
/* Filters and weights                                                    */

static int upload(cnn_cl *cl, const float *data, size_t n, cl_mem *out, const char *what)
{
    int status = cnn_cl_buffer(cl, n * sizeof(float), out, what);
    if (status == CNN_OK) status = cnn_cl_write(cl, *out, 0, n * sizeof(float), data, what);
    return status;
}

/* Renders n_maps maps from host data, builds `n_mont` montages (montage k
 * of tiles [first[k], first[k] + mg[k].n)) and queues them as PNGs. */
typedef struct mont_spec {
    int first;
    cnn_montage mg;
    char rel[512];
    cnn_manifest_entry e;
} mont_spec;

static int render_host_maps(cnn_vctx *v, cnn_vtap *t, const float *data, int n_maps, int planes, int h, int w,
                            mont_spec *ms, int n_mont, const char *what)
{
    cl_mem src = NULL, mont = NULL;
    bufs b = {0};
    cnn_png_buf *pb = NULL;
    size_t len = (size_t)planes * h * w;
    norm nm = norm_of(t);
    int group = nm.scope == CNN_SCOPE_CHANNEL ? 1 : n_maps, n_groups = n_maps / group;
    int ncomp = cnn_viz_ncomp(planes, t->cmap);
    size_t total = 0;
    float *st = cnn_malloc((size_t)n_maps * CNN_STATS_STRIDE * sizeof(float));
    float *rg = cnn_malloc((size_t)n_groups * 2 * sizeof(float));
    int status = st && rg ? CNN_OK : CNN_ERR_NOMEM;
    for (int k = 0; k < n_mont; k++) total += (size_t)ms[k].mg.width * ms[k].mg.height * ncomp;
    if (status == CNN_OK) status = upload(v->cl, data, (size_t)n_maps * len, &src, what);
    if (status == CNN_OK)
        status = bufs_create(v->cl, &b, n_maps, n_groups, nm.clip, (size_t)n_maps * h * w * ncomp, what);
    if (status == CNN_OK) status = cnn_cl_buffer(v->cl, total, &mont, what);
    if (status == CNN_OK) status = normalise_render(v, &b, src, 0, n_maps, planes, h, w, &nm, t->cmap, what);
    size_t at = 0;
    for (int k = 0; k < n_mont && status == CNN_OK; k++) {
        size_t tile = (size_t)h * w * ncomp;
        status = cnn_viz_montage(&v->viz, b.tiles, (size_t)ms[k].first * tile, ncomp, &ms[k].mg, sep_of(t->cmap),
                                 mont, at, what);
        at += (size_t)ms[k].mg.width * ms[k].mg.height * ncomp;
    }
    if (status == CNN_OK && !(pb = cnn_png_buf_new(total))) status = CNN_ERR_NOMEM;
    if (status == CNN_OK) status = read_async(v->cl, mont, total, cnn_png_buf_data(pb), what);
    if (status == CNN_OK)
        status = read_async(v->cl, b.stats, (size_t)n_maps * CNN_STATS_STRIDE * sizeof(float), st, what);
    if (status == CNN_OK) status = read_async(v->cl, b.ranges, (size_t)n_groups * 2 * sizeof(float), rg, what);
    status = settle(v->cl, status, what);
    at = 0;
    for (int k = 0; k < n_mont && status == CNN_OK; k++) {
        cnn_manifest_entry *e = &ms[k].e;
        e->normalize = (char *)scope_label(t);
        e->colormap = (char *)cmap_label(t, planes);
        e->has_stats = 1;
        int from = ms[k].first, count = ms[k].mg.n;
        summarise(st, from, count, e->stats, &e->nonfinite);
        if (e->nonfinite) status = report_nonfinite(v, t, e->nonfinite, NULL);
        /* One range when the montage's maps share a group. */
        if (group == n_maps || count == 1) {
            int gi = group == n_maps ? 0 : from;
            e->has_range = 1;
            e->range[0] = rg[2 * gi];
            e->range[1] = rg[2 * gi + 1];
        }
        if (status == CNN_OK) status = cnn_vctx_emit(v, ms[k].rel, pb, at, ms[k].mg.width, ms[k].mg.height, ncomp, e);
        at += (size_t)ms[k].mg.width * ms[k].mg.height * ncomp;
    }
    cnn_png_buf_release(pb);
    bufs_release(&b);
    if (src) clReleaseMemObject(src);
    if (mont) clReleaseMemObject(mont);
    free(st);
    free(rg);
    return status;
}

int cnn_vtap_filters(cnn_vctx *v, cnn_vtap *t)
{
    const cnn_layer *ly = &v->g->layers[t->layer];
    const cnn_conv_geom *cg = &ly->conv;
    int co = cg->co, cpg = cg->ci / cg->groups, kh = cg->kh, kw = cg->kw;
    bool rgb = cpg == 3;
    int cap = t->max_channels ? t->max_channels : DEFAULT_MAX_FILTERS;
    int nf = co < cap ? co : cap, nc = rgb ? 3 : (cpg < cap ? cpg : cap);
    char what[256];
    snprintf(what, sizeof what, "%s filters", t->layer_name);
    if (nf < co || nc < cpg) {
        int status = rgb || nc == cpg
                         ? cnn_vctx_note(v, "%s filters: showing %d of %d filters (max_channels: %d)", t->layer_name,
                                         nf, co, cap)
                         : cnn_vctx_note(v, "%s filters: showing %d of %d filters x %d of %d input channels "
                                         "(max_channels: %d)", t->layer_name, nf, co, nc, cpg, cap);
        if (status < 0) return status;
    }
    /* The first nf filters and nc input channels, contiguous. */
    size_t k2 = (size_t)kh * kw;
    float *data = cnn_malloc((size_t)nf * nc * k2 * sizeof(float));
    mont_spec *ms = cnn_calloc((size_t)nf + 1, sizeof *ms);
    int status = data && ms ? CNN_OK : CNN_ERR_NOMEM;
    if (status < 0) goto done;
    for (int f = 0; f < nf; f++)
        for (int c = 0; c < nc; c++)
            memcpy(data + ((size_t)f * nc + c) * k2, ly->weight + ((size_t)f * cpg + c) * k2, k2 * sizeof(float));
    int n_maps = rgb ? nf : nf * nc, planes = rgb ? 3 : 1;
    /* The grid: one row per filter, one column per input channel (a
     * depthwise layer's single column is folded into a square). */
    int cols = t->columns ? t->columns : (rgb || nc == 1 ? 0 : nc);
    cnn_montage_plan(n_maps, kh, kw, cols, FILTER_MIN_TILE, MAX_SIDE, &ms[0].mg);
    snprintf(ms[0].rel, sizeof ms[0].rel, "model/%s/filters.png", t->dir);
    char note[160] = "";
    if (nf < co || nc < cpg) snprintf(note, sizeof note, "showing %d of %d filters x %d of %d input channels", nf, co,
                                      rgb ? 3 : nc, cpg);
    ms[0].e = (cnn_manifest_entry){.kind = "filters", .role = "montage", .layer = (char *)t->layer_name,
                                   .channel = -1, .note = note[0] ? note : NULL};
    int per = rgb ? 1 : nc;
    for (int f = 0; f < nf; f++) {
        mont_spec *m = &ms[f + 1];
        m->first = f * per;
        cnn_montage_plan(per, kh, kw, 0, MIN_TILE, MAX_SIDE, &m->mg);
        snprintf(m->rel, sizeof m->rel, "model/%s/filters/f%03d.png", t->dir, f);
        m->e = (cnn_manifest_entry){.kind = "filters", .role = "filter", .layer = (char *)t->layer_name, .channel = f};
    }
    status = render_host_maps(v, t, data, n_maps, planes, kh, kw, ms, nf + 1, what);
done:
    free(data);
    free(ms);
    return status;
}

int cnn_vtap_weights(cnn_vctx *v, cnn_vtap *t)
{
    const cnn_layer *ly = &v->g->layers[t->layer];
    int out = ly->c, in = (int)(ly->n_weight / (size_t)out);
    int rows = out < MAX_SIDE ? out : MAX_SIDE, cols = in < MAX_SIDE ? in : MAX_SIDE;
    char what[256];
    snprintf(what, sizeof what, "%s weights", t->layer_name);
    int status = CNN_OK;
    char note[200] = "";
    if (rows < out || cols < in) {
        snprintf(note, sizeof note, "showing rows 0..%d of %d and columns 0..%d of %d", rows - 1, out, cols - 1, in);
        if ((status = cnn_vctx_note(v, "%s weights: %s", t->layer_name, note)) < 0) return status;
    }
    float *data = cnn_malloc((size_t)rows * cols * sizeof(float));
    if (!data) return CNN_ERR_NOMEM;
    for (int r = 0; r < rows; r++) memcpy(data + (size_t)r * cols, ly->weight + (size_t)r * in, (size_t)cols * 4);
    mont_spec m = {0};
    cnn_montage_plan(1, rows, cols, 1, MATRIX_MIN_TILE, MAX_SIDE, &m.mg);
    snprintf(m.rel, sizeof m.rel, "model/%s/weights.png", t->dir);
    m.e = (cnn_manifest_entry){.kind = "weights", .role = "matrix", .layer = (char *)t->layer_name, .channel = -1,
                               .note = note[0] ? note : NULL};
    status = render_host_maps(v, t, data, 1, 1, rows, cols, &m, 1, what);
    free(data);
    if (status < 0 || !t->units) return status;

    /* Each unit's weights over the flattened [C, H, W] input, as C maps. */
    int c, h, w;
    CNN_ASSERT(flatten_source(v->g, t->layer, &c, &h, &w) && c * h * w == in);
    mont_spec *ms = cnn_calloc((size_t)t->units, sizeof *ms);
    if (!ms) return CNN_ERR_NOMEM;
    for (int u = 0; u < t->units; u++) {
        ms[u].first = u * c;
        cnn_montage_plan(c, h, w, t->columns, MIN_TILE, MAX_SIDE, &ms[u].mg);
        snprintf(ms[u].rel, sizeof ms[u].rel, "model/%s/units/u%03d.png", t->dir, u);
        ms[u].e = (cnn_manifest_entry){.kind = "weights", .role = "unit", .layer = (char *)t->layer_name,
                                       .channel = u};
    }
    /* Per-layer scope across all shown units; per-channel stretches each map. */
    status = render_host_maps(v, t, ly->weight, t->units * c, 1, h, w, ms, t->units, what);
    free(ms);
    return status;
}

/* ---------------------------------------------------------------------- */
/* The input image                                                        */

int cnn_vctx_input_image(cnn_vctx *v, const cnn_input_spec *in, cl_mem src, size_t off, const char *input,
                         const char *stem)
{
    float a[3], b[3];
    for (int c = 0; c < in->c; c++) {
        a[c] = in->std[c] / in->scale;
        b[c] = in->mean[c] / in->scale;
    }
    size_t bytes = (size_t)in->h * in->w * in->c;
    cl_mem dst = NULL;
    cnn_png_buf *pb = cnn_png_buf_new(bytes);
    if (!pb) return CNN_ERR_NOMEM;
    int status = cnn_cl_buffer(v->cl, bytes, &dst, "input image");
    if (status == CNN_OK) status = cnn_viz_input_image(&v->viz, src, off, in->c, in->h, in->w, a, b, dst, input);
    if (status == CNN_OK) status = cnn_cl_read(v->cl, dst, 0, bytes, cnn_png_buf_data(pb), input);
    if (dst) clReleaseMemObject(dst);
    if (status == CNN_OK) {
        char rel[512];
        snprintf(rel, sizeof rel, "%s/input.png", stem);
        cnn_manifest_entry e = {.kind = "input", .role = "input", .input = (char *)input, .channel = -1};
        status = cnn_vctx_emit(v, rel, pb, 0, in->w, in->h, in->c, &e);
    }
    cnn_png_buf_release(pb);
    return status;
}

/* ---------------------------------------------------------------------- */
/* Attribution maps                                                       */

int cnn_vctx_input_u8(cnn_vctx *v, const cnn_input_spec *in, cl_mem src, size_t off, cl_mem dst, const char *input)
{
    float a[3], b[3];
    for (int c = 0; c < in->c; c++) {
        a[c] = in->std[c] / in->scale;
        b[c] = in->mean[c] / in->scale;
    }
    return cnn_viz_input_image(&v->viz, src, off, in->c, in->h, in->w, a, b, dst, input);
}

int cnn_vtap_map(cnn_vctx *v, cnn_vtap *t, cl_mem src, size_t off, int h, int w, cl_mem img8, int c_img, int cls,
                 const char *input, const char *stem, bool npy, cl_mem raw, size_t raw_off, int raw_h, int raw_w,
                 const char *note)
{
    const char *method = cnn_gmethod_names[t->method];
    char what[256], name[200];
    snprintf(what, sizeof what, "%s %s", t->layer_name, method);
    if (cnn_gm_is_cam(t->method))
        snprintf(name, sizeof name, "%s_%s", method, t->dir);
    else
        snprintf(name, sizeof name, "%s", method);
    norm nm = norm_of(t);
    int ncomp = cnn_viz_ncomp(1, t->cmap);
    size_t px = (size_t)h * w;
    cnn_png_buf *pb = NULL;
    float st[CNN_STATS_STRIDE], rg[2];
    float *host_raw = NULL;
    bool overlay = ncomp == 3 && img8;
    int status = CNN_OK;
    /* Every map of a tap has the input's size: its buffers are made once
     * and kept in the tap (released by cnn_vtap_release). */
    if (!t->stats) {
        bufs nb;
        CNN_TRY_RET(bufs_create(v->cl, &nb, 1, 1, nm.clip, px * ncomp, what));
        t->stats = nb.stats;
        t->ranges = nb.ranges;
        t->bounds = nb.bounds;
        t->hist = nb.hist;
        t->tiles = nb.tiles;
        CNN_TRY_RET(cnn_cl_buffer(v->cl, px * 3, &t->mont, what));
    }
    bufs b = {t->stats, t->ranges, t->bounds, t->hist, t->tiles};
    cl_mem ov = t->mont;
    if (status == CNN_OK) status = normalise_render(v, &b, src, off, 1, 1, h, w, &nm, t->cmap, what);
    if (status == CNN_OK && overlay) status = cnn_gm_overlay(v->cl, img8, c_img, b.tiles, px, t->alpha, ov, what);
    if (status == CNN_OK && !(pb = cnn_png_buf_new(px * ncomp + (overlay ? px * 3 : 0)))) status = CNN_ERR_NOMEM;
    if (status == CNN_OK && npy && !(host_raw = cnn_malloc((size_t)raw_h * raw_w * sizeof(float))))
        status = CNN_ERR_NOMEM;
    uint8_t *data = pb ? cnn_png_buf_data(pb) : NULL;
    if (status == CNN_OK) status = read_async(v->cl, b.tiles, px * ncomp, data, what);
    if (status == CNN_OK && overlay) status = read_async(v->cl, ov, px * 3, data + px * ncomp, what);
    if (status == CNN_OK) status = read_async(v->cl, b.stats, sizeof st, st, what);
    if (status == CNN_OK) status = read_async(v->cl, b.ranges, sizeof rg, rg, what);
    if (status == CNN_OK && npy) {
        CNN_CL_TRY(clEnqueueReadBuffer(v->cl->queue, raw, CL_FALSE, raw_off * sizeof(float),
                                       (size_t)raw_h * raw_w * sizeof(float), host_raw, 0, NULL, NULL),
                   what, rd_fail);
    }
rd_fail:
    status = settle(v->cl, status, what);
    char rel[512];
    cnn_manifest_entry e = {.kind = (char *)method, .role = "map", .layer = (char *)t->layer_name,
                            .input = (char *)input, .channel = -1, .normalize = (char *)scope_label(t),
                            .colormap = (char *)cmap_label(t, 1), .has_stats = 1, .has_range = 1,
                            .has_cls = 1, .cls = cls, .note = (char *)note,
                            .label = cls < v->n_labels ? v->labels[cls] : NULL};
    if (status == CNN_OK) {
        summarise(st, 0, 1, e.stats, &e.nonfinite);
        e.range[0] = rg[0];
        e.range[1] = rg[1];
        status = report_nonfinite(v, t, e.nonfinite, input);
    }
    if (status == CNN_OK) {
        snprintf(rel, sizeof rel, "%s/%s_c%d.png", stem, name, cls);
        status = cnn_vctx_emit(v, rel, pb, 0, w, h, ncomp, &e);
        t->entry = v->manifest->n - 1;
    }
    if (status == CNN_OK && overlay) {
        snprintf(rel, sizeof rel, "%s/%s_c%d_overlay.png", stem, name, cls);
        cnn_manifest_entry o = e;
        o.role = "overlay";
        status = cnn_vctx_emit(v, rel, pb, px * ncomp, w, h, 3, &o);
    }
    if (status == CNN_OK && npy) {
        snprintf(rel, sizeof rel, "%s/%s_c%d.npy", stem, name, cls);
        char *p = out_path(v, rel, &status);
        int64_t shape[2] = {raw_h, raw_w};
        if (p) status = cnn_npy_write_f32(p, host_raw, shape, 2);
        free(p);
        if (status == CNN_OK) {
            cnn_manifest_entry r = {.path = rel, .kind = (char *)method, .role = "tensor",
                                    .layer = (char *)t->layer_name, .input = (char *)input, .channel = -1,
                                    .format = "npy", .ndim = 2, .shape = {raw_h, raw_w}, .has_cls = 1, .cls = cls,
                                    .label = e.label};
            status = cnn_manifest_add(v->manifest, &r);
        }
    }
    cnn_png_buf_release(pb);
    free(host_raw);
    return status;
}

int cnn_vctx_render_map(cnn_vctx *v, cl_mem src, size_t off, int h, int w, cnn_cmap cmap, bool is_signed, bool clip,
                        cl_mem img8, int c_img, float alpha, uint8_t *out)
{
    const char *what = "render";
    size_t px = (size_t)h * w;
    int ncomp = cnn_viz_ncomp(1, cmap);
    norm nm = {CNN_SCOPE_LAYER, is_signed, clip, 0.5f, 99.5f, {0, 0}};
    bufs b;
    cl_mem ov = NULL;
    CNN_TRY_RET(bufs_create(v->cl, &b, 1, 1, clip, px * ncomp, what));
    int status = img8 ? cnn_cl_buffer(v->cl, px * 3, &ov, what) : CNN_OK;
    if (status == CNN_OK) status = normalise_render(v, &b, src, off, 1, 1, h, w, &nm, cmap, what);
    if (status == CNN_OK && img8) status = cnn_gm_overlay(v->cl, img8, c_img, b.tiles, px, alpha, ov, what);
    if (status == CNN_OK) status = read_async(v->cl, img8 ? ov : b.tiles, px * (img8 ? 3 : ncomp), out, what);
    status = settle(v->cl, status, what);
    if (ov) clReleaseMemObject(ov);
    bufs_release(&b);
    return status;
}
