#include "cli/cli.h"
#include "core/error.h"

int cnn_cmd_run(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    return cnn_error_set(CNN_ERR_USAGE, "run: not implemented yet");
}

int cnn_cmd_info(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    return cnn_error_set(CNN_ERR_USAGE, "info: not implemented yet");
}
