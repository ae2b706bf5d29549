/* One function per ONNX op (or pattern ending at a node) that writes its
 * pipeline layers: each checks the axes it works on (emit.h) and refuses,
 * naming the node, what the pipeline cannot compute as ONNX defines it.
 *
 * One file: the ops are one dispatch table, a short function each; it is
 * read as a catalogue (what is supported and how it is refused). */
#define _POSIX_C_SOURCE 200809L
#include "import/emit.h"
#include "core/error.h"
#include "core/util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static param vec_param(const cnn_ir *g, const char *suffix, int v)
{
    const ir_val *x = &g->vals[v];
    param p = {.suffix = suffix, .src = v, .ndim = 1, .dims = {(int64_t)x->numel}, .data = x->f};
    return p;
}

static int emit_conv(emitter *e, int ni)
{
    cnn_ir *g = e->g;
    const ir_node *n = &g->nodes[ni];
    int x = n->in[0], w = n->in[1], b = n->n_in > 2 ? n->in[2] : -1;
    CNN_TRY_RET(cnn_em_need_spatial(e, ni, x));
    const ir_val *wv = &g->vals[w];
    ir_window win;
    CNN_TRY_RET(cnn_ir_window(g, ni, g->vals[x].dims, g->vals[x].rank, wv->dims + 2, &win));
    char extra[300], k[32], s[32], d[32], p[48];
    cnn_em_fmt_hw(win.k[0], win.k[1], k, sizeof k);
    cnn_em_fmt_hw(win.s[0], win.s[1], s, sizeof s);
    cnn_em_fmt_hw(win.d[0], win.d[1], d, sizeof d);
    cnn_em_fmt_pad(win.pad, p, sizeof p);
    size_t m = (size_t)snprintf(extra, sizeof extra, "out: %lld, kernel: %s", (long long)wv->dims[0], k);
    if (win.s[0] != 1 || win.s[1] != 1) m += (size_t)snprintf(extra + m, sizeof extra - m, ", stride: %s", s);
    if (win.pad[0] || win.pad[1] || win.pad[2] || win.pad[3])
        m += (size_t)snprintf(extra + m, sizeof extra - m, ", pad: %s", p);
    if (win.d[0] != 1 || win.d[1] != 1) m += (size_t)snprintf(extra + m, sizeof extra - m, ", dilation: %s", d);
    if (win.group != 1) m += (size_t)snprintf(extra + m, sizeof extra - m, ", groups: %d", win.group);
    if (b < 0) snprintf(extra + m, sizeof extra - m, ", bias: false");
    /* a 1-D weight [out, in, k] is the 2-D [out, in, k, 1] */
    param ps[2] = {{.suffix = "weight", .src = w, .ndim = 4, .data = wv->f,
                    .dims = {wv->dims[0], wv->dims[1], wv->dims[2], wv->rank == 4 ? wv->dims[3] : 1}}};
    int nps = 1;
    if (b >= 0) ps[nps++] = vec_param(g, "bias", b);
    return cnn_em_put_layer(e, ni, "conv2d", &x, 1, extra, ps, nps, n->out[0]);
}

static int emit_batchnorm(emitter *e, int ni)
{
    cnn_ir *g = e->g;
    const ir_node *n = &g->nodes[ni];
    int x = n->in[0];
    CNN_TRY_RET(cnn_em_computed(e, ni, x));
    CNN_TRY_RET(cnn_em_need_channel_axis(e, ni, x, 1, "BatchNormalization"));
    double eps;
    CNN_TRY_RET(cnn_ir_attr_float(g, ni, "epsilon", 1e-5, &eps));
    if (!(eps > 0) || !isfinite(eps)) return cnn_ir_node_error(g, ni, "epsilon must be > 0");
    for (size_t i = 0; i < g->vals[n->in[4]].numel; i++)
        if (!(g->vals[n->in[4]].f[i] >= 0)) return cnn_ir_node_error(g, ni, "its variance holds a negative value");
    char extra[64], f[32];
    cnn_em_fmt_float(eps, f, sizeof f);
    snprintf(extra, sizeof extra, "eps: %s", f);
    param ps[4] = {vec_param(g, "weight", n->in[1]), vec_param(g, "bias", n->in[2]),
                   vec_param(g, "running_mean", n->in[3]), vec_param(g, "running_var", n->in[4])};
    int st = cnn_em_put_layer(e, ni, "batchnorm", &x, 1, extra, ps, 4, n->out[0]);
    if (st == CNN_OK) cnn_em_alias_layout(e, n->out[0], x);
    return st;
}

