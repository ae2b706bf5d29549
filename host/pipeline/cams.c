/* The CAM family's methods with forward passes of their own
 * (pipeline/methods.h): Score-CAM (Wang et al. 2020), Ablation-CAM (Desai
 * and Ramaswamy 2020) and Eigen-CAM (Muhammad and Yeasin 2020).  Each runs
 * after the batch's shared maps, one image at a time: one forward of the
 * image's saved input for the layer's tensor, then (Score-CAM,
 * Ablation-CAM) one forward per channel, in batches of the network's size.
 * configs/README.md gives each formula. */
#include "pipeline/methods.h"
#include "core/error.h"
#include "core/log.h"
#include "core/util.h"
#include "viz/gradmap.h"
#include "viz/vizops.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Image b's tensor at tap t's layer ([c, h, w]) into s->acts: a forward of
 * its saved input alone. */
static int layer_tensor(cnn_job *s, const cnn_vtap *t, int b, const char *what)
{
    const cnn_graph *g = &s->l.graph;
    size_t len = (size_t)g->in_c * cnn_job_px(s);
    size_t numel = cnn_layer_numel(&g->layers[t->layer]);
    int status = CNN_OK;
    CNN_CL_TRY(clEnqueueCopyBuffer(s->cl.queue, s->xsave, s->net.input, (size_t)b * len * sizeof(float), 0,
                                   len * sizeof(float), 0, NULL, NULL),
               what, done);
    CNN_TRY(cnn_net_forward(&s->net, 1), done);
    CNN_CL_TRY(clEnqueueCopyBuffer(s->cl.queue, cnn_net_buffer(&s->net, t->layer), s->acts, 0, 0,
                                   numel * sizeof(float), 0, NULL, NULL),
               what, done);
done:
    return status;
}

/* Draws the map of a layer-resolution CAM already in s->cams (image b's
 * slot 0): upsampled to the input into s->maps, the raw map for .npy. */
static int emit_cam(cnn_job *s, cnn_vtap *t, int b, int k, int cls, const char *note, const char *what)
{
    const cnn_graph *g = &s->l.graph;
    const cnn_layer *ly = &g->layers[t->layer];
    CNN_TRY_RET(cnn_gm_resize(&s->cl, s->cams, 0, 1, ly->h, ly->w, s->maps, 0, g->in_h, g->in_w, what));
    return cnn_method_emit(s, t, b, k, cls, s->maps, 0, s->cams, 0, ly->h, ly->w, note);
}

/* ReLU(sum_k w_k A_k) of the tensor in s->acts with the host weights w
 * (c of them), drawn for class cls. */
static int emit_weighted(cnn_job *s, cnn_vtap *t, int b, int k, int cls, const double *w, const char *note,
                         const char *what)
{
    const cnn_layer *ly = &s->l.graph.layers[t->layer];
    float *wf = cnn_malloc((size_t)ly->c * sizeof *wf);
    if (!wf) return CNN_ERR_NOMEM;
    for (int i = 0; i < ly->c; i++) wf[i] = (float)w[i];
    int status = cnn_cl_write(&s->cl, s->camw, 0, (size_t)ly->c * sizeof(float), wf, what);
    free(wf);
    if (status == CNN_OK)
        status = cnn_gm_cam(&s->cl, CNN_CAM_WEIGHTED, s->acts, 0, NULL, 0, 1, ly->c, ly->h * ly->w, s->camw, s->cams,
                            0, what);
    if (status == CNN_OK) status = emit_cam(s, t, b, k, cls, note, what);
    return status;
}

static int n_targets(const cnn_vtap *t) { return t->cls_fixed >= 0 ? 1 : t->topk; }

/* The scores of every target of image b for each of the c copies run by
 * `fill` (which writes copies [k0, k0 + m) into the network input and
 * runs them): sc[r * c + j]. */
typedef int (*fill_fn)(cnn_job *s, cnn_vtap *t, int b, int k0, int m, const char *what);

static int score_copies(cnn_job *s, cnn_vtap *t, int b, int c, fill_fn fill, double *sc, const char *what)
{
    const cnn_graph *g = &s->l.graph;
    size_t nout = cnn_layer_numel(&g->layers[g->n - 1]);
    float *lg = cnn_malloc((size_t)s->chunk * nout * sizeof *lg);
    if (!lg) return CNN_ERR_NOMEM;
    int status = CNN_OK, nt = n_targets(t);
    for (int k0 = 0; k0 < c && status == CNN_OK; k0 += s->chunk) {
        int m = c - k0 < s->chunk ? c - k0 : s->chunk;
        if ((status = cnn_job_interrupted(s)) < 0) break;
        status = fill(s, t, b, k0, m, what);
        if (status == CNN_OK) status = cnn_net_read(&s->net, g->n - 1, m, lg);
        for (int r = 0; r < nt && status == CNN_OK; r++) {
            int cls = cnn_method_target(s, t, b, r);
            for (int j = 0; j < m; j++) sc[(size_t)r * c + k0 + j] = cnn_method_score(lg + (size_t)j * nout, nout, cls, t->prob);
        }
    }
    free(lg);
    return status;
}

