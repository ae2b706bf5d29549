/* A job without an output folder, for the library (pipeline/session.h).
 * It builds what `cnnviz-cl run` builds in gradient mode (every tensor
 * kept, the backward pass, the methods' scratch) and computes maps through
 * the method table, with cnn_method_emit copying each finished map to the
 * caller instead of drawing it. */
#define _POSIX_C_SOURCE 200809L
#include "pipeline/session.h"
#include "pipeline/job_impl.h"
#include "pipeline/methods.h"
#include "core/error.h"
#include "core/util.h"
#include "ops/blas.h"
#include "ops/tune.h"
#include "viz/colormap.h"
#include "viz/gradmap.h"

#include <stdlib.h>
#include <string.h>

struct cnn_session {
    cnn_job s;
    int max_batch;
    int nb;           /* images in the last run */
    bool stale;       /* the network's tensors were overwritten since (own-pass methods): rerun */
};

static void session_free_job(cnn_job *s)
{
    cnn_job_free_gradients(s);
    if (s->viz_ready) cnn_vctx_free(&s->viz);
    if (s->net_ready) cnn_net_free(&s->net);
    if (s->cl_ready) cnn_cl_free(&s->cl);
    cnn_model_free(&s->l);
    free(s->taps);
    free(s->keep);
    cnn_manifest_free(&s->manifest);
    free(s->logits);
}

void cnn_session_close(cnn_session *ss)
{
    if (!ss) return;
    session_free_job(&ss->s);
    free(ss);
}

int cnn_session_open(const cnn_session_opts *o, cnn_session **out)
{
    *out = NULL;
    if (o->max_batch < 1 || o->max_batch > 4096)
        return cnn_error_set(CNN_ERR_USAGE, "max_batch %d: give 1 to 4096 images per run", o->max_batch);
    cnn_session *ss = cnn_calloc(1, sizeof *ss);
    if (!ss) return CNN_ERR_NOMEM;
    cnn_job *s = &ss->s;
    ss->max_batch = o->max_batch;
    cnn_job_opts_init(&s->o);
    s->o.config = o->model.config;
    s->o.quiet = true;
    s->session = true;
    cnn_model_opts mo = o->model;
    mo.read_weights = true; /* a library maps nothing a rewrite could fault */
    int status = cnn_model_load(&mo, &s->l);
    if (status < 0) goto fail;
    const cnn_graph *g = &s->l.graph;
    s->keep = cnn_calloc((size_t)g->n, sizeof *s->keep);
    s->taps = cnn_calloc(1, sizeof *s->taps);
    s->logits = cnn_malloc((size_t)o->max_batch * cnn_layer_numel(&g->layers[g->n - 1]) * sizeof(float));
    if (!s->keep || !s->taps || !s->logits) {
        status = CNN_ERR_NOMEM;
        goto fail;
    }
    for (int i = 0; i < g->n; i++) s->keep[i] = true; /* every layer's activations readable */
    s->gradients = o->gradients;
    s->attrib = !s->l.pipe.input.tensor;
    CNN_TRY(cnn_cl_init(&s->cl, o->platform, o->device, false), fail);
    s->cl_ready = true;
    cnn_blas_apply_defaults(&s->cl);
    cnn_tune_apply(&s->cl);
    CNN_TRY(cnn_job_check_memory(s, o->max_batch), fail);
    CNN_TRY(cnn_vctx_init(&s->viz, &s->cl, &s->l.graph, NULL, &s->manifest, NULL, true), fail);
    s->viz_ready = true;
    /* The host parameters stay: cnnviz_parameter reads them. */
    CNN_TRY(cnn_net_create(&s->net, &s->cl, &s->l.graph, s->keep, o->max_batch,
                           s->gradients ? CNN_NET_BACKWARD : CNN_NET_FORWARD), fail);
    s->net_ready = true;
    if (s->attrib) CNN_TRY(cnn_job_setup_gradients(s, o->max_batch), fail);
    *out = ss;
    return CNN_OK;
fail:
    cnn_session_close(ss);
    return status;
}

const cnn_model *cnn_session_model(const cnn_session *ss) { return &ss->s.l; }
const cnn_cl *cnn_session_cl(const cnn_session *ss) { return &ss->s.cl; }
int cnn_session_max_batch(const cnn_session *ss) { return ss->max_batch; }
int cnn_session_batch(const cnn_session *ss) { return ss->nb; }
void cnn_session_forget(cnn_session *ss) { ss->nb = 0; }

