#define _DEFAULT_SOURCE
#include "io/inputs.h"
#include "core/error.h"
#include "core/util.h"
#include "io/npy.h"

#include <ctype.h>
#include <stdbool.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_INPUTS 10000000
#define MAX_DEPTH 32

static int push(cnn_input_list *l, const char *path)
{
    if (l->n >= MAX_INPUTS) return cnn_error_set(CNN_ERR_INPUT, "more than %d inputs", MAX_INPUTS);
    if (l->n == l->cap) {
        int cap = l->cap ? l->cap * 2 : 16;
        char **p = cnn_realloc(l->paths, (size_t)cap * sizeof *p);
        if (!p) return CNN_ERR_NOMEM;
        l->paths = p;
        l->cap = cap;
    }
    l->paths[l->n] = cnn_strdup(path);
    if (!l->paths[l->n]) return CNN_ERR_NOMEM;
    l->n++;
    return CNN_OK;
}

static bool is_image_name(const char *name)
{
    const char *dot = strrchr(name, '.');
    if (!dot) return false;
    char ext[8] = {0};
    for (int i = 0; i < 7 && dot[1 + i]; i++) ext[i] = (char)tolower((unsigned char)dot[1 + i]);
    return !strcmp(ext, "png") || !strcmp(ext, "jpg") || !strcmp(ext, "jpeg");
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Errors about an entry carry where it was named: "--input " or
 * "list.txt:3: " before the message (an interruption stays as it is). */
static int located(int status, const char *where)
{
    if (status == CNN_ERR_INTERRUPTED || !where) return status;
    char msg[CNN_ERROR_MAX];
    snprintf(msg, sizeof msg, "%s", cnn_error_message());
    return cnn_error_set(status, "%s%s", where, msg);
}

static int add_dir(cnn_input_list *l, const char *dir, int depth)
{
    if (depth > MAX_DEPTH) return cnn_error_set(CNN_ERR_INPUT, "%s: folders nested too deep", dir);
    DIR *d = opendir(dir);
    if (!d) return cnn_error_set(CNN_ERR_INPUT, "%s: cannot open folder: %s", dir, strerror(errno));
    cnn_input_list sub = {0};
    int status = CNN_OK;
    struct dirent *e;
    while ((e = readdir(d)) && status == CNN_OK) {
        if (e->d_name[0] == '.') continue;
        char *p = cnn_path_join(dir, e->d_name);
        if (!p) {
            status = CNN_ERR_NOMEM;
            break;
        }
        struct stat st;
        if (stat(p, &st) == 0) {
            if (S_ISDIR(st.st_mode) || (S_ISREG(st.st_mode) && is_image_name(e->d_name)))
                status = push(&sub, p);
            else if (is_image_name(e->d_name) && !S_ISREG(st.st_mode))
                status = cnn_file_refuse_kind(p, st.st_mode);
        }
        free(p);
    }
    closedir(d);
    if (sub.n) qsort(sub.paths, (size_t)sub.n, sizeof *sub.paths, cmp_str);
    for (int i = 0; i < sub.n && status == CNN_OK; i++) {
        struct stat st;
        if (stat(sub.paths[i], &st) == 0 && S_ISDIR(st.st_mode))
            status = add_dir(l, sub.paths[i], depth + 1);
        else
            status = push(l, sub.paths[i]);
    }
    cnn_inputs_free(&sub);
    return status;
}

/* The lists being read, outermost first, by device and inode: the same
 * file under another name (a link, "./x.txt") is still the same list. */
typedef struct open_lists {
    dev_t dev[CNN_INPUTS_MAX_LIST_DEPTH];
    ino_t ino[CNN_INPUTS_MAX_LIST_DEPTH];
    int n;
} open_lists;

static int add_list(cnn_input_list *l, const char *listfile, const char *where, open_lists *open);

/* A file or folder, named by `where` ("--input " or "list.txt:3: "). */
static int add_path(cnn_input_list *l, const char *path, const char *where)
{
    struct stat st;
    if (stat(path, &st) != 0) return cnn_error_set(CNN_ERR_INPUT, "%s%s: %s", where, path, strerror(errno));
    if (S_ISDIR(st.st_mode)) {
        int before = l->n;
        int status = add_dir(l, path, 0);
        if (status == CNN_OK && l->n == before)
            return cnn_error_set(CNN_ERR_INPUT, "%s%s: no .png/.jpg/.jpeg files in this folder", where, path);
        return status;
    }
    if (!S_ISREG(st.st_mode)) return located(cnn_file_refuse_kind(path, st.st_mode), where);
    return push(l, path);
}

typedef struct list_reader {
    cnn_input_list *l;
    const char *name; /* the list file, as named */
    char *dir;        /* entries are relative to this folder */
    open_lists *open;
} list_reader;

static int on_entry(void *ctx, int line, const char *entry)
{
    list_reader *r = ctx;
    bool is_list = entry[0] == '@';
    char *path = cnn_path_join(r->dir, entry + is_list);
    char *where = cnn_strfmt("%s:%d: %s", r->name, line, is_list ? "@" : "");
    int status = path && where ? CNN_OK : CNN_ERR_NOMEM;
    if (status == CNN_OK)
        status = is_list ? add_list(r->l, path, where, r->open) : add_path(r->l, path, where);
    free(where);
    free(path);
    return status;
}

static int add_list(cnn_input_list *l, const char *listfile, const char *where, open_lists *open)
{
    struct stat st;
    int fd = cnn_file_open_read(listfile, &st);
    if (fd < 0) return located(fd, where);
    int status = CNN_OK;
    for (int i = 0; i < open->n && status == CNN_OK; i++)
        if (open->dev[i] == st.st_dev && open->ino[i] == st.st_ino)
            status = cnn_error_set(CNN_ERR_INPUT,
                                   "%s%s: this list is being read already (lists that name themselves or each "
                                   "other would never end)",
                                   where, listfile);
    if (status == CNN_OK && open->n == CNN_INPUTS_MAX_LIST_DEPTH)
        status = cnn_error_set(CNN_ERR_INPUT, "%s%s: lists nested more than %d deep", where, listfile,
                               CNN_INPUTS_MAX_LIST_DEPTH);
    char *text = NULL;
    size_t len = 0;
    if (status == CNN_OK)
        status = located(cnn_file_read_fd(fd, listfile, (long long)st.st_size, 64u << 20, &text, &len), where);
    close(fd);
    if (status < 0) return status;
    list_reader r = {.l = l, .name = listfile, .dir = cnn_path_dir(listfile), .open = open};
    if (!r.dir) {
        free(text);
        return CNN_ERR_NOMEM;
    }
    open->dev[open->n] = st.st_dev;
    open->ino[open->n] = st.st_ino;
    open->n++;
    status = cnn_inputs_parse_list(listfile, text, len, on_entry, &r);
    open->n--;
    free(r.dir);
    free(text);
    return status;
}

int cnn_inputs_parse_list(const char *name, const char *text, size_t len, cnn_list_entry_fn fn, void *ctx)
{
    char entry[CNN_INPUTS_MAX_LINE + 1];
    size_t pos = len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0 ? 3 : 0;
    for (int line = 1; pos < len; line++) {
        const char *s = text + pos;
        const char *nl = memchr(s, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - s) : len - pos;
        pos += n + (nl != NULL);
        if (memchr(s, '\0', n))
            return cnn_error_set(CNN_ERR_INPUT, "%s:%d: the line holds a NUL byte (not a text file?)", name, line);
        while (n && (*s == ' ' || *s == '\t')) {
            s++;
            n--;
        }
        while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r')) n--;
        if (n == 0 || *s == '#') continue;
        if (n > CNN_INPUTS_MAX_LINE)
            return cnn_error_set(CNN_ERR_INPUT, "%s:%d: the entry is %zu bytes long, more than the %d allowed",
                                 name, line, n, CNN_INPUTS_MAX_LINE);
        if (n == 1 && *s == '@') return cnn_error_set(CNN_ERR_INPUT, "%s:%d: '@' without a list file", name, line);
        memcpy(entry, s, n);
        entry[n] = '\0';
        int status = fn(ctx, line, entry);
        if (status < 0) return status;
    }
    return CNN_OK;
}

int cnn_inputs_add(cnn_input_list *l, const char *arg)
{
    if (arg[0] == '@') {
        if (!arg[1]) return cnn_error_set(CNN_ERR_INPUT, "--input @: no list file after the '@'");
        open_lists open = {.n = 0};
        return add_list(l, arg + 1, "--input @", &open);
    }
    return add_path(l, arg, "--input ");
}

void cnn_inputs_free(cnn_input_list *l)
{
    for (int i = 0; i < l->n; i++) {
        free(l->paths[i]);
        if (l->file) free(l->file[i]);
    }
    free(l->paths);
    free(l->file);
    free(l->sample);
    memset(l, 0, sizeof *l);
}

bool cnn_inputs_is_npy(const char *path)
{
    size_t n = strlen(path);
    return n >= 4 && strcasecmp(path + n - 4, ".npy") == 0;
}

/* How many inputs .npy file `path` holds for a network taking [c, h, w]. */
static int npy_samples(const char *path, int c, int h, int w, int64_t *samples, bool *whole)
{
    cnn_npy_info info;
    CNN_TRY_RET(cnn_npy_read_info(path, &info));
    const int64_t want[3] = {c, h, w};
    *whole = info.ndim == 3 && !memcmp(info.shape, want, sizeof want);
    bool nchw = info.ndim == 4 && !memcmp(info.shape + 1, want, sizeof want);
    if (!*whole && !nchw) {
        char got[160] = "";
        size_t m = 0;
        for (int d = 0; d < info.ndim && m < sizeof got; d++)
            m += (size_t)snprintf(got + m, sizeof got - m, "%s%lld", d ? ", " : "", (long long)info.shape[d]);
        return cnn_error_set(CNN_ERR_INPUT, "%s: a float32 array of shape [%s]; the network takes [%d, %d, %d] (or "
                             "[N, %d, %d, %d] for N inputs)", path, got, c, h, w, c, h, w);
    }
    *samples = nchw ? info.shape[0] : 1;
    if (*samples < 1) return cnn_error_set(CNN_ERR_INPUT, "%s: holds no input (its first axis is 0)", path);
    if (*samples > MAX_INPUTS)
        return cnn_error_set(CNN_ERR_INPUT, "%s: %lld inputs in one file (at most %d)", path, (long long)*samples,
                             MAX_INPUTS);
    return CNN_OK;
}

int cnn_inputs_expand_tensors(cnn_input_list *list, int c, int h, int w, bool tensor_only)
{
    cnn_input_list out = {0};
    int status = CNN_OK, fcap = 0;
    for (int i = 0; i < list->n && status == CNN_OK; i++) {
        const char *path = list->paths[i];
        bool npy = cnn_inputs_is_npy(path), whole = true;
        int64_t samples = 1;
        if (!npy && tensor_only)
            status = cnn_error_set(CNN_ERR_INPUT, "%s: the network takes a tensor [%d, %d, %d] (color: none), not an "
                                   "image: give .npy files", path, c, h, w);
        if (npy && status == CNN_OK) status = npy_samples(path, c, h, w, &samples, &whole);
        for (int64_t k = 0; k < samples && status == CNN_OK; k++) {
            if (out.n + 1 > fcap) { /* file and sample before the path: every entry has all three */
                int nc = fcap ? 2 * fcap : 16;
                char **f = cnn_realloc(out.file, (size_t)nc * sizeof *f);
                if (f) out.file = f;
                int *sm = f ? cnn_realloc(out.sample, (size_t)nc * sizeof *sm) : NULL;
                if (sm) out.sample = sm;
                if (!f || !sm) {
                    status = CNN_ERR_NOMEM;
                    break;
                }
                fcap = nc;
            }
            out.file[out.n] = NULL;
            out.sample[out.n] = whole ? -1 : (int)k;
            char *name = whole ? cnn_strdup(path) : cnn_strfmt("%s[%lld]", path, (long long)k);
            status = name ? push(&out, name) : CNN_ERR_NOMEM;
            free(name);
            if (status == CNN_OK && npy && !(out.file[out.n - 1] = cnn_strdup(path))) status = CNN_ERR_NOMEM;
        }
    }
    if (status < 0) {
        cnn_inputs_free(&out);
        return status;
    }
    cnn_inputs_free(list);
    *list = out;
    return CNN_OK;
}
