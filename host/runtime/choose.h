/* Per-layer choice of convolution kernel by measurement.  A 3x3 stride-1
 * convolution of a CPU device can run as Winograd F(2x2, 3x3) or as im2col
 * + GEMM; which is faster depends on the shape, the batch, the device and
 * the GEMM parameters, so the first run on a device times both on the
 * layer's own shape (random data, a warm-up and the best of two) and
 * stores the winner in the cache folder:
 *
 *   <cache>/choices/<platform>-<device>-<driver>-<hash>.txt
 *
 *   cnnviz-cl-choices 1
 *   # ci hi wi co pt pb pl pr batch choice im2col_ms winograd_ms
 *   256 56 56 256 1 1 1 1 1 winograd 19.112 12.774
 *
 * Later runs read the file and measure only shapes it lacks.  Without a
 * cache folder (CNNVIZ_CACHE_DIR=off) nothing is measured: the planner's
 * rule decides, so runs stay reproducible.  `cnnviz-cl tune` deletes the
 * file when it saves new GEMM parameters (the choice depends on them).
 * CNNVIZ_CHOOSE=0 turns measuring off. */
#ifndef CNN_RUNTIME_CHOOSE_H
#define CNN_RUNTIME_CHOOSE_H

#include "model/graph.h"
#include "runtime/clrt.h"

/* "<cache_dir>/choices/<platform>-<device>-<driver, sanitised>-<hash>.txt"
 * (heap string; NULL + error on failure). */
char *cnn_choose_file_path(const char *cache_dir, const char *platform, const char *device, const char *driver);

/* Fills wino[n] (g->n entries): 1 Winograd, 0 im2col, -1 leave it to the
 * planner's rule (not a candidate, or nothing measured).  Measures the
 * shapes missing from the file and adds them.  *measured (may be NULL)
 * gets the number of layers timed in this call.  Errors: device errors of
 * the measurement (named by layer); a cache file that cannot be written
 * only warns. */
int cnn_choose_convs(cnn_cl *cl, const cnn_graph *g, int max_batch, signed char *wino, int *measured);

#endif