static int check_n(const cnn_session *ss, int n)
{
    if (n < 1 || n > ss->max_batch)
        return cnn_error_set(CNN_ERR_USAGE, "%d inputs: a run takes 1 to %d (the model's max_batch)", n,
                             ss->max_batch);
    return CNN_OK;
}

/* The forward over the n inputs in the network input, its output, and the
 * inputs as 8-bit images for overlays. */
static int forward(cnn_session *ss, int n)
{
    cnn_job *s = &ss->s;
    const cnn_graph *g = &s->l.graph;
    ss->nb = 0;
    CNN_TRY_RET(cnn_net_forward(&s->net, n));
    CNN_TRY_RET(cnn_net_read(&s->net, g->n - 1, n, s->logits));
    if (s->attrib) {
        const cnn_input_spec *in = &s->l.pipe.input;
        size_t len = (size_t)in->c * in->h * in->w;
        for (int b = 0; b < n; b++)
            CNN_TRY_RET(cnn_vctx_input_u8(&s->viz, in, s->net.input, (size_t)b * len, s->img8[b], "input image"));
    }
    ss->nb = n;
    ss->stale = false;
    return CNN_OK;
}

int cnn_session_run_tensor(cnn_session *ss, const float *x, int n)
{
    CNN_TRY_RET(check_n(ss, n));
    cnn_job *s = &ss->s;
    const cnn_graph *g = &s->l.graph;
    size_t len = (size_t)g->in_c * g->in_h * g->in_w;
    ss->nb = 0;
    CNN_TRY_RET(cnn_cl_write(&s->cl, s->net.input, 0, (size_t)n * len * sizeof(float), x, "input tensor"));
    return forward(ss, n);
}

int cnn_session_run_images(cnn_session *ss, const cnn_image *imgs, const char *const *names, int n)
{
    CNN_TRY_RET(check_n(ss, n));
    cnn_job *s = &ss->s;
    ss->nb = 0;
    if (s->l.pipe.input.tensor)
        return cnn_error_set(CNN_ERR_USAGE, "this network takes a tensor (color: none), not images: run a tensor");
    for (int b = 0; b < n; b++) {
        if (imgs[b].c != 1 && imgs[b].c != 3)
            return cnn_error_set(CNN_ERR_USAGE, "%s: %d channels; images have 1 (gray) or 3 (RGB)", names[b],
                                 imgs[b].c);
        CNN_TRY_RET(cnn_job_load_pixels(s, &imgs[b], names[b], b));
    }
    return forward(ss, n);
}

static int check_run(const cnn_session *ss)
{
    if (!ss->nb) return cnn_error_set(CNN_ERR_USAGE, "nothing has run yet: run a batch first");
    return CNN_OK;
}

/* Own-pass methods overwrite the network's tensors: the last batch's
 * forward again (its input was restored) before they are read. */
static int fresh(cnn_session *ss)
{
    CNN_TRY_RET(check_run(ss));
    return ss->stale ? forward(ss, ss->nb) : CNN_OK;
}

int cnn_session_output(cnn_session *ss, float *out)
{
    CNN_TRY_RET(check_run(ss));
    const cnn_graph *g = &ss->s.l.graph;
    memcpy(out, ss->s.logits, (size_t)ss->nb * cnn_layer_numel(&g->layers[g->n - 1]) * sizeof(float));
    return CNN_OK;
}

int cnn_session_activations(cnn_session *ss, int layer, float *out)
{
    CNN_TRY_RET(fresh(ss));
    cnn_job *s = &ss->s;
    if (layer == CNN_GRAPH_INPUT) {
        const cnn_graph *g = &s->l.graph;
        size_t len = (size_t)g->in_c * g->in_h * g->in_w;
        return cnn_cl_read(&s->cl, s->net.input, 0, (size_t)ss->nb * len * sizeof(float), out, "input");
    }
    return cnn_net_read(&s->net, layer, ss->nb, out);
}

