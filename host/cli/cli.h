/* Sub-commands.  Each takes argv starting at the command name and returns a
 * cnn_status; main() prints the message and maps the exit code. */
#ifndef CNN_CLI_CLI_H
#define CNN_CLI_CLI_H

int cnn_cmd_devices(int argc, char **argv);
int cnn_cmd_run(int argc, char **argv);
int cnn_cmd_info(int argc, char **argv);
int cnn_cmd_import(int argc, char **argv);
int cnn_cmd_merge(int argc, char **argv);

struct cnn_import_opts;
/* The preprocessing options of `import` and of `run`/`info` on an ONNX
 * model (--preprocess, --mean, --std, --size): 1 when `a` is one of them
 * (its value `v` consumed), 0 when not, or a negative status. */
int cnn_cli_import_option(const char *a, const char *v, struct cnn_import_opts *o);

#endif
