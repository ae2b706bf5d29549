/* ONNX graph -> the importer's IR: values, nodes in topological order,
 * constants folded and every computed tensor's shape inferred. */
#define _POSIX_C_SOURCE 200809L
#include "import/ir.h"
#include "core/error.h"
#include "core/util.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Folded constants larger than this are refused: real models fold shape
 * vectors and small tensors; a ConstantOfShape of absurd size is hostile. */
#define MAX_FOLDED ((size_t)1 << 27)

static const struct op_entry {
    const char *name;
    ir_op op;
} g_ops[] = {
    {"Conv", OP_CONV}, {"BatchNormalization", OP_BATCHNORM}, {"Relu", OP_RELU}, {"LeakyRelu", OP_LEAKYRELU},
    {"Sigmoid", OP_SIGMOID}, {"Tanh", OP_TANH}, {"HardSigmoid", OP_HARDSIGMOID}, {"HardSwish", OP_HARDSWISH},
    {"Clip", OP_CLIP}, {"MaxPool", OP_MAXPOOL}, {"AveragePool", OP_AVGPOOL},
    {"GlobalAveragePool", OP_GLOBALAVGPOOL}, {"GlobalMaxPool", OP_GLOBALMAXPOOL}, {"Flatten", OP_FLATTEN},
    {"Gemm", OP_GEMM}, {"MatMul", OP_MATMUL}, {"Add", OP_ADD}, {"Sub", OP_SUB}, {"Mul", OP_MUL}, {"Div", OP_DIV},
    {"Concat", OP_CONCAT}, {"Softmax", OP_SOFTMAX}, {"Dropout", OP_DROPOUT}, {"Identity", OP_IDENTITY},
    {"LRN", OP_LRN}, {"ReduceMean", OP_REDUCEMEAN}, {"Transpose", OP_TRANSPOSE}, {"Reshape", OP_RESHAPE},
    {"Squeeze", OP_SQUEEZE}, {"Unsqueeze", OP_UNSQUEEZE}, {"Split", OP_SPLIT}, {"Slice", OP_SLICE}, {"Pad", OP_PAD},
    {"LayerNormalization", OP_LAYERNORM}, {"Erf", OP_ERF}, {"Pow", OP_POW}, {"Sqrt", OP_SQRT},
    {"Constant", OP_CONSTANT}, {"Shape", OP_SHAPE}, {"Size", OP_SIZE}, {"Gather", OP_GATHER}, {"Cast", OP_CAST},
    {"Neg", OP_NEG}, {"Reciprocal", OP_RECIPROCAL}, {"Abs", OP_ABS}, {"Floor", OP_FLOOR}, {"Ceil", OP_CEIL},
    {"Exp", OP_EXP}, {"Min", OP_MIN}, {"Max", OP_MAX}, {"Equal", OP_EQUAL}, {"Less", OP_LESS},
    {"Greater", OP_GREATER}, {"Where", OP_WHERE}, {"Not", OP_NOT}, {"Range", OP_RANGE},
    {"ConstantOfShape", OP_CONSTANTOFSHAPE}, {"Expand", OP_EXPAND},
};
#define N_OPS ((int)(sizeof g_ops / sizeof g_ops[0]))

const char *cnn_ir_op_name(ir_op op)
{
    for (int i = 0; i < N_OPS; i++)
        if (g_ops[i].op == op) return g_ops[i].name;
    return "?";
}

static bool is_lowered(ir_op op) { return op >= OP_CONV && op < OP_CONSTANT; }

/* Erf, Pow and Sqrt are lowered only inside the patterns fuse.c finds. */
static bool pattern_only(ir_op op) { return op == OP_ERF || op == OP_POW || op == OP_SQRT; }

