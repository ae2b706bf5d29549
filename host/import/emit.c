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
#include "import/emit.h"
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

void cnn_em_add_newer(cnn_ir_out *o, const char *what)
{
    if (strstr(o->newer, what)) return;
    size_t n = strlen(o->newer);
    snprintf(o->newer + n, sizeof o->newer - n, "%s%s", n ? ", " : "", what);
}

/* A float as YAML reads it back to the same float32. */
void cnn_em_fmt_float(double v, char *buf, size_t size)
{
    float f = (float)v;
    /* the shortest spelling that reads back as the same float */
    for (int digits = 6; digits <= 9; digits++) {
        snprintf(buf, size, "%.*g", digits, (double)f);
        if (strtof(buf, NULL) == f) break;
    }
    if (!strpbrk(buf, ".eE")) strncat(buf, ".0", size - strlen(buf) - 1);
}

void cnn_em_fmt_hw(int a, int b, char *buf, size_t size)
{
    if (a == b) snprintf(buf, size, "%d", a);
    else snprintf(buf, size, "[%d, %d]", a, b);
}

/* pad [t, b, l, r] in the shortest spelling the pipeline reads */
void cnn_em_fmt_pad(const int *p, char *buf, size_t size)
{
    if (p[0] == p[1] && p[1] == p[2] && p[2] == p[3]) snprintf(buf, size, "%d", p[0]);
    else if (p[0] == p[1] && p[2] == p[3]) snprintf(buf, size, "[%d, %d]", p[0], p[2]);
    else snprintf(buf, size, "[%d, %d, %d, %d]", p[0], p[1], p[2], p[3]);
}

/* Names the pipeline reads as plain strings: no null/bool/number look-alikes. */
void cnn_em_fmt_name(const char *s, char *buf, size_t size)
{
    bool quote = !strcmp(s, "null") || !strcmp(s, "true") || !strcmp(s, "false") || !strcmp(s, "Null") ||
                 !strcmp(s, "NULL") || !strcmp(s, "True") || !strcmp(s, "False") || !strcmp(s, "TRUE") ||
                 !strcmp(s, "FALSE") || isdigit((unsigned char)s[0]) || s[0] == '-' || s[0] == '.';
    if (quote) snprintf(buf, size, "'%s'", s);
    else snprintf(buf, size, "%s", s);
}

bool cnn_em_plain_name(const char *s)
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
int cnn_em_new_name(emitter *e, int ni, const char *op, char *out, size_t size)
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
bool cnn_em_tensor_fits(const emitter *e, const char *name, int ndim, const int64_t *dims, const float *data)
{
    int k = tensor_find(e, name);
    if (k < 0) return true;
    const cnn_ir_tensor *t = &e->o->tensors[k];
    if (t->ndim != ndim || memcmp(t->dims, dims, (size_t)ndim * sizeof dims[0]) != 0) return false;
    return t->data == data || (t->numel && !memcmp(t->data, data, t->numel * sizeof(float)));
}

/* Registers tensor `name` (ownership of `owned` passes here, also on
 * error); a name that holds the same data already is reused. */
int cnn_em_tensor_add(emitter *e, const char *name, int ndim, const int64_t *dims, const float *data, float *owned)
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
        natural = v && v->from_init && cnn_em_plain_name(v->name) && ln > ls + 1 && v->name[ln - ls - 1] == '.' &&
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
            ok = cnn_em_tensor_fits(e, name, ps[k].ndim, ps[k].dims, ps[k].data);
        }
        if (ok) break;
    }
    int status = CNN_OK;
    for (int k = 0; k < n; k++) {
        snprintf(name, sizeof name, "%s.%s", prefix, ps[k].suffix);
        float *own = ps[k].owned;
        ps[k].owned = NULL;
        if (status == CNN_OK) status = cnn_em_tensor_add(e, name, ps[k].ndim, ps[k].dims, ps[k].data, own);
        else free(own);
    }
    return status;
}

