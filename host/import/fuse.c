/* Node patterns that are one pipeline op.  Exporters write LayerNorm, GELU,
 * SiLU and hardswish as chains of elementwise nodes and a channel shuffle as
 * Reshape-Transpose-Reshape; each chain is matched from its first node,
 * every intermediate value must feed only the next node of the chain (a
 * tap could not see it otherwise), and the op is recorded on the last node,
 * where emit.c writes it. */
#define _POSIX_C_SOURCE 200809L
#include "import/ir.h"
#include "core/error.h"
#include "core/util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct fuse_ctx {
    cnn_ir *g;
    int *start, *cons;          /* computed (not folded) consumers of each value, CSR */
} fuse_ctx;

static int n_cons(const fuse_ctx *c, int v) { return c->start[v + 1] - c->start[v]; }

/* The one computed node that reads v, when v feeds nothing else (and is
 * not the graph output); else -1. */
static int only_consumer(const fuse_ctx *c, int v)
{
    if (v < 0 || v == c->g->output || n_cons(c, v) != 1) return -1;
    int k = c->cons[c->start[v]];
    return c->g->nodes[k].skip || c->g->nodes[k].fused ? -1 : k;
}

static bool is_op(const cnn_ir *g, int ni, ir_op op) { return ni >= 0 && g->nodes[ni].op == op; }

static bool const_near(const cnn_ir *g, int v, double want, double tol)
{
    double x;
    return v >= 0 && cnn_ir_scalar(&g->vals[v], &x) && fabs(x - want) <= tol;
}

static int out0(const cnn_ir *g, int ni) { return g->nodes[ni].out[0]; }

/* x * Sigmoid(x) and x * HardSigmoid(x) with PyTorch's hardsigmoid constants. */
static void match_gated(fuse_ctx *c, int ni)
{
    cnn_ir *g = c->g;
    ir_node *n = &g->nodes[ni];
    int x = n->in[0];
    if (n->op == OP_HARDSIGMOID) {
        double a, b;
        if (cnn_ir_attr_float(g, ni, "alpha", 0.2, &a) < 0 || cnn_ir_attr_float(g, ni, "beta", 0.5, &b) < 0) {
            cnn_error_clear();
            return;
        }
        if (fabs(a - 1.0 / 6.0) > 1e-6 || fabs(b - 0.5) > 1e-7) return;
    }
    int m = only_consumer(c, out0(g, ni));
    if (!is_op(g, m, OP_MUL) || cnn_ir_other_input(&g->nodes[m], out0(g, ni)) != x) return;
    n->skip = true;
    g->nodes[m].fused = n->op == OP_SIGMOID ? FUSED_SILU : FUSED_HARDSWISH;
    g->nodes[m].fx = x;
    g->nodes[m].fhead = ni;
}

/* Erf(x / sqrt 2) + 1, times x, times 0.5 (in either order). */
static void match_gelu(fuse_ctx *c, int ni)
{
    cnn_ir *g = c->g;
    int d = g->nodes[ni].in[0];
    int pd = g->vals[d].producer;
    if (pd < 0 || only_consumer(c, d) != ni) return;
    const ir_node *p = &g->nodes[pd];
    if (p->n_in != 2) return;
    int x = p->in[0];
    if (!(p->op == OP_DIV && const_near(g, p->in[1], sqrt(2.0), 1e-5)) &&
        !(p->op == OP_MUL && (const_near(g, p->in[1], sqrt(0.5), 1e-6) ||
                              (const_near(g, p->in[0], sqrt(0.5), 1e-6) && (x = p->in[1]) >= 0))))
        return;
    if (g->vals[x].is_const) return;
    int a = only_consumer(c, out0(g, ni));
    if (!is_op(g, a, OP_ADD) || !const_near(g, cnn_ir_other_input(&g->nodes[a], out0(g, ni)), 1.0, 1e-7)) return;
    int m1 = only_consumer(c, out0(g, a));
    if (!is_op(g, m1, OP_MUL)) return;
    int other = cnn_ir_other_input(&g->nodes[m1], out0(g, a));
    int last, half = -1;
    if (other == x) {
        int m2 = only_consumer(c, out0(g, m1));
        if (!is_op(g, m2, OP_MUL) || !const_near(g, cnn_ir_other_input(&g->nodes[m2], out0(g, m1)), 0.5, 1e-7)) return;
        last = m2;
    } else {
        half = other >= 0 ? g->vals[other].producer : -1;
        if (!is_op(g, half, OP_MUL) || only_consumer(c, other) != m1 ||
            cnn_ir_other_input(&g->nodes[half], x) < 0 ||
            !const_near(g, cnn_ir_other_input(&g->nodes[half], x), 0.5, 1e-7))
            return;
        last = m1;
    }
    g->nodes[pd].skip = g->nodes[ni].skip = g->nodes[a].skip = true;
    if (half >= 0) g->nodes[half].skip = true;
    if (last != m1) g->nodes[m1].skip = true;
    g->nodes[last].fused = FUSED_GELU;
    g->nodes[last].fx = x;
    g->nodes[last].fhead = pd;
}

