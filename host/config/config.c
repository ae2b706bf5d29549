/* Pipeline files: YAML text -> cnn_pipeline.
 *
 * Two passes.  First the libyaml event stream becomes a small tree of nodes
 * that carry their positions; this pass refuses what a pipeline file never
 * needs and what could make a small file expensive (aliases and anchors,
 * nesting deeper than MAX_DEPTH, more than MAX_NODES nodes, several
 * documents), so the tree it builds is always small and shallow.  Then the
 * tree is checked against the schema in configs/README.md and copied into
 * the plain structs of config.h.  Every error goes through
 * cnn_pipeline_error_at() and names the offending node's line and column.
 *
 * One file: both passes share the node tree and the error that names a
 * node's line and column; the schema readers are small functions, one per
 * section, and splitting them out would publish the tree for this file's
 * use alone. */
#define _POSIX_C_SOURCE 200809L
#include "config/config.h"
#include "core/error.h"
#include "core/util.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

enum {
    MAX_TEXT = 4 << 20,
    MAX_DEPTH = 32,
    /* A real pipeline has ~30 nodes per layer; this is far above 10000
     * layers plus 1000 taps yet bounds the memory a 4 MiB "[a,a,a,...]"
     * could make us allocate. */
    MAX_NODES = 1000000,
    MAX_LAYERS = 10000,
    MAX_TAPS = 1000,
    MAX_NAME = 128,
    MAX_PARAMS = 256,
    MAX_PATH = 4096,
    MAX_INT = 1 << 20,
    MAX_TOP = 1000
};

const char *const cnn_tap_kinds[] = {
    "activations", "filters",  "weights",    "saliency",       "guided",
    "deconvnet",   "smoothgrad", "integrated", "gradxinput",   "gradcam",
    "gradcampp",   "layercam", "guided-gradcam", "occlusion", "xgradcam", "hirescam",
    "scorecam",    "ablationcam", "eigencam", "fullgrad", "rise", "lime", "kernelshap", "examples", "maximize", "dream", NULL};
const char *const cnn_norm_scopes[] = {"per-channel", "per-layer", "global", "fixed", NULL};
const char *const cnn_colormaps[] = {"gray", "viridis", "magma", "inferno",
                                     "turbo", "jet", "rdbu", NULL};

/* ------------------------------------------------------------------------ */
/* Errors                                                                   */

int cnn_pipeline_error_at(const cnn_pipeline *p, cnn_pos pos, const char *fmt, ...)
{
    char msg[CNN_ERROR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    const char *path = p && p->path ? p->path : "<pipeline>";
    if (pos.line > 0)
        return cnn_error_set(CNN_ERR_INPUT, "%s:%d:%d: %s", path, pos.line, pos.col, msg);
    return cnn_error_set(CNN_ERR_INPUT, "%s: %s", path, msg);
}

/* User text quoted in a message: control bytes become '?' (a quoted YAML
 * key may hold a newline or an escape sequence) and long text is cut, so one
 * message stays one readable line. */
typedef struct shown {
    char s[80];
} shown;

static shown show_n(const char *text, size_t len)
{
    shown out;
    size_t cap = 60, j = 0;
    for (size_t i = 0; i < len && j < cap; i++) {
        unsigned char c = (unsigned char)text[i];
        out.s[j++] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
    }
    if (len > cap) {
        memcpy(out.s + j, "...", 3);
        j += 3;
    }
    out.s[j] = '\0';
    return out;
}

static shown show(const char *text) { return show_n(text, strlen(text)); }

/* "a, b, c" from a NULL-terminated list, for "(known: ...)" hints. */
typedef struct joined {
    char s[512];
} joined;

static joined join(const char *const *list)
{
    joined out;
    size_t j = 0;
    out.s[0] = '\0';
    for (size_t i = 0; list[i]; i++) {
        int n = snprintf(out.s + j, sizeof out.s - j, "%s%s", i ? ", " : "", list[i]);
        if (n < 0 || (size_t)n >= sizeof out.s - j) break;
        j += (size_t)n;
    }
    return out;
}

static bool in_list(const char *const *list, const char *s)
{
    for (size_t i = 0; list[i]; i++)
        if (strcmp(list[i], s) == 0) return true;
    return false;
}

/* ------------------------------------------------------------------------ */
/* The node tree                                                            */

typedef enum node_kind { NODE_SCALAR, NODE_SEQ, NODE_MAP } node_kind;

typedef struct node {
    node_kind kind;
    bool plain;         /* a plain (unquoted) scalar: only these are numbers, bools, null */
    cnn_pos pos;
    char *str;          /* scalar text, NUL-terminated (may hold NULs: see len) */
    size_t len;
    struct node **kids; /* list: items; mapping: key, value, key, value, ... */
    size_t n, cap;
} node;

static void node_free(node *n)
{
    if (!n) return;
    /* Recursion is bounded by MAX_DEPTH. */
    for (size_t i = 0; i < n->n; i++) node_free(n->kids[i]);
    free(n->kids);
    free(n->str);
    free(n);
}

static int node_push(node *parent, node *kid)
{
    if (parent->n == parent->cap) {
        size_t cap = parent->cap ? parent->cap * 2 : 4;
        node **k = cnn_realloc(parent->kids, cap * sizeof *k);
        if (!k) return CNN_ERR_NOMEM;
        parent->kids = k;
        parent->cap = cap;
    }
    parent->kids[parent->n++] = kid;
    return CNN_OK;
}

static size_t map_size(const node *m) { return m->n / 2; }
static const node *map_key(const node *m, size_t i) { return m->kids[2 * i]; }
static const node *map_val(const node *m, size_t i) { return m->kids[2 * i + 1]; }

static bool is_key(const node *k, const char *name)
{
    return k->kind == NODE_SCALAR && strlen(k->str) == k->len && strcmp(k->str, name) == 0;
}

static const node *map_get(const node *m, const char *key)
{
    for (size_t i = 0; i < map_size(m); i++)
        if (is_key(map_key(m, i), key)) return map_val(m, i);
    return NULL;
}

static const char *kind_name(const node *n)
{
    switch (n->kind) {
    case NODE_MAP: return "a mapping";
    case NODE_SEQ: return "a list";
    default: return "a scalar";
    }
}

static cnn_pos mark_pos(yaml_mark_t m)
{
    /* libyaml counts from 0; messages count from 1. */
    return (cnn_pos){(int)m.line + 1, (int)m.column + 1};
}

/* Reader errors (bad UTF-8, control characters) come with a byte offset
 * only. */
static cnn_pos offset_pos(const char *text, size_t len, size_t off)
{
    cnn_pos pos = {1, 1};
    for (size_t i = 0; i < off && i < len; i++) {
        if (text[i] == '\n') {
            pos.line++;
            pos.col = 1;
        } else if (((unsigned char)text[i] & 0xC0) != 0x80) {
            pos.col++;
        }
    }
    return pos;
}

static int yaml_failure(const cnn_pipeline *p, const yaml_parser_t *ps, const char *text,
                        size_t len)
{
    const char *problem = ps->problem ? ps->problem : "invalid YAML";
    switch (ps->error) {
    case YAML_MEMORY_ERROR:
        return cnn_error_set(CNN_ERR_NOMEM, "%s: out of memory while reading YAML", p->path);
    case YAML_READER_ERROR:
        if (ps->problem_value != -1)
            return cnn_pipeline_error_at(p, offset_pos(text, len, ps->problem_offset),
                                         "%s (#%X)", problem, (unsigned)ps->problem_value);
        return cnn_pipeline_error_at(p, offset_pos(text, len, ps->problem_offset), "%s",
                                     problem);
    default: {
        cnn_pos at = mark_pos(ps->problem_mark);
        if (ps->context) {
            cnn_pos ctx = mark_pos(ps->context_mark);
            if (ctx.line != at.line)
                return cnn_pipeline_error_at(p, at, "%s %s (started at line %d)", problem,
                                             ps->context, ctx.line);
            return cnn_pipeline_error_at(p, at, "%s %s", problem, ps->context);
        }
        return cnn_pipeline_error_at(p, at, "%s", problem);
    }
    }
}

/* Anchors and tags are refused on every node: an anchor only exists to be
 * aliased (the billion-laughs expansion), and tags would let a value change
 * type behind the schema's back. */
static int check_props(const cnn_pipeline *p, const yaml_event_t *ev, const yaml_char_t *anchor,
                       const yaml_char_t *tag)
{
    if (anchor)
        return cnn_pipeline_error_at(p, mark_pos(ev->start_mark),
                                     "anchor '&%s': aliases are not allowed, so neither "
                                     "are anchors",
                                     show((const char *)anchor).s);
    if (tag)
        return cnn_pipeline_error_at(p, mark_pos(ev->start_mark), "tags are not allowed ('%s')",
                                     show((const char *)tag).s);
    return CNN_OK;
}

/* Runs libyaml's event parser over the text and builds the tree. */
static int build_tree(const cnn_pipeline *p, const char *text, size_t len, node **root_out)
{
    *root_out = NULL;
    yaml_parser_t ps;
    if (!yaml_parser_initialize(&ps))
        return cnn_error_set(CNN_ERR_NOMEM, "%s: out of memory while reading YAML", p->path);
    yaml_parser_set_input_string(&ps, (const unsigned char *)text, len);

    node *stack[MAX_DEPTH];
    int depth = 0;
    int docs = 0;
    size_t count = 0;
    node *root = NULL;
    int status = CNN_OK;
    bool done = false;

    while (!done && status == CNN_OK) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&ps, &ev)) {
            status = yaml_failure(p, &ps, text, len);
            break;
        }
        node *made = NULL;
        bool opens = false;
        switch (ev.type) {
        case YAML_STREAM_END_EVENT: done = true; break;
        case YAML_DOCUMENT_START_EVENT:
            if (++docs > 1)
                status = cnn_pipeline_error_at(p, mark_pos(ev.start_mark),
                                               "a second YAML document starts here; a "
                                               "pipeline file holds exactly one");
            break;
        case YAML_ALIAS_EVENT:
            status = cnn_pipeline_error_at(p, mark_pos(ev.start_mark),
                                           "alias '*%s': aliases are not allowed",
                                           show((const char *)ev.data.alias.anchor).s);
            break;
        case YAML_SCALAR_EVENT:
            status = check_props(p, &ev, ev.data.scalar.anchor, ev.data.scalar.tag);
            if (status == CNN_OK && (made = cnn_calloc(1, sizeof *made))) {
                made->kind = NODE_SCALAR;
                made->plain = ev.data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
                made->len = ev.data.scalar.length;
                made->str = cnn_malloc(made->len + 1);
                if (made->str) {
                    memcpy(made->str, ev.data.scalar.value, made->len);
                    made->str[made->len] = '\0';
                }
            }
            break;
        case YAML_SEQUENCE_START_EVENT:
        case YAML_MAPPING_START_EVENT:
            if (ev.type == YAML_SEQUENCE_START_EVENT)
                status = check_props(p, &ev, ev.data.sequence_start.anchor,
                                     ev.data.sequence_start.tag);
            else
                status = check_props(p, &ev, ev.data.mapping_start.anchor,
                                     ev.data.mapping_start.tag);
            if (status == CNN_OK && depth >= MAX_DEPTH)
                status = cnn_pipeline_error_at(p, mark_pos(ev.start_mark),
                                               "nesting deeper than %d levels", MAX_DEPTH);
            if (status == CNN_OK && (made = cnn_calloc(1, sizeof *made))) {
                made->kind = ev.type == YAML_SEQUENCE_START_EVENT ? NODE_SEQ : NODE_MAP;
                opens = true;
            }
            break;
        case YAML_SEQUENCE_END_EVENT:
        case YAML_MAPPING_END_EVENT: depth--; break;
        default: break;
        }
        if (status == CNN_OK && (ev.type == YAML_SCALAR_EVENT || opens)) {
            if (!made || (made->kind == NODE_SCALAR && !made->str)) {
                node_free(made);
                status = CNN_ERR_NOMEM;
            } else if (++count > MAX_NODES) {
                node_free(made);
                status = cnn_pipeline_error_at(p, mark_pos(ev.start_mark),
                                               "more than %d YAML nodes", MAX_NODES);
            } else {
                made->pos = mark_pos(ev.start_mark);
                if (depth == 0) {
                    root = made; /* one document, so one root */
                } else if ((status = node_push(stack[depth - 1], made)) < 0) {
                    node_free(made);
                }
                if (status == CNN_OK && opens) stack[depth++] = made;
            }
        }
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&ps);
    if (status == CNN_OK && !root)
        status = cnn_pipeline_error_at(p, (cnn_pos){1, 1},
                                       "the file is empty (expected version, model, layers)");
    if (status < 0) {
        node_free(root);
        return status;
    }
    *root_out = root;
    return CNN_OK;
}

