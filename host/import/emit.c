/* IR -> pipeline layers (YAML lines) and the tensors they bind.
 *
 * A computed value lives in a layer's output [C, H, W] (one image); its
 * ONNX axes 1.. map to C, H, W through ir_val.phys.  Ops that work on
 * channels (conv, pools, batch norm, concat, softmax, layer norm) need the
 * axis they work on to be C; a Transpose that keeps the batch axis first
 * only re-maps; a Reshape is a view when it keeps the order of the
 * elements, else it must be a flatten (or the channel shuffle pattern).
 * Every node that cannot be written this way is refused, naming it. */
#define _POSIX_C_SOURCE 200809L
#include "import/ir.h"
#include "core/error.h"
#include "core/util.h"

#include <ctype.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_LAYERS 10000 /* the pipeline file's limit */
#define NAME_MAX_LEN 100

typedef struct emitter {
    cnn_ir *g;
    cnn_ir_out *o;
    char **names;               /* [n_layers] */
    int cap_names;
    int *slots;                 /* hash of layer names */
    size_t mask;
    int *tslots;                /* hash of tensor names */
    size_t tmask;
    int last;                   /* the last layer written */
    bool *bare;                 /* [n_nodes] the node's layer takes its module path as it is */
} emitter;

/* ---------------------------------------------------------------------- */
/* Text                                                                    */

static int out_printf(cnn_ir_out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int out_printf(cnn_ir_out *o, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(o->layers ? o->layers + o->len : NULL, o->layers ? o->cap - o->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) return cnn_error_set(CNN_ERR_NOMEM, "formatting failed");
        if (o->layers && o->len + (size_t)n < o->cap) {
            o->len += (size_t)n;
            return CNN_OK;
        }
        size_t cap = o->cap ? o->cap * 2 : 4096;
        while (cap < o->len + (size_t)n + 1) cap *= 2;
        char *b = cnn_realloc(o->layers, cap);
        if (!b) return CNN_ERR_NOMEM;
        o->layers = b;
        o->cap = cap;
    }
}

static void add_newer(cnn_ir_out *o, const char *what)
{
    if (strstr(o->newer, what)) return;
    size_t n = strlen(o->newer);
    snprintf(o->newer + n, sizeof o->newer - n, "%s%s", n ? ", " : "", what);
}

/* A float as YAML reads it back to the same float32. */
static void fmt_float(double v, char *buf, size_t size)
{
    float f = (float)v;
    /* the shortest spelling that reads back as the same float */
    for (int digits = 6; digits <= 9; digits++) {
        snprintf(buf, size, "%.*g", digits, (double)f);
        if (strtof(buf, NULL) == f) break;
    }
    if (!strpbrk(buf, ".eE")) strncat(buf, ".0", size - strlen(buf) - 1);
}

static void fmt_hw(int a, int b, char *buf, size_t size)
{
    if (a == b) snprintf(buf, size, "%d", a);
    else snprintf(buf, size, "[%d, %d]", a, b);
}

/* pad [t, b, l, r] in the shortest spelling the pipeline reads */
static void fmt_pad(const int *p, char *buf, size_t size)
{
    if (p[0] == p[1] && p[1] == p[2] && p[2] == p[3]) snprintf(buf, size, "%d", p[0]);
    else if (p[0] == p[1] && p[2] == p[3]) snprintf(buf, size, "[%d, %d]", p[0], p[2]);
    else snprintf(buf, size, "[%d, %d, %d, %d]", p[0], p[1], p[2], p[3]);
}

/* Names the pipeline reads as plain strings: no null/bool/number look-alikes. */
static void fmt_name(const char *s, char *buf, size_t size)
{
    bool quote = !strcmp(s, "null") || !strcmp(s, "true") || !strcmp(s, "false") || !strcmp(s, "Null") ||
                 !strcmp(s, "NULL") || !strcmp(s, "True") || !strcmp(s, "False") || !strcmp(s, "TRUE") ||
                 !strcmp(s, "FALSE") || isdigit((unsigned char)s[0]) || s[0] == '-' || s[0] == '.';
    if (quote) snprintf(buf, size, "'%s'", s);
    else snprintf(buf, size, "%s", s);
}

static bool plain_name(const char *s)
{
    if (!s[0] || strlen(s) > 200) return false;
    for (const char *c = s; *c; c++)
        if (!isalnum((unsigned char)*c) && *c != '_' && *c != '.' && *c != '-') return false;
    return true;
}

/* ---------------------------------------------------------------------- */
/* Layer names                                                             */

static size_t str_hash(const char *s) { return (size_t)cnn_hash64(CNN_HASH64_INIT, s, strlen(s)); }

static bool name_used(const emitter *e, const char *s)
{
    for (size_t h = str_hash(s) & e->mask;; h = (h + 1) & e->mask) {
        int k = e->slots[h];
        if (k < 0) return false;
        if (!strcmp(e->names[k], s)) return true;
    }
}

static void sanitize(const char *in, char *out, size_t size)
{
    size_t n = 0;
    for (const char *c = in; *c && n + 1 < size && n < NAME_MAX_LEN; c++)
        out[n++] = isalnum((unsigned char)*c) || *c == '_' || *c == '.' || *c == '-' ? *c : '_';
    out[n] = '\0';
    if (n == 0) snprintf(out, size, "layer");
    if (!strcmp(out, "input")) snprintf(out, size, "input_");
}

/* The PyTorch module a node came from, from its exporter name
 * "/features/features.0/features.0.0/Conv": each scope names a child of
 * the one before, either fully ("features.0.0" under "features.0") or by
 * its attribute ("conv1" under "layer1.0"); the last part is the op. */
static void module_path(const char *node, const char *op, char *out, size_t size)
{
    out[0] = '\0';
    if (node && node[0] == '/') {
        const char *parts[64];
        size_t lens[64];
        int np = 0;
        for (const char *c = node + 1; *c && np < 64;) {
            const char *s = strchr(c, '/');
            size_t l = s ? (size_t)(s - c) : strlen(c);
            if (l) {
                parts[np] = c;
                lens[np++] = l;
            }
            c += l + (s ? 1 : 0);
        }
        size_t n = 0;
        for (int i = 0; i + 1 < np && n < size; i++) {
            const char *c = parts[i];
            size_t l = lens[i];
            if (i > 0 && l > lens[i - 1] + 1 && !memcmp(c, parts[i - 1], lens[i - 1]) && c[lens[i - 1]] == '.') {
                c += lens[i - 1] + 1;
                l -= lens[i - 1] + 1;
            }
            n += (size_t)snprintf(out + n, size - n, "%s%.*s", n ? "." : "", (int)l, c);
        }
        if (!out[0] && np == 1) {
            /* a top-level op ("/Flatten"): its name in lower case */
            snprintf(out, size, "%.*s", (int)lens[0], parts[0]);
            for (char *c = out; *c; c++) *c = (char)tolower((unsigned char)*c);
        }
    } else if (node && node[0]) {
        snprintf(out, size, "%s", node);
    }
    if (!out[0]) {
        snprintf(out, size, "%s", op);
        for (char *c = out; *c; c++) *c = (char)tolower((unsigned char)*c);
    }
}

