/* OpenCL runtime: platform/device choice, context and queue, kernel programs
 * (embedded or from CNNVIZ_KERNEL_DIR) built once and cached on disk. */
#ifndef CNN_RUNTIME_CLRT_H
#define CNN_RUNTIME_CLRT_H

#include <stdbool.h>
#include <stdio.h>
#include <CL/cl.h>

typedef struct cnn_cl_kernel_entry cnn_cl_kernel_entry;
typedef struct cnn_cl_program_entry cnn_cl_program_entry;

typedef struct cnn_cl {
    cl_platform_id platform;
    cl_device_id device;
    cl_context ctx;
    cl_command_queue queue;
    int platform_index, device_index;
    char platform_name[256];
    char platform_version[256];
    char device_name[256];
    char device_vendor[256];
    char driver_version[256];
    cl_device_type type;
    cl_uint compute_units;
    size_t max_work_group;
    cl_ulong global_mem, max_alloc, local_mem;
    bool profiling;      /* queue created with CL_QUEUE_PROFILING_ENABLE */
    bool is_pocl;        /* PoCL: small work-groups are slow, prefer >= 64 */
    bool own_gemm;       /* native-layout GEMMs on cl/gemm.cl (PoCL CPUs) */
    int gemm_vw, gemm_nr; /* its block: floats per vector, columns (ops/blas.h) */
    char *cache_dir;     /* NULL when the program cache is off */
    cnn_cl_program_entry *programs;
    cnn_cl_kernel_entry *kernels;
    /* counters for tests and --profile */
    int cache_hits, cache_misses, cache_writes;
} cnn_cl;

/* Chooses a device and creates a context and an in-order queue.
 * platform_sel / device_sel: NULL, an index, or a case-insensitive substring
 * of the platform name/vendor or of the device name/vendor/type word ("gpu",
 * "cpu"); NULL falls back to env CNNVIZ_PLATFORM / CNNVIZ_DEVICE, then to the
 * first GPU, else the first device.
 * Errors: no platform -> CNN_ERR_NODEV (hint to install an ICD); selection
 * matching nothing -> CNN_ERR_USAGE naming the flag (the caller prints the
 * device list). */
int cnn_cl_init(cnn_cl *cl, const char *platform_sel, const char *device_sel, bool profiling);

/* True when device_sel (or, when NULL, CNNVIZ_DEVICE) asks for several
 * devices: "all", or a comma-separated list. */
bool cnn_cl_wants_several(const char *device_sel);
/* The devices such a selection names: "all" (every device of the
 * platforms platform_sel matches, or of every platform), or a list of
 * selections as cnn_cl_init takes them ("0,2", "gpu,cpu"), each the first
 * device it matches.  Fills plats[i] / devs[i] (platform index, device
 * index within it) for *n devices, at most `max`.  Errors: CNN_ERR_USAGE
 * naming the part that matches nothing or a device named twice;
 * CNN_ERR_NODEV. */
int cnn_cl_select_several(const char *platform_sel, const char *device_sel, int *plats, int *devs, int max, int *n);
void cnn_cl_free(cnn_cl *cl);

/* Prints every platform and device with what a user of this tool needs.
 * Returns CNN_ERR_NODEV when there is no platform. */
int cnn_cl_print_devices(FILE *out);

/* Returns a kernel (owned by `cl`, reused across calls: set all its args
 * before each enqueue) from the embedded file `file` ("eltwise.cl") built
 * with `options` (may be NULL).  The program holds that kernel alone (see
 * cnn_cl_source_keep_kernel), is built once per (file, options, kernel) and
 * cached on disk.  A build failure prints the file, the options
 * and the driver's log to stderr and returns CNN_ERR_DEVICE. */
int cnn_cl_kernel(cnn_cl *cl, const char *file, const char *options, const char *kernel_name,
                  cl_kernel *out);

/* Blanks (spaces, newlines kept) every kernel definition of an OpenCL C
 * source but `keep`, so that a program holds one kernel.  Kernels start
 * with "__kernel" at the start of a line; helpers, macros and comments stay.
 * Returns how many kernels were blanked, or -1 (source untouched) when the
 * scan does not understand the text or `keep` is not defined exactly once. */
int cnn_cl_source_keep_kernel(char *src, size_t len, const char *keep);

/* Source of an embedded kernel file, or from $CNNVIZ_KERNEL_DIR when set
 * (heap string). */
int cnn_cl_kernel_source(const char *file, char **src, size_t *len);

/* The cache folder: $CNNVIZ_CACHE_DIR, "off" -> NULL, default
 * $XDG_CACHE_HOME/cnnviz-cl or ~/.cache/cnnviz-cl. Heap string or NULL. */
char *cnn_cl_cache_dir(void);

/* Enqueue a 1-D kernel over n items with a work-group size suited to the
 * device (global rounded up; kernels check their bounds). */
int cnn_cl_run1d(cnn_cl *cl, cl_kernel k, size_t n, const char *what);
/* 2-D/3-D with explicit global sizes (rounded up to the local size). */
int cnn_cl_runnd(cnn_cl *cl, cl_kernel k, cl_uint dims, const size_t *global, const size_t *local,
                 const char *what);

/* Set kernel arguments, checked: CNN_CL_ARG(k, 0, buf) sizeof-based. */
int cnn_cl_set_arg(cl_kernel k, cl_uint index, size_t size, const void *value, const char *what);
#define CNN_ARG(k, i, v, what) cnn_cl_set_arg((k), (i), sizeof(v), &(v), (what))

/* Buffers: checked create / write / read. */
int cnn_cl_buffer(cnn_cl *cl, size_t bytes, cl_mem *out, const char *what);
/* A read-only buffer over host memory that must outlive it (on a CPU
 * device, no copy). */
int cnn_cl_buffer_host(cnn_cl *cl, size_t bytes, const void *host, cl_mem *out, const char *what);
int cnn_cl_write(cnn_cl *cl, cl_mem buf, size_t offset, size_t bytes, const void *src, const char *what);
int cnn_cl_read(cnn_cl *cl, cl_mem buf, size_t offset, size_t bytes, void *dst, const char *what);
/* Maps the first `bytes` of a buffer for writing its whole contents (the
 * old contents are not read back: on a CPU device the pointer is the
 * buffer itself, elsewhere a staging copy sent at unmap). */
int cnn_cl_map_write(cnn_cl *cl, cl_mem buf, size_t bytes, void **ptr, const char *what);
int cnn_cl_unmap(cnn_cl *cl, cl_mem buf, void *ptr, const char *what);

#endif