/* ReduceMean over the last axis only, keeping it. */
static bool mean_last(const cnn_ir *g, int ni, int rank)
{
    int64_t ax[IR_MAX_RANK], keep;
    int na = -1;
    const ir_node *n = &g->nodes[ni];
    if (g->opset >= 18) {
        int v = n->n_in > 1 ? n->in[1] : -1;
        if (v < 0 || !g->vals[v].is_const || !g->vals[v].i || g->vals[v].numel != 1) return false;
        ax[0] = g->vals[v].i[0];
        na = 1;
    } else if (cnn_ir_attr_ints(g, ni, "axes", ax, IR_MAX_RANK, &na) < 0) {
        cnn_error_clear();
        return false;
    }
    if (cnn_ir_attr_int(g, ni, "keepdims", 1, &keep) < 0) {
        cnn_error_clear();
        return false;
    }
    return keep && na == 1 && (ax[0] == -1 || ax[0] == rank - 1);
}

/* A constant of C values spread along the last axis of a rank-`rank` tensor. */
static bool last_axis_vector(const cnn_ir *g, int v, int rank, int64_t C)
{
    if (v < 0 || !g->vals[v].is_const || !g->vals[v].f) return false;
    const ir_val *x = &g->vals[v];
    if (x->rank > rank || x->numel != (size_t)C) return false;
    for (int i = 0; i + 1 < x->rank; i++)
        if (x->dims[i] != 1) return false;
    return x->rank >= 1 && x->dims[x->rank - 1] == C;
}

static void match_layernorm(fuse_ctx *c, int ni)
{
    cnn_ir *g = c->g;
    int x = g->nodes[ni].in[0];
    const ir_val *xv = &g->vals[x];
    if (xv->is_const || !mean_last(g, ni, xv->rank)) return;
    int64_t C = xv->dims[xv->rank - 1];
    int sub = only_consumer(c, out0(g, ni));
    if (!is_op(g, sub, OP_SUB) || g->nodes[sub].in[0] != x || g->nodes[sub].in[1] != out0(g, ni)) return;
    int d = out0(g, sub);
    if (d == g->output || n_cons(c, d) != 2) return;
    int sq = -1, div = -1;
    for (int k = c->start[d]; k < c->start[d + 1]; k++) {
        int m = c->cons[k];
        const ir_node *mn = &g->nodes[m];
        if (mn->op == OP_POW && mn->in[0] == d && const_near(g, mn->in[1], 2.0, 0)) sq = m;
        else if (mn->op == OP_MUL && mn->in[0] == d && mn->in[1] == d) sq = m;
        else if (mn->op == OP_DIV && mn->in[0] == d) div = m;
    }
    if (sq < 0 || div < 0) return;
    int var = only_consumer(c, out0(g, sq));
    if (!is_op(g, var, OP_REDUCEMEAN) || !mean_last(g, var, xv->rank)) return;
    int add = only_consumer(c, out0(g, var));
    double eps;
    if (!is_op(g, add, OP_ADD)) return;
    int ev = cnn_ir_other_input(&g->nodes[add], out0(g, var));
    if (ev < 0 || !cnn_ir_scalar(&g->vals[ev], &eps) || !(eps > 0)) return;
    int rt = only_consumer(c, out0(g, add));
    if (!is_op(g, rt, OP_SQRT) || only_consumer(c, out0(g, rt)) != div || g->nodes[div].in[1] != out0(g, rt)) return;
    int last = div, gamma = -1, beta = -1;
    int mul = only_consumer(c, out0(g, div));
    if (is_op(g, mul, OP_MUL)) {
        int gv = cnn_ir_other_input(&g->nodes[mul], out0(g, div));
        if (last_axis_vector(g, gv, xv->rank, C)) {
            gamma = gv;
            last = mul;
            int ad = only_consumer(c, out0(g, mul));
            if (is_op(g, ad, OP_ADD)) {
                int bv = cnn_ir_other_input(&g->nodes[ad], out0(g, mul));
                if (last_axis_vector(g, bv, xv->rank, C)) {
                    beta = bv;
                    last = ad;
                }
            }
        }
    }
    int chain[] = {ni, sub, sq, var, add, rt, div, gamma >= 0 ? mul : -1};
    for (size_t k = 0; k < sizeof chain / sizeof chain[0]; k++)
        if (chain[k] >= 0 && chain[k] != last) g->nodes[chain[k]].skip = true;
    ir_node *l = &g->nodes[last];
    l->fused = FUSED_LAYERNORM;
    l->fx = x;
    l->fa = gamma;
    l->fb = beta;
    l->feps = eps;
    l->fhead = ni;
}

