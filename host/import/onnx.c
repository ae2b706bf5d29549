#define _POSIX_C_SOURCE 200809L
#include "import/onnx.h"
#include "core/error.h"
#include "core/util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---------------------------------------------------------------------- */
/* A counting allocator: protobuf-c allocates as it decodes, and a small   */
/* hostile file (a million empty nodes, a packed varint list) can ask for  */
/* far more memory than its size.  Decoding fails once the cap is reached. */

typedef struct alloc_state {
    size_t used, cap;
    bool over, oom;
} alloc_state;

#define HDR 16 /* keeps the blocks 16-byte aligned, so float raw_data can be used in place */

static void *count_alloc(void *data, size_t size)
{
    alloc_state *s = data;
    size_t total;
    if (!cnn_add_size(size, HDR, &total) || total > s->cap - s->used) {
        s->over = true;
        return NULL;
    }
    unsigned char *p = malloc(total);
    if (!p) {
        s->oom = true;
        return NULL;
    }
    memcpy(p, &total, sizeof total);
    s->used += total;
    return p + HDR;
}

static void count_free(void *data, void *ptr)
{
    alloc_state *s = data;
    if (!ptr) return;
    unsigned char *p = (unsigned char *)ptr - HDR;
    size_t total;
    memcpy(&total, p, sizeof total);
    s->used -= total;
    free(p);
}

/* ---------------------------------------------------------------------- */
/* The wire format, walked before protobuf-c decodes it: protobuf-c        */
/* recurses once per nested message, so a file of nested attribute graphs  */
/* would exhaust the stack.  The walk follows the schema (the generated    */
/* descriptors say which fields are messages) and checks every length.     */

static bool varint(const uint8_t *p, size_t len, size_t *i, uint64_t *out)
{
    uint64_t v = 0;
    for (int shift = 0; shift < 64 && *i < len; shift += 7) {
        uint8_t b = p[(*i)++];
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *out = v;
            return true;
        }
    }
    return false;
}

typedef struct walk_ctx {
    const char *name;
    int max_depth_seen;
} walk_ctx;

static int walk(walk_ctx *w, const uint8_t *p, size_t len, size_t base, const ProtobufCMessageDescriptor *d,
                int depth)
{
    if (depth > CNN_ONNX_MAX_DEPTH)
        return cnn_error_set(CNN_ERR_INPUT, "%s: not a valid ONNX model: messages nested more than %d deep at "
                             "byte %zu", w->name, CNN_ONNX_MAX_DEPTH, base);
    if (depth > w->max_depth_seen) w->max_depth_seen = depth;
    size_t i = 0;
    while (i < len) {
        size_t at = base + i;
        uint64_t tag, n;
        if (!varint(p, len, &i, &tag))
            return cnn_error_set(CNN_ERR_INPUT, "%s: not a valid ONNX model: truncated or corrupt field tag at byte "
                                 "%zu", w->name, at);
        uint64_t field = tag >> 3;
        unsigned wire = (unsigned)(tag & 7);
        if (field == 0 || field > 536870911u)
            return cnn_error_set(CNN_ERR_INPUT, "%s: not a valid ONNX model: field number 0 at byte %zu "
                                 "(not a protobuf file?)", w->name, at);
        switch (wire) {
        case 0:
            if (!varint(p, len, &i, &n))
                return cnn_error_set(CNN_ERR_INPUT, "%s: not a valid ONNX model: truncated at byte %zu", w->name,
                                     base + len);
            break;
        case 1:
        case 5: {
            size_t k = wire == 1 ? 8 : 4;
            if (len - i < k)
                return cnn_error_set(CNN_ERR_INPUT, "%s: not a valid ONNX model: truncated at byte %zu", w->name,
                                     base + len);
            i += k;
            break;
        }
        case 2: {
            if (!varint(p, len, &i, &n))
                return cnn_error_set(CNN_ERR_INPUT, "%s: not a valid ONNX model: truncated at byte %zu", w->name,
                                     base + len);
            if (n > len - i)
                return cnn_error_set(CNN_ERR_INPUT, "%s: not a valid ONNX model: a field of %llu bytes at byte %zu "
                                     "runs past the end (%zu bytes; truncated file?)", w->name,
                                     (unsigned long long)n, at, base + len);
            const ProtobufCFieldDescriptor *fd = d ? protobuf_c_message_descriptor_get_field(d, (unsigned)field)
                                                   : NULL;
            if (fd && fd->type == PROTOBUF_C_TYPE_MESSAGE) {
                int status = walk(w, p + i, (size_t)n, base + i, fd->descriptor, depth + 1);
                if (status < 0) return status;
            }
            i += (size_t)n;
            break;
        }
        default:
            return cnn_error_set(CNN_ERR_INPUT, "%s: not a valid ONNX model: wire type %u at byte %zu (not a "
                                 "protobuf file?)", w->name, wire, at);
        }
    }
    return CNN_OK;
}

