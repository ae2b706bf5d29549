/* Shape inference for the computed tensors: each op's attributes checked
 * and its output shape (with the batch axis) worked out, as ONNX defines
 * it, and compared with PyTorch's where the two could differ. */
#define _POSIX_C_SOURCE 200809L
#include "import/ir.h"
#include "core/error.h"
#include "core/util.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int need_const(const cnn_ir *g, int ni, int k, const char *what, bool optional)
{
    int v = cnn_ir_in_val(g, ni, k);
    if (v < 0) return optional ? CNN_OK : cnn_ir_node_error(g, ni, "its %s input is missing", what);
    if (!g->vals[v].is_const)
        return cnn_ir_node_error(g, ni, "its %s ('%s') must be an initializer or a constant; computed %s are not "
                                 "supported", what, g->vals[v].name, what);
    if (!g->vals[v].f) return cnn_ir_node_error(g, ni, "its %s ('%s') must be floating point", what, g->vals[v].name);
    return CNN_OK;
}

static int set_shape(cnn_ir *g, int ni, int v, int rank, const int64_t *dims)
{
    if (v < 0) return CNN_OK;
    ir_val *x = &g->vals[v];
    if (rank > IR_MAX_RANK) return cnn_ir_node_error(g, ni, "result of rank %d (at most %d)", rank, IR_MAX_RANK);
    size_t n;
    if (!cnn_ir_numel_of(rank, dims, &n) || n > CNN_ONNX_MAX_VALUES) {
        char s[160];
        cnn_ir_dims_str(rank, dims, s, sizeof s);
        return cnn_ir_node_error(g, ni, "its output %s is too large", s);
    }
    if (n == 0 && x->n_uses) {
        /* ONNX allows empty tensors; a pipeline layer holds at least one value */
        char s[160];
        cnn_ir_dims_str(rank, dims, s, sizeof s);
        return cnn_ir_node_error(g, ni, "its output %s holds no values", s);
    }
    x->dtype = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
    x->rank = rank;
    if (rank) memcpy(x->dims, dims, (size_t)rank * sizeof dims[0]);
    x->numel = n;
    x->known = true;
    x->is_const = false;
    return CNN_OK;
}