/* ---------------------------------------------------------------------- */
/* Score-CAM                                                              */

/* Copies [k0, k0 + m): the input times channel k's map, upsampled to the
 * input (align_corners=True, as torch.nn.UpsamplingBilinear2d) and
 * min-max normalised. */
static int score_fill(cnn_job *s, cnn_vtap *t, int b, int k0, int m, const char *what)
{
    const cnn_graph *g = &s->l.graph;
    const cnn_layer *ly = &g->layers[t->layer];
    int px = cnn_job_px(s);
    size_t len = (size_t)g->in_c * px;
    CNN_TRY_RET(cnn_gm_resize_ex(&s->cl, s->acts, (size_t)k0 * ly->h * ly->w, m, ly->h, ly->w, s->maps, 0, g->in_h,
                                 g->in_w, true, what));
    CNN_TRY_RET(cnn_viz_stats(&s->viz.viz, s->maps, 0, (size_t)px, (size_t)px, m, s->mstats, what));
    CNN_TRY_RET(cnn_gm_score_inputs(&s->cl, s->xsave, (size_t)b * len, g->in_c, px, s->maps, m, s->mstats,
                                    s->net.input, what));
    return cnn_net_forward(&s->net, m);
}

/* Weights: the softmax over channels of the masked inputs' scores. */
int cnn_method_scorecam_passes(cnn_job *s, cnn_vtap *t, int b, int k, const float *logits0)
{
    (void)logits0;
    char what[256];
    snprintf(what, sizeof what, "%s scorecam", t->layer_name);
    int c = s->l.graph.layers[t->layer].c, nt = n_targets(t);
    CNN_TRY_RET(layer_tensor(s, t, b, what));
    double *sc = cnn_malloc((size_t)nt * c * sizeof *sc), *w = cnn_malloc((size_t)c * sizeof *w);
    int status = sc && w ? CNN_OK : CNN_ERR_NOMEM;
    if (status == CNN_OK) status = score_copies(s, t, b, c, score_fill, sc, what);
    for (int r = 0; r < nt && status == CNN_OK; r++) {
        const double *v = sc + (size_t)r * c;
        double mx = -INFINITY, sum = 0;
        for (int i = 0; i < c; i++) mx = fmax(mx, v[i]);
        for (int i = 0; i < c; i++) sum += (w[i] = exp(v[i] - mx));
        for (int i = 0; i < c; i++) w[i] /= sum;
        char note[160];
        snprintf(note, sizeof note, "score-cam: %d masked copies of the input, weights softmax of their %s", c,
                 t->prob ? "probabilities" : "logits");
        status = emit_weighted(s, t, b, k, cnn_method_target(s, t, b, r), w, note, what);
    }
    free(sc);
    free(w);
    return status;
}

/* ---------------------------------------------------------------------- */
/* Ablation-CAM                                                           */

/* Copies [k0, k0 + m): the input's forward with channel k0 + j of the
 * layer's output set to 0 in copy j before the layers above it run.  The
 * layers up to the ablated one are the same for every copy: they run once,
 * on the image alone, and each tensor a layer above reads from them (the
 * ablated layer's, a skip connection's) is copied to the m copies; only the
 * layers above run on the batch. */
static int ablate_fill(cnn_job *s, cnn_vtap *t, int b, int k0, int m, const char *what)
{
    const cnn_graph *g = &s->l.graph;
    const cnn_layer *ly = &g->layers[t->layer];
    size_t len = (size_t)g->in_c * cnn_job_px(s);
    int status = CNN_OK;
    CNN_CL_TRY(clEnqueueCopyBuffer(s->cl.queue, s->xsave, s->net.input, (size_t)b * len * sizeof(float), 0,
                                   len * sizeof(float), 0, NULL, NULL),
               what, done);
    CNN_TRY(cnn_net_forward_range(&s->net, 0, t->layer + 1, 1), done);
    for (int i = CNN_GRAPH_INPUT; i <= t->layer; i++) {
        bool read_above = false;
        for (int r = t->layer + 1; r < g->n && !read_above; r++)
            for (int q = 0; q < g->layers[r].n_in; q++) read_above |= g->layers[r].in[q] == i;
        if (!read_above) continue;
        cl_mem buf = i == CNN_GRAPH_INPUT ? s->net.input : cnn_net_buffer(&s->net, i);
        size_t bytes = (i == CNN_GRAPH_INPUT ? len : cnn_layer_numel(&g->layers[i])) * sizeof(float);
        for (int j = 1; j < m; j++)
            CNN_CL_TRY(clEnqueueCopyBuffer(s->cl.queue, buf, buf, 0, (size_t)j * bytes, bytes, 0, NULL, NULL), what,
                       done);
    }
    CNN_TRY(cnn_gm_ablate(&s->cl, cnn_net_buffer(&s->net, t->layer), 0, ly->c, ly->h * ly->w, k0, m, what), done);
    CNN_TRY(cnn_net_forward_range(&s->net, t->layer + 1, g->n, m), done);
done:
    return status;
}

