#include "cli/cli.h"
#include "core/error.h"
#include "runtime/clrt.h"

#include <stdio.h>
#include <string.h>

static const char HELP[] =
    "usage: cnnviz-cl devices [--platform SEL] [--device SEL]\n"
    "\n"
    "Lists every OpenCL platform and device.  With --platform/--device, also says\n"
    "which device 'run' would use.  SEL is an index or a case-insensitive part of\n"
    "the name, vendor or type (--device gpu, --platform nvidia).  Without them the\n"
    "first GPU is used, else the first device; CNNVIZ_PLATFORM and CNNVIZ_DEVICE\n"
    "give defaults that the flags override.\n";

int cnn_cmd_devices(int argc, char **argv)
{
    const char *psel = NULL, *dsel = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            fputs(HELP, stdout);
            return CNN_OK;
        } else if (strcmp(argv[i], "--platform") == 0 && i + 1 < argc) {
            psel = argv[++i];
        } else if (strcmp(argv[i], "--device") == 0 && i + 1 < argc) {
            dsel = argv[++i];
        } else {
            return cnn_error_set(CNN_ERR_USAGE, "devices: unknown or incomplete option '%s' (see "
                                                "'cnnviz-cl devices --help')", argv[i]);
        }
    }
    int status = cnn_cl_print_devices(stdout);
    if (status < 0) return status;
    cnn_cl cl;
    status = cnn_cl_init(&cl, psel, dsel, false);
    if (status < 0) return status;
    printf("selected: platform %d device %d: %s\n", cl.platform_index, cl.device_index, cl.device_name);
    cnn_cl_free(&cl);
    return CNN_OK;
}
