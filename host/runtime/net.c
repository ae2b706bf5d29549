#include "runtime/net.h"
#include "runtime/choose.h"
#include "ops/blas.h"
#include "core/error.h"
#include "core/util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static bool is_act(const cnn_layer_spec *s) { return cnn_act_of(s) != CNN_ACT_NONE; }

static bool is_binary(cnn_op op)
{
    return op == CNN_OP_ADD || op == CNN_OP_SUB || op == CNN_OP_MUL || op == CNN_OP_DIV;
}

cnn_act cnn_act_of(const cnn_layer_spec *s)
{
    switch (s->op) {
    case CNN_OP_SILU: return CNN_ACT_SILU;
    case CNN_OP_GELU: return s->gelu_tanh ? CNN_ACT_GELU_TANH : CNN_ACT_GELU;
    case CNN_OP_RELU: return CNN_ACT_RELU;
    case CNN_OP_RELU6: return CNN_ACT_RELU6;
    case CNN_OP_LEAKY_RELU: return CNN_ACT_LEAKY_RELU;
    case CNN_OP_SIGMOID: return CNN_ACT_SIGMOID;
    case CNN_OP_TANH: return CNN_ACT_TANH;
    case CNN_OP_HARDSWISH: return CNN_ACT_HARDSWISH;
    default: return CNN_ACT_NONE;
    }
}

void cnn_plan_free(cnn_plan *p)
{
    free(p->root);
    free(p->computes);
    free(p->fold_bn);
    free(p->act);
    free(p->slope);
    free(p->slot);
    free(p->slot_bytes);
    free(p->packed);
    free(p->pack);
    memset(p, 0, sizeof *p);
}

int cnn_plan_build(const cnn_graph *g, const bool *keep_in, int max_batch, cnn_plan *p)
{
    return cnn_plan_build_for(g, keep_in, max_batch, CNN_PACK_OWN, p);
}

int cnn_plan_build_for(const cnn_graph *g, const bool *keep_in, int max_batch, cnn_packing packing, cnn_plan *p)
{
    return cnn_plan_build_with(g, keep_in, max_batch, packing, NULL, true, p);
}

/* Layer i's packed layout: the measured choice where there is one. */
static bool pack_conv(const cnn_conv_geom *cg, int max_batch, bool all_kept, signed char wino, bool own,
                      cnn_conv_pack *pk)
{
    if (all_kept) return cnn_op_conv2d_pack_plain(cg, max_batch, own, pk);
    if (wino == 1 && cnn_op_conv2d_pack_winograd(cg, max_batch, own, pk)) return true;
    if (wino == 0) return cnn_op_conv2d_pack_plain(cg, max_batch, own, pk);
    return cnn_op_conv2d_pack_layout(cg, max_batch, own, pk);
}

