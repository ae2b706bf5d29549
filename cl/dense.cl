/* Fully-connected layers at batch 1: y = W x, a matrix-vector product that is
 * bound by reading W once.  One work-item per output row streams its row
 * with 8-wide loads and no barrier: on CPU devices each item is a sequential
 * read the hardware prefetcher follows (a work-group per row with a local
 * tree reduction ran 6x slower on PoCL).  Rows need not be 8-aligned (vload8
 * takes any float address). */
__kernel void kernel_gemv_rows_f32(__global const float *w, __global const float *x,
                                   __global float *y, const uint in, const uint out)
{
    uint row = get_global_id(0);
    if (row >= out) return;
    __global const float *wr = w + (size_t)row * in;
    float8 acc = (float8)(0.0f);
    uint i = 0;
    for (; i + 8 <= in; i += 8) acc += vload8(0, wr + i) * vload8(0, x + i);
    float s = (acc.s0 + acc.s1) + (acc.s2 + acc.s3) + (acc.s4 + acc.s5) + (acc.s6 + acc.s7);
    for (; i < in; i++) s += wr[i] * x[i];
    y[row] = s;
}

/* The same for GPUs: one work-group per output row, whose items stride
 * across the row so that neighbouring items read neighbouring floats
 * (coalesced), then a tree reduction in local memory.  A work-item per row
 * reads with a stride of a whole row between items, which ran VGG16's fc6
 * several times slower on an NVIDIA H100. */
#ifndef GEMV_WG
#define GEMV_WG 64
#endif

__kernel __attribute__((reqd_work_group_size(GEMV_WG, 1, 1)))
void kernel_gemv_f32(__global const float *w, __global const float *x, __global float *y,
                     const uint in, const uint out)
{
    __local float part[GEMV_WG];
    uint row = get_group_id(0);
    uint lid = get_local_id(0);
    if (row >= out) return;
    __global const float *wr = w + (size_t)row * in;
    float acc = 0.0f;
    for (uint i = lid; i < in; i += GEMV_WG) acc += wr[i] * x[i];
    part[lid] = acc;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (uint s = GEMV_WG / 2; s > 0; s >>= 1) {
        if (lid < s) part[lid] += part[lid + s];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (lid == 0) y[row] = part[0];
}
