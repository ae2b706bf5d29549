/* Constant folding: the nodes whose inputs are all constant, computed at
 * import (shape arithmetic, Reshape and Gather of constants, ...), and the
 * helpers shape inference shares (axes, broadcasting, views, slices). */
#define _POSIX_C_SOURCE 200809L
#include "import/ir.h"
#include "core/error.h"
#include "core/util.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cnn_ir_in_val(const cnn_ir *g, int ni, int k)
{
    const ir_node *n = &g->nodes[ni];
    return k < n->n_in ? n->in[k] : -1;
}

int cnn_ir_norm_axis(const cnn_ir *g, int ni, int64_t axis, int rank, int *out)
{
    *out = 0;
    if (axis < -rank || axis >= rank)
        return cnn_ir_node_error(g, ni, "axis %lld is out of range for rank %d", (long long)axis, rank);
    *out = (int)(axis < 0 ? axis + rank : axis);
    return CNN_OK;
}

/* A constant integer input (a shape, axes, pads) as a list. */
int cnn_ir_const_ints(const cnn_ir *g, int ni, int k, const char *what, int64_t *out, int max, int *n)
{
    int v = cnn_ir_in_val(g, ni, k);
    if (v < 0) {
        *n = -1;
        return CNN_OK;
    }
    const ir_val *x = &g->vals[v];
    if (!x->is_const || !x->known)
        return cnn_ir_node_error(g, ni, "its %s ('%s') must be a constant", what, x->name);
    if (!x->i) return cnn_ir_node_error(g, ni, "its %s must be integers", what);
    if (x->numel > (size_t)max) return cnn_ir_node_error(g, ni, "its %s has %zu values (at most %d)", what, x->numel, max);
    for (size_t i = 0; i < x->numel; i++) out[i] = x->i[i];
    *n = (int)x->numel;
    return CNN_OK;
}

/* Axes of Squeeze / Unsqueeze / ReduceMean: an attribute before `opset_input`,
 * an input (index k) from it on. */
int cnn_ir_axes_of(const cnn_ir *g, int ni, int opset_input, int k, int64_t *out, int *n)
{
    if (g->opset >= opset_input) return cnn_ir_const_ints(g, ni, k, "axes", out, IR_MAX_RANK, n);
    return cnn_ir_attr_ints(g, ni, "axes", out, IR_MAX_RANK, n);
}

/* numpy broadcasting of the shapes of values a[0..n) into out. */
int cnn_ir_broadcast(const cnn_ir *g, int ni, const int *vs, int n, int *rank, int64_t *out)
{
    int r = 0;
    *rank = 0;
    for (int k = 0; k < n; k++)
        if (g->vals[vs[k]].rank > r) r = g->vals[vs[k]].rank;
    for (int i = 0; i < r; i++) out[i] = 1;
    for (int k = 0; k < n; k++) {
        const ir_val *x = &g->vals[vs[k]];
        for (int i = 0; i < x->rank; i++) {
            int64_t d = x->dims[i];
            int64_t *o = &out[r - x->rank + i];
            if (d == *o || d == 1) continue;
            if (*o != 1) {
                char a[160], b[160];
                cnn_ir_dims_str(g->vals[vs[0]].rank, g->vals[vs[0]].dims, a, sizeof a);
                cnn_ir_dims_str(x->rank, x->dims, b, sizeof b);
                return cnn_ir_node_error(g, ni, "shapes %s and %s do not broadcast", a, b);
            }
            *o = d;
        }
    }
    *rank = r;
    return CNN_OK;
}

/* Index into value x of element `flat` of the broadcast shape dims[rank]. */
static size_t bcast_index(const ir_val *x, int rank, const int64_t *dims, size_t flat)
{
    size_t idx = 0, stride = 1;
    for (int i = rank - 1; i >= 0; i--) {
        size_t c = (size_t)(flat % (size_t)dims[i]);
        flat /= (size_t)dims[i];
        int xi = i - (rank - x->rank);
        if (xi >= 0) {
            if (x->dims[xi] != 1) idx += c * stride;
            stride *= (size_t)x->dims[xi];
        }
    }
    return idx;
}

/* ---------------------------------------------------------------------- */
/* Folding: every input constant                                           */