int cnn_plan_build_with(const cnn_graph *g, const bool *keep_in, int max_batch, cnn_packing packing,
                        const signed char *wino, bool exact, cnn_plan *p)
{
    memset(p, 0, sizeof *p);
    int n = g->n;
    p->n = n;
    p->max_batch = max_batch;
    p->root = cnn_calloc((size_t)n, sizeof *p->root);
    p->computes = cnn_calloc((size_t)n, sizeof *p->computes);
    p->fold_bn = cnn_calloc((size_t)n, sizeof *p->fold_bn);
    p->act = cnn_calloc((size_t)n, sizeof *p->act);
    p->slope = cnn_calloc((size_t)n, sizeof *p->slope);
    p->slot = cnn_calloc((size_t)n, sizeof *p->slot);
    p->slot_bytes = cnn_calloc((size_t)n, sizeof *p->slot_bytes);
    p->packed = cnn_calloc((size_t)n, sizeof *p->packed);
    p->pack = cnn_calloc((size_t)n, sizeof *p->pack);
    int *readers = cnn_calloc((size_t)n, sizeof *readers);
    int *last_use = cnn_calloc((size_t)n, sizeof *last_use);
    bool *keep = cnn_calloc((size_t)n, sizeof *keep);
    bool *slot_free = cnn_calloc((size_t)n, sizeof *slot_free);
    int status = CNN_OK;
    if (!p->root || !p->computes || !p->fold_bn || !p->act || !p->slope || !p->slot || !p->slot_bytes ||
        !p->packed || !p->pack || !readers || !last_use || !keep || !slot_free) {
        status = CNN_ERR_NOMEM;
        goto done;
    }
    for (int i = 0; i < n; i++) {
        keep[i] = keep_in ? keep_in[i] : false;
        p->fold_bn[i] = -1;
        p->slot[i] = -1;
        for (int k = 0; k < g->layers[i].n_in; k++)
            if (g->layers[i].in[k] >= 0) readers[g->layers[i].in[k]]++;
    }
    keep[n - 1] = true;

    /* Decide what computes and what is a view or fused into its producer. */
    for (int i = 0; i < n; i++) {
        const cnn_layer *l = &g->layers[i];
        cnn_op op = l->spec->op;
        int src = l->in[0];
        int r = src >= 0 ? p->root[src] : CNN_GRAPH_INPUT;
        p->root[i] = i;
        p->computes[i] = true;
        if (op == CNN_OP_FLATTEN || op == CNN_OP_DROPOUT || (op == CNN_OP_CONCAT && l->n_in == 1)) {
            p->root[i] = r;
            p->computes[i] = false;
            continue;
        }
        /* Only a tensor nobody else reads or keeps may be rewritten in place. */
        bool private_src = src >= 0 && r >= 0 && readers[src] == 1 && !keep[src];
        if (op == CNN_OP_BATCHNORM && private_src && r == src && cnn_layer_is_conv(&g->layers[r]) &&
            p->fold_bn[r] < 0 && p->act[r] == CNN_ACT_NONE) {
            p->fold_bn[r] = i;
            p->root[i] = r;
            p->computes[i] = false;
            continue;
        }
        if (is_act(l->spec) && private_src && p->act[r] == CNN_ACT_NONE && p->computes[r]) {
            cnn_op rop = g->layers[r].spec->op;
            if (rop == CNN_OP_CONV2D || rop == CNN_OP_LINEAR || rop == CNN_OP_BATCHNORM || is_binary(rop)) {
                p->act[r] = cnn_act_of(l->spec);
                p->slope[r] = l->spec->slope;
                p->root[i] = r;
                p->computes[i] = false;
                continue;
            }
        }
        if (is_act(l->spec)) {
            p->act[i] = cnn_act_of(l->spec);
            p->slope[i] = l->spec->slope;
        }
    }
    /* A buffer lives until the last reader of any layer stored in it. */
    for (int i = 0; i < n; i++) last_use[i] = keep[i] ? n : i;
    for (int i = 0; i < n; i++) {
        if (keep[i] && p->root[i] >= 0) last_use[p->root[i]] = n;
        for (int k = 0; k < g->layers[i].n_in; k++) {
            int src = g->layers[i].in[k];
            if (src >= 0 && p->root[src] >= 0 && last_use[p->root[src]] < i) last_use[p->root[src]] = i;
        }
        if (p->root[i] >= 0 && last_use[p->root[i]] < last_use[i]) last_use[p->root[i]] = last_use[i];
    }
    /* Best-fit slot assignment in execution order. */
    for (int i = 0; i < n; i++) {
        if (!p->computes[i]) continue;
        size_t need;
        if (!cnn_mul_size(cnn_layer_numel(&g->layers[i]), (size_t)max_batch * sizeof(float), &need)) {
            status = cnn_error_set(CNN_ERR_INPUT, "layer '%s': batch of %d is too large", g->layers[i].spec->name,
                                   max_batch);
            goto done;
        }
        int best = -1, largest = -1;
        for (int s = 0; s < p->n_slots; s++) {
            if (!slot_free[s]) continue;
            if (p->slot_bytes[s] >= need && (best < 0 || p->slot_bytes[s] < p->slot_bytes[best])) best = s;
            if (largest < 0 || p->slot_bytes[s] > p->slot_bytes[largest]) largest = s;
        }
        if (best < 0) best = largest;
        if (best < 0) best = p->n_slots++;
        if (p->slot_bytes[best] < need) p->slot_bytes[best] = need;
        slot_free[best] = false;
        p->slot[i] = best;
        /* Free what this layer was the last to read (never its own output). */
        for (int j = 0; j < i; j++)
            if (p->computes[j] && last_use[j] == i && p->slot[j] >= 0) slot_free[p->slot[j]] = true;
        if (last_use[i] == i) slot_free[best] = true; /* dead output (nobody reads it) */
    }
    p->input_bytes = (size_t)g->in_c * g->in_h * g->in_w * (size_t)max_batch * sizeof(float);
    /* Every layer kept is gradient mode (the backward reads every forward
     * tensor and routes through its ReLU and max-pool decisions): no
     * Winograd, whose rounding differs from a dot product's enough to flip
     * near-zero ReLUs (VGG16 saliency 3.6e-3 from float64 with, 5.8e-7
     * without; test/bench/NOTES.md 7). */
    bool all_kept = keep_in != NULL && exact;
    for (int i = 0; i < n && all_kept; i++) all_kept = keep_in[i];
    for (int i = 0; i < n; i++) {
        const cnn_layer *l = &g->layers[i];
        if (cnn_layer_is_conv(l)) {
            size_t s = cnn_op_conv2d_scratch(&l->conv) * sizeof(float);
            p->packed[i] = packing != CNN_PACK_NONE && pack_conv(&l->conv, max_batch, all_kept, wino ? wino[i] : -1,
                                                                 packing == CNN_PACK_OWN, &p->pack[i]);
            if (p->packed[i]) {
                s = cnn_op_conv2d_packed_col(&l->conv, &p->pack[i], max_batch) * sizeof(float);
                size_t o = cnn_op_conv2d_packed_out(&l->conv, &p->pack[i], max_batch) * sizeof(float);
                if (o > p->gemm_bytes) p->gemm_bytes = o;
                p->weight_bytes += cnn_op_conv2d_packed_weights(&p->pack[i]) * sizeof(float);
            }
            if (s > p->scratch_bytes) p->scratch_bytes = s;
        }
        /* every op that binds parameters */
        p->weight_bytes += (size_t)l->params * sizeof(float);
    }
    p->peak_bytes = p->input_bytes + p->scratch_bytes + p->gemm_bytes + p->weight_bytes;
    for (int s = 0; s < p->n_slots; s++) p->peak_bytes += p->slot_bytes[s];
done:
    free(readers);
    free(last_use);
    free(keep);
    free(slot_free);
    if (status < 0) cnn_plan_free(p);
    return status;
}