static int emit_pool(emitter *e, int ni)
{
    cnn_ir *g = e->g;
    const ir_node *n = &g->nodes[ni];
    bool avg = n->op == OP_AVGPOOL;
    int x = n->fused == FUSED_PADPOOL ? n->fx : n->in[0];
    CNN_TRY_RET(cnn_em_need_spatial(e, ni, x));
    ir_window win;
    CNN_TRY_RET(cnn_ir_window(g, ni, g->vals[n->in[0]].dims, g->vals[n->in[0]].rank, NULL, &win));
    if (n->fused == FUSED_PADPOOL) {
        int64_t pads[2 * IR_MAX_RANK];
        double value;
        char mode[16];
        CNN_TRY_RET(cnn_ir_pad_params(g, n->fa, 4, pads, &value, mode, sizeof mode));
        win.pad[0] += (int)pads[2];
        win.pad[1] += (int)pads[6];
        win.pad[2] += (int)pads[3];
        win.pad[3] += (int)pads[7];
        win.count_include_pad = true; /* the zeros of the Pad are values the average counts */
    }
    for (int i = 0; i < 4; i++)
        if (win.pad[i] > win.k[i / 2] / 2)
            return cnn_ir_node_error(g, ni, "padding %d is more than half the kernel (%d); PyTorch's pooling, which "
                                     "cnnviz-cl follows, allows at most half", win.pad[i], win.k[i / 2]);
    bool padded = win.pad[0] || win.pad[1] || win.pad[2] || win.pad[3];
    char extra[300], k[32], s[32], d[32], p[48];
    cnn_em_fmt_hw(win.k[0], win.k[1], k, sizeof k);
    cnn_em_fmt_hw(win.s[0], win.s[1], s, sizeof s);
    cnn_em_fmt_hw(win.d[0], win.d[1], d, sizeof d);
    cnn_em_fmt_pad(win.pad, p, sizeof p);
    size_t m = (size_t)snprintf(extra, sizeof extra, "kernel: %s, stride: %s", k, s);
    if (padded) m += (size_t)snprintf(extra + m, sizeof extra - m, ", pad: %s", p);
    if (win.d[0] != 1 || win.d[1] != 1) m += (size_t)snprintf(extra + m, sizeof extra - m, ", dilation: %s", d);
    if (win.ceil_mode) m += (size_t)snprintf(extra + m, sizeof extra - m, ", ceil_mode: true");
    if (avg && padded && !win.count_include_pad) snprintf(extra + m, sizeof extra - m, ", count_include_pad: false");
    int st = cnn_em_put_layer(e, ni, avg ? "avgpool" : "maxpool", &x, 1, extra, NULL, 0, n->out[0]);
    if (st == CNN_OK) cnn_em_set_identity(&g->vals[n->out[0]]);
    return st;
}

static int emit_unary(emitter *e, int ni, const char *op, const char *extra, int x)
{
    const ir_node *n = &e->g->nodes[ni];
    CNN_TRY_RET(cnn_em_computed(e, ni, x));
    int st = cnn_em_put_layer(e, ni, op, &x, 1, extra, NULL, 0, n->out[0]);
    if (st == CNN_OK) cnn_em_alias_layout(e, n->out[0], x);
    return st;
}

static int emit_clip(emitter *e, int ni)
{
    cnn_ir *g = e->g;
    const ir_node *n = &g->nodes[ni];
    double lo = -INFINITY, hi = INFINITY;
    if (g->opset < 11) {
        CNN_TRY_RET(cnn_ir_attr_float(g, ni, "min", -INFINITY, &lo));
        CNN_TRY_RET(cnn_ir_attr_float(g, ni, "max", INFINITY, &hi));
    } else {
        if (n->n_in > 1 && n->in[1] >= 0 && !cnn_ir_scalar(&g->vals[n->in[1]], &lo))
            return cnn_ir_node_error(g, ni, "its min must be a constant scalar");
        if (n->n_in > 2 && n->in[2] >= 0 && !cnn_ir_scalar(&g->vals[n->in[2]], &hi))
            return cnn_ir_node_error(g, ni, "its max must be a constant scalar");
    }
    if (isnan(lo) || isnan(hi)) return cnn_ir_node_error(g, ni, "min or max is NaN");
    if (lo == 0 && hi == 6) return emit_unary(e, ni, "relu6", NULL, n->in[0]);
    if (lo == 0 && isinf(hi) && hi > 0) return emit_unary(e, ni, "relu", NULL, n->in[0]);
    char extra[96] = "", a[32], b[32];
    size_t m = 0;
    if (isfinite(lo)) {
        cnn_em_fmt_float(lo, a, sizeof a);
        m += (size_t)snprintf(extra + m, sizeof extra - m, "min: %s", a);
    }
    if (isfinite(hi)) {
        cnn_em_fmt_float(hi, b, sizeof b);
        snprintf(extra + m, sizeof extra - m, "%smax: %s", m ? ", " : "", b);
    }
    cnn_em_add_newer(e->o, "clip");
    return emit_unary(e, ni, "clip", extra, n->in[0]);
}

static int emit_softmax(emitter *e, int ni)
{
    cnn_ir *g = e->g;
    const ir_node *n = &g->nodes[ni];
    int x = n->in[0];
    CNN_TRY_RET(cnn_em_computed(e, ni, x));
    const ir_val *xv = &g->vals[x];
    int64_t axis;
    int a;
    CNN_TRY_RET(cnn_ir_attr_int(g, ni, "axis", g->opset >= 13 ? -1 : 1, &axis));
    CNN_TRY_RET(cnn_ir_norm_axis(e->g, ni, axis, xv->rank, &a));
    if (g->opset < 13)
        /* before opset 13: over the axes from `axis` on, flattened */
        for (int i = a + 1; i < xv->rank; i++)
            if (xv->dims[i] != 1)
                return cnn_ir_node_error(g, ni, "softmax over axes %d.. of a tensor with more than one element there "
                                         "(opset < 13) is not supported", a);
    CNN_TRY_RET(cnn_em_need_channel_axis(e, ni, x, a, "Softmax"));
    return emit_unary(e, ni, "softmax", NULL, x);
}

static int emit_lrn(emitter *e, int ni)
{
    cnn_ir *g = e->g;
    const ir_node *n = &g->nodes[ni];
    CNN_TRY_RET(cnn_em_need_nchw(e, ni, n->in[0]));
    int64_t size;
    double alpha, beta, bias;
    CNN_TRY_RET(cnn_ir_attr_int(g, ni, "size", 0, &size));
    CNN_TRY_RET(cnn_ir_attr_float(g, ni, "alpha", 1e-4, &alpha));
    CNN_TRY_RET(cnn_ir_attr_float(g, ni, "beta", 0.75, &beta));
    CNN_TRY_RET(cnn_ir_attr_float(g, ni, "bias", 1.0, &bias));
    if (size < 1 || size > 65535) return cnn_ir_node_error(g, ni, "size %lld", (long long)size);
    if (size % 2 == 0)
        return cnn_ir_node_error(g, ni, "an even size: ONNX and PyTorch centre the window differently then; not "
                                 "supported");
    char extra[160], a[32], b[32], k[32];
    cnn_em_fmt_float(alpha, a, sizeof a);
    cnn_em_fmt_float(beta, b, sizeof b);
    cnn_em_fmt_float(bias, k, sizeof k);
    snprintf(extra, sizeof extra, "size: %lld, alpha: %s, beta: %s, k: %s", (long long)size, a, b, k);
    return emit_unary(e, ni, "lrn", extra, n->in[0]);
}

