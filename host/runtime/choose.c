#define _POSIX_C_SOURCE 200809L /* strtok_r */
#include "runtime/choose.h"
#include "core/error.h"
#include "core/util.h"
#include "ops/ops.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HEADER "cnnviz-cl-choices 1"
#define FILE_MAX ((size_t)1 << 20)
#define NKEY 9

typedef struct entry {
    int key[NKEY]; /* ci hi wi co pt pb pl pr batch */
    int winograd;
    double ms_im2col, ms_winograd;
} entry;

typedef struct table {
    entry *e;
    int n, cap;
} table;

char *cnn_choose_file_path(const char *cache_dir, const char *platform, const char *device, const char *driver)
{
    return cnn_device_file_path(cache_dir, "choices", platform, device, driver);
}

static const entry *find(const table *t, const int *key)
{
    for (int i = 0; i < t->n; i++)
        if (!memcmp(t->e[i].key, key, sizeof t->e[i].key)) return &t->e[i];
    return NULL;
}

static int add(table *t, const entry *e)
{
    if (find(t, e->key)) return CNN_OK; /* the first entry for a shape wins */
    if (t->n == t->cap) {
        int cap = t->cap ? 2 * t->cap : 16;
        entry *ne = realloc(t->e, (size_t)cap * sizeof *ne);
        if (!ne) return cnn_error_set(CNN_ERR_NOMEM, "out of memory");
        t->e = ne;
        t->cap = cap;
    }
    t->e[t->n++] = *e;
    return CNN_OK;
}

/* Reads the file into t.  A missing file is empty; a file of another
 * format, or lines that do not parse, are ignored (the shapes are
 * measured again and the file rewritten). */
static int load(const char *path, table *t)
{
    char *text = NULL;
    size_t len = 0;
    if (cnn_file_read(path, FILE_MAX, &text, &len) < 0) {
        cnn_error_clear();
        return CNN_OK;
    }
    int status = CNN_OK;
    char *save = NULL;
    char *line = strtok_r(text, "\n", &save);
    if (!line || strcmp(line, HEADER) != 0) goto done;
    while ((line = strtok_r(NULL, "\n", &save)) != NULL && status == CNN_OK) {
        entry e;
        char choice[16];
        int used = 0;
        if (line[0] == '#') continue;
        if (sscanf(line, "%d %d %d %d %d %d %d %d %d %15s %lf %lf%n", &e.key[0], &e.key[1], &e.key[2], &e.key[3],
                   &e.key[4], &e.key[5], &e.key[6], &e.key[7], &e.key[8], choice, &e.ms_im2col, &e.ms_winograd,
                   &used) != 12 || line[used] != '\0')
            continue;
        if (!strcmp(choice, "winograd")) e.winograd = 1;
        else if (!strcmp(choice, "im2col")) e.winograd = 0;
        else continue;
        status = add(t, &e);
    }
done:
    free(text);
    return status;
}

static int save(const char *path, const table *t)
{
    size_t cap = 256 + (size_t)t->n * 192, len = 0;
    char *text = malloc(cap);
    if (!text) return cnn_error_set(CNN_ERR_NOMEM, "out of memory");
    len = (size_t)snprintf(text, cap,
                            HEADER "\n# which kernel each 3x3 stride-1 convolution shape runs on this device,\n"
                                   "# measured by cnnviz-cl run (delete the file to measure again)\n"
                                   "# ci hi wi co pt pb pl pr batch choice im2col_ms winograd_ms\n");
    for (int i = 0; i < t->n && len < cap; i++) {
        const entry *e = &t->e[i];
        /* times are informative: kept in a range that prints short */
        double ti = e->ms_im2col >= 0 && e->ms_im2col < 1e6 ? e->ms_im2col : -1;
        double tw = e->ms_winograd >= 0 && e->ms_winograd < 1e6 ? e->ms_winograd : -1;
        int w = snprintf(text + len, cap - len, "%d %d %d %d %d %d %d %d %d %s %.3f %.3f\n", e->key[0], e->key[1],
                         e->key[2], e->key[3], e->key[4], e->key[5], e->key[6], e->key[7], e->key[8],
                         e->winograd ? "winograd" : "im2col", ti, tw);
        if (w < 0 || (size_t)w >= cap - len) break; /* cannot happen with the sizes above; never past the end */
        len += (size_t)w;
    }
    int status = CNN_OK;
    char *dir = cnn_path_dir(path);
    if (!dir) status = CNN_ERR_NOMEM;
    if (status == CNN_OK) status = cnn_mkdirs(dir, 0755);
    if (status == CNN_OK) status = cnn_file_write_atomic(path, text, len);
    free(dir);
    free(text);
    return status;
}

