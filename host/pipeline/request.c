/* What a run is asked for: the taps (the pipeline's, --tap, or the
 * defaults when the pipeline has none) resolved against the graph, and the
 * unique output folder names of the inputs. */
#include "pipeline/job_impl.h"
#include "pipeline/methods.h"
#include "core/error.h"
#include "core/log.h"
#include "core/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int add_tap(cnn_job *s, const char *layer, const char *kind, const cnn_tap_spec *spec, const char *flag)
{
    const cnn_pipeline *p = &s->l.pipe;
    char where[300];
    if (spec) snprintf(where, sizeof where, "%s:%d:%d", p->path, spec->pos.line, spec->pos.col);
    else snprintf(where, sizeof where, "--tap %s", flag);
    int li = cnn_pipeline_find(p, layer);
    if (li < 0 && strcmp(layer, "input") != 0) {
        if (spec) return cnn_error_set(CNN_ERR_INPUT, "%s: tap on unknown layer '%s'", where, layer);
        return cnn_error_set(CNN_ERR_USAGE, "%s: no layer '%s' in %s (see 'cnnviz-cl info %s')", where, layer,
                             s->o.config, s->o.config);
    }
    bool fuse = spec && spec->fuse;
    for (int t = 0; t < s->n_taps && !fuse; t++)
        if (s->taps[t].layer == li && !s->taps[t].n_fuse && !strcmp(s->taps[t].kind_name, kind))
            return CNN_OK; /* asked twice */
    cnn_vtap *t = &s->taps[s->n_taps];
    int status = cnn_vtap_configure(t, &s->l.graph, li, kind, spec, where, s->l.labels, s->l.n_labels);
    if (status < 0) return status;
    t->kind_name = kind;
    if (t->kind == CNN_TAP_GRADIENT && (s->o.cls || s->o.score || s->o.curves >= 0 || s->o.road >= 0)) {
        /* --class / --score / --curves / --road override the pipeline's
         * for every gradient tap. */
        cnn_tap_spec over = spec ? *spec : (cnn_tap_spec){.alpha = 0.5f};
        if (s->o.cls) over.cls = (char *)s->o.cls;
        if (s->o.score) over.score = (char *)s->o.score;
        if (s->o.curves >= 0) over.curves = s->o.curves;
        if (s->o.road >= 0) {
            static const float def[] = CNN_ROAD_DEFAULT;
            over.n_road = s->o.road ? CNN_ROAD_N_DEFAULT : 0;
            memcpy(over.road, def, sizeof def);
        }
        status = cnn_vtap_configure(t, &s->l.graph, li, kind, &over, where, s->l.labels, s->l.n_labels);
        if (status < 0) return status;
        t->kind_name = kind;
    }
    /* Different names can sanitise alike ("a/b", "a_b"); a layer keeps the
     * folder an earlier tap of it got, and a new layer gets a free one. */
    char base[101], joined[600] = "";
    for (int i = 0; fuse && i < spec->n_layers; i++)
        snprintf(joined + strlen(joined), sizeof joined - strlen(joined), "%s%s", i ? "+" : "", spec->layers[i]);
    cnn_outdir_name(fuse ? joined : li < 0 ? "input" : p->layers[li].name, base, sizeof base);
    snprintf(t->dir, sizeof t->dir, "%s", base);
    for (int k = 2;; k++) {
        int clash = -1;
        for (int j = 0; j < s->n_taps && clash < 0; j++)
            if (!strcmp(s->taps[j].dir, t->dir)) clash = j;
        if (clash < 0 || s->taps[clash].layer == li) break;
        snprintf(t->dir, sizeof t->dir, "%s_%d", base, k);
    }
    s->n_taps++;
    /* a CAM's layer (Ablation-CAM changes it between two halves of a forward) */
    if (t->kind == CNN_TAP_ACTIVATIONS || t->kind == CNN_TAP_EXAMPLES || (t->kind == CNN_TAP_GRADIENT && li >= 0))
        s->keep[li] = true;
    for (int i = 0; i < t->n_fuse; i++) s->keep[t->fuse[i]] = true;
    if (t->kind == CNN_TAP_GRADIENT) s->attrib = true;
    if (t->kind == CNN_TAP_DREAM) {
        if (s->l.pipe.input.tensor || (s->l.pipe.input.c != 1 && s->l.pipe.input.c != 3))
            return cnn_error_set(CNN_ERR_USAGE, "run: dream changes the input image; this network takes a tensor "
                                 "(color: none)");
        s->dream = s->gradients = true;
    }
    if (t->kind == CNN_TAP_GRADIENT && cnn_method_of(t->method)->backward) s->gradients = true;
    return CNN_OK;
}

/* A pipeline without `taps:` shows the first conv layer's filters and the
 * activations of every conv and pool layer; a large network (more than 16
 * of them) shows its pooling layers and the last conv layer instead, which
 * sample every stage without writing thousands of files per image. */