/* ---------------------------------------------------------------------- */
/* Layouts                                                                 */

void cnn_em_set_identity(ir_val *v)
{
    for (int i = 0; i < IR_MAX_RANK; i++) v->phys[i] = (int8_t)(i == 0 ? -1 : i <= 3 ? i - 1 : -1);
}

/* The physical [C, H, W] of value v. */
void cnn_em_phys_dims(const ir_val *v, int64_t pd[3])
{
    pd[0] = pd[1] = pd[2] = 1;
    for (int i = 1; i < v->rank; i++)
        if (v->phys[i] >= 0) pd[v->phys[i]] = v->dims[i];
}

/* Axes 1, 2, 3 are C, H, W. */
bool cnn_em_is_nchw(const ir_val *v)
{
    return v->rank == 4 && v->phys[1] == 0 && v->phys[2] == 1 && v->phys[3] == 2;
}

/* The elements are in the same order in memory as ONNX's row-major
 * order of the logical tensor. */
bool cnn_em_ordered(const ir_val *v)
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
bool cnn_em_same_layout(const ir_val *a, const ir_val *b)
{
    if (a->rank != b->rank) return false;
    for (int i = 1; i < a->rank; i++)
        if ((a->dims[i] != 1 || b->dims[i] != 1) && a->phys[i] != b->phys[i]) return false;
    return true;
}

const char *cnn_em_axis_name(int p) { return p == 0 ? "C" : p == 1 ? "H" : p == 2 ? "W" : "batch"; }

/* ---------------------------------------------------------------------- */
/* Writing a layer                                                         */

static int layer_ref(const emitter *e, int v, char *buf, size_t size)
{
    const ir_val *x = &e->g->vals[v];
    if (x->layer == IR_LAYER_INPUT) snprintf(buf, size, "input");
    else cnn_em_fmt_name(e->names[x->layer], buf, size);
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
int cnn_em_put_layer(emitter *e, int ni, const char *op, const int *ins, int nin, const char *extra,
                     param *ps, int nps, int out)
{
    char name[NAME_MAX_LEN + 64], shown[NAME_MAX_LEN + 70], prefix[700] = "", ref[NAME_MAX_LEN + 8];
    cnn_em_new_name(e, ni, op, name, sizeof name);
    int status = CNN_OK;
    if (nps) status = bind_params(e, name, ps, nps, prefix, sizeof prefix);
    free_params(ps, nps);
    if (status < 0) return status;
    CNN_TRY_RET(remember_name(e, name));
    cnn_em_fmt_name(name, shown, sizeof shown);
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
        cnn_em_fmt_name(prefix, ref, sizeof ref);
        CNN_TRY_RET(out_printf(e->o, ", params: %s", ref));
    }
    char comment[300];
    node_comment(e, ni, comment, sizeof comment);
    CNN_TRY_RET(out_printf(e->o, "}  # %s\n", comment));
    e->last = e->o->n_layers - 1;
    e->g->vals[out].layer = e->last;
    cnn_em_set_identity(&e->g->vals[out]); /* the callers whose output keeps other axes say so */
    e->g->vals[out].flat = false;
    return CNN_OK;
}

/* Value `out` is value `in` under another shape or axis map: no layer. */
void cnn_em_alias(emitter *e, int out, int in)
{
    ir_val *o = &e->g->vals[out];
    const ir_val *x = &e->g->vals[in];
    o->layer = x->layer;
    o->flat = x->flat;
    if (o->rank == x->rank) memcpy(o->phys, x->phys, sizeof o->phys);
}

/* Value `out`, written by a layer that keeps its input's shape, has the
 * axes of value `in`. */
void cnn_em_alias_layout(emitter *e, int out, int in)
{
    ir_val *o = &e->g->vals[out];
    const ir_val *x = &e->g->vals[in];
    o->flat = x->flat;
    if (o->rank == x->rank) memcpy(o->phys, x->phys, sizeof o->phys);
    else cnn_em_set_identity(o);
}