cl_mem cnn_net_buffer(const cnn_net *net, int layer)
{
    if (layer < 0) return net->input;
    int r = net->plan.root[layer];
    if (r < 0) return net->input;
    return net->slots[net->plan.slot[r]];
}

void cnn_net_free(cnn_net *net)
{
    if (net->slots)
        for (int s = 0; s < net->plan.n_slots; s++)
            if (net->slots[s]) clReleaseMemObject(net->slots[s]);
    for (int i = 0; i < net->plan.n; i++) {
        if (net->w && net->w[i]) clReleaseMemObject(net->w[i]);
        if (net->b && net->b[i]) clReleaseMemObject(net->b[i]);
        if (net->scale && net->scale[i]) clReleaseMemObject(net->scale[i]);
        if (net->wpack && net->wpack[i]) clReleaseMemObject(net->wpack[i]);
    }
    if (net->gemm_out) clReleaseMemObject(net->gemm_out);
    if (net->input) clReleaseMemObject(net->input);
    if (net->scratch) clReleaseMemObject(net->scratch);
    free(net->slots);
    free(net->w);
    free(net->b);
    free(net->scale);
    free(net->wpack);
    free(net->layer_ms);
    free(net->in_place);
    cnn_plan_free(&net->plan);
    memset(net, 0, sizeof *net);
}