/* MatMul by a constant [in, out], with the bias Add that follows. */
static void match_linear(fuse_ctx *c, int ni)
{
    cnn_ir *g = c->g;
    ir_node *n = &g->nodes[ni];
    if (g->vals[n->in[0]].is_const) return;
    int last = ni, bias = -1;
    int64_t out = g->vals[n->in[1]].dims[1];
    int add = only_consumer(c, out0(g, ni));
    if (is_op(g, add, OP_ADD)) {
        int bv = cnn_ir_other_input(&g->nodes[add], out0(g, ni));
        if (last_axis_vector(g, bv, g->vals[out0(g, ni)].rank, out)) {
            bias = bv;
            last = add;
            n->skip = true;
        }
    }
    ir_node *l = &g->nodes[last];
    l->fused = FUSED_LINEAR;
    l->fx = n->in[0];
    l->fa = n->in[1];
    l->fb = bias;
    l->fhead = ni;
}

/* Reshape [N, C, H, W] -> [N, g, C/g, H, W], Transpose [0, 2, 1, 3, 4],
 * Reshape back to [N, C, H, W]. */
static void match_shuffle(fuse_ctx *c, int ni)
{
    cnn_ir *g = c->g;
    int x = g->nodes[ni].in[0];
    const ir_val *xv = &g->vals[x], *r1 = &g->vals[out0(g, ni)];
    if (xv->is_const || xv->rank != 4 || r1->rank != 5) return;
    if (r1->dims[0] != xv->dims[0] || r1->dims[1] * r1->dims[2] != xv->dims[1] || r1->dims[3] != xv->dims[2] ||
        r1->dims[4] != xv->dims[3] || r1->dims[1] < 1)
        return;
    int t = only_consumer(c, out0(g, ni));
    if (!is_op(g, t, OP_TRANSPOSE)) return;
    int64_t perm[IR_MAX_RANK];
    int np;
    if (cnn_ir_attr_ints(g, t, "perm", perm, IR_MAX_RANK, &np) < 0) {
        cnn_error_clear();
        return;
    }
    static const int64_t want[5] = {0, 2, 1, 3, 4};
    if (np != 5 || memcmp(perm, want, sizeof want) != 0) return;
    int r2 = only_consumer(c, out0(g, t));
    if (!is_op(g, r2, OP_RESHAPE)) return;
    const ir_val *y = &g->vals[out0(g, r2)];
    if (y->rank != 4 || memcmp(y->dims, xv->dims, 4 * sizeof xv->dims[0]) != 0) return;
    g->nodes[ni].skip = g->nodes[t].skip = true;
    g->nodes[r2].fused = FUSED_SHUFFLE;
    g->nodes[r2].fx = x;
    g->nodes[r2].fgroups = (int)r1->dims[1];
    g->nodes[r2].fhead = ni;
}

/* Pad (zeros before an average, -inf before a max) then a pool: the pool's
 * own padding, when that is exact (no ceil mode, the same count of padded
 * cells in every divisor) and within half the kernel as PyTorch allows. */