/* ------------------------------------------------------------------------ */
/* Typed values                                                             */

static bool is_null(const node *v)
{
    return v->kind == NODE_SCALAR && v->plain &&
           (v->len == 0 || strcmp(v->str, "~") == 0 || strcmp(v->str, "null") == 0 ||
            strcmp(v->str, "Null") == 0 || strcmp(v->str, "NULL") == 0);
}

/* Checks that every key of mapping `m` is a string from `known` and appears
 * once.  `where` names the mapping in messages. */
static int check_keys(const cnn_pipeline *p, const node *m, const char *const *known,
                      const char *where)
{
    cnn_pos first[64];
    uint64_t seen = 0;
    for (size_t i = 0; i < map_size(m); i++) {
        const node *k = map_key(m, i);
        if (k->kind != NODE_SCALAR)
            return cnn_pipeline_error_at(p, k->pos, "keys must be strings, not %s (in %s)",
                                         kind_name(k), where);
        size_t idx = 0;
        while (known[idx] && !is_key(k, known[idx])) idx++;
        if (!known[idx])
            return cnn_pipeline_error_at(p, k->pos, "unknown key '%s' in %s (known: %s)",
                                         show_n(k->str, k->len).s, where, join(known).s);
        CNN_ASSERT(idx < 64);
        if (seen & (UINT64_C(1) << idx))
            return cnn_pipeline_error_at(p, k->pos, "key '%s' appears twice in %s (first at line %d)",
                                         known[idx], where, first[idx].line);
        seen |= UINT64_C(1) << idx;
        first[idx] = k->pos;
    }
    return CNN_OK;
}

static int want_map(const cnn_pipeline *p, const node *v, const char *what)
{
    if (v->kind != NODE_MAP)
        return cnn_pipeline_error_at(p, v->pos, "%s must be a mapping, not %s", what,
                                     kind_name(v));
    return CNN_OK;
}

static int get_string(const cnn_pipeline *p, const node *v, const char *key, size_t max,
                      char **out)
{
    if (v->kind != NODE_SCALAR || is_null(v))
        return cnn_pipeline_error_at(p, v->pos, "'%s' must be a string", key);
    if (strlen(v->str) != v->len)
        return cnn_pipeline_error_at(p, v->pos, "'%s' must not contain NUL characters", key);
    if (v->len == 0) return cnn_pipeline_error_at(p, v->pos, "'%s' must not be empty", key);
    if (v->len > max)
        return cnn_pipeline_error_at(p, v->pos, "'%s' is %zu bytes long, more than the %zu allowed",
                                     key, v->len, max);
    *out = cnn_strdup(v->str);
    return *out ? CNN_OK : CNN_ERR_NOMEM;
}

/* A string that must be one of `list`; stored as a copy. */
static int get_choice(const cnn_pipeline *p, const node *v, const char *key,
                      const char *const *list, const char *what, char **out)
{
    int status = get_string(p, v, key, MAX_NAME, out);
    if (status < 0) return status;
    if (!in_list(list, *out))
        return cnn_pipeline_error_at(p, v->pos, "unknown %s '%s' (known: %s)", what,
                                     show(*out).s, join(list).s);
    return CNN_OK;
}

static int get_bool(const cnn_pipeline *p, const node *v, const char *key, bool *out)
{
    /* YAML 1.1 also reads yes/no/on/off as booleans; a schema with fixed
     * keys gains nothing from that and "no" as a string surprises people. */
    if (v->kind == NODE_SCALAR && v->plain && strcmp(v->str, "true") == 0) {
        *out = true;
        return CNN_OK;
    }
    if (v->kind == NODE_SCALAR && v->plain && strcmp(v->str, "false") == 0) {
        *out = false;
        return CNN_OK;
    }
    if (v->kind == NODE_SCALAR)
        return cnn_pipeline_error_at(p, v->pos, "'%s' must be true or false (got '%s')", key,
                                     show_n(v->str, v->len).s);
    return cnn_pipeline_error_at(p, v->pos, "'%s' must be true or false, not %s", key,
                                 kind_name(v));
}

/* Decimal integers only: "3", "-1", "+7".  `type` is the phrase for the
 * wrong-type message ("an integer or [h, w]"). */
static int get_int(const cnn_pipeline *p, const node *v, const char *key, const char *type,
                   int lo, int *out)
{
    if (v->kind != NODE_SCALAR || !v->plain || v->len == 0)
        return cnn_pipeline_error_at(p, v->pos, "'%s' must be %s", key, type);
    const char *s = v->str;
    size_t i = (s[0] == '-' || s[0] == '+') ? 1 : 0;
    if (i == v->len) return cnn_pipeline_error_at(p, v->pos, "'%s' must be %s", key, type);
    for (size_t j = i; j < v->len; j++)
        if (s[j] < '0' || s[j] > '9')
            return cnn_pipeline_error_at(p, v->pos, "'%s' must be %s (got '%s')", key, type,
                                         show_n(s, v->len).s);
    errno = 0;
    long long x = strtoll(s, NULL, 10);
    if (errno == ERANGE || x > MAX_INT)
        return cnn_pipeline_error_at(p, v->pos, "'%s' is too large (got %s; at most %d)", key,
                                     show(s).s, MAX_INT);
    if (x < lo)
        return cnn_pipeline_error_at(p, v->pos, "'%s' must be >= %d (got %s)", key, lo,
                                     show(s).s);
    *out = (int)x;
    return CNN_OK;
}

/* A finite number.  The spelling is checked before strtod so that "nan",
 * "inf", ".inf" and hex floats are refused. */
static int get_double(const cnn_pipeline *p, const node *v, const char *key, double *out)
{
    if (v->kind != NODE_SCALAR || !v->plain || v->len == 0)
        return cnn_pipeline_error_at(p, v->pos, "'%s' must be a number", key);
    const char *s = v->str;
    bool digit = false, spelled = true;
    for (size_t i = 0; i < v->len; i++) {
        char c = s[i];
        if (c >= '0' && c <= '9')
            digit = true;
        else if (c != '+' && c != '-' && c != '.' && c != 'e' && c != 'E')
            spelled = false;
    }
    char *end = NULL;
    double x = 0;
    if (digit && spelled) x = strtod(s, &end);
    if (!digit || !spelled || end != s + v->len)
        return cnn_pipeline_error_at(p, v->pos, "'%s' must be a number (got '%s')", key,
                                     show_n(s, v->len).s);
    if (!isfinite(x))
        return cnn_pipeline_error_at(p, v->pos, "'%s' must be a finite number (got %s)", key,
                                     show(s).s);
    *out = x;
    return CNN_OK;
}

/* The same, and it must fit a float. */
static int get_float(const cnn_pipeline *p, const node *v, const char *key, float *out)
{
    double x = 0;
    int status = get_double(p, v, key, &x);
    if (status < 0) return status;
    if (fabs(x) > FLT_MAX)
        return cnn_pipeline_error_at(p, v->pos, "'%s' must be a finite number (got %s)", key,
                                     show(v->str).s);
    *out = (float)x;
    return CNN_OK;
}

/* An integer or [h, w], each >= lo. */
static int get_hw(const cnn_pipeline *p, const node *v, const char *key, int lo, int out[2])
{
    const char *type = "an integer or [h, w]";
    int status;
    if (v->kind == NODE_SCALAR) {
        if ((status = get_int(p, v, key, type, lo, &out[0])) < 0) return status;
        out[1] = out[0];
        return CNN_OK;
    }
    if (v->kind != NODE_SEQ || v->n != 2)
        return cnn_pipeline_error_at(p, v->pos, "'%s' must be %s", key, type);
    for (int i = 0; i < 2; i++)
        if ((status = get_int(p, v->kids[i], key, type, lo, &out[i])) < 0) return status;
    return CNN_OK;
}

