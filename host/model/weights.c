/* Safetensors reader.  The file is untrusted: every length and offset in it
 * is checked before anything is derived from it, and the JSON header goes
 * through two layers.  A byte-level pass rejects what libyaml would accept
 * silently because YAML is a superset of JSON (comments, trailing commas,
 * YAML-only escapes, text after the object) and bounds the nesting before
 * libyaml allocates anything.  Then libyaml's event parser feeds a schema-
 * driven reader that refuses the YAML features visible in events (anchors,
 * aliases, tags, unquoted or single-quoted strings).
 *
 * One file: the byte-level pass and the schema reader enforce one set of
 * bounds on one untrusted file and are reviewed together. */
#define _DEFAULT_SOURCE /* madvise(MADV_DONTNEED): posix_madvise ignores DONTNEED on Linux */
#define _POSIX_C_SOURCE 200809L
#include "model/weights.h"
#include "core/error.h"
#include "core/util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

/* F32 tensors are copied with memcpy straight into host floats. */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "model/weights.c assumes a little-endian host"
#endif

/* Returns the status of a failed step (the message is already set). */
#define TRY(expr)                                                              \
    do {                                                                       \
        int try__s = (expr);                                                   \
        if (try__s < 0) return try__s;                                         \
    } while (0)

#define HEADER_MAX_DEPTH 4          /* top object, entry, shape list: 3 needed */
#define HEADER_MAX_ENTRIES 1000000u /* object members plus list items */
#define SHOW_NAME 160               /* bytes of a tensor name quoted in messages */
#define SHOW_VALUE 48               /* bytes of another user string quoted */

typedef struct dtype_info {
    const char *name;
    cnn_dtype dtype;
    size_t size;
} dtype_info;

static const dtype_info k_dtypes[] = {
    {"F32", CNN_DTYPE_F32, 4},       {"F16", CNN_DTYPE_F16, 2},
    {"BF16", CNN_DTYPE_BF16, 2},     {"F64", CNN_DTYPE_OTHER, 8},
    {"I64", CNN_DTYPE_OTHER, 8},     {"I32", CNN_DTYPE_OTHER, 4},
    {"I16", CNN_DTYPE_OTHER, 2},     {"I8", CNN_DTYPE_OTHER, 1},
    {"U8", CNN_DTYPE_OTHER, 1},      {"U16", CNN_DTYPE_OTHER, 2},
    {"U32", CNN_DTYPE_OTHER, 4},     {"U64", CNN_DTYPE_OTHER, 8},
    {"BOOL", CNN_DTYPE_OTHER, 1},    {"F8_E4M3", CNN_DTYPE_OTHER, 1},
    {"F8_E5M2", CNN_DTYPE_OTHER, 1},
};

/* ---- messages ----------------------------------------------------------- */

/* Copies a user string into buf for quoting: control bytes become '?' so the
 * message stays one line, and a long string is cut (marked "...") at a UTF-8
 * character boundary so the message stays valid text. */
static const char *show(char *buf, size_t size, const char *s, size_t len)
{
    size_t max = size - 4;
    size_t n = len;
    bool cut = false;
    if (n > max) {
        n = max;
        while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80) n--;
        cut = true;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        buf[i] = (ch < 0x20 || ch == 0x7f) ? '?' : (char)ch;
    }
    if (cut) {
        memcpy(buf + n, "...", 3);
        n += 3;
    }
    buf[n] = '\0';
    return buf;
}

typedef struct hdr_ctx {
    const char *path;
    const char *cur; /* tensor being read, for messages; NULL at top level */
    yaml_parser_t yp;
    yaml_event_t ev;
    bool have_ev;
    int depth;
    struct {
        bool is_map;
        size_t children;
    } stack[HEADER_MAX_DEPTH];
    size_t entries;
    cnn_weights *w;
    int cap;
} hdr_ctx;

