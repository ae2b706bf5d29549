/* The model randomisation check of Adebayo et al., "Sanity Checks for
 * Saliency Maps" (NeurIPS 2018), cascading from the top: after a batch's
 * outputs, the weights of the top conv / linear layer are replaced by
 * random ones and every attribution map of the batch is computed again
 * (same inputs, same target classes), then the next layer down as well,
 * and so on for N layers.  A map that explains the model changes as its
 * weights go; one that stays the same (an edge detector) does not depend
 * on what the model learnt.  Each step's similarity is the Spearman rank
 * correlation of the map at the input's size with the map drawn.
 *
 * Random weights: N(0, sd^2) with sd the layer's own weights' standard
 * deviation (the scale stays, the learnt structure goes), from
 * Philox2x32-10 of (weight index, layer index) with key 0x5a17 and
 * Box-Muller; biases are kept.  The network is built for the backward
 * (nothing folded) whenever --sanity is asked, so the file's weights are
 * on the device as they are; they are read back once and written again
 * after each batch's steps. */
#include "pipeline/job_impl.h"
#include "pipeline/methods.h"
#include "core/error.h"
#include "core/log.h"
#include "core/util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define SANITY_KEY 0x5a17u

typedef struct sanity_map {
    int entry;  /* manifest index of the map's PNG (-1: none) */
    float *ref; /* [px] the map as drawn */
    float *rho; /* [n_san_layer] Spearman after each step */
} sanity_map;

int cnn_sanity_prepare(cnn_job *s)
{
    if (s->o.sanity <= 0 || s->san_layer) return CNN_OK;
    if (!s->attrib)
        return cnn_error_set(CNN_ERR_USAGE, "--sanity %d: the run has no attribution maps to check (add one with "
                             "--tap input:saliency or LAYER:gradcam)", s->o.sanity);
    const cnn_graph *g = &s->l.graph;
    s->san_layer = cnn_calloc((size_t)s->o.sanity, sizeof *s->san_layer);
    s->san_orig = cnn_calloc((size_t)s->o.sanity, sizeof *s->san_orig);
    if (!s->san_layer || !s->san_orig) return CNN_ERR_NOMEM;
    for (int i = g->n - 1; i >= 0 && s->n_san_layer < s->o.sanity; i--) {
        const cnn_layer *l = &g->layers[i];
        if ((cnn_layer_is_conv(l) || l->spec->op == CNN_OP_LINEAR) && l->n_weight)
            s->san_layer[s->n_san_layer++] = i;
    }
    if (s->n_san_layer < s->o.sanity)
        return cnn_error_set(CNN_ERR_USAGE, "--sanity %d: %s has only %d conv and linear layers", s->o.sanity,
                             s->o.config, s->n_san_layer);
    /* the file's weights on the device as they are, unfolded */
    s->gradients = true;
    return CNN_OK;
}

void cnn_sanity_free(cnn_job *s)
{
    for (int i = 0; i < s->n_san; i++) {
        free(s->san[i].ref);
        free(s->san[i].rho);
    }
    free(s->san);
    s->san = NULL;
    s->n_san = s->cap_san = 0;
    for (int k = 0; k < s->n_san_layer && s->san_orig; k++) free(s->san_orig[k]);
    free(s->san_orig);
    free(s->san_layer);
    s->san_orig = NULL;
    s->san_layer = NULL;
    s->n_san_layer = 0;
}

typedef struct rv {
    double v;
    size_t i;
} rv;

static int cmp_rv(const void *pa, const void *pb)
{
    const rv *a = pa, *b = pb;
    if (a->v != b->v) return a->v < b->v ? -1 : 1;
    return (a->i > b->i) - (a->i < b->i);
}

/* Ranks 1..n of v, ties sharing their mean rank; false on NaN. */
static bool ranks(const float *v, size_t n, rv *tmp, double *r)
{
    for (size_t i = 0; i < n; i++) {
        if (isnan(v[i])) return false;
        tmp[i] = (rv){v[i], i};
    }
    qsort(tmp, n, sizeof *tmp, cmp_rv);
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j + 1 < n && tmp[j + 1].v == tmp[i].v) j++;
        double mean = 0.5 * (double)(i + j) + 1.0;
        for (size_t k = i; k <= j; k++) r[tmp[k].i] = mean;
        i = j + 1;
    }
    return true;
}

/* Spearman's rho of a and b (n values): Pearson's of their ranks; NaN when
 * either is constant or holds NaN, or memory ran out. */
static double spearman(const float *a, const float *b, size_t n)
{
    rv *tmp = malloc(n * sizeof *tmp);
    double *ra = malloc(n * sizeof *ra), *rb = malloc(n * sizeof *rb);
    double rho = NAN;
    if (tmp && ra && rb && ranks(a, n, tmp, ra) && ranks(b, n, tmp, rb)) {
        double m = 0.5 * (double)(n + 1), sab = 0, saa = 0, sbb = 0;
        for (size_t i = 0; i < n; i++) {
            sab += (ra[i] - m) * (rb[i] - m);
            saa += (ra[i] - m) * (ra[i] - m);
            sbb += (rb[i] - m) * (rb[i] - m);
        }
        if (saa > 0 && sbb > 0) rho = sab / sqrt(saa * sbb);
    }
    free(tmp);
    free(ra);
    free(rb);
    return rho;
}

