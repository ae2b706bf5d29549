/* index.html: the run as one static page, built from the manifest.
 *
 * Layout: a header (model, config, device, counts, run-wide notes), one
 * collapsible section per input (its image, the top-k table, one card per
 * tap), a "Model" section for the input-independent taps (filters,
 * weights), the layer table and the list of the other files.
 *
 * The manifest is grouped once: every entry gets the display input it
 * belongs to (-1: none) and a class (input image, main image, drill-down
 * image, file); sorting the entries by (input, kind, layer, class, channel)
 * makes each tap a contiguous run, and sorting the runs by (input, layer
 * position, first entry) puts them in network order.  Everything is
 * O(n log n) in the number of files, so 5000 inputs are no problem.
 *
 * Size and speed: images load lazily (loading="lazy"), input sections past
 * the first few start closed, and a drill-down holds only the list of its
 * files in attributes (data-files): the script builds its <img> elements
 * the first time it is opened.  With "?selftest" in the URL the script
 * loads every image the page knows, exercises the zoom and the drill-downs and
 * writes the outcome into <body data-selftest="ok N" | "fail: ...">
 * (test/report/check_report.py reads it).
 *
 * One file: the page is one document, and its grouping, markup, style and
 * script (with the self-test the report test drives) change together. */
#define _POSIX_C_SOURCE 200809L
#include "viz/report.h"
#include "core/error.h"
#include "core/util.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Input sections open when the page loads; the rest start closed. */
#define REPORT_OPEN_INPUTS 8

/* ------------------------------------------------------------ text buffer */

typedef struct sbuf {
    char *p;
    size_t len, cap;
    bool failed; /* an allocation failed: every later call is a no-op */
} sbuf;

static bool reserve(sbuf *b, size_t extra)
{
    if (b->failed) return false;
    size_t need;
    if (!cnn_add_size(b->len, extra, &need) || !cnn_add_size(need, 1, &need)) {
        cnn_error_set(CNN_ERR_NOMEM, "report text larger than memory");
        b->failed = true;
        return false;
    }
    if (need <= b->cap) return true;
    size_t cap = b->cap ? b->cap : 1 << 16;
    while (cap < need) {
        if (cap > SIZE_MAX / 2) {
            cap = need;
            break;
        }
        cap *= 2;
    }
    char *p = cnn_realloc(b->p, cap);
    if (!p) {
        b->failed = true;
        return false;
    }
    b->p = p;
    b->cap = cap;
    return true;
}

static void put(sbuf *b, const char *s, size_t n)
{
    if (!n || !reserve(b, n)) return;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void put_str(sbuf *b, const char *s) { put(b, s, strlen(s)); }

static void putf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void putf(sbuf *b, const char *fmt, ...)
{
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0) return; /* only a bad format can do this */
    if ((size_t)n < sizeof tmp) {
        put(b, tmp, (size_t)n);
        return;
    }
    if (!reserve(b, (size_t)n)) return;
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

/* One double with a printf format ("%.4g"); a decimal comma from a
 * setlocale()d program becomes a point. */
static void put_num(sbuf *b, const char *fmt, double v)
{
    char tmp[64];
    snprintf(tmp, sizeof tmp, fmt, v);
    for (char *p = tmp; *p; p++)
        if (*p == ',') *p = '.';
    put_str(b, tmp);
}

/* HTML text and attribute values: & < > " ' escaped; C0 controls (but tab
 * and line breaks) and DEL become U+FFFD, which HTML does not allow raw. */
static void esc(sbuf *b, const char *s)
{
    if (!s) return;
    const char *run = s;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        const char *rep;
        switch (c) {
        case '&': rep = "&amp;"; break;
        case '<': rep = "&lt;"; break;
        case '>': rep = "&gt;"; break;
        case '"': rep = "&quot;"; break;
        case '\'': rep = "&#39;"; break;
        default: rep = ((c < 0x20 && c != '\t' && c != '\n' && c != '\r') || c == 0x7f) ? "\xEF\xBF\xBD" : NULL;
        }
        if (!rep) continue;
        put(b, run, (size_t)(s - run));
        put_str(b, rep);
        run = s + 1;
    }
    put(b, run, (size_t)(s - run));
}

/* A relative path as a URL: every byte outside [A-Za-z0-9._~/-] becomes
 * %XX, so the result needs no HTML escaping either. */
static void url(sbuf *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    const char *run = s;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
            c == '~' || c == '/' || c == '-')
            continue;
        put(b, run, (size_t)(s - run));
        char enc[3] = {'%', hex[c >> 4], hex[c & 15]};
        put(b, enc, 3);
        run = s + 1;
    }
    put(b, run, (size_t)(s - run));
}

/* 1234567 -> "1,234,567" */
static void put_count(sbuf *b, long long v)
{
    char digits[32], out[48];
    int n = snprintf(digits, sizeof digits, "%lld", v < 0 ? -v : v);
    int j = 0;
    if (v < 0) out[j++] = '-';
    for (int i = 0; i < n; i++) {
        if (i && (n - i) % 3 == 0) out[j++] = ',';
        out[j++] = digits[i];
    }
    out[j] = '\0';
    put_str(b, out);
}

/* 15470000000 -> "15.47G" */
static void put_si(sbuf *b, double v)
{
    static const char *const units[] = {"", "k", "M", "G", "T", "P"};
    int u = 0;
    while (fabs(v) >= 1000 && u < 5) {
        v /= 1000;
        u++;
    }
    put_num(b, u ? "%.4g" : "%.0f", v);
    put_str(b, units[u]);
}

static void put_shape(sbuf *b, const int64_t *shape, int ndim)
{
    put_str(b, "[");
    for (int i = 0; i < ndim; i++) putf(b, "%s%lld", i ? ", " : "", (long long)shape[i]);
    put_str(b, "]");
}

static void put_layer_shape(sbuf *b, const cnn_report_layer *l)
{
    if (l->flat) putf(b, "[%d]", l->c);
    else putf(b, "[%d, %d, %d]", l->c, l->h, l->w);
}

/* --------------------------------------------------------------- grouping */

static bool streq(const char *a, const char *b) { return a && b && strcmp(a, b) == 0; }

/* NULL sorts first. */
static int cmp_str(const char *a, const char *b)
{
    if (!a || !b) return (a != NULL) - (b != NULL);
    return strcmp(a, b);
}

static int cmp_int(int a, int b) { return (a > b) - (a < b); }

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

static bool is_image(const cnn_manifest_entry *e)
{
    if (e->format) return streq(e->format, "png") || streq(e->format, "jpg") || streq(e->format, "jpeg");
    return e->path && ends_with(e->path, ".png");
}

enum { CLS_INPUT, CLS_MAIN, CLS_DRILL, CLS_FILE };

static int classify(const cnn_manifest_entry *e)
{
    if (!is_image(e)) return CLS_FILE;
    if (streq(e->role, "input")) return CLS_INPUT;
    if (streq(e->role, "channel") || streq(e->role, "filter") || streq(e->role, "unit") ||
        (!e->role && e->channel >= 0))
        return CLS_DRILL;
    return CLS_MAIN;
}

typedef struct item {
    int e;  /* manifest entry */
    int in; /* display input; -1: input-independent */
    int cls, ch;
    const char *kind, *layer;
} item;

static int cmp_item(const void *pa, const void *pb)
{
    const item *a = pa, *b = pb;
    int c;
    if ((c = cmp_int(a->in, b->in))) return c;
    if ((c = cmp_str(a->kind, b->kind))) return c;
    if ((c = cmp_str(a->layer, b->layer))) return c;
    if ((c = cmp_int(a->cls, b->cls))) return c;
    if ((c = cmp_int(a->ch, b->ch))) return c;
    return cmp_int(a->e, b->e);
}

/* A tap: the files of one (input, kind, layer). */
typedef struct group {
    int in, lpos, first; /* display input, layer index (n_layers: not a layer), first entry */
    int start, n;        /* items[start .. start + n) */
    int n_input, n_main, n_drill, n_file;
} group;

static int cmp_group(const void *pa, const void *pb)
{
    const group *a = pa, *b = pb;
    int c;
    if ((c = cmp_int(a->in, b->in))) return c;
    if ((c = cmp_int(a->lpos, b->lpos))) return c;
    return cmp_int(a->first, b->first);
}

static bool is_card(const group *g) { return g->n_main + g->n_drill > 0; }

/* A string with where it came from; used to number inputs and find layers. */
typedef struct skey {
    const char *s;
    int id;
} skey;

static int cmp_skey(const void *pa, const void *pb)
{
    const skey *a = pa, *b = pb;
    int c = strcmp(a->s, b->s);
    return c ? c : cmp_int(a->id, b->id);
}

/* Index of the layer called `name` (sorted: the n named layers), `none`
 * when no layer is. */
