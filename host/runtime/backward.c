#include "runtime/backward.h"
#include "core/error.h"
#include "core/util.h"
#include "ops/blas.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static size_t grad_scratch(const cnn_graph *g)
{
    size_t m = 1;
    for (int i = 0; i < g->n; i++)
        if (cnn_layer_is_conv(&g->layers[i])) {
            size_t s = cnn_grad_conv2d_scratch(&g->layers[i].conv);
            if (s > m) m = s;
        }
    return m;
}

/* Whether layer j's output (j < 0: the network input) is read by layer i
 * alone: no other layer takes it and no view shares its buffer. */
static bool sole_reader(const cnn_net *net, int i, int j)
{
    const cnn_graph *g = net->g;
    int readers = 0;
    for (int k = 0; k < g->n; k++) {
        for (int m = 0; m < g->layers[k].n_in; m++) readers += g->layers[k].in[m] == j;
        if (j >= 0 && k != j && net->plan.root[k] == j) readers++;
    }
    return readers == 1 && (j < 0 || net->plan.root[j] == j) && g->layers[i].in[0] == j;
}

/* The input gradient of conv i as a forward convolution of dy (see
 * backward.h), when the network is fast and the conv fits. */
enum { FAST_SCRATCH = 256 << 20 };

static int make_transposed(cnn_backward *bw, int i, float *w, float *wt)
{
    cnn_net *net = bw->net;
    const cnn_layer *l = &net->g->layers[i];
    const cnn_conv_geom *c = &l->conv;
    const char *name = l->spec->name;
    if (c->groups != 1 || c->kh != 3 || c->kw != 3 || c->sh != 1 || c->sw != 1 || c->dh != 1 || c->dw != 1 ||
        c->pt > 2 || c->pb > 2 || c->pl > 2 || c->pr > 2 || !sole_reader(net, i, l->in[0]) ||
        net->plan.fold_bn[i] >= 0)
        return CNN_OK;
    cnn_conv_geom t = {.ci = c->co, .hi = c->ho, .wi = c->wo, .co = c->ci, .ho = c->hi, .wo = c->wi, .kh = 3, .kw = 3,
                       .sh = 1, .sw = 1, .dh = 1, .dw = 1, .pt = 2 - c->pt, .pb = 2 - c->pb, .pl = 2 - c->pl,
                       .pr = 2 - c->pr, .groups = 1};
    cnn_conv_pack pk;
    int nb = net->plan.max_batch;
    if (!cnn_op_conv2d_pack_layout(&t, nb, cnn_blas_packing(net->cl) == CNN_PACK_OWN, &pk)) return CNN_OK;
    /* its scratch: the forward's where that is large enough, else the
     * backward's own up to FAST_SCRATCH bytes each */
    size_t col = cnn_op_conv2d_packed_col(&t, &pk, nb) * sizeof(float);
    size_t out = cnn_op_conv2d_packed_out(&t, &pk, nb) * sizeof(float);
    if (col > FAST_SCRATCH || out > FAST_SCRATCH) return CNN_OK;
    if (col > net->plan.scratch_bytes || out > net->plan.gemm_bytes) {
        bw->own[i] = true;
        if (col > bw->col_bytes) bw->col_bytes = col;
        if (out > bw->out_bytes) bw->out_bytes = out;
    }
    CNN_TRY_RET(cnn_net_layer_weights(net, i, w, false));
    /* wt[c][o][y][x] = w[o][c][2 - y][2 - x] */
    for (int o = 0; o < c->co; o++)
        for (int ci = 0; ci < c->ci; ci++)
            for (int k = 0; k < 9; k++)
                wt[((size_t)ci * c->co + o) * 9 + k] = w[((size_t)o * c->ci + ci) * 9 + (8 - k)];
    size_t bytes = cnn_op_conv2d_packed_weights(&pk) * sizeof(float);
    void *packed;
    CNN_TRY_RET(cnn_cl_buffer(net->cl, bytes, &bw->twpack[i], name));
    CNN_TRY_RET(cnn_cl_map_write(net->cl, bw->twpack[i], bytes, &packed, name));
    cnn_op_conv2d_pack_weights(&t, &pk, wt, packed);
    CNN_TRY_RET(cnn_cl_unmap(net->cl, bw->twpack[i], packed, name));
    bw->tg[i] = t;
    bw->tpk[i] = pk;
    return CNN_OK;
}

