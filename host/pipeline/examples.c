/* Dataset examples (show: examples): for each channel of a layer, the
 * run's inputs that excite it most, by the channel's largest value (or
 * its mean over positions), and the part of each input that the best
 * position's receptive field covers.
 *
 * While the batches run, each image's tensor is reduced per channel on
 * the host (one read of the channels shown) into a list of the top_k
 * (value, input, position) per channel: memory stays flat in the number
 * of inputs.  At the end each input that made a list is loaded again,
 * drawn as the network sees it, and its crops are cut into
 * model/<layer>/examples.png (a row per channel, best first), one
 * examples/cNNN.png per channel and examples.json (values, inputs,
 * positions, boxes). */
#include "pipeline/job_impl.h"
#include "core/error.h"
#include "core/log.h"
#include "core/util.h"
#include "model/graph.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
    TILE_MIN = 48, /* crops smaller than this are enlarged by a whole factor (nearest) */
    GAP = 2,       /* pixels between crops and rows */
    FILL_GAP = 255,
    FILL_EMPTY = 32, /* a slot no input filled */
    FILL_OUTSIDE = 128 /* the part of a box outside the image (padding) */
};

typedef struct ex_item {
    float v;
    int k;   /* index into the run's inputs */
    int pos; /* y * w + x of the channel's largest value */
} ex_item;

struct cnn_examples {
    int n_ch, top;
    ex_item *it; /* [n_ch * top], best first */
    int *n;      /* [n_ch] filled */
    long long seen;
    float *buf;  /* one image's channels */
};

static void examples_free(struct cnn_examples *x)
{
    if (!x) return;
    free(x->it);
    free(x->n);
    free(x->buf);
    free(x);
}

void cnn_examples_free(cnn_job *s)
{
    for (int t = 0; t < s->n_taps; t++) {
        examples_free(s->taps[t].ex);
        s->taps[t].ex = NULL;
    }
}

int cnn_examples_prepare(cnn_job *s)
{
    bool any = false;
    for (int t = 0; t < s->n_taps; t++) any |= s->taps[t].kind == CNN_TAP_EXAMPLES;
    if (!any) return CNN_OK;
    if (s->l.pipe.input.tensor)
        return cnn_error_set(CNN_ERR_USAGE, "run: examples are crops of the input images; this network takes a "
                             "tensor (color: none)");
    if (s->o.shard_count || cnn_cl_wants_several(s->o.device))
        return cnn_error_set(CNN_ERR_USAGE, "run: examples rank every input of the run together: not with --shard "
                             "or several devices");
    for (int t = 0; t < s->n_taps; t++) {
        cnn_vtap *vt = &s->taps[t];
        if (vt->kind != CNN_TAP_EXAMPLES) continue;
        struct cnn_examples *x = cnn_calloc(1, sizeof *x);
        if (!x) return CNN_ERR_NOMEM;
        vt->ex = x;
        x->n_ch = vt->n_sel;
        x->top = vt->top_k;
        x->it = cnn_calloc((size_t)x->n_ch * x->top, sizeof *x->it);
        x->n = cnn_calloc((size_t)x->n_ch, sizeof *x->n);
        x->buf = cnn_malloc((size_t)vt->n_maps * vt->h * vt->w * sizeof *x->buf);
        if (!x->it || !x->n || !x->buf) return CNN_ERR_NOMEM;
    }
    return CNN_OK;
}

/* Puts (v, k, pos) in channel c's list if it makes it: larger values first,
 * an equal value after those already there (an earlier input wins). */
static void offer(struct cnn_examples *x, int c, float v, int k, int pos)
{
    ex_item *l = x->it + (size_t)c * x->top;
    int n = x->n[c];
    if (n == x->top && !(v > l[n - 1].v)) return;
    int i = n < x->top ? n : n - 1;
    while (i > 0 && v > l[i - 1].v) {
        l[i] = l[i - 1];
        i--;
    }
    l[i] = (ex_item){v, k, pos};
    if (n < x->top) x->n[c] = n + 1;
}