static int find_layer(const skey *sorted, int n, const char *name, int none)
{
    if (!name) return none;
    int lo = 0, hi = n;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        int c = strcmp(sorted[mid].s, name);
        if (c == 0) return sorted[mid].id;
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return none;
}

typedef struct dinput {
    const char *path;
    int pred; /* index into r->inputs, -1: no predictions */
    int g0, g1; /* its groups */
} dinput;

typedef struct layer_vals {
    double lo, hi;
    long long nonfinite;
    bool has;
} layer_vals;

typedef struct ctx {
    sbuf *b;
    const cnn_report *r;
    const cnn_manifest_entry *e; /* manifest entries */
    item *items;
    group *groups;
    int n_groups;
    dinput *inputs;
    int n_inputs;
    layer_vals *vals;
    int n_taps, n_images, n_files, n_bad;
    bool profiled;
    double total_ms;
} ctx;

static int cmp_first(const void *pa, const void *pb)
{
    const int *a = pa, *b = pb;
    return cmp_int(a[1], b[1]);
}

/* Numbers the inputs: those of r->inputs in their order, then the ones only
 * the manifest names, in order of first appearance.  Sets items[].in. */
static int number_inputs(ctx *x)
{
    const cnn_report *r = x->r;
    int nm = r->files ? r->files->n : 0, nk = 0, status = CNN_OK;
    size_t total = (size_t)r->n_inputs + (size_t)nm;
    size_t n = total ? total : 1;
    skey *keys = cnn_malloc(n * sizeof *keys);
    int *uid = cnn_malloc(n * sizeof *uid);           /* key id -> unique input */
    int *ufirst = cnn_malloc(n * 2 * sizeof *ufirst); /* (unique input, its first key id) */
    int *rank = cnn_malloc(n * sizeof *rank);         /* unique input -> display order */
    if (!keys || !uid || !ufirst || !rank) {
        status = CNN_ERR_NOMEM;
        goto done;
    }
    for (int i = 0; i < r->n_inputs; i++)
        if (r->inputs[i].path) keys[nk++] = (skey){r->inputs[i].path, i};
    for (int i = 0; i < nm; i++)
        if (x->e[i].input) keys[nk++] = (skey){x->e[i].input, r->n_inputs + i};
    qsort(keys, (size_t)nk, sizeof *keys, cmp_skey);
    for (size_t i = 0; i < total; i++) uid[i] = -1;
    int nu = 0;
    for (int i = 0; i < nk; i++) {
        if (i == 0 || strcmp(keys[i].s, keys[i - 1].s) != 0) {
            ufirst[2 * nu] = nu;
            ufirst[2 * nu + 1] = keys[i].id; /* the smallest id of the run */
            nu++;
        }
        uid[keys[i].id] = nu - 1;
    }
    qsort(ufirst, (size_t)nu, 2 * sizeof *ufirst, cmp_first);
    x->inputs = cnn_calloc((size_t)(nu ? nu : 1), sizeof *x->inputs);
    if (!x->inputs) {
        status = CNN_ERR_NOMEM;
        goto done;
    }
    for (int k = 0; k < nu; k++) {
        int u = ufirst[2 * k], first = ufirst[2 * k + 1];
        rank[u] = k;
        x->inputs[k].pred = first < r->n_inputs ? first : -1;
        x->inputs[k].path = first < r->n_inputs ? r->inputs[first].path : x->e[first - r->n_inputs].input;
    }
    x->n_inputs = nu;
    for (int i = 0; i < nm; i++) x->items[i].in = x->e[i].input ? rank[uid[r->n_inputs + i]] : -1;
done:
    free(keys);
    free(uid);
    free(ufirst);
    free(rank);
    return status;
}

static int build(ctx *x)
{
    const cnn_report *r = x->r;
    int nm = r->files ? r->files->n : 0, status;
    x->items = cnn_calloc((size_t)(nm ? nm : 1), sizeof *x->items);
    x->groups = cnn_calloc((size_t)(nm ? nm : 1), sizeof *x->groups);
    x->vals = cnn_calloc((size_t)(r->n_layers ? r->n_layers : 1), sizeof *x->vals);
    skey *lk = cnn_malloc((size_t)(r->n_layers ? r->n_layers : 1) * sizeof *lk);
    if (!x->items || !x->groups || !x->vals || !lk) {
        free(lk);
        return CNN_ERR_NOMEM;
    }
    int nl = 0;
    for (int i = 0; i < r->n_layers; i++)
        if (r->layers[i].name) lk[nl++] = (skey){r->layers[i].name, i};
    qsort(lk, (size_t)nl, sizeof *lk, cmp_skey);

    for (int i = 0; i < nm; i++) {
        const cnn_manifest_entry *e = &x->e[i];
        x->items[i] = (item){.e = i, .cls = classify(e), .ch = e->channel, .kind = e->kind, .layer = e->layer};
        if (x->items[i].cls == CLS_FILE) x->n_files++;
        else x->n_images++;
        if (e->nonfinite > 0) x->n_bad++;
    }
    status = number_inputs(x);
    if (status < 0) {
        free(lk);
        return status;
    }
    for (int i = 0; i < nm; i++) /* an input image of no input: shown as a tap */
        if (x->items[i].cls == CLS_INPUT && x->items[i].in < 0) x->items[i].cls = CLS_MAIN;
    qsort(x->items, (size_t)nm, sizeof *x->items, cmp_item);

    for (int i = 0; i < nm;) {
        const item *a = &x->items[i];
        group *g = &x->groups[x->n_groups++];
        *g = (group){.in = a->in, .first = a->e, .start = i};
        g->lpos = find_layer(lk, nl, a->layer, r->n_layers);
        for (; i < nm; i++) {
            const item *t = &x->items[i];
            if (t->in != a->in || cmp_str(t->kind, a->kind) || cmp_str(t->layer, a->layer)) break;
            if (t->e < g->first) g->first = t->e;
            g->n++;
            if (t->cls == CLS_INPUT) g->n_input++;
            else if (t->cls == CLS_MAIN) g->n_main++;
            else if (t->cls == CLS_DRILL) g->n_drill++;
            else g->n_file++;
            /* Value range of each layer: its activation montages, all inputs. */
            const cnn_manifest_entry *e = &x->e[t->e];
            if (t->cls == CLS_MAIN && t->in >= 0 && g->lpos < r->n_layers && streq(e->kind, "activations")) {
                layer_vals *v = &x->vals[g->lpos];
                v->nonfinite += e->nonfinite > 0 ? e->nonfinite : 0;
                if (e->has_stats && isfinite(e->stats[0]) && isfinite(e->stats[1])) {
                    v->lo = v->has ? fmin(v->lo, e->stats[0]) : e->stats[0];
                    v->hi = v->has ? fmax(v->hi, e->stats[1]) : e->stats[1];
                    v->has = true;
                }
            }
        }
    }
    free(lk);
    /* Distinct taps: the (kind, layer) pairs with a card, over all inputs. */
    item *taps = cnn_malloc((size_t)(x->n_groups ? x->n_groups : 1) * sizeof *taps);
    if (!taps) return CNN_ERR_NOMEM;
    int nt = 0;
    for (int gi = 0; gi < x->n_groups; gi++) {
        const item *a = &x->items[x->groups[gi].start];
        if (is_card(&x->groups[gi])) taps[nt++] = (item){.kind = a->kind, .layer = a->layer};
    }
    qsort(taps, (size_t)nt, sizeof *taps, cmp_item);
    for (int i = 0; i < nt; i++)
        if (i == 0 || cmp_item(&taps[i], &taps[i - 1])) x->n_taps++;
    free(taps);
    qsort(x->groups, (size_t)x->n_groups, sizeof *x->groups, cmp_group);
    /* Each input's groups are one run of the sorted groups. */
    for (int k = 0; k < x->n_inputs; k++) x->inputs[k].g0 = x->inputs[k].g1 = 0;
    for (int gi = 0; gi < x->n_groups; gi++) {
        int in = x->groups[gi].in;
        if (in < 0) continue;
        if (x->inputs[in].g1 == 0) x->inputs[in].g0 = gi;
        x->inputs[in].g1 = gi + 1;
    }
    for (int i = 0; i < r->n_layers; i++) {
        if (r->layers[i].ms < 0) continue;
        x->profiled = true;
        if (!r->layers[i].fused) x->total_ms += r->layers[i].ms;
    }
    return CNN_OK;
}

/* ------------------------------------------------------------- the page */