static int fail(const hdr_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Every header error: "<path>: [tensor '<name>': ]<what>". */
static int fail(const hdr_ctx *c, const char *fmt, ...)
{
    char msg[CNN_ERROR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (c->cur) {
        char name[SHOW_NAME + 4];
        return cnn_error_set(CNN_ERR_INPUT, "%s: tensor '%s': %s", c->path,
                             show(name, sizeof name, c->cur, strlen(c->cur)), msg);
    }
    return cnn_error_set(CNN_ERR_INPUT, "%s: %s", c->path, msg);
}

/* ---- byte-level checks -------------------------------------------------- */

/* Offset of the first byte that does not start a well-formed UTF-8 sequence
 * (overlong forms, surrogates and code points past U+10FFFF included), or n. */
static size_t utf8_first_bad(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned ch = s[i];
        if (ch < 0x80) {
            i++;
            continue;
        }
        size_t extra;
        uint32_t cp, min;
        if ((ch & 0xe0) == 0xc0) {
            extra = 1, cp = ch & 0x1f, min = 0x80;
        } else if ((ch & 0xf0) == 0xe0) {
            extra = 2, cp = ch & 0x0f, min = 0x800;
        } else if ((ch & 0xf8) == 0xf0) {
            extra = 3, cp = ch & 0x07, min = 0x10000;
        } else {
            return i;
        }
        if (n - i <= extra) return i;
        for (size_t j = 1; j <= extra; j++) {
            if ((s[i + j] & 0xc0) != 0x80) return i;
            cp = (cp << 6) | (s[i + j] & 0x3fu);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return i;
        i += extra + 1;
    }
    return n;
}

static bool is_json_space(unsigned char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r';
}

static bool is_hex(unsigned char ch)
{
    return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F');
}

/* The JSON rules that libyaml cannot report to us because YAML allows more.
 * Brackets are balanced only roughly here (libyaml checks them properly); the
 * count serves the depth limit and finding where the top object ends. */
static int check_header_text(const hdr_ctx *c, const unsigned char *h, size_t n)
{
    const void *nul = memchr(h, 0, n);
    if (nul) return fail(c, "header has a NUL byte at offset %zu", (size_t)((const unsigned char *)nul - h));
    size_t bad = utf8_first_bad(h, n);
    if (bad < n) return fail(c, "header is not valid UTF-8 (byte %zu)", bad);

    size_t i = 0;
    while (i < n && is_json_space(h[i])) i++;
    if (i == n || h[i] != '{') return fail(c, "header is not a JSON object (it must start with '{')");

    size_t depth = 0;
    unsigned char last = 0; /* last significant byte outside strings */
    for (; i < n; i++) {
        unsigned char ch = h[i];
        if (ch == '"') {
            for (i++; i < n && h[i] != '"'; i++) {
                if (h[i] < 0x20)
                    return fail(c, "header has a raw control character inside a string (byte %zu)", i);
                if (h[i] != '\\') continue;
                if (++i == n) break;
                if (h[i] == 'u') {
                    if (n - i < 5 || !is_hex(h[i + 1]) || !is_hex(h[i + 2]) || !is_hex(h[i + 3]) ||
                        !is_hex(h[i + 4]))
                        return fail(c, "header has a bad \\u escape (byte %zu)", i - 1);
                    i += 4;
                } else if (!strchr("\"\\/bfnrt", h[i])) {
                    return fail(c, "header has an escape that is not JSON (byte %zu)", i - 1);
                }
            }
            last = '"';
            continue;
        }
        if (is_json_space(ch)) continue;
        if (ch == '#') return fail(c, "header has a comment (byte %zu), which JSON does not allow", i);
        if ((ch == '}' || ch == ']') && last == ',')
            return fail(c, "header has a trailing comma (byte %zu)", i);
        if (ch == '{' || ch == '[') {
            if (++depth > HEADER_MAX_DEPTH)
                return fail(c, "header nests deeper than %d levels (byte %zu)", HEADER_MAX_DEPTH, i);
        } else if (ch == '}' || ch == ']') {
            if (depth > 0 && --depth == 0) {
                for (size_t j = i + 1; j < n; j++)
                    if (!is_json_space(h[j]))
                        return fail(c, "header has data after the JSON object (byte %zu)", j);
                break;
            }
        }
        last = ch;
    }
    return CNN_OK;
}

/* ---- events ------------------------------------------------------------- */

static int yaml_failure(hdr_ctx *c)
{
    const yaml_parser_t *p = &c->yp;
    if (p->error == YAML_MEMORY_ERROR)
        return cnn_error_set(CNN_ERR_NOMEM, "%s: out of memory parsing the header", c->path);
    const char *problem = p->problem ? p->problem : "unknown error";
    if (p->error == YAML_READER_ERROR)
        return fail(c, "header is not valid JSON: %s (byte %zu)", problem, p->problem_offset);
    return fail(c, "header is not valid JSON: %s%s%s at line %zu, column %zu", problem,
                p->context ? " " : "", p->context ? p->context : "", p->problem_mark.line + 1,
                p->problem_mark.column + 1);
}

/* Replaces the current event with the next one, applying the generic limits:
 * no anchors, aliases or tags, bounded depth and entry count. */
static int next_event(hdr_ctx *c)
{
    if (c->have_ev) {
        yaml_event_delete(&c->ev);
        c->have_ev = false;
    }
    if (!yaml_parser_parse(&c->yp, &c->ev)) return yaml_failure(c);
    c->have_ev = true;

    const yaml_event_t *e = &c->ev;
    const yaml_char_t *anchor = NULL, *tag = NULL;
    bool node = true, opens = false, is_map = false;
    switch (e->type) {
    case YAML_ALIAS_EVENT:
        return fail(c, "header uses a YAML alias, which JSON does not have");
    case YAML_SCALAR_EVENT:
        anchor = e->data.scalar.anchor, tag = e->data.scalar.tag;
        break;
    case YAML_SEQUENCE_START_EVENT:
        anchor = e->data.sequence_start.anchor, tag = e->data.sequence_start.tag;
        opens = true;
        break;
    case YAML_MAPPING_START_EVENT:
        anchor = e->data.mapping_start.anchor, tag = e->data.mapping_start.tag;
        opens = is_map = true;
        break;
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT:
        CNN_ASSERT(c->depth > 0);
        c->depth--;
        node = false;
        break;
    default:
        node = false;
        break;
    }
    if (anchor) return fail(c, "header uses a YAML anchor, which JSON does not have");
    if (tag) return fail(c, "header uses a YAML tag, which JSON does not have");
    if (!node) return CNN_OK;
    if (c->depth > 0) {
        /* An entry is an object member (counted at its key) or a list item. */
        size_t k = c->stack[c->depth - 1].children++;
        if (!c->stack[c->depth - 1].is_map || k % 2 == 0) {
            if (++c->entries > HEADER_MAX_ENTRIES)
                return fail(c, "header has more than %u entries", HEADER_MAX_ENTRIES);
        }
    }
    if (opens) {
        if (c->depth == HEADER_MAX_DEPTH)
            return fail(c, "header nests deeper than %d levels", HEADER_MAX_DEPTH);
        c->stack[c->depth].is_map = is_map;
        c->stack[c->depth].children = 0;
        c->depth++;
    }
    return CNN_OK;
}

static bool ev_is_string(const yaml_event_t *e)
{
    return e->type == YAML_SCALAR_EVENT && e->data.scalar.style == YAML_DOUBLE_QUOTED_SCALAR_STYLE;
}

static bool ev_string_is(const yaml_event_t *e, const char *s)
{
    size_t n = strlen(s);
    return ev_is_string(e) && e->data.scalar.length == n && memcmp(e->data.scalar.value, s, n) == 0;
}

/* What the current event is, for "expected X, not Y" messages. */
static const char *ev_kind(const yaml_event_t *e)
{
    switch (e->type) {
    case YAML_MAPPING_START_EVENT: return "an object";
    case YAML_SEQUENCE_START_EVENT: return "a list";
    case YAML_SCALAR_EVENT:
        if (e->data.scalar.style == YAML_DOUBLE_QUOTED_SCALAR_STYLE) return "a string";
        if (e->data.scalar.style == YAML_PLAIN_SCALAR_STYLE) return "a bare value";
        return "a non-JSON string";
    default: return "something else";
    }
}

/* ---- schema ------------------------------------------------------------- */

/* A JSON integer without sign, fraction, exponent or leading zeros, at most
 * `limit`; YAML's other spellings (0x10, 1_000, 1e3, +1) are refused. */
static int parse_uint(hdr_ctx *c, const char *what, int index, uint64_t limit, uint64_t *out)
{
    const yaml_event_t *e = &c->ev;
    if (e->type != YAML_SCALAR_EVENT)
        return fail(c, "%s[%d] must be a non-negative integer, not %s", what, index, ev_kind(e));
    const char *s = (const char *)e->data.scalar.value;
    size_t n = e->data.scalar.length;
    char shown[SHOW_VALUE + 4];
    show(shown, sizeof shown, s, n);
    bool ok = e->data.scalar.style == YAML_PLAIN_SCALAR_STYLE && n > 0 && !(n > 1 && s[0] == '0');
    uint64_t v = 0;
    for (size_t i = 0; ok && i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            ok = false;
            break;
        }
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (limit - d) / 10)
            return fail(c, "%s[%d] = %s is too large (the limit is %llu)", what, index, shown,
                        (unsigned long long)limit);
        v = v * 10 + d;
    }
    if (!ok) {
        const char *q = e->data.scalar.style == YAML_PLAIN_SCALAR_STYLE ? "" : "\"";
        return fail(c, "%s[%d] must be a non-negative integer, not %s%s%s", what, index, q, shown, q);
    }
    *out = v;
    return CNN_OK;
}

