#define _DEFAULT_SOURCE
#include "cli/inputs.h"
#include "core/error.h"
#include "core/util.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

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
        if (stat(p, &st) == 0 && (S_ISDIR(st.st_mode) || (S_ISREG(st.st_mode) && is_image_name(e->d_name))))
            status = push(&sub, p);
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

static int add_list(cnn_input_list *l, const char *listfile)
{
    char *text = NULL;
    size_t len = 0;
    int status = cnn_file_read(listfile, 64u << 20, &text, &len);
    if (status < 0) return status;
    char *dir = cnn_path_dir(listfile);
    char *save = NULL;
    for (char *line = strtok_r(text, "\r\n", &save); line && status == CNN_OK; line = strtok_r(NULL, "\r\n", &save)) {
        while (*line == ' ' || *line == '\t') line++;
        if (!*line || *line == '#') continue;
        char *p = cnn_path_join(dir, line);
        status = p ? cnn_inputs_add(l, p) : CNN_ERR_NOMEM;
        free(p);
    }
    free(dir);
    free(text);
    return status;
}

int cnn_inputs_add(cnn_input_list *l, const char *arg)
{
    if (arg[0] == '@') return add_list(l, arg + 1);
    struct stat st;
    if (stat(arg, &st) != 0) return cnn_error_set(CNN_ERR_INPUT, "--input %s: %s", arg, strerror(errno));
    if (S_ISDIR(st.st_mode)) {
        int before = l->n;
        int status = add_dir(l, arg, 0);
        if (status == CNN_OK && l->n == before)
            return cnn_error_set(CNN_ERR_INPUT, "--input %s: no .png/.jpg/.jpeg files in this folder", arg);
        return status;
    }
    return push(l, arg);
}

void cnn_inputs_free(cnn_input_list *l)
{
    for (int i = 0; i < l->n; i++) free(l->paths[i]);
    free(l->paths);
    memset(l, 0, sizeof *l);
}