static int emit_global(emitter *e, int ni, int x, bool keep)
{
    cnn_ir *g = e->g;
    const ir_node *n = &g->nodes[ni];
    CNN_TRY_RET(cnn_em_need_nchw(e, ni, x));
    bool mx = n->op == OP_GLOBALMAXPOOL;
    if (mx) cnn_em_add_newer(e->o, "global_maxpool");
    int st = cnn_em_put_layer(e, ni, mx ? "global_maxpool" : "global_avgpool", &x, 1, NULL, NULL, 0, n->out[0]);
    if (st == CNN_OK) {
        ir_val *o = &g->vals[n->out[0]];
        cnn_em_set_identity(o);
        if (!keep) o->phys[1] = 0; /* [N, C]: the layer's [C, 1, 1] */
    }
    return st;
}

static int emit_reducemean(emitter *e, int ni)
{
    cnn_ir *g = e->g;
    const ir_node *n = &g->nodes[ni];
    int x = n->in[0];
    CNN_TRY_RET(cnn_em_computed(e, ni, x));
    const ir_val *xv = &g->vals[x];
    int64_t ax[IR_MAX_RANK], keep;
    int na = -1;
    if (g->opset >= 18) {
        int v = n->n_in > 1 ? n->in[1] : -1;
        if (v >= 0) {
            if (!g->vals[v].i || g->vals[v].numel > IR_MAX_RANK)
                return cnn_ir_node_error(g, ni, "axes must be constant integers");
            na = (int)g->vals[v].numel;
            for (int i = 0; i < na; i++) ax[i] = g->vals[v].i[i];
        }
    } else {
        CNN_TRY_RET(cnn_ir_attr_ints(g, ni, "axes", ax, IR_MAX_RANK, &na));
    }
    CNN_TRY_RET(cnn_ir_attr_int(g, ni, "keepdims", 1, &keep));
    bool red[IR_MAX_RANK] = {false};
    for (int k = 0; k < (na < 0 ? xv->rank : na); k++) {
        int a = k;
        if (na >= 0) CNN_TRY_RET(cnn_ir_norm_axis(e->g, ni, ax[k], xv->rank, &a));
        red[a] = true;
    }
    if (red[0]) return cnn_ir_node_error(g, ni, "a mean over the batch axis is not supported");
    /* over the spatial axes: a global average */
    bool spatial = true, chan = false;
    for (int i = 1; i < xv->rank; i++) {
        if (red[i] && xv->dims[i] != 1 && xv->phys[i] == 0) chan = true;
        if (red[i] != (xv->phys[i] == 1 || xv->phys[i] == 2) && xv->dims[i] != 1) spatial = false;
    }
    if (spatial && !chan && cnn_em_is_nchw(xv)) return emit_global(e, ni, x, keep != 0);
    return cnn_ir_node_error(g, ni, "a mean over these axes is not supported (over H and W it is a global "
                             "average pool; over the last axis, inside a LayerNorm pattern)");
}

/* Reshape, Flatten, Squeeze, Unsqueeze of a computed tensor: a view when
 * the elements keep their order and the batch axis stays, else a flatten
 * to [N, rest]. */
static int emit_view(emitter *e, int ni)
{
    cnn_ir *g = e->g;
    const ir_node *n = &g->nodes[ni];
    int x = n->in[0], o = n->out[0];
    CNN_TRY_RET(cnn_em_computed(e, ni, x));
    const ir_val *xv = &g->vals[x];
    ir_val *ov = &g->vals[o];
    if (ov->rank < 1 || ov->dims[0] != xv->dims[0])
        return cnn_ir_node_error(g, ni, "it changes the batch axis (%lld -> %lld); the pipeline keeps images apart",
                                 (long long)xv->dims[0], (long long)(ov->rank ? ov->dims[0] : 0));
    if (ov->rank > 4)
        return cnn_ir_node_error(g, ni, "a result of rank %d: only tensors of rank 4 at most are supported, except "
                                 "in the channel shuffle Reshape-Transpose-Reshape", ov->rank);
    /* the axes of size > 1, in order, on both sides */
    int64_t a[IR_MAX_RANK], b[IR_MAX_RANK];
    int na = 0, nb = 0;
    for (int i = 1; i < xv->rank; i++)
        if (xv->dims[i] != 1) a[na++] = xv->dims[i];
    for (int i = 1; i < ov->rank; i++)
        if (ov->dims[i] != 1) b[nb++] = ov->dims[i];
    bool same = na == nb && !memcmp(a, b, (size_t)na * sizeof a[0]);
    if (same && (cnn_em_ordered(xv) || na <= 1)) {
        /* a view: the axes of size > 1 take the input's physical axes in
         * order, the others the physical axes left over */
        int8_t used[3] = {0, 0, 0};
        int8_t src[IR_MAX_RANK];
        int k = 0;
        for (int i = 1; i < xv->rank; i++)
            if (xv->dims[i] != 1) src[k++] = xv->phys[i];
        for (int i = 0; i < k; i++) used[src[i]] = 1;
        ov->phys[0] = -1;
        for (int i = 1, j = 0; i < ov->rank; i++) {
            if (ov->dims[i] != 1) {
                ov->phys[i] = src[j++];
            } else {
                int p = 0;
                while (p < 3 && used[p]) p++;
                if (p == 3) return cnn_ir_node_error(g, ni, "too many axes");
                ov->phys[i] = (int8_t)p;
                used[p] = 1;
            }
        }
        ov->layer = xv->layer;
        ov->flat = xv->flat;
        return CNN_OK;
    }
    if (ov->rank == 2) {
        bool reordered = !cnn_em_ordered(xv);
        if (reordered && (xv->rank != 4 || xv->flat || xv->fperm))
            return cnn_ir_node_error(g, ni, "flattening a tensor whose axes a Transpose reordered is not supported");
        int64_t d[3] = {xv->dims[1], xv->dims[2], xv->dims[3]};
        int8_t ph[3] = {xv->phys[1], xv->phys[2], xv->phys[3]};
        int st = cnn_em_put_layer(e, ni, "flatten", &x, 1, NULL, NULL, 0, o);
        if (st == CNN_OK) {
            cnn_em_set_identity(ov);
            ov->flat = true;
            if (reordered) {
                ov->fperm = true;
                memcpy(ov->fperm_dims, d, sizeof d);
                memcpy(ov->fperm_phys, ph, sizeof ph);
            }
        }
        return st;
    }
    char s1[96], s2[96];
    size_t m = 0;
    for (int i = 0; i < xv->rank; i++) m += (size_t)snprintf(s1 + m, sizeof s1 - m, "%s%lld", i ? ", " : "",
                                                             (long long)xv->dims[i]);
    m = 0;
    for (int i = 0; i < ov->rank; i++) m += (size_t)snprintf(s2 + m, sizeof s2 - m, "%s%lld", i ? ", " : "",
                                                             (long long)ov->dims[i]);
    return cnn_ir_node_error(g, ni, "a reshape from [%s] to [%s] is not supported (flatten to [N, -1], adding or "
                             "removing axes of size 1, and the channel shuffle are)", s1, s2);
}