static int make_fast(cnn_backward *bw)
{
    cnn_net *net = bw->net;
    const cnn_graph *g = net->g;
    size_t most = 0;
    int widest = 1;
    for (int i = 0; i < g->n; i++)
        if (cnn_layer_is_conv(&g->layers[i]) && net->plan.computes[i]) {
            if (g->layers[i].n_weight > most) most = g->layers[i].n_weight;
            if (g->layers[i].conv.ci > widest) widest = g->layers[i].conv.ci;
        }
    bw->tg = cnn_calloc((size_t)g->n, sizeof *bw->tg);
    bw->tpk = cnn_calloc((size_t)g->n, sizeof *bw->tpk);
    bw->twpack = cnn_calloc((size_t)g->n, sizeof *bw->twpack);
    bw->own = cnn_calloc((size_t)g->n, sizeof *bw->own);
    float *w = cnn_malloc((most ? most : 1) * sizeof *w), *wt = cnn_malloc((most ? most : 1) * sizeof *wt);
    int status = bw->tg && bw->tpk && bw->twpack && bw->own && w && wt ? CNN_OK : CNN_ERR_NOMEM;
    if (status == CNN_OK) status = cnn_cl_buffer(net->cl, (size_t)widest * sizeof(float), &bw->zbias, "zero bias");
    if (status == CNN_OK) status = cnn_grad_zero(net->cl, bw->zbias, 0, (size_t)widest, "zero bias");
    for (int i = 0; i < g->n && status == CNN_OK; i++)
        if (cnn_layer_is_conv(&g->layers[i]) && net->plan.computes[i]) status = make_transposed(bw, i, w, wt);
    if (status == CNN_OK && bw->col_bytes)
        status = cnn_cl_buffer(net->cl, bw->col_bytes, &bw->tcol, "backward convolution columns");
    if (status == CNN_OK && (bw->col_bytes || bw->out_bytes))
        status = cnn_cl_buffer(net->cl, bw->out_bytes ? bw->out_bytes : sizeof(float), &bw->tout,
                               "backward convolution GEMM result");
    if (status == CNN_OK && bw->col_bytes == 0 && bw->tout) /* a column buffer of one float: never read */
        status = cnn_cl_buffer(net->cl, sizeof(float), &bw->tcol, "backward convolution columns");
    free(w);
    free(wt);
    return status;
}

int cnn_backward_create(cnn_backward *bw, cnn_net *net)
{
    memset(bw, 0, sizeof *bw);
    CNN_ASSERT(net->backward);
    bw->net = net;
    const cnn_graph *g = net->g;
    int nb = net->plan.max_batch;
    bw->d = cnn_calloc((size_t)g->n, sizeof *bw->d);
    bw->seed = cnn_malloc((size_t)nb * cnn_layer_numel(&g->layers[g->n - 1]) * sizeof(float));
    if (!bw->d || !bw->seed) {
        cnn_backward_free(bw);
        return CNN_ERR_NOMEM;
    }
    int status = cnn_cl_buffer(net->cl, (size_t)nb * g->in_c * g->in_h * g->in_w * sizeof(float), &bw->d_input,
                               "input gradient");
    for (int i = 0; i < g->n && status == CNN_OK; i++) {
        CNN_ASSERT(net->plan.root[i] == i || !net->plan.computes[i]);
        if (!net->plan.computes[i]) continue;
        status = cnn_cl_buffer(net->cl, (size_t)nb * cnn_layer_numel(&g->layers[i]) * sizeof(float), &bw->d[i],
                               g->layers[i].spec->name);
    }
    if (status == CNN_OK)
        status = cnn_cl_buffer(net->cl, grad_scratch(g) * sizeof(float), &bw->scratch, "backward scratch");
    if (status == CNN_OK && net->fast && cnn_blas_packing(net->cl) != CNN_PACK_NONE) status = make_fast(bw);
    if (status < 0) cnn_backward_free(bw);
    return status;
}

