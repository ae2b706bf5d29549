/* Expands --input arguments into the list of image paths a run reads. */
#ifndef CNN_IO_INPUTS_H
#define CNN_IO_INPUTS_H

#include <stdbool.h>
#include <stddef.h>

/* Lists that read lists: at most this deep (the outermost is 1). */
#define CNN_INPUTS_MAX_LIST_DEPTH 16
/* Longest entry of a list, after stripping (a Linux path is at most 4095). */
#define CNN_INPUTS_MAX_LINE 4096

typedef struct cnn_input_list {
    char **paths;
    int n, cap;
    /* after cnn_inputs_expand_tensors: */
    char **file;                /* [n] the .npy file input i comes from; NULL for an image */
    int *sample;                /* [n] its index along the first axis of [N, C, H, W]; -1 for [C, H, W] */
} cnn_input_list;

/* Appends the images one --input argument names:
 *  - a file: as given, whatever its name; it must be a regular file (a FIFO,
 *    device or socket is refused here, before anything reads from it);
 *  - a folder: every *.png, *.jpg, *.jpeg (any case) below it, recursively,
 *    sorted by name within each folder; hidden entries and other names are
 *    left out, an image name that is a FIFO, device or socket is an error;
 *  - @LIST: a text file, one entry per line, each a file, a folder or
 *    @OTHER (another list), relative to LIST's folder unless absolute.
 *    Spaces and tabs around an entry, a CR before the newline and a UTF-8
 *    byte order mark are stripped; empty lines and lines starting with '#'
 *    are skipped.  Lists may read lists CNN_INPUTS_MAX_LIST_DEPTH deep; a
 *    list that is being read already (the same file by device and inode,
 *    through whatever path) is an error, so lists that name themselves or
 *    each other stop at once.
 * Errors (CNN_ERR_INPUT) say where: "--input PATH: No such file or
 * directory", "list.txt:3: missing.png: No such file or directory"; a
 * signal while a list is read gives CNN_ERR_INTERRUPTED. */
int cnn_inputs_add(cnn_input_list *list, const char *arg);
void cnn_inputs_free(cnn_input_list *list);

/* True when path names a .npy file (it ends in ".npy", any case). */
bool cnn_inputs_is_npy(const char *path);

/* Tensor inputs: each .npy entry is checked against the network input
 * [c, h, w] now, before anything runs or is written (its header is read:
 * float32, C order, [c, h, w] or [n, c, h, w] and a size that matches), and
 * a file of [n, c, h, w] becomes n entries "x.npy[k]".  Fills list->file and
 * list->sample for every entry.  tensor_only: the network takes a tensor
 * (color: none), so images are refused.  Errors (CNN_ERR_INPUT) name the
 * file and say its shape and the network's. */
int cnn_inputs_expand_tensors(cnn_input_list *list, int c, int h, int w, bool tensor_only);

/* Called for each entry of a list, in order: `line` counts from 1, `entry`
 * is stripped and NUL-terminated (it may start with '@').  A negative
 * return stops the parse and is returned by it. */
typedef int (*cnn_list_entry_fn)(void *ctx, int line, const char *entry);

/* The parser of a list's text alone (the files it names are the
 * callback's business).  text need not be NUL-terminated.  Errors
 * (CNN_ERR_INPUT, "NAME:LINE: ..."): a line that holds a NUL byte, an entry
 * longer than CNN_INPUTS_MAX_LINE bytes, an '@' without a name. */
int cnn_inputs_parse_list(const char *name, const char *text, size_t len, cnn_list_entry_fn fn, void *ctx);

#endif