/* pad: n, [h, w] or [top, bottom, left, right]. */
static int get_pad(const cnn_pipeline *p, const node *v, int out[4])
{
    const char *type = "an integer, [h, w] or [top, bottom, left, right]";
    int status, x[4];
    if (v->kind == NODE_SCALAR) {
        if ((status = get_int(p, v, "pad", type, 0, &x[0])) < 0) return status;
        out[0] = out[1] = out[2] = out[3] = x[0];
        return CNN_OK;
    }
    if (v->kind != NODE_SEQ || (v->n != 2 && v->n != 4))
        return cnn_pipeline_error_at(p, v->pos, "'pad' must be %s", type);
    for (size_t i = 0; i < v->n; i++)
        if ((status = get_int(p, v->kids[i], "pad", type, 0, &x[i])) < 0) return status;
    if (v->n == 2) {
        out[0] = out[1] = x[0];
        out[2] = out[3] = x[1];
    } else {
        memcpy(out, x, sizeof x);
    }
    return CNN_OK;
}

/* A list of exactly n numbers. */
static int get_floats(const cnn_pipeline *p, const node *v, const char *key, size_t n,
                      const char *type, float *out)
{
    if (v->kind != NODE_SEQ || v->n != n)
        return cnn_pipeline_error_at(p, v->pos, "'%s' must be %s", key, type);
    for (size_t i = 0; i < n; i++) {
        int status = get_float(p, v->kids[i], key, &out[i]);
        if (status < 0) return status;
    }
    return CNN_OK;
}

/* ------------------------------------------------------------------------ */
/* Ops and their keys                                                       */

enum layer_key {
    LK_NAME, LK_OP, LK_IN, LK_PARAMS, LK_OUT, LK_KERNEL, LK_STRIDE, LK_PAD, LK_DILATION,
    LK_GROUPS, LK_BIAS, LK_CEIL_MODE, LK_COUNT_INCLUDE_PAD, LK_EPS, LK_SLOPE, LK_SIZE,
    LK_ALPHA, LK_BETA, LK_K, LK_P, LK_CONST, LK_VALUE, LK_CONST_FIRST, LK_APPROXIMATE,
    LK_MIN, LK_MAX, LK_AFFINE, LK_OVER, LK_START, LK_END, LK_STEP, LK_MODE, LK_SCALE,
    LK_ALIGN_CORNERS, LK_COUNT
};

static const char *const g_layer_keys[LK_COUNT + 1] = {
    "name", "op", "in", "params", "out", "kernel", "stride", "pad", "dilation", "groups",
    "bias", "ceil_mode", "count_include_pad", "eps", "slope", "size", "alpha", "beta", "k",
    "p", "const", "value", "const_first", "approximate", "min", "max", "affine", "over",
    "start", "end", "step", "mode", "scale", "align_corners", NULL};

#define KB(k) (UINT64_C(1) << (k))
#define KB_COMMON (KB(LK_NAME) | KB(LK_OP) | KB(LK_IN))
/* add, sub, mul, div: a constant or scalar second operand */
#define KB_BINARY (KB(LK_CONST) | KB(LK_VALUE) | KB(LK_CONST_FIRST))

static const struct op_info {
    const char *name;
    uint64_t keys;     /* valid besides name, op, in */
    uint64_t required; /* of those */
} g_ops[CNN_OP_COUNT] = {
    [CNN_OP_CONV2D] = {"conv2d",
                       KB(LK_OUT) | KB(LK_KERNEL) | KB(LK_STRIDE) | KB(LK_PAD) | KB(LK_DILATION) |
                           KB(LK_GROUPS) | KB(LK_BIAS) | KB(LK_PARAMS),
                       KB(LK_OUT) | KB(LK_KERNEL) | KB(LK_PARAMS)},
    [CNN_OP_BATCHNORM] = {"batchnorm", KB(LK_EPS) | KB(LK_PARAMS), KB(LK_PARAMS)},
    [CNN_OP_RELU] = {"relu", 0, 0},
    [CNN_OP_RELU6] = {"relu6", 0, 0},
    [CNN_OP_LEAKY_RELU] = {"leaky_relu", KB(LK_SLOPE), 0},
    [CNN_OP_SIGMOID] = {"sigmoid", 0, 0},
    [CNN_OP_TANH] = {"tanh", 0, 0},
    [CNN_OP_HARDSWISH] = {"hardswish", 0, 0},
    [CNN_OP_MAXPOOL] = {"maxpool",
                        KB(LK_KERNEL) | KB(LK_STRIDE) | KB(LK_PAD) | KB(LK_DILATION) |
                            KB(LK_CEIL_MODE),
                        KB(LK_KERNEL)},
    [CNN_OP_AVGPOOL] = {"avgpool",
                        KB(LK_KERNEL) | KB(LK_STRIDE) | KB(LK_PAD) | KB(LK_CEIL_MODE) |
                            KB(LK_COUNT_INCLUDE_PAD),
                        KB(LK_KERNEL)},
    [CNN_OP_GLOBAL_AVGPOOL] = {"global_avgpool", 0, 0},
    [CNN_OP_ADAPTIVE_AVGPOOL] = {"adaptive_avgpool", KB(LK_OUT), KB(LK_OUT)},
    [CNN_OP_FLATTEN] = {"flatten", 0, 0},
    [CNN_OP_LINEAR] = {"linear", KB(LK_OUT) | KB(LK_BIAS) | KB(LK_PARAMS) | KB(LK_OVER),
                       KB(LK_OUT) | KB(LK_PARAMS)},
    [CNN_OP_ADD] = {"add", KB_BINARY, 0},
    [CNN_OP_CONCAT] = {"concat", 0, 0},
    [CNN_OP_SOFTMAX] = {"softmax", 0, 0},
    [CNN_OP_DROPOUT] = {"dropout", KB(LK_P), 0},
    [CNN_OP_LRN] = {"lrn", KB(LK_SIZE) | KB(LK_ALPHA) | KB(LK_BETA) | KB(LK_K), KB(LK_SIZE)},
    [CNN_OP_MUL] = {"mul", KB_BINARY, 0},
    [CNN_OP_SUB] = {"sub", KB_BINARY, 0},
    [CNN_OP_DIV] = {"div", KB_BINARY, 0},
    [CNN_OP_SILU] = {"silu", 0, 0},
    [CNN_OP_GELU] = {"gelu", KB(LK_APPROXIMATE), 0},
    [CNN_OP_HARDSIGMOID] = {"hardsigmoid", KB(LK_ALPHA) | KB(LK_BETA), 0},
    [CNN_OP_CLIP] = {"clip", KB(LK_MIN) | KB(LK_MAX), 0},
    [CNN_OP_LAYERNORM] = {"layernorm", KB(LK_EPS) | KB(LK_PARAMS) | KB(LK_AFFINE), 0},
    [CNN_OP_SLICE] = {"slice", KB(LK_START) | KB(LK_END) | KB(LK_STEP), 0},
    [CNN_OP_CHANNEL_SHUFFLE] = {"channel_shuffle", KB(LK_GROUPS), KB(LK_GROUPS)},
    [CNN_OP_PAD] = {"pad", KB(LK_PAD) | KB(LK_MODE) | KB(LK_VALUE), KB(LK_PAD)},
    [CNN_OP_RESIZE] = {"resize", KB(LK_SIZE) | KB(LK_SCALE) | KB(LK_MODE) | KB(LK_ALIGN_CORNERS), 0},
    [CNN_OP_GLOBAL_MAXPOOL] = {"global_maxpool", 0, 0},
};

const char *cnn_op_name(cnn_op op)
{
    if ((int)op < 0 || op >= CNN_OP_COUNT) return "?";
    return g_ops[op].name;
}

static joined op_list(void)
{
    const char *names[CNN_OP_COUNT + 1];
    for (int i = 0; i < CNN_OP_COUNT; i++) names[i] = g_ops[i].name;
    names[CNN_OP_COUNT] = NULL;
    return join(names);
}

static joined op_keys(cnn_op op)
{
    const char *names[LK_COUNT + 1];
    size_t n = 0;
    for (int k = 0; k < LK_COUNT; k++)
        if ((KB_COMMON | g_ops[op].keys) & KB(k)) names[n++] = g_layer_keys[k];
    names[n] = NULL;
    return join(names);
}

static bool is_pool(cnn_op op) { return op == CNN_OP_MAXPOOL || op == CNN_OP_AVGPOOL; }
static bool is_binary(cnn_op op)
{
    return op == CNN_OP_ADD || op == CNN_OP_SUB || op == CNN_OP_MUL || op == CNN_OP_DIV;
}
static bool is_multi(cnn_op op) { return is_binary(op) || op == CNN_OP_CONCAT; }

/* ------------------------------------------------------------------------ */
/* The schema                                                               */

typedef struct ctx {
    cnn_pipeline *p;
    const node *layers; /* the `layers:` list, for "defined later" hints */
    int *slots;         /* open-addressing table of layer indices by name (-1 = empty) */
    size_t mask;
} ctx;

static size_t name_slot(const char *name)
{
    return (size_t)cnn_hash64(CNN_HASH64_INIT, name, strlen(name));
}

/* Index of the layer parsed so far under `name`, or -1. */
static int name_lookup(const ctx *c, const char *name)
{
    if (!c->slots) return -1;
    for (size_t h = name_slot(name) & c->mask;; h = (h + 1) & c->mask) {
        int j = c->slots[h];
        if (j < 0) return -1;
        if (strcmp(c->p->layers[j].name, name) == 0) return j;
    }
}

static void name_insert(ctx *c, int idx)
{
    size_t h = name_slot(c->p->layers[idx].name) & c->mask;
    while (c->slots[h] >= 0) h = (h + 1) & c->mask;
    c->slots[h] = idx;
}

/* Line of a layer after `after` named `name` in the raw tree, or 0: only
 * used to say "defined later" instead of just "not defined". */
static int later_line(const ctx *c, size_t after, const char *name)
{
    for (size_t i = after + 1; i < c->layers->n; i++) {
        const node *m = c->layers->kids[i];
        if (m->kind != NODE_MAP) continue;
        const node *n = map_get(m, "name");
        if (n && n->kind == NODE_SCALAR && strcmp(n->str, name) == 0) return m->pos.line;
    }
    return 0;
}