/* A unique layer name for node ni writing op `op`: its module path, else
 * "<path>.<op>", else "<path>.<op>_2", ... */
static void base_name(const emitter *e, int ni, char *base, size_t size)
{
    const ir_node *n = &e->g->nodes[ni];
    int head = n->fhead >= 0 ? n->fhead : ni;
    const Onnx__NodeProto *p = e->g->nodes[head].p;
    char raw[512];
    module_path(p->name, p->op_type ? p->op_type : "node", raw, sizeof raw);
    sanitize(raw, base, size);
}

/* A unique layer name for node ni writing op `op`: its module path when it
 * is the module's last layer (what a forward hook on the module sees),
 * else "<path>.<op>", "<path>.<op>_2", ... */
static int new_name(emitter *e, int ni, const char *op, char *out, size_t size)
{
    char base[NAME_MAX_LEN + 1];
    base_name(e, ni, base, sizeof base);
    snprintf(out, size, "%s", base);
    if (e->bare[ni] && !name_used(e, out)) return CNN_OK;
    for (int k = 1;; k++) {
        if (k == 1) snprintf(out, size, "%s.%s", base, op);
        else snprintf(out, size, "%s.%s_%d", base, op, k);
        if (!name_used(e, out)) return CNN_OK;
    }
}

/* Which nodes are the last of their module (bare[ni]): among the nodes
 * that write a layer, by their module path. */
static int find_bare(emitter *e)
{
    cnn_ir *g = e->g;
    e->bare = cnn_calloc((size_t)g->n_nodes + 1, sizeof *e->bare);
    int *last = cnn_malloc(((size_t)g->n_nodes + 1) * sizeof *last);
    char **bases = cnn_calloc((size_t)g->n_nodes + 1, sizeof *bases);
    size_t slots = 64;
    while (slots < 2 * (size_t)g->n_nodes + 2) slots *= 2;
    int *map = cnn_malloc(slots * sizeof *map);
    int status = CNN_OK;
    if (!e->bare || !last || !bases || !map) {
        status = CNN_ERR_NOMEM;
        goto done;
    }
    for (size_t i = 0; i < slots; i++) map[i] = -1;
    for (int i = 0; i < g->n_nodes; i++) {
        const ir_node *n = &g->nodes[i];
        last[i] = -1;
        if (!n->live || n->folded || n->skip || (!n->fused && (n->op == OP_IDENTITY || n->op == OP_DROPOUT ||
                                                             n->op == OP_TRANSPOSE)))
            continue;
        char base[NAME_MAX_LEN + 1];
        base_name(e, i, base, sizeof base);
        if (!(bases[i] = cnn_strdup(base))) {
            status = CNN_ERR_NOMEM;
            goto done;
        }
        size_t h = str_hash(base) & (slots - 1);
        while (map[h] >= 0 && strcmp(bases[map[h]], base) != 0) h = (h + 1) & (slots - 1);
        if (map[h] >= 0) last[map[h]] = i; /* the first of the path points to the latest */
        else {
            map[h] = i;
            last[i] = i;
        }
    }
    for (size_t h = 0; h < slots; h++)
        if (map[h] >= 0) e->bare[last[map[h]]] = true;
done:
    for (int i = 0; i < g->n_nodes && bases; i++) free(bases[i]);
    free(bases);
    free(last);
    free(map);
    return status;
}

static int remember_name(emitter *e, const char *name)
{
    if (e->o->n_layers >= MAX_LAYERS)
        return cnn_error_set(CNN_ERR_INPUT, "%s: the model needs more than %d pipeline layers", e->g->path, MAX_LAYERS);
    if (e->o->n_layers == e->cap_names) {
        int cap = e->cap_names ? 2 * e->cap_names : 64;
        char **nn = cnn_realloc(e->names, (size_t)cap * sizeof *nn);
        if (!nn) return CNN_ERR_NOMEM;
        e->names = nn;
        e->cap_names = cap;
    }
    char *copy = cnn_strdup(name);
    if (!copy) return CNN_ERR_NOMEM;
    int k = e->o->n_layers++;
    e->names[k] = copy;
    size_t h = str_hash(name) & e->mask;
    while (e->slots[h] >= 0) h = (h + 1) & e->mask;
    e->slots[h] = k;
    return CNN_OK;
}

/* ---------------------------------------------------------------------- */
/* Tensors                                                                 */

static int tensor_find(const emitter *e, const char *name)
{
    for (size_t h = str_hash(name) & e->tmask;; h = (h + 1) & e->tmask) {
        int k = e->tslots[h];
        if (k < 0 || !strcmp(e->o->tensors[k].name, name)) return k;
    }
}

/* Can `name` hold this data: free, or holding the same data already? */
static bool tensor_fits(const emitter *e, const char *name, int ndim, const int64_t *dims, const float *data)
{
    int k = tensor_find(e, name);
    if (k < 0) return true;
    const cnn_ir_tensor *t = &e->o->tensors[k];
    if (t->ndim != ndim || memcmp(t->dims, dims, (size_t)ndim * sizeof dims[0]) != 0) return false;
    return t->data == data || (t->numel && !memcmp(t->data, data, t->numel * sizeof(float)));
}

/* Registers tensor `name` (ownership of `owned` passes here, also on
 * error); a name that holds the same data already is reused. */