/* Each piece stays under the 4095 characters ISO C promises for a literal. */
static const char *const k_css[] = {
    ":root{--bg:#fff;--fg:#1c2330;--mut:#5b6576;--card:#f5f7fa;--line:#dce1e8;--acc:#2563c9;--bar:#a9c4f2;"
    "--warn:#b3261e;--wbg:#fdecea;color-scheme:light dark}\n"
    "@media (prefers-color-scheme:dark){:root{--bg:#14171c;--fg:#e2e6ed;--mut:#97a1b1;--card:#1c2128;"
    "--line:#2d343f;--acc:#82adff;--bar:#35558c;--warn:#ffb4ab;--wbg:#3b1e1c}}\n"
    "*{box-sizing:border-box}\n"
    "body{margin:0 auto;max-width:1500px;padding:12px 24px 64px;background:var(--bg);color:var(--fg);"
    "font:14px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif}\n"
    "h1{font-size:24px;margin:8px 0 4px}h2{font-size:19px;margin:28px 0 10px;padding-bottom:4px;"
    "border-bottom:1px solid var(--line)}h3{font-size:15px;margin:0 0 6px;overflow-wrap:anywhere}\n"
    "h3 small{color:var(--mut);font-weight:400;margin-left:6px}a{color:var(--acc)}\n"
    "code{font:12.5px ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;overflow-wrap:anywhere}\n"
    ".ov{display:grid;grid-template-columns:max-content 1fr;gap:2px 16px;margin:8px 0}"
    ".ov dt{color:var(--mut)}.ov dd{margin:0;overflow-wrap:anywhere}\n"
    "nav{margin:10px 0;display:flex;gap:16px;flex-wrap:wrap}\n"
    ".notes{margin:6px 0;padding-left:20px}.notes li,.warn{color:var(--warn)}\n"
    ".warn{background:var(--wbg);padding:1px 6px;border-radius:4px;display:inline-block;margin-top:4px;"
    "font-size:12px}\n"
    "img{image-rendering:crisp-edges;image-rendering:pixelated}.z{cursor:zoom-in}\n"
    ".z:focus-visible{outline:2px solid var(--acc);outline-offset:2px}\n"
    "details.in{border:1px solid var(--line);border-radius:8px;margin:10px 0;content-visibility:auto;"
    "contain-intrinsic-size:auto 44px}\n"
    "details.in>summary{padding:8px 12px;cursor:pointer;font-size:15px;overflow-wrap:anywhere}\n"
    "details.in>summary .n{color:var(--mut);margin-right:6px}details.in>summary .t1{color:var(--mut);"
    "margin-left:10px;font-size:13px}details.in>summary .t1.warn{color:var(--warn)}\n"
    ".inb{padding:4px 12px 14px}.inh{display:flex;flex-wrap:wrap;gap:24px;align-items:flex-start}\n"
    "figure{margin:0}figcaption{color:var(--mut);font-size:12px;margin-top:4px;overflow-wrap:anywhere}\n"
    "figure.input img{width:224px;max-width:100%;height:auto;display:block;border-radius:4px}\n",
    "table{border-collapse:collapse}td,th{padding:3px 8px;border-bottom:1px solid var(--line);text-align:left;"
    "vertical-align:middle}th{color:var(--mut);font-weight:600;font-size:13px}\n"
    ".num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}\n"
    ".pb{position:relative;min-width:170px;height:18px}.pb i{position:absolute;left:0;top:0;bottom:0;"
    "background:var(--bar);border-radius:3px}.pb span{position:relative;padding-left:5px;font-size:12px;"
    "font-variant-numeric:tabular-nums}\n"
    ".files{margin:10px 0 0;font-size:13px;display:flex;flex-wrap:wrap;gap:4px 14px}"
    ".files .sh{color:var(--mut);margin-left:4px}\n"
    ".cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(300px,1fr));gap:14px;margin-top:14px}\n"
    ".card{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:10px;min-width:0}\n"
    ".card figure{margin-bottom:8px}.card figure img{width:100%;height:auto;display:block;border-radius:3px}\n"
    ".meta{display:flex;flex-wrap:wrap;gap:2px 12px;font-size:12px;color:var(--mut);margin-top:4px}\n"
    ".note{font-size:12px;margin-top:4px}\n"
    ".drill summary{cursor:pointer;color:var(--acc);font-size:13px;margin-top:4px}\n"
    ".grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(68px,1fr));gap:6px;margin-top:6px}\n"
    ".grid img{width:100%;height:auto;display:block;min-height:8px}.grid figcaption{text-align:center;"
    "margin-top:1px;font-size:11px}.grid .bad img{outline:2px solid var(--warn)}\n"
    ".scroll{overflow-x:auto}table.layers td,table.layers th{white-space:nowrap}\n"
    "table.rank{border-collapse:collapse;margin:0 0 8px;font-size:12px}table.rank td,table.rank th{padding:1px 8px;"
    "text-align:left;border-bottom:1px solid var(--line)}\n"
    ".xrow{margin-top:14px;border-top:1px solid var(--line);padding-top:8px}.xrow h4{margin:0 0 8px;"
    "font-size:14px}.xrow h4 small{color:var(--mut);font-weight:400;margin-left:8px}\n"
    ".xfig{display:grid;grid-template-columns:repeat(auto-fill,minmax(190px,1fr));gap:12px}\n"
    ".xfig img{width:100%;height:auto;display:block;border-radius:3px}\n"
    "table.feat img{height:72px;width:auto;display:block}\n"
    "svg.curve{display:block;margin-top:4px;background:var(--card);border:1px solid var(--line);"
    "border-radius:3px}svg.curve .d{stroke:#2166ac}svg.curve .i{stroke:#b2182b}\n"
    "tr.fused td{color:var(--mut)}.tag{font-size:11px;border:1px solid var(--line);border-radius:4px;"
    "padding:0 4px;margin-left:6px}tfoot td{font-weight:600;border-bottom:0}\n"
    "button{font:inherit;font-size:12px;padding:2px 10px;margin-left:8px;border:1px solid var(--line);"
    "border-radius:4px;background:var(--card);color:var(--fg);cursor:pointer}\n"
    "#zoom{position:fixed;inset:0;z-index:10;background:rgba(0,0,0,.92);overflow:auto;display:flex;"
    "flex-direction:column;align-items:center;padding:24px;cursor:zoom-out}#zoom[hidden]{display:none}\n"
    "#zoom img{margin:auto;flex:none;background:#000}#zoom p{color:#ddd;margin:10px 0 0;font-size:13px}\n"
    "footer{margin-top:40px;color:var(--mut);font-size:12px}\n",
    NULL};