static bool valid_name_chars(const char *s)
{
    for (; *s; s++) {
        char c = *s;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '-'))
            return false;
    }
    return true;
}

/* A layer name used as a reference (in:, taps' layer:). */
static int get_ref(const cnn_pipeline *p, const node *v, const char *key, char **out)
{
    if (v->kind != NODE_SCALAR)
        return cnn_pipeline_error_at(p, v->pos, "'%s' must be a layer name or a list of layer names",
                                     key);
    return get_string(p, v, key, MAX_NAME, out);
}

static int parse_in(ctx *c, size_t idx, const node *v)
{
    cnn_pipeline *p = c->p;
    cnn_layer_spec *L = &p->layers[idx];
    size_t n = v->kind == NODE_SEQ ? v->n : 1;
    if (v->kind == NODE_MAP || n == 0)
        return cnn_pipeline_error_at(p, v->pos, "'in' must be a layer name or a list of layer names");
    L->in = cnn_calloc(n, sizeof *L->in);
    L->in_pos = cnn_calloc(n, sizeof *L->in_pos);
    if (!L->in || !L->in_pos) return CNN_ERR_NOMEM;
    L->n_in = (int)n;
    for (size_t i = 0; i < n; i++) {
        const node *e = v->kind == NODE_SEQ ? v->kids[i] : v;
        int status = get_ref(p, e, "in", &L->in[i]);
        if (status < 0) return status;
        L->in_pos[i] = e->pos;
        if (strcmp(L->in[i], "input") == 0 || name_lookup(c, L->in[i]) >= 0) continue;
        if (strcmp(L->in[i], L->name) == 0)
            return cnn_pipeline_error_at(p, e->pos,
                                         "input '%s' of layer '%s' is not defined above: a layer "
                                         "cannot take its own output (layers run in order)",
                                         show(L->name).s, show(L->name).s);
        int later = later_line(c, idx, L->in[i]);
        if (later)
            return cnn_pipeline_error_at(p, e->pos,
                                         "input '%s' of layer '%s' is not defined above "
                                         "(it is defined later, at line %d; layers run in order)",
                                         show(L->in[i]).s, L->name, later);
        return cnn_pipeline_error_at(p, e->pos, "input '%s' of layer '%s' is not defined above",
                                     show(L->in[i]).s, L->name);
    }
    return CNN_OK;
}

/* pad's mode (constant, reflect, replicate) or resize's (nearest,
 * bilinear). */
static int get_mode(const cnn_pipeline *p, const node *v, cnn_layer_spec *L)
{
    static const char *const pads[] = {"constant", "reflect", "replicate", NULL};
    static const char *const interps[] = {"nearest", "bilinear", NULL};
    bool pad = L->op == CNN_OP_PAD;
    char *mode = NULL;
    int status = get_choice(p, v, "mode", pad ? pads : interps, pad ? "pad mode" : "resize mode", &mode);
    if (status == CNN_OK && pad)
        L->pad_mode = !strcmp(mode, "reflect") ? CNN_PAD_REFLECT
                      : !strcmp(mode, "replicate") ? CNN_PAD_REPLICATE : CNN_PAD_CONSTANT;
    else if (status == CNN_OK)
        L->bilinear = strcmp(mode, "bilinear") == 0;
    free(mode);
    return status;
}

/* resize's scale: a number or [sh, sw], each > 0, kept in double as
 * PyTorch keeps scale_factor. */
static int get_scale(const cnn_pipeline *p, const node *v, double out[2])
{
    const char *type = "a number or [sh, sw]";
    int status;
    if (v->kind == NODE_SEQ && v->n != 2)
        return cnn_pipeline_error_at(p, v->pos, "'scale' must be %s", type);
    if (v->kind == NODE_MAP) return cnn_pipeline_error_at(p, v->pos, "'scale' must be %s", type);
    for (int i = 0; i < 2; i++) {
        const node *e = v->kind == NODE_SEQ ? v->kids[i] : v;
        if ((status = get_double(p, e, "scale", &out[i])) < 0) return status;
        if (!(out[i] > 0) || out[i] > 1e6)
            return cnn_pipeline_error_at(p, e->pos, "'scale' values must be > 0 and at most 1e6 (got %g)", out[i]);
    }
    return CNN_OK;
}

/* The rules between keys of one layer that a key-by-key check cannot see. */
static int check_op_rules(const cnn_pipeline *p, const node *m, const cnn_layer_spec *L, uint64_t present)
{
    const char *op = cnn_op_name(L->op);
    const node *in = map_get(m, "in");
    cnn_pos in_pos = in ? in->pos : m->pos;
    if (is_binary(L->op)) {
        bool second = L->cnst || L->has_value;
        if (L->cnst && L->has_value)
            return cnn_pipeline_error_at(p, map_get(m, "value")->pos,
                                         "layer '%s' (%s) takes 'const' or 'value' as its second operand, not both",
                                         L->name, op);
        if (second && L->n_in > 1)
            return cnn_pipeline_error_at(p, in_pos, "layer '%s' (%s) with '%s' takes one layer in 'in', but it "
                                         "lists %d", L->name, op, L->cnst ? "const" : "value", L->n_in);
        if (!second && L->op == CNN_OP_ADD && L->n_in < 2)
            return cnn_pipeline_error_at(p, in_pos, "layer '%s' (add) needs 'in': a list of two or more layers, "
                                         "or one layer and 'const' or 'value'", L->name);
        if (!second && L->op != CNN_OP_ADD && L->n_in != 2)
            return cnn_pipeline_error_at(p, in_pos, "layer '%s' (%s) needs 'in': a list of two layers, or one "
                                         "layer and 'const' or 'value'", L->name, op);
        if ((present & KB(LK_CONST_FIRST)) && !second)
            return cnn_pipeline_error_at(p, map_get(m, "const_first")->pos,
                                         "layer '%s' (%s): 'const_first' needs 'const' or 'value'", L->name, op);
    }
    if (L->op == CNN_OP_CLIP && !(L->lo <= L->hi))
        return cnn_pipeline_error_at(p, m->pos, "layer '%s' (clip): 'min' (%g) must not exceed 'max' (%g)",
                                     L->name, (double)L->lo, (double)L->hi);
    if (L->op == CNN_OP_LAYERNORM && L->affine && !L->params)
        return cnn_pipeline_error_at(p, m->pos, "layer '%s' (layernorm) needs 'params' (or affine: false)",
                                     L->name);
    if (L->op == CNN_OP_LAYERNORM && !L->affine && L->params)
        return cnn_pipeline_error_at(p, L->params_pos, "layer '%s' (layernorm): affine: false binds no 'params'",
                                     L->name);
    if (L->op == CNN_OP_LINEAR && L->over_channels && (present & KB(LK_IN)) && L->n_in != 1)
        return cnn_pipeline_error_at(p, in_pos, "layer '%s' (linear) takes one input", L->name);
    if (L->op == CNN_OP_PAD && L->has_value && L->pad_mode != CNN_PAD_CONSTANT)
        return cnn_pipeline_error_at(p, map_get(m, "value")->pos,
                                     "layer '%s' (pad): 'value' fills only mode: constant", L->name);
    if (L->op == CNN_OP_RESIZE) {
        bool size = present & KB(LK_SIZE), scale = present & KB(LK_SCALE);
        if (size == scale)
            return cnn_pipeline_error_at(p, m->pos, "layer '%s' (resize) needs 'size: [h, w]' or 'scale: [sh, sw]' "
                                         "(one of them)", L->name);
        if (L->align_corners && !L->bilinear)
            return cnn_pipeline_error_at(p, map_get(m, "align_corners")->pos,
                                         "layer '%s' (resize): 'align_corners' needs mode: bilinear", L->name);
    }
    return CNN_OK;
}