static int tensor_add(emitter *e, const char *name, int ndim, const int64_t *dims, const float *data, float *owned)
{
    cnn_ir_out *o = e->o;
    if (tensor_find(e, name) >= 0) {
        free(owned);
        return CNN_OK;
    }
    if (o->n_tensors == o->cap_tensors) {
        int cap = o->cap_tensors ? 2 * o->cap_tensors : 64;
        cnn_ir_tensor *t = cnn_realloc(o->tensors, (size_t)cap * sizeof *t);
        if (!t) {
            free(owned);
            return CNN_ERR_NOMEM;
        }
        o->tensors = t;
        o->cap_tensors = cap;
        /* grow the hash with the array: a load of at most one half */
        size_t slots = 16;
        while (slots < 2 * (size_t)cap) slots *= 2;
        int *ts = cnn_malloc(slots * sizeof *ts);
        if (!ts) {
            free(owned);
            return CNN_ERR_NOMEM;
        }
        for (size_t i = 0; i < slots; i++) ts[i] = -1;
        free(e->tslots);
        e->tslots = ts;
        e->tmask = slots - 1;
        for (int k = 0; k < o->n_tensors; k++) {
            size_t h = str_hash(o->tensors[k].name) & e->tmask;
            while (e->tslots[h] >= 0) h = (h + 1) & e->tmask;
            e->tslots[h] = k;
        }
    }
    cnn_ir_tensor *t = &o->tensors[o->n_tensors];
    memset(t, 0, sizeof *t);
    if (!(t->name = cnn_strdup(name))) {
        free(owned);
        return CNN_ERR_NOMEM;
    }
    t->ndim = ndim;
    t->numel = 1;
    for (int i = 0; i < ndim; i++) {
        t->dims[i] = dims[i];
        t->numel *= (size_t)dims[i];
    }
    t->data = data;
    t->owned = owned;
    size_t h = str_hash(name) & e->tmask;
    while (e->tslots[h] >= 0) h = (h + 1) & e->tmask;
    e->tslots[h] = o->n_tensors++;
    return CNN_OK;
}

/* A layer's parameters: n tensors with suffixes ("weight", "bias", ...).
 * Each comes from value src[k] (its name kept when every one is an
 * initializer called "X.<suffix>" with one X) or is new data (src -1). */
typedef struct param {
    const char *suffix;
    int src;                    /* value it comes from unchanged, or -1 */
    int ndim;
    int64_t dims[4];
    const float *data;
    float *owned;               /* new data (freed here) */
} param;

static void free_params(param *ps, int n)
{
    for (int k = 0; k < n; k++) {
        free(ps[k].owned);
        ps[k].owned = NULL;
    }
}

static int bind_params(emitter *e, const char *layer, param *ps, int n, char *prefix, size_t psize)
{
    const cnn_ir *g = e->g;
    char want[512] = "";
    bool natural = true;
    for (int k = 0; k < n && natural; k++) {
        const ir_val *v = ps[k].src >= 0 ? &g->vals[ps[k].src] : NULL;
        size_t ls = strlen(ps[k].suffix), ln = v ? strlen(v->name) : 0;
        natural = v && v->from_init && plain_name(v->name) && ln > ls + 1 && v->name[ln - ls - 1] == '.' &&
                  !strcmp(v->name + ln - ls, ps[k].suffix);
        if (natural && k == 0) snprintf(want, sizeof want, "%.*s", (int)(ln - ls - 1), v->name);
        else if (natural) natural = strlen(want) == ln - ls - 1 && !strncmp(want, v->name, ln - ls - 1);
    }
    char name[600];
    for (int attempt = 0;; attempt++) {
        if (attempt == 0 && natural) snprintf(prefix, psize, "%s", want);
        else if (attempt <= 1) snprintf(prefix, psize, "%s", layer);
        else snprintf(prefix, psize, "%s_%d", layer, attempt);
        if (attempt == 0 && !natural) continue;
        bool ok = true;
        for (int k = 0; k < n && ok; k++) {
            snprintf(name, sizeof name, "%s.%s", prefix, ps[k].suffix);
            ok = tensor_fits(e, name, ps[k].ndim, ps[k].dims, ps[k].data);
        }
        if (ok) break;
    }
    int status = CNN_OK;
    for (int k = 0; k < n; k++) {
        snprintf(name, sizeof name, "%s.%s", prefix, ps[k].suffix);
        float *own = ps[k].owned;
        ps[k].owned = NULL;
        if (status == CNN_OK) status = tensor_add(e, name, ps[k].ndim, ps[k].dims, ps[k].data, own);
        else free(own);
    }
    return status;
}

/* ---------------------------------------------------------------------- */
/* Layouts                                                                 */

static void set_identity(ir_val *v)
{
    for (int i = 0; i < IR_MAX_RANK; i++) v->phys[i] = (int8_t)(i == 0 ? -1 : i <= 3 ? i - 1 : -1);
}

/* The physical [C, H, W] of value v. */
static void phys_dims(const ir_val *v, int64_t pd[3])
{
    pd[0] = pd[1] = pd[2] = 1;
    for (int i = 1; i < v->rank; i++)
        if (v->phys[i] >= 0) pd[v->phys[i]] = v->dims[i];
}

/* Axes 1, 2, 3 are C, H, W. */
static bool is_nchw(const ir_val *v)
{
    return v->rank == 4 && v->phys[1] == 0 && v->phys[2] == 1 && v->phys[3] == 2;
}

/* The elements are in the same order in memory as ONNX's row-major
 * order of the logical tensor. */
static bool ordered(const ir_val *v)
{
    int last = -1;
    for (int i = 1; i < v->rank; i++) {
        if (v->dims[i] == 1) continue;
        if (v->phys[i] <= last) return false;
        last = v->phys[i];
    }
    return true;
}

/* Two values whose axes of size > 1 sit on the same physical axes. */
static bool same_layout(const ir_val *a, const ir_val *b)
{
    if (a->rank != b->rank) return false;
    for (int i = 1; i < a->rank; i++)
        if ((a->dims[i] != 1 || b->dims[i] != 1) && a->phys[i] != b->phys[i]) return false;
    return true;
}

static const char *axis_name(int p) { return p == 0 ? "C" : p == 1 ? "H" : p == 2 ? "W" : "batch"; }

/* ---------------------------------------------------------------------- */
/* Writing a layer                                                         */

static int layer_ref(const emitter *e, int v, char *buf, size_t size)
{
    const ir_val *x = &e->g->vals[v];
    if (x->layer == IR_LAYER_INPUT) snprintf(buf, size, "input");
    else fmt_name(e->names[x->layer], buf, size);
    return CNN_OK;
}