/* ---------------------------------------------------------------------- */

static void unmap_ext(cnn_onnx_ext *e)
{
    if (e->guard) cnn_mapped_file_unregister(e->guard - 1);
    if (e->map && e->len) munmap((void *)(uintptr_t)e->map, e->len);
    free(e->location);
}

void cnn_onnx_close(cnn_onnx_file *f)
{
    if (f->model) {
        ProtobufCAllocator a = {count_alloc, count_free, f->alloc_state};
        protobuf_c_message_free_unpacked(&f->model->base, &a);
    }
    for (int i = 0; i < f->n_ext; i++) unmap_ext(&f->ext[i]);
    free(f->ext);
    free(f->alloc_state);
    free(f->path);
    free(f->dir);
    memset(f, 0, sizeof *f);
}

static bool is_default_domain(const char *d) { return !d || !d[0] || !strcmp(d, "ai.onnx"); }

static int parse(const char *name, const char *dir, const void *buf, size_t len, cnn_onnx_file *f);

int cnn_onnx_parse(const char *name, const char *dir, const void *buf, size_t len, cnn_onnx_file *f)
{
    return cnn_onnx_one_line(parse(name, dir, buf, len, f));
}

static int parse(const char *name, const char *dir, const void *buf, size_t len, cnn_onnx_file *f)
{
    memset(f, 0, sizeof *f);
    f->path = cnn_strdup(name);
    f->dir = dir ? cnn_strdup(dir) : NULL;
    alloc_state *as = cnn_calloc(1, sizeof *as);
    if (!f->path || (dir && !f->dir) || !as) {
        free(as);
        return CNN_ERR_NOMEM;
    }
    f->alloc_state = as;
    if (len == 0) return cnn_error_set(CNN_ERR_INPUT, "%s: not an ONNX model: the file is empty", name);
    if (len > CNN_ONNX_MAX_FILE)
        return cnn_error_set(CNN_ERR_INPUT, "%s: %zu bytes: an ONNX protobuf file is at most 2 GiB (larger models "
                             "keep their tensors in external data)", name, len);
    walk_ctx w = {name, 0};
    int status = walk(&w, buf, len, 0, &onnx__model_proto__descriptor, 0);
    if (status < 0) return status;
    /* Decoded structs take several times the wire bytes for small fields
     * (an 8-byte int64 per 1-byte varint, a struct per 2-byte message). */
    if (!cnn_mul_size(len, 4, &as->cap) || !cnn_add_size(as->cap, (size_t)1 << 30, &as->cap)) as->cap = SIZE_MAX;
    ProtobufCAllocator a = {count_alloc, count_free, as};
    ProtobufCMessage *m = protobuf_c_message_unpack(&onnx__model_proto__descriptor, &a, len, buf);
    if (!m) {
        if (as->over)
            return cnn_error_set(CNN_ERR_INPUT, "%s: not a usable ONNX model: decoding it would take more than "
                                 "%zu MiB of memory", name, as->cap >> 20);
        if (as->oom) return cnn_error_set(CNN_ERR_NOMEM, "%s: out of memory decoding the model", name);
        return cnn_error_set(CNN_ERR_INPUT, "%s: not a valid ONNX model: the protobuf does not decode as a "
                             "ModelProto (a field of the wrong type, or invalid data)", name);
    }
    f->model = (Onnx__ModelProto *)m;
    f->decoded_bytes = as->used;
    if (!f->model->graph)
        return cnn_error_set(CNN_ERR_INPUT, "%s: not an ONNX model: it has no graph (is it an ONNX file?)", name);
    f->opset = -1;
    for (size_t i = 0; i < f->model->n_opset_import; i++) {
        const Onnx__OperatorSetIdProto *o = f->model->opset_import[i];
        if (is_default_domain(o->domain) && o->has_version && o->version > f->opset) f->opset = o->version;
    }
    if (f->opset < 0) {
        /* IR version 2 models predate opset_import: operator set 1. */
        if (f->model->has_ir_version && f->model->ir_version < 3) f->opset = 1;
        else
            return cnn_error_set(CNN_ERR_INPUT, "%s: the model imports no version of the standard ONNX operator set",
                                 name);
    }
    return CNN_OK;
}