static int parse_dtype(hdr_ctx *c, cnn_weight_tensor *t, size_t *itemsize)
{
    TRY(next_event(c));
    const yaml_event_t *e = &c->ev;
    if (!ev_is_string(e)) return fail(c, "dtype must be a string, not %s", ev_kind(e));
    for (size_t i = 0; i < sizeof k_dtypes / sizeof k_dtypes[0]; i++) {
        if (ev_string_is(e, k_dtypes[i].name)) {
            t->dtype = k_dtypes[i].dtype;
            CNN_ASSERT(strlen(k_dtypes[i].name) < sizeof t->dtype_name);
            strcpy(t->dtype_name, k_dtypes[i].name);
            *itemsize = k_dtypes[i].size;
            return CNN_OK;
        }
    }
    char shown[SHOW_VALUE + 4];
    return fail(c, "unknown dtype '%s'",
                show(shown, sizeof shown, (const char *)e->data.scalar.value, e->data.scalar.length));
}

static int parse_shape(hdr_ctx *c, cnn_weight_tensor *t)
{
    TRY(next_event(c));
    if (c->ev.type != YAML_SEQUENCE_START_EVENT)
        return fail(c, "shape must be a list of integers, not %s", ev_kind(&c->ev));
    for (;;) {
        TRY(next_event(c));
        if (c->ev.type == YAML_SEQUENCE_END_EVENT) return CNN_OK;
        if (t->ndim == CNN_WEIGHTS_MAX_DIMS)
            return fail(c, "shape has more than %d dimensions", CNN_WEIGHTS_MAX_DIMS);
        uint64_t v;
        TRY(parse_uint(c, "shape", t->ndim, INT64_MAX, &v));
        t->shape[t->ndim++] = (int64_t)v;
    }
}