static const char *const k_js[] = {
    "(function () {\n"
    "\"use strict\";\n"
    "var d = document, errs = [], back = null;\n"
    "var st = /[?&]selftest([=&]|$)/.test(location.search);\n"
    "if (st) {\n"
    "  window.addEventListener(\"error\", function (e) {\n"
    "    var t = e.target;\n"
    "    errs.push(t && t.getAttribute ? \"cannot load \" + (t.getAttribute(\"src\") || t.tagName)\n"
    "                                   : \"uncaught: \" + e.message);\n"
    "  }, true);\n"
    "}\n"
    "var ov = d.getElementById(\"zoom\"), zi = d.createElement(\"img\"), zc = d.createElement(\"p\");\n"
    "zi.alt = \"\";\n"
    "ov.appendChild(zi);\n"
    "ov.appendChild(zc);\n"
    "function fit() {\n"
    "  var w = zi.naturalWidth, h = zi.naturalHeight;\n"
    "  if (!w || !h) return;\n"
    "  var s = Math.min((innerWidth - 48) / w, (innerHeight - 90) / h);\n"
    "  s = s >= 1 ? Math.floor(s) : 1;\n"
    "  zi.style.width = w * s + \"px\";\n"
    "  zi.style.height = h * s + \"px\";\n"
    "}\n"
    "function zoomOpen(img) {\n"
    "  back = img;\n"
    "  zi.style.width = zi.style.height = \"\";\n"
    "  zi.onload = fit;\n"
    "  zi.src = img.getAttribute(\"src\");\n"
    "  zc.textContent = img.getAttribute(\"alt\") || \"\";\n"
    "  ov.hidden = false;\n"
    "  ov.focus();\n"
    "  if (zi.complete) fit();\n"
    "}\n"
    "function zoomClose() {\n"
    "  ov.hidden = true;\n"
    "  zi.onload = null;\n"
    "  zi.removeAttribute(\"src\");\n"
    "  if (back) back.focus();\n"
    "  back = null;\n"
    "}\n"
    "function isZoomable(t) { return t && t.classList && t.classList.contains(\"z\") && t.getAttribute(\"src\"); }\n"
    "/* A drill-down builds its images the first time it opens. */\n"
    "function fill(det) {\n"
    "  if (det.getAttribute(\"data-done\")) return;\n"
    "  det.setAttribute(\"data-done\", \"1\");\n"
    "  var f = det.getAttribute(\"data-files\").split(\" \");\n"
    "  var c = (det.getAttribute(\"data-ch\") || \"\").split(\" \");\n"
    "  var bad = \" \" + (det.getAttribute(\"data-bad\") || \"\") + \" \";\n"
    "  var what = det.getAttribute(\"data-what\") || \"#\";\n"
    "  var alt = det.getAttribute(\"data-alt\") || \"\", fr = d.createDocumentFragment();\n"
    "  for (var i = 0; i < f.length; i++) {\n"
    "    var fig = d.createElement(\"figure\"), im = d.createElement(\"img\"), cap = d.createElement(\"figcaption\");\n"
    "    var label = what + \" \" + (c[i] && c[i] !== \"-1\" ? c[i] : i);\n"
    "    im.loading = \"lazy\";\n"
    "    im.decoding = \"async\";\n"
    "    im.className = \"z\";\n"
    "    im.tabIndex = 0;\n"
    "    im.alt = alt + \" \" + label;\n"
    "    im.src = f[i];\n"
    "    cap.textContent = label;\n"
    "    if (bad.indexOf(\" \" + i + \" \") >= 0) {\n"
    "      fig.className = \"bad\";\n"
    "      cap.textContent += \" \\u26a0\";\n"
    "      im.alt += \" (has NaN/Inf)\";\n"
    "    }\n"
    "    fig.appendChild(im);\n"
    "    fig.appendChild(cap);\n"
    "    fr.appendChild(fig);\n"
    "  }\n"
    "  det.querySelector(\".grid\").appendChild(fr);\n"
    "}\n",
    "d.addEventListener(\"toggle\", function (e) {\n"
    "  var t = e.target;\n"
    "  if (t.open && t.hasAttribute && t.hasAttribute(\"data-files\")) fill(t);\n"
    "}, true);\n"
    "d.addEventListener(\"click\", function (e) {\n"
    "  var t = e.target;\n"
    "  if (!ov.hidden) {\n"
    "    zoomClose();\n"
    "    e.preventDefault();\n"
    "  } else if (isZoomable(t)) {\n"
    "    zoomOpen(t);\n"
    "    e.preventDefault();\n"
    "  } else if (t.getAttribute && t.getAttribute(\"data-act\")) {\n"
    "    var open = t.getAttribute(\"data-act\") === \"open\", all = d.querySelectorAll(\"details.in\");\n"
    "    for (var i = 0; i < all.length; i++) all[i].open = open;\n"
    "  }\n"
    "});\n"
    "d.addEventListener(\"keydown\", function (e) {\n"
    "  if (!ov.hidden) {\n"
    "    if (e.key === \"Escape\") {\n"
    "      zoomClose();\n"
    "      e.preventDefault();\n"
    "    }\n"
    "  } else if ((e.key === \"Enter\" || e.key === \" \") && isZoomable(e.target)) {\n"
    "    zoomOpen(e.target);\n"
    "    e.preventDefault();\n"
    "  }\n"
    "});\n"
    "/* ?selftest: load every image the page knows (also the\n"
    "   drill-downs not opened yet), try the zoom, report in <body data-selftest>. */\n"
    "function selftest() {\n"
    "  var urls = [], seen = {}, bad = [], next = 0, active = 0, done = 0, i, k;\n"
    "  function add(u) {\n"
    "    if (!u) bad.push(\"empty image URL\");\n"
    "    else if (!seen[u]) {\n"
    "      seen[u] = 1;\n"
    "      urls.push(u);\n"
    "    }\n"
    "  }\n"
    "  var imgs = d.querySelectorAll(\"img\");\n"
    "  for (i = 0; i < imgs.length; i++) if (imgs[i] !== zi) add(imgs[i].getAttribute(\"src\"));\n"
    "  /* The first drill-down is opened (its toggle handler must build it),\n"
    "     the next ones are built directly (not all: a big page has thousands). */\n"
    "  var dets = d.querySelectorAll(\"details[data-files]\"), probe = dets.length ? dets[0] : null;\n"
    "  if (probe) probe.open = true;\n"
    "  for (i = 0; i < dets.length; i++) {\n"
    "    var f = dets[i].getAttribute(\"data-files\").split(\" \");\n"
    "    for (k = 0; k < f.length; k++) add(f[k]);\n"
    "    if (dets[i] === probe || i > 50) continue;\n"
    "    fill(dets[i]);\n"
    "    if (dets[i].querySelectorAll(\".grid img\").length !== f.length) bad.push(\"drill-down built wrong\");\n"
    "  }\n"
    "  var ins = d.querySelectorAll(\"details.in\"), was = [], b0 = d.querySelector(\"button[data-act=close]\");\n"
    "  if (b0) {\n"
    "    for (i = 0; i < ins.length; i++) was.push(ins[i].open);\n"
    "    b0.click();\n"
    "    if (d.querySelectorAll(\"details.in[open]\").length) bad.push(\"close all left sections open\");\n"
    "    d.querySelector(\"button[data-act=open]\").click();\n"
    "    if (d.querySelectorAll(\"details.in[open]\").length !== ins.length) bad.push(\"open all failed\");\n"
    "    for (i = 0; i < ins.length; i++) ins[i].open = was[i];\n"
    "  }\n"
    "  var z = d.querySelector(\"img.z\");\n"
    "  if (z) {\n"
    "    z.click();\n"
    "    if (ov.hidden) bad.push(\"zoom did not open on click\");\n"
    "    d.dispatchEvent(new KeyboardEvent(\"keydown\", {key: \"Escape\", bubbles: true}));\n"
    "    if (!ov.hidden) bad.push(\"zoom did not close on Escape\");\n"
    "    z.click();\n"
    "    ov.click();\n"
    "    if (!ov.hidden) bad.push(\"zoom did not close on click\");\n"
    "  }\n",
    "  function finish(tries) {\n"
    "    if (probe && !probe.getAttribute(\"data-done\") && tries < 100) {\n"
    "      setTimeout(function () { finish(tries + 1); }, 20);\n"
    "      return;\n"
    "    }\n"
    "    var nf = probe ? probe.getAttribute(\"data-files\").split(\" \").length : 0;\n"
    "    if (probe && probe.querySelectorAll(\".grid img\").length !== nf) bad.push(\"opening a drill-down failed\");\n"
    "    if (probe) probe.open = false;\n"
    "    var all = bad.concat(errs);\n"
    "    d.body.setAttribute(\"data-selftest\", all.length ? \"fail: \" + all.length + \" problem(s): \" +\n"
    "                        all.slice(0, 20).join(\" | \") : \"ok \" + urls.length);\n"
    "  }\n"
    "  function end() {\n"
    "    active--;\n"
    "    done++;\n"
    "    pump();\n"
    "  }\n"
    "  function one(u) {\n"
    "    var im = new Image();\n"
    "    active++;\n"
    "    im.onerror = function () {\n"
    "      bad.push(\"cannot load \" + u);\n"
    "      end();\n"
    "    };\n"
    "    /* Not im.decode(): its promise is not tied to headless Chromium's\n"
    "       virtual time, so the checker could stop before it settles. */\n"
    "    im.onload = function () {\n"
    "      if (!im.naturalWidth || !im.naturalHeight) bad.push(\"empty image \" + u);\n"
    "      end();\n"
    "    };\n"
    "    im.src = u;\n"
    "  }\n"
    "  function pump() {\n"
    "    while (active < 16 && next < urls.length) one(urls[next++]);\n"
    "    if (done === urls.length) finish(0);\n"
    "  }\n"
    "  pump();\n"
    "}\n"
    "if (st) selftest();\n"
    "})();\n",
    NULL};

static void put_pieces(sbuf *b, const char *const *pieces)
{
    for (int i = 0; pieces[i]; i++) put_str(b, pieces[i]);
}

static void put_stats_meta(sbuf *b, const cnn_manifest_entry *e)
{
    put_str(b, "<div class=\"meta\">");
    if (e->ndim > 0) {
        put_str(b, "<span>");
        put_shape(b, e->shape, e->ndim);
        put_str(b, "</span>");
    }
    if (e->normalize) {
        put_str(b, "<span>normalize ");
        esc(b, e->normalize);
        put_str(b, "</span>");
    }
    if (e->has_range) {
        put_str(b, "<span>range [");
        put_num(b, "%.4g", e->range[0]);
        put_str(b, ", ");
        put_num(b, "%.4g", e->range[1]);
        put_str(b, "]</span>");
    }
    if (e->colormap) {
        put_str(b, "<span>");
        esc(b, e->colormap);
        put_str(b, "</span>");
    }
    put_str(b, "</div>");
    if (e->has_stats) {
        static const char *const names[4] = {"min", "max", "mean", "std"};
        put_str(b, "<div class=\"meta\">");
        for (int k = 0; k < 4; k++) {
            putf(b, "<span>%s ", names[k]);
            put_num(b, "%.4g", e->stats[k]);
            put_str(b, "</span>");
        }
        put_str(b, "</div>");
    }
    if (e->note) {
        put_str(b, "<div class=\"note\">");
        esc(b, e->note);
        put_str(b, "</div>");
    }
    if (e->nonfinite > 0)
        putf(b, "<div class=\"warn\">&#9888; %lld NaN/Inf value%s (not drawn)</div>", (long long)e->nonfinite,
             e->nonfinite == 1 ? "" : "s");
}