static int fold_elementwise(cnn_ir *g, int ni)
{
    ir_node *n = &g->nodes[ni];
    int vs[3], nv = 0;
    for (int k = 0; k < n->n_in && nv < 3; k++)
        if (n->in[k] >= 0) vs[nv++] = n->in[k];
    bool unary = n->op == OP_NEG || n->op == OP_RECIPROCAL || n->op == OP_ABS || n->op == OP_FLOOR ||
                 n->op == OP_CEIL || n->op == OP_EXP || n->op == OP_SQRT || n->op == OP_NOT;
    int want = unary ? 1 : n->op == OP_WHERE ? 3 : 2;
    if ((n->op == OP_MIN || n->op == OP_MAX) && nv >= 1 && n->n_in <= 3) want = nv;
    if (nv != want || n->n_in != want) return cnn_ir_node_error(g, ni, "expected %d inputs, got %d", want, n->n_in);
    int rank;
    int64_t dims[IR_MAX_RANK];
    CNN_TRY_RET(cnn_ir_broadcast(g, ni, vs, nv, &rank, dims));
    bool isf = false;
    for (int k = n->op == OP_WHERE ? 1 : 0; k < nv; k++) isf |= g->vals[vs[k]].f != NULL;
    bool logic = n->op == OP_EQUAL || n->op == OP_LESS || n->op == OP_GREATER || n->op == OP_NOT;
    int dtype = logic ? ONNX__TENSOR_PROTO__DATA_TYPE__BOOL
                : isf ? ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT
                      : ONNX__TENSOR_PROTO__DATA_TYPE__INT64;
    int o = n->out[0];
    CNN_TRY_RET(cnn_ir_make_const(g, ni, o, dtype, rank, dims));
    ir_val *y = &g->vals[o];
    for (size_t j = 0; j < y->numel; j++) {
        double a = cnn_ir_const_at(&g->vals[vs[0]], bcast_index(&g->vals[vs[0]], rank, dims, j));
        double b = nv > 1 ? cnn_ir_const_at(&g->vals[vs[1]], bcast_index(&g->vals[vs[1]], rank, dims, j)) : 0;
        double c = nv > 2 ? cnn_ir_const_at(&g->vals[vs[2]], bcast_index(&g->vals[vs[2]], rank, dims, j)) : 0;
        double r = 0;
        bool ints = true;
        for (int k = 0; k < nv; k++) ints &= g->vals[vs[k]].i != NULL;
        if (ints && n->op != OP_POW && n->op != OP_RECIPROCAL && n->op != OP_EXP && n->op != OP_SQRT) {
            /* integers (shape arithmetic: INT64_MAX is Slice's "to the end") exactly, overflow refused */
            int64_t iv[3] = {0, 0, 0}, v = 0;
            for (int k = 0; k < nv; k++) iv[k] = g->vals[vs[k]].i[bcast_index(&g->vals[vs[k]], rank, dims, j)];
            bool over = false;
            switch (n->op) {
            case OP_ADD: over = __builtin_add_overflow(iv[0], iv[1], &v); break;
            case OP_SUB: over = __builtin_sub_overflow(iv[0], iv[1], &v); break;
            case OP_MUL: over = __builtin_mul_overflow(iv[0], iv[1], &v); break;
            case OP_DIV:
                if (iv[1] == 0) return cnn_ir_node_error(g, ni, "integer division by zero");
                over = iv[0] == INT64_MIN && iv[1] == -1;
                v = over ? 0 : iv[0] / iv[1];
                break;
            case OP_NEG: case OP_ABS:
                over = iv[0] == INT64_MIN;
                v = over ? 0 : n->op == OP_NEG || iv[0] < 0 ? -iv[0] : iv[0];
                break;
            case OP_MIN: v = nv == 1 ? iv[0] : iv[0] < iv[1] ? iv[0] : iv[1]; v = nv > 2 && iv[2] < v ? iv[2] : v; break;
            case OP_MAX: v = nv == 1 ? iv[0] : iv[0] > iv[1] ? iv[0] : iv[1]; v = nv > 2 && iv[2] > v ? iv[2] : v; break;
            case OP_EQUAL: v = iv[0] == iv[1]; break;
            case OP_LESS: v = iv[0] < iv[1]; break;
            case OP_GREATER: v = iv[0] > iv[1]; break;
            case OP_WHERE: v = iv[0] ? iv[1] : iv[2]; break;
            case OP_NOT: v = iv[0] == 0; break;
            default: v = iv[0]; /* Floor, Ceil */
            }
            if (over) return cnn_ir_node_error(g, ni, "integer result out of range");
            y->i[j] = v;
            continue;
        }
        switch (n->op) {
        case OP_ADD: r = a + b; break;
        case OP_SUB: r = a - b; break;
        case OP_MUL: r = a * b; break;
        case OP_DIV: r = a / b; break;
        case OP_POW: r = pow(a, b); break;
        case OP_MIN: r = nv == 1 ? a : fmin(a, nv > 2 ? fmin(b, c) : b); break;
        case OP_MAX: r = nv == 1 ? a : fmax(a, nv > 2 ? fmax(b, c) : b); break;
        case OP_EQUAL: r = a == b; break;
        case OP_LESS: r = a < b; break;
        case OP_GREATER: r = a > b; break;
        case OP_WHERE: r = a != 0 ? b : c; break;
        case OP_NEG: r = -a; break;
        case OP_RECIPROCAL: r = 1.0 / a; break;
        case OP_ABS: r = fabs(a); break;
        case OP_FLOOR: r = floor(a); break;
        case OP_CEIL: r = ceil(a); break;
        case OP_EXP: r = exp(a); break;
        case OP_SQRT: r = sqrt(a); break;
        case OP_NOT: r = a == 0; break;
        default: CNN_ASSERT(!"not elementwise");
        }
        if (y->f) y->f[j] = (float)r;
        else if (!(r >= -9.2e18 && r <= 9.2e18)) return cnn_ir_node_error(g, ni, "integer result out of range");
        else y->i[j] = (int64_t)r; /* Pow of integers; comparisons of floats */
    }
    return CNN_OK;
}