/* One comment line's worth of the node: printable ASCII only. */
static void node_comment(const emitter *e, int ni, char *buf, size_t size)
{
    const ir_node *n = &e->g->nodes[ni];
    int head = n->fhead >= 0 ? n->fhead : ni;
    const Onnx__NodeProto *p = e->g->nodes[head].p;
    char name[160];
    size_t k = 0;
    for (const char *c = p->name ? p->name : ""; *c && k + 1 < sizeof name; c++)
        name[k++] = (*c >= 0x20 && *c < 0x7f) ? *c : '?';
    name[k] = '\0';
    const char *what = n->fused == FUSED_SILU        ? "SiLU: x * Sigmoid(x)"
                       : n->fused == FUSED_HARDSWISH ? "x * HardSigmoid(x)"
                       : n->fused == FUSED_GELU      ? "GELU from Erf"
                       : n->fused == FUSED_LAYERNORM ? "LayerNorm from ReduceMean, Sub, Pow, Sqrt, Div"
                       : n->fused == FUSED_LINEAR    ? (n->fb >= 0 ? "MatMul + Add" : "MatMul")
                       : n->fused == FUSED_SHUFFLE   ? "channel shuffle: Reshape, Transpose, Reshape"
                       : n->fused == FUSED_PADPOOL   ? "Pad + pool"
                                                     : NULL;
    char op[64];
    k = 0;
    for (const char *c = p->op_type ? p->op_type : ""; *c && k + 1 < sizeof op; c++)
        op[k++] = (*c >= 0x20 && *c < 0x7f) ? *c : '?';
    op[k] = '\0';
    snprintf(buf, size, "%s (%s)", name[0] ? name : "(unnamed)", what ? what : op);
}

/* Writes "  - {name: N, op: OP, in: ..., EXTRA, params: P}  # node" for
 * node ni with inputs ins[] (values) and makes value `out` its output. */
static int put_layer(emitter *e, int ni, const char *op, const int *ins, int nin, const char *extra,
                     param *ps, int nps, int out)
{
    char name[NAME_MAX_LEN + 64], shown[NAME_MAX_LEN + 70], prefix[700] = "", ref[NAME_MAX_LEN + 8];
    new_name(e, ni, op, name, sizeof name);
    int status = CNN_OK;
    if (nps) status = bind_params(e, name, ps, nps, prefix, sizeof prefix);
    free_params(ps, nps);
    if (status < 0) return status;
    CNN_TRY_RET(remember_name(e, name));
    fmt_name(name, shown, sizeof shown);
    CNN_TRY_RET(out_printf(e->o, "  - {name: %s, op: %s", shown, op));
    bool prev = nin == 1 && ((e->g->vals[ins[0]].layer == IR_LAYER_INPUT && e->last == IR_LAYER_INPUT) ||
                             (e->g->vals[ins[0]].layer >= 0 && e->g->vals[ins[0]].layer == e->last));
    if (!prev) {
        CNN_TRY_RET(out_printf(e->o, ", in: %s", nin > 1 ? "[" : ""));
        for (int k = 0; k < nin; k++) {
            layer_ref(e, ins[k], ref, sizeof ref);
            CNN_TRY_RET(out_printf(e->o, "%s%s", k ? ", " : "", ref));
        }
        if (nin > 1) CNN_TRY_RET(out_printf(e->o, "]"));
    }
    if (extra && extra[0]) CNN_TRY_RET(out_printf(e->o, ", %s", extra));
    if (nps) {
        fmt_name(prefix, ref, sizeof ref);
        CNN_TRY_RET(out_printf(e->o, ", params: %s", ref));
    }
    char comment[300];
    node_comment(e, ni, comment, sizeof comment);
    CNN_TRY_RET(out_printf(e->o, "}  # %s\n", comment));
    e->last = e->o->n_layers - 1;
    e->g->vals[out].layer = e->last;
    set_identity(&e->g->vals[out]); /* the callers whose output keeps other axes say so */
    e->g->vals[out].flat = false;
    return CNN_OK;
}

/* Value `out` is value `in` under another shape or axis map: no layer. */
static void alias(emitter *e, int out, int in)
{
    ir_val *o = &e->g->vals[out];
    const ir_val *x = &e->g->vals[in];
    o->layer = x->layer;
    o->flat = x->flat;
    if (o->rank == x->rank) memcpy(o->phys, x->phys, sizeof o->phys);
}

/* Value `out`, written by a layer that keeps its input's shape, has the
 * axes of value `in`. */
static void alias_layout(emitter *e, int out, int in)
{
    ir_val *o = &e->g->vals[out];
    const ir_val *x = &e->g->vals[in];
    o->flat = x->flat;
    if (o->rank == x->rank) memcpy(o->phys, x->phys, sizeof o->phys);
    else set_identity(o);
}

/* ---------------------------------------------------------------------- */
/* Ops                                                                     */

static int computed(emitter *e, int ni, int v)
{
    const ir_val *x = &e->g->vals[v];
    if (x->is_const) return cnn_ir_node_error(e->g, ni, "input '%s' is a constant where a computed tensor is needed",
                                              x->name);
    CNN_ASSERT(x->layer != IR_LAYER_NONE);
    return CNN_OK;
}

static int need_nchw(emitter *e, int ni, int v)
{
    CNN_TRY_RET(computed(e, ni, v));
    const ir_val *x = &e->g->vals[v];
    if (!is_nchw(x) || x->flat) {
        if (x->rank != 4) return cnn_ir_node_error(e->g, ni, "its input has rank %d; [N, C, H, W] is needed", x->rank);
        return cnn_ir_node_error(e->g, ni, "its input's axes are %s, %s, %s after a Transpose; the op needs them "
                                 "as C, H, W", axis_name(x->phys[1]), axis_name(x->phys[2]), axis_name(x->phys[3]));
    }
    return CNN_OK;
}

/* [N, C, H, W] as C, H, W, or [N, C, L] as C and H (convolutions and
 * pools over L alone). */
static int need_spatial(emitter *e, int ni, int v)
{
    const ir_val *x = &e->g->vals[v];
    if (x->rank == 3 && !x->is_const && x->phys[1] == 0 && x->phys[2] == 1 && !x->flat) return CNN_OK;
    return need_nchw(e, ni, v);
}

/* The axis a of value v must be its physical C. */
static int need_channel_axis(emitter *e, int ni, int v, int a, const char *what)
{
    const ir_val *x = &e->g->vals[v];
    if (a == 0) return cnn_ir_node_error(e->g, ni, "%s over the batch axis is not supported", what);
    if (x->phys[a] != 0)
        return cnn_ir_node_error(e->g, ni, "%s over axis %d, which is %s in the pipeline's [C, H, W]; only the "
                                 "channel axis is supported", what, a, axis_name(x->phys[a]));
    return CNN_OK;
}

