/* `merge` on the command line: the options and the help; the work is
 * pipeline/merge.h's. */
#define _POSIX_C_SOURCE 200809L
#include "cli/cli.h"
#include "core/error.h"
#include "core/log.h"
#include "core/util.h"
#include "pipeline/merge.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char MERGE_HELP[] =
    "usage: cnnviz-cl merge OUT PART_DIR... [--wait-lock] [-q]\n"
    "       cnnviz-cl merge --stats FILE PART_DIR...\n"
    "\n"
    "Joins the output folders of the parts of one run into OUT, as a single run\n"
    "over every input would have written it: each input's files, the model's\n"
    "files once, predictions.json and predictions.csv in input order, one\n"
    "manifest.json and one report (index.html).\n"
    "\n"
    "The parts come from 'cnnviz-cl run ... --shard I/N --out PART_DIR', I = 0..N-1,\n"
    "run anywhere and in any order (a Slurm job array: samples/slurm/).  Give the\n"
    "folders in any order (a shell glob is fine).  merge checks, from each part's\n"
    "manifest.json, that all of them ran the same pipeline and weights (a hash of\n"
    "both), the same options and the same input list, and that every input is in\n"
    "exactly one folder; otherwise it stops with exit 2 naming what is missing\n"
    "(\"inputs 50 to 99 of 200 are in none of the folders given: shard 1/4\n"
    "missing\") or doubled, before anything is written.  Folders that are not\n"
    "cnnviz-cl output, or whose files changed since their part wrote them, are\n"
    "refused the same way.\n"
    "\n"
    "Files are hard-linked into OUT where the folders share a file system, and\n"
    "copied otherwise; the parts' folders are left as they are.  OUT is written\n"
    "like a run's output folder: everything is staged and published at once, a\n"
    "merge that fails leaves OUT as it was, and an earlier run's or merge's files\n"
    "in OUT are replaced.  Parts drawn with 'normalize: global' must share their\n"
    "range: see README, \"Global normalisation across parts\".\n"
    "\n"
    "With --stats the parts are of 'run --stats' (taps drawn with normalize:\n"
    "global): their statistics (min, max and, in a second round, the histograms\n"
    "of taps that clip) are combined into FILE, which 'run --ranges FILE' draws\n"
    "with, so that every part uses the range of all inputs (README: global\n"
    "normalisation across parts).\n"
    "\n"
    "options:\n"
    "  --stats           join statistics into FILE instead of files into OUT\n"
    "  --wait-lock       when another run writes into OUT, wait for it\n"
    "  -q, --quiet       no information lines\n"
    "\n"
    "example:\n"
    "  for i in 0 1 2 3; do cnnviz-cl run cfg.yaml --input imgs/ --shard $i/4 --out parts/$i; done\n"
    "  cnnviz-cl merge out/all parts/*\n";

int cnn_cmd_merge(int argc, char **argv)
{
    cnn_merge_opts o = {0};
    const char **parts = calloc((size_t)argc, sizeof *parts);
    if (!parts) return cnn_error_set(CNN_ERR_NOMEM, "out of host memory");
    int status = CNN_OK;
    for (int i = 1; i < argc && status == CNN_OK; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(MERGE_HELP, stdout);
            free(parts);
            return CNN_OK;
        } else if (!strcmp(a, "--stats")) {
            o.stats = true;
        } else if (!strcmp(a, "--wait-lock")) {
            o.wait_lock = true;
        } else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) {
            o.quiet = true;
        } else if (a[0] == '-' && a[1]) {
            status = cnn_error_set(CNN_ERR_USAGE, "merge: unknown option '%s' (see 'cnnviz-cl merge --help')", a);
        } else if (!o.out) {
            o.out = a;
        } else {
            parts[o.n_parts++] = a;
        }
    }
    if (status == CNN_OK && (!o.out || !o.n_parts))
        status = cnn_error_set(CNN_ERR_USAGE, "merge: give %s and the parts' folders: cnnviz-cl merge %s PART_DIR... "
                               "(see 'cnnviz-cl merge --help')", o.stats ? "FILE" : "OUT",
                               o.stats ? "--stats FILE" : "OUT");
    o.parts = parts;
    if (status == CNN_OK) {
        cnn_merge_result res;
        status = cnn_merge_run(&o, &res);
        if (status >= 0 || res.inputs) { /* done, or published with inputs that could not be read */
            char line[CNN_ERROR_MAX];
            if (o.stats)
                snprintf(line, sizeof line, "merged the statistics of %d part%s: %d inputs, into %s", o.n_parts,
                         o.n_parts == 1 ? "" : "s", res.inputs, o.out);
            else
                snprintf(line, sizeof line, "merged %d part%s: %d inputs, %d files into %s (%d copied, the others "
                         "hard-linked)", o.n_parts, o.n_parts == 1 ? "" : "s", res.inputs, res.files, o.out,
                         res.copied);
            if (!o.quiet) cnn_print_line(stderr, "cnnviz-cl: ", line);
        }
    }
    free(parts);
    return status;
}
