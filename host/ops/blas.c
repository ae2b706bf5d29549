#include "ops/blas.h"
#include "ops/ops.h"
#include "core/error.h"
#include "core/util.h"

#include <clblast_c.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The K range of one launch of kernel_gemm_native_f32: about 1024, so
 * that the 64-float column panel of A a work-item streams (256 KiB) stays
 * in the core's L2 while the next items of its row reuse it.  Measured on
 * ResNet-18's layer4 shape (64 x 512 x 4608) in one process: one launch
 * 4.3 ms, slices of 1024 2.5 ms, 1536 2.7 ms, 2304 3.1 ms
 * (test/bench/NOTES.md 19). */
static size_t own_k_slice(size_t k)
{
    size_t slices = (k + 1023) / 1024;
    size_t step = (k + slices - 1) / slices;
    return (step + 31) / 32 * 32;
}

bool cnn_blas_own_gemm_fits(const cnn_cl *cl, size_t m, size_t n)
{
    return cl->own_gemm && m >= 32 && n >= 8 && m <= UINT32_MAX && n <= UINT32_MAX;
}

/* One operand of the own kernel: buffer, offset, row length, block stride. */
typedef struct own_operand {
    cl_mem mem;
    size_t off, ld, stride;
} own_operand;

cnn_packing cnn_blas_packing(const cnn_cl *cl)
{
    if (!(cl->type & CL_DEVICE_TYPE_CPU)) return CNN_PACK_NONE;
    return cl->own_gemm ? CNN_PACK_OWN : CNN_PACK_CLBLAST;
}

/* C[j][i] (+)= sum_l A[l][i] B[l][j] on cl/gemm.cl, `count` blocks; acc:
 * add to C (beta = 1) rather than overwrite it. */
static int own_gemm(cnn_cl *cl, size_t count, size_t m, size_t n, size_t k, own_operand a, own_operand b,
                    own_operand c, bool acc, const char *layer)
{
    if (a.ld > UINT32_MAX || b.ld > UINT32_MAX || c.ld > UINT32_MAX || k > UINT32_MAX)
        return cnn_error_set(CNN_ERR_INPUT, "GEMM %zu x %zu x %zu too large for the kernel's 32-bit rows (layer '%s')",
                             m, n, k, layer);
    cl_kernel kr;
    char opts[64];
    int vw = cl->gemm_vw ? cl->gemm_vw : 16, nr_ = cl->gemm_nr ? cl->gemm_nr : 8;
    snprintf(opts, sizeof opts, "-DGEMM_VW=%d -DGEMM_NR=%d", vw, nr_);
    int status = cnn_cl_kernel(cl, "gemm.cl", opts, "kernel_gemm_native_f32", &kr);
    if (status < 0) return cnn_error_prefix(status, "layer '%s'", layer);
    const own_operand *ops[3] = {&a, &b, &c};
    for (cl_uint o = 0; o < 3; o++) {
        cl_ulong off = ops[o]->off, stride = ops[o]->stride;
        cl_uint ld = (cl_uint)ops[o]->ld;
        if ((status = CNN_ARG(kr, 4 * o, ops[o]->mem, layer)) < 0 || (status = CNN_ARG(kr, 4 * o + 1, off, layer)) < 0 ||
            (status = CNN_ARG(kr, 4 * o + 2, ld, layer)) < 0 || (status = CNN_ARG(kr, 4 * o + 3, stride, layer)) < 0)
            return status;
    }
    cl_uint mm = (cl_uint)m, nn = (cl_uint)n;
    if ((status = CNN_ARG(kr, 12, mm, layer)) < 0 || (status = CNN_ARG(kr, 13, nn, layer)) < 0) return status;
    size_t step = own_k_slice(k);
    const size_t nr = (size_t)nr_, mi = 4 * (size_t)vw; /* an item: two halves of two vectors */
    const size_t global[3] = {(n + nr - 1) / nr, (m + mi - 1) / mi, count}, local[3] = {1, 1, 1};
    for (size_t k0 = 0; k0 < k; k0 += step) {
        cl_uint lo = (cl_uint)k0, hi = (cl_uint)(k - k0 < step ? k : k0 + step), add = acc || k0 > 0;
        if ((status = CNN_ARG(kr, 14, lo, layer)) < 0 || (status = CNN_ARG(kr, 15, hi, layer)) < 0 ||
            (status = CNN_ARG(kr, 16, add, layer)) < 0 ||
            (status = cnn_cl_runnd(cl, kr, 3, global, local, layer)) < 0)
            return status;
    }
    return CNN_OK;
}