int cnn_onnx_open(const char *path, cnn_onnx_file *f)
{
    memset(f, 0, sizeof *f);
    struct stat st;
    int fd = cnn_file_open_read(path, &st);
    if (fd < 0) return fd;
    if ((unsigned long long)st.st_size > CNN_ONNX_MAX_FILE) {
        close(fd);
        return cnn_error_set(CNN_ERR_INPUT, "%s: %lld bytes: an ONNX protobuf file is at most 2 GiB (larger models "
                             "keep their tensors in external data)", path, (long long)st.st_size);
    }
    size_t len = (size_t)st.st_size;
    void *map = NULL;
    if (len) {
        map = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED) {
            int e = errno;
            close(fd);
            return cnn_error_set(CNN_ERR_IO, "%s: cannot map: %s", path, strerror(e));
        }
    }
    close(fd);
    int slot = len ? cnn_mapped_file_register(map, len, path) : -1;
    char *dir = cnn_path_dir(path);
    int status = dir ? parse(path, dir, map, len, f) : CNN_ERR_NOMEM;
    free(dir);
    /* Everything decoded is a copy: the file is not needed any more. */
    if (slot >= 0) cnn_mapped_file_unregister(slot);
    if (len) munmap(map, len);
    return cnn_onnx_one_line(status);
}

/* ---------------------------------------------------------------------- */
/* Tensors                                                                 */

const char *cnn_onnx_type_name(int t)
{
    static const char *const names[] = {"UNDEFINED", "FLOAT",  "UINT8",  "INT8",      "UINT16",     "INT16",
                                        "INT32",     "INT64",  "STRING", "BOOL",      "FLOAT16",    "DOUBLE",
                                        "UINT32",    "UINT64", "COMPLEX64", "COMPLEX128", "BFLOAT16"};
    static _Thread_local char buf[32];
    if (t >= 0 && t < (int)(sizeof names / sizeof names[0])) return names[t];
    snprintf(buf, sizeof buf, "type %d", t);
    return buf;
}

static size_t item_size(int t)
{
    switch (t) {
    case ONNX__TENSOR_PROTO__DATA_TYPE__UINT8: case ONNX__TENSOR_PROTO__DATA_TYPE__INT8:
    case ONNX__TENSOR_PROTO__DATA_TYPE__BOOL:
        return 1;
    case ONNX__TENSOR_PROTO__DATA_TYPE__UINT16: case ONNX__TENSOR_PROTO__DATA_TYPE__INT16:
    case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16: case ONNX__TENSOR_PROTO__DATA_TYPE__BFLOAT16:
        return 2;
    case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT: case ONNX__TENSOR_PROTO__DATA_TYPE__INT32:
    case ONNX__TENSOR_PROTO__DATA_TYPE__UINT32:
        return 4;
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT64: case ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE:
    case ONNX__TENSOR_PROTO__DATA_TYPE__UINT64:
        return 8;
    default:
        return 0; /* strings, complex numbers, unknown */
    }
}