/* ---------------------------------------------------------------------- */
/* Ops                                                                     */

int cnn_em_computed(emitter *e, int ni, int v)
{
    const ir_val *x = &e->g->vals[v];
    if (x->is_const) return cnn_ir_node_error(e->g, ni, "input '%s' is a constant where a computed tensor is needed",
                                              x->name);
    CNN_ASSERT(x->layer != IR_LAYER_NONE);
    return CNN_OK;
}

int cnn_em_need_nchw(emitter *e, int ni, int v)
{
    CNN_TRY_RET(cnn_em_computed(e, ni, v));
    const ir_val *x = &e->g->vals[v];
    if (!cnn_em_is_nchw(x) || x->flat) {
        if (x->rank != 4) return cnn_ir_node_error(e->g, ni, "its input has rank %d; [N, C, H, W] is needed", x->rank);
        return cnn_ir_node_error(e->g, ni, "its input's axes are %s, %s, %s after a Transpose; the op needs them "
                                 "as C, H, W", cnn_em_axis_name(x->phys[1]), cnn_em_axis_name(x->phys[2]), cnn_em_axis_name(x->phys[3]));
    }
    return CNN_OK;
}

/* [N, C, H, W] as C, H, W, or [N, C, L] as C and H (convolutions and
 * pools over L alone). */
int cnn_em_need_spatial(emitter *e, int ni, int v)
{
    const ir_val *x = &e->g->vals[v];
    if (x->rank == 3 && !x->is_const && x->phys[1] == 0 && x->phys[2] == 1 && !x->flat) return CNN_OK;
    return cnn_em_need_nchw(e, ni, v);
}

/* The axis a of value v must be its physical C. */
int cnn_em_need_channel_axis(emitter *e, int ni, int v, int a, const char *what)
{
    const ir_val *x = &e->g->vals[v];
    if (a == 0) return cnn_ir_node_error(e->g, ni, "%s over the batch axis is not supported", what);
    if (x->phys[a] != 0)
        return cnn_ir_node_error(e->g, ni, "%s over axis %d, which is %s in the pipeline's [C, H, W]; only the "
                                 "channel axis is supported", what, a, cnn_em_axis_name(x->phys[a]));
    return CNN_OK;
}


/* Registers the constant operand c of an elementwise op on computed x as a
 * [C, H, W] tensor that broadcasts against x's layer; its name in *name. */
int cnn_em_const_operand(emitter *e, int ni, int x, int c, const char *layer, char *name, size_t size)
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
    cnn_em_phys_dims(xv, xd);
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
        if (k == 0 && !own && cv->from_init && cnn_em_plain_name(cv->name)) snprintf(name, size, "%s", cv->name);
        else if (k <= 1) snprintf(name, size, "%s.const", layer);
        else snprintf(name, size, "%s.const_%d", layer, k);
        if (k == 0 && (own || !cv->from_init || !cnn_em_plain_name(cv->name))) continue;
        if (cnn_em_tensor_fits(e, name, 3, pd, data)) break;
    }
    return cnn_em_tensor_add(e, name, 3, pd, data, own);
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
    cnn_em_phys_dims(in, pd);
    o->in_c = (int)pd[0];
    o->in_h = (int)pd[1];
    o->in_w = (int)pd[2];
    for (int i = 0; i < g->n_nodes && status == CNN_OK; i++) {
        const ir_node *n = &g->nodes[i];
        if (!n->live || n->folded || n->skip) continue;
        status = cnn_em_node(&e, i);
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
    if (!cnn_em_ordered(out) || out->fperm) {
        status = cnn_error_set(CNN_ERR_INPUT, "%s: the graph output's axes are permuted by a Transpose; cnnviz-cl "
                               "writes outputs in its layers' [C, H, W] order", g->path);
        goto done;
    }
    cnn_em_phys_dims(out, pd);
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
