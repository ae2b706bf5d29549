/* `tune`: a search over CLBlast's Xgemm parameters on the GEMMs a pipeline
 * runs.  Every candidate is measured in a child process of its own (this
 * process never touches OpenCL), so that a parameter set that crashes or
 * hangs the OpenCL compiler or kernel costs that candidate only: it is
 * recorded as failed and the search goes on.  The best set so far is written
 * to the tuning file after every candidate.
 *
 * One file: the parent's search and the child's measurement share the GEMM
 * shapes, the candidate's text form and the pipe protocol between them;
 * split, that protocol would become a header with one user. */
#define _POSIX_C_SOURCE 200809L
#include "cli/tune.h"
#include "config/config.h"
#include "core/error.h"
#include "core/util.h"
#include "model/graph.h"
#include "ops/blas.h"
#include "ops/ops.h"
#include "ops/tune.h"
#include "runtime/choose.h"
#include "runtime/clrt.h"

#include <clblast_c.h>
#include <errno.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char HELP[] =
    "usage: cnnviz-cl tune [CONFIG] [--batch N] [--budget SECONDS] [--platform SEL] [--device SEL]\n"
    "\n"
    "Searches the parameters of CLBlast's matrix-multiply kernel (Xgemm: tile\n"
    "sizes, work-group shape, vector widths, local memory use) for the selected\n"
    "OpenCL device, measured on the GEMMs that the network of CONFIG runs at\n"
    "--batch N (its convolutions, and its linear layers when N > 1), or on a\n"
    "default set of GEMM shapes without CONFIG, timed as a forward pass runs\n"
    "them: every call back to back, each on operands of its own.  The\n"
    "candidates are the current defaults, CLBlast's own defaults, the previous\n"
    "tuning result, then neighbours of the best set so far and random valid\n"
    "sets; each one runs in a child process of its own, its results are\n"
    "checked against the host, and a candidate that crashes, hangs or computes\n"
    "wrong numbers is recorded as failed.  A line per candidate shows its\n"
    "GFLOP/s and the best so far.\n"
    "\n"
    "How long: --budget seconds in all (default 300).  A new kernel variant costs\n"
    "about 10 s to compile on a PoCL CPU, so count on 20-40 candidates for the\n"
    "default budget.  Ctrl-C stops the search and keeps the best set found.\n"
    "\n"
    "Where: the best set is written after every candidate to\n"
    "  $CNNVIZ_CACHE_DIR/tune/<platform>-<device>-<driver>-<hash>.txt\n"
    "(the cache folder defaults to $XDG_CACHE_HOME/cnnviz-cl or\n"
    "~/.cache/cnnviz-cl), a text file that 'run' applies at start-up on that\n"
    "device only.  A damaged file is ignored with a warning.\n"
    "\n"
    "Undo: delete that file (the path is printed), or run with\n"
    "CNNVIZ_CACHE_DIR=off, which also turns the compiled-kernel cache off.\n"
    "\n"
    "On PoCL CPU devices 'run' multiplies the convolutions on its own GEMM\n"
    "kernel, which this search does not touch: there the tuned set speeds up\n"
    "only what still runs on CLBlast (linear layers at batch > 1, gradient maps).\n"
    "\n"
    "options:\n"
    "  --batch N         batch size the GEMM shapes are taken at (default 1)\n"
    "  --budget SECONDS  time for the whole search (default 300)\n"
    "  --platform SEL    OpenCL platform: index or part of its name\n"
    "  --device SEL      OpenCL device: index, part of its name, or gpu/cpu\n";

/* ------------------------------------------------------------ shapes --- */

typedef enum { SHAPE_NATIVE, SHAPE_ROWMAJOR_BT } shape_kind;

typedef struct gemm_shape {
    shape_kind kind;
    size_t count;                        /* products per call (Winograd: 16) */
    size_t m, n, k;
    size_t a_stride, b_stride, c_stride; /* floats between the count blocks */
    int mult;                            /* calls per forward pass */
    char what[96];                       /* first layer that runs it */
} gemm_shape;

typedef struct shape_set {
    gemm_shape *s;
    int n, cap;
} shape_set;

static size_t round_up(size_t v, size_t to) { return (v + to - 1) / to * to; }

static int shape_add(shape_set *set, gemm_shape sh)
{
    for (int i = 0; i < set->n; i++) {
        gemm_shape *o = &set->s[i];
        if (o->kind == sh.kind && o->count == sh.count && o->m == sh.m && o->n == sh.n && o->k == sh.k &&
            o->a_stride == sh.a_stride && o->b_stride == sh.b_stride && o->c_stride == sh.c_stride) {
            o->mult++;
            return CNN_OK;
        }
    }
    if (set->n == set->cap) {
        int cap = set->cap ? set->cap * 2 : 16;
        gemm_shape *p = cnn_realloc(set->s, (size_t)cap * sizeof *p);
        if (!p) return CNN_ERR_NOMEM;
        set->s = p;
        set->cap = cap;
    }
    sh.mult = 1;
    set->s[set->n++] = sh;
    return CNN_OK;
}

/* Skew between Winograd's 16 blocks, as host/ops/conv.c lays them out. */
#define WINO_SKEW 128

/* The GEMM of a packed conv at batch n, exactly as cnn_op_conv2d_packed
 * calls it. */
