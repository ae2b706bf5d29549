/* GEMM for CPU devices in the "native" layout of cnn_blas_sgemm_native:
 * C[j][i] = sum over l in [k0, k1) of A[l][i] * B[l][j] for i < m, j < n,
 * where row l of A starts at a + a_off + l * lda, row l of B at b + b_off +
 * l * ldb, row j of C at c + c_off + j * ldc; with acc set the product is
 * added to what C holds (beta = 1, or a K range split over launches).
 *
 * One work-item computes a block of C (i x j) as two halves of GEMM_MH x
 * GEMM_NR (AVX-512: 32 x 8 in 16 float16 accumulators): per step of l it
 * loads two vectors of A's row and broadcasts GEMM_NR floats of B's row.
 * A CPU compiler keeps the accumulators in vector registers, so the loop
 * is the register-blocked kernel of a CPU BLAS.  Work-groups are single
 * items: the items share
 * nothing, and a larger group only made the compiler loop over items.
 * Dimension 2 runs `count` products at strides of A, B and C (Winograd's
 * 16 in one launch).
 *
 * Edges (m % GEMM_MH or n % GEMM_NR not zero) never branch inside the
 * loop: the last half or block is moved back to end at m (n), computes some rows
 * (columns) its neighbour also computes, and stores only its own.  So the
 * host needs m >= GEMM_MH and n >= GEMM_NR, nothing else.
 *
 * The block shape is set per instruction set by the host (-D options):
 * GEMM_VW floats per vector, a half is two vectors (GEMM_MH = 2 GEMM_VW
 * rows), GEMM_NR columns.  AVX-512 (32 vector registers): 16 x 8, the 16
 * accumulators of a half in 16 zmm.  AVX2 (16 registers): 8 x 6, 12 ymm
 * accumulators, two for A's row and one broadcast, as a CPU BLAS blocks
 * for that width; the 16 x 8 shape there needs 32 registers and spills. */
#ifndef GEMM_VW
#define GEMM_VW 16
#endif
#ifndef GEMM_NR
#define GEMM_NR 8
#endif
#define GEMM_MH (2 * GEMM_VW)
#define GEMM_CAT_(a, b) a##b
#define GEMM_CAT(a, b) GEMM_CAT_(a, b)
#define GEMM_VEC GEMM_CAT(float, GEMM_VW)
#define GEMM_LOAD GEMM_CAT(vload, GEMM_VW)
#define GEMM_STOREV GEMM_CAT(vstore, GEMM_VW)
#if GEMM_NR == 8
#define GEMM_EACH(M) M(0) M(1) M(2) M(3) M(4) M(5) M(6) M(7)
#elif GEMM_NR == 6
#define GEMM_EACH(M) M(0) M(1) M(2) M(3) M(4) M(5)
#elif GEMM_NR == 4
#define GEMM_EACH(M) M(0) M(1) M(2) M(3)
#else
#error "GEMM_NR must be 4, 6 or 8"
#endif

#define GEMM_ACC(r) GEMM_VEC p##r = 0.0f, q##r = 0.0f;
#define GEMM_FMA(r)                                                                                \
    {                                                                                              \
        GEMM_VEC s = (GEMM_VEC)(bl[r]);                                                            \
        p##r = fma(a0, s, p##r);                                                                   \
        q##r = fma(a1, s, q##r);                                                                   \
    }
#define GEMM_STORE(r)                                                                              \
    if (j + r >= j_own) {                                                                          \
        __global float *cr = cz + (size_t)(j + r) * ldc + i;                                       \
        if (i == i_own) {                                                                          \
            if (acc) {                                                                             \
                p##r += GEMM_LOAD(0, cr);                                                          \
                q##r += GEMM_LOAD(1, cr);                                                          \
            }                                                                                      \
            GEMM_STOREV(p##r, 0, cr);                                                              \
            GEMM_STOREV(q##r, 1, cr);                                                              \
        } else {                                                                                   \
            float t[GEMM_MH];                                                                      \
            GEMM_STOREV(p##r, 0, t);                                                               \
            GEMM_STOREV(q##r, 1, t);                                                               \
            for (uint e = i_own - i; e < GEMM_MH; e++) cr[e] = acc ? cr[e] + t[e] : t[e];         \
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
        const uint i_own = (get_global_id(1) * 2 + h) * GEMM_MH;
        if (i_own >= m) break;
        const uint i = i_own + GEMM_MH <= m ? i_own : m - GEMM_MH;
        GEMM_EACH(GEMM_ACC)
        __global const float *al = az + (size_t)k0 * lda + i;
        __global const float *bl = bz + (size_t)k0 * ldb + j;
        for (uint l = k0; l < k1; l++, al += lda, bl += ldb) {
            GEMM_VEC a0 = GEMM_LOAD(0, al), a1 = GEMM_LOAD(1, al);
            GEMM_EACH(GEMM_FMA)
        }
        GEMM_EACH(GEMM_STORE)
    }
}