static int parse_offsets(hdr_ctx *c, uint64_t off[2])
{
    TRY(next_event(c));
    if (c->ev.type != YAML_SEQUENCE_START_EVENT)
        return fail(c, "data_offsets must be a list [begin, end], not %s", ev_kind(&c->ev));
    uint64_t limit = SIZE_MAX < INT64_MAX ? SIZE_MAX : INT64_MAX;
    int n = 0;
    for (;;) {
        TRY(next_event(c));
        if (c->ev.type == YAML_SEQUENCE_END_EVENT) break;
        if (n == 2) return fail(c, "data_offsets must be [begin, end], it has more than 2 items");
        TRY(parse_uint(c, "data_offsets", n, limit, &off[n]));
        n++;
    }
    if (n != 2) return fail(c, "data_offsets must be [begin, end], it has %d item%s", n, n == 1 ? "" : "s");
    return CNN_OK;
}

static void format_shape(const cnn_weight_tensor *t, char *buf, size_t size)
{
    size_t len = 0;
    len += (size_t)snprintf(buf, size, "[");
    for (int i = 0; i < t->ndim && len < size; i++)
        len += (size_t)snprintf(buf + len, size - len, "%s%lld", i ? ", " : "", (long long)t->shape[i]);
    if (len < size) snprintf(buf + len, size - len, "]");
}