int cnn_blas_sgemm_beta(cnn_cl *cl, bool ta, bool tb, size_t m, size_t n, size_t k, cl_mem a,
                        size_t a_off, size_t lda, cl_mem b, size_t b_off, size_t ldb, float beta,
                        cl_mem c, size_t c_off, size_t ldc, const char *layer)
{
    /* Row-major C = A^T B is the own kernel's layout with the operands
     * swapped: C[row][col] = sum_l B[l][col] A[l][row]. */
    if (ta && !tb && (beta == 0.0f || beta == 1.0f) && k > 0 && cnn_blas_own_gemm_fits(cl, n, m))
        return own_gemm(cl, 1, n, m, k, (own_operand){b, b_off, ldb, 0}, (own_operand){a, a_off, lda, 0},
                        (own_operand){c, c_off, ldc, 0}, beta == 1.0f, layer);
    /* CLBlast compiles its kernels on first use, in this call: signals are
     * held as for our own builds (cnn_signals_hold), and a call that fails
     * with one pending failed because of it. */
    cnn_signals_hold();
    CLBlastStatusCode s = CLBlastSgemm(CLBlastLayoutRowMajor, ta ? CLBlastTransposeYes : CLBlastTransposeNo,
                                       tb ? CLBlastTransposeYes : CLBlastTransposeNo, m, n, k, 1.0f, a,
                                       a_off, lda, b, b_off, ldb, beta, c, c_off, ldc, &cl->queue, NULL);
    cnn_signals_release();
    if (s != CLBlastSuccess && cnn_signal_pending()) return cnn_error_interrupted();
    if (s != CLBlastSuccess)
        return cnn_error_set(CNN_ERR_DEVICE, "CLBlastSgemm(%zu x %zu x %zu) failed: %s (layer '%s')", m, n,
                             k, cnn_clblast_error_name(s), layer);
    return CNN_OK;
}

int cnn_blas_sgemm(cnn_cl *cl, bool ta, bool tb, size_t m, size_t n, size_t k, cl_mem a,
                   size_t a_off, size_t lda, cl_mem b, size_t b_off, size_t ldb, cl_mem c,
                   size_t c_off, size_t ldc, const char *layer)
{
    return cnn_blas_sgemm_beta(cl, ta, tb, m, n, k, a, a_off, lda, b, b_off, ldb, 0.0f, c, c_off, ldc, layer);
}

/* floats [origin, origin + size) of m as a buffer of its own (CLBlast only
 * skips its copy kernels at offset 0). */
static int region(cl_mem m, size_t origin, size_t size, cl_mem *out, const char *layer)
{
    cl_buffer_region r = {origin * sizeof(float), size * sizeof(float)};
    cl_int err;
    *out = clCreateSubBuffer(m, CL_MEM_READ_WRITE, CL_BUFFER_CREATE_TYPE_REGION, &r, &err);
    if (err != CL_SUCCESS) {
        *out = NULL;
        return cnn_error_set(CNN_ERR_DEVICE, "clCreateSubBuffer(%zu bytes at %zu) failed: %s (layer '%s')", r.size,
                             r.origin, cnn_cl_error_name(err), layer);
    }
    return CNN_OK;
}