static int norm_axis(emitter *e, int ni, int64_t axis, int rank, int *out)
{
    *out = 0;
    if (axis < -rank || axis >= rank)
        return cnn_ir_node_error(e->g, ni, "axis %lld is out of range for rank %d", (long long)axis, rank);
    *out = (int)(axis < 0 ? axis + rank : axis);
    return CNN_OK;
}

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
    CNN_TRY_RET(need_spatial(e, ni, x));
    const ir_val *wv = &g->vals[w];
    ir_window win;
    CNN_TRY_RET(cnn_ir_window(g, ni, g->vals[x].dims, g->vals[x].rank, wv->dims + 2, &win));
    char extra[300], k[32], s[32], d[32], p[48];
    fmt_hw(win.k[0], win.k[1], k, sizeof k);
    fmt_hw(win.s[0], win.s[1], s, sizeof s);
    fmt_hw(win.d[0], win.d[1], d, sizeof d);
    fmt_pad(win.pad, p, sizeof p);
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
    return put_layer(e, ni, "conv2d", &x, 1, extra, ps, nps, n->out[0]);
}

static int emit_batchnorm(emitter *e, int ni)
{
    cnn_ir *g = e->g;
    const ir_node *n = &g->nodes[ni];
    int x = n->in[0];
    CNN_TRY_RET(computed(e, ni, x));
    CNN_TRY_RET(need_channel_axis(e, ni, x, 1, "BatchNormalization"));
    double eps;
    CNN_TRY_RET(cnn_ir_attr_float(g, ni, "epsilon", 1e-5, &eps));
    if (!(eps > 0) || !isfinite(eps)) return cnn_ir_node_error(g, ni, "epsilon must be > 0");
    for (size_t i = 0; i < g->vals[n->in[4]].numel; i++)
        if (!(g->vals[n->in[4]].f[i] >= 0)) return cnn_ir_node_error(g, ni, "its variance holds a negative value");
    char extra[64], f[32];
    fmt_float(eps, f, sizeof f);
    snprintf(extra, sizeof extra, "eps: %s", f);
    param ps[4] = {vec_param(g, "weight", n->in[1]), vec_param(g, "bias", n->in[2]),
                   vec_param(g, "running_mean", n->in[3]), vec_param(g, "running_var", n->in[4])};
    int st = put_layer(e, ni, "batchnorm", &x, 1, extra, ps, 4, n->out[0]);
    if (st == CNN_OK) alias_layout(e, n->out[0], x);
    return st;
}

static int emit_pool(emitter *e, int ni)
{
    cnn_ir *g = e->g;
    const ir_node *n = &g->nodes[ni];
    bool avg = n->op == OP_AVGPOOL;
    int x = n->fused == FUSED_PADPOOL ? n->fx : n->in[0];
    CNN_TRY_RET(need_spatial(e, ni, x));
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
    fmt_hw(win.k[0], win.k[1], k, sizeof k);
    fmt_hw(win.s[0], win.s[1], s, sizeof s);
    fmt_hw(win.d[0], win.d[1], d, sizeof d);
    fmt_pad(win.pad, p, sizeof p);
    size_t m = (size_t)snprintf(extra, sizeof extra, "kernel: %s, stride: %s", k, s);
    if (padded) m += (size_t)snprintf(extra + m, sizeof extra - m, ", pad: %s", p);
    if (win.d[0] != 1 || win.d[1] != 1) m += (size_t)snprintf(extra + m, sizeof extra - m, ", dilation: %s", d);
    if (win.ceil_mode) m += (size_t)snprintf(extra + m, sizeof extra - m, ", ceil_mode: true");
    if (avg && padded && !win.count_include_pad) snprintf(extra + m, sizeof extra - m, ", count_include_pad: false");
    int st = put_layer(e, ni, avg ? "avgpool" : "maxpool", &x, 1, extra, NULL, 0, n->out[0]);
    if (st == CNN_OK) set_identity(&g->vals[n->out[0]]);
    return st;
}

static int emit_unary(emitter *e, int ni, const char *op, const char *extra, int x)
{
    const ir_node *n = &e->g->nodes[ni];
    CNN_TRY_RET(computed(e, ni, x));
    int st = put_layer(e, ni, op, &x, 1, extra, NULL, 0, n->out[0]);
    if (st == CNN_OK) alias_layout(e, n->out[0], x);
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
        fmt_float(lo, a, sizeof a);
        m += (size_t)snprintf(extra + m, sizeof extra - m, "min: %s", a);
    }
    if (isfinite(hi)) {
        fmt_float(hi, b, sizeof b);
        snprintf(extra + m, sizeof extra - m, "%smax: %s", m ? ", " : "", b);
    }
    add_newer(e->o, "clip");
    return emit_unary(e, ni, "clip", extra, n->in[0]);
}

static int emit_softmax(emitter *e, int ni)
{
    cnn_ir *g = e->g;
    const ir_node *n = &g->nodes[ni];
    int x = n->in[0];
    CNN_TRY_RET(computed(e, ni, x));
    const ir_val *xv = &g->vals[x];
    int64_t axis;
    int a;
    CNN_TRY_RET(cnn_ir_attr_int(g, ni, "axis", g->opset >= 13 ? -1 : 1, &axis));
    CNN_TRY_RET(norm_axis(e, ni, axis, xv->rank, &a));
    if (g->opset < 13)
        /* before opset 13: over the axes from `axis` on, flattened */
        for (int i = a + 1; i < xv->rank; i++)
            if (xv->dims[i] != 1)
                return cnn_ir_node_error(g, ni, "softmax over axes %d.. of a tensor with more than one element there "
                                         "(opset < 13) is not supported", a);
    CNN_TRY_RET(need_channel_axis(e, ni, x, a, "Softmax"));
    return emit_unary(e, ni, "softmax", NULL, x);
}

static int emit_lrn(emitter *e, int ni)
{
    cnn_ir *g = e->g;
    const ir_node *n = &g->nodes[ni];
    CNN_TRY_RET(need_nchw(e, ni, n->in[0]));
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
    fmt_float(alpha, a, sizeof a);
    fmt_float(beta, b, sizeof b);
    fmt_float(bias, k, sizeof k);
    snprintf(extra, sizeof extra, "size: %lld, alpha: %s, beta: %s, k: %s", (long long)size, a, b, k);
    return emit_unary(e, ni, "lrn", extra, n->in[0]);
}