int cnn_sanity_map(cnn_job *s, const cnn_vtap *t, cl_mem map, size_t off)
{
    size_t px = (size_t)cnn_job_px(s);
    const char *what = "--sanity";
    if (s->san_step == 0) {
        if (s->n_san == s->cap_san) {
            int cap = s->cap_san ? 2 * s->cap_san : 16;
            sanity_map *p = cnn_realloc(s->san, (size_t)cap * sizeof *p);
            if (!p) return CNN_ERR_NOMEM;
            s->san = p;
            s->cap_san = cap;
        }
        sanity_map *m = &s->san[s->n_san];
        m->entry = t->entry;
        m->ref = cnn_malloc(px * sizeof *m->ref);
        m->rho = cnn_malloc((size_t)s->n_san_layer * sizeof *m->rho);
        if (!m->ref || !m->rho) {
            free(m->ref);
            free(m->rho);
            return CNN_ERR_NOMEM;
        }
        for (int k = 0; k < s->n_san_layer; k++) m->rho[k] = NAN;
        s->n_san++;
        return cnn_cl_read(&s->cl, map, off * sizeof(float), px * sizeof(float), m->ref, what);
    }
    if (s->san_seq >= s->n_san) {
        s->san_seq++; /* counted; said after the step */
        return CNN_OK;
    }
    float *v = cnn_malloc(px * sizeof *v);
    if (!v) return CNN_ERR_NOMEM;
    int status = cnn_cl_read(&s->cl, map, off * sizeof(float), px * sizeof(float), v, what);
    sanity_map *m = &s->san[s->san_seq++];
    if (status == CNN_OK) m->rho[s->san_step - 1] = (float)spearman(m->ref, v, px);
    free(v);
    return status;
}

/* Layer k of the cascade (k = 0: the top) with random weights. */
static int randomise(cnn_job *s, int k)
{
    int li = s->san_layer[k];
    const cnn_layer *l = &s->l.graph.layers[li];
    size_t n = l->n_weight;
    double sum = 0, sq = 0;
    for (size_t i = 0; i < n; i++) {
        sum += s->san_orig[k][i];
        sq += (double)s->san_orig[k][i] * s->san_orig[k][i];
    }
    double mean = sum / (double)n, sd = sqrt(fmax(sq / (double)n - mean * mean, 0.0));
    if (!(sd > 0) || !isfinite(sd)) sd = 0.01;
    float *w = cnn_malloc(n * sizeof *w);
    if (!w) return CNN_ERR_NOMEM;
    for (size_t i = 0; i < n; i++) {
        uint32_t r[2];
        cnn_philox2x32((uint32_t)i, (uint32_t)li, SANITY_KEY + (uint32_t)(i >> 32), r);
        double u1 = ((double)(r[0] >> 8) + 1.0) / 16777216.0, u2 = (double)(r[1] >> 8) / 16777216.0;
        w[i] = (float)(sd * sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
    }
    int status = cnn_net_layer_weights(&s->net, li, w, true);
    free(w);
    return status;
}

int cnn_sanity_batch(cnn_job *s, int nb, const int *slot_of)
{
    if (!s->n_san_layer || s->session || s->timing) return CNN_OK;
    const cnn_graph *g = &s->l.graph;
    int status = CNN_OK;
    for (int k = 0; k < s->n_san_layer && status == CNN_OK; k++) {
        if (s->san_orig[k]) continue;
        const cnn_layer *l = &g->layers[s->san_layer[k]];
        s->san_orig[k] = cnn_malloc(l->n_weight * sizeof(float));
        status = s->san_orig[k] ? cnn_net_layer_weights(&s->net, s->san_layer[k], s->san_orig[k], false)
                                : CNN_ERR_NOMEM;
    }
    int randomised = 0;
    s->timing = true; /* nothing drawn or written: cnn_method_emit compares */
    for (int step = 1; step <= s->n_san_layer && status == CNN_OK; step++) {
        status = randomise(s, step - 1);
        if (status < 0) break;
        randomised = step;
        s->san_step = step;
        s->san_seq = 0;
        status = cnn_net_forward(&s->net, nb);
        if (status == CNN_OK) status = cnn_net_read(&s->net, g->n - 1, nb, s->logits);
        if (status == CNN_OK) status = cnn_job_gradient_maps(s, nb, slot_of);
        if (status == CNN_OK) status = cnn_job_late_batch(s, nb, slot_of);
        if (status == CNN_OK && s->san_seq != s->n_san)
            cnn_logf(CNN_LOG_WARN, "--sanity: step %d computed %d maps where the batch drew %d; the maps are "
                     "matched in order, the unmatched ones get no correlation", step, s->san_seq, s->n_san);
    }
    s->san_step = 0;
    s->timing = false;
    /* the file's weights back, and the batch's outputs as they were */
    for (int k = 0; k < randomised; k++) {
        int st = cnn_net_layer_weights(&s->net, s->san_layer[k], s->san_orig[k], true);
        if (status == CNN_OK) status = st;
    }
    if (status == CNN_OK && randomised) status = cnn_net_forward(&s->net, nb);
    if (status == CNN_OK && randomised) status = cnn_net_read(&s->net, g->n - 1, nb, s->logits);
    const char *names[64];
    int nn = s->n_san_layer < 64 ? s->n_san_layer : 64;
    for (int k = 0; k < nn; k++) names[k] = g->layers[s->san_layer[k]].spec->name;
    for (int i = 0; i < s->n_san && status == CNN_OK; i++)
        if (s->san[i].entry >= 0)
            status = cnn_manifest_set_sanity(&s->manifest, s->san[i].entry, names, s->san[i].rho, nn);
    for (int i = 0; i < s->n_san; i++) {
        free(s->san[i].ref);
        free(s->san[i].rho);
    }
    s->n_san = 0;
    return status;
}