static int fold_constant(cnn_ir *g, int ni)
{
    const ir_node *n = &g->nodes[ni];
    int o = n->out[0];
    const Onnx__NodeProto *p = n->p;
    if (p->n_attribute != 1)
        return cnn_ir_node_error(g, ni, "a Constant needs exactly one value attribute (has %zu)", p->n_attribute);
    const Onnx__AttributeProto *a = p->attribute[0];
    const char *an = a->name ? a->name : "";
    int64_t one = 1;
    if (!strcmp(an, "value") && a->t) return cnn_ir_load_tensor(g, o, a->t);
    if (!strcmp(an, "value_float")) {
        CNN_TRY_RET(cnn_ir_make_const(g, ni, o, ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, 0, NULL));
        g->vals[o].f[0] = a->f;
        return CNN_OK;
    }
    if (!strcmp(an, "value_int")) {
        CNN_TRY_RET(cnn_ir_make_const(g, ni, o, ONNX__TENSOR_PROTO__DATA_TYPE__INT64, 0, NULL));
        g->vals[o].i[0] = a->i;
        return CNN_OK;
    }
    if (!strcmp(an, "value_floats")) {
        int64_t d = (int64_t)a->n_floats;
        CNN_TRY_RET(cnn_ir_make_const(g, ni, o, ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, 1, &d));
        for (size_t i = 0; i < a->n_floats; i++) g->vals[o].f[i] = a->floats[i];
        return CNN_OK;
    }
    if (!strcmp(an, "value_ints")) {
        int64_t d = (int64_t)a->n_ints;
        CNN_TRY_RET(cnn_ir_make_const(g, ni, o, ONNX__TENSOR_PROTO__DATA_TYPE__INT64, 1, &d));
        for (size_t i = 0; i < a->n_ints; i++) g->vals[o].i[i] = a->ints[i];
        return CNN_OK;
    }
    (void)one;
    return cnn_ir_node_error(g, ni, "a Constant with attribute '%s' is not supported", an);
}

int cnn_ir_fold_shape(cnn_ir *g, int ni)
{
    const ir_node *n = &g->nodes[ni];
    const ir_val *x = &g->vals[n->in[0]];
    int o = n->out[0];
    if (n->op == OP_SIZE) {
        CNN_TRY_RET(cnn_ir_make_const(g, ni, o, ONNX__TENSOR_PROTO__DATA_TYPE__INT64, 0, NULL));
        g->vals[o].i[0] = (int64_t)x->numel;
        return CNN_OK;
    }
    int64_t start, end;
    CNN_TRY_RET(cnn_ir_attr_int(g, ni, "start", 0, &start));
    CNN_TRY_RET(cnn_ir_attr_int(g, ni, "end", x->rank, &end));
    if (start < 0) start += x->rank;
    if (end < 0) end += x->rank;
    if (start < 0) start = 0;
    if (end > x->rank) end = x->rank;
    int64_t len = end > start ? end - start : 0;
    CNN_TRY_RET(cnn_ir_make_const(g, ni, o, ONNX__TENSOR_PROTO__DATA_TYPE__INT64, 1, &len));
    for (int64_t i = 0; i < len; i++) g->vals[o].i[i] = x->dims[start + i];
    return CNN_OK;
}