/* The size rules: numel * itemsize == end - begin <= what the file holds. */
static int check_sizes(hdr_ctx *c, cnn_weight_tensor *t, size_t itemsize, const uint64_t off[2])
{
    char shape[CNN_WEIGHTS_MAX_DIMS * 22 + 4];
    format_shape(t, shape, sizeof shape);
    bool has_zero = false;
    for (int i = 0; i < t->ndim; i++) has_zero |= t->shape[i] == 0;
    /* A zero dimension makes any product 0, whatever the other dimensions. */
    size_t numel = has_zero ? 0 : 1, nbytes;
    for (int i = 0; i < t->ndim && !has_zero; i++) {
        if ((uint64_t)t->shape[i] > SIZE_MAX || !cnn_mul_size(numel, (size_t)t->shape[i], &numel))
            return fail(c, "%s %s is too large: its element count overflows", t->dtype_name, shape);
    }
    if (!cnn_mul_size(numel, itemsize, &nbytes))
        return fail(c, "%s %s is too large: its byte size overflows", t->dtype_name, shape);
    size_t begin = (size_t)off[0], end = (size_t)off[1];
    if (begin > end) return fail(c, "data_offsets [%zu, %zu] are reversed (begin > end)", begin, end);
    if (end - begin != nbytes)
        return fail(c, "data_offsets [%zu, %zu] hold %zu bytes but %s %s needs %zu", begin, end,
                    end - begin, t->dtype_name, shape, nbytes);
    if (end > c->w->data_len)
        return fail(c, "data_offsets [%zu, %zu] run past the end of the %zu-byte data section", begin,
                    end, c->w->data_len);
    t->numel = numel;
    t->offset = begin;
    t->nbytes = nbytes;
    return CNN_OK;
}

static int parse_tensor(hdr_ctx *c, cnn_weight_tensor *t)
{
    TRY(next_event(c));
    if (c->ev.type != YAML_MAPPING_START_EVENT)
        return fail(c, "entry must be an object with dtype, shape and data_offsets, not %s",
                    ev_kind(&c->ev));
    bool have_dtype = false, have_shape = false, have_offsets = false;
    size_t itemsize = 0;
    uint64_t off[2] = {0, 0};
    for (;;) {
        TRY(next_event(c));
        const yaml_event_t *e = &c->ev;
        if (e->type == YAML_MAPPING_END_EVENT) break;
        if (!ev_is_string(e)) return fail(c, "keys must be strings, not %s", ev_kind(e));
        bool *seen;
        if (ev_string_is(e, "dtype"))
            seen = &have_dtype;
        else if (ev_string_is(e, "shape"))
            seen = &have_shape;
        else if (ev_string_is(e, "data_offsets"))
            seen = &have_offsets;
        else {
            char shown[SHOW_VALUE + 4];
            return fail(c, "unexpected key '%s' (only dtype, shape and data_offsets are allowed)",
                        show(shown, sizeof shown, (const char *)e->data.scalar.value, e->data.scalar.length));
        }
        if (*seen) return fail(c, "duplicate key '%s'", (const char *)e->data.scalar.value);
        *seen = true;
        if (seen == &have_dtype)
            TRY(parse_dtype(c, t, &itemsize));
        else if (seen == &have_shape)
            TRY(parse_shape(c, t));
        else
            TRY(parse_offsets(c, off));
    }
    if (!have_dtype) return fail(c, "missing 'dtype'");
    if (!have_shape) return fail(c, "missing 'shape'");
    if (!have_offsets) return fail(c, "missing 'data_offsets'");
    return check_sizes(c, t, itemsize, off);
}

/* __metadata__ is free-form text for other tools; only its form is checked. */
static int skip_metadata(hdr_ctx *c)
{
    TRY(next_event(c));
    if (c->ev.type != YAML_MAPPING_START_EVENT)
        return fail(c, "'__metadata__' must be an object of strings, not %s", ev_kind(&c->ev));
    for (;;) {
        TRY(next_event(c));
        if (c->ev.type == YAML_MAPPING_END_EVENT) return CNN_OK;
        if (!ev_is_string(&c->ev))
            return fail(c, "'__metadata__' keys must be strings, not %s", ev_kind(&c->ev));
        TRY(next_event(c));
        if (!ev_is_string(&c->ev))
            return fail(c, "'__metadata__' values must be strings, not %s", ev_kind(&c->ev));
    }
}

/* Names end up in messages and output file names: no empty names, no
 * control characters (a "\u0000" escape would also cut the C string). */