void cnn_backward_free(cnn_backward *bw)
{
    if (bw->d && bw->net)
        for (int i = 0; i < bw->net->g->n; i++)
            if (bw->d[i]) clReleaseMemObject(bw->d[i]);
    if (bw->d_input) clReleaseMemObject(bw->d_input);
    if (bw->scratch) clReleaseMemObject(bw->scratch);
    for (int i = 0; bw->twpack && bw->net && i < bw->net->g->n; i++)
        if (bw->twpack[i]) clReleaseMemObject(bw->twpack[i]);
    if (bw->zbias) clReleaseMemObject(bw->zbias);
    if (bw->tcol) clReleaseMemObject(bw->tcol);
    if (bw->tout) clReleaseMemObject(bw->tout);
    free(bw->own);
    free(bw->tg);
    free(bw->tpk);
    free(bw->twpack);
    free(bw->d);
    free(bw->seed);
    memset(bw, 0, sizeof *bw);
}

cl_mem cnn_backward_grad(const cnn_backward *bw, int layer)
{
    if (layer < 0) return bw->d_input;
    int r = bw->net->plan.root[layer];
    return r < 0 ? bw->d_input : bw->d[r];
}

/* A binary op's backward: each operand that is a layer gets its gradient,
 * reduced over the dimensions it was broadcast along (twice into one
 * buffer when both operands are the same layer: the launches run in
 * order, each adding). */
static int back_binary(cnn_backward *bw, int i, int n)
{
    const cnn_layer *l = &bw->net->g->layers[i];
    cl_mem ops[2];
    cnn_net_operands(bw->net, i, ops);
    int status = CNN_OK;
    const cnn_bin_geom *g = &l->bin;
    size_t count = (size_t)n * cnn_layer_numel(l);
    for (int k = 0; k < 2 && status == CNN_OK; k++) {
        if (!g->batched[k]) continue; /* the constant or scalar: no gradient */
        int src = l->n_in == 2 ? l->in[k] : l->in[0];
        /* an operand of the output's shape in a sum: dy as it is (the
         * residual add's path, as before broadcasting) */
        bool whole = g->shape[k][0] == g->c && g->shape[k][1] == g->h && g->shape[k][2] == g->w;
        if (g->op == CNN_BIN_ADD && whole) {
            status = cnn_grad_accum(bw->net->cl, bw->d[i], cnn_backward_grad(bw, src), count, l->spec->name);
            continue;
        }
        status = cnn_grad_binary(bw->net->cl, g, n, k, ops[0], ops[1], bw->d[i], cnn_backward_grad(bw, src),
                                 l->spec->name);
    }
    return status;
}