static int fold_cast(cnn_ir *g, int ni)
{
    const ir_node *n = &g->nodes[ni];
    int64_t to;
    CNN_TRY_RET(cnn_ir_attr_int(g, ni, "to", 0, &to));
    const ir_val *x = &g->vals[n->in[0]];
    if (!cnn_onnx_is_float_type((int)to) && !cnn_onnx_is_int_type((int)to))
        return cnn_ir_node_error(g, ni, "cast to %s is not supported", cnn_onnx_type_name((int)to));
    int o = n->out[0];
    CNN_TRY_RET(cnn_ir_make_const(g, ni, o, (int)to, x->rank, x->dims));
    ir_val *y = &g->vals[o];
    x = &g->vals[n->in[0]];
    for (size_t j = 0; j < y->numel; j++) {
        double a = cnn_ir_const_at(x, j);
        if (y->f) y->f[j] = (float)a;
        else if (to == ONNX__TENSOR_PROTO__DATA_TYPE__BOOL) y->i[j] = a != 0;
        else if (!(a > -9.2e18 && a < 9.2e18)) return cnn_ir_node_error(g, ni, "value out of the integer range");
        else y->i[j] = (int64_t)a; /* toward zero, as ONNX's float -> int cast */
    }
    return CNN_OK;
}

/* Reshape-like ops on a constant: same data, new shape. */
static int reshape_dims(cnn_ir *g, int ni, const ir_val *x, int64_t *shape, int n, bool allowzero, int64_t *out)
{
    int neg = -1;
    size_t known = 1;
    for (int i = 0; i < n; i++) {
        int64_t d = shape[i];
        if (d == 0 && !allowzero) {
            if (i >= x->rank) return cnn_ir_node_error(g, ni, "shape entry 0 at axis %d copies no input axis", i);
            d = x->dims[i];
        }
        if (d == -1) {
            if (neg >= 0) return cnn_ir_node_error(g, ni, "shape has two -1 entries");
            neg = i;
            out[i] = 1;
            continue;
        }
        if (d < 0) return cnn_ir_node_error(g, ni, "shape entry %lld", (long long)d);
        out[i] = d;
        if (!cnn_mul_size(known, (size_t)d, &known)) return cnn_ir_node_error(g, ni, "shape too large");
    }
    if (neg >= 0) {
        if (known == 0 || x->numel % known)
            return cnn_ir_node_error(g, ni, "cannot reshape %zu elements with a -1 entry", x->numel);
        out[neg] = (int64_t)(x->numel / known);
        known = x->numel;
    }
    if (known != x->numel) {
        char a[160], b[160];
        cnn_ir_dims_str(x->rank, x->dims, a, sizeof a);
        cnn_ir_dims_str(n, out, b, sizeof b);
        return cnn_ir_node_error(g, ni, "cannot reshape %s into %s", a, b);
    }
    return CNN_OK;
}

/* Output shape of Reshape / Flatten / Squeeze / Unsqueeze for input x. */
int cnn_ir_view_shape(cnn_ir *g, int ni, const ir_val *x, int *rank, int64_t *dims)
{
    const ir_node *n = &g->nodes[ni];
    int64_t ax[IR_MAX_RANK];
    int na;
    switch (n->op) {
    case OP_RESHAPE: {
        if (g->opset < 5) return cnn_ir_node_error(g, ni, "Reshape with a shape attribute (opset < 5) is not supported");
        int64_t shape[IR_MAX_RANK], allowzero;
        int ns;
        CNN_TRY_RET(cnn_ir_const_ints(g, ni, 1, "shape", shape, IR_MAX_RANK, &ns));
        if (ns < 0) return cnn_ir_node_error(g, ni, "Reshape needs a shape input");
        CNN_TRY_RET(cnn_ir_attr_int(g, ni, "allowzero", 0, &allowzero));
        CNN_TRY_RET(reshape_dims(g, ni, x, shape, ns, allowzero != 0, dims));
        *rank = ns;
        return CNN_OK;
    }
    case OP_FLATTEN: {
        int64_t axis;
        int a;
        CNN_TRY_RET(cnn_ir_attr_int(g, ni, "axis", 1, &axis));
        CNN_TRY_RET(cnn_ir_norm_axis(g, ni, axis, x->rank + 1, &a));
        dims[0] = dims[1] = 1;
        for (int i = 0; i < x->rank; i++) dims[i < a ? 0 : 1] *= x->dims[i];
        *rank = 2;
        return CNN_OK;
    }
    case OP_SQUEEZE: {
        CNN_TRY_RET(cnn_ir_axes_of(g, ni, 13, 1, ax, &na));
        bool drop[IR_MAX_RANK] = {false};
        for (int k = 0; k < na; k++) {
            int a;
            CNN_TRY_RET(cnn_ir_norm_axis(g, ni, ax[k], x->rank, &a));
            if (x->dims[a] != 1) return cnn_ir_node_error(g, ni, "cannot squeeze axis %d of size %lld", a,
                                                          (long long)x->dims[a]);
            drop[a] = true;
        }
        int r = 0;
        for (int i = 0; i < x->rank; i++)
            if (!(na < 0 ? x->dims[i] == 1 : drop[i])) dims[r++] = x->dims[i];
        *rank = r;
        return CNN_OK;
    }
    case OP_UNSQUEEZE: {
        CNN_TRY_RET(cnn_ir_axes_of(g, ni, 13, 1, ax, &na));
        if (na < 0) return cnn_ir_node_error(g, ni, "Unsqueeze needs axes");
        int r = x->rank + na;
        if (r > IR_MAX_RANK) return cnn_ir_node_error(g, ni, "result of rank %d", r);
        bool ins[IR_MAX_RANK] = {false};
        for (int k = 0; k < na; k++) {
            int a;
            CNN_TRY_RET(cnn_ir_norm_axis(g, ni, ax[k], r, &a));
            if (ins[a]) return cnn_ir_node_error(g, ni, "axis %d given twice", a);
            ins[a] = true;
        }
        for (int i = 0, j = 0; i < r; i++) dims[i] = ins[i] ? 1 : x->dims[j++];
        *rank = r;
        return CNN_OK;
    }
    default:
        CNN_ASSERT(!"not a view");
        return CNN_OK;
    }
}