/* The batch a shape is measured (and keyed) at: the run's batch, capped so
 * that one measurement stays near a 256 x 256 map. */
static int measure_batch(const cnn_conv_geom *g, int max_batch)
{
    long px = (long)g->ho * g->wo, cap = px > 0 ? 65536 / px : 1;
    if (cap < 1) cap = 1;
    return max_batch < cap ? max_batch : (int)cap;
}

static void key_of(const cnn_conv_geom *g, int batch, int *key)
{
    int k[NKEY] = {g->ci, g->hi, g->wi, g->co, g->pt, g->pb, g->pl, g->pr, batch};
    memcpy(key, k, sizeof k);
}

static bool candidate(const cnn_conv_geom *g, int batch, bool own, cnn_conv_pack *im2col, cnn_conv_pack *wino)
{
    return cnn_op_conv2d_pack_plain(g, batch, own, im2col) && !im2col->winograd &&
           cnn_op_conv2d_pack_winograd(g, batch, own, wino) && wino->winograd;
}

static size_t max_sz(size_t a, size_t b) { return a > b ? a : b; }

static int fill_random(cnn_cl *cl, cl_mem buf, size_t count, uint32_t seed, const char *layer)
{
    float *h = malloc((count ? count : 1) * sizeof(float));
    if (!h) return cnn_error_set(CNN_ERR_NOMEM, "out of memory");
    uint32_t s = seed * 2654435761u + 1u;
    for (size_t i = 0; i < count; i++) {
        s = s * 1664525u + 1013904223u;
        h[i] = (float)((double)(s >> 8) / 8388608.0 - 1.0) * 0.5f; /* [-0.5, 0.5) */
    }
    int status = cnn_cl_write(cl, buf, 0, count * sizeof(float), h, layer);
    free(h);
    return status;
}

static int timed(cnn_cl *cl, const cnn_conv_geom *g, const cnn_conv_pack *pk, int n, cl_mem x, cl_mem w, cl_mem b,
                 cl_mem y, cl_mem col, cl_mem out, const char *layer, double *ms)
{
    double t0 = cnn_now_ms();
    int status = cnn_op_conv2d_packed(cl, g, pk, n, x, w, b, CNN_ACT_RELU, 0.0f, y, col, out, layer);
    if (status == CNN_OK) {
        cl_int err = clFinish(cl->queue);
        if (err != CL_SUCCESS)
            return cnn_error_set(CNN_ERR_DEVICE, "clFinish failed: %s (measuring layer '%s')", cnn_cl_error_name(err),
                                 layer);
    }
    double t = cnn_now_ms() - t0;
    if (t < *ms) *ms = t;
    return status;
}

/* Times both kernels on random data: one untimed run each, then
 * alternating timed runs, best of two (of one when one takes more than
 * 1.5x the other: the choice is clear). */