static int emit_global(emitter *e, int ni, int x, bool keep)
{
    cnn_ir *g = e->g;
    const ir_node *n = &g->nodes[ni];
    CNN_TRY_RET(need_nchw(e, ni, x));
    bool mx = n->op == OP_GLOBALMAXPOOL;
    if (mx) add_newer(e->o, "global_maxpool");
    int st = put_layer(e, ni, mx ? "global_maxpool" : "global_avgpool", &x, 1, NULL, NULL, 0, n->out[0]);
    if (st == CNN_OK) {
        ir_val *o = &g->vals[n->out[0]];
        set_identity(o);
        if (!keep) o->phys[1] = 0; /* [N, C]: the layer's [C, 1, 1] */
    }
    return st;
}

static int emit_reducemean(emitter *e, int ni)
{
    cnn_ir *g = e->g;
    const ir_node *n = &g->nodes[ni];
    int x = n->in[0];
    CNN_TRY_RET(computed(e, ni, x));
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
        if (na >= 0) CNN_TRY_RET(norm_axis(e, ni, ax[k], xv->rank, &a));
        red[a] = true;
    }
    if (red[0]) return cnn_ir_node_error(g, ni, "a mean over the batch axis is not supported");
    /* over the spatial axes: a global average */
    bool spatial = true, chan = false;
    for (int i = 1; i < xv->rank; i++) {
        if (red[i] && xv->dims[i] != 1 && xv->phys[i] == 0) chan = true;
        if (red[i] != (xv->phys[i] == 1 || xv->phys[i] == 2) && xv->dims[i] != 1) spatial = false;
    }
    if (spatial && !chan && is_nchw(xv)) return emit_global(e, ni, x, keep != 0);
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
    CNN_TRY_RET(computed(e, ni, x));
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
    if (same && (ordered(xv) || na <= 1)) {
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
        if (!ordered(xv))
            return cnn_ir_node_error(g, ni, "flattening a tensor whose axes a Transpose reordered is not supported");
        int st = put_layer(e, ni, "flatten", &x, 1, NULL, NULL, 0, o);
        if (st == CNN_OK) {
            set_identity(ov);
            ov->flat = true;
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
    CNN_TRY_RET(computed(e, ni, x));
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
    int st = need_channel_axis(e, ni, x, last, "a matrix product");
    if (st < 0) {
        free(wown);
        free(bown);
        return st;
    }
    bool over_channels = xv->rank > 2;
    char extra[96];
    size_t m = (size_t)snprintf(extra, sizeof extra, "out: %lld", (long long)out);
    if (!bdata) m += (size_t)snprintf(extra + m, sizeof extra - m, ", bias: false");
    if (over_channels) {
        snprintf(extra + m, sizeof extra - m, ", over: channels");
        add_newer(e->o, "linear over: channels");
    }
    param ps[2] = {{.suffix = "weight", .src = wsrc, .ndim = 2, .dims = {out, in}, .data = wdata, .owned = wown}};
    int nps = 1;
    if (bdata) ps[nps++] = (param){.suffix = "bias", .src = bsrc, .ndim = 1, .dims = {out}, .data = bdata,
                                    .owned = bown};
    int o = g->nodes[ni].out[0];
    st = put_layer(e, ni, "linear", &x, 1, extra, ps, nps, o);
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
    CNN_TRY_RET(computed(e, ni, x));
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
    CNN_TRY_RET(computed(e, ni, x));
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
    CNN_TRY_RET(norm_axis(e, ni, axis, x0->rank, &a));
    for (int k = 0; k < n->n_in; k++) {
        CNN_TRY_RET(computed(e, ni, n->in[k]));
        CNN_TRY_RET(need_channel_axis(e, ni, n->in[k], a, "Concat"));
        const ir_val *xk = &g->vals[n->in[k]];
        if (!same_layout(xk, x0) || xk->flat != x0->flat)
            return cnn_ir_node_error(g, ni, "its inputs lay out their axes differently");
    }
    if (n->n_in == 1) {
        alias(e, n->out[0], n->in[0]);
        return CNN_OK;
    }
    int st = put_layer(e, ni, "concat", n->in, n->n_in, NULL, NULL, 0, n->out[0]);
    if (st == CNN_OK) alias_layout(e, n->out[0], n->in[0]);
    return st;
}

/* A channel range [start, end) of x as value o (no layer when it is all). */
static int emit_channel_slice(emitter *e, int ni, int x, int o, int64_t start, int64_t end, int64_t step)
{
    cnn_ir *g = e->g;
    const ir_val *xv = &g->vals[x];
    int64_t pd[3];
    phys_dims(xv, pd);
    if (start == 0 && end == pd[0] && step == 1) {
        alias(e, o, x);
        return CNN_OK;
    }
    char extra[96];
    size_t m = (size_t)snprintf(extra, sizeof extra, "start: %lld, end: %lld", (long long)start, (long long)end);
    if (step != 1) snprintf(extra + m, sizeof extra - m, ", step: %lld", (long long)step);
    add_newer(e->o, "slice");
    int st = put_layer(e, ni, "slice", &x, 1, extra, NULL, 0, o);
    if (st == CNN_OK) alias_layout(e, o, x);
    return st;
}

static int emit_split(emitter *e, int ni)
{
    cnn_ir *g = e->g;
    const ir_node *n = &g->nodes[ni];
    int x = n->in[0];
    CNN_TRY_RET(computed(e, ni, x));
    int64_t axis;
    int a;
    CNN_TRY_RET(cnn_ir_attr_int(g, ni, "axis", 0, &axis));
    CNN_TRY_RET(norm_axis(e, ni, axis, g->vals[x].rank, &a));
    CNN_TRY_RET(need_channel_axis(e, ni, x, a, "Split"));
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
    CNN_TRY_RET(computed(e, ni, x));
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
        CNN_TRY_RET(norm_axis(e, ni, na >= 0 ? ax[k] : k, xv->rank, &a));
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
        alias(e, o, x);
        return CNN_OK;
    }
    CNN_TRY_RET(need_channel_axis(e, ni, x, cut, "Slice"));
    return emit_channel_slice(e, ni, x, o, start, start + (g->vals[o].dims[cut] - 1) * step + 1, step);
}