static int parse_layer(ctx *c, size_t idx, const node *m)
{
    cnn_pipeline *p = c->p;
    cnn_layer_spec *L = &p->layers[idx];
    int status;
    if (m->kind != NODE_MAP)
        return cnn_pipeline_error_at(p, m->pos,
                                     "layer #%zu must be a mapping like {name: conv1, op: conv2d, ...}, not %s",
                                     idx + 1, kind_name(m));
    L->pos = m->pos;
    L->stride[0] = L->stride[1] = 1;
    L->dilation[0] = L->dilation[1] = 1;
    L->groups = 1;
    L->bias = true;
    L->count_include_pad = true;
    L->eps = 1e-5f;
    L->slope = 0.01f;
    L->alpha = 1e-4f;
    L->beta = 0.75f;
    L->k = 1.0f;
    L->p = 0.5f;
    L->lo = -INFINITY;
    L->hi = INFINITY;
    L->affine = true;
    L->step = 1;

    /* Name first, so that every later message can say which layer. */
    char where[MAX_NAME + 32];
    const node *name = map_get(m, "name");
    if (name && name->kind == NODE_SCALAR && !is_null(name))
        snprintf(where, sizeof where, "layer '%s'", show_n(name->str, name->len).s);
    else
        snprintf(where, sizeof where, "layer #%zu", idx + 1);
    if ((status = check_keys(p, m, g_layer_keys, where)) < 0) return status;
    if (!name) return cnn_pipeline_error_at(p, m->pos, "%s has no 'name'", where);
    if ((status = get_string(p, name, "name", MAX_NAME, &L->name)) < 0) return status;
    if (!valid_name_chars(L->name))
        return cnn_pipeline_error_at(p, name->pos,
                                     "layer name '%s' may only use letters, digits, '_', '.' and '-'",
                                     show(L->name).s);
    if (strcmp(L->name, "input") == 0)
        return cnn_pipeline_error_at(p, name->pos,
                                     "layer name 'input' is reserved (it means the network input)");
    int prev = name_lookup(c, L->name);
    if (prev >= 0)
        return cnn_pipeline_error_at(p, name->pos, "layer name '%s' already used at line %d",
                                     L->name, p->layers[prev].pos.line);

    const node *opv = map_get(m, "op");
    if (!opv)
        return cnn_pipeline_error_at(p, m->pos, "layer '%s' has no 'op' (known: %s)", L->name,
                                     op_list().s);
    char *op_name = NULL;
    if ((status = get_string(p, opv, "op", MAX_NAME, &op_name)) < 0) return status;
    int op = 0;
    while (op < CNN_OP_COUNT && strcmp(g_ops[op].name, op_name) != 0) op++;
    if (op == CNN_OP_COUNT) {
        status = cnn_pipeline_error_at(p, opv->pos, "unknown op '%s' in layer '%s' (known: %s)",
                                       show(op_name).s, L->name, op_list().s);
        free(op_name);
        return status;
    }
    free(op_name);
    L->op = (cnn_op)op;
    L->op_pos = opv->pos;
    const struct op_info *info = &g_ops[op];

    /* Keys this op does not take, then keys it needs. */
    uint64_t present = 0;
    for (size_t i = 0; i < map_size(m); i++) {
        int k = 0;
        while (!is_key(map_key(m, i), g_layer_keys[k])) k++; /* known: checked above */
        if (!((KB_COMMON | info->keys) & KB(k)))
            return cnn_pipeline_error_at(p, map_key(m, i)->pos,
                                         "key '%s' is not valid for op '%s' in layer '%s' (valid: %s)",
                                         g_layer_keys[k], info->name, L->name, op_keys(L->op).s);
        present |= KB(k);
    }
    for (int k = 0; k < LK_COUNT; k++)
        if ((info->required & KB(k)) && !(present & KB(k)))
            return cnn_pipeline_error_at(p, m->pos, "layer '%s' (%s) needs '%s'", L->name,
                                         info->name, g_layer_keys[k]);

    /* Values, in the order they are written so the first bad one is
     * reported. */
    cnn_pos groups_pos = {0, 0};
    for (size_t i = 0; i < map_size(m); i++) {
        const node *v = map_val(m, i);
        int k = 0;
        while (!is_key(map_key(m, i), g_layer_keys[k])) k++;
        const char *key = g_layer_keys[k];
        switch (k) {
        case LK_IN: status = parse_in(c, idx, v); break;
        case LK_PARAMS:
            status = get_string(p, v, key, MAX_PARAMS, &L->params);
            L->params_pos = v->pos;
            break;
        case LK_OUT:
            if (L->op == CNN_OP_ADAPTIVE_AVGPOOL)
                status = get_hw(p, v, key, 1, L->out_hw);
            else
                status = get_int(p, v, key, "an integer", 1, &L->out);
            break;
        case LK_KERNEL: status = get_hw(p, v, key, 1, L->kernel); break;
        case LK_STRIDE: status = get_hw(p, v, key, 1, L->stride); break;
        case LK_DILATION: status = get_hw(p, v, key, 1, L->dilation); break;
        case LK_PAD: status = get_pad(p, v, L->pad); break;
        case LK_GROUPS:
            status = get_int(p, v, key, "an integer", 1, &L->groups);
            groups_pos = v->pos;
            break;
        case LK_BIAS: status = get_bool(p, v, key, &L->bias); break;
        case LK_CEIL_MODE: status = get_bool(p, v, key, &L->ceil_mode); break;
        case LK_COUNT_INCLUDE_PAD: status = get_bool(p, v, key, &L->count_include_pad); break;
        case LK_EPS:
            status = get_float(p, v, key, &L->eps);
            if (status == CNN_OK && !(L->eps > 0))
                status = cnn_pipeline_error_at(p, v->pos, "'eps' must be > 0");
            break;
        case LK_SLOPE: status = get_float(p, v, key, &L->slope); break;
        case LK_SIZE:
            if (L->op == CNN_OP_RESIZE)
                status = get_hw(p, v, key, 1, L->out_hw);
            else
                status = get_int(p, v, key, "an integer", 1, &L->size);
            break;
        case LK_CONST:
            status = get_string(p, v, key, MAX_PARAMS, &L->cnst);
            L->cnst_pos = v->pos;
            break;
        case LK_VALUE:
            status = get_float(p, v, key, &L->value);
            L->has_value = true;
            break;
        case LK_CONST_FIRST: status = get_bool(p, v, key, &L->const_first); break;
        case LK_APPROXIMATE: {
            static const char *const forms[] = {"none", "tanh", NULL};
            char *form = NULL;
            status = get_choice(p, v, key, forms, "gelu approximation", &form);
            L->gelu_tanh = status == CNN_OK && strcmp(form, "tanh") == 0;
            free(form);
            break;
        }
        case LK_MIN: status = get_float(p, v, key, &L->lo); break;
        case LK_MAX: status = get_float(p, v, key, &L->hi); break;
        case LK_AFFINE: status = get_bool(p, v, key, &L->affine); break;
        case LK_OVER: {
            static const char *const axes[] = {"features", "channels", NULL};
            char *axis = NULL;
            status = get_choice(p, v, key, axes, "linear axis", &axis);
            L->over_channels = status == CNN_OK && strcmp(axis, "channels") == 0;
            free(axis);
            break;
        }
        case LK_START: status = get_int(p, v, key, "an integer", -MAX_INT, &L->start); break;
        case LK_END:
            status = get_int(p, v, key, "an integer", -MAX_INT, &L->end);
            L->has_end = true;
            break;
        case LK_STEP: status = get_int(p, v, key, "an integer", 1, &L->step); break;
        case LK_MODE: status = get_mode(p, v, L); break;
        case LK_SCALE: status = get_scale(p, v, L->scale); break;
        case LK_ALIGN_CORNERS: status = get_bool(p, v, key, &L->align_corners); break;
        case LK_ALPHA: status = get_float(p, v, key, &L->alpha); break;
        case LK_BETA: status = get_float(p, v, key, &L->beta); break;
        case LK_K: status = get_float(p, v, key, &L->k); break;
        case LK_P:
            status = get_float(p, v, key, &L->p);
            if (status == CNN_OK && !(L->p >= 0 && L->p <= 1))
                status = cnn_pipeline_error_at(p, v->pos, "'p' must be between 0 and 1");
            break;
        default: break; /* name, op: done above */
        }
        if (status < 0) return status;
    }

    if (L->op == CNN_OP_HARDSIGMOID) {
        if (!(present & KB(LK_ALPHA))) L->alpha = 1.0f / 6.0f;
        if (!(present & KB(LK_BETA))) L->beta = 0.5f;
    }
    if (is_pool(L->op) && !(present & KB(LK_STRIDE))) {
        L->stride[0] = L->kernel[0];
        L->stride[1] = L->kernel[1];
    }
    if (L->op == CNN_OP_CONV2D && L->out % L->groups != 0)
        return cnn_pipeline_error_at(p, groups_pos, "'groups' (%d) must divide 'out' (%d)",
                                     L->groups, L->out);
    if ((status = check_op_rules(p, m, L, present)) < 0) return status;
    if (!is_multi(L->op) && L->n_in > 1)
        return cnn_pipeline_error_at(p, map_get(m, "in")->pos,
                                     "layer '%s' (%s) takes one input, but 'in' lists %d",
                                     L->name, info->name, L->n_in);
    name_insert(c, (int)idx);
    return CNN_OK;
}

static int parse_layers(ctx *c, const node *v)
{
    cnn_pipeline *p = c->p;
    if (v->kind != NODE_SEQ)
        return cnn_pipeline_error_at(p, v->pos, "'layers' must be a list of layers, not %s",
                                     kind_name(v));
    if (v->n == 0) return cnn_pipeline_error_at(p, v->pos, "'layers' must not be empty");
    if (v->n > MAX_LAYERS)
        return cnn_pipeline_error_at(p, v->kids[MAX_LAYERS]->pos, "more than %d layers",
                                     MAX_LAYERS);
    c->layers = v;
    p->layers = cnn_calloc(v->n, sizeof *p->layers);
    if (!p->layers) return CNN_ERR_NOMEM;
    p->n_layers = (int)v->n; /* entries not yet parsed stay zeroed: safe to free */
    size_t cap = 16;
    while (cap < 2 * v->n) cap *= 2;
    c->slots = cnn_malloc(cap * sizeof *c->slots);
    if (!c->slots) return CNN_ERR_NOMEM;
    for (size_t i = 0; i < cap; i++) c->slots[i] = -1;
    c->mask = cap - 1;
    for (size_t i = 0; i < v->n; i++) {
        int status = parse_layer(c, i, v->kids[i]);
        if (status < 0) return status;
    }
    return CNN_OK;
}

static int parse_resize(cnn_pipeline *p, const node *v)
{
    static const char *const keys[] = {"shorter", "crop", "stretch", NULL};
    cnn_input_spec *in = &p->input;
    int status;
    if (v->kind == NODE_SCALAR && v->plain && strcmp(v->str, "none") == 0) {
        in->resize = CNN_RESIZE_NONE;
        return CNN_OK;
    }
    if (v->kind != NODE_MAP)
        return cnn_pipeline_error_at(p, v->pos,
                                     "'resize' must be none, {shorter: N, crop: N} or {stretch: [h, w]}");
    if ((status = check_keys(p, v, keys, "'resize'")) < 0) return status;
    const node *shorter = map_get(v, "shorter"), *crop = map_get(v, "crop"),
               *stretch = map_get(v, "stretch");
    if (stretch) {
        if (shorter || crop)
            return cnn_pipeline_error_at(p, v->pos,
                                         "'resize' takes either {shorter, crop} or {stretch}, not both");
        if ((status = get_hw(p, stretch, "stretch", 1, in->stretch)) < 0) return status;
        if (in->stretch[0] != in->h || in->stretch[1] != in->w)
            return cnn_pipeline_error_at(p, stretch->pos,
                                         "'stretch' [%d, %d] must equal the input size [%d, %d]",
                                         in->stretch[0], in->stretch[1], in->h, in->w);
        in->resize = CNN_RESIZE_STRETCH;
        return CNN_OK;
    }
    if (!shorter || !crop)
        return cnn_pipeline_error_at(p, v->pos,
                                     "'resize' needs {shorter: N, crop: N or [h, w]} or {stretch: [h, w]}");
    if ((status = get_int(p, shorter, "shorter", "an integer", 1, &in->shorter)) < 0)
        return status;
    if ((status = get_hw(p, crop, "crop", 1, in->crop)) < 0) return status;
    if (in->crop[0] != in->h || in->crop[1] != in->w)
        return cnn_pipeline_error_at(p, crop->pos,
                                     "'crop' [%d, %d] must equal the input size [%d, %d] from 'shape'",
                                     in->crop[0], in->crop[1], in->h, in->w);
    /* Resizing the shorter side below the crop would leave nothing to cut. */
    int big = in->crop[0] > in->crop[1] ? in->crop[0] : in->crop[1];
    if (in->shorter < big)
        return cnn_pipeline_error_at(p, shorter->pos,
                                     "'shorter' (%d) must be at least the crop size (%d)",
                                     in->shorter, big);
    in->resize = CNN_RESIZE_SHORTER_CROP;
    return CNN_OK;
}

