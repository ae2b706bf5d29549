/* `cnnviz-cl tune`: searches CLBlast's SGEMM parameters for one device on
 * the GEMM shapes of a pipeline and stores the best in the cache folder
 * (applied at start-up by cnn_tune_apply, host/ops/tune.h). */
#ifndef CNN_CLI_TUNE_H
#define CNN_CLI_TUNE_H

/* argv starts at the command name ("tune"); returns a cnn_status. */
int cnn_cmd_tune(int argc, char **argv);

#endif