bool cnn_onnx_is_float_type(int t)
{
    return t == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT || t == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16 ||
           t == ONNX__TENSOR_PROTO__DATA_TYPE__BFLOAT16 || t == ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE;
}

bool cnn_onnx_is_int_type(int t) { return item_size(t) && !cnn_onnx_is_float_type(t); }

/* Count of values in the typed field that type t uses. */
static size_t typed_count(const Onnx__TensorProto *t, int dtype)
{
    switch (dtype) {
    case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT: return t->n_float_data;
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT64: return t->n_int64_data;
    case ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE: return t->n_double_data;
    case ONNX__TENSOR_PROTO__DATA_TYPE__UINT32: case ONNX__TENSOR_PROTO__DATA_TYPE__UINT64:
        return t->n_uint64_data;
    default: return t->n_int32_data;
    }
}

/* "123" -> 123; only decimal digits, at most 2^62. */
static bool parse_size(const char *s, size_t *out)
{
    if (!s || !*s) return false;
    unsigned long long v = 0;
    for (const char *c = s; *c; c++) {
        if (*c < '0' || *c > '9' || v > (1ull << 62) / 10) return false;
        v = v * 10 + (unsigned long long)(*c - '0');
    }
    if (v > SIZE_MAX) return false;
    *out = (size_t)v;
    return true;
}

/* Opens `loc` inside folder `dir`, one component at a time without
 * following a symbolic link, and maps it.  A path that could leave the
 * folder is refused before anything is opened. */
static int map_external(cnn_onnx_file *f, const char *tname, const char *loc, cnn_onnx_ext *out)
{
    char shown[300];
    cnn_escape_line(shown, sizeof shown, loc);
    if (!f->dir)
        return cnn_error_set(CNN_ERR_INPUT, "%s: tensor '%s': external data '%s' cannot be read here", f->path, tname,
                             shown);
    size_t n = strlen(loc);
    if (n == 0 || n > 4095)
        return cnn_error_set(CNN_ERR_INPUT, "%s: tensor '%s': external data location is %s", f->path, tname,
                             n ? "too long" : "empty");
    if (loc[0] == '/')
        return cnn_error_set(CNN_ERR_INPUT, "%s: tensor '%s': external data '%s' is an absolute path (refused: it "
                             "must be relative to the model's folder)", f->path, tname, shown);
    char *copy = cnn_strdup(loc);
    if (!copy) return CNN_ERR_NOMEM;
    int status = CNN_OK;
    for (char *c = copy, *save = NULL, *tok = strtok_r(c, "/", &save); tok; tok = strtok_r(NULL, "/", &save)) {
        if (!strcmp(tok, "..")) {
            status = cnn_error_set(CNN_ERR_INPUT, "%s: tensor '%s': external data '%s' has a '..' component "
                                   "(refused: it must stay inside the model's folder)", f->path, tname, shown);
            break;
        }
    }
    free(copy);
    if (status < 0) return status;
    if (!(copy = cnn_strdup(loc))) return CNN_ERR_NOMEM;
    int dfd = open(f->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) {
        int e = errno;
        free(copy);
        return cnn_error_set(CNN_ERR_INPUT, "%s: tensor '%s': cannot open the model's folder for its external "
                             "data: %s", f->path, tname, strerror(e));
    }
    char *save = NULL;
    char *tok = strtok_r(copy, "/", &save);
    int fd = -1;
    while (tok) {
        char *next = strtok_r(NULL, "/", &save);
        int flags = O_RDONLY | O_NOFOLLOW | O_CLOEXEC | (next ? O_DIRECTORY : O_NONBLOCK);
        int nfd = strcmp(tok, ".") == 0 && next ? dup(dfd) : openat(dfd, tok, flags);
        int e = errno;
        struct stat lst;
        bool link = nfd < 0 && fstatat(dfd, tok, &lst, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(lst.st_mode);
        close(dfd);
        dfd = -1;
        if (nfd < 0) {
            const char *why = link || e == ELOOP || e == EMLINK
                                  ? "is or passes through a symbolic link (refused: external data must lie inside "
                                    "the model's folder)"
                              : e == ENOTDIR ? "passes through something that is not a folder"
                                             : strerror(e);
            free(copy);
            return cnn_error_set(CNN_ERR_INPUT, "%s: tensor '%s': external data '%s': %s", f->path, tname, shown,
                                 why);
        }
        if (next) dfd = nfd;
        else fd = nfd;
        tok = next;
    }
    free(copy);
    if (dfd >= 0) close(dfd);
    if (fd < 0)
        return cnn_error_set(CNN_ERR_INPUT, "%s: tensor '%s': external data '%s' names no file", f->path, tname,
                             shown);
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return cnn_error_set(CNN_ERR_INPUT, "%s: tensor '%s': external data '%s' is not a regular file", f->path,
                             tname, shown);
    }
    out->len = (size_t)st.st_size;
    out->map = NULL;
    if (out->len) {
        void *m = mmap(NULL, out->len, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED) {
            int e = errno;
            close(fd);
            return cnn_error_set(CNN_ERR_IO, "%s: tensor '%s': cannot map external data '%s': %s", f->path, tname,
                                 shown, strerror(e));
        }
        out->map = m;
        int slot = cnn_mapped_file_register(m, out->len, loc);
        out->guard = slot + 1;
    }
    close(fd);
    return CNN_OK;
}