static int check_name(hdr_ctx *c, const yaml_event_t *e)
{
    const char *s = (const char *)e->data.scalar.value;
    size_t n = e->data.scalar.length;
    if (n == 0) return fail(c, "a tensor has an empty name");
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch < 0x20 || ch == 0x7f) {
            char shown[SHOW_NAME + 4];
            return fail(c, "tensor name '%s' contains a control character", show(shown, sizeof shown, s, n));
        }
    }
    return CNN_OK;
}

static int add_tensor(hdr_ctx *c, cnn_weight_tensor **out)
{
    cnn_weights *w = c->w;
    if (w->n == c->cap) {
        int cap = c->cap ? c->cap * 2 : 16;
        size_t bytes;
        if (!cnn_mul_size((size_t)cap, sizeof *w->tensors, &bytes))
            return cnn_error_set(CNN_ERR_NOMEM, "%s: too many tensors", c->path);
        cnn_weight_tensor *p = cnn_realloc(w->tensors, bytes);
        if (!p) return CNN_ERR_NOMEM;
        w->tensors = p;
        c->cap = cap;
    }
    cnn_weight_tensor *t = &w->tensors[w->n];
    memset(t, 0, sizeof *t);
    t->name = cnn_strdup((const char *)c->ev.data.scalar.value);
    if (!t->name) return CNN_ERR_NOMEM;
    w->n++;
    *out = t;
    return CNN_OK;
}

static int parse_events(hdr_ctx *c)
{
    TRY(next_event(c)); /* stream start */
    TRY(next_event(c)); /* document start */
    TRY(next_event(c));
    if (c->ev.type != YAML_MAPPING_START_EVENT)
        return fail(c, "header is not a JSON object but %s", ev_kind(&c->ev));
    bool have_meta = false;
    for (;;) {
        TRY(next_event(c));
        if (c->ev.type == YAML_MAPPING_END_EVENT) break;
        if (!ev_is_string(&c->ev))
            return fail(c, "header keys must be strings, not %s", ev_kind(&c->ev));
        if (ev_string_is(&c->ev, "__metadata__")) {
            if (have_meta) return fail(c, "header has '__metadata__' twice");
            have_meta = true;
            TRY(skip_metadata(c));
            continue;
        }
        TRY(check_name(c, &c->ev));
        cnn_weight_tensor *t = NULL;
        TRY(add_tensor(c, &t));
        c->cur = t->name;
        TRY(parse_tensor(c, t));
        c->cur = NULL;
    }
    TRY(next_event(c));
    if (c->ev.type != YAML_DOCUMENT_END_EVENT) return fail(c, "header has more than one JSON value");
    TRY(next_event(c));
    if (c->ev.type != YAML_STREAM_END_EVENT) return fail(c, "header has more than one JSON value");
    return CNN_OK;
}

/* ---- whole-file rules --------------------------------------------------- */

static int cmp_by_name(const void *a, const void *b)
{
    const cnn_weight_tensor *x = *(const cnn_weight_tensor *const *)a;
    const cnn_weight_tensor *y = *(const cnn_weight_tensor *const *)b;
    int r = strcmp(x->name, y->name);
    return r ? r : (x > y) - (x < y);
}

static int cmp_by_offset(const void *a, const void *b)
{
    const cnn_weight_tensor *x = *(const cnn_weight_tensor *const *)a;
    const cnn_weight_tensor *y = *(const cnn_weight_tensor *const *)b;
    if (x->offset != y->offset) return x->offset < y->offset ? -1 : 1;
    return (x > y) - (x < y);
}

/* Duplicates and overlaps, both by sorting; after a sort by begin, any
 * overlap shows up between neighbours.  Empty tensors occupy no bytes. */