static int emit_transpose(emitter *e, int ni)
{
    cnn_ir *g = e->g;
    const ir_node *n = &g->nodes[ni];
    int x = n->in[0];
    CNN_TRY_RET(cnn_em_computed(e, ni, x));
    const ir_val *xv = &g->vals[x];
    int64_t perm[IR_MAX_RANK];
    int np;
    CNN_TRY_RET(cnn_ir_attr_ints(g, ni, "perm", perm, IR_MAX_RANK, &np));
    if (np < 0 || perm[0] != 0)
        return cnn_ir_node_error(g, ni, "a transpose that moves the batch axis is not supported");
    if (xv->rank > 4) return cnn_ir_node_error(g, ni, "a transpose of rank %d is not supported", xv->rank);
    ir_val *ov = &g->vals[n->out[0]];
    for (int i = 0; i < xv->rank; i++) ov->phys[i] = xv->phys[perm[i]];
    ov->layer = xv->layer;
    ov->flat = xv->flat;
    return CNN_OK;
}

/* A linear layer from y = x W^T + b, W [out, in] given as `wdata` (owned
 * or not), on the features of a flat x or on the channels of x. */
static int emit_linear_from(emitter *e, int ni, int x, const float *wdata, float *wown, int wsrc, int64_t out,
                            int64_t in, const float *bdata, float *bown, int bsrc)
{
    cnn_ir *g = e->g;
    const ir_val *xv = &g->vals[x];
    int last = xv->rank - 1;
    int st = cnn_em_need_channel_axis(e, ni, x, last, "a matrix product");
    if (st < 0) {
        free(wown);
        free(bown);
        return st;
    }
    bool over_channels = xv->rank > 2;
    if (xv->fperm) {
        /* The flatten holds the features as [C, H, W]; the model's column
         * l is the logical (row-major) index over fperm_dims. */
        int64_t pd[3];
        for (int k = 0; k < 3; k++) pd[xv->fperm_phys[k]] = xv->fperm_dims[k];
        size_t cnt = (size_t)out * (size_t)in;
        float *w2 = cnn_malloc((cnt ? cnt : 1) * sizeof(float));
        if (!w2) {
            free(wown);
            free(bown);
            return CNN_ERR_NOMEM;
        }
        for (int64_t l = 0; l < in; l++) {
            int64_t i2 = l % xv->fperm_dims[2], i1 = (l / xv->fperm_dims[2]) % xv->fperm_dims[1];
            int64_t i0 = l / (xv->fperm_dims[2] * xv->fperm_dims[1]), c[3];
            c[xv->fperm_phys[0]] = i0;
            c[xv->fperm_phys[1]] = i1;
            c[xv->fperm_phys[2]] = i2;
            int64_t p = (c[0] * pd[1] + c[1]) * pd[2] + c[2];
            for (int64_t o = 0; o < out; o++) w2[o * in + p] = wdata[o * in + l];
        }
        free(wown);
        wdata = wown = w2;
        wsrc = -1;
    }
    char extra[96];
    size_t m = (size_t)snprintf(extra, sizeof extra, "out: %lld", (long long)out);
    if (!bdata) m += (size_t)snprintf(extra + m, sizeof extra - m, ", bias: false");
    if (over_channels) {
        snprintf(extra + m, sizeof extra - m, ", over: channels");
        cnn_em_add_newer(e->o, "linear over: channels");
    }
    param ps[2] = {{.suffix = "weight", .src = wsrc, .ndim = 2, .dims = {out, in}, .data = wdata, .owned = wown}};
    int nps = 1;
    if (bdata) ps[nps++] = (param){.suffix = "bias", .src = bsrc, .ndim = 1, .dims = {out}, .data = bdata,
                                    .owned = bown};
    int o = g->nodes[ni].out[0];
    st = cnn_em_put_layer(e, ni, "linear", &x, 1, extra, ps, nps, o);
    if (st == CNN_OK) {
        ir_val *ov = &g->vals[o];
        memcpy(ov->phys, xv->phys, sizeof ov->phys);
        ov->flat = !over_channels;
    }
    return st;
}