static int upload(cnn_cl *cl, const float *data, size_t count, cl_mem *out, const char *layer)
{
    int status = cnn_cl_buffer(cl, count * sizeof(float), out, layer);
    if (status < 0) return status;
    return cnn_cl_write(cl, *out, 0, count * sizeof(float), data, layer);
}

/* A parameter used in place in the weights file becomes the buffer itself
 * on a CPU device (no copy, no new pages: the device reads the file's page
 * cache) when its alignment suits every reader: 64 bytes for any vector
 * type (CLBlast's kernels cast to vectors), 4 bytes when only our kernels
 * read it (`ours_only`: they load vectors with vloadN).  Otherwise a copy. */
static int upload_param(cnn_net *net, int i, const float *data, bool owned, bool ours_only, size_t count,
                        cl_mem *out)
{
    const char *layer = net->g->layers[i].spec->name;
    uintptr_t align = ours_only ? sizeof(float) : 64;
    if ((net->cl->type & CL_DEVICE_TYPE_CPU) && !owned && count && (uintptr_t)data % align == 0 &&
        !getenv("CNNVIZ_NO_HOST_WEIGHTS")) {
        int status = cnn_cl_buffer_host(net->cl, count * sizeof(float), data, out, layer);
        if (status == CNN_OK) net->in_place[i] = net->any_in_place = true;
        return status;
    }
    return upload(net->cl, data, count, out, layer);
}

/* Per-channel batch-norm scale s = gamma / sqrt(var + eps) and shift
 * t = beta - mean * s, in double for the fold. */
static void bn_affine(const cnn_layer *bn, int c, double *s, double *t)
{
    double eps = bn->spec->eps;
    *s = (double)bn->weight[c] / sqrt((double)bn->var[c] + eps);
    *t = (double)bn->bias[c] - (double)bn->mean[c] * *s;
}

/* The packed copy of a conv's (folded) weights for the GEMM path, written
 * straight into the mapped buffer. */
static int upload_packed(cnn_net *net, int i, const float *w)
{
    if (!net->plan.packed[i]) return CNN_OK;
    const cnn_layer *l = &net->g->layers[i];
    const cnn_conv_pack *pk = &net->plan.pack[i];
    size_t bytes = cnn_op_conv2d_packed_weights(pk) * sizeof(float);
    int status = cnn_cl_buffer(net->cl, bytes, &net->wpack[i], l->spec->name);
    void *packed;
    if (status == CNN_OK) status = cnn_cl_map_write(net->cl, net->wpack[i], bytes, &packed, l->spec->name);
    if (status < 0) return status;
    cnn_op_conv2d_pack_weights(&l->conv, pk, w, packed);
    return cnn_cl_unmap(net->cl, net->wpack[i], packed, l->spec->name);
}

int cnn_net_layer_weights(cnn_net *net, int i, float *w, bool write)
{
    const cnn_layer *l = &net->g->layers[i];
    const char *name = l->spec->name;
    if (!(cnn_layer_is_conv(l) || l->spec->op == CNN_OP_LINEAR) || !net->w[i] || net->plan.fold_bn[i] >= 0)
        return cnn_error_set(CNN_ERR_USAGE, "layer %s: its weights are not on the device as the file holds them", name);
    size_t bytes = l->n_weight * sizeof(float);
    if (!write) return cnn_cl_read(net->cl, net->w[i], 0, bytes, w, name);
    if (net->in_place[i]) {
        /* the buffer is the weights file's memory: a device copy takes its
         * place (the bias stays where it is) */
        clReleaseMemObject(net->w[i]);
        net->w[i] = NULL;
        CNN_TRY_RET(upload(net->cl, w, l->n_weight, &net->w[i], name));
    } else {
        CNN_TRY_RET(cnn_cl_write(net->cl, net->w[i], 0, bytes, w, name));
    }
    if (!net->plan.packed[i]) return CNN_OK;
    size_t pbytes = cnn_op_conv2d_packed_weights(&net->plan.pack[i]) * sizeof(float);
    void *packed;
    CNN_TRY_RET(cnn_cl_map_write(net->cl, net->wpack[i], pbytes, &packed, name));
    cnn_op_conv2d_pack_weights(&l->conv, &net->plan.pack[i], w, packed);
    return cnn_cl_unmap(net->cl, net->wpack[i], packed, name);
}