static int check_layout(hdr_ctx *c)
{
    cnn_weights *w = c->w;
    if (w->n < 2) return CNN_OK;
    cnn_weight_tensor **order = cnn_malloc((size_t)w->n * sizeof *order);
    if (!order) return CNN_ERR_NOMEM;
    int status = CNN_OK;
    for (int i = 0; i < w->n; i++) order[i] = &w->tensors[i];
    qsort(order, (size_t)w->n, sizeof *order, cmp_by_name);
    for (int i = 1; i < w->n; i++) {
        if (strcmp(order[i - 1]->name, order[i]->name) == 0) {
            c->cur = order[i]->name;
            status = fail(c, "appears more than once in the header");
            c->cur = NULL;
            goto done;
        }
    }
    int m = 0;
    for (int i = 0; i < w->n; i++)
        if (w->tensors[i].nbytes) order[m++] = &w->tensors[i];
    qsort(order, (size_t)m, sizeof *order, cmp_by_offset);
    for (int i = 1; i < m; i++) {
        const cnn_weight_tensor *a = order[i - 1], *b = order[i];
        if (a->offset + a->nbytes > b->offset) {
            char na[SHOW_NAME + 4], nb[SHOW_NAME + 4];
            status = fail(c, "tensors '%s' [%zu, %zu] and '%s' [%zu, %zu] overlap",
                          show(na, sizeof na, a->name, strlen(a->name)), a->offset,
                          a->offset + a->nbytes, show(nb, sizeof nb, b->name, strlen(b->name)),
                          b->offset, b->offset + b->nbytes);
            goto done;
        }
    }
done:
    free(order);
    return status;
}

static int parse_header(cnn_weights *w, const unsigned char *h, size_t n)
{
    hdr_ctx c;
    memset(&c, 0, sizeof c);
    c.path = w->path;
    c.w = w;
    int status = check_header_text(&c, h, n);
    if (status < 0) return status;
    if (!yaml_parser_initialize(&c.yp))
        return cnn_error_set(CNN_ERR_NOMEM, "%s: out of memory starting the header parser", w->path);
    yaml_parser_set_input_string(&c.yp, h, n);
    yaml_parser_set_encoding(&c.yp, YAML_UTF8_ENCODING);
    status = parse_events(&c);
    if (c.have_ev) yaml_event_delete(&c.ev);
    yaml_parser_delete(&c.yp);
    if (status < 0) return status;
    return check_layout(&c);
}

/* Everything after the bytes are in memory: w->path is set, and on failure
 * the caller closes w. */
static int open_common(cnn_weights *w, const unsigned char *buf, size_t len)
{
    if (len < 8)
        return cnn_error_set(CNN_ERR_INPUT, "%s: file is %zu bytes, too short for a safetensors header",
                             w->path, len);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | buf[i];
    if (hlen == 0) return cnn_error_set(CNN_ERR_INPUT, "%s: header length is 0", w->path);
    if (hlen > CNN_WEIGHTS_MAX_HEADER)
        return cnn_error_set(CNN_ERR_INPUT, "%s: header length %llu is more than the %u bytes allowed",
                             w->path, (unsigned long long)hlen, (unsigned)CNN_WEIGHTS_MAX_HEADER);
    if (hlen > len - 8)
        return cnn_error_set(CNN_ERR_INPUT, "%s: header length %llu runs past the end of the %zu-byte file",
                             w->path, (unsigned long long)hlen, len);
    w->data = buf + 8 + hlen;
    w->data_len = len - 8 - (size_t)hlen;
    return parse_header(w, buf + 8, (size_t)hlen);
}

int cnn_weights_open_memory(const char *name, const void *buf, size_t len, cnn_weights *w)
{
    memset(w, 0, sizeof *w);
    w->path = cnn_strdup(name ? name : "<memory>");
    if (!w->path) return CNN_ERR_NOMEM;
    int status = open_common(w, buf, len);
    if (status < 0) cnn_weights_close(w);
    return status;
}

int cnn_weights_open(const char *path, cnn_weights *w)
{
    memset(w, 0, sizeof *w);
    struct stat st;
    int fd = cnn_file_open_read(path, &st);
    if (fd < 0) return fd;
    /* Size checks before mmap: a zero-length map fails with a confusing
     * EINVAL, and the length must fit in size_t. */
    if (st.st_size < 8) {
        close(fd);
        return cnn_error_set(CNN_ERR_INPUT, "%s: file is %lld bytes, too short for a safetensors header",
                             path, (long long)st.st_size);
    }
    if ((unsigned long long)st.st_size > SIZE_MAX) {
        close(fd);
        return cnn_error_set(CNN_ERR_INPUT, "%s: file is too large to map", path);
    }
    size_t len = (size_t)st.st_size;
    void *map = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
    int map_errno = errno;
    close(fd);
    if (map == MAP_FAILED)
        return cnn_error_set(CNN_ERR_IO, "%s: cannot map the file: %s", path, strerror(map_errno));
    w->map = map;
    w->map_len = len;
    w->map_guard = cnn_mapped_file_register(map, len, path) + 1;
    w->path = cnn_strdup(path);
    int status = w->path ? open_common(w, map, len) : CNN_ERR_NOMEM;
    if (status < 0) cnn_weights_close(w);
    return status;
}

