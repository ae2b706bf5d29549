/* OpenCL runtime (runtime/clrt.h): devices, context and queue, programs
 * built once and cached on disk, and the checked wrappers of the OpenCL
 * calls the ops make.
 *
 * One file: every OpenCL call outside the ops goes through here, each
 * checked and named in its error, which is easiest to keep true in one
 * place. */
#define _POSIX_C_SOURCE 200809L
#include "runtime/clrt.h"
#include "runtime/kernels.h"
#include "core/error.h"
#include "core/util.h"

#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX_PLATFORMS 16
#define MAX_DEVICES 64

struct cnn_cl_program_entry {
    char *file, *options, *kernel;
    cl_program program;
    cnn_cl_program_entry *next;
};

struct cnn_cl_kernel_entry {
    cl_program program;
    char *name;
    cl_kernel kernel;
    cnn_cl_kernel_entry *next;
};

static int list_platforms(cl_platform_id *ids, cl_uint *n)
{
    cl_int err = clGetPlatformIDs(MAX_PLATFORMS, ids, n);
    if (err == CL_PLATFORM_NOT_FOUND_KHR || (err == CL_SUCCESS && *n == 0))
        return cnn_error_set(CNN_ERR_NODEV,
                             "no OpenCL platform found: install an OpenCL driver (ICD), for "
                             "example 'apt-get install pocl-opencl-icd' for the CPU");
    if (err != CL_SUCCESS)
        return cnn_error_set(CNN_ERR_DEVICE, "clGetPlatformIDs failed: %s", cnn_cl_error_name(err));
    if (*n > MAX_PLATFORMS) *n = MAX_PLATFORMS;
    return CNN_OK;
}

static void list_devices(cl_platform_id p, cl_device_id *ids, cl_uint *n)
{
    if (clGetDeviceIDs(p, CL_DEVICE_TYPE_ALL, MAX_DEVICES, ids, n) != CL_SUCCESS) *n = 0;
    if (*n > MAX_DEVICES) *n = MAX_DEVICES;
}

static void pinfo(cl_platform_id p, cl_platform_info what, char *buf, size_t size)
{
    buf[0] = '\0';
    if (clGetPlatformInfo(p, what, size, buf, NULL) != CL_SUCCESS) snprintf(buf, size, "?");
    buf[size - 1] = '\0';
}

static void dinfo_str(cl_device_id d, cl_device_info what, char *buf, size_t size)
{
    buf[0] = '\0';
    if (clGetDeviceInfo(d, what, size, buf, NULL) != CL_SUCCESS) snprintf(buf, size, "?");
    buf[size - 1] = '\0';
    /* Some drivers pad names with spaces. */
    size_t n = strlen(buf);
    while (n && buf[n - 1] == ' ') buf[--n] = '\0';
}

static cl_ulong dinfo_ulong(cl_device_id d, cl_device_info what)
{
    cl_ulong v = 0;
    clGetDeviceInfo(d, what, sizeof v, &v, NULL);
    return v;
}

static cl_uint dinfo_uint(cl_device_id d, cl_device_info what)
{
    cl_uint v = 0;
    clGetDeviceInfo(d, what, sizeof v, &v, NULL);
    return v;
}

static const char *type_word(cl_device_type t)
{
    if (t & CL_DEVICE_TYPE_GPU) return "gpu";
    if (t & CL_DEVICE_TYPE_CPU) return "cpu";
    if (t & CL_DEVICE_TYPE_ACCELERATOR) return "accelerator";
    return "other";
}

static bool contains_nocase(const char *hay, const char *needle)
{
    size_t n = strlen(needle);
    if (n == 0) return true;
    for (; *hay; hay++) {
        size_t i = 0;
        while (i < n && hay[i] && tolower((unsigned char)hay[i]) == tolower((unsigned char)needle[i])) i++;
        if (i == n) return true;
    }
    return false;
}

/* An index if sel is all digits, else -1. */
static long as_index(const char *sel)
{
    if (!sel || !*sel) return -1;
    for (const char *s = sel; *s; s++)
        if (!isdigit((unsigned char)*s)) return -1;
    errno = 0;
    long v = strtol(sel, NULL, 10);
    return errno ? -2 : v;
}

static void fmt_bytes(cl_ulong b, char *buf, size_t size)
{
    if (b >= (1ULL << 30)) snprintf(buf, size, "%.1f GiB", (double)b / (double)(1ULL << 30));
    else if (b >= (1ULL << 20)) snprintf(buf, size, "%.1f MiB", (double)b / (double)(1ULL << 20));
    else snprintf(buf, size, "%.0f KiB", (double)b / 1024.0);
}