static void put_file_link(sbuf *b, const cnn_manifest_entry *e, bool full_path)
{
    put_str(b, "<span><a href=\"");
    url(b, e->path);
    put_str(b, "\" download>");
    const char *slash = strrchr(e->path, '/');
    esc(b, full_path || !slash ? e->path : slash + 1);
    put_str(b, "</a>");
    if (e->ndim > 0) {
        put_str(b, "<span class=\"sh\">");
        put_shape(b, e->shape, e->ndim);
        put_str(b, "</span>");
    }
    put_str(b, "</span>");
}

/* What the tap is called in alt texts: "conv1 activations". */
static void put_tap_name(sbuf *b, const item *a)
{
    esc(b, a->layer ? a->layer : "");
    put_str(b, a->layer ? " " : "");
    esc(b, a->kind ? a->kind : "");
}

static void put_card(ctx *x, int gi)
{
    sbuf *b = x->b;
    const group *g = &x->groups[gi];
    const item *it = &x->items[g->start];
    const cnn_report *r = x->r;
    putf(b, "<article class=\"card\" id=\"tap-%d\"><h3>", gi);
    if (g->lpos < r->n_layers) {
        const cnn_report_layer *l = &r->layers[g->lpos];
        putf(b, "<a href=\"#layer-%d\">", g->lpos);
        esc(b, it->layer);
        put_str(b, "</a><small>");
        esc(b, it->kind);
        put_str(b, " &middot; ");
        esc(b, l->op);
        put_str(b, " ");
        put_layer_shape(b, l);
        put_str(b, "</small>");
    } else {
        esc(b, it->layer ? it->layer : "(no layer)");
        put_str(b, "<small>");
        esc(b, it->kind);
        put_str(b, "</small>");
    }
    put_str(b, "</h3>\n");
    for (int i = 0; i < g->n; i++) {
        const item *t = &it[i];
        if (t->cls != CLS_MAIN) continue;
        const cnn_manifest_entry *e = &x->e[t->e];
        put_str(b, "<figure><img class=\"z\" tabindex=\"0\" loading=\"lazy\" decoding=\"async\" src=\"");
        url(b, e->path);
        put_str(b, "\" alt=\"");
        put_tap_name(b, it);
        if (e->role) {
            put_str(b, " ");
            esc(b, e->role);
        }
        put_str(b, "\"><figcaption>");
        if (e->role && !streq(e->role, "montage")) {
            esc(b, e->role);
            put_str(b, " ");
        }
        put_stats_meta(b, e);
        put_str(b, "</figcaption></figure>\n");
    }
    if (g->n_file) {
        put_str(b, "<div class=\"files\">");
        for (int i = 0; i < g->n; i++)
            if (it[i].cls == CLS_FILE) put_file_link(b, &x->e[it[i].e], false);
        put_str(b, "</div>\n");
    }
    if (g->n_drill) {
        int d0 = g->n_input + g->n_main; /* the items are sorted by class */
        const cnn_manifest_entry *first = &x->e[it[d0].e];
        const char *what = first->role ? first->role : "map";
        put_str(b, "<details class=\"drill\" data-what=\"");
        esc(b, streq(what, "channel") ? "ch" : what);
        put_str(b, "\" data-alt=\"");
        put_tap_name(b, it);
        put_str(b, "\" data-files=\"");
        for (int i = 0; i < g->n_drill; i++) {
            if (i) put_str(b, " ");
            url(b, x->e[it[d0 + i].e].path);
        }
        put_str(b, "\" data-ch=\"");
        for (int i = 0; i < g->n_drill; i++) putf(b, i ? " %d" : "%d", it[d0 + i].ch);
        put_str(b, "\"");
        int n_bad = 0;
        for (int i = 0; i < g->n_drill; i++) {
            if (x->e[it[d0 + i].e].nonfinite <= 0) continue;
            put_str(b, n_bad++ ? " " : " data-bad=\"");
            putf(b, "%d", i);
        }
        if (n_bad) put_str(b, "\"");
        putf(b, "><summary>%d %s%s", g->n_drill, what, g->n_drill == 1 ? "" : "s");
        if (n_bad) putf(b, " <span class=\"warn\">&#9888; %d with NaN/Inf</span>", n_bad);
        put_str(b, "</summary><div class=\"grid\"></div></details>\n");
    }
    put_str(b, "</article>\n");
}

/* Gradient maps: the groups whose entries name a target class. */
static bool is_grad(const ctx *x, const group *g) { return g->n > 0 && x->e[x->items[g->start].e].has_cls; }

/* Deletion (blue) and insertion (red) curves of a map as a small inline
 * SVG, with their areas. */
static void put_curves(sbuf *b, const cnn_manifest_entry *e)
{
    put_str(b, "<div class=\"meta\"><span>deletion AUC ");
    put_num(b, "%.3f", e->auc[0]);
    put_str(b, "</span><span>insertion AUC ");
    put_num(b, "%.3f", e->auc[1]);
    put_str(b, "</span></div><svg class=\"curve\" viewBox=\"0 0 100 40\" width=\"150\" height=\"60\" "
               "preserveAspectRatio=\"none\" role=\"img\" aria-label=\"deletion (blue) and insertion (red) "
               "curves: class probability against the fraction of pixels removed or inserted\">");
    for (int c = 0; c < 2; c++) {
        const float *v = c ? e->insertion : e->deletion;
        putf(b, "<polyline class=\"%s\" fill=\"none\" stroke-width=\"1.2\" vector-effect=\"non-scaling-stroke\" "
                "points=\"", c ? "i" : "d");
        for (int k = 0; k < e->n_curve; k++) {
            double px = e->n_curve > 1 ? 100.0 * k / (e->n_curve - 1) : 0;
            double py = isfinite(v[k]) ? 40.0 * (1.0 - fmin(fmax(v[k], 0.0), 1.0)) : 40.0;
            putf(b, k ? " %.2f,%.2f" : "%.2f,%.2f", px, py);
        }
        put_str(b, "\"/>");
    }
    put_str(b, "</svg>");
}

/* A method of a row of maps and its faithfulness (NaN: not measured). */
typedef struct ranked_fig {
    int gi;
    double ins, del, road;
    double key;                  /* what ranks it: insertion AUC, or ROAD when the row has no curves */
    const cnn_manifest_entry *e; /* its map, when it has curves or ROAD */
    int order;                   /* its place in the report's order */
} ranked_fig;

/* Measured maps first, by key (higher first; NaN after the numbers), then
 * the rest; ties keep the report's order. */
static int cmp_fig(const void *pa, const void *pb)
{
    const ranked_fig *a = pa, *b = pb;
    if ((a->e != NULL) != (b->e != NULL)) return a->e ? -1 : 1;
    if (a->e) {
        bool na = isnan(a->key), nb = isnan(b->key);
        if (na != nb) return na ? 1 : -1;
        if (!na && a->key != b->key) return a->key > b->key ? -1 : 1;
    }
    return cmp_int(a->order, b->order);
}

/* A map's --sanity record: its rank correlation with the map of the
 * model with the named layers' weights random, top first. */
static void put_sanity(sbuf *b, const cnn_manifest_entry *e)
{
    put_str(b, "<div class=\"meta\"><span title=\"Spearman correlation with this map after randomising the "
               "weights of the layers named, from the top down, in turn (near 0: the map depends on what the "
               "model learnt)\">randomised:");
    for (int k = 0; k < e->n_sanity; k++) {
        put_str(b, k ? " &middot; " : " ");
        esc(b, e->sanity_layer[k]);
        put_str(b, " ");
        if (isfinite(e->sanity_rho[k])) put_num(b, "%.2f", e->sanity_rho[k]);
        else put_str(b, "&ndash;");
    }
    put_str(b, "</span></div>");
}

/* A map's ROAD beside its curves. */
static void put_road(sbuf *b, const cnn_manifest_entry *e)
{
    put_str(b, "<div class=\"meta\"><span title=\"ROAD: (LeRF - MoRF) / 2 of the class probability over ");
    for (int k = 0; k < e->n_road; k++) {
        if (k) put_str(b, ", ");
        put_num(b, "%g", (double)e->road_pct[k]);
    }
    put_str(b, " percentiles; higher is more faithful\">ROAD ");
    put_num(b, "%.3f", e->road);
    put_str(b, "</span></div>");
}