static int emit_gemm(emitter *e, int ni)
{
    cnn_ir *g = e->g;
    const ir_node *n = &g->nodes[ni];
    int x = n->in[0], bi = n->in[1], ci = n->n_in > 2 ? n->in[2] : -1;
    CNN_TRY_RET(cnn_em_computed(e, ni, x));
    int64_t tb;
    double alpha, beta;
    CNN_TRY_RET(cnn_ir_attr_int(g, ni, "transB", 0, &tb));
    CNN_TRY_RET(cnn_ir_attr_float(g, ni, "alpha", 1.0, &alpha));
    CNN_TRY_RET(cnn_ir_attr_float(g, ni, "beta", 1.0, &beta));
    const ir_val *B = &g->vals[bi];
    int64_t out = B->dims[tb ? 0 : 1], in = B->dims[tb ? 1 : 0];
    const float *w = B->f;
    float *wown = NULL;
    int wsrc = bi;
    if (!tb || alpha != 1.0) {
        size_t cnt = (size_t)out * (size_t)in;
        if (!(wown = cnn_malloc((cnt ? cnt : 1) * sizeof(float)))) return CNN_ERR_NOMEM;
        for (int64_t o = 0; o < out; o++)
            for (int64_t i = 0; i < in; i++)
                wown[o * in + i] = (float)(alpha * (double)(tb ? B->f[o * in + i] : B->f[i * out + o]));
        w = wown;
        wsrc = -1;
    }
    const float *bd = NULL;
    float *bown = NULL;
    int bsrc = -1;
    if (ci >= 0 && beta != 0) {
        const ir_val *C = &g->vals[ci];
        if (C->numel == (size_t)out && beta == 1.0) {
            bd = C->f;
            bsrc = ci;
        } else {
            if (!(bown = cnn_malloc((size_t)(out ? out : 1) * sizeof(float)))) {
                free(wown);
                return CNN_ERR_NOMEM;
            }
            for (int64_t o = 0; o < out; o++) bown[o] = (float)(beta * (double)C->f[C->numel == 1 ? 0 : o]);
            bd = bown;
        }
    }
    return emit_linear_from(e, ni, x, w, wown, wsrc, out, in, bd, bown, bsrc);
}

static int emit_matmul(emitter *e, int ni)
{
    cnn_ir *g = e->g;
    const ir_node *n = &g->nodes[ni];
    int x = n->fx, wi = n->fa, bi = n->fb;
    CNN_TRY_RET(cnn_em_computed(e, ni, x));
    const ir_val *W = &g->vals[wi];
    int64_t in = W->dims[0], out = W->dims[1];
    size_t cnt = (size_t)out * (size_t)in;
    float *wt = cnn_malloc((cnt ? cnt : 1) * sizeof(float));
    if (!wt) return CNN_ERR_NOMEM;
    for (int64_t o = 0; o < out; o++)
        for (int64_t i = 0; i < in; i++) wt[o * in + i] = W->f[i * out + o];
    return emit_linear_from(e, ni, x, wt, wt, -1, out, in, bi >= 0 ? g->vals[bi].f : NULL, NULL, bi);
}

static int emit_concat(emitter *e, int ni)
{
    cnn_ir *g = e->g;
    const ir_node *n = &g->nodes[ni];
    int64_t axis;
    int a;
    const ir_val *x0 = &g->vals[n->in[0]];
    CNN_TRY_RET(cnn_ir_attr_int(g, ni, "axis", 0, &axis));
    CNN_TRY_RET(cnn_ir_norm_axis(e->g, ni, axis, x0->rank, &a));
    for (int k = 0; k < n->n_in; k++) {
        CNN_TRY_RET(cnn_em_computed(e, ni, n->in[k]));
        CNN_TRY_RET(cnn_em_need_channel_axis(e, ni, n->in[k], a, "Concat"));
        const ir_val *xk = &g->vals[n->in[k]];
        if (!cnn_em_same_layout(xk, x0) || xk->flat != x0->flat)
            return cnn_ir_node_error(g, ni, "its inputs lay out their axes differently");
    }
    if (n->n_in == 1) {
        cnn_em_alias(e, n->out[0], n->in[0]);
        return CNN_OK;
    }
    int st = cnn_em_put_layer(e, ni, "concat", n->in, n->n_in, NULL, NULL, 0, n->out[0]);
    if (st == CNN_OK) cnn_em_alias_layout(e, n->out[0], n->in[0]);
    return st;
}

/* A channel range [start, end) of x as value o (no layer when it is all). */
static int emit_channel_slice(emitter *e, int ni, int x, int o, int64_t start, int64_t end, int64_t step)
{
    cnn_ir *g = e->g;
    const ir_val *xv = &g->vals[x];
    int64_t pd[3];
    cnn_em_phys_dims(xv, pd);
    if (start == 0 && end == pd[0] && step == 1) {
        cnn_em_alias(e, o, x);
        return CNN_OK;
    }
    char extra[96];
    size_t m = (size_t)snprintf(extra, sizeof extra, "start: %lld, end: %lld", (long long)start, (long long)end);
    if (step != 1) snprintf(extra + m, sizeof extra - m, ", step: %lld", (long long)step);
    cnn_em_add_newer(e->o, "slice");
    int st = cnn_em_put_layer(e, ni, "slice", &x, 1, extra, NULL, 0, o);
    if (st == CNN_OK) cnn_em_alias_layout(e, o, x);
    return st;
}