int cnn_ir_window(const cnn_ir *g, int ni, const int64_t *dims, int rank, const int64_t *kernel, ir_window *w)
{
    const ir_node *n = &g->nodes[ni];
    bool pool = n->op == OP_MAXPOOL || n->op == OP_AVGPOOL;
    memset(w, 0, sizeof *w);
    int64_t k[IR_MAX_RANK], s[IR_MAX_RANK], d[IR_MAX_RANK], p[IR_MAX_RANK], v;
    int nk, ns, nd, np, sr = rank - 2;
    char autopad[32];
    if (sr != 1 && sr != 2)
        return cnn_ir_node_error(g, ni, "input of rank %d; 1-D and 2-D ([N, C, L], [N, C, H, W]) are supported", rank);
    CNN_TRY_RET(cnn_ir_attr_ints(g, ni, "kernel_shape", k, IR_MAX_RANK, &nk));
    CNN_TRY_RET(cnn_ir_attr_ints(g, ni, "strides", s, IR_MAX_RANK, &ns));
    CNN_TRY_RET(cnn_ir_attr_ints(g, ni, "dilations", d, IR_MAX_RANK, &nd));
    CNN_TRY_RET(cnn_ir_attr_ints(g, ni, "pads", p, IR_MAX_RANK, &np));
    CNN_TRY_RET(cnn_ir_attr_string(g, ni, "auto_pad", "NOTSET", autopad, sizeof autopad));
    if (pool && nk < 0) return cnn_ir_node_error(g, ni, "kernel_shape is required");
    if (!pool && nk >= 0 && (nk != sr || k[0] != kernel[0] || (sr == 2 && k[1] != kernel[1])))
        return cnn_ir_node_error(g, ni, "kernel_shape does not match the weight's shape");
    if (pool && nk != sr)
        return cnn_ir_node_error(g, ni, "kernel_shape has %d entries for an input of rank %d", nk, rank);
    if ((ns >= 0 && ns != sr) || (nd >= 0 && nd != sr) || (np >= 0 && np != 2 * sr))
        return cnn_ir_node_error(g, ni, "strides, dilations and pads must have %d, %d and %d entries", sr, sr, 2 * sr);
    /* 1-D: the length is the pipeline's H, with a window of width 1 */
    int64_t in[4] = {dims[0], dims[1], dims[2], sr == 2 ? dims[3] : 1};
    if (sr == 1) {
        k[1] = s[1] = d[1] = 1;
        if (np >= 0) {
            p[2] = p[1];
            p[1] = p[3] = 0;
            np = 4;
        }
    }
    for (int i = 0; i < 2; i++) {
        int64_t kk = pool ? k[i] : i < sr ? kernel[i] : 1, ss = ns >= 0 ? s[i] : 1, dd = nd >= 0 ? d[i] : 1;
        if (kk < 1 || kk > 65535 || ss < 1 || ss > 65535 || dd < 1 || dd > 65535)
            return cnn_ir_node_error(g, ni, "kernel %lld, stride %lld, dilation %lld out of range", (long long)kk,
                                     (long long)ss, (long long)dd);
        w->k[i] = (int)kk;
        w->s[i] = (int)ss;
        w->d[i] = (int)dd;
    }
    if (pool) {
        CNN_TRY_RET(cnn_ir_attr_int(g, ni, "ceil_mode", 0, &v));
        w->ceil_mode = v != 0;
        CNN_TRY_RET(cnn_ir_attr_int(g, ni, "count_include_pad", 0, &v));
        w->count_include_pad = v != 0;
        if (n->op == OP_AVGPOOL && (w->d[0] != 1 || w->d[1] != 1))
            return cnn_ir_node_error(g, ni, "AveragePool with dilations is not supported");
    } else {
        CNN_TRY_RET(cnn_ir_attr_int(g, ni, "group", 1, &v));
        if (v < 1 || v > INT_MAX) return cnn_ir_node_error(g, ni, "group %lld", (long long)v);
        w->group = (int)v;
    }
    for (int i = 0; i < 2; i++) {
        int64_t H = in[2 + i], keff = (int64_t)w->d[i] * (w->k[i] - 1) + 1, lo = 0, hi = 0, o;
        if (!strcmp(autopad, "NOTSET")) {
            if (np >= 0) {
                lo = p[i];
                hi = p[i + 2];
            }
            if (lo < 0 || hi < 0 || lo > 65535 || hi > 65535) return cnn_ir_node_error(g, ni, "pads out of range");
            int64_t span = H + lo + hi - keff;
            if (span < 0) return cnn_ir_node_error(g, ni, "kernel larger than the padded input");
            o = (w->ceil_mode ? (span + w->s[i] - 1) / w->s[i] : span / w->s[i]) + 1;
            if (w->ceil_mode && (o - 1) * w->s[i] >= H + lo)
                return cnn_ir_node_error(g, ni, "with ceil_mode its last window starts in the padding, where PyTorch "
                                         "and ONNX disagree on the output size; not supported");
        } else if (!strcmp(autopad, "VALID")) {
            if (H < keff) return cnn_ir_node_error(g, ni, "kernel larger than the input");
            o = (H - keff) / w->s[i] + 1;
        } else if (!strcmp(autopad, "SAME_UPPER") || !strcmp(autopad, "SAME_LOWER")) {
            o = (H + w->s[i] - 1) / w->s[i];
            int64_t total = (o - 1) * w->s[i] + keff - H;
            if (total < 0) total = 0;
            lo = !strcmp(autopad, "SAME_UPPER") ? total / 2 : total - total / 2;
            hi = total - lo;
        } else {
            return cnn_ir_node_error(g, ni, "auto_pad '%s' is not supported", autopad);
        }
        w->pad[2 * i] = (int)lo;
        w->pad[2 * i + 1] = (int)hi;
        w->out[i] = o;
    }
    return CNN_OK;
}

int cnn_ir_pad_params(const cnn_ir *g, int ni, int rank, int64_t *pads, double *value, char *mode, size_t msize)
{
    int np;
    *value = 0;
    if (g->opset >= 11) {
        CNN_TRY_RET(cnn_ir_const_ints(g, ni, 1, "pads", pads, 2 * IR_MAX_RANK, &np));
        int cv = cnn_ir_in_val(g, ni, 2);
        if (cv >= 0 && !cnn_ir_scalar(&g->vals[cv], value))
            return cnn_ir_node_error(g, ni, "its constant_value must be a constant scalar");
        if (cnn_ir_in_val(g, ni, 3) >= 0) return cnn_ir_node_error(g, ni, "Pad with axes is not supported");
    } else {
        CNN_TRY_RET(cnn_ir_attr_ints(g, ni, "pads", pads, 2 * IR_MAX_RANK, &np));
        CNN_TRY_RET(cnn_ir_attr_float(g, ni, "value", 0, value));
    }
    CNN_TRY_RET(cnn_ir_attr_string(g, ni, "mode", "constant", mode, msize));
    if (np != 2 * rank) return cnn_ir_node_error(g, ni, "pads has %d values for rank %d", np, rank);
    for (int i = 0; i < 2 * rank; i++)
        if (pads[i] < -65535 || pads[i] > 65535) return cnn_ir_node_error(g, ni, "pads out of range");
    return CNN_OK;
}