static int default_taps(cnn_job *s)
{
    const cnn_graph *g = &s->l.graph;
    int n_cp = 0, first_conv = -1, last_conv = -1;
    for (int i = 0; i < g->n; i++) {
        cnn_op op = g->layers[i].spec->op;
        bool spatial = !g->layers[i].flat && g->layers[i].h * g->layers[i].w > 1;
        if (op == CNN_OP_CONV2D) {
            if (first_conv < 0) first_conv = i;
            last_conv = i;
        }
        if ((op == CNN_OP_CONV2D || op == CNN_OP_MAXPOOL || op == CNN_OP_AVGPOOL) && spatial) n_cp++;
    }
    int status = CNN_OK;
    if (first_conv >= 0 && g->layers[first_conv].weight)
        status = add_tap(s, g->layers[first_conv].spec->name, "filters", NULL, "(default)");
    for (int i = 0; i < g->n && status == CNN_OK; i++) {
        cnn_op op = g->layers[i].spec->op;
        bool spatial = !g->layers[i].flat && g->layers[i].h * g->layers[i].w > 1;
        bool pool = op == CNN_OP_MAXPOOL || op == CNN_OP_AVGPOOL;
        bool show = spatial && (n_cp <= 16 ? (pool || op == CNN_OP_CONV2D) : (pool || i == last_conv));
        if (show) status = add_tap(s, g->layers[i].spec->name, "activations", NULL, "(default)");
    }
    if (status == CNN_OK && s->n_taps)
        cnn_logf(CNN_LOG_INFO, "no taps in %s: showing %d default taps (first-layer filters, %s)", s->o.config,
                 s->n_taps, n_cp <= 16 ? "conv and pool activations" : "pool and last conv activations");
    return status;
}

int cnn_job_collect_taps(cnn_job *s)
{
    const cnn_pipeline *p = &s->l.pipe;
    int cap = s->o.n_taps + 1 + s->l.graph.n;
    for (int i = 0; i < p->n_taps; i++) cap += p->taps[i].n_layers;
    s->taps = cnn_calloc((size_t)cap, sizeof *s->taps);
    s->keep = cnn_calloc((size_t)p->n_layers, sizeof *s->keep);
    if (!s->taps || !s->keep) return CNN_ERR_NOMEM;
    int status = CNN_OK;
    if (!s->o.no_taps) {
        for (int i = 0; i < p->n_taps && status == CNN_OK; i++)
            for (int k = 0; k < (p->taps[i].fuse ? 1 : p->taps[i].n_layers) && status == CNN_OK; k++)
                status = add_tap(s, p->taps[i].layers[k], p->taps[i].show, &p->taps[i], NULL);
        if (status == CNN_OK && !p->taps_given && s->o.n_taps == 0) status = default_taps(s);
    }
    for (int i = 0; i < s->o.n_taps && status == CNN_OK; i++) {
        char layer[256];
        snprintf(layer, sizeof layer, "%s", s->o.taps[i]);
        char *colon = strrchr(layer, ':');
        const char *kind = "activations";
        if (colon) {
            *colon = '\0';
            kind = NULL;
            for (int k = 0; cnn_tap_kinds[k]; k++)
                if (!strcmp(cnn_tap_kinds[k], colon + 1)) kind = cnn_tap_kinds[k];
            if (!kind) return cnn_error_set(CNN_ERR_USAGE, "--tap %s: unknown kind '%s' (see 'cnnviz-cl run --help')",
                                            s->o.taps[i], colon + 1);
        }
        status = add_tap(s, layer, kind, NULL, s->o.taps[i]);
        if (status == CNN_ERR_INPUT && !colon) status = CNN_ERR_USAGE;
    }
    return status;
}

/* Unique, sanitised output folder names for the inputs ("cat", "cat_2"). */
int cnn_job_make_stems(cnn_job *s)
{
    s->stems = cnn_calloc((size_t)s->inputs.n + 1, sizeof *s->stems);
    if (!s->stems) return CNN_ERR_NOMEM;
    for (int i = 0; i < s->inputs.n; i++) {
        int sample = s->inputs.sample ? s->inputs.sample[i] : -1;
        char *stem = cnn_path_stem(sample >= 0 ? s->inputs.file[i] : s->inputs.paths[i]);
        if (stem && sample >= 0) {
            char *numbered = cnn_strfmt("%s_%d", stem, sample);
            free(stem);
            stem = numbered;
        }
        if (!stem) return CNN_ERR_NOMEM;
        char base[128];
        cnn_outdir_name(stem, base, sizeof base);
        free(stem);
        char cand[160];
        snprintf(cand, sizeof cand, "%s", base);
        for (int k = 2;; k++) {
            /* Names the run writes at the top level are not free. */
            static const char *const reserved[] = {"manifest.json", "predictions.json", "predictions.csv",
                                                   "index.html", "trace.json", "model", NULL};
            bool used = false;
            for (int r = 0; reserved[r]; r++) used |= !strcmp(cand, reserved[r]);
            for (int j = 0; j < i && !used; j++) used = !strcmp(s->stems[j], cand);
            if (!used) break;
            snprintf(cand, sizeof cand, "%s_%d", base, k);
        }
        if (!(s->stems[i] = cnn_strdup(cand))) return CNN_ERR_NOMEM;
    }
    return CNN_OK;
}