static int emit_split(emitter *e, int ni)
{
    cnn_ir *g = e->g;
    const ir_node *n = &g->nodes[ni];
    int x = n->in[0];
    CNN_TRY_RET(cnn_em_computed(e, ni, x));
    int64_t axis;
    int a;
    CNN_TRY_RET(cnn_ir_attr_int(g, ni, "axis", 0, &axis));
    CNN_TRY_RET(cnn_ir_norm_axis(e->g, ni, axis, g->vals[x].rank, &a));
    CNN_TRY_RET(cnn_em_need_channel_axis(e, ni, x, a, "Split"));
    int64_t start = 0;
    for (int k = 0; k < n->n_out; k++) {
        int o = n->out[k];
        if (o < 0) continue;
        int64_t len = g->vals[o].dims[a];
        if (g->vals[o].n_uses) CNN_TRY_RET(emit_channel_slice(e, ni, x, o, start, start + len, 1));
        start += len;
    }
    return CNN_OK;
}

static int emit_slice(emitter *e, int ni)
{
    cnn_ir *g = e->g;
    const ir_node *n = &g->nodes[ni];
    int x = n->in[0], o = n->out[0];
    CNN_TRY_RET(cnn_em_computed(e, ni, x));
    const ir_val *xv = &g->vals[x];
    /* which axes it cuts, from the shapes and, for the start and step, the
     * constant inputs (folded already: ir.c checked them) */
    int64_t st[IR_MAX_RANK], en[IR_MAX_RANK], ax[IR_MAX_RANK], sp[IR_MAX_RANK];
    int ns = 0, na = -1, nsp = -1;
    const int idx[4] = {1, 2, 3, 4};
    int64_t *dst[4] = {st, en, ax, sp};
    int *cnts[4] = {&ns, &ns, &na, &nsp};
    if (g->opset < 10) return cnn_ir_node_error(g, ni, "Slice before opset 10 is supported on constants only");
    for (int k = 0; k < 4; k++) {
        int v = idx[k] < n->n_in ? n->in[idx[k]] : -1;
        if (v < 0) continue;
        for (size_t i = 0; i < g->vals[v].numel && i < IR_MAX_RANK; i++) dst[k][i] = g->vals[v].i[i];
        *cnts[k] = (int)g->vals[v].numel;
    }
    int cut = -1;
    int64_t start = 0, step = 1;
    for (int k = 0; k < ns; k++) {
        int a;
        CNN_TRY_RET(cnn_ir_norm_axis(e->g, ni, na >= 0 ? ax[k] : k, xv->rank, &a));
        int64_t s = nsp >= 0 ? sp[k] : 1, d = xv->dims[a], b = st[k];
        if (g->vals[o].dims[a] == d && s == 1) continue; /* all of it */
        if (cut >= 0) return cnn_ir_node_error(g, ni, "slicing more than one axis is not supported");
        if (s < 1) return cnn_ir_node_error(g, ni, "a negative step is not supported");
        if (b < 0) b += d;
        b = b < 0 ? 0 : b > d ? d : b;
        cut = a;
        start = b;
        step = s;
    }
    if (cut < 0) {
        cnn_em_alias(e, o, x);
        return CNN_OK;
    }
    CNN_TRY_RET(cnn_em_need_channel_axis(e, ni, x, cut, "Slice"));
    return emit_channel_slice(e, ni, x, o, start, start + (g->vals[o].dims[cut] - 1) * step + 1, step);
}

static int emit_pad(emitter *e, int ni)
{
    cnn_ir *g = e->g;
    const ir_node *n = &g->nodes[ni];
    int x = n->in[0];
    CNN_TRY_RET(cnn_em_computed(e, ni, x));
    const ir_val *xv = &g->vals[x];
    int64_t pads[2 * IR_MAX_RANK];
    double value;
    char mode[16];
    CNN_TRY_RET(cnn_ir_pad_params(g, ni, xv->rank, pads, &value, mode, sizeof mode));
    bool any = false;
    int p[4] = {0, 0, 0, 0};
    for (int i = 0; i < xv->rank; i++) {
        if (!pads[i] && !pads[i + xv->rank]) continue;
        any = true;
        if (pads[i] < 0 || pads[i + xv->rank] < 0) return cnn_ir_node_error(g, ni, "negative pads are not supported");
        int ph = xv->phys[i];
        if (ph != 1 && ph != 2)
            return cnn_ir_node_error(g, ni, "padding the %s axis is not supported (only H and W)", cnn_em_axis_name(ph));
        p[(ph - 1) * 2] = (int)pads[i];
        p[(ph - 1) * 2 + 1] = (int)pads[i + xv->rank];
    }
    if (!any) {
        cnn_em_alias(e, n->out[0], x);
        return CNN_OK;
    }
    const char *m = !strcmp(mode, "constant") ? "constant" : !strcmp(mode, "reflect") ? "reflect"
                    : !strcmp(mode, "edge")                               ? "replicate"
                                                                          : NULL;
    if (!m) return cnn_ir_node_error(g, ni, "mode '%s' is not supported", mode);
    if (!isfinite(value)) return cnn_ir_node_error(g, ni, "an infinite pad value is supported only before a MaxPool");
    char extra[160], pd[48], v[32];
    cnn_em_fmt_pad(p, pd, sizeof pd);
    cnn_em_fmt_float(value, v, sizeof v);
    size_t k = (size_t)snprintf(extra, sizeof extra, "pad: %s", pd);
    if (strcmp(m, "constant") != 0) k += (size_t)snprintf(extra + k, sizeof extra - k, ", mode: %s", m);
    if (value != 0 && !strcmp(m, "constant")) snprintf(extra + k, sizeof extra - k, ", value: %s", v);
    cnn_em_add_newer(e->o, "pad");
    return emit_unary(e, ni, "pad", extra, x);
}

