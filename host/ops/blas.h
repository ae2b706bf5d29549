/* CLBlast calls, checked, in the shapes the ops need. */
#ifndef CNN_OPS_BLAS_H
#define CNN_OPS_BLAS_H

#include <stdbool.h>
#include <stddef.h>
#include "runtime/clrt.h"

/* Row-major C[m, n] = A[m, k] (transposed if ta) * B[k, n] (transposed if tb),
 * with element offsets and leading dimensions; beta = 0. */
int cnn_blas_sgemm(cnn_cl *cl, bool ta, bool tb, size_t m, size_t n, size_t k, cl_mem a,
                   size_t a_off, size_t lda, cl_mem b, size_t b_off, size_t ldb, cl_mem c,
                   size_t c_off, size_t ldc, const char *layer);

/* Same with C = A * B + beta * C (beta = 1 accumulates: the backward pass). */
int cnn_blas_sgemm_beta(cnn_cl *cl, bool ta, bool tb, size_t m, size_t n, size_t k, cl_mem a,
                        size_t a_off, size_t lda, cl_mem b, size_t b_off, size_t ldb, float beta,
                        cl_mem c, size_t c_off, size_t ldc, const char *layer);

/* Applies shipped CLBlast Xgemm parameters for devices CLBlast's database
 * does not know (PoCL CPUs); a no-op elsewhere.  Never fails the run. */
void cnn_blas_apply_defaults(cnn_cl *cl);

#endif
