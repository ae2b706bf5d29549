/* GEMM for CPU devices in the "native" layout of cnn_blas_sgemm_native:
 * C[j][i] = sum over l in [k0, k1) of A[l][i] * B[l][j] for i < m, j < n,
 * where row l of A starts at a + a_off + l * lda, row l of B at b + b_off +
 * l * ldb, row j of C at c + c_off + j * ldc; with acc set the product is
 * added to what C holds (beta = 1, or a K range split over launches).
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
 * 16 in one launch).
 *
 * Edges (m % 32 or n % 8 not zero) never branch inside the loop: the last
 * half or block is moved back to end at m (n), computes some rows
 * (columns) its neighbour also computes, and stores only its own.  So the
 * host needs m >= 32 and n >= 8, nothing else. */
#define GEMM_NR 8

#define GEMM_ACC(r) float16 p##r = 0.0f, q##r = 0.0f;
#define GEMM_FMA(r)                                                                                \
    {                                                                                              \
        float16 s = (float16)(bl[r]);                                                              \
        p##r = fma(a0, s, p##r);                                                                   \
        q##r = fma(a1, s, q##r);                                                                   \
    }
#define GEMM_STORE(r)                                                                              \
    if (j + r >= j_own) {                                                                          \
        __global float *cr = cz + (size_t)(j + r) * ldc + i;                                       \
        if (i == i_own) {                                                                          \
            if (acc) {                                                                             \
                p##r += vload16(0, cr);                                                            \
                q##r += vload16(1, cr);                                                            \
            }                                                                                      \
            vstore16(p##r, 0, cr);                                                                 \
            vstore16(q##r, 1, cr);                                                                 \
        } else {                                                                                   \
            float t[32];                                                                           \
            vstore16(p##r, 0, t);                                                                  \
            vstore16(q##r, 1, t);                                                                  \
            for (uint e = i_own - i; e < 32; e++) cr[e] = acc ? cr[e] + t[e] : t[e];              \
        }                                                                                          \
    }

__kernel __attribute__((reqd_work_group_size(1, 1, 1)))
void kernel_gemm_native_f32(__global const float *restrict a, const ulong a_off, const uint lda,
                            const ulong a_stride, __global const float *restrict b, const ulong b_off,
                            const uint ldb, const ulong b_stride, __global float *restrict c,
                            const ulong c_off, const uint ldc, const ulong c_stride, const uint m,
                            const uint n, const uint k0, const uint k1, const uint acc)
{
    const uint j_own = get_global_id(0) * GEMM_NR;
    const uint j = j_own + GEMM_NR <= n ? j_own : n - GEMM_NR;
    const size_t z = get_global_id(2);
    __global const float *az = a + a_off + z * a_stride;
    __global const float *bz = b + b_off + z * b_stride;
    __global float *cz = c + c_off + z * c_stride;
    for (uint h = 0; h < 2; h++) {
        const uint i_own = (get_global_id(1) * 2 + h) * 32;
        if (i_own >= m) break;
        const uint i = i_own + 32 <= m ? i_own : m - 32;
        GEMM_ACC(0) GEMM_ACC(1) GEMM_ACC(2) GEMM_ACC(3)
        GEMM_ACC(4) GEMM_ACC(5) GEMM_ACC(6) GEMM_ACC(7)
        __global const float *al = az + (size_t)k0 * lda + i;
        __global const float *bl = bz + (size_t)k0 * ldb + j;
        for (uint l = k0; l < k1; l++, al += lda, bl += ldb) {
            float16 a0 = vload16(0, al), a1 = vload16(1, al);
            GEMM_FMA(0) GEMM_FMA(1) GEMM_FMA(2) GEMM_FMA(3)
            GEMM_FMA(4) GEMM_FMA(5) GEMM_FMA(6) GEMM_FMA(7)
        }
        GEMM_STORE(0) GEMM_STORE(1) GEMM_STORE(2) GEMM_STORE(3)
        GEMM_STORE(4) GEMM_STORE(5) GEMM_STORE(6) GEMM_STORE(7)
    }
}