static gemm_shape conv_shape(const cnn_conv_geom *g, const cnn_conv_pack *pk, int n, const char *name)
{
    gemm_shape sh;
    memset(&sh, 0, sizeof sh);
    size_t per_image = pk->winograd ? (size_t)((g->ho + 1) / 2) * (size_t)((g->wo + 1) / 2)
                                    : (size_t)g->ho * (size_t)g->wo;
    size_t p_pad = round_up((size_t)n * per_image, (size_t)pk->p_align);
    size_t k = (size_t)pk->k_pad, co = (size_t)pk->co_pad;
    bool p_m = pk->p_major;
    sh.kind = SHAPE_NATIVE;
    sh.k = k;
    sh.m = p_m ? p_pad : co;
    sh.n = p_m ? co : p_pad;
    sh.count = pk->winograd ? 16 : 1;
    if (pk->winograd) {
        size_t vs = k * p_pad + WINO_SKEW, us = k * co, ms = co * p_pad + WINO_SKEW;
        sh.a_stride = p_m ? vs : us;
        sh.b_stride = p_m ? us : vs;
        sh.c_stride = ms;
    }
    snprintf(sh.what, sizeof sh.what, "%s%s", name, pk->winograd ? " (winograd)" : "");
    return sh;
}

static int shapes_from_config(const char *config, int batch, shape_set *set)
{
    cnn_pipeline pipe;
    cnn_graph g;
    memset(&g, 0, sizeof g);
    int status = cnn_pipeline_load(config, &pipe);
    if (status == CNN_OK) status = cnn_graph_build(&pipe, NULL, &g);
    for (int i = 0; i < g.n && status == CNN_OK; i++) {
        const cnn_layer *l = &g.layers[i];
        cnn_conv_pack pk;
        if (cnn_layer_is_conv(l) && l->conv.groups == 1 && cnn_op_conv2d_pack_layout(&l->conv, batch, false, &pk)) {
            status = shape_add(set, conv_shape(&l->conv, &pk, batch, l->spec->name));
        } else if (l->spec->op == CNN_OP_LINEAR && !l->spec->over_channels && batch > 1) {
            /* cnn_op_linear: row-major x[n, in] * w[out, in]^T. */
            const cnn_layer *in = &g.layers[l->in[0]];
            gemm_shape sh;
            memset(&sh, 0, sizeof sh);
            sh.kind = SHAPE_ROWMAJOR_BT;
            sh.count = 1;
            sh.m = (size_t)batch;
            sh.n = (size_t)l->c;
            sh.k = l->in[0] == CNN_GRAPH_INPUT ? (size_t)g.in_c * g.in_h * g.in_w : cnn_layer_numel(in);
            snprintf(sh.what, sizeof sh.what, "%s", l->spec->name);
            status = shape_add(set, sh);
        }
    }
    cnn_graph_free(&g);
    cnn_pipeline_free(&pipe);
    if (status == CNN_OK && set->n == 0)
        status = cnn_error_set(CNN_ERR_INPUT, "%s: no layer runs a CLBlast GEMM at batch %d (conv2d with groups 1, "
                                              "or linear at batch > 1)", config, batch);
    return status;
}

/* Without CONFIG: a square product and the packed GEMMs of VGG16-like
 * convolutions at batch 1 (spatial side as m, channels as n). */
static int default_shapes(shape_set *set)
{
    static const struct { size_t m, n, k; const char *what; } d[] = {
        {1024, 1024, 1024, "square 1024"},
        {12544, 128, 576, "112x112, 64 -> 128, 3x3"},
        {3136, 256, 1152, "56x56, 128 -> 256, 3x3"},
        {832, 512, 2304, "28x28, 256 -> 512, 3x3"},
        {256, 512, 4608, "14x14, 512 -> 512, 3x3"},
    };
    for (size_t i = 0; i < sizeof d / sizeof d[0]; i++) {
        gemm_shape sh;
        memset(&sh, 0, sizeof sh);
        sh.kind = SHAPE_NATIVE;
        sh.count = 1;
        sh.m = d[i].m;
        sh.n = d[i].n;
        sh.k = d[i].k;
        snprintf(sh.what, sizeof sh.what, "%s", d[i].what);
        CNN_TRY_RET(shape_add(set, sh));
    }
    return CNN_OK;
}

static double shapes_flop(const shape_set *set)
{
    double f = 0;
    for (int i = 0; i < set->n; i++)
        f += 2.0 * set->s[i].mult * (double)set->s[i].count * (double)set->s[i].m * (double)set->s[i].n *
             (double)set->s[i].k;
    return f;
}

/* Floats of the three operands of one shape. */
static void shape_floats(const gemm_shape *s, size_t *a, size_t *b, size_t *c)
{
    *a = (s->count - 1) * s->a_stride + s->m * s->k;
    *b = (s->count - 1) * s->b_stride + s->n * s->k;
    *c = (s->count - 1) * s->c_stride + s->m * s->n;
}

/* ------------------------------------------------------- candidates --- */

typedef struct candidate {
    cnn_tune_params p;
    bool builtin;      /* no override: what 'run' uses without a tuning file */
    const char *label; /* static string */
} candidate;

/* Sent from the child through a pipe. */
typedef struct child_result {
    int ok;        /* 1 measured, 2 stopped early (slower than allowed), 0 failed */
    int status;    /* the child's cnn_status when it failed */
    double ms;     /* median time of one pass: every call of every shape, as a forward runs them */
    double first_ms;
    char msg[512];
    char platform[256], device[256], driver[256];
    size_t local_mem, max_work_group;
    int shipped; /* cnn_blas_apply_defaults sets the shipped parameters here */
} child_result;