static int emit_pad(emitter *e, int ni)
{
    cnn_ir *g = e->g;
    const ir_node *n = &g->nodes[ni];
    int x = n->in[0];
    CNN_TRY_RET(computed(e, ni, x));
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
            return cnn_ir_node_error(g, ni, "padding the %s axis is not supported (only H and W)", axis_name(ph));
        p[(ph - 1) * 2] = (int)pads[i];
        p[(ph - 1) * 2 + 1] = (int)pads[i + xv->rank];
    }
    if (!any) {
        alias(e, n->out[0], x);
        return CNN_OK;
    }
    const char *m = !strcmp(mode, "constant") ? "constant" : !strcmp(mode, "reflect") ? "reflect"
                    : !strcmp(mode, "edge")                               ? "replicate"
                                                                          : NULL;
    if (!m) return cnn_ir_node_error(g, ni, "mode '%s' is not supported", mode);
    if (!isfinite(value)) return cnn_ir_node_error(g, ni, "an infinite pad value is supported only before a MaxPool");
    char extra[160], pd[48], v[32];
    fmt_pad(p, pd, sizeof pd);
    fmt_float(value, v, sizeof v);
    size_t k = (size_t)snprintf(extra, sizeof extra, "pad: %s", pd);
    if (strcmp(m, "constant") != 0) k += (size_t)snprintf(extra + k, sizeof extra - k, ", mode: %s", m);
    if (value != 0 && !strcmp(m, "constant")) snprintf(extra + k, sizeof extra - k, ", value: %s", v);
    add_newer(e->o, "pad");
    return emit_unary(e, ni, "pad", extra, x);
}

/* Registers the constant operand c of an elementwise op on computed x as a
 * [C, H, W] tensor that broadcasts against x's layer; its name in *name. */
static int const_operand(emitter *e, int ni, int x, int c, const char *layer, char *name, size_t size)
{
    cnn_ir *g = e->g;
    const ir_val *xv = &g->vals[x], *cv = &g->vals[c];
    int r = xv->rank;
    if (cv->rank > r) return cnn_ir_node_error(g, ni, "its constant operand has more axes than its input");
    int64_t cd[IR_MAX_RANK] = {0};
    if (r < 1) return cnn_ir_node_error(g, ni, "its input has no batch axis");
    for (int i = 0; i < r; i++) cd[i] = i < r - cv->rank ? 1 : cv->dims[i - (r - cv->rank)];
    if (cd[0] != 1) return cnn_ir_node_error(g, ni, "its constant operand varies along the batch axis");
    int64_t pd[3] = {1, 1, 1}, xd[3];
    phys_dims(xv, xd);
    bool in_order = true;
    int last = -1;
    for (int i = 1; i < r; i++) {
        if (cd[i] == 1) continue;
        int p = xv->phys[i];
        if (p < 0) return cnn_ir_node_error(g, ni, "its constant operand does not fit the input's axes");
        pd[p] = cd[i];
        if (p <= last) in_order = false;
        last = p;
    }
    for (int p = 0; p < 3; p++)
        if (pd[p] != 1 && xd[p] != 1 && pd[p] != xd[p])
            return cnn_ir_node_error(g, ni, "its constant operand does not broadcast against its input");
    const float *data = cv->f;
    float *own = NULL;
    if (!in_order) {
        /* reorder: physical element (c, h, w) takes the logical element at the same coordinates */
        size_t n = (size_t)(pd[0] * pd[1] * pd[2]);
        if (!(own = cnn_malloc(n * sizeof(float)))) return CNN_ERR_NOMEM;
        for (size_t j = 0; j < n; j++) {
            int64_t co[3] = {(int64_t)(j / (size_t)(pd[1] * pd[2])), (int64_t)((j / (size_t)pd[2]) % (size_t)pd[1]),
                             (int64_t)(j % (size_t)pd[2])};
            size_t src = 0;
            for (int i = 1; i < r; i++) src = src * (size_t)cd[i] + (size_t)(cd[i] == 1 ? 0 : co[xv->phys[i]]);
            own[j] = cv->f[src];
        }
        data = own;
    }
    if (!cv->f) {
        free(own);
        return cnn_ir_node_error(g, ni, "its constant operand is not floating point");
    }
    for (int k = 0;; k++) {
        if (k == 0 && !own && cv->from_init && plain_name(cv->name)) snprintf(name, size, "%s", cv->name);
        else if (k <= 1) snprintf(name, size, "%s.const", layer);
        else snprintf(name, size, "%s.const_%d", layer, k);
        if (k == 0 && (own || !cv->from_init || !plain_name(cv->name))) continue;
        if (tensor_fits(e, name, 3, pd, data)) break;
    }
    return tensor_add(e, name, 3, pd, data, own);
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
        if (!same_layout(av, bv) || av->flat != bv->flat)
            return cnn_ir_node_error(g, ni, "its two inputs lay out their axes differently");
        bool equal = av->rank == bv->rank && !memcmp(av->dims, bv->dims, (size_t)av->rank * sizeof av->dims[0]);
        if (!equal || n->op != OP_ADD) add_newer(e->o, op);
        int ins[2] = {a, b};
        CNN_TRY_RET(put_layer(e, ni, op, ins, 2, NULL, NULL, 0, o));
        const ir_val *big = av->numel >= bv->numel ? av : bv;
        memcpy(ov->phys, big->phys, sizeof ov->phys);
        ov->flat = av->flat;
        return CNN_OK;
    }
    int x = ca ? b : a, c = ca ? a : b;
    char extra[700], layer[NAME_MAX_LEN + 64];
    double v;
    add_newer(e->o, op);
    if (cnn_ir_scalar(&g->vals[c], &v)) {
        if (!isfinite(v)) return cnn_ir_node_error(g, ni, "its constant is not finite");
        char f[32];
        fmt_float(v, f, sizeof f);
        snprintf(extra, sizeof extra, "value: %s", f);
    } else {
        char tn[600];
        new_name(e, ni, op, layer, sizeof layer);
        CNN_TRY_RET(const_operand(e, ni, x, c, layer, tn, sizeof tn));
        char shown[620];
        fmt_name(tn, shown, sizeof shown);
        snprintf(extra, sizeof extra, "const: %s", shown);
    }
    if (ca && (n->op == OP_SUB || n->op == OP_DIV)) strncat(extra, ", const_first: true", sizeof extra - strlen(extra) - 1);
    CNN_TRY_RET(computed(e, ni, x));
    CNN_TRY_RET(put_layer(e, ni, op, &x, 1, extra, NULL, 0, o));
    const ir_val *xv = &g->vals[x];
    if (ov->rank == xv->rank) memcpy(ov->phys, xv->phys, sizeof ov->phys);
    else return cnn_ir_node_error(g, ni, "its constant operand adds axes to its input");
    ov->flat = xv->flat;
    return CNN_OK;
}