int cnn_cl_print_devices(FILE *out)
{
    cl_platform_id plats[MAX_PLATFORMS];
    cl_uint np = 0;
    int status = list_platforms(plats, &np);
    if (status < 0) return status;
    for (cl_uint p = 0; p < np; p++) {
        char name[256], vendor[256], version[256];
        pinfo(plats[p], CL_PLATFORM_NAME, name, sizeof name);
        pinfo(plats[p], CL_PLATFORM_VENDOR, vendor, sizeof vendor);
        pinfo(plats[p], CL_PLATFORM_VERSION, version, sizeof version);
        fprintf(out, "platform %u: %s (%s) %s\n", p, name, vendor, version);
        cl_device_id devs[MAX_DEVICES];
        cl_uint nd = 0;
        list_devices(plats[p], devs, &nd);
        if (nd == 0) fprintf(out, "  (no devices)\n");
        for (cl_uint d = 0; d < nd; d++) {
            char dname[256], dvendor[256], cver[128], driver[128], ext[8192];
            dinfo_str(devs[d], CL_DEVICE_NAME, dname, sizeof dname);
            dinfo_str(devs[d], CL_DEVICE_VENDOR, dvendor, sizeof dvendor);
            dinfo_str(devs[d], CL_DEVICE_OPENCL_C_VERSION, cver, sizeof cver);
            dinfo_str(devs[d], CL_DRIVER_VERSION, driver, sizeof driver);
            dinfo_str(devs[d], CL_DEVICE_EXTENSIONS, ext, sizeof ext);
            cl_device_type t = 0;
            clGetDeviceInfo(devs[d], CL_DEVICE_TYPE, sizeof t, &t, NULL);
            char gm[32], ma[32], lm[32];
            fmt_bytes(dinfo_ulong(devs[d], CL_DEVICE_GLOBAL_MEM_SIZE), gm, sizeof gm);
            fmt_bytes(dinfo_ulong(devs[d], CL_DEVICE_MAX_MEM_ALLOC_SIZE), ma, sizeof ma);
            fmt_bytes(dinfo_ulong(devs[d], CL_DEVICE_LOCAL_MEM_SIZE), lm, sizeof lm);
            fprintf(out, "  device %u: %s\n", d, dname);
            fprintf(out, "    vendor %s, type %s, driver %s, %s\n", dvendor, type_word(t), driver, cver);
            fprintf(out, "    %u compute units at %u MHz, max work-group %zu\n",
                    dinfo_uint(devs[d], CL_DEVICE_MAX_COMPUTE_UNITS),
                    dinfo_uint(devs[d], CL_DEVICE_MAX_CLOCK_FREQUENCY),
                    (size_t)dinfo_ulong(devs[d], CL_DEVICE_MAX_WORK_GROUP_SIZE));
            fprintf(out, "    global memory %s, max allocation %s, local memory %s\n", gm, ma, lm);
            fprintf(out, "    fp16 %s, fp64 %s\n", strstr(ext, "cl_khr_fp16") ? "yes" : "no",
                    strstr(ext, "cl_khr_fp64") ? "yes" : "no");
            fprintf(out, "    select with: --platform %u --device %u\n", p, d);
        }
    }
    return CNN_OK;
}

static bool device_matches(cl_device_id d, const char *sel)
{
    char name[256], vendor[256];
    cl_device_type t = 0;
    dinfo_str(d, CL_DEVICE_NAME, name, sizeof name);
    dinfo_str(d, CL_DEVICE_VENDOR, vendor, sizeof vendor);
    clGetDeviceInfo(d, CL_DEVICE_TYPE, sizeof t, &t, NULL);
    return contains_nocase(name, sel) || contains_nocase(vendor, sel) ||
           contains_nocase(type_word(t), sel);
}