static void params_str(const cnn_tune_params *p, char *buf, size_t size)
{
#define P(x) p->v[CNN_TP_##x]
    int n = snprintf(buf, size, "MWG %zu NWG %zu KWG %zu MDIMC %zu NDIMC %zu MDIMA %zu NDIMB %zu KWI %zu VWM %zu "
                     "VWN %zu STRM %zu STRN %zu SA %zu SB %zu",
                     P(MWG), P(NWG), P(KWG), P(MDIMC), P(NDIMC), P(MDIMA), P(NDIMB), P(KWI), P(VWM), P(VWN), P(STRM),
                     P(STRN), P(SA), P(SB));
    if (P(GEMMK) && n > 0 && (size_t)n < size)
        n += snprintf(buf + n, size - (size_t)n, " GEMMK 1 KREG %zu", P(KREG));
    if (p->min_indirect && n > 0 && (size_t)n < size)
        snprintf(buf + n, size - (size_t)n, " XGEMM_MIN_INDIRECT_SIZE %zu", p->min_indirect);
#undef P
}

/* --------------------------------------------------------- the child --- */

typedef struct child_job {
    const char *platform, *device;
    const shape_set *shapes;
    const candidate *cand;
    double abort_ms; /* stop after the first timed pass when slower (0: never) */
} child_job;

static int run_shape(cnn_cl *cl, const gemm_shape *s, cl_mem a, cl_mem b, cl_mem c)
{
    if (s->kind == SHAPE_ROWMAJOR_BT)
        return cnn_blas_sgemm(cl, false, true, s->m, s->n, s->k, a, 0, s->k, b, 0, s->k, c, 0, s->n, "tune");
    if (s->count == 1) return cnn_blas_sgemm_native(cl, s->m, s->n, s->k, a, b, c, "tune");
    return cnn_blas_sgemm_native_n(cl, s->count, s->m, s->n, s->k, a, s->a_stride, b, s->b_stride, c, s->c_stride,
                                   "tune");
}

static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545F4914F6CDD1DULL;
}