static int fold_concat(cnn_ir *g, int ni)
{
    const ir_node *n = &g->nodes[ni];
    int64_t axis;
    int a;
    CNN_TRY_RET(cnn_ir_attr_int(g, ni, "axis", 0, &axis));
    const ir_val *x0 = &g->vals[n->in[0]];
    CNN_TRY_RET(cnn_ir_norm_axis(g, ni, axis, x0->rank, &a));
    int64_t dims[IR_MAX_RANK];
    memcpy(dims, x0->dims, sizeof dims);
    dims[a] = 0;
    bool isf = false;
    for (int k = 0; k < n->n_in; k++) {
        const ir_val *x = &g->vals[n->in[k]];
        isf |= x->f != NULL;
        if (x->rank != x0->rank) return cnn_ir_node_error(g, ni, "inputs of different ranks");
        for (int i = 0; i < x->rank; i++)
            if (i != a && x->dims[i] != x0->dims[i]) return cnn_ir_node_error(g, ni, "inputs of different shapes");
        dims[a] += x->dims[a];
    }
    int o = n->out[0];
    CNN_TRY_RET(cnn_ir_make_const(g, ni, o, isf ? ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT : ONNX__TENSOR_PROTO__DATA_TYPE__INT64,
                           x0->rank, dims));
    ir_val *y = &g->vals[o];
    size_t outer = 1, inner = 1;
    for (int i = 0; i < a; i++) outer *= (size_t)dims[i];
    for (int i = a + 1; i < y->rank; i++) inner *= (size_t)dims[i];
    size_t pos = 0;
    for (size_t s = 0; s < outer; s++)
        for (int k = 0; k < n->n_in; k++) {
            const ir_val *x = &g->vals[n->in[k]];
            size_t m = (size_t)x->dims[a] * inner;
            for (size_t j = 0; j < m; j++, pos++) {
                double v = cnn_ir_const_at(x, s * m + j);
                if (y->f) y->f[pos] = (float)v;
                else y->i[pos] = x->i ? x->i[s * m + j] : (int64_t)v;
            }
        }
    return CNN_OK;
}

static int fold_gather(cnn_ir *g, int ni)
{
    const ir_node *n = &g->nodes[ni];
    const ir_val *x = &g->vals[n->in[0]], *idx = &g->vals[n->in[1]];
    if (!idx->i) return cnn_ir_node_error(g, ni, "indices must be integers");
    int64_t axis;
    int a;
    CNN_TRY_RET(cnn_ir_attr_int(g, ni, "axis", 0, &axis));
    CNN_TRY_RET(cnn_ir_norm_axis(g, ni, axis, x->rank, &a));
    int64_t dims[IR_MAX_RANK];
    int r = 0;
    if (x->rank - 1 + idx->rank > IR_MAX_RANK) return cnn_ir_node_error(g, ni, "result rank too large");
    for (int i = 0; i < a; i++) dims[r++] = x->dims[i];
    for (int i = 0; i < idx->rank; i++) dims[r++] = idx->dims[i];
    for (int i = a + 1; i < x->rank; i++) dims[r++] = x->dims[i];
    int o = n->out[0];
    CNN_TRY_RET(cnn_ir_make_const(g, ni, o, x->f ? ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT : ONNX__TENSOR_PROTO__DATA_TYPE__INT64,
                           r, dims));
    ir_val *y = &g->vals[o];
    x = &g->vals[n->in[0]];
    idx = &g->vals[n->in[1]];
    size_t outer = 1, inner = 1;
    for (int i = 0; i < a; i++) outer *= (size_t)x->dims[i];
    for (int i = a + 1; i < x->rank; i++) inner *= (size_t)x->dims[i];
    size_t pos = 0;
    for (size_t s = 0; s < outer; s++)
        for (size_t t = 0; t < idx->numel; t++) {
            int64_t k = idx->i[t];
            if (k < 0) k += x->dims[a];
            if (k < 0 || k >= x->dims[a]) return cnn_ir_node_error(g, ni, "index %lld out of range", (long long)idx->i[t]);
            for (size_t j = 0; j < inner; j++, pos++) {
                size_t src = (s * (size_t)x->dims[a] + (size_t)k) * inner + j;
                if (y->f) y->f[pos] = x->f ? x->f[src] : (float)x->i[src];
                else y->i[pos] = x->i[src];
            }
        }
    return CNN_OK;
}