/* Weights: (y - y_k) / y, y the score, y_k the score with channel k
 * ablated. */
int cnn_method_ablationcam_passes(cnn_job *s, cnn_vtap *t, int b, int k, const float *logits0)
{
    char what[256];
    snprintf(what, sizeof what, "%s ablationcam", t->layer_name);
    const cnn_graph *g = &s->l.graph;
    size_t nout = cnn_layer_numel(&g->layers[g->n - 1]);
    int c = g->layers[t->layer].c, nt = n_targets(t);
    CNN_TRY_RET(layer_tensor(s, t, b, what));
    double *sc = cnn_malloc((size_t)nt * c * sizeof *sc), *w = cnn_malloc((size_t)c * sizeof *w);
    int status = sc && w ? CNN_OK : CNN_ERR_NOMEM;
    if (status == CNN_OK) status = score_copies(s, t, b, c, ablate_fill, sc, what);
    for (int r = 0; r < nt && status == CNN_OK; r++) {
        int cls = cnn_method_target(s, t, b, r);
        double y = cnn_method_score(logits0, nout, cls, t->prob);
        for (int i = 0; i < c; i++) w[i] = (y - sc[(size_t)r * c + i]) / y;
        char note[160];
        snprintf(note, sizeof note, "ablation-cam: %d channels ablated one at a time, %s %.6g", c,
                 t->prob ? "probability" : "logit", y);
        status = emit_weighted(s, t, b, k, cls, w, note, what);
    }
    free(sc);
    free(w);
    return status;
}

/* ---------------------------------------------------------------------- */
/* Eigen-CAM                                                              */

/* Cyclic Jacobi rotations on the symmetric n x n matrix a (destroyed): its
 * largest eigenvalue and a unit eigenvector of it (vec, n). */
static int top_eigen(double *a, int n, double *vec, double *val)
{
    double *v = cnn_calloc((size_t)n * n, sizeof *v);
    if (!v) return CNN_ERR_NOMEM;
    for (int i = 0; i < n; i++) v[(size_t)i * n + i] = 1;
    double total = 0;
    for (size_t i = 0; i < (size_t)n * n; i++) total += a[i] * a[i];
    for (int sweep = 0; sweep < 100; sweep++) {
        double off = 0;
        for (int p = 0; p < n; p++)
            for (int q = p + 1; q < n; q++) off += a[(size_t)p * n + q] * a[(size_t)p * n + q];
        if (off <= 1e-30 * total) break;
        for (int p = 0; p < n; p++)
            for (int q = p + 1; q < n; q++) {
                double apq = a[(size_t)p * n + q];
                if (apq == 0) continue;
                double theta = (a[(size_t)q * n + q] - a[(size_t)p * n + p]) / (2 * apq);
                double t = (theta >= 0 ? 1.0 : -1.0) / (fabs(theta) + sqrt(theta * theta + 1));
                double c = 1 / sqrt(t * t + 1), s = t * c;
                for (int k = 0; k < n; k++) { /* columns p, q of a J */
                    double akp = a[(size_t)k * n + p], akq = a[(size_t)k * n + q];
                    a[(size_t)k * n + p] = c * akp - s * akq;
                    a[(size_t)k * n + q] = s * akp + c * akq;
                }
                for (int k = 0; k < n; k++) { /* rows p, q of J^T (a J) */
                    double apk = a[(size_t)p * n + k], aqk = a[(size_t)q * n + k];
                    a[(size_t)p * n + k] = c * apk - s * aqk;
                    a[(size_t)q * n + k] = s * apk + c * aqk;
                }
                for (int k = 0; k < n; k++) { /* V J */
                    double vkp = v[(size_t)k * n + p], vkq = v[(size_t)k * n + q];
                    v[(size_t)k * n + p] = c * vkp - s * vkq;
                    v[(size_t)k * n + q] = s * vkp + c * vkq;
                }
            }
    }
    int best = 0;
    for (int i = 1; i < n; i++)
        if (a[(size_t)i * n + i] > a[(size_t)best * n + best]) best = i;
    *val = a[(size_t)best * n + best];
    for (int k = 0; k < n; k++) vec[k] = v[(size_t)k * n + best];
    free(v);
    return CNN_OK;
}