/* An input's gradient maps, one row per target class (in the order the
 * classes first appear): each method's map and its overlay side by side,
 * with stats, the note, the curves; the row's .npy files below it. */
static int put_explanations(ctx *x, const dinput *d)
{
    sbuf *b = x->b;
    int n = 0, cap = 0;
    int(*cl)[2] = NULL; /* (class, first entry) */
    for (int gi = d->g0; gi < d->g1; gi++) {
        const group *g = &x->groups[gi];
        if (!is_grad(x, g)) continue;
        for (int i = 0; i < g->n; i++) {
            const item *t = &x->items[g->start + i];
            int c = x->e[t->e].cls, k = 0;
            while (k < n && cl[k][0] != c) k++;
            if (k < n) {
                if (t->e < cl[k][1]) cl[k][1] = t->e;
                continue;
            }
            if (n == cap) {
                int nc = cap ? 2 * cap : 8;
                int(*p)[2] = cnn_realloc(cl, (size_t)nc * sizeof *cl);
                if (!p) {
                    free(cl);
                    return CNN_ERR_NOMEM;
                }
                cl = p;
                cap = nc;
            }
            cl[n][0] = c;
            cl[n][1] = t->e;
            n++;
        }
    }
    if (n) qsort(cl, (size_t)n, sizeof *cl, cmp_first);
    for (int k = 0; k < n; k++) {
        const cnn_manifest_entry *first = &x->e[cl[k][1]];
        putf(b, "<div class=\"xrow\"><h4>class %d", cl[k][0]);
        if (first->label && first->label[0]) {
            put_str(b, " &middot; ");
            esc(b, first->label);
        }
        /* the row's methods (groups), the most faithful first when their
         * maps have curves: insertion AUC, higher first; then the rest in
         * their order */
        int nf = 0;
        ranked_fig *fig = cnn_malloc((size_t)(d->g1 - d->g0 + 1) * sizeof *fig);
        if (!fig) {
            free(cl);
            return CNN_ERR_NOMEM;
        }
        for (int gi = d->g0; gi < d->g1; gi++) {
            const group *g = &x->groups[gi];
            if (!is_grad(x, g)) continue;
            ranked_fig f = {gi, NAN, NAN, NAN, NAN, NULL, nf};
            for (int i = 0; i < g->n; i++) {
                const cnn_manifest_entry *e = &x->e[x->items[g->start + i].e];
                if (e->cls != cl[k][0] || x->items[g->start + i].cls != CLS_MAIN) continue;
                if (e->role && streq(e->role, "map") && (e->n_curve > 1 || e->n_road > 0)) {
                    if (e->n_curve > 1) {
                        f.ins = e->auc[1];
                        f.del = e->auc[0];
                    }
                    if (e->n_road > 0) f.road = e->road;
                    f.e = e;
                }
            }
            fig[nf++] = f;
        }
        bool curves = false, road = false, sanity = false;
        for (int i = 0; i < nf; i++) {
            curves |= fig[i].e && fig[i].e->n_curve > 1;
            road |= fig[i].e && fig[i].e->n_road > 0;
            sanity |= fig[i].e && fig[i].e->n_sanity > 0;
        }
        for (int i = 0; i < nf; i++) fig[i].key = curves ? fig[i].ins : fig[i].road;
        qsort(fig, (size_t)nf, sizeof *fig, cmp_fig);
        int n_ranked = 0;
        for (int i = 0; i < nf; i++) n_ranked += fig[i].e != NULL;
        if (n_ranked > 1)
            putf(b, "<small>why this class: each map beside its overlay, the most faithful first (%s)</small></h4>",
                 curves ? "insertion AUC" : "ROAD");
        else
            put_str(b, "<small>why this class: each map beside its overlay</small></h4>");
        if (n_ranked > 1) {
            put_str(b, "<table class=\"rank\"><tr><th>#</th><th>method</th>");
            if (curves) put_str(b, "<th>insertion AUC &uarr;</th><th>deletion AUC &darr;</th>");
            if (road) put_str(b, "<th>ROAD &uarr;</th>");
            if (sanity) put_str(b, "<th title=\"Spearman correlation with the map of the model with its top layers "
                                   "random (--sanity)\">randomised &rho; &darr;</th>");
            put_str(b, "</tr>");
            for (int i = 0; i < nf && fig[i].e; i++) {
                putf(b, "<tr><td>%d</td><td>", i + 1);
                esc(b, fig[i].e->kind ? fig[i].e->kind : "");
                if (fig[i].e->layer && strcmp(fig[i].e->layer, "input") != 0) {
                    put_str(b, " ");
                    esc(b, fig[i].e->layer);
                }
                if (curves) {
                    put_str(b, "</td><td>");
                    put_num(b, "%.3f", fig[i].ins);
                    put_str(b, "</td><td>");
                    put_num(b, "%.3f", fig[i].del);
                }
                if (road) {
                    put_str(b, "</td><td>");
                    put_num(b, "%.3f", fig[i].road);
                }
                if (sanity) {
                    const cnn_manifest_entry *fe = fig[i].e;
                    put_str(b, "</td><td>");
                    if (fe->n_sanity > 0 && isfinite(fe->sanity_rho[fe->n_sanity - 1]))
                        put_num(b, "%.2f", fe->sanity_rho[fe->n_sanity - 1]);
                    else
                        put_str(b, "&ndash;");
                }
                put_str(b, "</td></tr>");
            }
            put_str(b, "</table>");
        }
        put_str(b, "<div class=\"xfig\">\n");
        for (int fi = 0; fi < nf; fi++) {
            const group *g = &x->groups[fig[fi].gi];
            for (int i = 0; i < g->n; i++) {
                const item *t = &x->items[g->start + i];
                const cnn_manifest_entry *e = &x->e[t->e];
                if (e->cls != cl[k][0] || t->cls != CLS_MAIN) continue;
                put_str(b, "<figure><img class=\"z\" tabindex=\"0\" loading=\"lazy\" decoding=\"async\" src=\"");
                url(b, e->path);
                put_str(b, "\" alt=\"");
                put_tap_name(b, t);
                putf(b, " class %d", e->cls);
                if (e->role) {
                    put_str(b, " ");
                    esc(b, e->role);
                }
                put_str(b, "\"><figcaption><b>");
                esc(b, e->kind ? e->kind : "");
                put_str(b, "</b>");
                if (e->layer && strcmp(e->layer, "input") != 0) {
                    put_str(b, " ");
                    esc(b, e->layer);
                }
                if (e->role && streq(e->role, "overlay")) {
                    put_str(b, " overlay</figcaption></figure>\n");
                    continue;
                }
                put_stats_meta(b, e);
                if (e->n_curve > 1 && e->deletion && e->insertion) put_curves(b, e);
                if (e->n_road > 0 && e->road_pct) put_road(b, e);
                if (e->n_sanity > 0 && e->sanity_layer) put_sanity(b, e);
                put_str(b, "</figcaption></figure>\n");
            }
        }
        free(fig);
        put_str(b, "</div>");
        bool any_file = false;
        for (int gi = d->g0; gi < d->g1; gi++) {
            const group *g = &x->groups[gi];
            if (!is_grad(x, g)) continue;
            for (int i = 0; i < g->n; i++) {
                const item *t = &x->items[g->start + i];
                if (t->cls != CLS_FILE || x->e[t->e].cls != cl[k][0]) continue;
                if (!any_file) put_str(b, "<div class=\"files\">");
                any_file = true;
                put_file_link(b, &x->e[t->e], false);
            }
        }
        if (any_file) put_str(b, "</div>");
        put_str(b, "</div>\n");
    }
    free(cl);
    return CNN_OK;
}

static void put_top(sbuf *b, const cnn_report_input *in)
{
    if (in->n_top <= 0) return;
    bool nan = false;
    for (int t = 0; t < in->n_top; t++) nan |= isnan(in->top[t].prob) != 0;
    if (nan)
        put_str(b, "<p class=\"warn\">The network's output holds NaN or Inf: its probabilities are NaN, as "
                   "torch.softmax gives them, and its classes rank as torch.topk ranks them (NaN first). No class "
                   "is predicted.</p>\n");
    put_str(b, "<table class=\"top\"><thead><tr><th class=\"num\">#</th><th class=\"num\">class</th><th>label</th>"
               "<th>probability</th></tr></thead><tbody>\n");
    for (int t = 0; t < in->n_top; t++) {
        const cnn_report_pred *p = &in->top[t];
        double pct = isfinite(p->prob) ? 100.0 * p->prob : 0;
        double w = pct < 0 ? 0 : pct > 100 ? 100 : pct;
        putf(b, "<tr><td class=\"num\">%d</td><td class=\"num\">%d</td><td>", t + 1, p->index);
        esc(b, p->label);
        put_str(b, "</td><td><div class=\"pb\"><i style=\"width:");
        put_num(b, "%.2f", w);
        put_str(b, "%\"></i><span>");
        /* NaN (the output held NaN or Inf) is shown as such, never as 0 %. */
        if (isnan(p->prob)) {
            put_str(b, "NaN</span></div></td></tr>\n");
            continue;
        }
        put_num(b, pct >= 0.01 || pct == 0 ? "%.2f" : "%.1e", pct);
        put_str(b, "%</span></div></td></tr>\n");
    }
    put_str(b, "</tbody></table>\n");
}