static int select_device(const char *psel, const char *dsel, cl_platform_id *plat_out,
                         cl_device_id *dev_out, int *pi_out, int *di_out)
{
    cl_platform_id plats[MAX_PLATFORMS];
    cl_uint np = 0;
    int status = list_platforms(plats, &np);
    if (status < 0) return status;

    bool pmask[MAX_PLATFORMS];
    long pidx = as_index(psel);
    bool any_platform = false;
    for (cl_uint p = 0; p < np; p++) {
        if (!psel) {
            pmask[p] = true;
        } else if (pidx >= 0 || pidx == -2) {
            pmask[p] = ((long)p == pidx);
        } else {
            char name[256], vendor[256];
            pinfo(plats[p], CL_PLATFORM_NAME, name, sizeof name);
            pinfo(plats[p], CL_PLATFORM_VENDOR, vendor, sizeof vendor);
            pmask[p] = contains_nocase(name, psel) || contains_nocase(vendor, psel);
        }
        any_platform |= pmask[p];
    }
    if (!any_platform)
        return cnn_error_set(CNN_ERR_USAGE, "--platform '%s' matches no OpenCL platform", psel);

    long didx = as_index(dsel);
    bool want_gpu_default = (dsel == NULL);
    /* Pass 0 looks for a GPU when no device was asked for; pass 1 takes the
     * first device that fits the selection. */
    for (int pass = want_gpu_default ? 0 : 1; pass < 2; pass++) {
        bool index_platform_done = false;
        for (cl_uint p = 0; p < np; p++) {
            if (!pmask[p]) continue;
            cl_device_id devs[MAX_DEVICES];
            cl_uint nd = 0;
            list_devices(plats[p], devs, &nd);
            for (cl_uint d = 0; d < nd; d++) {
                bool ok;
                if (!dsel) {
                    cl_device_type t = 0;
                    clGetDeviceInfo(devs[d], CL_DEVICE_TYPE, sizeof t, &t, NULL);
                    ok = pass == 1 || (t & CL_DEVICE_TYPE_GPU);
                } else if (didx >= 0 || didx == -2) {
                    ok = ((long)d == didx);
                } else {
                    ok = device_matches(devs[d], dsel);
                }
                if (ok) {
                    *plat_out = plats[p];
                    *dev_out = devs[d];
                    *pi_out = (int)p;
                    *di_out = (int)d;
                    return CNN_OK;
                }
            }
            /* A device index counts within one platform: the one selected,
             * or the first one when none was. */
            if (didx >= 0 || didx == -2) index_platform_done = true;
            if (index_platform_done) break;
        }
    }
    if (dsel)
        return cnn_error_set(CNN_ERR_USAGE, "--device '%s' matches no device%s%s%s", dsel,
                             psel ? " of platform '" : "", psel ? psel : "", psel ? "'" : "");
    return cnn_error_set(CNN_ERR_NODEV, "the selected platform has no OpenCL device: install a "
                                        "driver (ICD), e.g. 'apt-get install pocl-opencl-icd'");
}

bool cnn_cl_wants_several(const char *device_sel)
{
    if (!device_sel) device_sel = getenv("CNNVIZ_DEVICE");
    return device_sel && (!strcmp(device_sel, "all") || strchr(device_sel, ','));
}

int cnn_cl_select_several(const char *platform_sel, const char *device_sel, int *plats, int *devs, int max, int *n)
{
    if (!platform_sel) platform_sel = getenv("CNNVIZ_PLATFORM");
    if (!device_sel) device_sel = getenv("CNNVIZ_DEVICE");
    if (platform_sel && !*platform_sel) platform_sel = NULL;
    *n = 0;
    if (device_sel && !strcmp(device_sel, "all")) {
        cl_platform_id ps[MAX_PLATFORMS];
        cl_uint np = 0;
        CNN_TRY_RET(list_platforms(ps, &np));
        long pidx = as_index(platform_sel);
        for (cl_uint p = 0; p < np; p++) {
            char name[256], vendor[256];
            pinfo(ps[p], CL_PLATFORM_NAME, name, sizeof name);
            pinfo(ps[p], CL_PLATFORM_VENDOR, vendor, sizeof vendor);
            if (platform_sel && (pidx >= 0 || pidx == -2 ? (long)p != pidx
                                                        : !contains_nocase(name, platform_sel) &&
                                                              !contains_nocase(vendor, platform_sel)))
                continue;
            cl_device_id ds[MAX_DEVICES];
            cl_uint nd = 0;
            list_devices(ps[p], ds, &nd);
            for (cl_uint d = 0; d < nd && *n < max; d++) {
                plats[*n] = (int)p;
                devs[(*n)++] = (int)d;
            }
        }
        if (!*n)
            return cnn_error_set(platform_sel ? CNN_ERR_USAGE : CNN_ERR_NODEV, "--device all: %s has no OpenCL device",
                                 platform_sel ? "the selected platform" : "this machine");
        return CNN_OK;
    }
    char list[512];
    snprintf(list, sizeof list, "%s", device_sel ? device_sel : "");
    char *save = NULL;
    for (char *part = strtok_r(list, ",", &save); part; part = strtok_r(NULL, ",", &save)) {
        while (*part == ' ') part++;
        if (*n == max) return cnn_error_set(CNN_ERR_USAGE, "--device %s: more than %d devices", device_sel, max);
        cl_platform_id plat;
        cl_device_id dev;
        int status = select_device(platform_sel, part, &plat, &dev, &plats[*n], &devs[*n]);
        if (status == CNN_ERR_USAGE)
            return cnn_error_set(status, "--device %s: '%s' matches no device%s%s%s", device_sel, part,
                                 platform_sel ? " of platform '" : "", platform_sel ? platform_sel : "",
                                 platform_sel ? "'" : "");
        if (status < 0) return status;
        for (int i = 0; i < *n; i++)
            if (plats[i] == plats[*n] && devs[i] == devs[*n])
                return cnn_error_set(CNN_ERR_USAGE, "--device %s: '%s' names device %d of platform %d again",
                                     device_sel, part, devs[i], plats[i]);
        (*n)++;
    }
    if (!*n) return cnn_error_set(CNN_ERR_USAGE, "--device '%s': no device named", device_sel);
    return CNN_OK;
}