static int emit_binary(emitter *e, int ni)
{
    cnn_ir *g = e->g;
    const ir_node *n = &g->nodes[ni];
    const char *op = n->op == OP_ADD ? "add" : n->op == OP_SUB ? "sub" : n->op == OP_MUL ? "mul" : "div";
    if (n->op == OP_POW) return cnn_ir_unsupported(g, ni, "Pow is supported only inside a LayerNorm pattern");
    int a = n->in[0], b = n->in[1], o = n->out[0];
    bool ca = g->vals[a].is_const, cb = g->vals[b].is_const;
    ir_val *ov = &g->vals[o];
    if (!ca && !cb) {
        const ir_val *av = &g->vals[a], *bv = &g->vals[b];
        if (!cnn_em_same_layout(av, bv) || av->flat != bv->flat)
            return cnn_ir_node_error(g, ni, "its two inputs lay out their axes differently");
        bool equal = av->rank == bv->rank && !memcmp(av->dims, bv->dims, (size_t)av->rank * sizeof av->dims[0]);
        if (!equal || n->op != OP_ADD) cnn_em_add_newer(e->o, op);
        int ins[2] = {a, b};
        CNN_TRY_RET(cnn_em_put_layer(e, ni, op, ins, 2, NULL, NULL, 0, o));
        const ir_val *big = av->numel >= bv->numel ? av : bv;
        memcpy(ov->phys, big->phys, sizeof ov->phys);
        ov->flat = av->flat;
        return CNN_OK;
    }
    int x = ca ? b : a, c = ca ? a : b;
    char extra[700], layer[NAME_MAX_LEN + 64];
    double v;
    cnn_em_add_newer(e->o, op);
    if (cnn_ir_scalar(&g->vals[c], &v)) {
        if (!isfinite(v)) return cnn_ir_node_error(g, ni, "its constant is not finite");
        char f[32];
        cnn_em_fmt_float(v, f, sizeof f);
        snprintf(extra, sizeof extra, "value: %s", f);
    } else {
        char tn[600];
        cnn_em_new_name(e, ni, op, layer, sizeof layer);
        CNN_TRY_RET(cnn_em_const_operand(e, ni, x, c, layer, tn, sizeof tn));
        char shown[620];
        cnn_em_fmt_name(tn, shown, sizeof shown);
        snprintf(extra, sizeof extra, "const: %s", shown);
    }
    if (ca && (n->op == OP_SUB || n->op == OP_DIV)) strncat(extra, ", const_first: true", sizeof extra - strlen(extra) - 1);
    CNN_TRY_RET(cnn_em_computed(e, ni, x));
    CNN_TRY_RET(cnn_em_put_layer(e, ni, op, &x, 1, extra, NULL, 0, o));
    const ir_val *xv = &g->vals[x];
    if (ov->rank == xv->rank) memcpy(ov->phys, xv->phys, sizeof ov->phys);
    else return cnn_ir_node_error(g, ni, "its constant operand adds axes to its input");
    ov->flat = xv->flat;
    return CNN_OK;
}

static int emit_layernorm(emitter *e, int ni, int x, int gamma, int beta, double eps)
{
    cnn_ir *g = e->g;
    CNN_TRY_RET(cnn_em_computed(e, ni, x));
    const ir_val *xv = &g->vals[x];
    CNN_TRY_RET(cnn_em_need_channel_axis(e, ni, x, xv->rank - 1, "LayerNorm"));
    if (!(eps > 0) || !isfinite(eps)) return cnn_ir_node_error(g, ni, "epsilon must be > 0");
    int64_t C = xv->dims[xv->rank - 1];
    char extra[96], f[32];
    cnn_em_fmt_float(eps, f, sizeof f);
    size_t m = (size_t)snprintf(extra, sizeof extra, "eps: %s", f);
    param ps[2];
    int nps = 0;
    if (gamma >= 0) {
        ps[nps++] = (param){.suffix = "weight", .src = gamma, .ndim = 1, .dims = {C}, .data = g->vals[gamma].f};
        if (beta >= 0) {
            ps[nps++] = (param){.suffix = "bias", .src = beta, .ndim = 1, .dims = {C}, .data = g->vals[beta].f};
        } else {
            float *z = cnn_calloc((size_t)(C ? C : 1), sizeof(float));
            if (!z) return CNN_ERR_NOMEM;
            ps[nps++] = (param){.suffix = "bias", .src = -1, .ndim = 1, .dims = {C}, .data = z, .owned = z};
        }
    } else {
        snprintf(extra + m, sizeof extra - m, ", affine: false");
    }
    cnn_em_add_newer(e->o, "layernorm");
    int o = g->nodes[ni].out[0];
    CNN_TRY_RET(cnn_em_put_layer(e, ni, "layernorm", &x, 1, extra, ps, nps, o));
    cnn_em_alias_layout(e, o, x);
    return CNN_OK;
}

static int emit_layernorm_op(emitter *e, int ni)
{
    cnn_ir *g = e->g;
    const ir_node *n = &g->nodes[ni];
    int64_t axis;
    double eps;
    int a;
    CNN_TRY_RET(cnn_ir_attr_int(g, ni, "axis", -1, &axis));
    CNN_TRY_RET(cnn_ir_attr_float(g, ni, "epsilon", 1e-5, &eps));
    int x = n->in[0];
    CNN_TRY_RET(cnn_ir_norm_axis(e->g, ni, axis, g->vals[x].rank, &a));
    if (a != g->vals[x].rank - 1)
        return cnn_ir_node_error(g, ni, "LayerNormalization over more than the last axis is not supported");
    int64_t C = g->vals[x].dims[a];
    int gm = n->n_in > 1 ? n->in[1] : -1, bt = n->n_in > 2 ? n->in[2] : -1;
    if (gm < 0 || g->vals[gm].numel != (size_t)C || (bt >= 0 && g->vals[bt].numel != (size_t)C))
        return cnn_ir_node_error(g, ni, "scale and bias must hold one value per normalised element");
    return emit_layernorm(e, ni, x, gm, bt, eps);
}