/* Checks sampled elements of the result of shape s against the host. */
static int verify_shape(cnn_cl *cl, const gemm_shape *s, const float *ha, const float *hb, cl_mem c, char *msg,
                        size_t msg_size)
{
    uint64_t rng = 0x51ed2701a5c3f00dULL;
    size_t blocks[2] = {0, s->count - 1};
    for (int bi = 0; bi < (s->count > 1 ? 2 : 1); bi++) {
        size_t blk = blocks[bi];
        for (int t = 0; t < 24; t++) {
            size_t i = t == 0 ? 0 : t == 1 ? s->m - 1 : (size_t)(rng_next(&rng) % s->m);
            size_t j = t == 0 ? 0 : t == 1 ? s->n - 1 : (size_t)(rng_next(&rng) % s->n);
            double ref = 0, mag = 0;
            size_t ci;
            if (s->kind == SHAPE_ROWMAJOR_BT) {
                for (size_t l = 0; l < s->k; l++) {
                    double v = (double)ha[i * s->k + l] * hb[j * s->k + l];
                    ref += v;
                    mag += fabs(v);
                }
                ci = i * s->n + j;
            } else {
                const float *pa = ha + blk * s->a_stride, *pb = hb + blk * s->b_stride;
                for (size_t l = 0; l < s->k; l++) {
                    double v = (double)pa[i + l * s->m] * pb[j + l * s->n];
                    ref += v;
                    mag += fabs(v);
                }
                ci = blk * s->c_stride + i + j * s->m;
            }
            float got;
            int status = cnn_cl_read(cl, c, ci * sizeof(float), sizeof got, &got, "tune: result");
            if (status < 0) return status;
            if (!(fabs((double)got - ref) <= 5e-4 * mag + 1e-5)) {
                snprintf(msg, msg_size, "wrong result: %zu x %zu x %zu, C[%zu, %zu] = %g, expected %g", s->m, s->n,
                         s->k, i, j, (double)got, ref);
                return CNN_ERR_DEVICE;
            }
        }
    }
    return CNN_OK;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The operands of each call of a timed pass (see child_measure). */
#define TUNE_OPERAND_MAX ((size_t)384 << 20)

typedef struct operands {
    cl_mem *a, *b; /* [calls]: own copies, or the shared a/b */
    int n;
} operands;

static void operands_free(operands *o, cl_mem a, cl_mem b)
{
    for (int i = 0; i < o->n; i++) {
        if (o->a[i] && o->a[i] != a) clReleaseMemObject(o->a[i]);
        if (o->b[i] && o->b[i] != b) clReleaseMemObject(o->b[i]);
    }
    free(o->a);
    free(o->b);
    memset(o, 0, sizeof *o);
}

/* A copy of the first `floats` of src (the checked operand), or src itself
 * once the copies reach TUNE_OPERAND_MAX bytes. */
static int operand_copy(cnn_cl *cl, cl_mem src, size_t floats, size_t *used, cl_mem *out)
{
    size_t bytes = floats * sizeof(float);
    if (*used + bytes > TUNE_OPERAND_MAX) {
        *out = src;
        return CNN_OK;
    }
    int status = cnn_cl_buffer(cl, bytes, out, "tune: operand");
    if (status < 0) return status;
    *used += bytes;
    cl_int err = clEnqueueCopyBuffer(cl->queue, src, *out, 0, 0, bytes, 0, NULL, NULL);
    if (err != CL_SUCCESS)
        return cnn_error_set(CNN_ERR_DEVICE, "clEnqueueCopyBuffer failed: %s (tune: operand)", cnn_cl_error_name(err));
    return CNN_OK;
}

static int make_operands(cnn_cl *cl, const shape_set *set, cl_mem a, cl_mem b, operands *o)
{
    int calls = 0;
    for (int i = 0; i < set->n; i++) calls += set->s[i].mult;
    o->a = cnn_calloc((size_t)calls, sizeof *o->a);
    o->b = cnn_calloc((size_t)calls, sizeof *o->b);
    if (!o->a || !o->b) return CNN_ERR_NOMEM;
    o->n = calls;
    size_t used = 0;
    int status = CNN_OK;
    for (int i = 0, k = 0; i < set->n && status == CNN_OK; i++)
        for (int m = 0; m < set->s[i].mult && status == CNN_OK; m++, k++) {
            size_t x, y, z;
            shape_floats(&set->s[i], &x, &y, &z);
            status = operand_copy(cl, a, x, &used, &o->a[k]);
            if (status == CNN_OK) status = operand_copy(cl, b, y, &used, &o->b[k]);
        }
    if (status == CNN_OK) {
        cl_int err = clFinish(cl->queue);
        if (err != CL_SUCCESS)
            status = cnn_error_set(CNN_ERR_DEVICE, "clFinish failed: %s (tune: operands)", cnn_cl_error_name(err));
    }
    return status;
}

static int child_measure(const child_job *job, child_result *r)
{
    cnn_cl cl;
    cl_mem a = NULL, b = NULL, c = NULL;
    operands ops = {0};
    float *ha = NULL, *hb = NULL;
    int status = cnn_cl_init(&cl, job->platform, job->device, false);
    if (status < 0) return status;
    snprintf(r->platform, sizeof r->platform, "%s", cl.platform_name);
    snprintf(r->device, sizeof r->device, "%s", cl.device_name);
    snprintf(r->driver, sizeof r->driver, "%s", cl.driver_version);
    r->local_mem = (size_t)cl.local_mem;
    r->max_work_group = cl.max_work_group;
    r->shipped = cl.is_pocl && (cl.type & CL_DEVICE_TYPE_CPU);
    cnn_blas_apply_defaults(&cl);
    /* the search is over CLBlast's parameters: its kernels run every shape */
    cl.own_gemm = false;
    if (!job->cand->builtin) {
        char why[200];
        if (!cnn_tune_params_valid(&job->cand->p, r->local_mem, r->max_work_group, why, sizeof why)) {
            status = cnn_error_set(CNN_ERR_USAGE, "not valid on this device: %s", why);
            goto done;
        }
        CNN_TRY(cnn_tune_override(&cl, &job->cand->p), done);
    }
    const shape_set *set = job->shapes;
    size_t na = 0, nb = 0, nc = 0;
    for (int i = 0; i < set->n; i++) {
        size_t x, y, z;
        shape_floats(&set->s[i], &x, &y, &z);
        if (x > na) na = x;
        if (y > nb) nb = y;
        if (z > nc) nc = z;
    }
    ha = cnn_malloc(na * sizeof *ha);
    hb = cnn_malloc(nb * sizeof *hb);
    if (!ha || !hb) {
        status = CNN_ERR_NOMEM;
        goto done;
    }
    uint64_t rng = 0x2545f4914f6cdd1dULL;
    for (size_t i = 0; i < na; i++) ha[i] = (float)((double)(rng_next(&rng) >> 40) / (double)(1u << 23)) - 1.0f;
    for (size_t i = 0; i < nb; i++) hb[i] = (float)((double)(rng_next(&rng) >> 40) / (double)(1u << 23)) - 1.0f;
    CNN_TRY(cnn_cl_buffer(&cl, na * sizeof(float), &a, "tune: A"), done);
    CNN_TRY(cnn_cl_buffer(&cl, nb * sizeof(float), &b, "tune: B"), done);
    CNN_TRY(cnn_cl_buffer(&cl, nc * sizeof(float), &c, "tune: C"), done);
    CNN_TRY(cnn_cl_write(&cl, a, 0, na * sizeof(float), ha, "tune: A"), done);
    CNN_TRY(cnn_cl_write(&cl, b, 0, nb * sizeof(float), hb, "tune: B"), done);
    CNN_TRY(cnn_op_zero(&cl, c, nc, "tune: C"), done);

    /* Warm-up (compiles the kernels) and checks each result. */
    double t0 = cnn_now_ms();
    for (int i = 0; i < set->n; i++) {
        CNN_TRY(run_shape(&cl, &set->s[i], a, b, c), done);
        CNN_CL_TRY(clFinish(cl.queue), "tune: warm-up", done);
        status = verify_shape(&cl, &set->s[i], ha, hb, c, r->msg, sizeof r->msg);
        if (status < 0) {
            if (r->msg[0]) cnn_error_set(status, "%s", r->msg);
            goto done;
        }
    }
    r->first_ms = cnn_now_ms() - t0;

    /* Timed passes as a forward pass runs them: every call of every shape
     * back to back, one wait at the end, and each call on operands of its
     * own (a network's layers each have their weights and columns), up to
     * TUNE_OPERAND_MAX bytes of copies; the rest share.  Timing each shape
     * alone on the same operands, which then stay in the caches, ranked a
     * set 1.23x faster that made ResNet-18 1.3x slower
     * (test/bench/NOTES.md 15). */
    CNN_TRY(make_operands(&cl, set, a, b, &ops), done);
    double totals[7];
    int reps = 0, want = 3;
    for (; reps < want; reps++) {
        double s0 = cnn_now_ms();
        for (int i = 0, o = 0; i < set->n; i++)
            for (int m = 0; m < set->s[i].mult; m++, o++)
                CNN_TRY(run_shape(&cl, &set->s[i], ops.a[o], ops.b[o], c), done);
        CNN_CL_TRY(clFinish(cl.queue), "tune: timed pass", done);
        double total = cnn_now_ms() - s0;
        totals[reps] = total;
        if (reps == 0) {
            if (job->abort_ms > 0 && total > job->abort_ms) {
                r->ok = 2;
                r->ms = total;
                goto done;
            }
            if (total < 300) want = 5;
            if (total < 60) want = 7;
        }
    }
    qsort(totals, (size_t)reps, sizeof totals[0], cmp_double);
    r->ms = totals[reps / 2];
    r->ok = 1;
done:
    if (status < 0 && !r->msg[0]) snprintf(r->msg, sizeof r->msg, "%s", cnn_error_message());
    operands_free(&ops, a, b);
    if (a) clReleaseMemObject(a);
    if (b) clReleaseMemObject(b);
    if (c) clReleaseMemObject(c);
    free(ha);
    free(hb);
    cnn_cl_free(&cl);
    return status;
}

/* ------------------------------------------------- running a child --- */

typedef enum { RUN_OK, RUN_SLOW, RUN_FAILED, RUN_CRASHED, RUN_TIMEOUT, RUN_INTERRUPTED } run_outcome;

static run_outcome run_candidate(const child_job *job, double timeout_ms, child_result *r, char *why, size_t why_size)
{
    memset(r, 0, sizeof *r);
    int fds[2];
    if (pipe(fds) != 0) {
        snprintf(why, why_size, "pipe(): %s", strerror(errno));
        return RUN_FAILED;
    }
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        snprintf(why, why_size, "fork(): %s", strerror(errno));
        return RUN_FAILED;
    }
    if (pid == 0) {
        /* The child: dies on Ctrl-C like any program. */
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        close(fds[0]);
        child_result res;
        memset(&res, 0, sizeof res);
        res.status = child_measure(job, &res);
        const char *p = (const char *)&res;
        size_t left = sizeof res;
        while (left) {
            ssize_t w = write(fds[1], p, left);
            if (w < 0 && errno == EINTR) continue;
            if (w <= 0) break;
            p += w;
            left -= (size_t)w;
        }
        close(fds[1]);
        _exit(0);
    }
    close(fds[1]);
    size_t got = 0;
    run_outcome out = RUN_OK;
    double deadline = cnn_now_ms() + timeout_ms;
    while (got < sizeof *r) {
        if (cnn_signal_pending()) {
            out = RUN_INTERRUPTED;
            break;
        }
        double left = deadline - cnn_now_ms();
        if (left <= 0) {
            out = RUN_TIMEOUT;
            break;
        }
        struct pollfd pfd = {fds[0], POLLIN, 0};
        int pr = poll(&pfd, 1, left > 1000 ? 1000 : (int)left + 1);
        if (pr < 0 && errno == EINTR) continue;
        if (pr <= 0) continue;
        ssize_t n = read(fds[0], (char *)r + got, sizeof *r - got);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break; /* EOF: the child died or gave up */
        got += (size_t)n;
    }
    close(fds[0]);
    if (out != RUN_OK) kill(pid, SIGKILL);
    /* Reap it; a child that hangs on its way out is killed. */
    int st = 0;
    double reap_deadline = cnn_now_ms() + 5000;
    for (;;) {
        pid_t w = waitpid(pid, &st, WNOHANG);
        if (w == pid) break;
        if (w < 0 && errno != EINTR) break;
        if (cnn_now_ms() > reap_deadline) {
            kill(pid, SIGKILL);
            reap_deadline = cnn_now_ms() + 60000;
        }
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    if (out == RUN_TIMEOUT) {
        snprintf(why, why_size, "no result within %.0f s: killed", timeout_ms / 1000);
        return out;
    }
    if (out == RUN_INTERRUPTED) return out;
    if (got < sizeof *r) {
        if (WIFSIGNALED(st))
            snprintf(why, why_size, "crashed (signal %d%s)", WTERMSIG(st),
                     WTERMSIG(st) == SIGSEGV ? ", segmentation fault" : "");
        else
            snprintf(why, why_size, "child exited with status %d and no result",
                     WIFEXITED(st) ? WEXITSTATUS(st) : -1);
        return RUN_CRASHED;
    }
    r->msg[sizeof r->msg - 1] = '\0';
    r->platform[sizeof r->platform - 1] = r->device[sizeof r->device - 1] = r->driver[sizeof r->driver - 1] = '\0';
    if (r->ok == 1) return RUN_OK;
    if (r->ok == 2) return RUN_SLOW;
    snprintf(why, why_size, "%s", r->msg[0] ? r->msg : "failed");
    return RUN_FAILED;
}

/* ------------------------------------------------------ the command --- */

typedef struct tune_opts {
    const char *config, *platform, *device;
    int batch;
    double budget_s;
} tune_opts;

static int parse_args(int argc, char **argv, tune_opts *o)
{
    memset(o, 0, sizeof *o);
    o->batch = 1;
    o->budget_s = 300;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(HELP, stdout);
            return 1;
        }
        bool takes = !strcmp(a, "--batch") || !strcmp(a, "--budget") || !strcmp(a, "--platform") ||
                     !strcmp(a, "--device");
        if (takes && !v) return cnn_error_set(CNN_ERR_USAGE, "tune: option %s needs a value", a);
        if (!strcmp(a, "--batch") || !strcmp(a, "--budget")) {
            char *end;
            errno = 0;
            long x = strtol(v, &end, 10);
            bool batch = a[3] == 'a';
            long hi = batch ? 4096 : 86400;
            if (!*v || *end || errno || x < 1 || x > hi)
                return cnn_error_set(CNN_ERR_USAGE, "%s '%s': expected an integer in [1, %ld]", a, v, hi);
            if (batch) o->batch = (int)x;
            else o->budget_s = (double)x;
            i++;
        } else if (!strcmp(a, "--platform")) {
            o->platform = v;
            i++;
        } else if (!strcmp(a, "--device")) {
            o->device = v;
            i++;
        } else if (a[0] == '-') {
            return cnn_error_set(CNN_ERR_USAGE, "tune: unknown option '%s' (see 'cnnviz-cl tune --help')", a);
        } else if (!o->config) {
            o->config = a;
        } else {
            return cnn_error_set(CNN_ERR_USAGE, "tune: unexpected argument '%s' (one pipeline file at most)", a);
        }
    }
    return CNN_OK;
}