static int parse_input(cnn_pipeline *p, const node *v)
{
    static const char *const keys[] = {"shape", "color", "resize", "scale", "mean", "std", NULL};
    cnn_input_spec *in = &p->input;
    int status;
    if ((status = want_map(p, v, "'input'")) < 0) return status;
    if ((status = check_keys(p, v, keys, "'input'")) < 0) return status;
    in->pos = v->pos;
    in->scale = 1.0f / 255.0f;
    for (int i = 0; i < 3; i++) in->mean[i] = 0.0f, in->std[i] = 1.0f;

    const node *shape = map_get(v, "shape");
    if (!shape) return cnn_pipeline_error_at(p, v->pos, "'input' needs 'shape: [C, H, W]'");
    if (shape->kind != NODE_SEQ || shape->n != 3)
        return cnn_pipeline_error_at(p, shape->pos, "'shape' must be [C, H, W]");
    int dims[3];
    for (int i = 0; i < 3; i++)
        if ((status = get_int(p, shape->kids[i], "shape", "[C, H, W] of integers", 1, &dims[i])) < 0)
            return status;
    /* color: none makes the input a tensor of any C (an ONNX model's input
     * that is not an image), read from .npy files as it is. */
    const node *cv = map_get(v, "color");
    in->tensor = cv && cv->kind == NODE_SCALAR && strcmp(cv->str, "none") == 0;
    if (in->tensor) {
        static const char *const image_keys[] = {"resize", "scale", "mean", "std", NULL};
        for (int i = 0; image_keys[i]; i++) {
            const node *k = map_get(v, image_keys[i]);
            bool ok = k && !strcmp(image_keys[i], "resize") && k->kind == NODE_SCALAR && k->plain &&
                      !strcmp(k->str, "none");
            if (k && !ok)
                return cnn_pipeline_error_at(p, k->pos, "'%s' is for images; with color: none the input is a "
                                             "tensor, fed as it is", image_keys[i]);
        }
        in->c = dims[0];
        in->h = dims[1];
        in->w = dims[2];
        in->scale = 1.0f;
        return CNN_OK;
    }
    if (dims[0] != 1 && dims[0] != 3)
        return cnn_pipeline_error_at(p, shape->kids[0]->pos,
                                     "input channels C must be 1 or 3 (got %d; color: none for a tensor input)",
                                     dims[0]);
    in->c = dims[0];
    in->h = dims[1];
    in->w = dims[2];
    in->gray = in->c == 1;

    for (size_t i = 0; i < map_size(v); i++) {
        const node *k = map_key(v, i), *x = map_val(v, i);
        if (is_key(k, "color")) {
            char *color = NULL;
            static const char *const colors[] = {"rgb", "gray", "none", NULL};
            status = get_choice(p, x, "color", colors, "color", &color);
            if (status == CNN_OK) {
                bool gray = strcmp(color, "gray") == 0;
                if (gray != (in->c == 1))
                    status = cnn_pipeline_error_at(p, x->pos,
                                                   "color: %s needs C = %d, but 'shape' has C = %d",
                                                   color, gray ? 1 : 3, in->c);
                in->gray = gray;
            }
            free(color);
        } else if (is_key(k, "resize")) {
            status = parse_resize(p, x);
        } else if (is_key(k, "scale")) {
            status = get_float(p, x, "scale", &in->scale);
            if (status == CNN_OK && !(in->scale > 0))
                status = cnn_pipeline_error_at(p, x->pos, "'scale' must be > 0");
        } else if (is_key(k, "mean") || is_key(k, "std")) {
            bool is_std = is_key(k, "std");
            const char *type = in->c == 1 ? "a list of 1 number (one per channel)"
                                          : "a list of 3 numbers (one per channel)";
            status = get_floats(p, x, k->str, (size_t)in->c, type, is_std ? in->std : in->mean);
            for (int j = 0; status == CNN_OK && is_std && j < in->c; j++)
                if (!(in->std[j] > 0))
                    status = cnn_pipeline_error_at(p, x->kids[j]->pos,
                                                   "'std' values must be > 0 (got %g)",
                                                   (double)in->std[j]);
        }
        if (status < 0) return status;
    }
    return CNN_OK;
}

static int resolve_path(cnn_pipeline *p, const node *v, const char *key, char **out, cnn_pos *pos)
{
    char *raw = NULL;
    int status = get_string(p, v, key, MAX_PATH, &raw);
    if (status < 0) return status;
    *out = cnn_path_join(p->dir, raw);
    free(raw);
    *pos = v->pos;
    return *out ? CNN_OK : CNN_ERR_NOMEM;
}

static int parse_model(cnn_pipeline *p, const node *v)
{
    static const char *const keys[] = {"name", "weights", "labels", "input", NULL};
    int status;
    if ((status = want_map(p, v, "'model'")) < 0) return status;
    if ((status = check_keys(p, v, keys, "'model'")) < 0) return status;
    const node *name = map_get(v, "name"), *input = map_get(v, "input");
    const node *weights = map_get(v, "weights"), *labels = map_get(v, "labels");
    if (!name) return cnn_pipeline_error_at(p, v->pos, "'model' needs 'name'");
    if ((status = get_string(p, name, "name", MAX_NAME, &p->model_name)) < 0) return status;
    if (weights && (status = resolve_path(p, weights, "weights", &p->weights, &p->weights_pos)) < 0)
        return status;
    if (labels && (status = resolve_path(p, labels, "labels", &p->labels, &p->labels_pos)) < 0)
        return status;
    if (!input) return cnn_pipeline_error_at(p, v->pos, "'model' needs 'input'");
    return parse_input(p, input);
}

static const char *const g_tap_keys[] = {
    "layer", "layers", "show", "normalize", "range", "clip", "colormap", "columns", "max_channels",
    "signed", "units", "class", "score", "alpha", "samples", "sigma", "baseline", "window", "step", "curves", "reduce", "cells", "keep", "segments", "kernel_width", "road", "road_noise", "top", "by", "channels", "steps", "lr", "param", "decorrelate",
    "transforms", "tv", "l2", "objective", "sign", "seed", "start", "blur_every", "blur_sigma",
    "octaves", "octave_scale", "jitter", "diversity", "diversity_weight", "size", NULL};

/* road: true (the default percentiles), false, or a list of percentiles
 * strictly between 0 and 100. */
static int get_road(const cnn_pipeline *p, const node *v, cnn_tap_spec *t)
{
    if (v->kind == NODE_SCALAR) {
        bool on = false;
        int status = get_bool(p, v, "road", &on);
        if (status < 0) return status;
        static const float def[] = CNN_ROAD_DEFAULT;
        t->n_road = on ? CNN_ROAD_N_DEFAULT : 0;
        memcpy(t->road, def, sizeof def);
        return CNN_OK;
    }
    if (v->kind != NODE_SEQ || v->n == 0 || v->n > CNN_MAX_ROAD)
        return cnn_pipeline_error_at(p, v->pos, "'road' must be true, false or a list of 1 to %d percentiles",
                                     CNN_MAX_ROAD);
    for (size_t i = 0; i < v->n; i++) {
        int status = get_float(p, v->kids[i], "road", &t->road[i]);
        if (status < 0) return status;
        if (!(t->road[i] > 0 && t->road[i] < 100))
            return cnn_pipeline_error_at(p, v->kids[i]->pos, "'road' percentiles must be between 0 and 100, "
                                         "both excluded (got %g)", (double)t->road[i]);
    }
    t->n_road = (int)v->n;
    return CNN_OK;
}

static int parse_tap_layers(ctx *c, cnn_tap_spec *t, const node *v)
{
    cnn_pipeline *p = c->p;
    size_t n = v->kind == NODE_SEQ ? v->n : 1;
    if (v->kind == NODE_MAP || n == 0)
        return cnn_pipeline_error_at(p, v->pos, "'layer' must be a layer name or a list of layer names");
    t->layers = cnn_calloc(n, sizeof *t->layers);
    if (!t->layers) return CNN_ERR_NOMEM;
    t->n_layers = (int)n;
    for (size_t i = 0; i < n; i++) {
        const node *e = v->kind == NODE_SEQ ? v->kids[i] : v;
        int status = get_ref(p, e, "layer", &t->layers[i]);
        if (status < 0) return status;
        if (strcmp(t->layers[i], "input") != 0 && name_lookup(c, t->layers[i]) < 0)
            return cnn_pipeline_error_at(p, e->pos,
                                         "tap on layer '%s', which is not defined under 'layers'",
                                         show(t->layers[i]).s);
    }
    return CNN_OK;
}

/* channels: [i, j, ...], distinct, each >= 0 (checked against the layer
 * once the graph is known) */
static int get_channels(const cnn_pipeline *p, const node *v, cnn_tap_spec *t)
{
    if (v->kind != NODE_SEQ || v->n == 0 || v->n > CNN_MAX_CHANNEL_LIST)
        return cnn_pipeline_error_at(p, v->pos, "'channels' must be a list of 1 to %d channel indices",
                                     CNN_MAX_CHANNEL_LIST);
    free(t->channels);
    t->channels = cnn_calloc(v->n, sizeof *t->channels);
    if (!t->channels) return CNN_ERR_NOMEM;
    t->n_channels = (int)v->n;
    for (size_t i = 0; i < v->n; i++) {
        int status = get_int(p, v->kids[i], "channels", "a channel index", 0, &t->channels[i]);
        if (status < 0) return status;
        for (size_t j = 0; j < i; j++)
            if (t->channels[j] == t->channels[i])
                return cnn_pipeline_error_at(p, v->kids[i]->pos, "'channels' names channel %d twice", t->channels[i]);
    }
    return CNN_OK;
}

