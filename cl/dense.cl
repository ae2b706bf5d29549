/* Fully-connected layers at batch 1: y = W x, a matrix-vector product that is
 * bound by reading W once.  One work-group per output row; the group strides
 * across the row so neighbouring work-items read neighbouring floats, then a
 * tree reduction in local memory. */

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
