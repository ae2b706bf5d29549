#include "model/graph.h"
#include "core/error.h"
#include "core/util.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Largest tensor (values of one image's output, or of a layer's weight)
 * the graph accepts: 8 GiB of floats, far above any real network, and small
 * enough that every size derived from it fits in 64 bits. */
#define MAX_VALUES (1ull << 31)

size_t cnn_layer_numel(const cnn_layer *l) { return (size_t)l->c * l->h * l->w; }

bool cnn_layer_is_conv(const cnn_layer *l)
{
    return l->spec->op == CNN_OP_CONV2D || (l->spec->op == CNN_OP_LINEAR && l->spec->over_channels);
}

/* a * b, or UINT64_MAX when that overflows (MACs are only reported). */
static uint64_t sat_mul(uint64_t a, uint64_t b)
{
    return (a != 0 && b > UINT64_MAX / a) ? UINT64_MAX : a * b;
}

static uint64_t sat_add(uint64_t a, uint64_t b) { return b > UINT64_MAX - a ? UINT64_MAX : a + b; }

static void shape_str(const int64_t *shape, int ndim, char *buf, size_t size)
{
    size_t n = 0;
    n += (size_t)snprintf(buf + n, size - n, "[");
    for (int i = 0; i < ndim && n < size; i++)
        n += (size_t)snprintf(buf + n, size - n, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (n < size) snprintf(buf + n, size - n, "]");
}

/* Floats of a tensor used in place scanned between two page drops: all
 * the resident memory the scan adds (VGG16's fc6 alone is 411 MB). */
#define SCAN_CHUNK ((size_t)1 << 20)

/* Records tensor `name` in g->nonfinite when its n floats at v hold NaN or
 * Inf.  A tensor used in place is read here for the first time: its pages
 * are dropped again, chunk by chunk, so that the scan leaves the process's
 * memory as it found it (the upload reads them back from the page cache,
 * one layer at a time). */
static int scan(cnn_graph *g, const cnn_weights *wts, const char *name, const float *v, size_t n, bool in_place)
{
    cnn_nonfinite_count c = {0};
    bool any = false;
    size_t step = in_place ? SCAN_CHUNK : n;
    for (size_t i = 0; i < n; i += step) {
        size_t m = n - i < step ? n - i : step;
        cnn_nonfinite_count part;
        if (cnn_weights_scan_f32(v + i, m, &part)) {
            any = true;
            c.nan += part.nan;
            c.pos_inf += part.pos_inf;
            c.neg_inf += part.neg_inf;
        }
        if (in_place) cnn_weights_drop_range(wts, v + i, m * sizeof(float));
    }
    if (!any) return CNN_OK;
    for (int i = 0; i < g->n_nonfinite; i++)
        if (!strcmp(g->nonfinite[i].tensor, name)) return CNN_OK; /* bound by another layer too */
    cnn_nonfinite *e = cnn_realloc(g->nonfinite, ((size_t)g->n_nonfinite + 1) * sizeof *e);
    if (!e) return CNN_ERR_NOMEM;
    g->nonfinite = e;
    e += g->n_nonfinite;
    if (!(e->tensor = cnn_strdup(name))) return CNN_ERR_NOMEM;
    e->count = c;
    g->n_nonfinite++;
    return CNN_OK;
}

/* Binds the tensor `name` with the exact shape `want` (ndim dims) to *out
 * as float32: in place in the file when it is aligned float32, else a
 * converted copy (then `bit` is set in *owned).  Either way its values are
 * scanned once for NaN and Inf (g->nonfinite).  Messages point at `pos`. */
static int bind_named(const cnn_pipeline *p, const cnn_weights *wts, cnn_graph *g, const cnn_layer_spec *s,
                      const char *name, cnn_pos pos, const int64_t *want, int ndim, float **out, unsigned *owned,
                      unsigned bit)
{
    const cnn_weight_tensor *t = cnn_weights_find(wts, name);
    if (!t)
        return cnn_pipeline_error_at(p, pos, "layer '%s': tensor '%s' not found in %s", s->name, name, wts->path);
    g->used[t - wts->tensors] = true;
    bool same = t->ndim == ndim;
    for (int i = 0; same && i < ndim; i++) same = t->shape[i] == want[i];
    if (!same) {
        char got[128], exp[128];
        shape_str(t->shape, t->ndim, got, sizeof got);
        shape_str(want, ndim, exp, sizeof exp);
        return cnn_pipeline_error_at(p, pos, "layer '%s': tensor '%s' has shape %s, expected %s", s->name, name,
                                     got, exp);
    }
    if (t->dtype == CNN_DTYPE_OTHER)
        return cnn_pipeline_error_at(p, pos, "layer '%s': tensor '%s' has dtype %s; F32, F16 or BF16 needed",
                                     s->name, name, t->dtype_name);
    /* Float32 data aligned for float is used in place: no host copy of
     * the model (the network uploads straight from the map and then drops
     * the pages; see cnn_graph_release_params). */
    const unsigned char *src = wts->data + t->offset;
    if (t->dtype == CNN_DTYPE_F32 && t->numel && (uintptr_t)src % _Alignof(float) == 0) {
        *out = (float *)(uintptr_t)src;
        return scan(g, wts, name, *out, t->numel, true);
    }
    float *buf = cnn_malloc((t->numel ? t->numel : 1) * sizeof(float));
    if (!buf) return CNN_ERR_NOMEM;
    int status = cnn_weights_to_f32(wts, t, buf);
    cnn_weights_drop_pages(wts, t);
    if (status < 0) {
        free(buf);
        return status;
    }
    *out = buf;
    *owned |= bit;
    return scan(g, wts, name, buf, t->numel, false);
}

/* Binds `<params>.<suffix>` (bind_named). */
static int bind(const cnn_pipeline *p, const cnn_weights *wts, cnn_graph *g, const cnn_layer_spec *s,
                const char *suffix, const int64_t *want, int ndim, float **out, unsigned *owned, unsigned bit)
{
    char name[512];
    snprintf(name, sizeof name, "%s.%s", s->params, suffix);
    return bind_named(p, wts, g, s, name, s->params_pos, want, ndim, out, owned, bit);
}

/* Output size of a sliding window along one axis, PyTorch's rule; 0 when the
 * window does not fit. */
static int window_out(int in, int pad_lo, int pad_hi, int k, int stride, int dil, bool ceil_mode)
{
    long span = (long)in + pad_lo + pad_hi - (long)dil * (k - 1) - 1;
    if (span < 0) return 0;
    long o = (ceil_mode ? (span + stride - 1) / stride : span / stride) + 1;
    /* The last window must start inside the input or the left padding. */
    if (ceil_mode && (o - 1) * stride >= (long)in + pad_lo) o--;
    return o > INT_MAX ? INT_MAX : (int)o; /* then refused as too large */
}

static int spatial_input(const cnn_pipeline *p, const cnn_layer_spec *s, const cnn_layer *in)
{
    if (in->flat)
        return cnn_pipeline_error_at(p, s->op_pos, "layer '%s' (%s) needs a [C, H, W] input, but its input is "
                                     "a flat vector of %d features", s->name, cnn_op_name(s->op), in->c);
    return CNN_OK;
}

static const cnn_layer *input_of(const cnn_graph *g, const cnn_layer *l, int k, const cnn_layer *input_layer)
{
    return l->in[k] == CNN_GRAPH_INPUT ? input_layer : &g->layers[l->in[k]];
}

/* A constant operand's shape as [c, h, w]: [n] is per channel ([n, 1, 1]:
 * the spec's reading, not numpy's), [h, w] is [1, h, w], [1, c, h, w]
 * drops the batch; a scalar is [1, 1, 1].  False for other shapes. */
static bool const_chw(const cnn_weight_tensor *t, int out[3])
{
    int64_t d[3] = {1, 1, 1};
    switch (t->ndim) {
    case 0: break;
    case 1: d[0] = t->shape[0]; break;
    case 2: d[1] = t->shape[0], d[2] = t->shape[1]; break;
    case 3: d[0] = t->shape[0], d[1] = t->shape[1], d[2] = t->shape[2]; break;
    case 4:
        if (t->shape[0] != 1) return false;
        d[0] = t->shape[1], d[1] = t->shape[2], d[2] = t->shape[3];
        break;
    default: return false;
    }
    for (int i = 0; i < 3; i++) {
        if (d[i] < 1 || d[i] > INT_MAX) return false;
        out[i] = (int)d[i];
    }
    return true;
}

/* numpy broadcasting of two [c, h, w] shapes; false when a dimension
 * differs and neither is 1. */
static bool broadcast(const int a[3], const int b[3], int out[3])
{
    for (int i = 0; i < 3; i++) {
        if (a[i] != b[i] && a[i] != 1 && b[i] != 1) return false;
        out[i] = a[i] == 1 ? b[i] : a[i];
    }
    return true;
}

/* add (two operands), sub, mul, div: operands, broadcast shape, and the
 * constant bound to l->weight. */
static int infer_binary(const cnn_pipeline *p, const cnn_weights *wts, cnn_graph *g, cnn_layer *l,
                        const cnn_layer *input_layer)
{
    const cnn_layer_spec *s = l->spec;
    cnn_bin_geom *bg = &l->bin;
    static const cnn_binop ops[CNN_OP_COUNT] = {[CNN_OP_ADD] = CNN_BIN_ADD, [CNN_OP_SUB] = CNN_BIN_SUB,
                                                [CNN_OP_MUL] = CNN_BIN_MUL, [CNN_OP_DIV] = CNN_BIN_DIV};
    *bg = (cnn_bin_geom){.op = ops[s->op], .value = s->value};
    const cnn_layer *x = input_of(g, l, 0, input_layer);
    bool flat = x->flat;
    int o[3];
    if (l->n_in == 2) {
        const cnn_layer *y = input_of(g, l, 1, input_layer);
        int a[3] = {x->c, x->h, x->w}, b[3] = {y->c, y->h, y->w};
        memcpy(bg->shape[0], a, sizeof a);
        memcpy(bg->shape[1], b, sizeof b);
        bg->batched[0] = bg->batched[1] = true;
        flat = flat && y->flat;
        if (!broadcast(a, b, o))
            return cnn_pipeline_error_at(p, s->in_pos[1], "layer '%s' (%s): inputs '%s' [%d, %d, %d] and '%s' "
                                         "[%d, %d, %d] do not broadcast (each dimension must be equal or 1)",
                                         s->name, cnn_op_name(s->op), s->in[0], a[0], a[1], a[2], s->in[1], b[0],
                                         b[1], b[2]);
    } else {
        /* x op const, or const op x with const_first */
        int xi = s->const_first ? 1 : 0, ci = 1 - xi;
        int a[3] = {x->c, x->h, x->w}, b[3] = {1, 1, 1};
        const cnn_weight_tensor *t = s->cnst && wts ? cnn_weights_find(wts, s->cnst) : NULL;
        if (s->cnst && wts && !t)
            return cnn_pipeline_error_at(p, s->cnst_pos, "layer '%s': tensor '%s' not found in %s", s->name,
                                         s->cnst, wts->path);
        char got[128] = "";
        if (t) shape_str(t->shape, t->ndim, got, sizeof got);
        if (t && (!const_chw(t, b) || !broadcast(a, b, o)))
            return cnn_pipeline_error_at(p, s->cnst_pos, "layer '%s' (%s): tensor '%s' has shape %s, which does not "
                                         "broadcast with its input [%d, %d, %d]: a constant must be [C], [C, 1, 1], "
                                         "[1, C, 1, 1], a scalar, or [c, h, w] with each dimension equal to the "
                                         "input's or 1", s->name, cnn_op_name(s->op), s->cnst, got, a[0], a[1],
                                         a[2]);
        memcpy(bg->shape[xi], a, sizeof a);
        memcpy(bg->shape[ci], b, sizeof b);
        bg->batched[xi] = true;
        bg->scalar[ci] = !s->cnst;
        broadcast(a, b, o);
        if (t) {
            int64_t want[4];
            for (int i = 0; i < t->ndim; i++) want[i] = t->shape[i];
            l->n_weight = t->numel;
            l->params = t->numel;
            CNN_TRY_RET(bind_named(p, wts, g, s, s->cnst, s->cnst_pos, want, t->ndim, &l->weight, &l->owned,
                                   CNN_OWN_WEIGHT));
        }
    }
    bg->c = l->c = o[0];
    bg->h = l->h = o[1];
    bg->w = l->w = o[2];
    l->flat = flat && l->h == 1 && l->w == 1;
    if (sat_mul(sat_mul((uint64_t)l->c, (uint64_t)l->h), (uint64_t)l->w) <= MAX_VALUES)
        l->macs = (uint64_t)cnn_layer_numel(l);
    return CNN_OK;
}

/* Python's slice of range(c) along channels: negative bounds count from
 * the end, both are clamped to [0, c]. */
static int infer_slice(const cnn_pipeline *p, cnn_layer *l, int c)
{
    const cnn_layer_spec *s = l->spec;
    long start = s->start < 0 ? (long)s->start + c : s->start;
    long end = !s->has_end ? c : s->end < 0 ? (long)s->end + c : s->end;
    start = start < 0 ? 0 : start > c ? c : start;
    end = end < 0 ? 0 : end > c ? c : end;
    long count = end > start ? (end - start + s->step - 1) / s->step : 0;
    if (count < 1)
        return cnn_pipeline_error_at(p, s->pos, "layer '%s' (slice): [%d:%d:%d] of %d channels selects none", s->name,
                                     s->start, s->has_end ? s->end : c, s->step, c);
    l->chan = (cnn_chan_map){.cx = c, .cy = (int)count, .start = (int)start, .step = s->step, .groups = 1, .k = 0};
    l->c = (int)count;
    return CNN_OK;
}

static int infer_pad(const cnn_pipeline *p, cnn_layer *l)
{
    const cnn_layer_spec *s = l->spec;
    if (s->pad_mode == CNN_PAD_REFLECT &&
        (s->pad[0] >= l->h || s->pad[1] >= l->h || s->pad[2] >= l->w || s->pad[3] >= l->w))
        return cnn_pipeline_error_at(p, s->pos, "layer '%s' (pad): reflect padding [%d, %d, %d, %d] must be smaller "
                                     "than the input [%d, %d] it reflects", s->name, s->pad[0], s->pad[1], s->pad[2],
                                     s->pad[3], l->h, l->w);
    int64_t ho = (int64_t)l->h + s->pad[0] + s->pad[1], wo = (int64_t)l->w + s->pad[2] + s->pad[3];
    if (ho > INT_MAX || wo > INT_MAX)
        return cnn_pipeline_error_at(p, s->pos, "layer '%s' (pad): output is too large", s->name);
    l->pad = (cnn_pad_geom){.c = l->c, .hi = l->h, .wi = l->w, .ho = (int)ho, .wo = (int)wo, .pt = s->pad[0],
                            .pl = s->pad[2], .mode = s->pad_mode, .value = s->has_value ? s->value : 0.0f};
    l->h = (int)ho;
    l->w = (int)wo;
    return CNN_OK;
}

static int infer_resize(const cnn_pipeline *p, cnn_layer *l)
{
    const cnn_layer_spec *s = l->spec;
    int64_t out[2];
    int in[2] = {l->h, l->w};
    for (int i = 0; i < 2; i++) {
        /* PyTorch: floor(in * scale_factor) in double */
        out[i] = s->scale[i] > 0 ? (int64_t)floor((double)in[i] * s->scale[i]) : s->out_hw[i];
        if (out[i] < 1 || out[i] > INT_MAX)
            return cnn_pipeline_error_at(p, s->pos, "layer '%s' (resize): output %s %lld from input %d is %s",
                                         s->name, i ? "width" : "height", (long long)out[i], in[i],
                                         out[i] < 1 ? "empty" : "too large");
    }
    cnn_resize_geom *r = &l->resize;
    *r = (cnn_resize_geom){.c = l->c, .hi = l->h, .wi = l->w, .ho = (int)out[0], .wo = (int)out[1],
                           .bilinear = s->bilinear, .align_corners = s->align_corners};
    r->rh = cnn_resize_scale(r->hi, r->ho, s->scale[0], s->align_corners);
    r->rw = cnn_resize_scale(r->wi, r->wo, s->scale[1], s->align_corners);
    l->h = r->ho;
    l->w = r->wo;
    return CNN_OK;
}

static int infer(const cnn_pipeline *p, const cnn_weights *wts, cnn_graph *g, int li)
{
    cnn_layer *l = &g->layers[li];
    const cnn_layer_spec *s = l->spec;
    cnn_layer input_layer = {.c = g->in_c, .h = g->in_h, .w = g->in_w};
    const cnn_layer *in0 = l->in[0] == CNN_GRAPH_INPUT ? &input_layer : &g->layers[l->in[0]];
    int status = CNN_OK;
    l->c = in0->c;
    l->h = in0->h;
    l->w = in0->w;
    l->flat = in0->flat;

    switch (s->op) {
    case CNN_OP_CONV2D: {
        CNN_TRY(spatial_input(p, s, in0), done);
        cnn_conv_geom *cg = &l->conv;
        *cg = (cnn_conv_geom){.ci = in0->c, .hi = in0->h, .wi = in0->w, .co = s->out, .kh = s->kernel[0],
                              .kw = s->kernel[1], .sh = s->stride[0], .sw = s->stride[1],
                              .dh = s->dilation[0], .dw = s->dilation[1], .pt = s->pad[0], .pb = s->pad[1],
                              .pl = s->pad[2], .pr = s->pad[3], .groups = s->groups};
        if (cg->ci % cg->groups || cg->co % cg->groups)
            return cnn_pipeline_error_at(p, s->pos, "layer '%s': groups %d must divide input channels %d and "
                                         "output channels %d", s->name, cg->groups, cg->ci, cg->co);
        cg->ho = window_out(cg->hi, cg->pt, cg->pb, cg->kh, cg->sh, cg->dh, false);
        cg->wo = window_out(cg->wi, cg->pl, cg->pr, cg->kw, cg->sw, cg->dw, false);
        if (cg->ho < 1 || cg->wo < 1)
            return cnn_pipeline_error_at(p, s->pos, "layer '%s': kernel %dx%d (dilation %dx%d) is larger than "
                                         "the padded input %dx%d", s->name, cg->kh, cg->kw, cg->dh, cg->dw,
                                         cg->hi + cg->pt + cg->pb, cg->wi + cg->pl + cg->pr);
        l->c = cg->co;
        l->h = cg->ho;
        l->w = cg->wo;
        int64_t cig = cg->ci / cg->groups;
        /* Each factor is below 2^31: the product of the first two and of
         * the last two fits in 64 bits, and so does theirs once both are
         * under MAX_VALUES. */
        uint64_t a = (uint64_t)cg->co * (uint64_t)cig, b = (uint64_t)cg->kh * (uint64_t)cg->kw;
        if (a > MAX_VALUES || b > MAX_VALUES || a * b > MAX_VALUES)
            return cnn_pipeline_error_at(p, s->pos, "layer '%s': weight [%d, %lld, %d, %d] has more than %llu "
                                         "values", s->name, cg->co, (long long)cig, cg->kh, cg->kw, MAX_VALUES);
        l->n_weight = (size_t)(a * b);
        l->params = l->n_weight + (s->bias ? (uint64_t)cg->co : 0);
        l->macs = sat_mul(sat_mul(l->n_weight, (uint64_t)cg->ho), (uint64_t)cg->wo);
        if (wts) {
            int64_t ws[4] = {cg->co, cig, cg->kh, cg->kw}, bs[1] = {cg->co};
            CNN_TRY(bind(p, wts, g, s, "weight", ws, 4, &l->weight, &l->owned, CNN_OWN_WEIGHT), done);
            if (s->bias) CNN_TRY(bind(p, wts, g, s, "bias", bs, 1, &l->bias, &l->owned, CNN_OWN_BIAS), done);
        }
        break;
    }
    case CNN_OP_BATCHNORM: {
        l->params = 4ull * (uint64_t)l->c;
        l->macs = (uint64_t)cnn_layer_numel(l);
        l->n_weight = (size_t)l->c;
        if (wts) {
            int64_t cs[1] = {l->c};
            CNN_TRY(bind(p, wts, g, s, "weight", cs, 1, &l->weight, &l->owned, CNN_OWN_WEIGHT), done);
            CNN_TRY(bind(p, wts, g, s, "bias", cs, 1, &l->bias, &l->owned, CNN_OWN_BIAS), done);
            CNN_TRY(bind(p, wts, g, s, "running_mean", cs, 1, &l->mean, &l->owned, CNN_OWN_MEAN), done);
            CNN_TRY(bind(p, wts, g, s, "running_var", cs, 1, &l->var, &l->owned, CNN_OWN_VAR), done);
            for (int c = 0; c < l->c; c++)
                if (!(l->var[c] >= 0.0f))
                    return cnn_pipeline_error_at(p, s->params_pos, "layer '%s': tensor '%s.running_var' has "
                                                 "a negative or NaN value at [%d]", s->name, s->params, c);
        }
        break;
    }
    case CNN_OP_RELU: case CNN_OP_RELU6: case CNN_OP_LEAKY_RELU: case CNN_OP_SIGMOID: case CNN_OP_TANH:
    case CNN_OP_HARDSWISH: case CNN_OP_DROPOUT: case CNN_OP_SOFTMAX:
        break;
    case CNN_OP_LRN:
        CNN_TRY(spatial_input(p, s, in0), done);
        break;
    case CNN_OP_MAXPOOL: case CNN_OP_AVGPOOL: {
        CNN_TRY(spatial_input(p, s, in0), done);
        if (s->pad[0] > s->kernel[0] / 2 || s->pad[1] > s->kernel[0] / 2 || s->pad[2] > s->kernel[1] / 2 ||
            s->pad[3] > s->kernel[1] / 2)
            return cnn_pipeline_error_at(p, s->pos, "layer '%s': padding must be at most half the kernel "
                                         "size", s->name);
        cnn_pool_geom *pg = &l->pool;
        *pg = (cnn_pool_geom){.c = in0->c, .hi = in0->h, .wi = in0->w, .kh = s->kernel[0], .kw = s->kernel[1],
                              .sh = s->stride[0], .sw = s->stride[1], .dh = s->dilation[0],
                              .dw = s->dilation[1], .pt = s->pad[0], .pl = s->pad[2], .pb = s->pad[1],
                              .pr = s->pad[3], .count_include_pad = s->count_include_pad};
        if (s->op == CNN_OP_AVGPOOL) pg->dh = pg->dw = 1;
        pg->ho = window_out(pg->hi, pg->pt, pg->pb, pg->kh, pg->sh, pg->dh, s->ceil_mode);
        pg->wo = window_out(pg->wi, pg->pl, pg->pr, pg->kw, pg->sw, pg->dw, s->ceil_mode);
        if (pg->ho < 1 || pg->wo < 1)
            return cnn_pipeline_error_at(p, s->pos, "layer '%s': kernel %dx%d is larger than the padded input "
                                         "%dx%d", s->name, pg->kh, pg->kw, pg->hi + pg->pt + pg->pb,
                                         pg->wi + pg->pl + pg->pr);
        l->h = pg->ho;
        l->w = pg->wo;
        l->macs = sat_mul(sat_mul(cnn_layer_numel(l), (uint64_t)pg->kh), (uint64_t)pg->kw);
        break;
    }
    case CNN_OP_GLOBAL_AVGPOOL:
        CNN_TRY(spatial_input(p, s, in0), done);
        l->macs = (uint64_t)l->c * l->h * l->w;
        l->h = l->w = 1;
        break;
    case CNN_OP_ADAPTIVE_AVGPOOL:
        CNN_TRY(spatial_input(p, s, in0), done);
        l->macs = (uint64_t)l->c * l->h * l->w;
        l->h = s->out_hw[0];
        l->w = s->out_hw[1];
        break;
    case CNN_OP_FLATTEN:
        if (!cnn_mul_size((size_t)l->c, (size_t)l->h * (size_t)l->w, &l->n_weight) || l->n_weight > (1u << 30))
            return cnn_pipeline_error_at(p, s->pos, "layer '%s': flattened size too large", s->name);
        l->c = (int)l->n_weight;
        l->n_weight = 0;
        l->h = l->w = 1;
        l->flat = true;
        break;
    case CNN_OP_LINEAR: {
        if (s->over_channels) {
            /* a 1x1 convolution: weights [out, in] are [out, in, 1, 1] */
            l->conv = (cnn_conv_geom){.ci = in0->c, .hi = in0->h, .wi = in0->w, .co = s->out, .ho = in0->h,
                                      .wo = in0->w, .kh = 1, .kw = 1, .sh = 1, .sw = 1, .dh = 1, .dw = 1,
                                      .groups = 1};
            if ((uint64_t)s->out * (uint64_t)in0->c > MAX_VALUES)
                return cnn_pipeline_error_at(p, s->pos, "layer '%s': weight [%d, %d] has more than %llu values",
                                             s->name, s->out, in0->c, MAX_VALUES);
            l->c = s->out;
            l->n_weight = (size_t)s->out * (size_t)in0->c;
            l->params = l->n_weight + (s->bias ? (uint64_t)s->out : 0);
            l->macs = sat_mul(sat_mul(l->n_weight, (uint64_t)l->h), (uint64_t)l->w);
            if (wts) {
                int64_t ws[2] = {s->out, in0->c}, bs[1] = {s->out};
                CNN_TRY(bind(p, wts, g, s, "weight", ws, 2, &l->weight, &l->owned, CNN_OWN_WEIGHT), done);
                if (s->bias) CNN_TRY(bind(p, wts, g, s, "bias", bs, 1, &l->bias, &l->owned, CNN_OWN_BIAS), done);
            }
            break;
        }
        if (!in0->flat && (in0->h != 1 || in0->w != 1))
            return cnn_pipeline_error_at(p, s->op_pos, "layer '%s' (linear) needs a flat input; its input is "
                                         "[%d, %d, %d]: add a flatten layer before it", s->name, in0->c, in0->h,
                                         in0->w);
        int fin = in0->c;
        if ((uint64_t)s->out * (uint64_t)fin > MAX_VALUES)
            return cnn_pipeline_error_at(p, s->pos, "layer '%s': weight [%d, %d] has more than %llu values", s->name,
                                         s->out, fin, MAX_VALUES);
        l->c = s->out;
        l->h = l->w = 1;
        l->flat = true;
        l->n_weight = (size_t)s->out * (size_t)fin;
        l->params = l->n_weight + (s->bias ? (uint64_t)s->out : 0);
        l->macs = l->n_weight;
        if (wts) {
            int64_t ws[2] = {s->out, fin}, bs[1] = {s->out};
            CNN_TRY(bind(p, wts, g, s, "weight", ws, 2, &l->weight, &l->owned, CNN_OWN_WEIGHT), done);
            if (s->bias) CNN_TRY(bind(p, wts, g, s, "bias", bs, 1, &l->bias, &l->owned, CNN_OWN_BIAS), done);
        }
        break;
    }
    case CNN_OP_SUB: case CNN_OP_MUL: case CNN_OP_DIV:
        CNN_TRY(infer_binary(p, wts, g, l, &input_layer), done);
        break;
    case CNN_OP_ADD:
        if (l->n_in <= 2) {
            CNN_TRY(infer_binary(p, wts, g, l, &input_layer), done);
            break;
        }
        /* three or more inputs of one shape: as concat checks them */
        /* fall through */
    case CNN_OP_CONCAT: {
        int64_t csum = in0->c;
        for (int i = 1; i < l->n_in; i++) {
            const cnn_layer *o = l->in[i] == CNN_GRAPH_INPUT ? &input_layer : &g->layers[l->in[i]];
            bool ok = o->h == in0->h && o->w == in0->w && o->flat == in0->flat &&
                      (s->op == CNN_OP_CONCAT || o->c == in0->c);
            if (!ok)
                return cnn_pipeline_error_at(p, s->in_pos[i], "layer '%s' (%s): input '%s' has shape [%d, %d, %d] "
                                             "but '%s' has [%d, %d, %d]", s->name, cnn_op_name(s->op), s->in[i],
                                             o->c, o->h, o->w, s->in[0], in0->c, in0->h, in0->w);
            csum += o->c;
            /* Checked at every step: both terms are under MAX_VALUES values,
             * so the product cannot overflow before the check stops it. */
            if (s->op == CNN_OP_CONCAT &&
                (csum > INT_MAX || (uint64_t)csum * (uint64_t)l->h * (uint64_t)l->w > MAX_VALUES))
                return cnn_pipeline_error_at(p, s->pos, "layer '%s' (concat): output [%lld, %d, %d] is too large",
                                             s->name, (long long)csum, l->h, l->w);
        }
        if (s->op == CNN_OP_CONCAT) l->c = (int)csum;
        l->macs = (uint64_t)cnn_layer_numel(l);
        break;
    }
    case CNN_OP_SILU: case CNN_OP_GELU: case CNN_OP_HARDSIGMOID: case CNN_OP_CLIP:
        break;
    case CNN_OP_LAYERNORM:
        l->macs = (uint64_t)cnn_layer_numel(l);
        l->n_weight = (size_t)l->c;
        if (s->affine) {
            l->params = 2ull * (uint64_t)l->c;
            int64_t cs[1] = {l->c};
            if (wts) {
                CNN_TRY(bind(p, wts, g, s, "weight", cs, 1, &l->weight, &l->owned, CNN_OWN_WEIGHT), done);
                CNN_TRY(bind(p, wts, g, s, "bias", cs, 1, &l->bias, &l->owned, CNN_OWN_BIAS), done);
            }
        }
        break;
    case CNN_OP_SLICE:
        CNN_TRY(infer_slice(p, l, in0->c), done);
        break;
    case CNN_OP_CHANNEL_SHUFFLE:
        if (l->c % s->groups)
            return cnn_pipeline_error_at(p, s->pos, "layer '%s' (channel_shuffle): groups %d must divide the %d "
                                         "channels", s->name, s->groups, l->c);
        l->chan = (cnn_chan_map){.cx = l->c, .cy = l->c, .start = 0, .step = 1, .groups = s->groups,
                                 .k = l->c / s->groups};
        break;
    case CNN_OP_PAD:
        CNN_TRY(spatial_input(p, s, in0), done);
        CNN_TRY(infer_pad(p, l), done);
        break;
    case CNN_OP_RESIZE:
        CNN_TRY(spatial_input(p, s, in0), done);
        CNN_TRY(infer_resize(p, l), done);
        if (s->bilinear) l->macs = sat_mul(4, cnn_layer_numel(l));
        break;
    case CNN_OP_GLOBAL_MAXPOOL:
        CNN_TRY(spatial_input(p, s, in0), done);
        l->macs = (uint64_t)l->c * l->h * l->w;
        l->h = l->w = 1;
        break;
    default:
        CNN_ASSERT(!"unhandled op");
    }
    /* Saturating: c, h and w can each be near 2^31 (a wide concat, then a
     * large adaptive pool), and a wrapped product would pass. */
    if (l->c < 0 || l->h < 0 || l->w < 0 ||
        sat_mul(sat_mul((uint64_t)l->c, (uint64_t)l->h), (uint64_t)l->w) > MAX_VALUES)
        return cnn_pipeline_error_at(p, s->pos, "layer '%s': output [%d, %d, %d] is too large", s->name, l->c,
                                     l->h, l->w);
done:
    return status;
}

int cnn_graph_build(const cnn_pipeline *pipe, const cnn_weights *weights, cnn_graph *g)
{
    memset(g, 0, sizeof *g);
    g->pipe = pipe;
    g->weights = weights;
    g->in_c = pipe->input.c;
    g->in_h = pipe->input.h;
    g->in_w = pipe->input.w;
    if ((uint64_t)g->in_c * (uint64_t)g->in_h * (uint64_t)g->in_w > MAX_VALUES)
        return cnn_pipeline_error_at(pipe, pipe->input.pos, "input shape [%d, %d, %d] is too large (more than %llu "
                                     "values)", g->in_c, g->in_h, g->in_w, MAX_VALUES);
    g->layers = cnn_calloc((size_t)pipe->n_layers, sizeof *g->layers);
    if (!g->layers) return CNN_ERR_NOMEM;
    if (weights && !(g->used = cnn_calloc((size_t)weights->n + 1, sizeof *g->used))) {
        free(g->layers);
        g->layers = NULL;
        return CNN_ERR_NOMEM;
    }
    g->n = pipe->n_layers;
    int status = CNN_OK;
    for (int i = 0; i < g->n; i++) {
        cnn_layer *l = &g->layers[i];
        const cnn_layer_spec *s = &pipe->layers[i];
        l->spec = s;
        l->n_in = s->n_in ? s->n_in : 1;
        l->in = cnn_calloc((size_t)l->n_in, sizeof *l->in);
        if (!l->in) {
            status = CNN_ERR_NOMEM;
            goto fail;
        }
        if (s->n_in == 0) {
            l->in[0] = i - 1; /* -1 == CNN_GRAPH_INPUT for the first layer */
        } else {
            for (int k = 0; k < s->n_in; k++) {
                int j = strcmp(s->in[k], "input") == 0 ? CNN_GRAPH_INPUT : cnn_pipeline_find(pipe, s->in[k]);
                if (j >= i || (j < 0 && strcmp(s->in[k], "input") != 0)) {
                    status = cnn_pipeline_error_at(pipe, s->in_pos[k], "input '%s' of layer '%s' is not defined "
                                                   "above", s->in[k], s->name);
                    goto fail;
                }
                l->in[k] = j;
            }
        }
        CNN_TRY(infer(pipe, weights, g, i), fail);
        g->total_params = sat_add(g->total_params, l->params);
        g->total_macs = sat_add(g->total_macs, l->macs);
    }
    return CNN_OK;
fail:
    cnn_graph_free(g);
    return status;
}

/* Frees a parameter converted at build, or drops the file pages of one
 * used in place (`count` floats) while the file is still mapped. */
static void release(const cnn_graph *g, float *p, bool owned, size_t count)
{
    if (!p) return;
    if (owned) free(p);
    else if (g->weights && g->weights->map) cnn_weights_drop_range(g->weights, p, count * sizeof(float));
}

static void release_layer(const cnn_graph *g, cnn_layer *l)
{
    size_t c = (size_t)l->c;
    release(g, l->weight, l->owned & CNN_OWN_WEIGHT, l->n_weight);
    release(g, l->bias, l->owned & CNN_OWN_BIAS, c);
    release(g, l->mean, l->owned & CNN_OWN_MEAN, c);
    release(g, l->var, l->owned & CNN_OWN_VAR, c);
    l->weight = l->bias = l->mean = l->var = NULL;
    l->owned = 0;
}

void cnn_graph_release_params(cnn_graph *g, int i)
{
    release_layer(g, &g->layers[i]);
}

void cnn_graph_free(cnn_graph *g)
{
    for (int i = 0; g->layers && i < g->n; i++) {
        cnn_layer *l = &g->layers[i];
        free(l->in);
        release_layer(g, l);
    }
    for (int i = 0; i < g->n_nonfinite; i++) free(g->nonfinite[i].tensor);
    free(g->nonfinite);
    free(g->layers);
    free(g->used);
    memset(g, 0, sizeof *g);
}

/* ------------------------------------------------------------------------ */
/* Receptive fields                                                         */

static void field_dims(const cnn_graph *g, int j, int *h, int *w)
{
    if (j == CNN_GRAPH_INPUT) {
        *h = g->in_h;
        *w = g->in_w;
    } else {
        const cnn_layer *l = &g->layers[j];
        *h = l->flat ? 1 : l->h;
        *w = l->flat ? 1 : l->w;
    }
}

/* [a, b] of an output axis of layer l to the positions of its input (of
 * size n) that it reads along axis `ax` (0: rows, 1: columns). */
static void field_back(const cnn_layer *l, int ax, int n, int n_out, int *a, int *b)
{
    cnn_op op = l->spec->op;
    if (l->flat || op == CNN_OP_GLOBAL_AVGPOOL || op == CNN_OP_GLOBAL_MAXPOOL || op == CNN_OP_FLATTEN) {
        *a = 0;
        *b = n - 1;
    } else if (cnn_layer_is_conv(l)) {
        int s = ax ? l->conv.sw : l->conv.sh, p = ax ? l->conv.pl : l->conv.pt;
        int k = ax ? l->conv.kw : l->conv.kh, d = ax ? l->conv.dw : l->conv.dh;
        *a = *a * s - p;
        *b = *b * s - p + (k - 1) * d;
    } else if (op == CNN_OP_MAXPOOL || op == CNN_OP_AVGPOOL) {
        int s = ax ? l->pool.sw : l->pool.sh, p = ax ? l->pool.pl : l->pool.pt;
        int k = ax ? l->pool.kw : l->pool.kh, d = ax ? l->pool.dw : l->pool.dh;
        *a = *a * s - p;
        *b = *b * s - p + (k - 1) * (d > 0 ? d : 1);
    } else if (op == CNN_OP_ADAPTIVE_AVGPOOL) {
        /* window i: [floor(i * n / n_out), ceil((i + 1) * n / n_out)) */
        *a = (int)(((long long)*a * n) / n_out);
        *b = (int)((((long long)*b + 1) * n + n_out - 1) / n_out) - 1;
    } else if (op == CNN_OP_PAD) {
        int p = ax ? l->pad.pl : l->pad.pt;
        *a -= p;
        *b -= p;
    } else if (op == CNN_OP_RESIZE) {
        double r = ax ? l->resize.rw : l->resize.rh;
        if (!l->resize.bilinear) {
            *a = (int)floor(*a * r);
            *b = (int)floor(*b * r);
        } else if (l->resize.align_corners) {
            *a = (int)floor(*a * r);
            *b = (int)ceil(*b * r);
        } else {
            double lo = (*a + 0.5) * r - 0.5, hi = (*b + 0.5) * r - 0.5;
            *a = (int)floor(lo < 0 ? 0 : lo);
            *b = (int)ceil(hi < 0 ? 0 : hi);
        }
        if (*a > n - 1) *a = n - 1;
        if (*b > n - 1) *b = n - 1;
    } else if (n == 1 && n_out > 1) {
        *a = *b = 0; /* a broadcast operand */
    } else if (n != n_out) {
        *a = 0; /* an op that changes the size some other way: all of it */
        *b = n - 1;
    }
}

int cnn_graph_field(const cnn_graph *g, int layer, int y, int x, int box[4])
{
    CNN_ASSERT(layer >= 0 && layer < g->n);
    /* per layer and the input (slot g->n): y0, x0, y1, x1; y0 > y1: not reached */
    int *iv = cnn_malloc(((size_t)g->n + 1) * 4 * sizeof *iv);
    if (!iv) return CNN_ERR_NOMEM;
    for (int i = 0; i <= g->n; i++) {
        iv[4 * i] = iv[4 * i + 1] = INT_MAX;
        iv[4 * i + 2] = iv[4 * i + 3] = INT_MIN;
    }
    int *t = iv + 4 * layer;
    const cnn_layer *lt = &g->layers[layer];
    if (lt->flat) {
        t[0] = t[1] = 0;
        t[2] = t[3] = 0;
    } else {
        t[0] = t[2] = y;
        t[1] = t[3] = x;
    }
    /* layers only read earlier ones: one sweep down carries everything */
    for (int i = layer; i >= 0; i--) {
        const int *o = iv + 4 * i;
        if (o[0] > o[2]) continue;
        const cnn_layer *l = &g->layers[i];
        int ho, wo;
        field_dims(g, i, &ho, &wo);
        for (int k = 0; k < l->n_in; k++) {
            int j = l->in[k], h, w;
            field_dims(g, j, &h, &w);
            int ya = o[0], yb = o[2], xa = o[1], xb = o[3];
            field_back(l, 0, h, ho, &ya, &yb);
            field_back(l, 1, w, wo, &xa, &xb);
            int *d = iv + 4 * (j == CNN_GRAPH_INPUT ? g->n : j);
            if (ya < d[0]) d[0] = ya;
            if (xa < d[1]) d[1] = xa;
            if (yb > d[2]) d[2] = yb;
            if (xb > d[3]) d[3] = xb;
        }
    }
    const int *r = iv + 4 * g->n;
    if (r[0] > r[2]) { /* nothing reaches the input (a constant): all of it */
        box[0] = box[1] = 0;
        box[2] = g->in_h - 1;
        box[3] = g->in_w - 1;
    } else {
        memcpy(box, r, 4 * sizeof *box);
        /* a box over the whole input along an axis is the input */
        if (box[0] <= 0 && box[2] >= g->in_h - 1) {
            box[0] = 0;
            box[2] = g->in_h - 1;
        }
        if (box[1] <= 0 && box[3] >= g->in_w - 1) {
            box[1] = 0;
            box[3] = g->in_w - 1;
        }
    }
    free(iv);
    return CNN_OK;
}