int cnn_blas_sgemm_native(cnn_cl *cl, size_t m, size_t n, size_t k, cl_mem a, cl_mem b, cl_mem c,
                          const char *layer)
{
    return cnn_blas_sgemm_native_n(cl, 1, m, n, k, a, 0, b, 0, c, 0, layer);
}

int cnn_blas_sgemm_native_n(cnn_cl *cl, size_t count, size_t m, size_t n, size_t k, cl_mem a, size_t a_stride,
                            cl_mem b, size_t b_stride, cl_mem c, size_t c_stride, const char *layer)
{
    if (cnn_blas_own_gemm_fits(cl, m, n) && k > 0)
        return own_gemm(cl, count, m, n, k, (own_operand){a, 0, m, a_stride}, (own_operand){b, 0, n, b_stride},
                        (own_operand){c, 0, m, c_stride}, false, layer);
    size_t c_floats = (count - 1) * c_stride + m * n;
    int zs = cnn_op_zero(cl, c, c_floats, layer);
    if (zs < 0) return zs;
    /* On PoCL CPUs a long K runs in slices of CNN_GEMM_KSPLIT accumulated
     * into C: each work-group's panels of A and B then stay in the core's
     * cache (VGG16 conv4_2, 832 x 512 x 4608: 2x faster).  The slices start
     * at multiples of 64 * 512 floats, aligned for any sub-buffer. */
    size_t step = k;
    if (cl->is_pocl && (cl->type & CL_DEVICE_TYPE_CPU) && k > CNN_GEMM_KSPLIT && m % CNN_GEMM_MWG == 0 &&
        n % CNN_GEMM_MWG == 0)
        step = CNN_GEMM_KSPLIT;
    for (size_t i = 0; i < count; i++) {
        cl_mem sc = c;
        int status = CNN_OK;
        if (count > 1 && (status = region(c, i * c_stride, m * n, &sc, layer)) < 0) return status;
        for (size_t k0 = 0; k0 < k && status == CNN_OK; k0 += step) {
            size_t kc = k - k0 < step ? k - k0 : step;
            cl_mem sa = a, sb = b;
            if (step < k || count > 1) {
                if ((status = region(a, i * a_stride + k0 * m, kc * m, &sa, layer)) < 0) break;
                if ((status = region(b, i * b_stride + k0 * n, kc * n, &sb, layer)) < 0) {
                    clReleaseMemObject(sa);
                    break;
                }
            }
            cnn_signals_hold(); /* as in cnn_blas_sgemm_beta */
            CLBlastStatusCode s = CLBlastSgemm(CLBlastLayoutColMajor, CLBlastTransposeNo, CLBlastTransposeYes, m,
                                               n, kc, 1.0f, sa, 0, m, sb, 0, n, k0 ? 1.0f : 0.0f, sc, 0, m,
                                               &cl->queue, NULL);
            cnn_signals_release();
            if (sa != a) clReleaseMemObject(sa);
            if (sb != b) clReleaseMemObject(sb);
            if (s != CLBlastSuccess && cnn_signal_pending())
                status = cnn_error_interrupted();
            else if (s != CLBlastSuccess)
                status = cnn_error_set(CNN_ERR_DEVICE,
                                       "CLBlastSgemm(native %zu x %zu x %zu) failed: %s (layer '%s')", m, n, kc,
                                       cnn_clblast_error_name(s), layer);
        }
        if (sc != c) clReleaseMemObject(sc);
        if (status < 0) return status;
    }
    return CNN_OK;
}

/* Tuned on a 2-core Zen4 EPYC under PoCL 3.1: 96.6 GFLOP/s at 1024^3 against
 * 8-23 GFLOP/s with CLBlast's generic fallback.  CLBlast needs every
 * parameter of the kernel when overriding. */
static const char *const XGEMM_NAMES[] = {"GEMMK", "KREG", "KWG",  "KWI", "MDIMA", "MDIMC",
                                          "MWG",   "NDIMB", "NDIMC", "NWG", "SA",    "SB",
                                          "STRM",  "STRN", "VWM",  "VWN"};