char *cnn_cl_cache_dir(void)
{
    const char *env = getenv("CNNVIZ_CACHE_DIR");
    if (env && *env) {
        if (strcmp(env, "off") == 0) return NULL;
        return cnn_strdup(env);
    }
    const char *xdg = getenv("XDG_CACHE_HOME");
    if (xdg && *xdg) return cnn_strfmt("%s/cnnviz-cl", xdg);
    const char *home = getenv("HOME");
    if (home && *home) return cnn_strfmt("%s/.cache/cnnviz-cl", home);
    return NULL;
}

static int cl_init(cnn_cl *cl, const char *platform_sel, const char *device_sel, bool profiling);

int cnn_cl_init(cnn_cl *cl, const char *platform_sel, const char *device_sel, bool profiling)
{
    /* The runtime starts its worker threads here (PoCL: when the platform
     * is first queried); they are to be born with SIGINT/SIGTERM held, so
     * that a Ctrl-C reaches this thread alone and never the linker a
     * worker runs to finish a kernel. */
    cnn_signals_hold();
    int status = cl_init(cl, platform_sel, device_sel, profiling);
    cnn_signals_release();
    if (status == CNN_OK && cnn_signal_pending()) {
        cnn_cl_free(cl);
        status = cnn_error_interrupted();
    }
    return status;
}

static int cl_init(cnn_cl *cl, const char *platform_sel, const char *device_sel, bool profiling)
{
    memset(cl, 0, sizeof *cl);
    int status = CNN_OK;
    if (!platform_sel) platform_sel = getenv("CNNVIZ_PLATFORM");
    if (!device_sel) device_sel = getenv("CNNVIZ_DEVICE");
    if (platform_sel && !*platform_sel) platform_sel = NULL;
    if (device_sel && !*device_sel) device_sel = NULL;
    CNN_TRY(select_device(platform_sel, device_sel, &cl->platform, &cl->device, &cl->platform_index,
                          &cl->device_index),
            fail);

    pinfo(cl->platform, CL_PLATFORM_NAME, cl->platform_name, sizeof cl->platform_name);
    pinfo(cl->platform, CL_PLATFORM_VERSION, cl->platform_version, sizeof cl->platform_version);
    dinfo_str(cl->device, CL_DEVICE_NAME, cl->device_name, sizeof cl->device_name);
    dinfo_str(cl->device, CL_DEVICE_VENDOR, cl->device_vendor, sizeof cl->device_vendor);
    dinfo_str(cl->device, CL_DRIVER_VERSION, cl->driver_version, sizeof cl->driver_version);
    clGetDeviceInfo(cl->device, CL_DEVICE_TYPE, sizeof cl->type, &cl->type, NULL);
    cl->compute_units = dinfo_uint(cl->device, CL_DEVICE_MAX_COMPUTE_UNITS);
    clGetDeviceInfo(cl->device, CL_DEVICE_MAX_WORK_GROUP_SIZE, sizeof cl->max_work_group,
                    &cl->max_work_group, NULL);
    cl->global_mem = dinfo_ulong(cl->device, CL_DEVICE_GLOBAL_MEM_SIZE);
    cl->max_alloc = dinfo_ulong(cl->device, CL_DEVICE_MAX_MEM_ALLOC_SIZE);
    cl->local_mem = dinfo_ulong(cl->device, CL_DEVICE_LOCAL_MEM_SIZE);
    cl->is_pocl = contains_nocase(cl->platform_name, "portable computing language") ||
                  contains_nocase(cl->platform_name, "pocl");

    cl_int err;
    cl_context_properties props[] = {CL_CONTEXT_PLATFORM, (cl_context_properties)cl->platform, 0};
    cl->ctx = clCreateContext(props, 1, &cl->device, NULL, NULL, &err);
    CNN_CL_CHECK_ERR(err, "clCreateContext", cl->device_name, fail);
    cl->profiling = profiling;
    cl->queue = clCreateCommandQueue(cl->ctx, cl->device, profiling ? CL_QUEUE_PROFILING_ENABLE : 0, &err);
    CNN_CL_CHECK_ERR(err, "clCreateCommandQueue", cl->device_name, fail);
    cl->cache_dir = cnn_cl_cache_dir();
    /* PoCL's compiler takes SIGBUS when it starts: take it back, so that a
     * weights file shrinking under a run is reported, not a crash. */
    cnn_fault_guard_install();
    return CNN_OK;
fail:
    cnn_cl_free(cl);
    return status;
}