typedef struct search {
    candidate *tried;
    int n_tried, cap;
    candidate best;
    double best_ms, default_ms;
    bool have_best;
} search;

static bool already_tried(const search *s, const cnn_tune_params *p)
{
    for (int i = 0; i < s->n_tried; i++)
        if (!s->tried[i].builtin && !memcmp(s->tried[i].p.v, p->v, sizeof p->v) &&
            s->tried[i].p.min_indirect == p->min_indirect)
            return true;
    return false;
}

static int remember(search *s, const candidate *c)
{
    if (s->n_tried == s->cap) {
        int cap = s->cap ? s->cap * 2 : 64;
        candidate *p = cnn_realloc(s->tried, (size_t)cap * sizeof *p);
        if (!p) return CNN_ERR_NOMEM;
        s->tried = p;
        s->cap = cap;
    }
    s->tried[s->n_tried++] = *c;
    return CNN_OK;
}

/* Writes the best explicit set so far (atomically: an interrupted write
 * leaves the previous file). */
static int save_best(const search *s, const char *path, const child_result *dev, int n_done, double flop)
{
    if (!s->have_best || s->best.builtin) return CNN_OK;
    time_t now = time(NULL);
    struct tm tmv;
    char date[64] = "";
    if (localtime_r(&now, &tmv)) strftime(date, sizeof date, "%Y-%m-%d %H:%M", &tmv);
    char note[160];
    snprintf(note, sizeof note, "%d candidate%s measured, %s", n_done, n_done == 1 ? "" : "s", date);
    char *text = cnn_tune_format(&s->best.p, dev->platform, dev->device, dev->driver, flop / s->best_ms / 1e6,
                                 flop / s->default_ms / 1e6, note);
    if (!text) return CNN_ERR_NOMEM;
    char *dir = cnn_path_dir(path);
    int status = dir ? cnn_mkdirs(dir, 0755) : CNN_ERR_NOMEM;
    free(dir);
    if (status == CNN_OK) status = cnn_file_write_atomic(path, text, strlen(text));
    free(text);
    return status;
}