static int upload_layer(cnn_net *net, int i)
{
    const cnn_layer *l = &net->g->layers[i];
    const char *name = l->spec->name;
    cnn_op op = l->spec->op;
    int status = CNN_OK;
    float *wtmp = NULL, *btmp = NULL;
    /* The forward of a packed conv reads only the packed copy. */
    bool conv = cnn_layer_is_conv(l);
    bool plain = net->backward || !conv || !net->plan.packed[i];
    if (conv && net->plan.fold_bn[i] >= 0) {
        const cnn_layer *bn = &net->g->layers[net->plan.fold_bn[i]];
        int co = l->conv.co;
        size_t per = l->n_weight / (size_t)co;
        wtmp = cnn_malloc(l->n_weight * sizeof(float));
        btmp = cnn_malloc((size_t)co * sizeof(float));
        if (!wtmp || !btmp) {
            status = CNN_ERR_NOMEM;
            goto done;
        }
        for (int c = 0; c < co; c++) {
            double s, t;
            bn_affine(bn, c, &s, &t);
            for (size_t k = 0; k < per; k++) wtmp[(size_t)c * per + k] = (float)(l->weight[(size_t)c * per + k] * s);
            btmp[c] = (float)((l->bias ? l->bias[c] : 0.0) * s + t);
        }
        if (plain) CNN_TRY(upload(net->cl, wtmp, l->n_weight, &net->w[i], name), done);
        CNN_TRY(upload(net->cl, btmp, (size_t)co, &net->b[i], name), done);
        CNN_TRY(upload_packed(net, i, wtmp), done);
    } else if (conv || op == CNN_OP_LINEAR) {
        /* Read only by our kernels: a batch-1 linear layer's weights (the
         * GEMV) and a direct convolution's, in a forward-only network; every
         * bias (the epilogues). */
        bool ours_only = !net->backward && (conv ? cnn_op_conv2d_is_direct(&l->conv) : net->plan.max_batch == 1);
        if (plain)
            CNN_TRY(upload_param(net, i, l->weight, l->owned & CNN_OWN_WEIGHT, ours_only, l->n_weight, &net->w[i]), done);
        if (conv) CNN_TRY(upload_packed(net, i, l->weight), done);
        if (l->bias)
            CNN_TRY(upload_param(net, i, l->bias, l->owned & CNN_OWN_BIAS, true, (size_t)l->c, &net->b[i]), done);
    } else if (op == CNN_OP_LAYERNORM || (is_binary(op) && l->weight)) {
        /* layer norm's gamma and beta, a binary op's constant: read by our
         * kernels only */
        if (l->weight)
            CNN_TRY(upload_param(net, i, l->weight, l->owned & CNN_OWN_WEIGHT, true, l->n_weight, &net->w[i]), done);
        if (l->bias)
            CNN_TRY(upload_param(net, i, l->bias, l->owned & CNN_OWN_BIAS, true, (size_t)l->c, &net->b[i]), done);
    } else if (op == CNN_OP_BATCHNORM && net->plan.computes[i]) {
        wtmp = cnn_malloc((size_t)l->c * sizeof(float));
        btmp = cnn_malloc((size_t)l->c * sizeof(float));
        if (!wtmp || !btmp) {
            status = CNN_ERR_NOMEM;
            goto done;
        }
        for (int c = 0; c < l->c; c++) {
            double s, t;
            bn_affine(l, c, &s, &t);
            wtmp[c] = (float)s;
            btmp[c] = (float)t;
        }
        CNN_TRY(upload(net->cl, wtmp, (size_t)l->c, &net->scale[i], name), done);
        CNN_TRY(upload(net->cl, btmp, (size_t)l->c, &net->b[i], name), done);
    }
done:
    free(wtmp);
    free(btmp);
    return status;
}