/* Tap t's maps of the batch, for class cls[b] of image b. */
static int tap_maps(cnn_session *ss, cnn_vtap *t, const int *cls)
{
    cnn_job *s = &ss->s;
    const cnn_method *m = cnn_method_of(t->method);
    int nb = ss->nb, slot[4096];
    for (int b = 0; b < nb; b++) slot[b] = b;
    if (m->shared) {
        static const cnn_grad_mode modes[] = {CNN_GRAD_PLAIN, CNN_GRAD_GUIDED, CNN_GRAD_DECONV};
        for (int mi = 0; mi < 3; mi++) {
            if (!m->in_mode(t, modes[mi])) continue;
            CNN_TRY_RET(cnn_backward_run(&s->bw, nb, cls, t->prob, s->logits, modes[mi], m->lowest(t, modes[mi])));
            CNN_TRY_RET(m->from_pass(s, t, nb, cls, slot, modes[mi]));
        }
        return CNN_OK;
    }
    /* Own passes: each image's input saved, its copies run, the input put
     * back; the network's tensors are the last copies' until a rerun. */
    const cnn_graph *g = &s->l.graph;
    size_t nout = cnn_layer_numel(&g->layers[g->n - 1]);
    ss->stale = true;
    int status = cnn_job_save_inputs(s, nb, true);
    for (int b = 0; b < nb && status == CNN_OK; b++) {
        t->cls_fixed = cls[b];
        status = m->own_passes(s, t, b, b, s->logits + (size_t)b * nout);
    }
    if (status == CNN_OK) status = cnn_job_save_inputs(s, nb, false);
    return status;
}

/* Occlusion's window scores and guided Grad-CAM's CAMs, sized for tap t. */
static int tap_buffers(cnn_session *ss, cnn_vtap *t)
{
    cnn_job *s = &ss->s;
    const cnn_graph *g = &s->l.graph;
    if (t->method == CNN_GM_OCCLUSION) {
        size_t nw = (size_t)cnn_gm_positions(g->in_h, t->window, t->stride) *
                    (size_t)cnn_gm_positions(g->in_w, t->window, t->stride);
        if (nw > s->occ_cap) {
            clReleaseMemObject(s->occ);
            s->occ = NULL;
            s->occ_cap = 0;
            CNN_TRY_RET(cnn_cl_buffer(&s->cl, nw * sizeof(float), &s->occ, "occlusion scores"));
            s->occ_cap = nw;
        }
    }
    if (t->method == CNN_GM_RISE && t->cells > s->rgrid_cells) {
        size_t n = (size_t)s->net.plan.max_batch * ((size_t)t->cells * t->cells + 2);
        clReleaseMemObject(s->rgrid);
        s->rgrid = NULL;
        s->rgrid_cells = 0;
        CNN_TRY_RET(cnn_cl_buffer(&s->cl, n * sizeof(float), &s->rgrid, "RISE grids"));
        s->rgrid_cells = t->cells;
    }
    if (t->method == CNN_GM_GUIDED_GRADCAM)
        return cnn_cl_buffer(&s->cl, (size_t)s->net.plan.max_batch * cnn_job_px(s) * sizeof(float), &t->cam,
                             "guided Grad-CAM");
    return CNN_OK;
}

