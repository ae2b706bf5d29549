/* CLBlast calls, checked, in the shapes the ops need. */
#ifndef CNN_OPS_BLAS_H
#define CNN_OPS_BLAS_H

#include <stdbool.h>
#include <stddef.h>
#include "ops/ops.h"
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

/* Column-major C[m, n] (ld m) = A[m, k] (ld m) * B^T, B stored [n, k]
 * column-major (ld n), all at offset 0, beta = 0: the layout CLBlast's
 * Xgemm kernel reads natively, so when m, n and k are multiples of
 * CNN_GEMM_MWG / CNN_GEMM_NWG / CNN_GEMM_KWG it runs that kernel alone (no
 * pad, copy or transpose kernels).  Row-major view: C is [n][m] with C[j][i]
 * = sum_l A[l][i] * B[l][j], i.e. both operands are stored "k rows of m (n)
 * floats".  CLBlast reads C even with beta = 0, so C is zeroed first (a
 * NaN left there by an earlier product would survive 0 * NaN).  m * n * k
 * < 2^32 per block. */
int cnn_blas_sgemm_native(cnn_cl *cl, size_t m, size_t n, size_t k, cl_mem a, cl_mem b, cl_mem c,
                          const char *layer);

/* `count` such products on blocks of the three buffers: A_i at
 * i * a_stride floats of a, B_i at i * b_stride of b, C_i at i * c_stride
 * of c (each block made a sub-buffer, so every block offset in bytes must
 * meet the device's base address alignment: multiples of 128 floats do on
 * every device seen). */
int cnn_blas_sgemm_native_n(cnn_cl *cl, size_t count, size_t m, size_t n, size_t k, cl_mem a, size_t a_stride,
                            cl_mem b, size_t b_stride, cl_mem c, size_t c_stride, const char *layer);

/* Whether an m x n product in the native layout runs on the own CPU kernel
 * (cl/gemm.cl) rather than CLBlast: on PoCL CPU devices (cl->own_gemm,
 * set by cnn_blas_apply_defaults; CNNVIZ_GEMM=clblast keeps CLBlast) for
 * m >= 32 and n >= 8.  cnn_blas_sgemm_native(_n) use it so, and so does
 * cnn_blas_sgemm(_beta) for row-major A^T B (ta, not tb; beta 0 or 1) as
 * the native m = its n, n = its m.  The kernel writes C without reading it
 * first (beta = 0) and needs no alignment of blocks or offsets. */
bool cnn_blas_own_gemm_fits(const cnn_cl *cl, size_t m, size_t n);

/* Whether a PoCL CPU device name ("pthread-<LLVM CPU>-...") names a CPU
 * with AVX-512, whose 32 wide registers take the own kernel's larger block
 * (cnn_blas_apply_defaults sets cl->gemm_vw / gemm_nr from it). */
bool cnn_blas_cpu_has_avx512(const char *device_name);

/* The packing a plan for this device uses (CPUs only; own kernel or not). */
cnn_packing cnn_blas_packing(const cnn_cl *cl);

/* Xgemm tile of the shipped PoCL CPU parameters (cnn_blas_apply_defaults);
 * other devices keep CLBlast's own tiles and pad internally. */
#define CNN_GEMM_MWG 64
#define CNN_GEMM_NWG 128
#define CNN_GEMM_KWG 32
/* K slice of cnn_blas_sgemm_native on PoCL CPUs (a multiple of KWG). */
#define CNN_GEMM_KSPLIT 512

/* Applies shipped CLBlast Xgemm parameters for devices CLBlast's database
 * does not know (PoCL CPUs); a no-op elsewhere.  Never fails the run. */
void cnn_blas_apply_defaults(cnn_cl *cl);

#endif