static int net_create(cnn_net *net, cnn_cl *cl, const cnn_graph *g, cnn_graph *consume, const bool *keep,
                      int max_batch, cnn_net_mode mode)
{
    memset(net, 0, sizeof *net);
    net->cl = cl;
    net->g = g;
    net->backward = mode != CNN_NET_FORWARD;
    net->fast = mode == CNN_NET_BACKWARD_FAST;
    bool cpu = (cl->type & CL_DEVICE_TYPE_CPU) != 0;
    signed char *wino = NULL;
    int status = CNN_OK;
    if (cpu && mode != CNN_NET_BACKWARD) {
        /* Winograd or im2col for each 3x3 convolution, as measured */
        wino = cnn_calloc((size_t)g->n, 1);
        if (!wino) return CNN_ERR_NOMEM;
        /* Weights with NaN or Inf get no Winograd (wino stays 0: im2col).
         * Its transforms add and subtract the values of a tile, so one Inf
         * becomes inf - inf = NaN in outputs that a direct product (and
         * PyTorch) leaves at +-Inf or finite; im2col is that product. */
        if (!g->n_nonfinite) {
            double t0 = cnn_now_ms();
            status = cnn_choose_convs(cl, g, max_batch, wino, &net->choices_measured);
            net->choices_ms = cnn_now_ms() - t0;
        }
    }
    if (status == CNN_OK) status = cnn_plan_build_with(g, keep, max_batch, cnn_blas_packing(cl), wino,
                                                               mode != CNN_NET_BACKWARD_FAST, &net->plan);
    free(wino);
    if (status < 0) return status;
    net->slots = cnn_calloc((size_t)net->plan.n_slots + 1, sizeof *net->slots);
    net->w = cnn_calloc((size_t)g->n, sizeof *net->w);
    net->b = cnn_calloc((size_t)g->n, sizeof *net->b);
    net->scale = cnn_calloc((size_t)g->n, sizeof *net->scale);
    net->wpack = cnn_calloc((size_t)g->n, sizeof *net->wpack);
    net->layer_ms = cnn_calloc((size_t)g->n, sizeof *net->layer_ms);
    net->in_place = cnn_calloc((size_t)g->n, sizeof *net->in_place);
    if (!net->slots || !net->w || !net->b || !net->scale || !net->wpack || !net->layer_ms || !net->in_place) {
        status = CNN_ERR_NOMEM;
        goto fail;
    }
    CNN_TRY(cnn_cl_buffer(cl, net->plan.input_bytes, &net->input, "network input"), fail);
    CNN_TRY(cnn_cl_buffer(cl, net->plan.scratch_bytes, &net->scratch, "convolution scratch"), fail);
    CNN_TRY(cnn_cl_buffer(cl, net->plan.gemm_bytes, &net->gemm_out, "convolution GEMM result"), fail);
    for (int s = 0; s < net->plan.n_slots; s++)
        CNN_TRY(cnn_cl_buffer(cl, net->plan.slot_bytes[s], &net->slots[s], "activation buffer"), fail);
    for (int i = 0; i < g->n; i++) {
        CNN_TRY(upload_layer(net, i), fail);
        /* A batch norm folded into an earlier conv was read by that conv's
         * upload already; nothing later reads layer i's parameters.  A
         * layer whose buffers are its file pages keeps them. */
        if (consume && !net->in_place[i]) cnn_graph_release_params(consume, i);
    }
    return CNN_OK;
fail:
    cnn_net_free(net);
    return status;
}

int cnn_net_create(cnn_net *net, cnn_cl *cl, const cnn_graph *g, const bool *keep, int max_batch, cnn_net_mode mode)
{
    return net_create(net, cl, g, NULL, keep, max_batch, mode);
}

int cnn_net_create_consuming(cnn_net *net, cnn_cl *cl, cnn_graph *g, const bool *keep, int max_batch,
                             cnn_net_mode mode)
{
    return net_create(net, cl, g, g, keep, max_batch, mode);
}

/* The operands of binary layer i: its input layers, or one and its
 * constant (net->w[i]) or scalar, in the order of l->bin. */