static int emit_layernorm(emitter *e, int ni, int x, int gamma, int beta, double eps)
{
    cnn_ir *g = e->g;
    CNN_TRY_RET(computed(e, ni, x));
    const ir_val *xv = &g->vals[x];
    CNN_TRY_RET(need_channel_axis(e, ni, x, xv->rank - 1, "LayerNorm"));
    if (!(eps > 0) || !isfinite(eps)) return cnn_ir_node_error(g, ni, "epsilon must be > 0");
    int64_t C = xv->dims[xv->rank - 1];
    char extra[96], f[32];
    fmt_float(eps, f, sizeof f);
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
    add_newer(e->o, "layernorm");
    int o = g->nodes[ni].out[0];
    CNN_TRY_RET(put_layer(e, ni, "layernorm", &x, 1, extra, ps, nps, o));
    alias_layout(e, o, x);
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
    CNN_TRY_RET(norm_axis(e, ni, axis, g->vals[x].rank, &a));
    if (a != g->vals[x].rank - 1)
        return cnn_ir_node_error(g, ni, "LayerNormalization over more than the last axis is not supported");
    int64_t C = g->vals[x].dims[a];
    int gm = n->n_in > 1 ? n->in[1] : -1, bt = n->n_in > 2 ? n->in[2] : -1;
    if (gm < 0 || g->vals[gm].numel != (size_t)C || (bt >= 0 && g->vals[bt].numel != (size_t)C))
        return cnn_ir_node_error(g, ni, "scale and bias must hold one value per normalised element");
    return emit_layernorm(e, ni, x, gm, bt, eps);
}

static int emit_node(emitter *e, int ni)
{
    cnn_ir *g = e->g;
    const ir_node *n = &g->nodes[ni];
    switch (n->fused) {
    case FUSED_SILU: add_newer(e->o, "silu"); return emit_unary(e, ni, "silu", NULL, n->fx);
    case FUSED_HARDSWISH: return emit_unary(e, ni, "hardswish", NULL, n->fx);
    case FUSED_GELU: add_newer(e->o, "gelu"); return emit_unary(e, ni, "gelu", NULL, n->fx);
    case FUSED_LAYERNORM: return emit_layernorm(e, ni, n->fx, n->fa, n->fb, n->feps);
    case FUSED_LINEAR: return emit_matmul(e, ni);
    case FUSED_SHUFFLE: {
        CNN_TRY_RET(need_nchw(e, ni, n->fx));
        char extra[48];
        snprintf(extra, sizeof extra, "groups: %d", n->fgroups);
        add_newer(e->o, "channel_shuffle");
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
        fmt_float(a, f, sizeof f);
        snprintf(extra, sizeof extra, "slope: %s", f);
        return emit_unary(e, ni, "leaky_relu", extra, n->in[0]);
    }
    case OP_HARDSIGMOID: {
        double a, b;
        CNN_TRY_RET(cnn_ir_attr_float(g, ni, "alpha", 0.2, &a));
        CNN_TRY_RET(cnn_ir_attr_float(g, ni, "beta", 0.5, &b));
        char extra[96], fa[32], fb[32];
        fmt_float(a, fa, sizeof fa);
        fmt_float(b, fb, sizeof fb);
        snprintf(extra, sizeof extra, "alpha: %s, beta: %s", fa, fb);
        add_newer(e->o, "hardsigmoid");
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
        CNN_TRY_RET(computed(e, ni, n->in[0]));
        alias(e, n->out[0], n->in[0]);
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

void cnn_ir_out_free(cnn_ir_out *o)
{
    for (int i = 0; i < o->n_tensors; i++) {
        free(o->tensors[i].name);
        free(o->tensors[i].owned);
    }
    free(o->tensors);
    free(o->layers);
    memset(o, 0, sizeof *o);
}

int cnn_ir_emit(cnn_ir *g, cnn_ir_out *o)
{
    memset(o, 0, sizeof *o);
    emitter e = {.g = g, .o = o, .last = IR_LAYER_INPUT};
    size_t slots = 32768; /* more than twice MAX_LAYERS */
    e.slots = cnn_malloc(slots * sizeof *e.slots);
    e.tslots = cnn_malloc(16 * sizeof *e.tslots);
    int status = CNN_OK;
    if (!e.slots || !e.tslots) {
        status = CNN_ERR_NOMEM;
        goto done;
    }
    e.mask = slots - 1;
    e.tmask = 15;
    for (size_t i = 0; i < slots; i++) e.slots[i] = -1;
    for (int i = 0; i < 16; i++) e.tslots[i] = -1;
    CNN_TRY(find_bare(&e), done);
    const ir_val *in = &g->vals[g->input];
    int64_t pd[3];
    phys_dims(in, pd);
    o->in_c = (int)pd[0];
    o->in_h = (int)pd[1];
    o->in_w = (int)pd[2];
    for (int i = 0; i < g->n_nodes && status == CNN_OK; i++) {
        const ir_node *n = &g->nodes[i];
        if (!n->live || n->folded || n->skip) continue;
        status = emit_node(&e, i);
    }
    if (status < 0) goto done;
    ir_val *out = &g->vals[g->output];
    if (out->layer == IR_LAYER_INPUT) {
        /* the output is the input itself: one identity layer keeps the
         * pipeline well-formed */
        CNN_TRY(out_printf(o, "  - {name: output, op: dropout}  # the graph output is its input\n"), done);
        CNN_TRY(remember_name(&e, "output"), done);
        out->layer = e.last = o->n_layers - 1;
    }
    if (out->layer != e.last) {
        status = cnn_error_set(CNN_ERR_INPUT, "%s: the graph output is not the last layer written (internal order)",
                               g->path);
        goto done;
    }
    if (!ordered(out)) {
        status = cnn_error_set(CNN_ERR_INPUT, "%s: the graph output's axes are permuted by a Transpose; cnnviz-cl "
                               "writes outputs in its layers' [C, H, W] order", g->path);
        goto done;
    }
    phys_dims(out, pd);
    o->out_c = (int)pd[0];
    o->out_h = (int)pd[1];
    o->out_w = (int)pd[2];
    o->out_flat = out->flat;
done:
    for (int i = 0; i < o->n_layers; i++) free(e.names[i]);
    free(e.names);
    free(e.slots);
    free(e.tslots);
    free(e.bare);
    if (status < 0) cnn_ir_out_free(o);
    return status;
}