int cnn_examples_batch(cnn_job *s, int nb, const int *slot_of)
{
    for (int t = 0; t < s->n_taps; t++) {
        cnn_vtap *vt = &s->taps[t];
        struct cnn_examples *x = vt->ex;
        if (vt->kind != CNN_TAP_EXAMPLES || !x) continue;
        const cnn_layer *ly = &s->l.graph.layers[vt->layer];
        size_t per = (size_t)vt->h * vt->w, numel = cnn_layer_numel(ly);
        /* the channels read: the first n_ch, or up to the largest one listed */
        int span = 0;
        for (int c = 0; c < x->n_ch; c++)
            if (cnn_vtap_channel(vt, c) + 1 > span) span = cnn_vtap_channel(vt, c) + 1;
        for (int b = 0; b < nb; b++) {
            CNN_TRY_RET(cnn_cl_read(&s->cl, cnn_net_buffer(&s->net, vt->layer), (size_t)b * numel * sizeof(float),
                                    (size_t)span * per * sizeof(float), x->buf, vt->layer_name));
            for (int c = 0; c < x->n_ch; c++) {
                const float *p = x->buf + (size_t)cnn_vtap_channel(vt, c) * per;
                float best = NAN;
                int at = -1;
                double sum = 0;
                size_t finite = 0;
                for (size_t i = 0; i < per; i++) {
                    if (isnan(p[i])) continue;
                    if (at < 0 || p[i] > best) {
                        best = p[i];
                        at = (int)i;
                    }
                    sum += p[i];
                    finite++;
                }
                if (at < 0) continue; /* NaN everywhere: ranks nowhere */
                offer(x, c, vt->by_mean ? (float)(sum / (double)finite) : best, slot_of[b], at);
            }
            x->seen++;
        }
    }
    return CNN_OK;
}

double cnn_examples_best(const cnn_vtap *t, int channel)
{
    const struct cnn_examples *x = t->ex;
    for (int c = 0; x && c < x->n_ch; c++)
        if (cnn_vtap_channel(t, c) == channel && x->n[c]) return x->it[(size_t)c * x->top].v;
    return NAN;
}

/* ---------------------------------------------------------------------- */
/* The crops                                                              */

typedef struct ex_draw {
    cnn_vtap *t;
    int (*box)[4];      /* [n_ch * top] */
    int bh, bw, f;      /* largest box, enlargement */
    int tw, th, W, H;   /* tile and montage size */
    cnn_png_buf *pb;
} ex_draw;