void cnn_net_operands(const cnn_net *net, int i, cl_mem ops[2])
{
    const cnn_layer *l = &net->g->layers[i];
    if (l->n_in == 2) {
        ops[0] = cnn_net_buffer(net, l->in[0]);
        ops[1] = cnn_net_buffer(net, l->in[1]);
        return;
    }
    int xi = l->spec->const_first ? 1 : 0;
    ops[xi] = cnn_net_buffer(net, l->in[0]);
    ops[1 - xi] = net->w[i];
}

static int run_binary(cnn_net *net, int i, int n, cnn_act act, float slope)
{
    const cnn_layer *l = &net->g->layers[i];
    cl_mem ops[2];
    cnn_net_operands(net, i, ops);
    cl_mem y = net->slots[net->plan.slot[i]];
    const cnn_bin_geom *g = &l->bin;
    /* A residual add of two equal shapes: the add kernel it always ran. */
    if (g->op == CNN_BIN_ADD && l->n_in == 2 && !memcmp(g->shape[0], g->shape[1], sizeof g->shape[0]) &&
        g->shape[0][0] == g->c && g->shape[0][1] == g->h && g->shape[0][2] == g->w)
        return cnn_op_add_act(net->cl, ops[0], ops[1], y, (size_t)n * cnn_layer_numel(l), act, slope, l->spec->name);
    return cnn_op_binary(net->cl, g, n, ops[0], ops[1], y, act, slope, l->spec->name);
}

static int run_layer(cnn_net *net, int i, int n)
{
    cnn_cl *cl = net->cl;
    const cnn_layer *l = &net->g->layers[i];
    const char *name = l->spec->name;
    cl_mem x = cnn_net_buffer(net, l->in[0]);
    cl_mem y = net->slots[net->plan.slot[i]];
    cnn_act act = net->plan.act[i];
    float slope = net->plan.slope[i];
    const cnn_layer *in0 = l->in[0] >= 0 ? &net->g->layers[l->in[0]] : NULL;
    int ic = in0 ? in0->c : net->g->in_c;
    int ih = in0 ? in0->h : net->g->in_h, iw = in0 ? in0->w : net->g->in_w;
    size_t count = (size_t)n * cnn_layer_numel(l);
    if (cnn_layer_is_conv(l)) {
        if (net->plan.packed[i])
            return cnn_op_conv2d_packed(cl, &l->conv, &net->plan.pack[i], n, x, net->wpack[i], net->b[i], act, slope,
                                        y, net->scratch, net->gemm_out, name);
        return cnn_op_conv2d(cl, &l->conv, n, x, net->w[i], net->b[i], act, slope, y, net->scratch, name);
    }
    switch (l->spec->op) {
    case CNN_OP_BATCHNORM:
        return cnn_op_affine_act(cl, x, y, net->scale[i], net->b[i], count, (size_t)l->h * l->w, l->c, act, slope,
                                 name);
    case CNN_OP_RELU: case CNN_OP_RELU6: case CNN_OP_LEAKY_RELU: case CNN_OP_SIGMOID: case CNN_OP_TANH:
    case CNN_OP_HARDSWISH: case CNN_OP_SILU: case CNN_OP_GELU:
        return cnn_op_act(cl, act, slope, x, y, count, name);
    case CNN_OP_HARDSIGMOID:
        return cnn_op_clamp(cl, x, y, count, l->spec->alpha, l->spec->beta, 0.0f, 1.0f, name);
    case CNN_OP_CLIP:
        return cnn_op_clamp(cl, x, y, count, 1.0f, 0.0f, l->spec->lo, l->spec->hi, name);
    case CNN_OP_SUB: case CNN_OP_MUL: case CNN_OP_DIV:
        return run_binary(net, i, n, act, slope);
    case CNN_OP_LAYERNORM:
        return cnn_op_layernorm(cl, n, l->c, l->h * l->w, l->spec->eps, x, net->w[i], net->b[i], y, name);
    case CNN_OP_SLICE: case CNN_OP_CHANNEL_SHUFFLE:
        return cnn_op_channel_gather(cl, &l->chan, n, l->h * l->w, x, y, name);
    case CNN_OP_PAD:
        return cnn_op_pad(cl, &l->pad, n, x, y, name);
    case CNN_OP_RESIZE:
        return cnn_op_resize(cl, &l->resize, n, x, y, name);
    case CNN_OP_GLOBAL_MAXPOOL:
        return cnn_op_global_maxpool(cl, n, l->c, ih * iw, x, y, name);
    case CNN_OP_MAXPOOL:
        return cnn_op_maxpool(cl, &l->pool, n, x, y, name);
    case CNN_OP_AVGPOOL:
        return cnn_op_avgpool(cl, &l->pool, n, x, y, name);
    case CNN_OP_GLOBAL_AVGPOOL:
    case CNN_OP_ADAPTIVE_AVGPOOL:
        return cnn_op_adaptive_avgpool(cl, n, ic, ih, iw, l->h, l->w, x, y, name);
    case CNN_OP_LINEAR:
        return cnn_op_linear(cl, n, ic * ih * iw, l->c, x, net->w[i], net->b[i], act, slope, y, name);
    case CNN_OP_ADD: {
        if (l->n_in <= 2) return run_binary(net, i, n, act, slope);
        /* A fused activation runs with the last addition. */
        int status = cnn_op_add_act(cl, x, cnn_net_buffer(net, l->in[1]), y, count, l->n_in == 2 ? act : CNN_ACT_NONE,
                                    slope, name);
        for (int k = 2; k < l->n_in && status == CNN_OK; k++)
            status = cnn_op_add_act(cl, y, cnn_net_buffer(net, l->in[k]), y, count,
                                    k == l->n_in - 1 ? act : CNN_ACT_NONE, slope, name);
        return status;
    }
    case CNN_OP_CONCAT: {
        int c0 = 0, status = CNN_OK;
        for (int k = 0; k < l->n_in && status == CNN_OK; k++) {
            const cnn_layer *src = l->in[k] >= 0 ? &net->g->layers[l->in[k]] : NULL;
            int cx = src ? src->c : net->g->in_c;
            status = cnn_op_concat_part(cl, n, cx, l->c, c0, l->h * l->w, cnn_net_buffer(net, l->in[k]), y, name);
            c0 += cx;
        }
        return status;
    }
    case CNN_OP_SOFTMAX:
        return cnn_op_softmax(cl, n, l->c, l->h * l->w, x, y, name);
    case CNN_OP_LRN:
        return cnn_op_lrn(cl, n, l->c, l->h * l->w, l->spec->size, l->spec->alpha, l->spec->beta, l->spec->k, x,
                          y, name);
    default:
        CNN_ASSERT(!"layer op does not compute");
    }
    return CNN_OK;
}