void cnn_cl_free(cnn_cl *cl)
{
    for (cnn_cl_kernel_entry *k = cl->kernels, *next; k; k = next) {
        next = k->next;
        clReleaseKernel(k->kernel);
        free(k->name);
        free(k);
    }
    for (cnn_cl_program_entry *p = cl->programs, *next; p; p = next) {
        next = p->next;
        clReleaseProgram(p->program);
        free(p->file);
        free(p->options);
        free(p->kernel);
        free(p);
    }
    if (cl->queue) clReleaseCommandQueue(cl->queue);
    if (cl->ctx) clReleaseContext(cl->ctx);
    free(cl->cache_dir);
    memset(cl, 0, sizeof *cl);
}

int cnn_cl_kernel_source(const char *file, char **src, size_t *len)
{
    const char *dir = getenv("CNNVIZ_KERNEL_DIR");
    if (dir && *dir) {
        char *path = cnn_path_join(dir, file);
        if (!path) return CNN_ERR_NOMEM;
        int status = cnn_file_read(path, 16u << 20, src, len);
        free(path);
        if (status < 0) return cnn_error_prefix(status, "CNNVIZ_KERNEL_DIR");
        return CNN_OK;
    }
    for (const cnn_kernel_file *k = cnn_kernel_files; k->name; k++) {
        if (strcmp(k->name, file) == 0) {
            *src = cnn_malloc(k->len + 1);
            if (!*src) return CNN_ERR_NOMEM;
            memcpy(*src, k->data, k->len);
            (*src)[k->len] = '\0';
            *len = k->len;
            return CNN_OK;
        }
    }
    return cnn_error_set(CNN_ERR_DEVICE, "kernel file '%s' is not embedded in this build", file);
}

/* Cache file layout: "CNNVIZPC" | u64 key | u64 length | bytes | u64 hash of
 * the bytes.  Anything that does not check out is ignored (and rebuilt). */
static const char CACHE_MAGIC[8] = {'C', 'N', 'N', 'V', 'I', 'Z', 'P', 'C'};

static uint64_t program_key(const cnn_cl *cl, const char *src, size_t len, const char *options)
{
    uint64_t h = CNN_HASH64_INIT;
    h = cnn_hash64(h, src, len);
    h = cnn_hash64(h, "\x1f", 1);
    h = cnn_hash64(h, options, strlen(options));
    h = cnn_hash64(h, "\x1f", 1);
    h = cnn_hash64(h, cl->device_name, strlen(cl->device_name));
    h = cnn_hash64(h, "\x1f", 1);
    h = cnn_hash64(h, cl->driver_version, strlen(cl->driver_version));
    h = cnn_hash64(h, "\x1f", 1);
    h = cnn_hash64(h, cl->platform_version, strlen(cl->platform_version));
    return h;
}

static cl_program cache_load(cnn_cl *cl, uint64_t key, const char *options)
{
    if (!cl->cache_dir) return NULL;
    char *path = cnn_strfmt("%s/%016llx.bin", cl->cache_dir, (unsigned long long)key);
    if (!path) return NULL;
    char *data = NULL;
    size_t len = 0;
    cl_program prog = NULL;
    if (cnn_file_read(path, 256u << 20, &data, &len) < 0) goto done;
    uint64_t fkey, blen, fhash;
    if (len < 32 || memcmp(data, CACHE_MAGIC, 8) != 0) goto done;
    memcpy(&fkey, data + 8, 8);
    memcpy(&blen, data + 16, 8);
    if (fkey != key || blen != len - 32) goto done;
    memcpy(&fhash, data + 24 + blen, 8);
    if (fhash != cnn_hash64(CNN_HASH64_INIT, data + 24, (size_t)blen)) goto done;
    const unsigned char *bin = (const unsigned char *)data + 24;
    size_t bsize = (size_t)blen;
    cl_int err, binstatus;
    prog = clCreateProgramWithBinary(cl->ctx, 1, &cl->device, &bsize, &bin, &binstatus, &err);
    if (err != CL_SUCCESS || binstatus != CL_SUCCESS) {
        if (prog) clReleaseProgram(prog);
        prog = NULL;
        goto done;
    }
    if (clBuildProgram(prog, 1, &cl->device, options, NULL, NULL) != CL_SUCCESS) {
        clReleaseProgram(prog);
        prog = NULL;
    }
done:
    free(data);
    free(path);
    cnn_error_clear();
    return prog;
}

static void cache_store(cnn_cl *cl, uint64_t key, cl_program prog)
{
    if (!cl->cache_dir) return;
    size_t bsize = 0;
    if (clGetProgramInfo(prog, CL_PROGRAM_BINARY_SIZES, sizeof bsize, &bsize, NULL) != CL_SUCCESS ||
        bsize == 0)
        return;
    unsigned char *buf = malloc(bsize + 32);
    if (!buf) return;
    unsigned char *bin = buf + 24;
    if (clGetProgramInfo(prog, CL_PROGRAM_BINARIES, sizeof bin, &bin, NULL) == CL_SUCCESS &&
        cnn_mkdirs(cl->cache_dir, 0755) == CNN_OK) {
        uint64_t blen = bsize, h = cnn_hash64(CNN_HASH64_INIT, bin, bsize);
        memcpy(buf, CACHE_MAGIC, 8);
        memcpy(buf + 8, &key, 8);
        memcpy(buf + 16, &blen, 8);
        memcpy(buf + 24 + bsize, &h, 8);
        char *path = cnn_strfmt("%s/%016llx.bin", cl->cache_dir, (unsigned long long)key);
        if (path && cnn_file_write_atomic(path, buf, bsize + 32) == CNN_OK) cl->cache_writes++;
        free(path);
    }
    free(buf);
    cnn_error_clear(); /* a cache failure is never an error */
}