int cnn_ir_slice_params(cnn_ir *g, int ni, const ir_val *x, ir_slice *s)
{
    int64_t st[IR_MAX_RANK], en[IR_MAX_RANK], ax[IR_MAX_RANK], sp[IR_MAX_RANK];
    int ns, ne, na, nsp;
    if (g->opset < 10) {
        CNN_TRY_RET(cnn_ir_attr_ints(g, ni, "starts", st, IR_MAX_RANK, &ns));
        CNN_TRY_RET(cnn_ir_attr_ints(g, ni, "ends", en, IR_MAX_RANK, &ne));
        CNN_TRY_RET(cnn_ir_attr_ints(g, ni, "axes", ax, IR_MAX_RANK, &na));
        nsp = -1;
    } else {
        CNN_TRY_RET(cnn_ir_const_ints(g, ni, 1, "starts", st, IR_MAX_RANK, &ns));
        CNN_TRY_RET(cnn_ir_const_ints(g, ni, 2, "ends", en, IR_MAX_RANK, &ne));
        CNN_TRY_RET(cnn_ir_const_ints(g, ni, 3, "axes", ax, IR_MAX_RANK, &na));
        CNN_TRY_RET(cnn_ir_const_ints(g, ni, 4, "steps", sp, IR_MAX_RANK, &nsp));
    }
    if (ns < 0 || ne != ns || (na >= 0 && na != ns) || (nsp >= 0 && nsp != ns))
        return cnn_ir_node_error(g, ni, "starts, ends, axes and steps must have one value per sliced axis");
    for (int i = 0; i < x->rank; i++) {
        s->start[i] = 0;
        s->step[i] = 1;
        s->len[i] = x->dims[i];
    }
    bool seen[IR_MAX_RANK] = {false};
    for (int k = 0; k < ns; k++) {
        int a;
        CNN_TRY_RET(cnn_ir_norm_axis(g, ni, na >= 0 ? ax[k] : k, x->rank, &a));
        if (seen[a]) return cnn_ir_node_error(g, ni, "axis %d sliced twice", a);
        seen[a] = true;
        int64_t d = x->dims[a], step = nsp >= 0 ? sp[k] : 1, b = st[k], e = en[k];
        if (step == 0) return cnn_ir_node_error(g, ni, "step 0");
        if (b < 0) b += d;
        if (e < 0) e += d;
        if (step > 0) {
            b = b < 0 ? 0 : b > d ? d : b;
            e = e < 0 ? 0 : e > d ? d : e;
            s->len[a] = e > b ? (e - b + step - 1) / step : 0;
        } else {
            b = b < 0 ? -1 : b > d - 1 ? d - 1 : b;
            e = e < -1 ? -1 : e > d - 1 ? d - 1 : e;
            s->len[a] = b > e ? (b - e + (-step) - 1) / (-step) : 0;
        }
        s->start[a] = b;
        s->step[a] = step;
    }
    return CNN_OK;
}

static int fold_slice(cnn_ir *g, int ni)
{
    const ir_node *n = &g->nodes[ni];
    ir_slice s;
    CNN_TRY_RET(cnn_ir_slice_params(g, ni, &g->vals[n->in[0]], &s));
    const ir_val *x = &g->vals[n->in[0]];
    int o = n->out[0];
    CNN_TRY_RET(cnn_ir_make_const(g, ni, o, x->f ? ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT : ONNX__TENSOR_PROTO__DATA_TYPE__INT64,
                           x->rank, s.len));
    x = &g->vals[n->in[0]];
    ir_val *y = &g->vals[o];
    for (size_t j = 0; j < y->numel; j++) {
        size_t rem = j, src = 0, stride = 1;
        for (int i = x->rank - 1; i >= 0; i--) {
            size_t c = rem % (size_t)s.len[i];
            rem /= (size_t)s.len[i];
            src += (size_t)(s.start[i] + (int64_t)c * s.step[i]) * stride;
            stride *= (size_t)x->dims[i];
        }
        if (y->f) y->f[j] = x->f[src];
        else y->i[j] = x->i[src];
    }
    return CNN_OK;
}