static int cmp_int(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

/* The image img (h x w x c bytes) cut to `box` into the tile at (row, col). */
static void cut(ex_draw *d, const uint8_t *img, int h, int w, int c, const int box[4], int row, int col)
{
    uint8_t *dst = cnn_png_buf_data(d->pb) + ((size_t)row * (d->th + GAP) * d->W + (size_t)col * (d->tw + GAP)) * c;
    int bh = box[2] - box[0] + 1, bw = box[3] - box[1] + 1;
    /* a smaller box sits in the middle of the tile */
    int oy = (d->bh - bh) / 2 * d->f, ox = (d->bw - bw) / 2 * d->f;
    for (int ty = 0; ty < d->th; ty++) {
        uint8_t *o = dst + (size_t)ty * d->W * c;
        int sy = ty - oy < 0 || ty - oy >= bh * d->f ? INT_MIN : box[0] + (ty - oy) / d->f;
        for (int tx = 0; tx < d->tw; tx++) {
            int sx = tx - ox < 0 || tx - ox >= bw * d->f ? INT_MIN : box[1] + (tx - ox) / d->f;
            bool in = sy >= 0 && sy < h && sx >= 0 && sx < w;
            for (int ch = 0; ch < c; ch++)
                o[(size_t)tx * c + ch] = in ? img[((size_t)sy * w + sx) * c + ch] : FILL_OUTSIDE;
        }
    }
}

static int write_json(cnn_job *s, const ex_draw *d, const char *rel)
{
    const cnn_vtap *t = d->t;
    const struct cnn_examples *x = t->ex;
    cnn_json j;
    cnn_json_init(&j, true);
    cnn_json_object_begin(&j);
    cnn_json_key(&j, "layer");
    cnn_json_string(&j, t->layer_name);
    cnn_json_key(&j, "by");
    cnn_json_string(&j, t->by_mean ? "mean" : "max");
    cnn_json_key(&j, "top");
    cnn_json_int(&j, x->top);
    cnn_json_key(&j, "inputs");
    cnn_json_int(&j, x->seen);
    cnn_json_key(&j, "channels_of_layer");
    cnn_json_int(&j, t->n_maps);
    cnn_json_key(&j, "size");
    cnn_json_array_begin(&j);
    cnn_json_int(&j, t->h);
    cnn_json_int(&j, t->w);
    cnn_json_array_end(&j);
    cnn_json_key(&j, "channels");
    cnn_json_array_begin(&j);
    for (int c = 0; c < x->n_ch; c++) {
        cnn_json_object_begin(&j);
        cnn_json_key(&j, "channel");
        cnn_json_int(&j, cnn_vtap_channel(t, c));
        cnn_json_key(&j, "examples");
        cnn_json_array_begin(&j);
        for (int r = 0; r < x->n[c]; r++) {
            const ex_item *e = &x->it[(size_t)c * x->top + r];
            const int *b = d->box[(size_t)c * x->top + r];
            cnn_json_object_begin(&j);
            cnn_json_path(&j, "input", s->inputs.paths[e->k]);
            cnn_json_key(&j, "index");
            cnn_json_int(&j, e->k);
            cnn_json_key(&j, "value");
            cnn_json_number(&j, e->v);
            cnn_json_key(&j, "y");
            cnn_json_int(&j, e->pos / t->w);
            cnn_json_key(&j, "x");
            cnn_json_int(&j, e->pos % t->w);
            cnn_json_key(&j, "box");
            cnn_json_array_begin(&j);
            for (int i = 0; i < 4; i++) cnn_json_int(&j, b[i]);
            cnn_json_array_end(&j);
            cnn_json_object_end(&j);
        }
        cnn_json_array_end(&j);
        cnn_json_object_end(&j);
    }
    cnn_json_array_end(&j);
    cnn_json_object_end(&j);
    int status = cnn_job_write_json(s, rel, &j, "examples", "values", t->layer_name);
    cnn_json_free(&j);
    return status;
}

static void value_stats(const ex_item *l, int n, double st[4])
{
    double sum = 0, sq = 0;
    st[0] = INFINITY;
    st[1] = -INFINITY;
    for (int i = 0; i < n; i++) {
        st[0] = fmin(st[0], l[i].v);
        st[1] = fmax(st[1], l[i].v);
        sum += l[i].v;
    }
    st[2] = n ? sum / n : 0;
    for (int i = 0; i < n; i++) sq += (l[i].v - st[2]) * (l[i].v - st[2]);
    st[3] = n ? sqrt(sq / n) : 0;
}

static int emit_all(cnn_job *s, ex_draw *d, int c_img)
{
    cnn_vtap *t = d->t;
    struct cnn_examples *x = t->ex;
    char rel[512], note[256];
    snprintf(note, sizeof note, "top %d of %lld input%s by the channel's %s", x->top, x->seen,
             x->seen == 1 ? "" : "s", t->by_mean ? "mean" : "largest value");
    if (t->sel)
        snprintf(note + strlen(note), sizeof note - strlen(note), "; %d of %d channels (channels: [...])", x->n_ch,
                 t->n_maps);
    else if (x->n_ch < t->n_maps)
        snprintf(note + strlen(note), sizeof note - strlen(note), "; channels 0 to %d of %d (max_channels: %d)",
                 x->n_ch - 1, t->n_maps, t->max_channels);
    snprintf(rel, sizeof rel, "model/%s/examples.png", t->dir);
    cnn_manifest_entry e = {.kind = "examples", .role = "montage", .layer = (char *)t->layer_name, .channel = -1,
                            .note = note};
    CNN_TRY_RET(cnn_vctx_emit(&s->viz, rel, d->pb, 0, d->W, d->H, c_img, &e));
    for (int c = 0; c < x->n_ch; c++) {
        snprintf(rel, sizeof rel, "model/%s/examples/c%03d.png", t->dir, cnn_vtap_channel(t, c));
        cnn_manifest_entry ce = {.kind = "examples", .role = "channel", .layer = (char *)t->layer_name,
                                 .channel = cnn_vtap_channel(t, c)};
        if (x->n[c]) {
            ce.has_stats = 1;
            value_stats(x->it + (size_t)c * x->top, x->n[c], ce.stats);
        }
        CNN_TRY_RET(cnn_vctx_emit(&s->viz, rel, d->pb, (size_t)c * (d->th + GAP) * d->W * c_img, d->W, d->th, c_img,
                                  &ce));
    }
    snprintf(rel, sizeof rel, "model/%s/examples.json", t->dir);
    return write_json(s, d, rel);
}

int cnn_examples_finish(cnn_job *s)
{
    int n_draw = 0, n_k = 0, status = CNN_OK;
    for (int t = 0; t < s->n_taps; t++)
        if (s->taps[t].ex) {
            n_draw++;
            for (int c = 0; c < s->taps[t].ex->n_ch; c++) n_k += s->taps[t].ex->n[c];
        }
    if (!n_draw) return CNN_OK;
    const cnn_input_spec *in = &s->l.pipe.input;
    size_t img_bytes = (size_t)in->h * in->w * in->c;
    ex_draw *d = cnn_calloc((size_t)n_draw, sizeof *d);
    int *ks = cnn_malloc(((size_t)n_k + 1) * sizeof *ks);
    uint8_t *img = cnn_malloc(img_bytes);
    cl_mem dev = NULL;
    if (!d || !ks || !img) {
        status = CNN_ERR_NOMEM;
        goto done;
    }
    /* boxes and sizes */
    n_draw = 0;
    n_k = 0;
    for (int t = 0; t < s->n_taps && status == CNN_OK; t++) {
        struct cnn_examples *x = s->taps[t].ex;
        if (!x) continue;
        ex_draw *e = &d[n_draw++];
        e->t = &s->taps[t];
        e->box = cnn_calloc((size_t)x->n_ch * x->top, sizeof *e->box);
        if (!e->box) {
            status = CNN_ERR_NOMEM;
            break;
        }
        e->bh = e->bw = 1;
        for (int c = 0; c < x->n_ch && status == CNN_OK; c++)
            for (int r = 0; r < x->n[c] && status == CNN_OK; r++) {
                const ex_item *it = &x->it[(size_t)c * x->top + r];
                int *b = e->box[(size_t)c * x->top + r];
                status = cnn_graph_field(&s->l.graph, e->t->layer, it->pos / e->t->w, it->pos % e->t->w, b);
                if (b[2] - b[0] + 1 > e->bh) e->bh = b[2] - b[0] + 1;
                if (b[3] - b[1] + 1 > e->bw) e->bw = b[3] - b[1] + 1;
                ks[n_k++] = it->k;
            }
        int side = e->bh > e->bw ? e->bh : e->bw;
        e->f = side >= TILE_MIN ? 1 : (TILE_MIN + side - 1) / side;
        e->th = e->bh * e->f;
        e->tw = e->bw * e->f;
        e->W = x->top * e->tw + (x->top - 1) * GAP;
        e->H = x->n_ch * e->th + (x->n_ch - 1) * GAP;
        size_t bytes = (size_t)e->W * e->H * in->c;
        if (status == CNN_OK && !(e->pb = cnn_png_buf_new(bytes))) status = CNN_ERR_NOMEM;
        if (status == CNN_OK) memset(cnn_png_buf_data(e->pb), FILL_GAP, bytes);
        for (int c = 0; c < x->n_ch && status == CNN_OK; c++) /* empty slots */
            for (int r = x->n[c]; r < x->top; r++) {
                uint8_t *p = cnn_png_buf_data(e->pb) + ((size_t)c * (e->th + GAP) * e->W + (size_t)r * (e->tw + GAP)) *
                                                           in->c;
                for (int y = 0; y < e->th; y++) memset(p + (size_t)y * e->W * in->c, FILL_EMPTY, (size_t)e->tw * in->c);
            }
    }
    if (status == CNN_OK) status = cnn_cl_buffer(&s->cl, img_bytes, &dev, "examples image");
    qsort(ks, (size_t)n_k, sizeof *ks, cmp_int);
    for (int i = 0; i < n_k && status == CNN_OK; i++) {
        if (i && ks[i] == ks[i - 1]) continue;
        int k = ks[i];
        const char *path = s->inputs.paths[k];
        status = cnn_job_reload_input(s, k, 0);
        if (status == CNN_OK) status = cnn_vctx_input_u8(&s->viz, in, s->net.input, 0, dev, path);
        if (status == CNN_OK) status = cnn_cl_read(&s->cl, dev, 0, img_bytes, img, path);
        for (int di = 0; di < n_draw && status == CNN_OK; di++) {
            struct cnn_examples *x = d[di].t->ex;
            for (int c = 0; c < x->n_ch; c++)
                for (int r = 0; r < x->n[c]; r++)
                    if (x->it[(size_t)c * x->top + r].k == k)
                        cut(&d[di], img, in->h, in->w, in->c, d[di].box[(size_t)c * x->top + r], c, r);
        }
    }
    for (int di = 0; di < n_draw && status == CNN_OK; di++) status = emit_all(s, &d[di], in->c);
done:
    if (dev) clReleaseMemObject(dev);
    for (int di = 0; d && di < n_draw; di++) {
        free(d[di].box);
        cnn_png_buf_release(d[di].pb);
    }
    free(d);
    free(ks);
    free(img);
    return status;
}
