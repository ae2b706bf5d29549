/* Expands --input arguments into a sorted list of image paths: files as
 * given, folders recursively (PNG/JPEG by extension, sorted), @list.txt
 * (one path per line, relative to the list's folder). */
#ifndef CNN_CLI_INPUTS_H
#define CNN_CLI_INPUTS_H

typedef struct cnn_input_list {
    char **paths;
    int n, cap;
} cnn_input_list;

int cnn_inputs_add(cnn_input_list *list, const char *arg);
void cnn_inputs_free(cnn_input_list *list);

#endif