int cnn_session_attribute(cnn_session *ss, const char *method, int layer, const int *targets,
                          const cnn_tap_spec *spec, bool upsample, float *out, int *h, int *w)
{
    CNN_TRY_RET(check_run(ss));
    cnn_job *s = &ss->s;
    const cnn_graph *g = &s->l.graph;
    int gm = -1;
    for (int i = 0; cnn_gmethod_names[i]; i++)
        if (!strcmp(cnn_gmethod_names[i], method)) gm = i;
    if (gm < 0) {
        char known[512] = "";
        for (int i = 0; cnn_gmethod_names[i]; i++)
            snprintf(known + strlen(known), sizeof known - strlen(known), "%s%s", i ? ", " : "",
                     cnn_gmethod_names[i]);
        return cnn_error_set(CNN_ERR_USAGE, "unknown method '%s' (known: %s)", method, known);
    }
    if (!s->attrib)
        return cnn_error_set(CNN_ERR_USAGE, "'%s': maps are drawn over an input image; this network takes a tensor "
                             "(color: none)", method);
    if (cnn_method_of((cnn_gmethod)gm)->backward && !s->gradients)
        return cnn_error_set(CNN_ERR_USAGE, "'%s' needs the backward pass: open the model with gradients", method);
    cnn_vtap *t = &s->taps[0];
    int nout = (int)cnn_layer_numel(&g->layers[g->n - 1]);
    for (int b = 0; b < ss->nb; b++)
        if (targets[b] < 0 || targets[b] >= nout)
            return cnn_error_set(CNN_ERR_USAGE, "target %d of image %d: the network has classes 0 to %d", targets[b],
                                 b, nout - 1);
    char where[300];
    snprintf(where, sizeof where, "%s of %s", method, layer < 0 ? "input" : g->layers[layer].spec->name);
    cnn_tap_spec sp = spec ? *spec : (cnn_tap_spec){.alpha = 0.5f};
    char cls[16];
    snprintf(cls, sizeof cls, "%d", targets[0]);
    sp.cls = cls; /* a fixed class; each image's is set before its pass */
    sp.curves = 0;
    int st = cnn_vtap_configure(t, g, layer, method, &sp, where, s->l.labels, s->l.n_labels);
    if (st == CNN_ERR_INPUT) st = CNN_ERR_USAGE; /* an argument of the call, not a file */
    if (st < 0) return st;
    t->kind_name = method;
    bool input_size = upsample || !cnn_gm_is_cam(t->method) || t->method == CNN_GM_GUIDED_GRADCAM;
    *h = input_size ? g->in_h : g->layers[layer].h;
    *w = input_size ? g->in_w : g->layers[layer].w;
    if (!out) return CNN_OK;
    if (ss->stale) CNN_TRY_RET(forward(ss, ss->nb));
    int status = tap_buffers(ss, t);
    s->capture = out;
    s->capture_input = input_size;
    if (status == CNN_OK) status = tap_maps(ss, t, targets);
    s->capture = NULL;
    cnn_vtap_release(t);
    if (t->cam) clReleaseMemObject(t->cam);
    memset(t, 0, sizeof *t);
    return status;
}

int cnn_session_render(cnn_session *ss, const float *map, int h, int w, const char *colormap, const char *normalize,
                       int overlay, float alpha, uint8_t *out, int *ncomp)
{
    cnn_job *s = &ss->s;
    const cnn_graph *g = &s->l.graph;
    int cm = cnn_colormap_find(colormap ? colormap : "turbo");
    if (cm < 0) return cnn_error_set(CNN_ERR_USAGE, "unknown colormap '%s'", colormap);
    const char *nm = normalize ? normalize : "minmax";
    bool is_signed = !strcmp(nm, "signed"), clip = !strcmp(nm, "clip");
    if (!is_signed && !clip && strcmp(nm, "minmax") != 0)
        return cnn_error_set(CNN_ERR_USAGE, "unknown normalisation '%s' (minmax, signed, clip)", nm);
    if (h < 1 || w < 1 || (size_t)h * w > ((size_t)1 << 28))
        return cnn_error_set(CNN_ERR_USAGE, "a map of %d x %d cannot be rendered", h, w);
    cl_mem img8 = NULL;
    if (overlay >= 0) {
        CNN_TRY_RET(check_run(ss));
        if (overlay >= ss->nb || !s->attrib)
            return cnn_error_set(CNN_ERR_USAGE, "overlay %d: the last run has %d image%s", overlay,
                                 s->attrib ? ss->nb : 0, ss->nb == 1 ? "" : "s");
        if (h != g->in_h || w != g->in_w)
            return cnn_error_set(CNN_ERR_USAGE, "a map of %d x %d over the %d x %d input: upsample it first", h, w,
                                 g->in_h, g->in_w);
        if (cm == CNN_CMAP_GRAY) return cnn_error_set(CNN_ERR_USAGE, "an overlay needs a colour map, not gray");
        if (!(alpha >= 0 && alpha <= 1)) return cnn_error_set(CNN_ERR_USAGE, "alpha %g: give 0 to 1", alpha);
        img8 = s->img8[overlay];
    }
    *ncomp = img8 ? 3 : cnn_viz_ncomp(1, (cnn_cmap)cm);
    cl_mem src = NULL;
    int status = cnn_cl_buffer(&s->cl, (size_t)h * w * sizeof(float), &src, "render");
    if (status == CNN_OK) status = cnn_cl_write(&s->cl, src, 0, (size_t)h * w * sizeof(float), map, "render");
    if (status == CNN_OK)
        status = cnn_vctx_render_map(&s->viz, src, 0, h, w, (cnn_cmap)cm, is_signed, clip, img8, g->in_c, alpha, out);
    if (src) clReleaseMemObject(src);
    return status;
}