static int external_bytes(cnn_onnx_file *f, const Onnx__TensorProto *t, const char *tname, size_t need,
                          const unsigned char **out)
{
    const char *loc = NULL, *off_s = NULL, *len_s = NULL;
    for (size_t i = 0; i < t->n_external_data; i++) {
        const Onnx__StringStringEntryProto *kv = t->external_data[i];
        if (!kv->key) continue;
        if (!strcmp(kv->key, "location")) loc = kv->value;
        else if (!strcmp(kv->key, "offset")) off_s = kv->value;
        else if (!strcmp(kv->key, "length")) len_s = kv->value;
    }
    if (!loc) return cnn_error_set(CNN_ERR_INPUT, "%s: tensor '%s': external data without a location", f->path, tname);
    size_t off = 0, len = need;
    if (off_s && !parse_size(off_s, &off))
        return cnn_error_set(CNN_ERR_INPUT, "%s: tensor '%s': external data offset is not a number", f->path, tname);
    if (len_s && !parse_size(len_s, &len))
        return cnn_error_set(CNN_ERR_INPUT, "%s: tensor '%s': external data length is not a number", f->path, tname);
    if (len != need)
        return cnn_error_set(CNN_ERR_INPUT, "%s: tensor '%s': external data length %zu, but its shape needs %zu "
                             "bytes", f->path, tname, len, need);
    cnn_onnx_ext *e = NULL;
    for (int i = 0; i < f->n_ext && !e; i++)
        if (!strcmp(f->ext[i].location, loc)) e = &f->ext[i];
    if (!e) {
        cnn_onnx_ext *grown = cnn_realloc(f->ext, ((size_t)f->n_ext + 1) * sizeof *grown);
        if (!grown) return CNN_ERR_NOMEM;
        f->ext = grown;
        cnn_onnx_ext ne = {0};
        int status = map_external(f, tname, loc, &ne);
        if (status < 0) return status;
        if (!(ne.location = cnn_strdup(loc))) {
            unmap_ext(&ne);
            return CNN_ERR_NOMEM;
        }
        f->ext[f->n_ext] = ne;
        e = &f->ext[f->n_ext++];
    }
    if (off > e->len || len > e->len - off) {
        char shown[300];
        cnn_escape_line(shown, sizeof shown, loc);
        return cnn_error_set(CNN_ERR_INPUT, "%s: tensor '%s': external data '%s' holds %zu bytes; offset %zu + "
                             "length %zu runs past its end", f->path, tname, shown, e->len, off, len);
    }
    *out = len ? e->map + off : (const unsigned char *)"";
    return CNN_OK;
}