static int parse_tap(ctx *c, size_t idx, const node *m)
{
    cnn_pipeline *p = c->p;
    cnn_tap_spec *t = &p->taps[idx];
    int status;
    char where[32];
    snprintf(where, sizeof where, "tap #%zu", idx + 1);
    if (m->kind != NODE_MAP)
        return cnn_pipeline_error_at(p, m->pos,
                                     "%s must be a mapping like {layer: conv1, show: activations}",
                                     where);
    if ((status = check_keys(p, m, g_tap_keys, where)) < 0) return status;
    t->pos = m->pos;
    t->alpha = 0.5f;
    const node *range = NULL, *normalize = NULL;
    for (size_t i = 0; i < map_size(m); i++) {
        const node *k = map_key(m, i), *v = map_val(m, i);
        const char *key = k->str; /* one of g_tap_keys: checked above */
        float pair[2] = {0, 0};
        if (is_key(k, "layer") || is_key(k, "layers")) {
            if (t->layers)
                return cnn_pipeline_error_at(p, k->pos, "%s: give 'layer' (a map each) or 'layers' (one map fused "
                                             "over them), not both", where);
            t->fuse = is_key(k, "layers");
            status = parse_tap_layers(c, t, v);
            if (status == CNN_OK && t->fuse && t->n_layers > CNN_MAX_FUSE)
                status = cnn_pipeline_error_at(p, v->pos, "'layers': at most %d layers in one fused map (got %d)",
                                               CNN_MAX_FUSE, t->n_layers);
        } else if (is_key(k, "show")) {
            status = get_choice(p, v, key, cnn_tap_kinds, "tap kind", &t->show);
        } else if (is_key(k, "normalize")) {
            status = get_choice(p, v, key, cnn_norm_scopes, "normalize scope", &t->normalize);
            normalize = v;
        } else if (is_key(k, "range")) {
            status = get_floats(p, v, key, 2, "[lo, hi]", pair);
            if (status == CNN_OK && !(pair[0] < pair[1]))
                status = cnn_pipeline_error_at(p, v->pos, "'range' must be [lo, hi] with lo < hi");
            t->fixed[0] = pair[0];
            t->fixed[1] = pair[1];
            t->has_fixed = true;
            range = v;
        } else if (is_key(k, "clip")) {
            status = get_floats(p, v, key, 2, "[lo, hi] percentiles", pair);
            if (status == CNN_OK && !(pair[0] >= 0 && pair[0] < pair[1] && pair[1] <= 100))
                status = cnn_pipeline_error_at(p, v->pos,
                                               "'clip' must be [lo, hi] percentiles with "
                                               "0 <= lo < hi <= 100 (got [%g, %g])",
                                               (double)pair[0], (double)pair[1]);
            t->clip[0] = pair[0];
            t->clip[1] = pair[1];
            t->has_clip = true;
        } else if (is_key(k, "colormap")) {
            status = get_choice(p, v, key, cnn_colormaps, "colormap", &t->colormap);
        } else if (is_key(k, "columns")) {
            status = get_int(p, v, key, "an integer", 1, &t->columns);
        } else if (is_key(k, "max_channels")) {
            status = get_int(p, v, key, "an integer", 1, &t->max_channels);
        } else if (is_key(k, "signed")) {
            status = get_bool(p, v, key, &t->is_signed);
            t->has_signed = true;
        } else if (is_key(k, "units")) {
            status = get_int(p, v, key, "an integer", 0, &t->units);
        } else if (is_key(k, "samples")) {
            status = get_int(p, v, key, "an integer", 1, &t->samples);
        } else if (is_key(k, "window")) {
            status = get_int(p, v, key, "an integer", 1, &t->window);
        } else if (is_key(k, "step")) {
            status = get_int(p, v, key, "an integer", 1, &t->step);
        } else if (is_key(k, "curves")) {
            status = get_int(p, v, key, "an integer", 0, &t->curves);
            if (status == CNN_OK && t->curves > 1000)
                status = cnn_pipeline_error_at(p, v->pos, "'curves' must be at most 1000 steps (got %d)", t->curves);
        } else if (is_key(k, "segments")) {
            status = get_int(p, v, key, "an integer", 2, &t->segments);
            if (status == CNN_OK && t->segments > 1000)
                status = cnn_pipeline_error_at(p, v->pos, "'segments' must be at most 1000 (got %d)", t->segments);
        } else if (is_key(k, "kernel_width")) {
            status = get_float(p, v, key, &t->kernel_width);
            if (status == CNN_OK && !(t->kernel_width > 0 && t->kernel_width < 1e6))
                status = cnn_pipeline_error_at(p, v->pos, "'kernel_width' must be > 0 (got %g)", (double)t->kernel_width);
        } else if (is_key(k, "cells")) {
            status = get_int(p, v, key, "an integer", 1, &t->cells);
            if (status == CNN_OK && t->cells > 256)
                status = cnn_pipeline_error_at(p, v->pos, "'cells' must be at most 256 (got %d)", t->cells);
        } else if (is_key(k, "keep")) {
            status = get_float(p, v, key, &t->keep);
            if (status == CNN_OK && !(t->keep > 0 && t->keep <= 1))
                status = cnn_pipeline_error_at(p, v->pos, "'keep' must be in (0, 1] (got %g)", (double)t->keep);
        } else if (is_key(k, "road")) {
            status = get_road(p, v, t);
        } else if (is_key(k, "road_noise")) {
            status = get_float(p, v, key, &t->road_noise);
            t->has_road_noise = true;
            if (status == CNN_OK && !(t->road_noise >= 0 && t->road_noise <= 100))
                status = cnn_pipeline_error_at(p, v->pos, "'road_noise' must be between 0 and 100 (got %g)",
                                               (double)t->road_noise);
        } else if (is_key(k, "channels")) {
            status = get_channels(p, v, t);
        } else if (is_key(k, "steps")) {
            status = get_int(p, v, key, "an integer", 1, &t->steps);
            if (status == CNN_OK && t->steps > 100000)
                status = cnn_pipeline_error_at(p, v->pos, "'steps' must be 1 to 100000 (got %d)", t->steps);
        } else if (is_key(k, "lr")) {
            status = get_float(p, v, key, &t->lr);
            if (status == CNN_OK && !(t->lr > 0 && t->lr <= 10))
                status = cnn_pipeline_error_at(p, v->pos, "'lr' must be > 0 and at most 10 (got %g)", (double)t->lr);
        } else if (is_key(k, "param")) {
            static const char *const params[] = {"fourier", "pixel", NULL};
            status = get_choice(p, v, key, params, "param", &t->param);
        } else if (is_key(k, "blur_every")) {
            status = get_int(p, v, key, "an integer", 0, &t->blur_every);
        } else if (is_key(k, "blur_sigma")) {
            status = get_float(p, v, key, &t->blur_sigma);
            if (status == CNN_OK && !(t->blur_sigma > 0 && t->blur_sigma <= 10))
                status = cnn_pipeline_error_at(p, v->pos, "'blur_sigma' must be > 0 and at most 10 pixels (got %g)",
                                               (double)t->blur_sigma);
        } else if (is_key(k, "diversity")) {
            status = get_int(p, v, key, "an integer", 1, &t->diversity);
            if (status == CNN_OK && t->diversity > 16)
                status = cnn_pipeline_error_at(p, v->pos, "'diversity' must be 1 to 16 images per channel (got %d)",
                                               t->diversity);
        } else if (is_key(k, "diversity_weight")) {
            status = get_float(p, v, key, &t->diversity_weight);
            t->has_diversity_weight = true;
            if (status == CNN_OK && !(t->diversity_weight >= 0 && t->diversity_weight <= 1e6))
                status = cnn_pipeline_error_at(p, v->pos, "'diversity_weight' must be between 0 and 1e6 (got %g)",
                                               (double)t->diversity_weight);
        } else if (is_key(k, "size")) {
            status = get_hw(p, v, key, 8, t->size);
            if (status == CNN_OK && (t->size[0] > 4096 || t->size[1] > 4096))
                status = cnn_pipeline_error_at(p, v->pos, "'size' must be 8 to 4096 pixels a side (got [%d, %d])",
                                               t->size[0], t->size[1]);
        } else if (is_key(k, "octaves")) {
            status = get_int(p, v, key, "an integer", 1, &t->octaves);
            if (status == CNN_OK && t->octaves > 8)
                status = cnn_pipeline_error_at(p, v->pos, "'octaves' must be 1 to 8 (got %d)", t->octaves);
        } else if (is_key(k, "octave_scale")) {
            status = get_float(p, v, key, &t->octave_scale);
            if (status == CNN_OK && !(t->octave_scale > 1 && t->octave_scale <= 4))
                status = cnn_pipeline_error_at(p, v->pos, "'octave_scale' must be > 1 and at most 4 (got %g)",
                                               (double)t->octave_scale);
        } else if (is_key(k, "jitter")) {
            status = get_int(p, v, key, "an integer", 0, &t->jitter);
            t->has_jitter = true;
            if (status == CNN_OK && t->jitter > 256)
                status = cnn_pipeline_error_at(p, v->pos, "'jitter' must be 0 to 256 pixels (got %d)", t->jitter);
        } else if (is_key(k, "start")) {
            static const char *const starts[] = {"grey", "mean", NULL};
            status = get_choice(p, v, key, starts, "start", &t->start);
        } else if (is_key(k, "decorrelate")) {
            /* true (ImageNet's, as imagenet), false, or inputs: the run's */
            if (v->kind == NODE_SCALAR && v->plain && (!strcmp(v->str, "imagenet") || !strcmp(v->str, "inputs"))) {
                t->decorrelate = true;
                t->decorrelate_inputs = !strcmp(v->str, "inputs");
            } else {
                status = get_bool(p, v, key, &t->decorrelate);
                if (status < 0)
                    status = cnn_pipeline_error_at(p, v->pos, "'decorrelate' must be true, false, imagenet or "
                                                   "inputs");
            }
            t->has_decorrelate = true;
        } else if (is_key(k, "transforms")) {
            status = get_bool(p, v, key, &t->transforms);
            t->has_transforms = true;
        } else if (is_key(k, "tv") || is_key(k, "l2")) {
            float *dst = is_key(k, "tv") ? &t->tv : &t->l2;
            status = get_float(p, v, key, dst);
            if (status == CNN_OK && !(*dst >= 0 && *dst <= 1e6))
                status = cnn_pipeline_error_at(p, v->pos, "'%s' must be between 0 and 1e6 (got %g)", key, (double)*dst);
        } else if (is_key(k, "objective")) {
            static const char *const objs[] = {"channel", "neuron", NULL};
            status = get_choice(p, v, key, objs, "objective", &t->objective);
        } else if (is_key(k, "sign")) {
            status = get_int(p, v, key, "1 or -1", -1, &t->sign);
            if (status == CNN_OK && t->sign != 1 && t->sign != -1)
                status = cnn_pipeline_error_at(p, v->pos, "'sign' must be 1 or -1 (got %d)", t->sign);
        } else if (is_key(k, "seed")) {
            status = get_int(p, v, key, "an integer", 0, &t->seed);
            t->has_seed = true;
        } else if (is_key(k, "top")) {
            status = get_int(p, v, key, "an integer", 1, &t->top);
            if (status == CNN_OK && t->top > CNN_MAX_EXAMPLES)
                status = cnn_pipeline_error_at(p, v->pos, "'top' must be 1 to %d (got %d)", CNN_MAX_EXAMPLES, t->top);
        } else if (is_key(k, "by")) {
            static const char *const bys[] = {"max", "mean", NULL};
            status = get_choice(p, v, key, bys, "by", &t->by);
        } else if (is_key(k, "reduce")) {
            static const char *const reduces[] = {"paper", "per-copy", "magnitude", NULL};
            status = get_choice(p, v, key, reduces, "reduce", &t->reduce);
        } else if (is_key(k, "class")) {
            status = get_string(p, v, key, MAX_NAME, &t->cls);
        } else if (is_key(k, "score")) {
            static const char *const scores[] = {"logit", "prob", NULL};
            status = get_choice(p, v, key, scores, "score", &t->score);
        } else if (is_key(k, "alpha")) {
            status = get_float(p, v, key, &t->alpha);
            if (status == CNN_OK && !(t->alpha >= 0 && t->alpha <= 1))
                status = cnn_pipeline_error_at(p, v->pos, "'alpha' must be between 0 and 1");
        } else if (is_key(k, "sigma")) {
            status = get_float(p, v, key, &t->sigma);
            if (status == CNN_OK && !(t->sigma > 0))
                status = cnn_pipeline_error_at(p, v->pos, "'sigma' must be > 0");
        } else if (is_key(k, "baseline")) {
            static const char *const words[] = {"black", "zero", "blur", NULL};
            float unused;
            status = get_string(p, v, key, MAX_NAME, &t->baseline);
            if (status == CNN_OK && !in_list(words, t->baseline) &&
                get_float(p, v, key, &unused) < 0)
                status = cnn_pipeline_error_at(p, v->pos,
                                               "'baseline' must be black, zero, blur or a number (got '%s')",
                                               show(t->baseline).s);
        }
        if (status < 0) return status;
    }
    if (!t->show)
        return cnn_pipeline_error_at(p, m->pos, "%s needs 'show' (known: %s)", where,
                                     join(cnn_tap_kinds).s);
    if (range && !t->normalize) {
        t->normalize = cnn_strdup("fixed");
        if (!t->normalize) return CNN_ERR_NOMEM;
    } else if (range && strcmp(t->normalize, "fixed") != 0) {
        return cnn_pipeline_error_at(p, range->pos, "'range' needs normalize: fixed (got %s)",
                                     t->normalize);
    } else if (!range && t->normalize && strcmp(t->normalize, "fixed") == 0) {
        return cnn_pipeline_error_at(p, normalize->pos, "normalize: fixed needs 'range: [lo, hi]'");
    }
    if (!t->score && !(t->score = cnn_strdup("logit"))) return CNN_ERR_NOMEM;
    return CNN_OK;
}