static const size_t XGEMM_POCL_CPU[] = {0, 1, CNN_GEMM_KWG, 2, 8, 8, CNN_GEMM_MWG, 32, 8, CNN_GEMM_NWG,
                                        0, 0, 0, 0, 8, 4};
/* Below m*n*k = MIN^3 CLBlast switches to its XgemmDirect kernel, whose
 * generic parameters run at 5-8 GFLOP/s here against 30-67 for Xgemm on the
 * same shapes (64 x 3200 x 576: 32 ms direct, 3.5 ms indirect); the default
 * threshold sent every convolution of ResNet-18 to the direct kernel. */
static const char *const ROUTINE_NAMES[] = {"XGEMM_MIN_INDIRECT_SIZE"};
static const size_t ROUTINE_POCL_CPU[] = {64};

/* LLVM's names of the CPUs with AVX-512 (PoCL's CPU device is called
 * "pthread-<LLVM CPU name>-<model>"). */
static const char *const AVX512_CPUS[] = {"avx512", "knl", "knm", "cannonlake", "icelake", "tigerlake",
                                          "cascadelake", "cooperlake", "sapphirerapids", "graniterapids",
                                          "emeraldrapids", "rocketlake", "znver4", "znver5", NULL};

bool cnn_blas_cpu_has_avx512(const char *device_name)
{
    for (int i = 0; AVX512_CPUS[i]; i++)
        if (strstr(device_name, AVX512_CPUS[i])) return true;
    return false;
}

/* The own kernel's block for the device's vector registers: 32 of 16
 * floats (AVX-512) hold a 16 x 8 block's 16 accumulators; 16 of 8 floats
 * (AVX2 and the rest) an 8 x 6 block's 12.  CNNVIZ_GEMM_BLOCK=VWxNR
 * (16x8, 8x6, 8x4, 16x6...) overrides it for measurements. */
static void own_block(cnn_cl *cl)
{
    bool wide = cnn_blas_cpu_has_avx512(cl->device_name);
    cl->gemm_vw = wide ? 16 : 8;
    cl->gemm_nr = wide ? 8 : 6;
    const char *env = getenv("CNNVIZ_GEMM_BLOCK");
    int vw, nr;
    if (env && sscanf(env, "%dx%d", &vw, &nr) == 2 && (vw == 4 || vw == 8 || vw == 16) &&
        (nr == 4 || nr == 6 || nr == 8)) {
        cl->gemm_vw = vw;
        cl->gemm_nr = nr;
    }
}

void cnn_blas_apply_defaults(cnn_cl *cl)
{
    cl->gemm_vw = 16;
    cl->gemm_nr = 8;
    if (!cl->is_pocl || !(cl->type & CL_DEVICE_TYPE_CPU)) return;
    const char *env = getenv("CNNVIZ_GEMM");
    cl->own_gemm = !(env && !strcmp(env, "clblast"));
    own_block(cl);
    const char *names[sizeof XGEMM_NAMES / sizeof XGEMM_NAMES[0]];
    memcpy(names, XGEMM_NAMES, sizeof names);
    /* A failure here only costs speed: CLBlast keeps its own defaults. */
    (void)CLBlastOverrideParameters(cl->device, "Xgemm", CLBlastPrecisionSingle,
                                    sizeof XGEMM_POCL_CPU / sizeof XGEMM_POCL_CPU[0], names,
                                    XGEMM_POCL_CPU);
    const char *rnames[sizeof ROUTINE_NAMES / sizeof ROUTINE_NAMES[0]];
    memcpy(rnames, ROUTINE_NAMES, sizeof rnames);
    (void)CLBlastOverrideParameters(cl->device, "GemmRoutine", CLBlastPrecisionSingle,
                                    sizeof ROUTINE_POCL_CPU / sizeof ROUTINE_POCL_CPU[0], rnames,
                                    ROUTINE_POCL_CPU);
}
