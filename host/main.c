/* cnnviz-cl: sub-commands run, info, merge, devices, tune.  Parses the command line,
 * calls the modules, prints the one error line, maps status to exit code. */
#include "cli/cli.h"
#include "cli/tune.h"
#include "core/error.h"
#include "core/util.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

static const char USAGE[] =
    "usage: cnnviz-cl <command> [options]\n"
    "\n"
    "Runs a convolutional network described in a YAML pipeline file (or an ONNX\n"
    "model: CONFIG may be MODEL.onnx) on an OpenCL device and shows what it holds\n"
    "and sees: filters, weights, activations.\n"
    "\n"
    "commands:\n"
    "  run CONFIG [--input IMG ...]  run the pipeline: predictions, taps, report\n"
    "  info CONFIG                   check a pipeline: layers, shapes, MACs, memory\n"
    "  import MODEL.onnx [-o FILE]   an ONNX model -> pipeline file + safetensors weights\n"
    "  merge OUT PART_DIR...         join the parts of a run ('run --shard I/N') into one\n"
    "  devices                       list OpenCL platforms and devices\n"
    "  tune [CONFIG]                 search faster GEMM parameters for the device\n"
    "\n"
    "options for every command:\n"
    "  -h, --help      help for the command (cnnviz-cl run --help)\n"
    "  --version       print the version\n"
    "\n"
    "environment:\n"
    "  CNNVIZ_PLATFORM, CNNVIZ_DEVICE   default --platform / --device\n"
    "  CNNVIZ_CACHE_DIR                 compiled-kernel cache folder ('off' disables;\n"
    "                                   default $XDG_CACHE_HOME/cnnviz-cl or ~/.cache/cnnviz-cl)\n"
    "  CNNVIZ_KERNEL_DIR                load cl/*.cl from this folder instead of the\n"
    "                                   copies built into the binary\n"
    "\n"
    "exit codes: 0 success, 1 runtime or device failure, 2 bad usage or bad input\n";

int main(int argc, char **argv)
{
    if (argc < 2) {
        fputs(USAGE, stderr);
        return 2;
    }
    const char *cmd = argv[1];
    int status;
    cnn_signals_install();
    if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "help") == 0) {
        fputs(USAGE, stdout);
        return 0;
    } else if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "version") == 0) {
        printf("cnnviz-cl %s\n", CNN_VERSION_STRING);
        return 0;
    } else if (strcmp(cmd, "devices") == 0) {
        status = cnn_cmd_devices(argc - 1, argv + 1);
    } else if (strcmp(cmd, "run") == 0) {
        status = cnn_cmd_run(argc - 1, argv + 1);
    } else if (strcmp(cmd, "info") == 0) {
        status = cnn_cmd_info(argc - 1, argv + 1);
    } else if (strcmp(cmd, "import") == 0) {
        status = cnn_cmd_import(argc - 1, argv + 1);
    } else if (strcmp(cmd, "merge") == 0) {
        status = cnn_cmd_merge(argc - 1, argv + 1);
    } else if (strcmp(cmd, "tune") == 0) {
        status = cnn_cmd_tune(argc - 1, argv + 1);
    } else {
        status = cnn_error_set(CNN_ERR_USAGE, "unknown command '%s' (try 'cnnviz-cl --help')", cmd);
    }
    /* Whatever failed while SIGINT/SIGTERM was pending failed because of it
     * (a system call or a library's compile cut short): the signal is the
     * one thing to report, and 128 + its number the exit code. */
    if (status < 0 && status != CNN_ERR_INTERRUPTED && cnn_signal_pending()) status = cnn_error_interrupted();
    if (status < 0 && cnn_error_message()[0]) cnn_print_line(stderr, "cnnviz-cl: error: ", cnn_error_message());
    if (status == CNN_ERR_INTERRUPTED && cnn_signal_pending()) {
        /* Out at once: the runtime's threads may still be compiling or
         * running work queued before the stop, and the libraries' static
         * destructors, which exit() would run, pull their state away under
         * them (LLVM inside PoCL then crashes). */
        fflush(NULL);
        cnn_tmp_cleanup_all();
        _exit(128 + cnn_signal_pending());
    }
    return cnn_status_exit_code(status);
}
