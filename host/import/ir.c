/* ONNX graph -> the importer's IR: values, nodes in topological order,
 * the nodes the output needs, and the walk that folds constants (fold.c)
 * and infers every computed tensor's shape (infer.c). */
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

bool cnn_ir_numel_of(int rank, const int64_t *dims, size_t *out)
{
    size_t n = 1;
    for (int i = 0; i < rank; i++) {
        if (dims[i] < 0 || !cnn_mul_size(n, (size_t)dims[i], &n)) return false;
    }
    *out = n;
    return true;
}

void cnn_ir_dims_str(int rank, const int64_t *dims, char *buf, size_t size)
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
int cnn_ir_make_const(cnn_ir *g, int node, int v, int dtype, int rank, const int64_t *dims)
{
    ir_val *x = &g->vals[v];
    size_t n;
    if (rank > IR_MAX_RANK) return cnn_ir_node_error(g, node, "result of rank %d (at most %d)", rank, IR_MAX_RANK);
    if (!cnn_ir_numel_of(rank, dims, &n) || n > MAX_FOLDED) {
        char s[160];
        cnn_ir_dims_str(rank, dims, s, sizeof s);
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
void cnn_ir_alias_const(cnn_ir *g, int dst, int src, int rank, const int64_t *dims)
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
int cnn_ir_load_tensor(cnn_ir *g, int v, const Onnx__TensorProto *t)
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
static int input_shape(cnn_ir *g, const Onnx__ValueInfoProto *vi, int v, const int size_hw[2], bool nhwc)
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
    const size_t sp = nhwc ? 1 : 2; /* the first spatial axis */
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
            } else if (r == 4 && i >= sp && i <= sp + 1 && size_hw[i - sp] > 0) {
                dv = size_hw[i - sp];
            } else {
                return cnn_error_set(CNN_ERR_INPUT, "%s: graph input '%s' has a symbolic size at axis %zu%s", g->path,
                                     e, i, r == 4 && i >= 2 ? ": give the input size with --size H,W" : "");
            }
        }
        x->dims[i] = dv;
    }
    g->batch = x->dims[0];
    if (r == 4 && size_hw[0] > 0 && (x->dims[sp] != size_hw[0] || x->dims[sp + 1] != size_hw[1]))
        return cnn_error_set(CNN_ERR_INPUT, "%s: --size %dx%d, but the model's input '%s' is %lldx%lld", g->path,
                             size_hw[0], size_hw[1], e, (long long)x->dims[sp], (long long)x->dims[sp + 1]);
    size_t n;
    if (!cnn_ir_numel_of(x->rank, x->dims, &n) || n > CNN_ONNX_MAX_VALUES)
        return cnn_error_set(CNN_ERR_INPUT, "%s: graph input '%s' is too large", g->path, e);
    x->numel = n;
    x->known = true;
    for (int i = 0; i < IR_MAX_RANK; i++) x->phys[i] = (int8_t)(i == 0 ? -1 : i <= 3 ? i - 1 : -1);
    if (nhwc) { /* axes N, H, W, C: the pipeline's C is axis 3 */
        x->phys[1] = 1;
        x->phys[2] = 2;
        x->phys[3] = 0;
    }
    x->layer = IR_LAYER_INPUT;
    return CNN_OK;
}

/* A channels-last image input ([N, H, W, C], as Keras models and every
 * tf2onnx export of one have): every node that reads it is a Transpose with
 * perm [0, 3, 1, 2].  The pipeline then takes the input as [C, H, W] (an
 * image, or a .npy array in that order) and the Transposes cost nothing. */
static bool channels_last_input(cnn_ir *g)
{
    int readers = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        const ir_node *n = &g->nodes[i];
        bool reads = false;
        for (int k = 0; k < n->n_in; k++) reads |= n->in[k] == g->input;
        if (!reads) continue;
        int64_t perm[IR_MAX_RANK];
        int np = 0;
        if (n->op != OP_TRANSPOSE || n->n_in != 1 || cnn_ir_attr_ints(g, i, "perm", perm, IR_MAX_RANK, &np) < 0 ||
            np != 4 || perm[0] != 0 || perm[1] != 3 || perm[2] != 1 || perm[3] != 2) {
            cnn_error_clear();
            return false;
        }
        readers++;
    }
    return readers > 0;
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
    CNN_TRY_RET(input_shape(g, in_vi[0], g->input, size_hw, channels_last_input(g)));
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
        if (v >= 0 && g->vals[v].init && !g->vals[v].known) CNN_TRY_RET(cnn_ir_load_tensor(g, v, g->vals[v].init));
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
        return cnn_ir_fold_shape(g, ni);
    }
    if (all_const) return cnn_ir_fold(g, ni);
    if (!is_lowered(n->op))
        return cnn_ir_unsupported(g, ni, "its inputs must be constants (it is computed at import only)");
    return cnn_ir_infer(g, ni);
}