int cnn_onnx_tensor_get(cnn_onnx_file *f, const Onnx__TensorProto *t, cnn_onnx_tensor *out)
{
    memset(out, 0, sizeof *out);
    const char *name = t->name && t->name[0] ? t->name : "(unnamed)";
    out->name = name;
    out->dtype = t->has_data_type ? t->data_type : 0;
    size_t isz = item_size(out->dtype);
    if (!isz)
        return cnn_error_set(CNN_ERR_INPUT, "%s: tensor '%s' has type %s; numbers of a fixed size are needed",
                             f->path, name, cnn_onnx_type_name(out->dtype));
    if (t->n_dims > CNN_ONNX_MAX_DIMS)
        return cnn_error_set(CNN_ERR_INPUT, "%s: tensor '%s' has %zu dimensions (at most %d)", f->path, name,
                             t->n_dims, CNN_ONNX_MAX_DIMS);
    if (t->segment)
        return cnn_error_set(CNN_ERR_INPUT, "%s: tensor '%s' is stored in segments (not supported)", f->path, name);
    out->ndim = (int)t->n_dims;
    uint64_t numel = 1;
    for (size_t i = 0; i < t->n_dims; i++) {
        int64_t d = t->dims[i];
        if (d < 0)
            return cnn_error_set(CNN_ERR_INPUT, "%s: tensor '%s' has a negative dimension (%lld)", f->path, name,
                                 (long long)d);
        out->dims[i] = d;
        /* Checked at each step: both factors are at most 2^31 then. */
        if (d > (int64_t)CNN_ONNX_MAX_VALUES || (numel *= (uint64_t)d) > CNN_ONNX_MAX_VALUES) {
            char shape[160];
            size_t k = 0;
            for (size_t j = 0; j < t->n_dims && k < sizeof shape; j++)
                k += (size_t)snprintf(shape + k, sizeof shape - k, "%s%lld", j ? ", " : "", (long long)t->dims[j]);
            return cnn_error_set(CNN_ERR_INPUT, "%s: tensor '%s' of shape [%s] has more than %llu elements",
                                 f->path, name, shape, (unsigned long long)CNN_ONNX_MAX_VALUES);
        }
    }
    out->numel = (size_t)numel;
    size_t need = out->numel * isz;
    if (t->has_data_location && t->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL)
        return external_bytes(f, t, name, need, &out->bytes);
    if (t->has_raw_data) {
        if (t->raw_data.len != need)
            return cnn_error_set(CNN_ERR_INPUT, "%s: tensor '%s' holds %zu bytes; its shape and type need %zu",
                                 f->path, name, t->raw_data.len, need);
        out->bytes = need ? t->raw_data.data : (const unsigned char *)"";
        return CNN_OK;
    }
    size_t have = typed_count(t, out->dtype);
    if (have != out->numel)
        return cnn_error_set(CNN_ERR_INPUT, "%s: tensor '%s' holds %zu values; its shape needs %zu", f->path, name,
                             have, out->numel);
    return CNN_OK;
}