/* The projection of the centred activations X [plane, c] (X[p, k] = A[k,
 * p] minus channel k's mean; NaN as 0) on their first right singular
 * vector v: proj = X v (plane values), from the eigenvectors of the smaller
 * of X X^T and X^T X.  The singular vector's sign is not defined; it is
 * chosen so that proj correlates positively with the pixels' total
 * activation (sum over k of X[p, k]): positive where the layer is more
 * active.  Returns the share of the variance the component explains. */
static int first_component(const float *acts, int c, int plane, double *proj, double *share)
{
    double *x = cnn_malloc((size_t)plane * c * sizeof *x);
    int n = plane <= c ? plane : c;
    double *m = cnn_malloc((size_t)n * n * sizeof *m), *vec = cnn_malloc((size_t)n * sizeof *vec);
    int status = x && m && vec ? CNN_OK : CNN_ERR_NOMEM;
    if (status == CNN_OK) {
        for (int k = 0; k < c; k++) {
            double mean = 0;
            for (int p = 0; p < plane; p++) {
                double v = acts[(size_t)k * plane + p];
                x[(size_t)p * c + k] = isnan(v) ? 0.0 : v;
                mean += x[(size_t)p * c + k];
            }
            mean /= plane;
            for (int p = 0; p < plane; p++) x[(size_t)p * c + k] -= mean;
        }
        double trace = 0;
        for (int i = 0; i < n; i++)
            for (int j = i; j < n; j++) {
                double sum = 0;
                if (plane <= c)
                    for (int k = 0; k < c; k++) sum += x[(size_t)i * c + k] * x[(size_t)j * c + k];
                else
                    for (int p = 0; p < plane; p++) sum += x[(size_t)p * c + i] * x[(size_t)p * c + j];
                m[(size_t)i * n + j] = m[(size_t)j * n + i] = sum;
                if (i == j) trace += sum;
            }
        double val = 0;
        status = top_eigen(m, n, vec, &val);
        if (status == CNN_OK) {
            for (int p = 0; p < plane; p++) {
                double sum = 0;
                if (plane <= c)
                    sum = vec[p] * sqrt(val > 0 ? val : 0);
                else
                    for (int k = 0; k < c; k++) sum += x[(size_t)p * c + k] * vec[k];
                proj[p] = sum;
            }
            double corr = 0, big = 0;
            int at = 0;
            for (int p = 0; p < plane; p++) {
                double tot = 0;
                for (int k = 0; k < c; k++) tot += x[(size_t)p * c + k];
                corr += proj[p] * tot;
                if (fabs(proj[p]) > big) big = fabs(proj[p]), at = p;
            }
            if (corr < 0 || (corr == 0 && proj[at] < 0))
                for (int p = 0; p < plane; p++) proj[p] = -proj[p];
            *share = trace > 0 ? val / trace : 0;
        }
    }
    free(x);
    free(m);
    free(vec);
    return status;
}

/* The map: ReLU of the first principal component's projection (the same
 * for every target class: Eigen-CAM does not look at the class). */
int cnn_method_eigencam_passes(cnn_job *s, cnn_vtap *t, int b, int k, const float *logits0)
{
    (void)logits0;
    char what[256];
    snprintf(what, sizeof what, "%s eigencam", t->layer_name);
    const cnn_layer *ly = &s->l.graph.layers[t->layer];
    int plane = ly->h * ly->w, c = ly->c;
    CNN_TRY_RET(layer_tensor(s, t, b, what));
    float *a = cnn_malloc((size_t)c * plane * sizeof *a), *mapf = cnn_malloc((size_t)plane * sizeof *mapf);
    double *proj = cnn_malloc((size_t)plane * sizeof *proj), share = 0;
    int status = a && mapf && proj ? CNN_OK : CNN_ERR_NOMEM;
    if (status == CNN_OK) status = cnn_cl_read(&s->cl, s->acts, 0, (size_t)c * plane * sizeof(float), a, what);
    if (status == CNN_OK) status = first_component(a, c, plane, proj, &share);
    if (status == CNN_OK) {
        for (int p = 0; p < plane; p++) mapf[p] = proj[p] > 0 ? (float)proj[p] : 0.0f;
        status = cnn_cl_write(&s->cl, s->cams, 0, (size_t)plane * sizeof(float), mapf, what);
    }
    char note[160];
    snprintf(note, sizeof note, "eigen-cam: the first principal component of %d channels, %.1f%% of their variance", c,
             100.0 * share);
    for (int r = 0; r < n_targets(t) && status == CNN_OK; r++)
        status = emit_cam(s, t, b, k, cnn_method_target(s, t, b, r), note, what);
    free(a);
    free(mapf);
    free(proj);
    return status;
}
