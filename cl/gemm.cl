/* GEMM for CPU devices in the "native" layout of cnn_blas_sgemm_native:
 * C[j][i] (row length m) = sum over l in [k0, k1) of A[l][i] * B[l][j],
 * A stored as k rows of m floats, B as k rows of n floats; with acc set
 * the product is added to what C holds (a K range split over launches).
 *
 * One work-item computes a 64 x 8 block of C (i x j) as two halves of
 * 32 x 8, each held in 16 float16 accumulators: per step of l it loads 32
 * floats of A's row (two vectors) and broadcasts 8 floats of B's row, 16
 * fused multiply-adds.  A CPU compiler keeps the accumulators in vector
 * registers (AVX-512: 16 of 32 zmm), so the loop is the register-blocked
 * kernel of a CPU BLAS, written once for any vector width the compiler
 * splits float16 into.  Work-groups are single items: the items share
 * nothing, and a larger group only made the compiler loop over items.
 * Dimension 2 runs `count` products at strides of A, B and C (Winograd's
 * 16 in one launch).  The host guarantees m % 64 == 0 and n % 8 == 0. */
#define GEMM_NR 8

#define GEMM_ACC(r) float16 p##r = 0.0f, q##r = 0.0f;
#define GEMM_FMA(r)                                                                                \
    {                                                                                              \
        float16 s = (float16)(bl[r]);                                                              \
        p##r = fma(a0, s, p##r);                                                                   \
        q##r = fma(a1, s, q##r);                                                                   \
    }
#define GEMM_STORE(r)                                                                              \
    {                                                                                              \
        __global float *cr = cz + (size_t)(j0 + r) * m + i0;                                      \
        if (acc) {                                                                                 \
            p##r += vload16(0, cr);                                                                \
            q##r += vload16(1, cr);                                                                \
        }                                                                                          \
        vstore16(p##r, 0, cr);                                                                     \
        vstore16(q##r, 1, cr);                                                                     \
    }

__kernel __attribute__((reqd_work_group_size(1, 1, 1)))
void kernel_gemm_native_f32(__global const float *restrict a, const ulong a_stride,
                            __global const float *restrict b, const ulong b_stride,
                            __global float *restrict c, const ulong c_stride, const uint m,
                            const uint n, const uint k0, const uint k1, const uint acc)
{
    const uint j0 = get_global_id(0) * GEMM_NR;
    const size_t z = get_global_id(2);
    __global const float *az = a + z * a_stride;
    __global const float *bz = b + z * b_stride;
    __global float *cz = c + z * c_stride;
    for (uint h = 0; h < 2; h++) {
        const uint i0 = (get_global_id(1) * 2 + h) * 32;
        GEMM_ACC(0) GEMM_ACC(1) GEMM_ACC(2) GEMM_ACC(3)
        GEMM_ACC(4) GEMM_ACC(5) GEMM_ACC(6) GEMM_ACC(7)
        __global const float *al = az + (size_t)k0 * m + i0;
        __global const float *bl = bz + (size_t)k0 * n + j0;
        for (uint l = k0; l < k1; l++, al += m, bl += n) {
            float16 a0 = vload16(0, al), a1 = vload16(1, al);
            GEMM_FMA(0) GEMM_FMA(1) GEMM_FMA(2) GEMM_FMA(3)
            GEMM_FMA(4) GEMM_FMA(5) GEMM_FMA(6) GEMM_FMA(7)
        }
        GEMM_STORE(0) GEMM_STORE(1) GEMM_STORE(2) GEMM_STORE(3)
        GEMM_STORE(4) GEMM_STORE(5) GEMM_STORE(6) GEMM_STORE(7)
    }
}