/* Layer i's backward: reads d(i), adds into d(inputs). */
static int back_layer(cnn_backward *bw, int i, int n, cnn_grad_mode mode)
{
    cnn_net *net = bw->net;
    cnn_cl *cl = net->cl;
    const cnn_graph *g = net->g;
    const cnn_layer *l = &g->layers[i];
    const char *name = l->spec->name;
    cl_mem dy = bw->d[i];
    cl_mem dx = cnn_backward_grad(bw, l->in[0]);
    cl_mem x = cnn_net_buffer(net, l->in[0]), y = cnn_net_buffer(net, i);
    const cnn_layer *in0 = l->in[0] >= 0 ? &g->layers[l->in[0]] : NULL;
    int ic = in0 ? in0->c : g->in_c;
    int ih = in0 ? in0->h : g->in_h, iw = in0 ? in0->w : g->in_w;
    size_t count = (size_t)n * cnn_layer_numel(l);
    cnn_op op = l->spec->op;
    cnn_act act = cnn_act_of(l->spec);
    CNN_ASSERT(net->plan.act[i] == CNN_ACT_NONE || act != CNN_ACT_NONE); /* gradient mode fuses nothing */
    CNN_ASSERT(net->plan.fold_bn[i] < 0);
    if (act != CNN_ACT_NONE) return cnn_grad_act(cl, act, l->spec->slope, mode, x, y, dy, dx, count, name);
    if (cnn_layer_is_conv(l) && bw->twpack && bw->twpack[i])
        /* dx is this layer's alone: written, not added to */
        return cnn_op_conv2d_packed(cl, &bw->tg[i], &bw->tpk[i], n, dy, bw->twpack[i], bw->zbias, CNN_ACT_NONE, 0.0f,
                                    dx, bw->own[i] ? bw->tcol : net->scratch, bw->own[i] ? bw->tout : net->gemm_out,
                                    name);
    if (cnn_layer_is_conv(l)) return cnn_grad_conv2d(cl, &l->conv, n, dy, net->w[i], dx, bw->scratch, name);
    switch (op) {
    case CNN_OP_BATCHNORM:
        return cnn_grad_scale(cl, dy, net->scale[i], dx, count, (size_t)l->h * l->w, l->c, name);
    case CNN_OP_MAXPOOL:
        return cnn_grad_maxpool(cl, &l->pool, n, x, dy, dx, name);
    case CNN_OP_AVGPOOL:
        return cnn_grad_avgpool(cl, &l->pool, n, dy, dx, name);
    case CNN_OP_GLOBAL_AVGPOOL:
    case CNN_OP_ADAPTIVE_AVGPOOL:
        return cnn_grad_adaptive_avgpool(cl, n, ic, ih, iw, l->h, l->w, dy, dx, name);
    case CNN_OP_LINEAR:
        return cnn_grad_linear(cl, n, ic * ih * iw, l->c, dy, net->w[i], dx, name);
    case CNN_OP_HARDSIGMOID:
        return cnn_grad_clamp(cl, x, dy, dx, count, l->spec->alpha, l->spec->beta, 0.0f, 1.0f, false, name);
    case CNN_OP_CLIP:
        return cnn_grad_clamp(cl, x, dy, dx, count, 1.0f, 0.0f, l->spec->lo, l->spec->hi, true, name);
    case CNN_OP_SUB: case CNN_OP_MUL: case CNN_OP_DIV:
        return back_binary(bw, i, n);
    case CNN_OP_LAYERNORM:
        return cnn_grad_layernorm(cl, n, l->c, l->h * l->w, l->spec->eps, x, net->w[i], dy, dx, name);
    case CNN_OP_SLICE: case CNN_OP_CHANNEL_SHUFFLE:
        return cnn_grad_channel_gather(cl, &l->chan, n, l->h * l->w, dy, dx, name);
    case CNN_OP_PAD:
        return cnn_grad_pad(cl, &l->pad, n, dy, dx, name);
    case CNN_OP_RESIZE:
        return cnn_grad_resize(cl, &l->resize, n, dy, dx, name);
    case CNN_OP_GLOBAL_MAXPOOL:
        return cnn_grad_global_maxpool(cl, n, l->c, ih * iw, x, dy, dx, name);
    case CNN_OP_ADD: {
        if (l->n_in <= 2) return back_binary(bw, i, n);
        int status = CNN_OK;
        for (int k = 0; k < l->n_in && status == CNN_OK; k++)
            status = cnn_grad_accum(cl, dy, cnn_backward_grad(bw, l->in[k]), count, name);
        return status;
    }
    case CNN_OP_CONCAT: {
        int c0 = 0, status = CNN_OK;
        for (int k = 0; k < l->n_in && status == CNN_OK; k++) {
            const cnn_layer *src = l->in[k] >= 0 ? &g->layers[l->in[k]] : NULL;
            int cx = src ? src->c : g->in_c;
            status = cnn_grad_concat_part(cl, n, cx, l->c, c0, l->h * l->w, dy, cnn_backward_grad(bw, l->in[k]),
                                          name);
            c0 += cx;
        }
        return status;
    }
    case CNN_OP_SOFTMAX:
        return cnn_grad_softmax(cl, n, l->c, l->h * l->w, y, dy, dx, name);
    case CNN_OP_LRN:
        return cnn_grad_lrn(cl, n, l->c, l->h * l->w, l->spec->size, l->spec->alpha, l->spec->beta, l->spec->k, x,
                            dy, dx, name);
    default:
        CNN_ASSERT(!"layer op does not compute");
    }
    return CNN_OK;
}

static int run_from(cnn_backward *bw, int n, int last, const float *seed, cnn_seed_add add, void *ctx,
                    cnn_grad_mode mode, int stop);