static void match_padpool(fuse_ctx *c, int ni)
{
    cnn_ir *g = c->g;
    const ir_val *xv = &g->vals[g->nodes[ni].in[0]];
    if (xv->is_const || xv->rank != 4) return;
    int64_t pads[2 * IR_MAX_RANK];
    double value;
    char mode[16];
    if (cnn_ir_pad_params(g, ni, 4, pads, &value, mode, sizeof mode) < 0) {
        cnn_error_clear();
        return;
    }
    if (strcmp(mode, "constant") != 0 || pads[0] || pads[1] || pads[4] || pads[5]) return;
    for (int i = 0; i < 8; i++)
        if (pads[i] < 0) return;
    int p = only_consumer(c, out0(g, ni));
    if (!is_op(g, p, OP_MAXPOOL) && !is_op(g, p, OP_AVGPOOL)) return;
    bool avg = g->nodes[p].op == OP_AVGPOOL;
    if (avg ? value != 0 : !(value < 0 && isinf(value))) return;
    ir_window w;
    if (cnn_ir_window(g, p, g->vals[out0(g, ni)].dims, 4, NULL, &w) < 0) {
        cnn_error_clear();
        return;
    }
    if (w.ceil_mode) return;
    bool own = w.pad[0] || w.pad[1] || w.pad[2] || w.pad[3];
    if (avg && own && !w.count_include_pad) return;
    int tot[4] = {(int)pads[2] + w.pad[0], (int)pads[6] + w.pad[1], (int)pads[3] + w.pad[2], (int)pads[7] + w.pad[3]};
    for (int i = 0; i < 4; i++)
        if (tot[i] > w.k[i / 2] / 2) return;
    g->nodes[ni].skip = true;
    g->nodes[p].fused = FUSED_PADPOOL;
    g->nodes[p].fx = g->nodes[ni].in[0];
    g->nodes[p].fa = ni;
    g->nodes[p].fhead = p;
}

int cnn_ir_fuse(cnn_ir *g)
{
    fuse_ctx c = {g, NULL, NULL};
    size_t total = 0;
    for (int i = 0; i < g->n_nodes; i++) total += (size_t)g->nodes[i].n_in;
    c.start = cnn_calloc((size_t)g->n_vals + 2, sizeof *c.start);
    c.cons = cnn_malloc((total ? total : 1) * sizeof *c.cons);
    int *fill = cnn_malloc(((size_t)g->n_vals + 2) * sizeof *fill);
    if (!c.start || !c.cons || !fill) {
        free(c.start);
        free(c.cons);
        free(fill);
        return CNN_ERR_NOMEM;
    }
    for (int i = 0; i < g->n_nodes; i++) {
        const ir_node *n = &g->nodes[i];
        if (!n->live || n->folded) continue;
        for (int k = 0; k < n->n_in; k++)
            if (n->in[k] >= 0) c.start[n->in[k] + 1]++;
    }
    for (int v = 0; v < g->n_vals; v++) c.start[v + 1] += c.start[v];
    memcpy(fill, c.start, ((size_t)g->n_vals + 1) * sizeof *fill);
    for (int i = 0; i < g->n_nodes; i++) {
        const ir_node *n = &g->nodes[i];
        if (!n->live || n->folded) continue;
        for (int k = 0; k < n->n_in; k++)
            if (n->in[k] >= 0) c.cons[fill[n->in[k]]++] = i;
    }
    free(fill);
    for (int i = 0; i < g->n_nodes; i++) {
        ir_node *n = &g->nodes[i];
        if (!n->live || n->folded || n->skip || n->fused) continue;
        switch (n->op) {
        case OP_SIGMOID: case OP_HARDSIGMOID: match_gated(&c, i); break;
        case OP_ERF: match_gelu(&c, i); break;
        case OP_REDUCEMEAN: match_layernorm(&c, i); break;
        case OP_MATMUL: match_linear(&c, i); break;
        case OP_RESHAPE: match_shuffle(&c, i); break;
        case OP_PAD: match_padpool(&c, i); break;
        default: break;
        }
    }
    free(c.start);
    free(c.cons);
    return CNN_OK;
}