int cnn_ir_perm_of(cnn_ir *g, int ni, int rank, int *perm)
{
    int64_t p[IR_MAX_RANK];
    int np;
    CNN_TRY_RET(cnn_ir_attr_ints(g, ni, "perm", p, IR_MAX_RANK, &np));
    bool seen[IR_MAX_RANK] = {false};
    for (int i = 0; i < rank; i++) {
        int64_t v = np < 0 ? rank - 1 - i : i < np ? p[i] : -1;
        if (np >= 0 && np != rank) return cnn_ir_node_error(g, ni, "perm has %d entries for rank %d", np, rank);
        if (v < 0 || v >= rank || seen[v]) return cnn_ir_node_error(g, ni, "perm is not a permutation");
        seen[v] = true;
        perm[i] = (int)v;
    }
    return CNN_OK;
}

static int fold_transpose(cnn_ir *g, int ni)
{
    const ir_node *n = &g->nodes[ni];
    const ir_val *x = &g->vals[n->in[0]];
    int perm[IR_MAX_RANK];
    CNN_TRY_RET(cnn_ir_perm_of(g, ni, x->rank, perm));
    int64_t dims[IR_MAX_RANK];
    for (int i = 0; i < x->rank; i++) dims[i] = x->dims[perm[i]];
    int o = n->out[0];
    CNN_TRY_RET(cnn_ir_make_const(g, ni, o, x->f ? ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT : ONNX__TENSOR_PROTO__DATA_TYPE__INT64,
                           x->rank, dims));
    x = &g->vals[n->in[0]];
    ir_val *y = &g->vals[o];
    size_t xs[IR_MAX_RANK];
    size_t st = 1;
    for (int i = x->rank - 1; i >= 0; i--) {
        xs[i] = st;
        st *= (size_t)x->dims[i];
    }
    for (size_t j = 0; j < y->numel; j++) {
        size_t rem = j, src = 0;
        for (int i = y->rank - 1; i >= 0; i--) {
            size_t c = rem % (size_t)dims[i];
            rem /= (size_t)dims[i];
            src += c * xs[perm[i]];
        }
        if (y->f) y->f[j] = x->f[src];
        else y->i[j] = x->i[src];
    }
    return CNN_OK;
}

static int fold_misc(cnn_ir *g, int ni)
{
    const ir_node *n = &g->nodes[ni];
    int o = n->out[0];
    switch (n->op) {
    case OP_RANGE: {
        double s, l, d;
        if (n->n_in != 3 || !cnn_ir_scalar(&g->vals[n->in[0]], &s) || !cnn_ir_scalar(&g->vals[n->in[1]], &l) ||
            !cnn_ir_scalar(&g->vals[n->in[2]], &d) || d == 0)
            return cnn_ir_node_error(g, ni, "Range needs scalar start, limit and a nonzero delta");
        double cnt = ceil((l - s) / d);
        int64_t len = cnt > 0 ? (int64_t)fmin(cnt, 1e12) : 0;
        bool isf = g->vals[n->in[0]].f != NULL;
        CNN_TRY_RET(cnn_ir_make_const(g, ni, o, isf ? ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT : ONNX__TENSOR_PROTO__DATA_TYPE__INT64,
                               1, &len));
        for (int64_t k = 0; k < len; k++) {
            double v = s + (double)k * d;
            if (g->vals[o].f) g->vals[o].f[k] = (float)v;
            else if (!(v >= -9.2e18 && v <= 9.2e18)) return cnn_ir_node_error(g, ni, "integer result out of range");
            else g->vals[o].i[k] = (int64_t)v;
        }
        return CNN_OK;
    }
    case OP_CONSTANTOFSHAPE: {
        int64_t shape[IR_MAX_RANK];
        int ns;
        CNN_TRY_RET(cnn_ir_const_ints(g, ni, 0, "shape", shape, IR_MAX_RANK, &ns));
        const Onnx__AttributeProto *a = cnn_onnx_attr(g->nodes[ni].p, "value");
        double v = 0;
        int64_t iv = 0;
        int dtype = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
        if (a && a->t) {
            /* read the one-element tensor through the output value */
            CNN_TRY_RET(cnn_ir_load_tensor(g, o, a->t));
            if (g->vals[o].numel != 1) return cnn_ir_node_error(g, ni, "value must hold one element");
            v = cnn_ir_const_at(&g->vals[o], 0);
            if (g->vals[o].i) iv = g->vals[o].i[0];
            dtype = g->vals[o].f ? ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT : ONNX__TENSOR_PROTO__DATA_TYPE__INT64;
        }
        for (int i = 0; i < ns; i++)
            if (shape[i] < 0) return cnn_ir_node_error(g, ni, "negative shape entry");
        CNN_TRY_RET(cnn_ir_make_const(g, ni, o, dtype, ns < 0 ? 0 : ns, shape));
        for (size_t j = 0; j < g->vals[o].numel; j++) {
            if (g->vals[o].f) g->vals[o].f[j] = (float)v;
            else g->vals[o].i[j] = iv;
        }
        return CNN_OK;
    }
    case OP_EXPAND: {
        int64_t shape[IR_MAX_RANK];
        int ns;
        CNN_TRY_RET(cnn_ir_const_ints(g, ni, 1, "shape", shape, IR_MAX_RANK, &ns));
        const ir_val *x = &g->vals[n->in[0]];
        /* broadcast x against a value of shape `shape` */
        int r = x->rank > ns ? x->rank : ns;
        int64_t dims[IR_MAX_RANK];
        for (int i = 0; i < r; i++) {
            int xi = i - (r - x->rank), si = i - (r - ns);
            int64_t a = xi >= 0 ? x->dims[xi] : 1, b = si >= 0 ? shape[si] : 1;
            if (a != b && a != 1 && b != 1) return cnn_ir_node_error(g, ni, "shapes do not broadcast");
            dims[i] = a == 1 ? b : a;
        }
        CNN_TRY_RET(cnn_ir_make_const(g, ni, o, x->f ? ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT : ONNX__TENSOR_PROTO__DATA_TYPE__INT64,
                               r, dims));
        x = &g->vals[n->in[0]];
        for (size_t j = 0; j < g->vals[o].numel; j++) {
            size_t k = bcast_index(x, r, dims, j);
            if (g->vals[o].f) g->vals[o].f[j] = x->f[k];
            else g->vals[o].i[j] = x->i[k];
        }
        return CNN_OK;
    }
    default:
        CNN_ASSERT(!"not misc");
        return CNN_OK;
    }
}