void cnn_weights_close(cnn_weights *w)
{
    if (!w) return;
    for (int i = 0; i < w->n; i++) free(w->tensors[i].name);
    free(w->tensors);
    if (w->map) {
        cnn_mapped_file_unregister(w->map_guard - 1);
        munmap(w->map, w->map_len);
    }
    free(w->path);
    memset(w, 0, sizeof *w);
}

void cnn_weights_drop_range(const cnn_weights *w, const void *p, size_t nbytes)
{
    if (!w->map || !nbytes) return;
    CNN_ASSERT((const unsigned char *)p >= w->data && nbytes <= w->data_len &&
               (size_t)((const unsigned char *)p - w->data) <= w->data_len - nbytes);
    /* The mapping is private and read-only: dropping clean pages loses
     * nothing.  Whole pages only, rounded outward (a neighbour sharing an
     * edge page reads it back if it needs it). */
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t lo = (uintptr_t)p & ~(page - 1);
    uintptr_t hi = ((uintptr_t)p + nbytes + page - 1) & ~(page - 1);
    uintptr_t end = ((uintptr_t)w->map + w->map_len + page - 1) & ~(page - 1);
    if (hi > end) hi = end;
    if (hi > lo) (void)madvise((void *)lo, hi - lo, MADV_DONTNEED);
}

void cnn_weights_drop_pages(const cnn_weights *w, const cnn_weight_tensor *t)
{
    if (w->data && t->nbytes) cnn_weights_drop_range(w, w->data + t->offset, t->nbytes);
}

const cnn_weight_tensor *cnn_weights_find(const cnn_weights *w, const char *name)
{
    for (int i = 0; i < w->n; i++)
        if (strcmp(w->tensors[i].name, name) == 0) return &w->tensors[i];
    return NULL;
}

/* The exponent field of a float32: all ones for NaN and Inf. */
#define F32_EXP 0x7f800000u

bool cnn_weights_scan_f32(const float *v, size_t n, cnn_nonfinite_count *c)
{
    memset(c, 0, sizeof *c);
    /* Bits, not isnan/isinf: the test stays a mask and a compare, which
     * the compiler vectorises (a model's worth of floats in tens of ms). */
    unsigned any = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, v + i, sizeof u);
        any |= (u & F32_EXP) == F32_EXP;
    }
    if (!any) return false;
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, v + i, sizeof u);
        if ((u & F32_EXP) != F32_EXP) continue;
        if (u & 0x007fffffu) c->nan++;
        else if (u >> 31) c->neg_inf++;
        else c->pos_inf++;
    }
    return true;
}

int cnn_weights_to_f32(const cnn_weights *w, const cnn_weight_tensor *t, float *out)
{
    CNN_ASSERT(t->offset <= w->data_len && t->nbytes <= w->data_len - t->offset);
    const unsigned char *p = w->data + t->offset;
    switch (t->dtype) {
    case CNN_DTYPE_F32:
        /* memcpy because the data section has no alignment guarantee. */
        if (t->nbytes) memcpy(out, p, t->nbytes);
        return CNN_OK;
    case CNN_DTYPE_F16:
        for (size_t i = 0; i < t->numel; i++)
            out[i] = cnn_half_to_float((uint16_t)(p[2 * i] | (unsigned)p[2 * i + 1] << 8));
        return CNN_OK;
    case CNN_DTYPE_BF16:
        for (size_t i = 0; i < t->numel; i++)
            out[i] = cnn_bf16_to_float((uint16_t)(p[2 * i] | (unsigned)p[2 * i + 1] << 8));
        return CNN_OK;
    case CNN_DTYPE_OTHER:
        break;
    }
    char name[SHOW_NAME + 4];
    return cnn_error_set(CNN_ERR_INPUT, "%s: tensor '%s' has dtype %s, which cannot be converted to float32",
                         w->path, show(name, sizeof name, t->name, strlen(t->name)), t->dtype_name);
}