static int put_input(ctx *x, int k)
{
    sbuf *b = x->b;
    const dinput *d = &x->inputs[k];
    const cnn_report_input *pred = d->pred >= 0 ? &x->r->inputs[d->pred] : NULL;
    putf(b, "<details class=\"in\" id=\"input-%d\"%s><summary><span class=\"n\">%d</span><b>", k,
         k < REPORT_OPEN_INPUTS ? " open" : "", k + 1);
    esc(b, d->path);
    put_str(b, "</b>");
    if (pred && pred->n_top > 0 && isnan(pred->top[0].prob)) {
        /* No class is predicted from an output with NaN or Inf: the title
         * says so rather than name the class that ranks first. */
        put_str(b, "<span class=\"t1 warn\">output holds NaN or Inf</span>");
    } else if (pred && pred->n_top > 0) {
        put_str(b, "<span class=\"t1\">");
        if (pred->top[0].label && pred->top[0].label[0]) esc(b, pred->top[0].label);
        else putf(b, "class %d", pred->top[0].index);
        put_str(b, " ");
        put_num(b, "%.1f", isfinite(pred->top[0].prob) ? 100.0 * pred->top[0].prob : 0);
        put_str(b, "%</span>");
    }
    put_str(b, "</summary>\n<div class=\"inb\"><div class=\"inh\">\n");
    for (int gi = d->g0; gi < d->g1; gi++) {
        const group *g = &x->groups[gi];
        for (int i = 0; i < g->n; i++) {
            const item *t = &x->items[g->start + i];
            if (t->cls != CLS_INPUT) continue;
            const cnn_manifest_entry *e = &x->e[t->e];
            put_str(b, "<figure class=\"input\"><img class=\"z\" tabindex=\"0\" loading=\"lazy\" "
                       "decoding=\"async\" src=\"");
            url(b, e->path);
            put_str(b, "\" alt=\"input ");
            esc(b, d->path);
            put_str(b, "\"><figcaption>as the network sees it");
            if (e->ndim > 0) {
                put_str(b, " ");
                put_shape(b, e->shape, e->ndim);
            }
            put_str(b, "</figcaption></figure>\n");
        }
    }
    if (pred) put_top(b, pred);
    else put_str(b, "<p class=\"note\">No predictions for this input.</p>\n");
    put_str(b, "</div>\n");
    int status = put_explanations(x, d);
    if (status < 0) return status;
    bool any_file = false;
    for (int gi = d->g0; gi < d->g1; gi++) {
        const group *g = &x->groups[gi];
        if (is_card(g) || is_grad(x, g)) continue;
        for (int i = 0; i < g->n; i++) {
            const item *t = &x->items[g->start + i];
            if (t->cls != CLS_FILE) continue;
            if (!any_file) put_str(b, "<div class=\"files\">");
            any_file = true;
            put_file_link(b, &x->e[t->e], true);
        }
    }
    if (any_file) put_str(b, "</div>\n");
    bool any_card = false;
    for (int gi = d->g0; gi < d->g1; gi++) {
        if (!is_card(&x->groups[gi]) || is_grad(x, &x->groups[gi])) continue;
        if (!any_card) put_str(b, "<div class=\"cards\">\n");
        any_card = true;
        put_card(x, gi);
    }
    if (any_card) put_str(b, "</div>\n");
    put_str(b, "</div></details>\n");
    return CNN_OK;
}

static void put_layers(ctx *x)
{
    sbuf *b = x->b;
    const cnn_report *r = x->r;
    bool any_vals = false;
    for (int i = 0; i < r->n_layers; i++) any_vals |= x->vals[i].has || x->vals[i].nonfinite > 0;
    put_str(b, "<section id=\"layers\"><h2>Layers</h2><div class=\"scroll\"><table class=\"layers\"><thead><tr>"
               "<th class=\"num\">#</th><th>layer</th><th>op</th><th>output</th><th class=\"num\">params</th>"
               "<th class=\"num\">MACs</th>");
    if (any_vals) put_str(b, "<th>values (activations)</th>");
    if (x->profiled) put_str(b, "<th class=\"num\">ms</th><th>share of run time</th>");
    put_str(b, "</tr></thead><tbody>\n");
    long long params = 0, macs = 0;
    for (int i = 0; i < r->n_layers; i++) {
        const cnn_report_layer *l = &r->layers[i];
        params += l->params;
        macs += l->macs;
        putf(b, "<tr id=\"layer-%d\"%s><td class=\"num\">%d</td><td>", i, l->fused ? " class=\"fused\"" : "", i);
        esc(b, l->name);
        put_str(b, "</td><td>");
        esc(b, l->op);
        if (l->fused) put_str(b, "<span class=\"tag\" title=\"ran inside the previous layer\">fused</span>");
        put_str(b, "</td><td>");
        put_layer_shape(b, l);
        put_str(b, "</td><td class=\"num\">");
        put_count(b, l->params);
        put_str(b, "</td><td class=\"num\">");
        if (l->macs > 0) put_si(b, (double)l->macs);
        else put_str(b, "0");
        put_str(b, "</td>");
        if (any_vals) {
            const layer_vals *v = &x->vals[i];
            put_str(b, "<td>");
            if (v->has) {
                put_str(b, "[");
                put_num(b, "%.4g", v->lo);
                put_str(b, ", ");
                put_num(b, "%.4g", v->hi);
                put_str(b, "]");
            }
            if (v->nonfinite > 0) putf(b, " <span class=\"warn\">&#9888; %lld NaN/Inf</span>", v->nonfinite);
            put_str(b, "</td>");
        }
        if (x->profiled) {
            if (l->fused) {
                put_str(b, "<td class=\"num\">fused</td><td></td>");
            } else if (l->ms < 0) {
                put_str(b, "<td class=\"num\">&ndash;</td><td></td>");
            } else {
                double share = x->total_ms > 0 ? 100.0 * l->ms / x->total_ms : 0;
                put_str(b, "<td class=\"num\">");
                put_num(b, "%.3f", l->ms);
                put_str(b, "</td><td><div class=\"pb\"><i style=\"width:");
                put_num(b, "%.2f", share > 100 ? 100 : share);
                put_str(b, "%\"></i><span>");
                put_num(b, "%.1f", share);
                put_str(b, "%</span></div></td>");
            }
        }
        put_str(b, "</tr>\n");
    }
    put_str(b, "</tbody><tfoot><tr><td></td><td>total</td><td></td><td></td><td class=\"num\">");
    put_count(b, params);
    put_str(b, "</td><td class=\"num\">");
    put_si(b, (double)macs);
    put_str(b, "</td>");
    if (any_vals) put_str(b, "<td></td>");
    if (x->profiled) {
        put_str(b, "<td class=\"num\">");
        put_num(b, "%.3f", x->total_ms);
        put_str(b, "</td><td></td>");
    }
    put_str(b, "</tr></tfoot></table></div></section>\n");
}

static void put_zoom_img(sbuf *b, const cnn_manifest_entry *e, const char *alt)
{
    put_str(b, "<img class=\"z\" tabindex=\"0\" loading=\"lazy\" decoding=\"async\" src=\"");
    url(b, e->path);
    put_str(b, "\" alt=\"");
    esc(b, alt);
    put_str(b, "\">");
}

/* Per layer with both an optimised image and dataset examples for a
 * channel: a row per channel, the image beside its inputs' crops. */