static int cmp_str(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

/* "Add, AveragePool, ..." for ops lowered (folded = false) or folded only. */
static void op_list(bool folded, char *out, size_t size)
{
    const char *names[N_OPS];
    int n = 0;
    for (int i = 0; i < N_OPS; i++)
        if (folded != is_lowered(g_ops[i].op) && !pattern_only(g_ops[i].op)) names[n++] = g_ops[i].name;
    qsort(names, (size_t)n, sizeof names[0], cmp_str);
    size_t k = 0;
    out[0] = '\0';
    for (int i = 0; i < n && k < size; i++) k += (size_t)snprintf(out + k, size - k, "%s%s", i ? ", " : "", names[i]);
}

static void node_label(const cnn_ir *g, int node, char *name, size_t nsize, char *op, size_t osize)
{
    const Onnx__NodeProto *p = g->nodes[node].p;
    if (p->name && p->name[0]) cnn_escape_line(name, nsize, p->name);
    else snprintf(name, nsize, "#%d", node);
    if (p->domain && p->domain[0] && strcmp(p->domain, "ai.onnx") != 0) {
        char d[64], o[64];
        cnn_escape_line(d, sizeof d, p->domain);
        cnn_escape_line(o, sizeof o, p->op_type ? p->op_type : "");
        snprintf(op, osize, "%s.%s", d, o);
    } else {
        cnn_escape_line(op, osize, p->op_type ? p->op_type : "");
    }
}

int cnn_ir_node_error(const cnn_ir *g, int node, const char *fmt, ...)
{
    char msg[600], name[200], op[140];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    node_label(g, node, name, sizeof name, op, sizeof op);
    return cnn_error_set(CNN_ERR_INPUT, "%s: node '%s' (%s, opset %lld): %s", g->path, name, op, (long long)g->opset,
                         msg);
}

int cnn_ir_unsupported(const cnn_ir *g, int node, const char *why)
{
    char lowered[700], folded[400];
    op_list(false, lowered, sizeof lowered);
    op_list(true, folded, sizeof folded);
    return cnn_ir_node_error(g, node, "%s; supported: %s; on constants also %s", why, lowered, folded);
}

/* ---------------------------------------------------------------------- */
/* Attributes                                                              */

static const Onnx__AttributeProto *attr(const cnn_ir *g, int node, const char *name)
{
    return cnn_onnx_attr(g->nodes[node].p, name);
}

static int attr_type(const Onnx__AttributeProto *a)
{
    if (a->has_type) return a->type;
    /* IR version 1 left the type out: infer it from the field in use. */
    if (a->has_f) return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT;
    if (a->has_i) return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT;
    if (a->has_s) return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING;
    if (a->t) return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR;
    if (a->n_ints) return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS;
    if (a->n_floats) return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS;
    return 0;
}

int cnn_ir_attr_int(const cnn_ir *g, int node, const char *name, int64_t def, int64_t *out)
{
    const Onnx__AttributeProto *a = attr(g, node, name);
    *out = def;
    if (!a) return CNN_OK;
    if (attr_type(a) != ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT)
        return cnn_ir_node_error(g, node, "attribute '%s' must be an integer", name);
    *out = a->i;
    return CNN_OK;
}

int cnn_ir_attr_float(const cnn_ir *g, int node, const char *name, double def, double *out)
{
    const Onnx__AttributeProto *a = attr(g, node, name);
    *out = def;
    if (!a) return CNN_OK;
    if (attr_type(a) != ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT)
        return cnn_ir_node_error(g, node, "attribute '%s' must be a float", name);
    *out = a->f;
    return CNN_OK;
}

int cnn_ir_attr_ints(const cnn_ir *g, int node, const char *name, int64_t *out, int max, int *n)
{
    const Onnx__AttributeProto *a = attr(g, node, name);
    *n = -1; /* absent */
    if (!a) return CNN_OK;
    if (attr_type(a) != ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS)
        return cnn_ir_node_error(g, node, "attribute '%s' must be a list of integers", name);
    if (a->n_ints > (size_t)max)
        return cnn_ir_node_error(g, node, "attribute '%s' has %zu values (at most %d here)", name, a->n_ints, max);
    for (size_t i = 0; i < a->n_ints; i++) out[i] = a->ints[i];
    *n = (int)a->n_ints;
    return CNN_OK;
}

int cnn_ir_attr_string(const cnn_ir *g, int node, const char *name, const char *def, char *out, size_t size)
{
    const Onnx__AttributeProto *a = attr(g, node, name);
    snprintf(out, size, "%s", def);
    if (!a) return CNN_OK;
    if (attr_type(a) != ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING)
        return cnn_ir_node_error(g, node, "attribute '%s' must be a string", name);
    size_t n = a->s.len < size - 1 ? a->s.len : size - 1;
    if (n) memcpy(out, a->s.data, n);
    out[n] = '\0';
    if (memchr(out, '\0', n) || a->s.len >= size)
        return cnn_ir_node_error(g, node, "attribute '%s' has an unexpected value", name);
    return CNN_OK;
}

/* ---------------------------------------------------------------------- */
/* Values                                                                  */

static size_t name_hash(const char *s) { return (size_t)cnn_hash64(CNN_HASH64_INIT, s, strlen(s)); }

static int val_find(const cnn_ir *g, const char *name)
{
    for (size_t h = name_hash(name) & g->slot_mask;; h = (h + 1) & g->slot_mask) {
        int k = g->val_slots[h];
        if (k < 0 || !strcmp(g->vals[k].name, name)) return k;
    }
}

/* Index of value `name`, created (shape unknown, no producer) when new. */
static int val_get(cnn_ir *g, const char *name)
{
    size_t h = name_hash(name) & g->slot_mask;
    for (;; h = (h + 1) & g->slot_mask) {
        int k = g->val_slots[h];
        if (k < 0) break;
        if (!strcmp(g->vals[k].name, name)) return k;
    }
    CNN_ASSERT(g->n_vals < g->cap_vals);
    int k = g->n_vals++;
    ir_val *v = &g->vals[k];
    memset(v, 0, sizeof *v);
    v->name = name;
    v->producer = -1;
    v->layer = IR_LAYER_NONE;
    g->val_slots[h] = k;
    return k;
}

double cnn_ir_const_at(const ir_val *v, size_t k) { return v->f ? (double)v->f[k] : (double)v->i[k]; }

bool cnn_ir_scalar(const ir_val *v, double *x)
{
    if (!v->is_const || !v->known || v->numel != 1) return false;
    *x = cnn_ir_const_at(v, 0);
    return true;
}

int cnn_ir_other_input(const ir_node *n, int v)
{
    if (n->n_in != 2) return -1;
    return n->in[0] == v ? n->in[1] : n->in[1] == v ? n->in[0] : -1;
}

static bool numel_of(int rank, const int64_t *dims, size_t *out)
{
    size_t n = 1;
    for (int i = 0; i < rank; i++) {
        if (dims[i] < 0 || !cnn_mul_size(n, (size_t)dims[i], &n)) return false;
    }
    *out = n;
    return true;
}

static void dims_str(int rank, const int64_t *dims, char *buf, size_t size)
{
    size_t n = (size_t)snprintf(buf, size, "[");
    for (int i = 0; i < rank && n < size; i++) n += (size_t)snprintf(buf + n, size - n, "%s%lld", i ? ", " : "",
                                                                     (long long)dims[i]);
    if (n < size) snprintf(buf + n, size - n, "]");
}

static void val_free_data(ir_val *v)
{
    if (v->owned) {
        free(v->f);
        free(v->i);
    }
    v->f = NULL;
    v->i = NULL;
    v->owned = false;
}

/* Makes value v a constant of type dtype and shape dims, with fresh
 * (uninitialised) data. */
static int make_const(cnn_ir *g, int node, int v, int dtype, int rank, const int64_t *dims)
{
    ir_val *x = &g->vals[v];
    size_t n;
    if (rank > IR_MAX_RANK) return cnn_ir_node_error(g, node, "result of rank %d (at most %d)", rank, IR_MAX_RANK);
    if (!numel_of(rank, dims, &n) || n > MAX_FOLDED) {
        char s[160];
        dims_str(rank, dims, s, sizeof s);
        return cnn_ir_node_error(g, node, "a constant of shape %s is too large to compute at import", s);
    }
    val_free_data(x);
    x->dtype = dtype;
    x->rank = rank;
    if (rank) memcpy(x->dims, dims, (size_t)rank * sizeof dims[0]);
    x->numel = n;
    x->known = x->is_const = true;
    x->owned = true;
    if (cnn_onnx_is_float_type(dtype)) {
        x->dtype = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
        x->f = cnn_malloc((n ? n : 1) * sizeof(float));
        if (!x->f) return CNN_ERR_NOMEM;
    } else {
        x->i = cnn_malloc((n ? n : 1) * sizeof(int64_t));
        if (!x->i) return CNN_ERR_NOMEM;
    }
    return CNN_OK;
}

/* Value `dst` becomes `src` with another shape (same data, not owned). */
static void alias_const(cnn_ir *g, int dst, int src, int rank, const int64_t *dims)
{
    ir_val *d = &g->vals[dst];
    const ir_val *s = &g->vals[src];
    val_free_data(d);
    d->dtype = s->dtype;
    d->rank = rank;
    if (rank) memcpy(d->dims, dims, (size_t)rank * sizeof dims[0]);
    d->numel = s->numel;
    d->known = d->is_const = true;
    d->f = s->f;
    d->i = s->i;
    d->owned = false;
}

/* Reads the data of initializer / Constant tensor t into value v. */
static int load_tensor(cnn_ir *g, int v, const Onnx__TensorProto *t)
{
    ir_val *x = &g->vals[v];
    cnn_onnx_tensor info;
    CNN_TRY_RET(cnn_onnx_tensor_get(g->file, t, &info));
    if (!cnn_onnx_is_float_type(info.dtype) && !cnn_onnx_is_int_type(info.dtype))
        return cnn_error_set(CNN_ERR_INPUT, "%s: tensor '%s' has type %s; numbers are needed", g->path, info.name,
                             cnn_onnx_type_name(info.dtype));
    x->dtype = info.dtype;
    x->rank = info.ndim;
    memcpy(x->dims, info.dims, sizeof info.dims);
    x->numel = info.numel;
    x->is_const = x->known = true;
    const uint32_t one = 1;
    unsigned char le;
    memcpy(&le, &one, 1);
    /* Float32 raw data that is aligned is used where it lies: a large
     * model is then never copied before its tensors go into the weights. */
    if (info.dtype == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT && info.bytes && le == 1 && info.numel &&
        (uintptr_t)info.bytes % _Alignof(float) == 0) {
        x->f = (float *)(uintptr_t)info.bytes;
        x->owned = false;
        return CNN_OK;
    }
    x->owned = true;
    if (cnn_onnx_is_float_type(info.dtype)) {
        x->dtype = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
        if (!(x->f = cnn_malloc((info.numel ? info.numel : 1) * sizeof(float)))) return CNN_ERR_NOMEM;
        return cnn_onnx_to_f32(t, &info, x->f);
    }
    if (!(x->i = cnn_malloc((info.numel ? info.numel : 1) * sizeof(int64_t)))) return CNN_ERR_NOMEM;
    return cnn_onnx_to_i64(t, &info, x->i);
}

/* ---------------------------------------------------------------------- */
/* Building: values, nodes, order, liveness                                */

static ir_op op_of(const Onnx__NodeProto *p)
{
    if (p->domain && p->domain[0] && strcmp(p->domain, "ai.onnx") != 0) return OP_UNKNOWN;
    if (!p->op_type) return OP_UNKNOWN;
    for (int i = 0; i < N_OPS; i++)
        if (!strcmp(g_ops[i].name, p->op_type)) return g_ops[i].op;
    return OP_UNKNOWN;
}

static int int_cmp_heap(const int *heap, int a, int b) { return heap[a] < heap[b]; }

/* A binary min-heap of node indices: Kahn's algorithm takes the
 * earliest ready node first, so a model whose nodes are already in
 * order keeps its order (and its layers read in the file's order). */
static void heap_push(int *heap, int *n, int x)
{
    int i = (*n)++;
    heap[i] = x;
    while (i > 0 && int_cmp_heap(heap, i, (i - 1) / 2)) {
        int p = (i - 1) / 2, t = heap[p];
        heap[p] = heap[i];
        heap[i] = t;
        i = p;
    }
}

static int heap_pop(int *heap, int *n)
{
    int top = heap[0];
    heap[0] = heap[--(*n)];
    for (int i = 0;;) {
        int l = 2 * i + 1, r = l + 1, m = i;
        if (l < *n && int_cmp_heap(heap, l, m)) m = l;
        if (r < *n && int_cmp_heap(heap, r, m)) m = r;
        if (m == i) break;
        int t = heap[m];
        heap[m] = heap[i];
        heap[i] = t;
        i = m;
    }
    return top;
}

static char *esc(const char *s, char *buf, size_t size)
{
    cnn_escape_line(buf, size, s);
    return buf;
}

/* Sorts g->nodes topologically; a node whose inputs can never all be
 * ready is on a cycle. */
static int topo_sort(cnn_ir *g)
{
    int n = g->n_nodes;
    if (n == 0) return CNN_OK;
    int *indeg = cnn_calloc((size_t)n, sizeof *indeg);
    int *heap = cnn_malloc((size_t)n * sizeof *heap);
    int *order = cnn_malloc((size_t)n * sizeof *order);
    int *cons_start = cnn_calloc((size_t)g->n_vals + 1, sizeof *cons_start);
    int status = CNN_OK;
    size_t total = 0;
    for (int i = 0; i < n; i++) total += (size_t)g->nodes[i].n_in;
    int *cons = cnn_malloc((total ? total : 1) * sizeof *cons);
    if (!indeg || !heap || !order || !cons_start || !cons) {
        status = CNN_ERR_NOMEM;
        goto done;
    }
    /* consumers of each value, as CSR */
    for (int i = 0; i < n; i++)
        for (int k = 0; k < g->nodes[i].n_in; k++)
            if (g->nodes[i].in[k] >= 0) cons_start[g->nodes[i].in[k] + 1]++;
    for (int v = 0; v < g->n_vals; v++) cons_start[v + 1] += cons_start[v];
    int *fill = cnn_malloc(((size_t)g->n_vals + 1) * sizeof *fill);
    if (!fill) {
        status = CNN_ERR_NOMEM;
        goto done;
    }
    memcpy(fill, cons_start, ((size_t)g->n_vals + 1) * sizeof *fill);
    for (int i = 0; i < n; i++)
        for (int k = 0; k < g->nodes[i].n_in; k++) {
            int v = g->nodes[i].in[k];
            if (v < 0) continue;
            cons[fill[v]++] = i;
            if (g->vals[v].producer >= 0) indeg[i]++;
        }
    free(fill);
    int nh = 0, no = 0;
    for (int i = 0; i < n; i++)
        if (indeg[i] == 0) heap_push(heap, &nh, i);
    while (nh) {
        int i = heap_pop(heap, &nh);
        order[no++] = i;
        for (int k = 0; k < g->nodes[i].n_out; k++) {
            int v = g->nodes[i].out[k];
            if (v < 0) continue;
            for (int c = cons_start[v]; c < cons_start[v + 1]; c++)
                if (--indeg[cons[c]] == 0) heap_push(heap, &nh, cons[c]);
        }
    }
    if (no < n) {
        int bad = 0;
        while (indeg[bad] == 0) bad++;
        const ir_node *b = &g->nodes[bad];
        const char *dep = "";
        for (int k = 0; k < b->n_in; k++)
            if (b->in[k] >= 0 && g->vals[b->in[k]].producer >= 0 && indeg[g->vals[b->in[k]].producer] > 0) {
                dep = g->vals[b->in[k]].name;
                break;
            }
        char e[200];
        status = cnn_ir_node_error(g, bad, "the graph has a cycle: input '%s' depends on this node's own output",
                                   esc(dep, e, sizeof e));
        goto done;
    }
    ir_node *sorted = cnn_malloc((size_t)n * sizeof *sorted);
    if (!sorted) {
        status = CNN_ERR_NOMEM;
        goto done;
    }
    for (int i = 0; i < n; i++) sorted[i] = g->nodes[order[i]];
    free(g->nodes);
    g->nodes = sorted;
    for (int i = 0; i < n; i++)
        for (int k = 0; k < g->nodes[i].n_out; k++)
            if (g->nodes[i].out[k] >= 0) g->vals[g->nodes[i].out[k]].producer = i;
done:
    free(indeg);
    free(heap);
    free(order);
    free(cons_start);
    free(cons);
    return status;
}

static int read_nodes(cnn_ir *g, const Onnx__GraphProto *gp)
{
    g->nodes = cnn_calloc(gp->n_node ? gp->n_node : 1, sizeof *g->nodes);
    if (!g->nodes) return CNN_ERR_NOMEM;
    for (size_t i = 0; i < gp->n_node; i++) {
        const Onnx__NodeProto *p = gp->node[i];
        ir_node *n = &g->nodes[g->n_nodes++];
        n->p = p;
        n->op = op_of(p);
        n->fx = n->fa = n->fb = n->fhead = -1;
        n->in = cnn_malloc((p->n_input ? p->n_input : 1) * sizeof *n->in);
        n->out = cnn_malloc((p->n_output ? p->n_output : 1) * sizeof *n->out);
        if (!n->in || !n->out) return CNN_ERR_NOMEM;
        n->n_in = (int)p->n_input;
        n->n_out = (int)p->n_output;
        for (int k = 0; k < n->n_in; k++) n->in[k] = p->input[k] && p->input[k][0] ? val_get(g, p->input[k]) : -1;
        for (int k = 0; k < n->n_out; k++) {
            if (!p->output[k] || !p->output[k][0]) {
                n->out[k] = -1;
                continue;
            }
            int v = val_get(g, p->output[k]);
            ir_val *x = &g->vals[v];
            if (x->producer >= 0 || x->init || v == g->input) {
                char e[200];
                return cnn_ir_node_error(g, g->n_nodes - 1, "its output '%s' is already %s", esc(x->name, e, sizeof e),
                                         x->producer >= 0 ? "produced by another node"
                                         : x->init        ? "an initializer"
                                                          : "a graph input");
            }
            x->producer = g->n_nodes - 1;
            n->out[k] = v;
        }
    }
    /* An input that nothing produces. */
    for (int i = 0; i < g->n_nodes; i++)
        for (int k = 0; k < g->nodes[i].n_in; k++) {
            int v = g->nodes[i].in[k];
            if (v >= 0 && g->vals[v].producer < 0 && !g->vals[v].init && !g->vals[v].known && v != g->input) {
                char e[200];
                return cnn_ir_node_error(g, i, "input '%s' is not produced by any node, initializer or graph input",
                                         esc(g->vals[v].name, e, sizeof e));
            }
        }
    return CNN_OK;
}

/* The shape of graph input `vi`, with a symbolic batch size taken as 1
 * and symbolic height and width as size_hw. */
static int input_shape(cnn_ir *g, const Onnx__ValueInfoProto *vi, int v, const int size_hw[2])
{
    ir_val *x = &g->vals[v];
    char e[200];
    esc(vi->name, e, sizeof e);
    const Onnx__TypeProto *t = vi->type;
    if (!t || t->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE || !t->tensor_type)
        return cnn_error_set(CNN_ERR_INPUT, "%s: graph input '%s' is not a tensor", g->path, e);
    const Onnx__TypeProto__Tensor *tt = t->tensor_type;
    int et = tt->has_elem_type ? tt->elem_type : 0;
    if (et != ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT)
        return cnn_error_set(CNN_ERR_INPUT, "%s: graph input '%s' has type %s; cnnviz-cl feeds float32 (FLOAT) "
                             "inputs", g->path, e, cnn_onnx_type_name(et));
    if (!tt->shape)
        return cnn_error_set(CNN_ERR_INPUT, "%s: graph input '%s' has no shape", g->path, e);
    size_t r = tt->shape->n_dim;
    if (r < 1 || r > 4)
        return cnn_error_set(CNN_ERR_INPUT, "%s: graph input '%s' has rank %zu; cnnviz-cl takes [N, C, H, W] "
                             "(or [N, C, L], [N, F], [N])", g->path, e, r);
    x->dtype = et;
    x->rank = (int)r;
    for (size_t i = 0; i < r; i++) {
        const Onnx__TensorShapeProto__Dimension *d = tt->shape->dim[i];
        bool fixed = d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
        int64_t dv = fixed ? d->dim_value : -1;
        if (fixed && (dv < 1 || dv > INT_MAX))
            return cnn_error_set(CNN_ERR_INPUT, "%s: graph input '%s' has dimension %lld at axis %zu", g->path, e,
                                 (long long)dv, i);
        if (!fixed) {
            if (i == 0) {
                dv = 1;
                g->batch_symbolic = true;
            } else if (r == 4 && i >= 2 && size_hw[i - 2] > 0) {
                dv = size_hw[i - 2];
            } else {
                return cnn_error_set(CNN_ERR_INPUT, "%s: graph input '%s' has a symbolic size at axis %zu%s", g->path,
                                     e, i, r == 4 && i >= 2 ? ": give the input size with --size H,W" : "");
            }
        }
        x->dims[i] = dv;
    }
    g->batch = x->dims[0];
    if (r == 4 && size_hw[0] > 0 && (x->dims[2] != size_hw[0] || x->dims[3] != size_hw[1]))
        return cnn_error_set(CNN_ERR_INPUT, "%s: --size %dx%d, but the model's input '%s' is %lldx%lld", g->path,
                             size_hw[0], size_hw[1], e, (long long)x->dims[2], (long long)x->dims[3]);
    size_t n;
    if (!numel_of(x->rank, x->dims, &n) || n > CNN_ONNX_MAX_VALUES)
        return cnn_error_set(CNN_ERR_INPUT, "%s: graph input '%s' is too large", g->path, e);
    x->numel = n;
    x->known = true;
    for (int i = 0; i < IR_MAX_RANK; i++) x->phys[i] = (int8_t)(i == 0 ? -1 : i <= 3 ? i - 1 : -1);
    x->layer = IR_LAYER_INPUT;
    return CNN_OK;
}

static int mark_live(cnn_ir *g)
{
    int *stack = cnn_malloc(((size_t)g->n_nodes + 1) * sizeof *stack);
    if (!stack) return CNN_ERR_NOMEM;
    int sp = 0;
    g->vals[g->output].n_uses++;
    if (g->vals[g->output].producer >= 0) {
        stack[sp++] = g->vals[g->output].producer;
        g->nodes[g->vals[g->output].producer].live = true;
    }
    while (sp) {
        ir_node *n = &g->nodes[stack[--sp]];
        for (int k = 0; k < n->n_in; k++) {
            int v = n->in[k];
            if (v < 0) continue;
            g->vals[v].n_uses++;
            int p = g->vals[v].producer;
            if (p >= 0 && !g->nodes[p].live) {
                g->nodes[p].live = true;
                stack[sp++] = p;
            }
        }
    }
    free(stack);
    return CNN_OK;
}

static int visit(cnn_ir *g, int ni);

int cnn_ir_build(cnn_onnx_file *f, const int size_hw[2], cnn_ir *g)
{
    memset(g, 0, sizeof *g);
    g->file = f;
    g->path = f->path;
    g->opset = f->opset;
    g->input = g->output = -1;
    const Onnx__GraphProto *gp = f->model->graph;
    size_t cap = gp->n_initializer + gp->n_input + gp->n_output + 1;
    for (size_t i = 0; i < gp->n_node; i++) cap += gp->node[i]->n_input + gp->node[i]->n_output;
    if (cap > (size_t)INT_MAX / 4) return cnn_error_set(CNN_ERR_INPUT, "%s: the graph is too large", g->path);
    size_t slots = 16;
    while (slots < 2 * cap) slots *= 2;
    g->vals = cnn_calloc(cap, sizeof *g->vals);
    g->val_slots = cnn_malloc(slots * sizeof *g->val_slots);
    if (!g->vals || !g->val_slots) return CNN_ERR_NOMEM;
    g->cap_vals = (int)cap;
    g->slot_mask = slots - 1;
    for (size_t i = 0; i < slots; i++) g->val_slots[i] = -1;
    char e[200];
    if (gp->n_sparse_initializer)
        return cnn_error_set(CNN_ERR_INPUT, "%s: the graph has sparse initializers (not supported)", g->path);
    for (size_t i = 0; i < gp->n_initializer; i++) {
        const Onnx__TensorProto *t = gp->initializer[i];
        if (!t->name || !t->name[0])
            return cnn_error_set(CNN_ERR_INPUT, "%s: initializer #%zu has no name", g->path, i);
        int v = val_get(g, t->name);
        if (g->vals[v].init)
            return cnn_error_set(CNN_ERR_INPUT, "%s: initializer '%s' appears twice", g->path,
                                 esc(t->name, e, sizeof e));
        g->vals[v].init = t;
        g->vals[v].from_init = true;
        g->vals[v].is_const = true;
    }
    /* Graph inputs that are not initializers: the network input (older
     * exporters list every initializer as an input too). */
    const Onnx__ValueInfoProto *in_vi[2] = {NULL, NULL};
    int n_in = 0;
    for (size_t i = 0; i < gp->n_input; i++) {
        const Onnx__ValueInfoProto *vi = gp->input[i];
        if (!vi->name || !vi->name[0]) return cnn_error_set(CNN_ERR_INPUT, "%s: graph input #%zu has no name", g->path, i);
        int v = val_find(g, vi->name);
        if (v >= 0 && g->vals[v].init) continue;
        if (v >= 0) return cnn_error_set(CNN_ERR_INPUT, "%s: graph input '%s' is listed twice", g->path,
                                         esc(vi->name, e, sizeof e));
        v = val_get(g, vi->name);
        if (n_in < 2) in_vi[n_in] = vi;
        n_in++;
        if (n_in == 1) g->input = v;
        g->vals[v].known = true; /* not a missing input; the shape comes below */
    }
    if (n_in != 1)
        return cnn_error_set(CNN_ERR_INPUT, "%s: the graph has %d inputs%s%s%s; cnnviz-cl runs networks with one "
                             "input", g->path, n_in, n_in ? " ('" : "", n_in ? esc(in_vi[0]->name, e, sizeof e) : "",
                             n_in ? "', ...)" : "");
    g->vals[g->input].known = false;
    CNN_TRY_RET(read_nodes(g, gp));
    CNN_TRY_RET(topo_sort(g));
    if (gp->n_output != 1)
        return cnn_error_set(CNN_ERR_INPUT, "%s: the graph has %zu outputs; cnnviz-cl runs networks with one output",
                             g->path, gp->n_output);
    const char *oname = gp->output[0]->name;
    g->output = oname && oname[0] ? val_find(g, oname) : -1;
    if (g->output < 0 || (g->vals[g->output].producer < 0 && g->output != g->input && !g->vals[g->output].init))
        return cnn_error_set(CNN_ERR_INPUT, "%s: graph output '%s' is not produced by any node", g->path,
                             esc(oname ? oname : "", e, sizeof e));
    CNN_TRY_RET(input_shape(g, in_vi[0], g->input, size_hw));
    CNN_TRY_RET(mark_live(g));
    if (g->vals[g->input].n_uses == 0)
        return cnn_error_set(CNN_ERR_INPUT, "%s: the graph output does not depend on the input '%s'", g->path,
                             esc(g->vals[g->input].name, e, sizeof e));
    for (int i = 0; i < g->n_nodes; i++)
        if (g->nodes[i].live) CNN_TRY_RET(visit(g, i));
    if (g->vals[g->output].is_const)
        return cnn_error_set(CNN_ERR_INPUT, "%s: the graph output is a constant", g->path);
    return CNN_OK;
}

void cnn_ir_free(cnn_ir *g)
{
    for (int i = 0; i < g->n_vals; i++) val_free_data(&g->vals[i]);
    for (int i = 0; g->nodes && i < g->n_nodes; i++) {
        free(g->nodes[i].in);
        free(g->nodes[i].out);
    }
    free(g->nodes);
    free(g->vals);
    free(g->val_slots);
    memset(g, 0, sizeof *g);
}

/* ---------------------------------------------------------------------- */
/* Shared helpers for folding and inference                                */

static int in_val(const cnn_ir *g, int ni, int k)
{
    const ir_node *n = &g->nodes[ni];
    return k < n->n_in ? n->in[k] : -1;
}

static int norm_axis(const cnn_ir *g, int ni, int64_t axis, int rank, int *out)
{
    *out = 0;
    if (axis < -rank || axis >= rank)
        return cnn_ir_node_error(g, ni, "axis %lld is out of range for rank %d", (long long)axis, rank);
    *out = (int)(axis < 0 ? axis + rank : axis);
    return CNN_OK;
}

/* A constant integer input (a shape, axes, pads) as a list. */
static int const_ints(const cnn_ir *g, int ni, int k, const char *what, int64_t *out, int max, int *n)
{
    int v = in_val(g, ni, k);
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
static int axes_of(const cnn_ir *g, int ni, int opset_input, int k, int64_t *out, int *n)
{
    if (g->opset >= opset_input) return const_ints(g, ni, k, "axes", out, IR_MAX_RANK, n);
    return cnn_ir_attr_ints(g, ni, "axes", out, IR_MAX_RANK, n);
}

static int set_shape(cnn_ir *g, int ni, int v, int rank, const int64_t *dims)
{
    if (v < 0) return CNN_OK;
    ir_val *x = &g->vals[v];
    if (rank > IR_MAX_RANK) return cnn_ir_node_error(g, ni, "result of rank %d (at most %d)", rank, IR_MAX_RANK);
    size_t n;
    if (!numel_of(rank, dims, &n) || n > CNN_ONNX_MAX_VALUES) {
        char s[160];
        dims_str(rank, dims, s, sizeof s);
        return cnn_ir_node_error(g, ni, "its output %s is too large", s);
    }
    x->dtype = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
    x->rank = rank;
    if (rank) memcpy(x->dims, dims, (size_t)rank * sizeof dims[0]);
    x->numel = n;
    x->known = true;
    x->is_const = false;
    return CNN_OK;
}

/* numpy broadcasting of the shapes of values a[0..n) into out. */
static int broadcast(const cnn_ir *g, int ni, const int *vs, int n, int *rank, int64_t *out)
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
                dims_str(g->vals[vs[0]].rank, g->vals[vs[0]].dims, a, sizeof a);
                dims_str(x->rank, x->dims, b, sizeof b);
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
    CNN_TRY_RET(broadcast(g, ni, vs, nv, &rank, dims));
    bool isf = false;
    for (int k = n->op == OP_WHERE ? 1 : 0; k < nv; k++) isf |= g->vals[vs[k]].f != NULL;
    bool logic = n->op == OP_EQUAL || n->op == OP_LESS || n->op == OP_GREATER || n->op == OP_NOT;
    int dtype = logic ? ONNX__TENSOR_PROTO__DATA_TYPE__BOOL
                : isf ? ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT
                      : ONNX__TENSOR_PROTO__DATA_TYPE__INT64;
    int o = n->out[0];
    CNN_TRY_RET(make_const(g, ni, o, dtype, rank, dims));
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
    if (!strcmp(an, "value") && a->t) return load_tensor(g, o, a->t);
    if (!strcmp(an, "value_float")) {
        CNN_TRY_RET(make_const(g, ni, o, ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, 0, NULL));
        g->vals[o].f[0] = a->f;
        return CNN_OK;
    }
    if (!strcmp(an, "value_int")) {
        CNN_TRY_RET(make_const(g, ni, o, ONNX__TENSOR_PROTO__DATA_TYPE__INT64, 0, NULL));
        g->vals[o].i[0] = a->i;
        return CNN_OK;
    }
    if (!strcmp(an, "value_floats")) {
        int64_t d = (int64_t)a->n_floats;
        CNN_TRY_RET(make_const(g, ni, o, ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, 1, &d));
        for (size_t i = 0; i < a->n_floats; i++) g->vals[o].f[i] = a->floats[i];
        return CNN_OK;
    }
    if (!strcmp(an, "value_ints")) {
        int64_t d = (int64_t)a->n_ints;
        CNN_TRY_RET(make_const(g, ni, o, ONNX__TENSOR_PROTO__DATA_TYPE__INT64, 1, &d));
        for (size_t i = 0; i < a->n_ints; i++) g->vals[o].i[i] = a->ints[i];
        return CNN_OK;
    }
    (void)one;
    return cnn_ir_node_error(g, ni, "a Constant with attribute '%s' is not supported", an);
}

static int fold_shape(cnn_ir *g, int ni)
{
    const ir_node *n = &g->nodes[ni];
    const ir_val *x = &g->vals[n->in[0]];
    int o = n->out[0];
    if (n->op == OP_SIZE) {
        CNN_TRY_RET(make_const(g, ni, o, ONNX__TENSOR_PROTO__DATA_TYPE__INT64, 0, NULL));
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
    CNN_TRY_RET(make_const(g, ni, o, ONNX__TENSOR_PROTO__DATA_TYPE__INT64, 1, &len));
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
    CNN_TRY_RET(make_const(g, ni, o, (int)to, x->rank, x->dims));
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
        dims_str(x->rank, x->dims, a, sizeof a);
        dims_str(n, out, b, sizeof b);
        return cnn_ir_node_error(g, ni, "cannot reshape %s into %s", a, b);
    }
    return CNN_OK;
}

/* Output shape of Reshape / Flatten / Squeeze / Unsqueeze for input x. */
static int view_shape(cnn_ir *g, int ni, const ir_val *x, int *rank, int64_t *dims)
{
    const ir_node *n = &g->nodes[ni];
    int64_t ax[IR_MAX_RANK];
    int na;
    switch (n->op) {
    case OP_RESHAPE: {
        if (g->opset < 5) return cnn_ir_node_error(g, ni, "Reshape with a shape attribute (opset < 5) is not supported");
        int64_t shape[IR_MAX_RANK], allowzero;
        int ns;
        CNN_TRY_RET(const_ints(g, ni, 1, "shape", shape, IR_MAX_RANK, &ns));
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
        CNN_TRY_RET(norm_axis(g, ni, axis, x->rank + 1, &a));
        dims[0] = dims[1] = 1;
        for (int i = 0; i < x->rank; i++) dims[i < a ? 0 : 1] *= x->dims[i];
        *rank = 2;
        return CNN_OK;
    }
    case OP_SQUEEZE: {
        CNN_TRY_RET(axes_of(g, ni, 13, 1, ax, &na));
        bool drop[IR_MAX_RANK] = {false};
        for (int k = 0; k < na; k++) {
            int a;
            CNN_TRY_RET(norm_axis(g, ni, ax[k], x->rank, &a));
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
        CNN_TRY_RET(axes_of(g, ni, 13, 1, ax, &na));
        if (na < 0) return cnn_ir_node_error(g, ni, "Unsqueeze needs axes");
        int r = x->rank + na;
        if (r > IR_MAX_RANK) return cnn_ir_node_error(g, ni, "result of rank %d", r);
        bool ins[IR_MAX_RANK] = {false};
        for (int k = 0; k < na; k++) {
            int a;
            CNN_TRY_RET(norm_axis(g, ni, ax[k], r, &a));
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
    CNN_TRY_RET(norm_axis(g, ni, axis, x0->rank, &a));
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
    CNN_TRY_RET(make_const(g, ni, o, isf ? ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT : ONNX__TENSOR_PROTO__DATA_TYPE__INT64,
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
    CNN_TRY_RET(norm_axis(g, ni, axis, x->rank, &a));
    int64_t dims[IR_MAX_RANK];
    int r = 0;
    if (x->rank - 1 + idx->rank > IR_MAX_RANK) return cnn_ir_node_error(g, ni, "result rank too large");
    for (int i = 0; i < a; i++) dims[r++] = x->dims[i];
    for (int i = 0; i < idx->rank; i++) dims[r++] = idx->dims[i];
    for (int i = a + 1; i < x->rank; i++) dims[r++] = x->dims[i];
    int o = n->out[0];
    CNN_TRY_RET(make_const(g, ni, o, x->f ? ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT : ONNX__TENSOR_PROTO__DATA_TYPE__INT64,
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

/* Slice parameters per axis, resolved as ONNX clamps them. */
typedef struct slice_spec {
    int64_t start[IR_MAX_RANK], step[IR_MAX_RANK], len[IR_MAX_RANK];
} slice_spec;

static int slice_params(cnn_ir *g, int ni, const ir_val *x, slice_spec *s)
{
    int64_t st[IR_MAX_RANK], en[IR_MAX_RANK], ax[IR_MAX_RANK], sp[IR_MAX_RANK];
    int ns, ne, na, nsp;
    if (g->opset < 10) {
        CNN_TRY_RET(cnn_ir_attr_ints(g, ni, "starts", st, IR_MAX_RANK, &ns));
        CNN_TRY_RET(cnn_ir_attr_ints(g, ni, "ends", en, IR_MAX_RANK, &ne));
        CNN_TRY_RET(cnn_ir_attr_ints(g, ni, "axes", ax, IR_MAX_RANK, &na));
        nsp = -1;
    } else {
        CNN_TRY_RET(const_ints(g, ni, 1, "starts", st, IR_MAX_RANK, &ns));
        CNN_TRY_RET(const_ints(g, ni, 2, "ends", en, IR_MAX_RANK, &ne));
        CNN_TRY_RET(const_ints(g, ni, 3, "axes", ax, IR_MAX_RANK, &na));
        CNN_TRY_RET(const_ints(g, ni, 4, "steps", sp, IR_MAX_RANK, &nsp));
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
        CNN_TRY_RET(norm_axis(g, ni, na >= 0 ? ax[k] : k, x->rank, &a));
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
    slice_spec s;
    CNN_TRY_RET(slice_params(g, ni, &g->vals[n->in[0]], &s));
    const ir_val *x = &g->vals[n->in[0]];
    int o = n->out[0];
    CNN_TRY_RET(make_const(g, ni, o, x->f ? ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT : ONNX__TENSOR_PROTO__DATA_TYPE__INT64,
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

static int perm_of(cnn_ir *g, int ni, int rank, int *perm)
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
    CNN_TRY_RET(perm_of(g, ni, x->rank, perm));
    int64_t dims[IR_MAX_RANK];
    for (int i = 0; i < x->rank; i++) dims[i] = x->dims[perm[i]];
    int o = n->out[0];
    CNN_TRY_RET(make_const(g, ni, o, x->f ? ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT : ONNX__TENSOR_PROTO__DATA_TYPE__INT64,
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
        CNN_TRY_RET(make_const(g, ni, o, isf ? ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT : ONNX__TENSOR_PROTO__DATA_TYPE__INT64,
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
        CNN_TRY_RET(const_ints(g, ni, 0, "shape", shape, IR_MAX_RANK, &ns));
        const Onnx__AttributeProto *a = attr(g, ni, "value");
        double v = 0;
        int64_t iv = 0;
        int dtype = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
        if (a && a->t) {
            /* read the one-element tensor through the output value */
            CNN_TRY_RET(load_tensor(g, o, a->t));
            if (g->vals[o].numel != 1) return cnn_ir_node_error(g, ni, "value must hold one element");
            v = cnn_ir_const_at(&g->vals[o], 0);
            if (g->vals[o].i) iv = g->vals[o].i[0];
            dtype = g->vals[o].f ? ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT : ONNX__TENSOR_PROTO__DATA_TYPE__INT64;
        }
        for (int i = 0; i < ns; i++)
            if (shape[i] < 0) return cnn_ir_node_error(g, ni, "negative shape entry");
        CNN_TRY_RET(make_const(g, ni, o, dtype, ns < 0 ? 0 : ns, shape));
        for (size_t j = 0; j < g->vals[o].numel; j++) {
            if (g->vals[o].f) g->vals[o].f[j] = (float)v;
            else g->vals[o].i[j] = iv;
        }
        return CNN_OK;
    }
    case OP_EXPAND: {
        int64_t shape[IR_MAX_RANK];
        int ns;
        CNN_TRY_RET(const_ints(g, ni, 1, "shape", shape, IR_MAX_RANK, &ns));
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
        CNN_TRY_RET(make_const(g, ni, o, x->f ? ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT : ONNX__TENSOR_PROTO__DATA_TYPE__INT64,
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

static int fold(cnn_ir *g, int ni)
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
        alias_const(g, o, n->in[0], x->rank, x->dims);
        g->vals[o].from_init = x->from_init;
        return CNN_OK;
    }
    case OP_SHAPE: case OP_SIZE: return fold_shape(g, ni);
    case OP_CAST: return fold_cast(g, ni);
    case OP_RESHAPE: case OP_FLATTEN: case OP_SQUEEZE: case OP_UNSQUEEZE: {
        int r;
        int64_t dims[IR_MAX_RANK];
        CNN_TRY_RET(view_shape(g, ni, &g->vals[n->in[0]], &r, dims));
        alias_const(g, o, n->in[0], r, dims);
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

/* ---------------------------------------------------------------------- */
/* Shape inference for computed values                                     */

static int need_const(const cnn_ir *g, int ni, int k, const char *what, bool optional)
{
    int v = in_val(g, ni, k);
    if (v < 0) return optional ? CNN_OK : cnn_ir_node_error(g, ni, "its %s input is missing", what);
    if (!g->vals[v].is_const)
        return cnn_ir_node_error(g, ni, "its %s ('%s') must be an initializer or a constant; computed %s are not "
                                 "supported", what, g->vals[v].name, what);
    if (!g->vals[v].f) return cnn_ir_node_error(g, ni, "its %s ('%s') must be floating point", what, g->vals[v].name);
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
        CNN_TRY_RET(const_ints(g, ni, 1, "pads", pads, 2 * IR_MAX_RANK, &np));
        int cv = in_val(g, ni, 2);
        if (cv >= 0 && !cnn_ir_scalar(&g->vals[cv], value))
            return cnn_ir_node_error(g, ni, "its constant_value must be a constant scalar");
        if (in_val(g, ni, 3) >= 0) return cnn_ir_node_error(g, ni, "Pad with axes is not supported");
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

static int infer(cnn_ir *g, int ni)
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
        int t = in_val(g, ni, 2);
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
        CNN_TRY_RET(broadcast(g, ni, n->in, 2, &rank, dims));
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
        int b = in_val(g, ni, 2);
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
        CNN_TRY_RET(view_shape(g, ni, x, &rank, dims));
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
        if (in_val(g, ni, 2) >= 0) {
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
        CNN_TRY_RET(norm_axis(g, ni, axis, rank, &a));
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
        CNN_TRY_RET(axes_of(g, ni, 18, 1, ax, &na));
        CNN_TRY_RET(cnn_ir_attr_int(g, ni, "keepdims", 1, &keep));
        CNN_TRY_RET(cnn_ir_attr_int(g, ni, "noop_with_empty_axes", 0, &noop));
        if (na <= 0 && noop) break;
        bool red[IR_MAX_RANK] = {false};
        for (int k = 0; k < (na < 0 ? rank : na); k++) {
            int a = k;
            if (na >= 0) CNN_TRY_RET(norm_axis(g, ni, ax[k], rank, &a));
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
        CNN_TRY_RET(perm_of(g, ni, rank, perm));
        for (int i = 0; i < rank; i++) dims[i] = x->dims[perm[i]];
        break;
    }
    case OP_SLICE: {
        slice_spec s;
        CNN_TRY_RET(slice_params(g, ni, x, &s));
        memcpy(dims, s.len, sizeof dims);
        break;
    }
    case OP_SPLIT: {
        int64_t axis, sp[64], parts;
        int a, nsp;
        CNN_TRY_RET(cnn_ir_attr_int(g, ni, "axis", 0, &axis));
        CNN_TRY_RET(norm_axis(g, ni, axis, rank, &a));
        if (g->opset >= 13) CNN_TRY_RET(const_ints(g, ni, 1, "split", sp, 64, &nsp));
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

/* How many inputs op takes at this opset: [lo, hi] (hi -1: any number);
 * the first lo must be given, and for the variadic ops every one. */
static void input_range(ir_op op, int64_t opset, int *lo, int *hi)
{
    *lo = *hi = 1;
    switch (op) {
    case OP_CONSTANT: *lo = *hi = 0; break;
    case OP_DROPOUT: case OP_CLIP: *hi = 3; break;
    case OP_CONV: case OP_GEMM: *lo = 2, *hi = 3; break;
    case OP_BATCHNORM: *lo = *hi = 5; break;
    case OP_MATMUL: case OP_ADD: case OP_SUB: case OP_MUL: case OP_DIV: case OP_POW: case OP_EQUAL: case OP_LESS:
    case OP_GREATER: case OP_GATHER: case OP_EXPAND:
        *lo = *hi = 2;
        break;
    case OP_WHERE: case OP_RANGE: *lo = *hi = 3; break;
    case OP_MIN: case OP_MAX: case OP_CONCAT: *hi = -1; break;
    case OP_REDUCEMEAN: case OP_SQUEEZE: case OP_UNSQUEEZE: case OP_SPLIT: *hi = 2; break;
    case OP_RESHAPE: *lo = *hi = opset >= 5 ? 2 : 1; break;
    case OP_SLICE:
        if (opset >= 10) *lo = 3, *hi = 5;
        break;
    case OP_PAD:
        if (opset >= 11) *lo = 2, *hi = 4;
        break;
    case OP_LAYERNORM: *lo = 2, *hi = 3; break;
    default: break;
    }
}

static int check_inputs(const cnn_ir *g, int ni)
{
    const ir_node *n = &g->nodes[ni];
    int lo, hi;
    input_range(n->op, g->opset, &lo, &hi);
    if (n->n_in < lo || (hi >= 0 && n->n_in > hi)) {
        if (hi < 0) return cnn_ir_node_error(g, ni, "it has %d inputs; it takes %d or more", n->n_in, lo);
        if (lo == hi) return cnn_ir_node_error(g, ni, "it has %d inputs; it takes %d", n->n_in, lo);
        return cnn_ir_node_error(g, ni, "it has %d inputs; it takes %d to %d", n->n_in, lo, hi);
    }
    for (int k = 0; k < (hi < 0 ? n->n_in : lo); k++)
        if (n->in[k] < 0) return cnn_ir_node_error(g, ni, "its input #%d is missing", k);
    if (n->n_out < 1 || n->out[0] < 0) return cnn_ir_node_error(g, ni, "it has no output");
    return CNN_OK;
}

static int visit(cnn_ir *g, int ni)
{
    ir_node *n = &g->nodes[ni];
    if (n->op == OP_UNKNOWN) return cnn_ir_unsupported(g, ni, "not supported");
    CNN_TRY_RET(check_inputs(g, ni));
    for (int k = 0; k < n->n_in; k++) {
        int v = n->in[k];
        if (v >= 0 && g->vals[v].init && !g->vals[v].known) CNN_TRY_RET(load_tensor(g, v, g->vals[v].init));
        if (v >= 0 && !g->vals[v].known) {
            char e[200];
            return cnn_ir_node_error(g, ni, "input '%s' is not known here", esc(g->vals[v].name, e, sizeof e));
        }
    }
    bool all_const = true;
    for (int k = 0; k < n->n_in; k++)
        if (n->in[k] >= 0 && !g->vals[n->in[k]].is_const) all_const = false;
    if (n->op == OP_SHAPE || n->op == OP_SIZE) {
        if (n->n_in != 1 || n->in[0] < 0) return cnn_ir_node_error(g, ni, "it needs one input");
        n->folded = true;
        return fold_shape(g, ni);
    }
    if (all_const) return fold(g, ni);
    if (!is_lowered(n->op))
        return cnn_ir_unsupported(g, ni, "its inputs must be constants (it is computed at import only)");
    return infer(g, ni);
}