int cnn_ir_infer(cnn_ir *g, int ni)
{
    ir_node *n = &g->nodes[ni];
    if (n->n_in < 1 || n->in[0] < 0) return cnn_ir_node_error(g, ni, "its first input is missing");
    if (n->n_out < 1 || n->out[0] < 0) return cnn_ir_node_error(g, ni, "it has no output");
    const ir_val *x = &g->vals[n->in[0]];
    if (x->is_const) {
        /* A computed tensor feeds the node, just not as its first input
         * (Add(const, x)): every op that allows that is elementwise. */
        bool sym = n->op == OP_ADD || n->op == OP_MUL || n->op == OP_SUB || n->op == OP_DIV || n->op == OP_POW ||
                   n->op == OP_CONCAT;
        if (!sym) return cnn_ir_node_error(g, ni, "its first input must be a computed tensor, not a constant");
    }
    int o = n->out[0];
    int64_t dims[IR_MAX_RANK];
    int rank = x->rank;
    memcpy(dims, x->dims, sizeof dims);
    for (int k = 1; k < n->n_out; k++) {
        int v = n->out[k];
        if (v >= 0 && g->vals[v].n_uses && n->op != OP_SPLIT)
            return cnn_ir_node_error(g, ni, "its output #%d ('%s') is used; cnnviz-cl computes only the first", k,
                                     g->vals[v].name);
    }
    switch (n->op) {
    case OP_RELU: case OP_LEAKYRELU: case OP_SIGMOID: case OP_TANH: case OP_HARDSIGMOID: case OP_HARDSWISH:
    case OP_SOFTMAX: case OP_IDENTITY: case OP_LRN: case OP_ERF: case OP_SQRT:
        break;
    case OP_DROPOUT: {
        int t = cnn_ir_in_val(g, ni, 2);
        double on;
        if (t >= 0 && (!cnn_ir_scalar(&g->vals[t], &on) || on != 0))
            return cnn_ir_node_error(g, ni, "Dropout in training mode is not supported");
        break;
    }
    case OP_CLIP:
        for (int k = 1; k < n->n_in && k < 3; k++) CNN_TRY_RET(need_const(g, ni, k, k == 1 ? "min" : "max", true));
        break;
    case OP_BATCHNORM: {
        static const char *const what[] = {"scale", "bias", "mean", "var"};
        if (n->n_in != 5) return cnn_ir_node_error(g, ni, "BatchNormalization needs 5 inputs");
        int64_t tm;
        CNN_TRY_RET(cnn_ir_attr_int(g, ni, "training_mode", 0, &tm));
        if (tm) return cnn_ir_node_error(g, ni, "BatchNormalization in training mode is not supported");
        CNN_TRY_RET(cnn_ir_attr_int(g, ni, "spatial", 1, &tm));
        if (!tm) return cnn_ir_node_error(g, ni, "BatchNormalization with spatial = 0 (statistics per element) is "
                                          "not supported");
        if (rank < 2) return cnn_ir_node_error(g, ni, "input of rank %d", rank);
        for (int k = 1; k < 5; k++) {
            CNN_TRY_RET(need_const(g, ni, k, what[k - 1], false));
            const ir_val *c = &g->vals[n->in[k]];
            if (c->numel != (size_t)dims[1] || (c->rank != 1 && g->opset >= 9))
                return cnn_ir_node_error(g, ni, "its %s has %zu values for %lld channels", what[k - 1], c->numel,
                                         (long long)dims[1]);
        }
        break;
    }
    case OP_LAYERNORM: {
        for (int k = 1; k < 3; k++) CNN_TRY_RET(need_const(g, ni, k, k == 1 ? "scale" : "bias", k == 2));
        break;
    }
    case OP_ADD: case OP_SUB: case OP_MUL: case OP_DIV: case OP_POW: {
        if (n->n_in != 2 || n->in[1] < 0) return cnn_ir_node_error(g, ni, "it needs two inputs");
        CNN_TRY_RET(cnn_ir_broadcast(g, ni, n->in, 2, &rank, dims));
        break;
    }
    case OP_CONV: {
        CNN_TRY_RET(need_const(g, ni, 1, "weight", false));
        CNN_TRY_RET(need_const(g, ni, 2, "bias", true));
        const ir_val *w = &g->vals[n->in[1]];
        if (w->rank != rank || (rank != 3 && rank != 4))
            return cnn_ir_node_error(g, ni, "input of rank %d, weight of rank %d; 1-D and 2-D convolutions are "
                                     "supported", rank, w->rank);
        ir_window win;
        CNN_TRY_RET(cnn_ir_window(g, ni, dims, rank, w->dims + 2, &win));
        if (dims[1] % win.group || w->dims[0] % win.group || w->dims[1] * win.group != dims[1])
            return cnn_ir_node_error(g, ni, "weight %lldx%lld does not fit %lld input channels in %d groups",
                                     (long long)w->dims[0], (long long)w->dims[1], (long long)dims[1], win.group);
        int b = cnn_ir_in_val(g, ni, 2);
        if (b >= 0 && (int64_t)g->vals[b].numel != w->dims[0])
            return cnn_ir_node_error(g, ni, "bias has %zu values for %lld outputs", g->vals[b].numel,
                                     (long long)w->dims[0]);
        dims[1] = w->dims[0];
        dims[2] = win.out[0];
        if (rank == 4) dims[3] = win.out[1];
        break;
    }
    case OP_MAXPOOL: case OP_AVGPOOL: {
        ir_window win;
        CNN_TRY_RET(cnn_ir_window(g, ni, dims, rank, NULL, &win));
        dims[2] = win.out[0];
        if (rank == 4) dims[3] = win.out[1];
        break;
    }
    case OP_GLOBALAVGPOOL: case OP_GLOBALMAXPOOL:
        if (rank < 3) return cnn_ir_node_error(g, ni, "input of rank %d", rank);
        for (int i = 2; i < rank; i++) dims[i] = 1;
        break;
    case OP_FLATTEN: case OP_RESHAPE: case OP_SQUEEZE: case OP_UNSQUEEZE:
        CNN_TRY_RET(cnn_ir_view_shape(g, ni, x, &rank, dims));
        break;
    case OP_GEMM: {
        int64_t ta, tb;
        CNN_TRY_RET(cnn_ir_attr_int(g, ni, "transA", 0, &ta));
        CNN_TRY_RET(cnn_ir_attr_int(g, ni, "transB", 0, &tb));
        if (rank != 2) return cnn_ir_node_error(g, ni, "input of rank %d", rank);
        if (ta) return cnn_ir_node_error(g, ni, "transA = 1 (the batch axis transposed) is not supported");
        CNN_TRY_RET(need_const(g, ni, 1, "B", false));
        const ir_val *b = &g->vals[n->in[1]];
        if (b->rank != 2 || b->dims[tb ? 1 : 0] != dims[1])
            return cnn_ir_node_error(g, ni, "B does not fit an input of %lld features", (long long)dims[1]);
        dims[1] = b->dims[tb ? 0 : 1];
        if (cnn_ir_in_val(g, ni, 2) >= 0) {
            CNN_TRY_RET(need_const(g, ni, 2, "C", true));
            const ir_val *c = &g->vals[n->in[2]];
            bool ok = c->numel == 1 || c->numel == (size_t)dims[1];
            for (int i = 0; i + 1 < c->rank; i++) ok &= c->dims[i] == 1;
            if (!ok) return cnn_ir_node_error(g, ni, "C must be a scalar or one value per output (no batch axis)");
        }
        break;
    }
    case OP_MATMUL: {
        CNN_TRY_RET(need_const(g, ni, 1, "second operand", false));
        const ir_val *b = &g->vals[n->in[1]];
        if (rank < 2 || b->rank != 2 || b->dims[0] != dims[rank - 1])
            return cnn_ir_node_error(g, ni, "MatMul of a computed tensor by a 2-D constant is supported");
        dims[rank - 1] = b->dims[1];
        break;
    }
    case OP_CONCAT: {
        int64_t axis;
        int a;
        CNN_TRY_RET(cnn_ir_attr_int(g, ni, "axis", 0, &axis));
        CNN_TRY_RET(cnn_ir_norm_axis(g, ni, axis, rank, &a));
        dims[a] = 0;
        for (int k = 0; k < n->n_in; k++) {
            if (n->in[k] < 0) return cnn_ir_node_error(g, ni, "an input is missing");
            const ir_val *y = &g->vals[n->in[k]];
            if (y->rank != rank) return cnn_ir_node_error(g, ni, "inputs of different ranks");
            for (int i = 0; i < rank; i++)
                if (i != a && y->dims[i] != x->dims[i]) return cnn_ir_node_error(g, ni, "inputs of different shapes");
            dims[a] += y->dims[a];
        }
        break;
    }
    case OP_REDUCEMEAN: {
        int64_t ax[IR_MAX_RANK], keep, noop;
        int na;
        CNN_TRY_RET(cnn_ir_axes_of(g, ni, 18, 1, ax, &na));
        CNN_TRY_RET(cnn_ir_attr_int(g, ni, "keepdims", 1, &keep));
        CNN_TRY_RET(cnn_ir_attr_int(g, ni, "noop_with_empty_axes", 0, &noop));
        if (na <= 0 && noop) break;
        bool red[IR_MAX_RANK] = {false};
        for (int k = 0; k < (na < 0 ? rank : na); k++) {
            int a = k;
            if (na >= 0) CNN_TRY_RET(cnn_ir_norm_axis(g, ni, ax[k], rank, &a));
            red[a] = true;
        }
        int r = 0;
        for (int i = 0; i < rank; i++)
            if (!red[i]) dims[r++] = x->dims[i];
            else if (keep) dims[r++] = 1;
        rank = r;
        break;
    }
    case OP_TRANSPOSE: {
        int perm[IR_MAX_RANK];
        CNN_TRY_RET(cnn_ir_perm_of(g, ni, rank, perm));
        for (int i = 0; i < rank; i++) dims[i] = x->dims[perm[i]];
        break;
    }
    case OP_SLICE: {
        ir_slice s;
        CNN_TRY_RET(cnn_ir_slice_params(g, ni, x, &s));
        memcpy(dims, s.len, sizeof dims);
        break;
    }
    case OP_SPLIT: {
        int64_t axis, sp[64], parts;
        int a, nsp;
        CNN_TRY_RET(cnn_ir_attr_int(g, ni, "axis", 0, &axis));
        CNN_TRY_RET(cnn_ir_norm_axis(g, ni, axis, rank, &a));
        if (g->opset >= 13) CNN_TRY_RET(cnn_ir_const_ints(g, ni, 1, "split", sp, 64, &nsp));
        else CNN_TRY_RET(cnn_ir_attr_ints(g, ni, "split", sp, 64, &nsp));
        CNN_TRY_RET(cnn_ir_attr_int(g, ni, "num_outputs", n->n_out, &parts));
        if (nsp >= 0 && nsp != n->n_out) return cnn_ir_node_error(g, ni, "split has %d sizes for %d outputs", nsp,
                                                                   n->n_out);
        int64_t total = 0;
        for (int k = 0; k < n->n_out; k++) {
            int64_t len;
            if (nsp >= 0) len = sp[k];
            else {
                int64_t per = (x->dims[a] + parts - 1) / parts; /* the last part takes the rest */
                len = k + 1 < n->n_out ? per : x->dims[a] - per * (n->n_out - 1);
            }
            if (len < 0) return cnn_ir_node_error(g, ni, "split sizes do not add up to %lld", (long long)x->dims[a]);
            total += len;
            int64_t od[IR_MAX_RANK];
            memcpy(od, x->dims, sizeof od);
            od[a] = len;
            CNN_TRY_RET(set_shape(g, ni, n->out[k], rank, od));
        }
        if (total != x->dims[a]) return cnn_ir_node_error(g, ni, "split sizes do not add up to %lld",
                                                          (long long)x->dims[a]);
        return CNN_OK;
    }
    case OP_PAD: {
        int64_t pads[2 * IR_MAX_RANK];
        double value;
        char mode[16];
        CNN_TRY_RET(cnn_ir_pad_params(g, ni, rank, pads, &value, mode, sizeof mode));
        for (int i = 0; i < rank; i++) {
            dims[i] += pads[i] + pads[i + rank];
            if (dims[i] < 0) return cnn_ir_node_error(g, ni, "pads remove more than the input holds");
        }
        break;
    }
    default:
        return cnn_ir_unsupported(g, ni, "not supported");
    }
    return set_shape(g, ni, o, rank, dims);
}