static void put_feature_pages(ctx *x)
{
    sbuf *b = x->b;
    int n = x->r->files ? x->r->files->n : 0;
    for (int i = 0; i < n; i++) {
        const cnn_manifest_entry *m = &x->e[i];
        if (!m->kind || !streq(m->kind, "maximize") || !m->role || !streq(m->role, "channel") || !m->layer) continue;
        bool seen = false;
        for (int j = 0; j < i && !seen; j++) {
            const cnn_manifest_entry *p = &x->e[j];
            seen = p->kind && streq(p->kind, "maximize") && p->role && streq(p->role, "channel") && p->layer &&
                   streq(p->layer, m->layer);
        }
        if (seen) continue;
        bool header = false;
        for (int k = i; k < n; k++) {
            const cnn_manifest_entry *a = &x->e[k];
            if (!a->kind || !streq(a->kind, "maximize") || !a->role || !streq(a->role, "channel") || !a->layer ||
                !streq(a->layer, m->layer))
                continue;
            const cnn_manifest_entry *ex = NULL;
            for (int j = 0; j < n && !ex; j++) {
                const cnn_manifest_entry *c = &x->e[j];
                if (c->kind && streq(c->kind, "examples") && c->role && streq(c->role, "channel") && c->layer &&
                    streq(c->layer, m->layer) && c->channel == a->channel)
                    ex = c;
            }
            if (!ex) continue;
            if (!header) {
                put_str(b, "<div class=\"xrow\"><h4>");
                esc(b, m->layer);
                put_str(b, "<small>per channel: the optimised image, then the inputs that excite it most</small></h4>"
                           "<div class=\"scroll\"><table class=\"feat\"><thead><tr><th>channel</th><th>optimised"
                           "</th><th>objective</th><th>dataset examples</th><th>best</th></tr></thead><tbody>\n");
                header = true;
            }
            putf(b, "<tr><td class=\"num\">%d</td><td>", a->channel);
            put_zoom_img(b, a, "optimised image");
            put_str(b, "</td><td class=\"num\">");
            if (a->has_stats) put_num(b, "%.4g", a->stats[1]);
            put_str(b, "</td><td>");
            put_zoom_img(b, ex, "dataset examples");
            put_str(b, "</td><td class=\"num\">");
            if (ex->has_stats) put_num(b, "%.4g", ex->stats[1]);
            put_str(b, "</td></tr>\n");
        }
        if (header) put_str(b, "</tbody></table></div></div>\n");
    }
}

/* A card of the Features section (dataset examples, optimised images). */
static bool is_feature(const ctx *x, const group *g)
{
    const char *kind = x->items[g->start].kind;
    return kind && (!strcmp(kind, "examples") || !strcmp(kind, "maximize"));
}

static void put_page(ctx *x)
{
    sbuf *b = x->b;
    const cnn_report *r = x->r;
    const char *title = r->title && r->title[0] ? r->title : "model";
    int n_model = 0, n_feat = 0, n_global_files = 0;
    for (int gi = 0; gi < x->n_groups; gi++) {
        const group *g = &x->groups[gi];
        if (g->in >= 0) continue;
        if (is_card(g) && is_feature(x, g)) n_feat++;
        else if (is_card(g)) n_model++;
        n_global_files += g->n_file;
    }
    put_str(b, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
               "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>");
    esc(b, title);
    put_str(b, " &middot; cnnviz-cl</title>\n<style>\n");
    put_pieces(b, k_css);
    put_str(b, "</style></head>\n<body>\n<header><h1>");
    esc(b, title);
    put_str(b, "</h1><dl class=\"ov\">");
    if (r->config) {
        put_str(b, "<dt>config</dt><dd><code>");
        esc(b, r->config);
        put_str(b, "</code></dd>");
    }
    if (r->device) {
        put_str(b, "<dt>device</dt><dd>");
        esc(b, r->device);
        put_str(b, "</dd>");
    }
    putf(b, "<dt>inputs</dt><dd>%d</dd>", x->n_inputs);
    if (r->n_layers) {
        long long params = 0, macs = 0;
        for (int i = 0; i < r->n_layers; i++) {
            params += r->layers[i].params;
            macs += r->layers[i].macs;
        }
        putf(b, "<dt>layers</dt><dd>%d &middot; ", r->n_layers);
        put_count(b, params);
        put_str(b, " parameters &middot; ");
        put_si(b, (double)macs);
        put_str(b, " MACs per input</dd>");
    }
    putf(b, "<dt>taps</dt><dd>%d</dd><dt>files</dt><dd>", x->n_taps);
    put_count(b, x->n_images);
    put_str(b, " images, ");
    put_count(b, x->n_files);
    put_str(b, " other files</dd>");
    if (x->profiled) {
        put_str(b, "<dt>device time</dt><dd>");
        put_num(b, "%.3f", x->total_ms);
        put_str(b, " ms per forward pass (last one, profiled)</dd>");
    }
    put_str(b, "</dl>\n");
    if (r->n_notes > 0 || x->n_bad > 0) {
        put_str(b, "<ul class=\"notes\">");
        for (int i = 0; i < r->n_notes; i++) {
            put_str(b, "<li>");
            esc(b, r->notes[i]);
            put_str(b, "</li>");
        }
        if (x->n_bad > 0)
            putf(b, "<li>%d image%s drawn from maps with NaN/Inf values (marked &#9888;)</li>", x->n_bad,
                 x->n_bad == 1 ? "" : "s");
        put_str(b, "</ul>\n");
    }
    put_str(b, "<nav>");
    if (x->n_inputs) put_str(b, "<a href=\"#inputs\">Inputs</a>");
    if (n_model) put_str(b, "<a href=\"#model\">Model</a>");
    if (n_feat) put_str(b, "<a href=\"#features\">Features</a>");
    if (r->n_layers) put_str(b, "<a href=\"#layers\">Layers</a>");
    if (n_global_files) put_str(b, "<a href=\"#files\">Files</a>");
    put_str(b, "</nav></header>\n<main>\n");

    if (x->n_inputs) {
        putf(b, "<section id=\"inputs\"><h2>Inputs (%d)", x->n_inputs);
        if (x->n_inputs > 1)
            put_str(b, "<button type=\"button\" data-act=\"open\">open all</button>"
                       "<button type=\"button\" data-act=\"close\">close all</button>");
        put_str(b, "</h2>\n");
        for (int k = 0; k < x->n_inputs && !b->failed; k++)
            if (put_input(x, k) < 0) b->failed = true;
        put_str(b, "</section>\n");
    }
    if (n_model) {
        put_str(b, "<section id=\"model\"><h2>Model</h2><p class=\"note\">Taps that do not depend on the input: "
                   "filters and weights.</p><div class=\"cards\">\n");
        for (int gi = 0; gi < x->n_groups; gi++)
            if (x->groups[gi].in < 0 && is_card(&x->groups[gi]) && !is_feature(x, &x->groups[gi])) put_card(x, gi);
        put_str(b, "</div></section>\n");
    }
    if (n_feat) {
        put_str(b, "<section id=\"features\"><h2>Features</h2><p class=\"note\">What a channel responds to: images "
                   "optimised to excite it (maximize), and the inputs of this run that excite it most, each cut "
                   "to the receptive field of its strongest position, best first (examples: a row per "
                   "channel).  Click an image to zoom, a card's channels for one channel.</p><div class=\"cards\">\n");
        for (int gi = 0; gi < x->n_groups; gi++)
            if (x->groups[gi].in < 0 && is_card(&x->groups[gi]) && is_feature(x, &x->groups[gi])) put_card(x, gi);
        put_str(b, "</div>\n");
        put_feature_pages(x);
        put_str(b, "</section>\n");
    }
    if (r->n_layers) put_layers(x);
    if (n_global_files) {
        put_str(b, "<section id=\"files\"><h2>Files</h2><div class=\"files\">");
        for (int gi = 0; gi < x->n_groups; gi++) {
            const group *g = &x->groups[gi];
            if (g->in >= 0) continue;
            for (int i = 0; i < g->n; i++)
                if (x->items[g->start + i].cls == CLS_FILE) put_file_link(b, &x->e[x->items[g->start + i].e], true);
        }
        put_str(b, "</div></section>\n");
    }
    put_str(b, "</main>\n<footer>Written by cnnviz-cl"
#ifdef CNN_VERSION_STRING
               " " CNN_VERSION_STRING
#endif
               ". Click an image to zoom; Escape or a click closes it.</footer>\n"
               "<div id=\"zoom\" hidden tabindex=\"-1\" role=\"dialog\" aria-label=\"zoomed image\"></div>\n"
               "<script>\n");
    put_pieces(b, k_js);
    put_str(b, "</script>\n</body></html>\n");
}

int cnn_report_write(const char *path, const cnn_report *r)
{
    CNN_ASSERT(path && r);
    static const cnn_manifest empty;
    sbuf b = {0};
    ctx x = {.b = &b, .r = r, .e = (r->files ? r->files : &empty)->e};
    int status = build(&x);
    if (status == CNN_OK) {
        put_page(&x);
        if (b.failed) status = CNN_ERR_NOMEM;
    }
    if (status == CNN_OK) status = cnn_file_write_atomic(path, b.p, b.len);
    else cnn_error_prefix(status, "%s", path);
    free(b.p);
    free(x.items);
    free(x.groups);
    free(x.inputs);
    free(x.vals);
    return status;
}