int cnn_cmd_tune(int argc, char **argv)
{
    tune_opts o;
    int status = parse_args(argc, argv, &o);
    if (status != CNN_OK) return status > 0 ? CNN_OK : status;
    shape_set set = {0};
    search s;
    memset(&s, 0, sizeof s);
    char *cache = NULL, *path = NULL;
    status = o.config ? shapes_from_config(o.config, o.batch, &set) : default_shapes(&set);
    if (status < 0) goto out;
    cache = cnn_cl_cache_dir();
    if (!cache) {
        status = cnn_error_set(CNN_ERR_USAGE, "tune: the cache folder is off (CNNVIZ_CACHE_DIR=off) or unknown "
                                              "(no HOME): set CNNVIZ_CACHE_DIR to a folder to keep the result");
        goto out;
    }
    double flop = shapes_flop(&set);
    printf("tune: %d GEMM shape%s from %s at batch %d, %.3f GFLOP per pass:\n", set.n, set.n == 1 ? "" : "s",
           o.config ? o.config : "the default set", o.batch, flop / 1e9);
    for (int i = 0; i < set.n; i++) {
        const gemm_shape *sh = &set.s[i];
        printf("  %6zu x %-6zu x %-6zu%s  x%d  %s%s\n", sh->m, sh->n, sh->k, sh->count > 1 ? " (16 blocks)" : "",
               sh->mult, sh->what, sh->mult > 1 ? ", ..." : "");
    }
    fflush(stdout);

    double start = cnn_now_ms(), budget_ms = o.budget_s * 1000;
    child_job job = {o.platform, o.device, &set, NULL, 0};
    child_result dev, r;
    char why[600];

    /* 1. The defaults: what 'run' uses without a tuning file. */
    candidate base;
    memset(&base, 0, sizeof base);
    base.builtin = true;
    base.label = "defaults";
    job.cand = &base;
    run_outcome oc = run_candidate(&job, budget_ms > 180000 ? budget_ms : 180000, &dev, why, sizeof why);
    if (oc == RUN_INTERRUPTED || cnn_signal_pending()) {
        status = cnn_error_set(CNN_ERR_INTERRUPTED, "tune: interrupted");
        goto out;
    }
    if (oc == RUN_FAILED && (dev.status == CNN_ERR_USAGE || dev.status == CNN_ERR_NODEV)) {
        status = cnn_error_set(dev.status, "tune: %s", why); /* no such device, no OpenCL */
        goto out;
    }
    if (oc != RUN_OK) {
        status = cnn_error_set(CNN_ERR_DEVICE, "tune: the default GEMM parameters failed: %s", why);
        goto out;
    }
    path = cnn_tune_file_path(cache, dev.platform, dev.device, dev.driver);
    if (!path) {
        status = CNN_ERR_NOMEM;
        goto out;
    }
    printf("tune: device '%s' (%s, driver %s); budget %.0f s; result: %s\n", dev.device, dev.platform, dev.driver,
           o.budget_s, path);
    {
        /* The convolution kernels chosen by measurement depend on the GEMM
         * parameters: the next run measures them again. */
        char *choices = cnn_choose_file_path(cache, dev.platform, dev.device, dev.driver);
        if (choices) (void)unlink(choices);
        free(choices);
        cnn_error_clear();
    }
    /* The previous result, read before this search overwrites it. */
    cnn_tune_params prev;
    bool have_prev = false;
    {
        char *text = NULL;
        size_t len = 0;
        have_prev = cnn_file_read(path, 1u << 16, &text, &len) == CNN_OK &&
                    cnn_tune_parse(text, len, dev.platform, dev.device, dev.driver, dev.local_mem,
                                   dev.max_work_group, &prev, NULL, 0);
        cnn_error_clear();
        free(text);
    }
    s.default_ms = s.best_ms = dev.ms;
    s.best = base;
    s.have_best = true;
    if (dev.shipped) { /* the defaults are the shipped explicit set */
        cnn_tune_shipped_defaults(&s.best.p);
        s.best.builtin = false;
        base = s.best;
    }
    CNN_TRY(remember(&s, &base), out);
    int n_done = 1;
    printf("[%3d] %-10s %9.2f ms %8.2f GFLOP/s   best %8.2f  (compile+check %.1f s)\n", n_done, "defaults", dev.ms,
           flop / dev.ms / 1e6, flop / s.best_ms / 1e6, dev.first_ms / 1000);
    fflush(stdout);
    if ((status = save_best(&s, path, &dev, n_done, flop)) < 0) goto out;

    /* 2. Seeds, then neighbours of the best and random sets. */
    candidate seeds[4];
    int n_seeds = 0;
    {
        if (have_prev) seeds[n_seeds++] = (candidate){prev, false, "previous"};
        /* CLBlast's parameters for Intel CPUs and its device-independent
         * default (database order KWG KWI MDIMA MDIMC MWG NDIMB NDIMC NWG SA
         * SB STRM STRN VWM VWN). */
        static const size_t db[2][14] = {{32, 2, 8, 8, 32, 8, 8, 64, 0, 0, 0, 0, 4, 4},
                                         {32, 2, 8, 8, 32, 16, 16, 32, 1, 1, 0, 0, 4, 2}};
        static const int order[14] = {CNN_TP_KWG, CNN_TP_KWI, CNN_TP_MDIMA, CNN_TP_MDIMC, CNN_TP_MWG,
                                      CNN_TP_NDIMB, CNN_TP_NDIMC, CNN_TP_NWG, CNN_TP_SA, CNN_TP_SB,
                                      CNN_TP_STRM, CNN_TP_STRN, CNN_TP_VWM, CNN_TP_VWN};
        for (int d = 0; d < 2; d++) {
            candidate c;
            memset(&c, 0, sizeof c);
            c.p.v[CNN_TP_GEMMK] = 0;
            c.p.v[CNN_TP_KREG] = 1;
            for (int j = 0; j < 14; j++) c.p.v[order[j]] = db[d][j];
            c.label = d ? "clblast" : "clblast-cpu";
            seeds[n_seeds++] = c;
        }
    }
    uint64_t rng = (uint64_t)time(NULL) * 0x9e3779b97f4a7c15ULL ^ (uint64_t)getpid();
    if (!rng) rng = 1;
    int seed_i = 0, failures = 0;
    bool interrupted = false;
    double compile_ms = 8000; /* a candidate's compile + check, the longest seen */
    for (int iter = 0; !interrupted && !cnn_signal_pending(); iter++) {
        double left = budget_ms - (cnn_now_ms() - start);
        if (left < compile_ms + 4 * s.best_ms) break; /* no time for one more */
        candidate c;
        memset(&c, 0, sizeof c);
        bool found = false;
        while (seed_i < n_seeds && !found) {
            c = seeds[seed_i++];
            found = cnn_tune_params_valid(&c.p, dev.local_mem, dev.max_work_group, NULL, 0) && !already_tried(&s, &c.p);
        }
        for (int tries = 0; !found && tries < 200; tries++) {
            bool random = iter % 3 == 2 || s.best.builtin;
            c.builtin = false;
            c.label = random ? "random" : "neighbour";
            if (!cnn_tune_random(&rng, random ? NULL : &s.best.p, dev.local_mem, dev.max_work_group, &c.p)) break;
            c.p.min_indirect = 0;
            found = !already_tried(&s, &c.p);
        }
        if (!found) break;
        CNN_TRY(remember(&s, &c), out);
        /* A candidate may take the compile, a warm-up and up to 7 passes at
         * a few times the best's speed; it is stopped after its first pass
         * when 3x slower than the best. */
        double timeout = 30000 + 12 * s.best_ms;
        if (timeout > left) timeout = left;
        job.cand = &c;
        job.abort_ms = 3 * s.best_ms;
        oc = run_candidate(&job, timeout, &r, why, sizeof why);
        if (cnn_signal_pending()) oc = RUN_INTERRUPTED; /* Ctrl-C also killed the candidate */
        n_done++;
        char ps[300];
        params_str(&c.p, ps, sizeof ps);
        double elapsed = (cnn_now_ms() - start) / 1000;
        if (oc == RUN_INTERRUPTED) {
            interrupted = true;
            break;
        }
        if (oc == RUN_OK && r.ms < s.best_ms) {
            s.best = c;
            s.best_ms = r.ms;
        }
        if ((oc == RUN_OK || oc == RUN_SLOW) && r.first_ms > compile_ms) compile_ms = r.first_ms;
        if (oc == RUN_TIMEOUT && timeout >= left) {
            printf("[%3d] %-10s stopped: out of budget  %s\n", n_done, c.label, ps);
            break;
        }
        if (oc == RUN_OK || oc == RUN_SLOW)
            printf("[%3d] %-10s %9.2f ms %8.2f GFLOP/s   best %8.2f  %s%s  (%.0f/%.0f s)\n", n_done, c.label, r.ms,
                   flop / r.ms / 1e6, flop / s.best_ms / 1e6, ps, oc == RUN_SLOW ? " [stopped: slow]" : "", elapsed,
                   o.budget_s);
        else {
            failures++;
            printf("[%3d] %-10s failed: %s  %s  (%.0f/%.0f s)\n", n_done, c.label, why, ps, elapsed, o.budget_s);
        }
        fflush(stdout);
        if ((status = save_best(&s, path, &dev, n_done, flop)) < 0) goto out;
    }

    /* 3. XGEMM_MIN_INDIRECT_SIZE: only where a shape would change kernels. */
    if (!interrupted && !cnn_signal_pending() && !s.best.builtin) {
        static const size_t thresholds[] = {16, 64, 128, 256};
        size_t current = s.best.p.min_indirect ? s.best.p.min_indirect : 64;
        for (size_t t = 0; t < sizeof thresholds / sizeof thresholds[0]; t++) {
            size_t th = thresholds[t];
            if (th == current) continue;
            size_t lo = th < current ? th : current, hi = th < current ? current : th;
            bool moves = false;
            for (int i = 0; i < set.n; i++) {
                double v = (double)set.s[i].m * (double)set.s[i].n * (double)set.s[i].k;
                moves |= v >= (double)lo * lo * lo && v < (double)hi * hi * hi;
            }
            if (!moves) continue;
            double left = budget_ms - (cnn_now_ms() - start);
            if (left < compile_ms + 4 * s.best_ms) break;
            candidate c = s.best;
            c.p.min_indirect = th;
            c.label = "threshold";
            job.cand = &c;
            job.abort_ms = 3 * s.best_ms;
            double timeout = 30000 + 12 * s.best_ms;
            oc = run_candidate(&job, timeout > left ? left : timeout, &r, why, sizeof why);
            if (cnn_signal_pending()) oc = RUN_INTERRUPTED;
            n_done++;
            if (oc == RUN_INTERRUPTED) {
                interrupted = true;
                break;
            }
            if (oc == RUN_OK && r.ms < s.best_ms) {
                s.best = c;
                s.best_ms = r.ms;
            }
            if (oc == RUN_OK || oc == RUN_SLOW)
                printf("[%3d] %-10s %9.2f ms %8.2f GFLOP/s   best %8.2f  XGEMM_MIN_INDIRECT_SIZE %zu\n", n_done,
                       c.label, r.ms, flop / r.ms / 1e6, flop / s.best_ms / 1e6, th);
            else
                printf("[%3d] %-10s failed: %s  XGEMM_MIN_INDIRECT_SIZE %zu\n", n_done, c.label, why, th);
            fflush(stdout);
            if ((status = save_best(&s, path, &dev, n_done, flop)) < 0) goto out;
        }
    }

    char ps[300];
    params_str(&s.best.p, ps, sizeof ps);
    double g_best = flop / s.best_ms / 1e6, g_def = flop / s.default_ms / 1e6;
    if (s.best.builtin) {
        printf("tune: nothing beat CLBlast's own parameters (%.2f GFLOP/s) in %d candidates; no file written\n",
               g_def, n_done);
    } else {
        printf("tune: best %.2f GFLOP/s against %.2f with the defaults (%.2fx) after %d candidates (%d failed):\n"
               "  %s\n"
               "tune: saved to %s (delete it to undo)\n",
               g_best, g_def, g_best / g_def, n_done, failures, ps, path);
    }
    if (interrupted || cnn_signal_pending())
        status = cnn_error_set(CNN_ERR_INTERRUPTED, "tune: interrupted; the best set so far is kept");
out:
    free(set.s);
    free(s.tried);
    free(cache);
    free(path);
    return status;
}