int cnn_net_forward(cnn_net *net, int n) { return cnn_net_forward_range(net, 0, net->g->n, n); }

int cnn_net_forward_range(cnn_net *net, int first, int last, int n)
{
    CNN_ASSERT(n >= 1 && n <= net->plan.max_batch);
    CNN_ASSERT(first >= 0 && first <= last && last <= net->g->n);
    net->layer_ms_images = n;
    for (int i = first; i < last; i++) {
        net->layer_ms[i] = 0;
        if (!net->plan.computes[i]) continue;
        double t0 = net->cl->profiling ? cnn_now_ms() : 0;
        int status = run_layer(net, i, n);
        if (status < 0) return status;
        if (net->cl->profiling) {
            /* Profiling trades overlap for attribution: wait per layer. */
            cl_int err = clFinish(net->cl->queue);
            if (err != CL_SUCCESS)
                return cnn_error_set(CNN_ERR_DEVICE, "clFinish failed: %s (layer '%s')", cnn_cl_error_name(err),
                                     net->g->layers[i].spec->name);
            net->layer_ms[i] = cnn_now_ms() - t0;
        }
    }
    return CNN_OK;
}

int cnn_net_read(cnn_net *net, int layer, int n, float *dst)
{
    const cnn_layer *l = &net->g->layers[layer];
    return cnn_cl_read(net->cl, cnn_net_buffer(net, layer), 0, (size_t)n * cnn_layer_numel(l) * sizeof(float), dst,
                       l->spec->name);
}