/* Index just past the comment starting at s[i], or i when none starts there;
 * len + 1 for an unterminated one. */
static size_t past_comment(const char *s, size_t len, size_t i)
{
    if (i + 1 >= len || s[i] != '/') return i;
    if (s[i + 1] == '/') {
        while (i < len && s[i] != '\n') i++;
        return i;
    }
    if (s[i + 1] == '*') {
        for (i += 2; i + 1 < len; i++)
            if (s[i] == '*' && s[i + 1] == '/') return i + 2;
        return len + 1;
    }
    return i;
}

static bool is_ident(char c) { return isalnum((unsigned char)c) || c == '_'; }

#define KEEP_MAX_KERNELS 64

int cnn_cl_source_keep_kernel(char *src, size_t len, const char *keep)
{
    size_t from[KEEP_MAX_KERNELS], to[KEEP_MAX_KERNELS];
    int n = 0, found = 0;
    size_t i = 0;
    while (i < len) {
        size_t j = past_comment(src, len, i);
        if (j > len) return -1;
        if (j != i) {
            i = j;
            continue;
        }
        bool line_start = i == 0 || src[i - 1] == '\n';
        if (!line_start || len - i < 8 || memcmp(src + i, "__kernel", 8) != 0 || (i + 8 < len && is_ident(src[i + 8]))) {
            i++;
            continue;
        }
        /* The name: the identifier after "void"; the body: the next '{'
         * to its matching '}'. */
        size_t start = i, k = i + 8, name = 0, name_len = 0;
        for (; k + 4 < len && !name_len; k++) {
            if (src[k] == '{' || src[k] == ';') return -1;
            if (memcmp(src + k, "void", 4) == 0 && !is_ident(src[k - 1]) && !is_ident(src[k + 4])) {
                name = k + 4;
                while (name < len && isspace((unsigned char)src[name])) name++;
                while (name + name_len < len && is_ident(src[name + name_len])) name_len++;
                if (!name_len) return -1;
            }
        }
        if (!name_len) return -1; /* no "void NAME" after "__kernel" */
        for (k = name + name_len; k < len && src[k] != '{'; k++) {
            size_t c = past_comment(src, len, k);
            if (c > len) return -1;
            if (c != k) {
                k = c - 1;
                continue;
            }
            if (src[k] == ';') return -1; /* a declaration, not a definition */
        }
        int depth = 0;
        for (; k < len; k++) {
            size_t c = past_comment(src, len, k);
            if (c > len) return -1;
            if (c != k) {
                k = c - 1;
                continue;
            }
            if (src[k] == '{') depth++;
            if (src[k] == '}' && --depth == 0) break;
        }
        if (k >= len) return -1;
        bool wanted = strlen(keep) == name_len && memcmp(src + name, keep, name_len) == 0;
        if (wanted) {
            found++;
        } else {
            if (n == KEEP_MAX_KERNELS) return -1;
            from[n] = start;
            to[n++] = k + 1;
        }
        i = k + 1;
    }
    if (found != 1) return -1;
    for (int r = 0; r < n; r++)
        for (size_t q = from[r]; q < to[r]; q++)
            if (src[q] != '\n') src[q] = ' '; /* newlines stay: build logs keep their line numbers */
    return n;
}