int cnn_ir_fold(cnn_ir *g, int ni)
{
    ir_node *n = &g->nodes[ni];
    n->folded = true;
    if (n->n_out < 1 || n->out[0] < 0) return cnn_ir_node_error(g, ni, "it has no output");
    for (int k = 1; k < n->n_out; k++)
        if (n->out[k] >= 0 && g->vals[n->out[k]].n_uses && n->op != OP_SPLIT)
            return cnn_ir_node_error(g, ni, "its output #%d is used; only the first is supported", k);
    if (n->op != OP_CONSTANT && n->op != OP_CONSTANTOFSHAPE && n->op != OP_RANGE &&
        (n->n_in < 1 || n->in[0] < 0))
        return cnn_ir_node_error(g, ni, "its first input is missing");
    int o = n->out[0];
    switch (n->op) {
    case OP_CONSTANT: return fold_constant(g, ni);
    case OP_IDENTITY:
    case OP_DROPOUT: {
        const ir_val *x = &g->vals[n->in[0]];
        cnn_ir_alias_const(g, o, n->in[0], x->rank, x->dims);
        g->vals[o].from_init = x->from_init;
        return CNN_OK;
    }
    case OP_SHAPE: case OP_SIZE: return cnn_ir_fold_shape(g, ni);
    case OP_CAST: return fold_cast(g, ni);
    case OP_RESHAPE: case OP_FLATTEN: case OP_SQUEEZE: case OP_UNSQUEEZE: {
        int r;
        int64_t dims[IR_MAX_RANK];
        CNN_TRY_RET(cnn_ir_view_shape(g, ni, &g->vals[n->in[0]], &r, dims));
        cnn_ir_alias_const(g, o, n->in[0], r, dims);
        return CNN_OK;
    }
    case OP_CONCAT: return fold_concat(g, ni);
    case OP_GATHER: return fold_gather(g, ni);
    case OP_SLICE: return fold_slice(g, ni);
    case OP_TRANSPOSE: return fold_transpose(g, ni);
    case OP_ADD: case OP_SUB: case OP_MUL: case OP_DIV: case OP_POW: case OP_MIN: case OP_MAX: case OP_EQUAL:
    case OP_LESS: case OP_GREATER: case OP_WHERE: case OP_NEG: case OP_RECIPROCAL: case OP_ABS: case OP_FLOOR:
    case OP_CEIL: case OP_EXP: case OP_SQRT: case OP_NOT:
        return fold_elementwise(g, ni);
    case OP_RANGE: case OP_CONSTANTOFSHAPE: case OP_EXPAND: return fold_misc(g, ni);
    default:
        n->folded = false;
        return cnn_ir_unsupported(g, ni, "all its inputs are constant, and it is not computed at import");
    }
}