int cnn_em_node(emitter *e, int ni)
{
    cnn_ir *g = e->g;
    const ir_node *n = &g->nodes[ni];
    bool product = n->fused == FUSED_LINEAR || (n->fused == FUSED_NONE && n->op == OP_GEMM);
    for (int k = 0; k < n->n_in; k++)
        if (n->in[k] >= 0 && g->vals[n->in[k]].fperm && !(product && k == 0))
            return cnn_ir_node_error(g, ni, "it reads a flatten of a tensor whose axes a Transpose reordered; only a "
                                     "matrix product with constant weights may follow such a flatten");
    if (n->fused != FUSED_NONE && n->fx >= 0 && g->vals[n->fx].fperm && !product)
        return cnn_ir_node_error(g, ni, "it reads a flatten of a tensor whose axes a Transpose reordered; only a "
                                 "matrix product with constant weights may follow such a flatten");
    switch (n->fused) {
    case FUSED_SILU: cnn_em_add_newer(e->o, "silu"); return emit_unary(e, ni, "silu", NULL, n->fx);
    case FUSED_HARDSWISH: return emit_unary(e, ni, "hardswish", NULL, n->fx);
    case FUSED_GELU: cnn_em_add_newer(e->o, "gelu"); return emit_unary(e, ni, "gelu", NULL, n->fx);
    case FUSED_LAYERNORM: return emit_layernorm(e, ni, n->fx, n->fa, n->fb, n->feps);
    case FUSED_LINEAR: return emit_matmul(e, ni);
    case FUSED_SHUFFLE: {
        CNN_TRY_RET(cnn_em_need_nchw(e, ni, n->fx));
        char extra[48];
        snprintf(extra, sizeof extra, "groups: %d", n->fgroups);
        cnn_em_add_newer(e->o, "channel_shuffle");
        return emit_unary(e, ni, "channel_shuffle", extra, n->fx);
    }
    case FUSED_PADPOOL: return emit_pool(e, ni);
    case FUSED_NONE: break;
    }
    switch (n->op) {
    case OP_CONV: return emit_conv(e, ni);
    case OP_BATCHNORM: return emit_batchnorm(e, ni);
    case OP_RELU: return emit_unary(e, ni, "relu", NULL, n->in[0]);
    case OP_SIGMOID: return emit_unary(e, ni, "sigmoid", NULL, n->in[0]);
    case OP_TANH: return emit_unary(e, ni, "tanh", NULL, n->in[0]);
    case OP_HARDSWISH: return emit_unary(e, ni, "hardswish", NULL, n->in[0]);
    case OP_LEAKYRELU: {
        double a;
        CNN_TRY_RET(cnn_ir_attr_float(g, ni, "alpha", 0.01, &a));
        char extra[48], f[32];
        cnn_em_fmt_float(a, f, sizeof f);
        snprintf(extra, sizeof extra, "slope: %s", f);
        return emit_unary(e, ni, "leaky_relu", extra, n->in[0]);
    }
    case OP_HARDSIGMOID: {
        double a, b;
        CNN_TRY_RET(cnn_ir_attr_float(g, ni, "alpha", 0.2, &a));
        CNN_TRY_RET(cnn_ir_attr_float(g, ni, "beta", 0.5, &b));
        char extra[96], fa[32], fb[32];
        cnn_em_fmt_float(a, fa, sizeof fa);
        cnn_em_fmt_float(b, fb, sizeof fb);
        snprintf(extra, sizeof extra, "alpha: %s, beta: %s", fa, fb);
        cnn_em_add_newer(e->o, "hardsigmoid");
        return emit_unary(e, ni, "hardsigmoid", extra, n->in[0]);
    }
    case OP_CLIP: return emit_clip(e, ni);
    case OP_MAXPOOL: case OP_AVGPOOL: return emit_pool(e, ni);
    case OP_GLOBALAVGPOOL: case OP_GLOBALMAXPOOL: return emit_global(e, ni, n->in[0], true);
    case OP_REDUCEMEAN: return emit_reducemean(e, ni);
    case OP_FLATTEN: case OP_RESHAPE: case OP_SQUEEZE: case OP_UNSQUEEZE: return emit_view(e, ni);
    case OP_TRANSPOSE: return emit_transpose(e, ni);
    case OP_GEMM: return emit_gemm(e, ni);
    case OP_MATMUL: return cnn_ir_unsupported(g, ni, "a MatMul of two computed tensors is not supported");
    case OP_ADD: case OP_SUB: case OP_MUL: case OP_DIV: case OP_POW: return emit_binary(e, ni);
    case OP_CONCAT: return emit_concat(e, ni);
    case OP_SOFTMAX: return emit_softmax(e, ni);
    case OP_LRN: return emit_lrn(e, ni);
    case OP_DROPOUT: case OP_IDENTITY:
        CNN_TRY_RET(cnn_em_computed(e, ni, n->in[0]));
        cnn_em_alias(e, n->out[0], n->in[0]);
        return CNN_OK;
    case OP_SPLIT: return emit_split(e, ni);
    case OP_SLICE: return emit_slice(e, ni);
    case OP_PAD: return emit_pad(e, ni);
    case OP_LAYERNORM: return emit_layernorm_op(e, ni);
    case OP_ERF: return cnn_ir_unsupported(g, ni, "Erf is supported only inside the GELU pattern x*0.5*(1+Erf(x/sqrt 2))");
    case OP_SQRT: return cnn_ir_unsupported(g, ni, "Sqrt is supported only inside a LayerNorm pattern");
    default: return cnn_ir_unsupported(g, ni, "not supported");
    }
}