static uint64_t load_le(const unsigned char *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static bool host_little_endian(void)
{
    const uint32_t one = 1;
    unsigned char b;
    memcpy(&b, &one, 1);
    return b == 1;
}

/* Element k as a double (float types) or int64 (integer types), from raw
 * bytes or the typed field. */
static double float_at(const Onnx__TensorProto *t, const cnn_onnx_tensor *in, size_t k)
{
    size_t isz = item_size(in->dtype);
    uint64_t bits = 0;
    if (in->bytes) bits = load_le(in->bytes + k * isz, isz);
    switch (in->dtype) {
    case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT: {
        if (!in->bytes) return t->float_data[k];
        uint32_t b = (uint32_t)bits;
        float v;
        memcpy(&v, &b, 4);
        return v;
    }
    case ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE: {
        if (!in->bytes) return t->double_data[k];
        double v;
        memcpy(&v, &bits, 8);
        return v;
    }
    case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16:
        return cnn_half_to_float((uint16_t)(in->bytes ? bits : (uint32_t)t->int32_data[k]));
    default: /* BFLOAT16 */
        return cnn_bf16_to_float((uint16_t)(in->bytes ? bits : (uint32_t)t->int32_data[k]));
    }
}

static int64_t int_at(const Onnx__TensorProto *t, const cnn_onnx_tensor *in, size_t k)
{
    size_t isz = item_size(in->dtype);
    if (in->bytes) {
        uint64_t b = load_le(in->bytes + k * isz, isz);
        switch (in->dtype) {
        case ONNX__TENSOR_PROTO__DATA_TYPE__INT8: return (int8_t)b;
        case ONNX__TENSOR_PROTO__DATA_TYPE__INT16: return (int16_t)b;
        case ONNX__TENSOR_PROTO__DATA_TYPE__INT32: return (int32_t)b;
        case ONNX__TENSOR_PROTO__DATA_TYPE__INT64: case ONNX__TENSOR_PROTO__DATA_TYPE__UINT64: return (int64_t)b;
        case ONNX__TENSOR_PROTO__DATA_TYPE__BOOL: return b != 0;
        default: return (int64_t)b; /* unsigned 8, 16, 32 */
        }
    }
    switch (in->dtype) {
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT64: return t->int64_data[k];
    case ONNX__TENSOR_PROTO__DATA_TYPE__UINT32: case ONNX__TENSOR_PROTO__DATA_TYPE__UINT64:
        return (int64_t)t->uint64_data[k];
    case ONNX__TENSOR_PROTO__DATA_TYPE__BOOL: return t->int32_data[k] != 0;
    default: return t->int32_data[k];
    }
}

int cnn_onnx_to_f32(const Onnx__TensorProto *t, const cnn_onnx_tensor *in, float *out)
{
    if (!cnn_onnx_is_float_type(in->dtype) && !cnn_onnx_is_int_type(in->dtype))
        return cnn_error_set(CNN_ERR_INPUT, "tensor '%s' has type %s, not numbers", in->name,
                             cnn_onnx_type_name(in->dtype));
    if (in->dtype == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT && in->bytes && host_little_endian()) {
        if (in->numel) memcpy(out, in->bytes, in->numel * sizeof(float));
        return CNN_OK;
    }
    bool fl = cnn_onnx_is_float_type(in->dtype);
    for (size_t k = 0; k < in->numel; k++) out[k] = fl ? (float)float_at(t, in, k) : (float)int_at(t, in, k);
    return CNN_OK;
}

int cnn_onnx_to_i64(const Onnx__TensorProto *t, const cnn_onnx_tensor *in, int64_t *out)
{
    if (!cnn_onnx_is_int_type(in->dtype))
        return cnn_error_set(CNN_ERR_INPUT, "tensor '%s' has type %s; integers are needed here", in->name,
                             cnn_onnx_type_name(in->dtype));
    for (size_t k = 0; k < in->numel; k++) out[k] = int_at(t, in, k);
    return CNN_OK;
}

int cnn_onnx_one_line(int status)
{
    if (status >= 0 || status == CNN_ERR_INTERRUPTED) return status;
    char buf[CNN_ERROR_MAX];
    cnn_escape_line(buf, sizeof buf, cnn_error_message());
    return cnn_error_set(status, "%s", buf);
}

const Onnx__AttributeProto *cnn_onnx_attr(const Onnx__NodeProto *n, const char *name)
{
    for (size_t i = 0; i < n->n_attribute; i++)
        if (n->attribute[i]->name && !strcmp(n->attribute[i]->name, name)) return n->attribute[i];
    return NULL;
}