int cnn_backward_run(cnn_backward *bw, int n, const int *cls, bool prob, const float *logits,
                     cnn_grad_mode mode, int stop)
{
    cnn_net *net = bw->net;
    const cnn_graph *g = net->g;
    CNN_ASSERT(n >= 1 && n <= net->plan.max_batch);
    int last = g->n - 1;
    size_t nout = cnn_layer_numel(&g->layers[last]);
    /* The seed: d score / d output.  Logit: one-hot.  Probability p_c of a
     * softmax over the output: d p_c / d z_k = p_c (delta_ck - p_k). */
    for (int b = 0; b < n; b++) {
        float *s = bw->seed + (size_t)b * nout;
        memset(s, 0, nout * sizeof *s);
        CNN_ASSERT(cls[b] >= 0 && (size_t)cls[b] < nout);
        if (!prob) {
            s[cls[b]] = 1.0f;
            continue;
        }
        const float *z = logits + (size_t)b * nout;
        double mx = -INFINITY, sum = 0;
        for (size_t k = 0; k < nout; k++) mx = fmax(mx, z[k]);
        for (size_t k = 0; k < nout; k++) sum += exp((double)z[k] - mx);
        double pc = exp((double)z[cls[b]] - mx) / sum;
        for (size_t k = 0; k < nout; k++) {
            double pk = exp((double)z[k] - mx) / sum;
            s[k] = (float)(pc * (((size_t)cls[b] == k) - pk));
        }
    }
    return run_from(bw, n, last, bw->seed, NULL, NULL, mode, stop);
}

int cnn_backward_seeded(cnn_backward *bw, int n, int top, const float *seed, cnn_grad_mode mode, int stop)
{
    CNN_ASSERT(n >= 1 && n <= bw->net->plan.max_batch && top >= 0 && top < bw->net->g->n);
    return run_from(bw, n, top, seed, NULL, NULL, mode, stop);
}

int cnn_backward_seeded_add(cnn_backward *bw, int n, int top, const float *seed, cnn_seed_add add, void *ctx,
                            cnn_grad_mode mode, int stop)
{
    CNN_ASSERT(n >= 1 && n <= bw->net->plan.max_batch && top >= 0 && top < bw->net->g->n);
    return run_from(bw, n, top, seed, add, ctx, mode, stop);
}

/* The backward from layer `last` seeded with d score / d its output. */
static int run_from(cnn_backward *bw, int n, int last, const float *seed, cnn_seed_add add, void *ctx,
                    cnn_grad_mode mode, int stop)
{
    cnn_net *net = bw->net;
    const cnn_graph *g = net->g;
    size_t nout = cnn_layer_numel(&g->layers[last]);
    /* Zero exactly the sums the visited layers add into: their own and
     * their inputs' (a skip connection may reach below stop). */
    CNN_ASSERT(stop >= CNN_GRAPH_INPUT && stop <= last);
    bool *hit = cnn_calloc((size_t)g->n + 1, sizeof *hit); /* hit[j + 1]: layer j; hit[0]: the input */
    if (!hit) return CNN_ERR_NOMEM;
    for (int i = last; i > stop; i--) { /* views add into their root's sum */
        hit[net->plan.root[i] + 1] = true;
        for (int k = 0; k < g->layers[i].n_in; k++) {
            int j = g->layers[i].in[k];
            hit[(j < 0 ? j : net->plan.root[j]) + 1] = true;
        }
    }
    int status = CNN_OK;
    if (hit[0])
        status = cnn_grad_zero(net->cl, bw->d_input, 0, (size_t)n * g->in_c * g->in_h * g->in_w, "input gradient");
    for (int i = 0; i < g->n && status == CNN_OK; i++)
        if (bw->d[i] && hit[i + 1])
            status = cnn_grad_zero(net->cl, bw->d[i], 0, (size_t)n * cnn_layer_numel(&g->layers[i]),
                                   g->layers[i].spec->name);
    free(hit);
    if (status == CNN_OK)
        status = cnn_cl_write(net->cl, cnn_backward_grad(bw, last), 0, (size_t)n * nout * sizeof(float), seed,
                              "gradient seed");
    if (status == CNN_OK && add) status = add(ctx, cnn_backward_grad(bw, last));
    for (int i = last; i > stop && status == CNN_OK; i--)
        if (net->plan.computes[i]) status = back_layer(bw, i, n, mode);
    return status;
}