static int build_program(cnn_cl *cl, const char *file, const char *options, const char *kernel,
                         cl_program *out)
{
    char *src = NULL;
    size_t len = 0;
    int status = cnn_cl_kernel_source(file, &src, &len);
    if (status < 0) return status;
    /* One kernel per program: PoCL compiles every kernel of a program once
     * more when asked for its binary, used or not.  A source the scan does
     * not understand is built whole. */
    (void)cnn_cl_source_keep_kernel(src, len, kernel);
    char *opts = cnn_strfmt("-cl-std=CL1.2%s%s", options && *options ? " " : "", options ? options : "");
    if (!opts) {
        free(src);
        return CNN_ERR_NOMEM;
    }
    uint64_t key = program_key(cl, src, len, opts);
    /* A build takes seconds: a signal that came before it stops the run
     * here; one that comes during it waits (held) until it is done. */
    if (cnn_signal_pending()) {
        status = cnn_error_interrupted();
        goto done;
    }
    cnn_signals_hold();
    cl_program prog = cache_load(cl, key, opts);
    bool cached = prog != NULL;
    cl_int err = CL_SUCCESS, build_err = CL_SUCCESS;
    if (!cached) {
        const char *srcs[1] = {src};
        prog = clCreateProgramWithSource(cl->ctx, 1, srcs, &len, &err);
        if (err == CL_SUCCESS) build_err = clBuildProgram(prog, 1, &cl->device, opts, NULL, NULL);
    }
    cnn_signals_release();
    if (cached) {
        cl->cache_hits++;
    } else {
        cl->cache_misses++;
        if (err != CL_SUCCESS) {
            status = cnn_error_set(CNN_ERR_DEVICE, "clCreateProgramWithSource failed: %s (cl/%s)",
                                   cnn_cl_error_name(err), file);
            goto done;
        }
        err = build_err;
        if (err != CL_SUCCESS && cnn_signal_pending()) {
            /* Held signals cannot cut a build short, but a runtime may
             * still fail for one: the signal is the reason, no log. */
            clReleaseProgram(prog);
            prog = NULL;
            status = cnn_error_interrupted();
            goto done;
        }
        if (err != CL_SUCCESS) {
            size_t logsize = 0;
            clGetProgramBuildInfo(prog, cl->device, CL_PROGRAM_BUILD_LOG, 0, NULL, &logsize);
            char *log = malloc(logsize + 1);
            if (log) {
                log[0] = '\0';
                clGetProgramBuildInfo(prog, cl->device, CL_PROGRAM_BUILD_LOG, logsize, log, NULL);
                log[logsize] = '\0';
                fprintf(stderr, "cnnviz-cl: build log of cl/%s (options: %s) on %s:\n%s\n", file, opts,
                        cl->device_name, log);
                free(log);
            }
            clReleaseProgram(prog);
            prog = NULL;
            status = cnn_error_set(CNN_ERR_DEVICE,
                                   "clBuildProgram failed: %s (kernel %s, file cl/%s, options '%s')",
                                   cnn_cl_error_name(err), kernel, file, opts);
            goto done;
        }
        cache_store(cl, key, prog);
        cnn_fault_guard_install(); /* a compiler started by the build may take SIGBUS */
    }
    *out = prog;
done:
    free(src);
    free(opts);
    return status;
}

int cnn_cl_kernel(cnn_cl *cl, const char *file, const char *options, const char *kernel_name,
                  cl_kernel *out)
{
    if (!options) options = "";
    cnn_cl_program_entry *pe = cl->programs;
    for (; pe; pe = pe->next)
        if (strcmp(pe->file, file) == 0 && strcmp(pe->options, options) == 0 &&
            strcmp(pe->kernel, kernel_name) == 0)
            break;
    if (!pe) {
        cl_program prog = NULL;
        int status = build_program(cl, file, options, kernel_name, &prog);
        if (status < 0) return status;
        pe = calloc(1, sizeof *pe);
        char *f = cnn_strdup(file), *o = cnn_strdup(options), *kn = cnn_strdup(kernel_name);
        if (!pe || !f || !o || !kn) {
            free(pe);
            free(f);
            free(o);
            free(kn);
            clReleaseProgram(prog);
            return cnn_error_set(CNN_ERR_NOMEM, "out of host memory");
        }
        pe->file = f;
        pe->options = o;
        pe->kernel = kn;
        pe->program = prog;
        pe->next = cl->programs;
        cl->programs = pe;
    }
    for (cnn_cl_kernel_entry *k = cl->kernels; k; k = k->next) {
        if (k->program == pe->program && strcmp(k->name, kernel_name) == 0) {
            *out = k->kernel;
            return CNN_OK;
        }
    }
    cl_int err;
    cl_kernel kern = clCreateKernel(pe->program, kernel_name, &err);
    if (err != CL_SUCCESS)
        return cnn_error_set(CNN_ERR_DEVICE, "clCreateKernel failed: %s (kernel '%s' in cl/%s)",
                             cnn_cl_error_name(err), kernel_name, file);
    cnn_cl_kernel_entry *ke = calloc(1, sizeof *ke);
    char *name = cnn_strdup(kernel_name);
    if (!ke || !name) {
        free(ke);
        free(name);
        clReleaseKernel(kern);
        return cnn_error_set(CNN_ERR_NOMEM, "out of host memory");
    }
    ke->program = pe->program;
    ke->name = name;
    ke->kernel = kern;
    ke->next = cl->kernels;
    cl->kernels = ke;
    *out = kern;
    return CNN_OK;
}

int cnn_cl_set_arg(cl_kernel k, cl_uint index, size_t size, const void *value, const char *what)
{
    cl_int err = clSetKernelArg(k, index, size, value);
    if (err != CL_SUCCESS)
        return cnn_error_set(CNN_ERR_DEVICE, "clSetKernelArg(%u) failed: %s (%s)", index,
                             cnn_cl_error_name(err), what);
    return CNN_OK;
}