static int measure(cnn_cl *cl, const cnn_conv_geom *g, int n, const cnn_conv_pack *pi, const cnn_conv_pack *pw,
                   const char *layer, entry *e)
{
    size_t nx = (size_t)n * g->ci * g->hi * g->wi, ny = (size_t)n * g->co * g->ho * g->wo;
    size_t nw = max_sz(cnn_op_conv2d_packed_weights(pi), cnn_op_conv2d_packed_weights(pw));
    size_t ncol = max_sz(cnn_op_conv2d_packed_col(g, pi, n), cnn_op_conv2d_packed_col(g, pw, n));
    size_t nout = max_sz(cnn_op_conv2d_packed_out(g, pi, n), cnn_op_conv2d_packed_out(g, pw, n));
    cl_mem x = NULL, w = NULL, b = NULL, y = NULL, col = NULL, out = NULL;
    int status = CNN_OK;
    CNN_TRY(cnn_cl_buffer(cl, nx * sizeof(float), &x, layer), done);
    CNN_TRY(cnn_cl_buffer(cl, nw * sizeof(float), &w, layer), done);
    CNN_TRY(cnn_cl_buffer(cl, (size_t)g->co * sizeof(float), &b, layer), done);
    CNN_TRY(cnn_cl_buffer(cl, ny * sizeof(float), &y, layer), done);
    CNN_TRY(cnn_cl_buffer(cl, (ncol ? ncol : 1) * sizeof(float), &col, layer), done);
    CNN_TRY(cnn_cl_buffer(cl, nout * sizeof(float), &out, layer), done);
    CNN_TRY(fill_random(cl, x, nx, 1, layer), done);
    CNN_TRY(fill_random(cl, w, nw, 2, layer), done);
    CNN_TRY(fill_random(cl, b, (size_t)g->co, 3, layer), done);
    /* The first runs build the kernels and touch fresh memory: untimed. */
    double warm = 1e300, ti = 1e300, tw = 1e300;
    CNN_TRY(timed(cl, g, pi, n, x, w, b, y, col, out, layer, &warm), done);
    CNN_TRY(timed(cl, g, pw, n, x, w, b, y, col, out, layer, &warm), done);
    for (int r = 0; r < 2; r++) {
        CNN_TRY(timed(cl, g, pi, n, x, w, b, y, col, out, layer, &ti), done);
        CNN_TRY(timed(cl, g, pw, n, x, w, b, y, col, out, layer, &tw), done);
        if (ti > 1.5 * tw || tw > 1.5 * ti) break;
    }
    e->ms_im2col = ti;
    e->ms_winograd = tw;
    e->winograd = tw < ti;
done:
    if (x) clReleaseMemObject(x);
    if (w) clReleaseMemObject(w);
    if (b) clReleaseMemObject(b);
    if (y) clReleaseMemObject(y);
    if (col) clReleaseMemObject(col);
    if (out) clReleaseMemObject(out);
    return status;
}

int cnn_choose_convs(cnn_cl *cl, const cnn_graph *g, int max_batch, signed char *wino, int *measured)
{
    for (int i = 0; i < g->n; i++) wino[i] = -1;
    if (measured) *measured = 0;
    const char *env = getenv("CNNVIZ_CHOOSE");
    if (env && !strcmp(env, "0")) return CNN_OK;
    env = getenv("CNNVIZ_WINOGRAD");
    if (env && !strcmp(env, "0")) return CNN_OK;
    char *dir = cnn_cl_cache_dir();
    if (!dir) {
        cnn_error_clear();
        return CNN_OK;
    }
    /* Measured with the GEMM the run uses: CLBlast's (whose tuning, when
     * it changes, deletes this file) or the own CPU kernel's, kept apart. */
    char *path = cl->own_gemm ? cnn_device_file_path(dir, "choices-own-gemm", cl->platform_name, cl->device_name,
                                                     cl->driver_version)
                              : cnn_choose_file_path(dir, cl->platform_name, cl->device_name, cl->driver_version);
    free(dir);
    if (!path) return CNN_ERR_NOMEM;
    table t = {0};
    int status = load(path, &t), fresh = 0;
    for (int i = 0; i < g->n && status == CNN_OK; i++) {
        const cnn_layer *l = &g->layers[i];
        if (l->spec->op != CNN_OP_CONV2D) continue;
        int batch = measure_batch(&l->conv, max_batch);
        /* both layouts exist at the run's batch (planned) and at the measured one */
        cnn_conv_pack pi, pw, mi, mw;
        if (!candidate(&l->conv, max_batch, cl->own_gemm, &pi, &pw) ||
            !candidate(&l->conv, batch, cl->own_gemm, &mi, &mw))
            continue;
        entry e;
        key_of(&l->conv, batch, e.key);
        const entry *have = find(&t, e.key);
        if (!have) {
            status = measure(cl, &l->conv, batch, &mi, &mw, l->spec->name, &e);
            if (status == CNN_OK) status = add(&t, &e);
            if (status < 0) break;
            fresh++;
            have = find(&t, e.key);
        }
        wino[i] = (signed char)have->winograd;
    }
    if (status == CNN_OK && fresh) {
        /* Another run may have written meanwhile: its entries are kept,
         * and for a shape both measured, the file's wins from now on. */
        table merged = {0};
        status = load(path, &merged);
        for (int i = 0; i < t.n && status == CNN_OK; i++) status = add(&merged, &t.e[i]);
        if (status == CNN_OK && save(path, &merged) < 0) {
            cnn_warn("%s; the kernel choices will be measured again next run", cnn_error_message());
            cnn_error_clear();
        }
        free(merged.e);
    }
    if (measured) *measured = fresh;
    free(t.e);
    free(path);
    return status;
}