static int parse_taps(ctx *c, const node *v)
{
    cnn_pipeline *p = c->p;
    p->taps_given = true;
    if (is_null(v)) return CNN_OK; /* "taps:" alone: explicitly none */
    if (v->kind != NODE_SEQ)
        return cnn_pipeline_error_at(p, v->pos, "'taps' must be a list of taps, not %s",
                                     kind_name(v));
    if (v->n > MAX_TAPS)
        return cnn_pipeline_error_at(p, v->kids[MAX_TAPS]->pos, "more than %d taps", MAX_TAPS);
    if (v->n == 0) return CNN_OK;
    p->taps = cnn_calloc(v->n, sizeof *p->taps);
    if (!p->taps) return CNN_ERR_NOMEM;
    p->n_taps = (int)v->n;
    for (size_t i = 0; i < v->n; i++) {
        int status = parse_tap(c, i, v->kids[i]);
        if (status < 0) return status;
    }
    return CNN_OK;
}

static int parse_output(cnn_pipeline *p, const node *v)
{
    static const char *const keys[] = {"dir", "npy", "report", "top", "png_level", NULL};
    int status;
    if ((status = want_map(p, v, "'output'")) < 0) return status;
    if ((status = check_keys(p, v, keys, "'output'")) < 0) return status;
    for (size_t i = 0; i < map_size(v); i++) {
        const node *k = map_key(v, i), *x = map_val(v, i);
        if (is_key(k, "dir"))
            status = get_string(p, x, "dir", MAX_PATH, &p->out_dir);
        else if (is_key(k, "npy"))
            status = get_bool(p, x, "npy", &p->npy);
        else if (is_key(k, "report"))
            status = get_bool(p, x, "report", &p->report);
        else if (is_key(k, "png_level")) {
            status = get_int(p, x, "png_level", "an integer", 0, &p->png_level);
            if (status == CNN_OK && p->png_level > 9)
                status = cnn_pipeline_error_at(p, x->pos, "'png_level' must be a zlib level 0..9 (got %d)",
                                               p->png_level);
        }
        else if ((status = get_int(p, x, "top", "an integer", 1, &p->top)) == CNN_OK &&
                 p->top > MAX_TOP)
            status = cnn_pipeline_error_at(p, x->pos, "'top' must be <= %d (got %d)", MAX_TOP,
                                           p->top);
        if (status < 0) return status;
    }
    return CNN_OK;
}

static int parse_root(ctx *c, const node *root)
{
    static const char *const keys[] = {"version", "model", "layers", "taps", "output", NULL};
    cnn_pipeline *p = c->p;
    int status;
    if (root->kind != NODE_MAP)
        return cnn_pipeline_error_at(p, root->pos,
                                     "a pipeline file must be a mapping with keys version, "
                                     "model, layers (got %s)",
                                     kind_name(root));
    if ((status = check_keys(p, root, keys, "the pipeline file")) < 0) return status;
    p->report = true;
    p->top = 5;
    p->png_level = 1;

    const node *version = map_get(root, "version");
    if (!version)
        return cnn_pipeline_error_at(p, root->pos, "missing required key 'version' (version: 1)");
    if ((status = get_int(p, version, "version", "an integer", 0, &p->version)) < 0)
        return status;
    if (p->version != 1)
        return cnn_pipeline_error_at(p, version->pos,
                                     "unsupported version %d (this program reads version 1)",
                                     p->version);
    const node *model = map_get(root, "model");
    if (!model) return cnn_pipeline_error_at(p, root->pos, "missing required key 'model'");
    if ((status = parse_model(p, model)) < 0) return status;
    const node *layers = map_get(root, "layers");
    if (!layers) return cnn_pipeline_error_at(p, root->pos, "missing required key 'layers'");
    if ((status = parse_layers(c, layers)) < 0) return status;
    const node *taps = map_get(root, "taps");
    if (taps && (status = parse_taps(c, taps)) < 0) return status;
    const node *output = map_get(root, "output");
    if (output && (status = parse_output(p, output)) < 0) return status;
    return CNN_OK;
}

/* ------------------------------------------------------------------------ */
/* Public API                                                               */

int cnn_pipeline_parse(const char *name, const char *dir, const char *text, size_t len,
                       cnn_pipeline *p)
{
    memset(p, 0, sizeof *p);
    p->path = cnn_strdup(name ? name : "<pipeline>");
    p->dir = cnn_strdup(dir ? dir : ".");
    if (!p->path || !p->dir) return CNN_ERR_NOMEM;
    if (len > MAX_TEXT)
        return cnn_pipeline_error_at(p, (cnn_pos){0, 0},
                                     "pipeline text is %zu bytes, more than the %d allowed", len,
                                     MAX_TEXT);
    if (!text) text = "";
    node *root = NULL;
    int status = build_tree(p, text, len, &root);
    if (status < 0) return status;
    ctx c = {.p = p};
    status = parse_root(&c, root);
    free(c.slots);
    node_free(root);
    return status;
}

int cnn_pipeline_load(const char *path, cnn_pipeline *p)
{
    memset(p, 0, sizeof *p);
    char *text = NULL;
    size_t len = 0;
    int status = cnn_file_read(path, MAX_TEXT, &text, &len);
    if (status < 0) return status;
    char *dir = cnn_path_dir(path);
    if (!dir) {
        free(text);
        return CNN_ERR_NOMEM;
    }
    status = cnn_pipeline_parse(path, dir, text, len, p);
    free(dir);
    free(text);
    return status;
}

void cnn_pipeline_free(cnn_pipeline *p)
{
    if (!p) return;
    for (int i = 0; p->layers && i < p->n_layers; i++) {
        cnn_layer_spec *L = &p->layers[i];
        for (int j = 0; L->in && j < L->n_in; j++) free(L->in[j]);
        free(L->in);
        free(L->in_pos);
        free(L->name);
        free(L->params);
        free(L->cnst);
    }
    free(p->layers);
    for (int i = 0; p->taps && i < p->n_taps; i++) {
        cnn_tap_spec *t = &p->taps[i];
        for (int j = 0; t->layers && j < t->n_layers; j++) free(t->layers[j]);
        free(t->layers);
        free(t->show);
        free(t->normalize);
        free(t->colormap);
        free(t->cls);
        free(t->score);
        free(t->baseline);
        free(t->reduce);
        free(t->by);
        free(t->channels);
        free(t->param);
        free(t->start);
        free(t->objective);
    }
    free(p->taps);
    free(p->path);
    free(p->dir);
    free(p->model_name);
    free(p->weights);
    free(p->labels);
    free(p->out_dir);
    memset(p, 0, sizeof *p);
}

int cnn_pipeline_find(const cnn_pipeline *p, const char *name)
{
    for (int i = 0; p->layers && i < p->n_layers; i++)
        if (p->layers[i].name && strcmp(p->layers[i].name, name) == 0) return i;
    return -1;
}