int cnn_cl_runnd(cnn_cl *cl, cl_kernel k, cl_uint dims, const size_t *global, const size_t *local,
                 const char *what)
{
    size_t g[3];
    for (cl_uint i = 0; i < dims; i++) {
        size_t l = local ? local[i] : 1;
        g[i] = (global[i] + l - 1) / l * l;
        if (g[i] == 0) return CNN_OK; /* nothing to do */
    }
    cl_int err = clEnqueueNDRangeKernel(cl->queue, k, dims, NULL, g, local, 0, NULL, NULL);
    if (err != CL_SUCCESS)
        return cnn_error_set(CNN_ERR_DEVICE, "clEnqueueNDRangeKernel failed: %s (%s)",
                             cnn_cl_error_name(err), what);
    return CNN_OK;
}

int cnn_cl_run1d(cnn_cl *cl, cl_kernel k, size_t n, const char *what)
{
    /* PoCL runs work-groups of 8 about ten times slower than 256+. */
    size_t local = cl->max_work_group >= 256 ? 256 : cl->max_work_group;
    if (n < local && !cl->is_pocl) local = n ? n : 1;
    return cnn_cl_runnd(cl, k, 1, &n, &local, what);
}

int cnn_cl_buffer(cnn_cl *cl, size_t bytes, cl_mem *out, const char *what)
{
    cl_int err;
    *out = clCreateBuffer(cl->ctx, CL_MEM_READ_WRITE, bytes ? bytes : 4, NULL, &err);
    if (err != CL_SUCCESS) {
        *out = NULL;
        return cnn_error_set(CNN_ERR_DEVICE, "clCreateBuffer(%zu bytes) failed: %s (%s)", bytes,
                             cnn_cl_error_name(err), what);
    }
    return CNN_OK;
}

int cnn_cl_buffer_host(cnn_cl *cl, size_t bytes, const void *host, cl_mem *out, const char *what)
{
    cl_int err;
    /* Read-only for kernels and never written by the runtime: the cast
     * only satisfies the API. */
    *out = clCreateBuffer(cl->ctx, CL_MEM_READ_ONLY | CL_MEM_USE_HOST_PTR, bytes, (void *)(uintptr_t)host, &err);
    if (err != CL_SUCCESS) {
        *out = NULL;
        return cnn_error_set(CNN_ERR_DEVICE, "clCreateBuffer(%zu bytes, host memory) failed: %s (%s)", bytes,
                             cnn_cl_error_name(err), what);
    }
    return CNN_OK;
}

int cnn_cl_write(cnn_cl *cl, cl_mem buf, size_t offset, size_t bytes, const void *src, const char *what)
{
    cl_int err = clEnqueueWriteBuffer(cl->queue, buf, CL_TRUE, offset, bytes, src, 0, NULL, NULL);
    if (err != CL_SUCCESS)
        return cnn_error_set(CNN_ERR_DEVICE, "clEnqueueWriteBuffer failed: %s (%s)",
                             cnn_cl_error_name(err), what);
    return CNN_OK;
}

int cnn_cl_map_write(cnn_cl *cl, cl_mem buf, size_t bytes, void **ptr, const char *what)
{
    cl_int err;
    *ptr = clEnqueueMapBuffer(cl->queue, buf, CL_TRUE, CL_MAP_WRITE_INVALIDATE_REGION, 0, bytes, 0, NULL, NULL,
                              &err);
    if (err != CL_SUCCESS) {
        *ptr = NULL;
        return cnn_error_set(CNN_ERR_DEVICE, "clEnqueueMapBuffer(%zu bytes) failed: %s (%s)", bytes,
                             cnn_cl_error_name(err), what);
    }
    return CNN_OK;
}

int cnn_cl_unmap(cnn_cl *cl, cl_mem buf, void *ptr, const char *what)
{
    cl_int err = clEnqueueUnmapMemObject(cl->queue, buf, ptr, 0, NULL, NULL);
    if (err != CL_SUCCESS)
        return cnn_error_set(CNN_ERR_DEVICE, "clEnqueueUnmapMemObject failed: %s (%s)", cnn_cl_error_name(err), what);
    return CNN_OK;
}

int cnn_cl_read(cnn_cl *cl, cl_mem buf, size_t offset, size_t bytes, void *dst, const char *what)
{
    cl_int err = clEnqueueReadBuffer(cl->queue, buf, CL_TRUE, offset, bytes, dst, 0, NULL, NULL);
    if (err != CL_SUCCESS)
        return cnn_error_set(CNN_ERR_DEVICE, "clEnqueueReadBuffer failed: %s (%s)",
                             cnn_cl_error_name(err), what);
    return CNN_OK;
}
