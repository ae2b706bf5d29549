#include "ops/tune.h"
#include "ops/blas.h"
#include "core/error.h"
#include "core/util.h"

#include <clblast_c.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

const char *const cnn_tune_param_names[CNN_TUNE_NPARAM] = {
    "GEMMK", "KREG", "KWG", "KWI", "MDIMA", "MDIMC", "MWG", "NDIMB",
    "NDIMC", "NWG",  "SA",  "SB",  "STRM",  "STRN",  "VWM", "VWN"};

#define FILE_MAGIC "cnnviz-cl-tune"
#define FILE_VERSION 1
#define FILE_MAX (64u << 10)

/* Largest value of each parameter (all are powers of two, or flags). */
static const size_t PARAM_MAX[CNN_TUNE_NPARAM] = {
    [CNN_TP_GEMMK] = 1, [CNN_TP_KREG] = 16,  [CNN_TP_KWG] = 128, [CNN_TP_KWI] = 16,   [CNN_TP_MDIMA] = 64,
    [CNN_TP_MDIMC] = 64, [CNN_TP_MWG] = 256, [CNN_TP_NDIMB] = 64, [CNN_TP_NDIMC] = 64, [CNN_TP_NWG] = 256,
    [CNN_TP_SA] = 1,     [CNN_TP_SB] = 1,    [CNN_TP_STRM] = 1,   [CNN_TP_STRN] = 1,   [CNN_TP_VWM] = 16,
    [CNN_TP_VWN] = 16};

static bool is_flag(int i)
{
    return i == CNN_TP_GEMMK || i == CNN_TP_SA || i == CNN_TP_SB || i == CNN_TP_STRM || i == CNN_TP_STRN;
}

static bool pow2(size_t v) { return v && !(v & (v - 1)); }

void cnn_tune_shipped_defaults(cnn_tune_params *p)
{
    static const size_t v[CNN_TUNE_NPARAM] = {0, 1, CNN_GEMM_KWG, 2, 8, 8, CNN_GEMM_MWG, 32,
                                              8, CNN_GEMM_NWG, 0, 0, 0, 0, 8, 4};
    memcpy(p->v, v, sizeof v);
    p->min_indirect = 0;
}

bool cnn_tune_is_known_crasher(const cnn_tune_params *p)
{
    return p->v[CNN_TP_GEMMK] == 1 && (p->v[CNN_TP_MWG] == 16 || p->v[CNN_TP_KREG] == 16);
}

static bool fail(char *why, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static bool fail(char *why, size_t size, const char *fmt, ...)
{
    if (why && size) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why, size, fmt, ap);
        va_end(ap);
    }
    return false;
}

#define V(name) p->v[CNN_TP_##name]

bool cnn_tune_params_valid(const cnn_tune_params *p, size_t local_mem, size_t max_work_group, char *why,
                           size_t why_size)
{
    for (int i = 0; i < CNN_TUNE_NPARAM; i++) {
        size_t v = p->v[i];
        if (is_flag(i) ? v > 1 : (!pow2(v) || v > PARAM_MAX[i]))
            return fail(why, why_size, "%s %zu is out of range (%s)", cnn_tune_param_names[i], v,
                        is_flag(i) ? "0 or 1" : "a power of two");
    }
    if (p->min_indirect > CNN_TUNE_MIN_INDIRECT_MAX)
        return fail(why, why_size, "XGEMM_MIN_INDIRECT_SIZE %zu is out of range [1, %d]", p->min_indirect,
                    CNN_TUNE_MIN_INDIRECT_MAX);
    if (cnn_tune_is_known_crasher(p))
        return fail(why, why_size, "GEMMK 1 with MWG %zu and KREG %zu is a known crasher of PoCL", V(MWG),
                    V(KREG));
    if (V(KWG) % V(KWI)) return fail(why, why_size, "KWG %zu is not a multiple of KWI %zu", V(KWG), V(KWI));
    if (V(MWG) % (V(MDIMC) * V(VWM)))
        return fail(why, why_size, "MWG %zu is not a multiple of MDIMC*VWM %zu", V(MWG), V(MDIMC) * V(VWM));
    if (V(NWG) % (V(NDIMC) * V(VWN)))
        return fail(why, why_size, "NWG %zu is not a multiple of NDIMC*VWN %zu", V(NWG), V(NDIMC) * V(VWN));
    if (V(MWG) % (V(MDIMA) * V(VWM)))
        return fail(why, why_size, "MWG %zu is not a multiple of MDIMA*VWM %zu", V(MWG), V(MDIMA) * V(VWM));
    if (V(NWG) % (V(NDIMB) * V(VWN)))
        return fail(why, why_size, "NWG %zu is not a multiple of NDIMB*VWN %zu", V(NWG), V(NDIMB) * V(VWN));
    size_t threads = V(MDIMC) * V(NDIMC);
    if (V(GEMMK) == 0) {
        if (V(KREG) != 1) return fail(why, why_size, "KREG %zu: GEMMK 0 needs KREG 1", V(KREG));
        if (V(MDIMA) > threads || V(NDIMB) > threads)
            return fail(why, why_size, "MDIMA %zu / NDIMB %zu exceed MDIMC*NDIMC %zu", V(MDIMA), V(NDIMB), threads);
        size_t kdima = threads / V(MDIMA), kdimb = threads / V(NDIMB);
        if (V(KWG) % kdima) return fail(why, why_size, "KWG %zu is not a multiple of KDIMA %zu", V(KWG), kdima);
        if (V(KWG) % kdimb) return fail(why, why_size, "KWG %zu is not a multiple of KDIMB %zu", V(KWG), kdimb);
    } else {
        if (V(KWG) != 1 || V(KWI) != 1)
            return fail(why, why_size, "GEMMK 1 needs KWG 1 and KWI 1 (got %zu, %zu)", V(KWG), V(KWI));
        if (V(MDIMA) != V(MDIMC) || V(NDIMB) != V(NDIMC))
            return fail(why, why_size, "GEMMK 1 needs MDIMA = MDIMC and NDIMB = NDIMC");
        if (V(KREG) % V(VWN)) return fail(why, why_size, "KREG %zu is not a multiple of VWN %zu", V(KREG), V(VWN));
        if (V(SA) || V(SB) || V(STRM) || V(STRN))
            return fail(why, why_size, "GEMMK 1 needs SA, SB, STRM and STRN 0");
    }
    if (threads > 1024) return fail(why, why_size, "MDIMC*NDIMC %zu exceeds 1024 work-items", threads);
    if (max_work_group && threads > max_work_group)
        return fail(why, why_size, "MDIMC*NDIMC %zu exceeds the device's work-group size %zu", threads,
                    max_work_group);
    size_t lmem = 4 * V(KWG) * (V(SA) * V(MWG) + V(SB) * V(NWG));
    if (local_mem && lmem > local_mem)
        return fail(why, why_size, "local memory %zu bytes exceeds the device's %zu", lmem, local_mem);
    return true;
}

/* ------------------------------------------------------------- file --- */

static bool parse_size(const char *s, size_t max, size_t *out)
{
    if (*s < '0' || *s > '9') return false;
    size_t v = 0;
    for (; *s >= '0' && *s <= '9'; s++) {
        if (v > max) return false;
        v = v * 10 + (size_t)(*s - '0');
    }
    if (*s || v > max) return false;
    *out = v;
    return true;
}

static bool parse_double(const char *s, double *out)
{
    char *end;
    errno = 0;
    double d = strtod(s, &end);
    if (!*s || *end || errno || !(d >= 0 && d < 1e12)) return false;
    *out = d;
    return true;
}

/* Strings written on one line: control characters become spaces, and the
 * surrounding blanks go (as the parser strips them). */
static void one_line(const char *s, char *out, size_t size)
{
    while (s && (*s == ' ' || *s == '\t')) s++;
    size_t j = 0;
    for (; s && *s && j + 1 < size; s++) out[j++] = (unsigned char)*s < 0x20 ? ' ' : *s;
    while (j && out[j - 1] == ' ') j--;
    if (!j && size > 1) out[j++] = '?'; /* never an empty value */
    out[j] = '\0';
}

static bool same_line(const char *want, const char *got)
{
    char w[512];
    one_line(want, w, sizeof w);
    return strcmp(w, got) == 0;
}

bool cnn_tune_parse(const char *text, size_t len, const char *platform, const char *device, const char *driver,
                    size_t local_mem, size_t max_work_group, cnn_tune_params *out, char *why, size_t why_size)
{
    cnn_tune_params p;
    memset(&p, 0, sizeof p);
    bool seen[CNN_TUNE_NPARAM] = {false};
    bool seen_min = false, seen_platform = false, seen_device = false, seen_driver = false;
    bool header = false, seen_gflops = false, seen_default = false;
    if (memchr(text, '\0', len)) return fail(why, why_size, "not a text file (NUL byte)");
    size_t pos = 0;
    int lineno = 0;
    char line[512];
    while (pos < len) {
        size_t end = pos;
        while (end < len && text[end] != '\n') end++;
        lineno++;
        size_t n = end - pos;
        if (n >= sizeof line) return fail(why, why_size, "line %d: longer than %zu bytes", lineno, sizeof line - 1);
        memcpy(line, text + pos, n);
        line[n] = '\0';
        pos = end < len ? end + 1 : end;
        if (n && line[n - 1] == '\r') line[--n] = '\0';
        /* Comments and blank lines. */
        char *s = line;
        while (*s == ' ' || *s == '\t') s++;
        if (*s == '#' || *s == '\0') continue;
        for (char *c = s; *c; c++)
            if ((unsigned char)*c < 0x20 && *c != '\t')
                return fail(why, why_size, "line %d: control character", lineno);
        char *key = s;
        while (*s && *s != ' ' && *s != '\t') s++;
        if (*s) *s++ = '\0';
        while (*s == ' ' || *s == '\t') s++;
        char *val = s;
        size_t vl = strlen(val);
        while (vl && (val[vl - 1] == ' ' || val[vl - 1] == '\t')) val[--vl] = '\0';
        if (!vl) return fail(why, why_size, "line %d: '%s' has no value", lineno, key);
        if (!header) {
            size_t version;
            if (strcmp(key, FILE_MAGIC) != 0)
                return fail(why, why_size, "line %d: expected '%s %d' first", lineno, FILE_MAGIC, FILE_VERSION);
            if (!parse_size(val, 1000, &version) || version != FILE_VERSION)
                return fail(why, why_size, "line %d: format version '%s' (this build reads %d)", lineno, val,
                            FILE_VERSION);
            header = true;
            continue;
        }
        if (!strcmp(key, "platform") || !strcmp(key, "device") || !strcmp(key, "driver")) {
            bool *seenp = key[0] == 'p' ? &seen_platform : key[1] == 'e' ? &seen_device : &seen_driver;
            const char *want = key[0] == 'p' ? platform : key[1] == 'e' ? device : driver;
            if (*seenp) return fail(why, why_size, "line %d: '%s' given twice", lineno, key);
            *seenp = true;
            if (want && !same_line(want, val))
                return fail(why, why_size, "line %d: %s '%s' is not this device's '%s'", lineno, key, val, want);
            continue;
        }
        if (!strcmp(key, "gflops") || !strcmp(key, "default_gflops")) {
            bool *seenp = key[0] == 'g' ? &seen_gflops : &seen_default;
            double d;
            if (*seenp) return fail(why, why_size, "line %d: '%s' given twice", lineno, key);
            *seenp = true;
            if (!parse_double(val, &d))
                return fail(why, why_size, "line %d: %s '%s' is not a number", lineno, key, val);
            continue;
        }
        if (!strcmp(key, "XGEMM_MIN_INDIRECT_SIZE")) {
            if (seen_min) return fail(why, why_size, "line %d: '%s' given twice", lineno, key);
            seen_min = true;
            if (!parse_size(val, CNN_TUNE_MIN_INDIRECT_MAX, &p.min_indirect) || p.min_indirect == 0)
                return fail(why, why_size, "line %d: XGEMM_MIN_INDIRECT_SIZE '%s' is not in [1, %d]", lineno, val,
                            CNN_TUNE_MIN_INDIRECT_MAX);
            continue;
        }
        int idx = -1;
        for (int i = 0; i < CNN_TUNE_NPARAM; i++)
            if (!strcmp(key, cnn_tune_param_names[i])) idx = i;
        if (idx < 0) return fail(why, why_size, "line %d: unknown name '%s'", lineno, key);
        if (seen[idx]) return fail(why, why_size, "line %d: '%s' given twice", lineno, key);
        seen[idx] = true;
        if (!parse_size(val, PARAM_MAX[idx], &p.v[idx]))
            return fail(why, why_size, "line %d: %s '%s' is not an integer in [%d, %zu]", lineno, key, val,
                        is_flag(idx) ? 0 : 1, PARAM_MAX[idx]);
    }
    if (!header) return fail(why, why_size, "empty (no '%s %d' line)", FILE_MAGIC, FILE_VERSION);
    if (!seen_platform || !seen_device || !seen_driver)
        return fail(why, why_size, "the platform, device and driver lines are required");
    for (int i = 0; i < CNN_TUNE_NPARAM; i++)
        if (!seen[i]) return fail(why, why_size, "parameter %s is missing", cnn_tune_param_names[i]);
    char reason[200];
    if (!cnn_tune_params_valid(&p, local_mem, max_work_group, reason, sizeof reason))
        return fail(why, why_size, "invalid parameters: %s", reason);
    *out = p;
    return true;
}

char *cnn_tune_format(const cnn_tune_params *p, const char *platform, const char *device, const char *driver,
                      double gflops, double default_gflops, const char *note)
{
    char pl[256], dv[256], dr[256], nt[512];
    one_line(platform, pl, sizeof pl);
    one_line(device, dv, sizeof dv);
    one_line(driver, dr, sizeof dr);
    one_line(note, nt, sizeof nt);
    size_t cap = 4096, n = 0;
    char *buf = cnn_malloc(cap);
    if (!buf) return NULL;
#define ADD(...) n += (size_t)snprintf(buf + n, n < cap ? cap - n : 0, __VA_ARGS__)
    ADD("%s %d\n", FILE_MAGIC, FILE_VERSION);
    ADD("# CLBlast SGEMM parameters found by 'cnnviz-cl tune' for the device below;\n"
        "# applied at every start on this device.  Delete this file to go back to\n"
        "# the defaults (or run with CNNVIZ_CACHE_DIR=off).\n");
    if (note && *note) ADD("# %s\n", nt);
    ADD("platform %s\ndevice %s\ndriver %s\n", pl, dv, dr);
    for (int i = 0; i < CNN_TUNE_NPARAM; i++) ADD("%s %zu\n", cnn_tune_param_names[i], p->v[i]);
    if (p->min_indirect) ADD("XGEMM_MIN_INDIRECT_SIZE %zu\n", p->min_indirect);
    if (gflops > 0) ADD("gflops %.2f\n", gflops);
    if (gflops > 0 && default_gflops > 0) ADD("default_gflops %.2f\n", default_gflops);
#undef ADD
    if (n >= cap) {
        free(buf);
        cnn_error_set(CNN_ERR_NOMEM, "tuning file text too long");
        return NULL;
    }
    return buf;
}

char *cnn_tune_file_path(const char *cache_dir, const char *platform, const char *device, const char *driver)
{
    return cnn_device_file_path(cache_dir, "tune", platform, device, driver);
}

/* ---------------------------------------------------------- search --- */

static uint64_t next_rand(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545F4914F6CDD1DULL;
}

static size_t pick(uint64_t *rng, const size_t *vals, size_t n) { return vals[next_rand(rng) % n]; }

static void draw_any(uint64_t *rng, cnn_tune_params *p)
{
    static const size_t wg[] = {16, 32, 64, 128}, kw[] = {8, 16, 32, 64}, dim[] = {2, 4, 8, 16, 32},
                        kwi[] = {1, 2, 4, 8}, vw[] = {1, 2, 4, 8}, flag[] = {0, 1}, kreg[] = {1, 2, 4, 8},
                        wg1[] = {32, 64, 128}, dim1[] = {2, 4, 8, 16};
    memset(p, 0, sizeof *p);
    if (next_rand(rng) % 8 == 0) { /* the 2-D register tiling kernel, now and then */
        V(GEMMK) = 1;
        V(MWG) = pick(rng, wg1, 3);
        V(NWG) = pick(rng, wg, 4);
        V(KWG) = V(KWI) = 1;
        V(MDIMA) = V(MDIMC) = pick(rng, dim1, 4);
        V(NDIMB) = V(NDIMC) = pick(rng, dim1, 4);
        V(VWM) = pick(rng, vw, 4);
        V(VWN) = pick(rng, vw, 4);
        V(KREG) = pick(rng, kreg, 4);
        return;
    }
    V(KREG) = 1;
    V(MWG) = pick(rng, wg, 4);
    V(NWG) = pick(rng, wg, 4);
    V(KWG) = pick(rng, kw, 4);
    V(KWI) = pick(rng, kwi, 4);
    do { /* fewer than 16 work-items a group rarely pays anywhere */
        V(MDIMC) = pick(rng, dim, 5);
        V(NDIMC) = pick(rng, dim, 5);
    } while (V(MDIMC) * V(NDIMC) < 16);
    V(MDIMA) = next_rand(rng) % 2 ? V(MDIMC) : pick(rng, dim, 5);
    V(NDIMB) = next_rand(rng) % 2 ? V(NDIMC) : pick(rng, dim, 5);
    V(VWM) = pick(rng, vw, 4);
    V(VWN) = pick(rng, vw, 4);
    V(STRM) = pick(rng, flag, 2);
    V(STRN) = pick(rng, flag, 2);
    V(SA) = next_rand(rng) % 4 == 0;
    V(SB) = next_rand(rng) % 4 == 0;
}

/* One parameter of a GEMMK 0 set moved: a power of two halved or doubled,
 * a flag flipped. */
static void step(uint64_t *rng, cnn_tune_params *p)
{
    static const int movable[] = {CNN_TP_KWG, CNN_TP_KWI, CNN_TP_MDIMA, CNN_TP_MDIMC, CNN_TP_MWG,
                                  CNN_TP_NDIMB, CNN_TP_NDIMC, CNN_TP_NWG, CNN_TP_SA, CNN_TP_SB,
                                  CNN_TP_STRM, CNN_TP_STRN, CNN_TP_VWM, CNN_TP_VWN, CNN_TP_KREG};
    int n = (int)(sizeof movable / sizeof movable[0]);
    if (p->v[CNN_TP_GEMMK] == 0) n--; /* KREG only matters to GEMMK 1 */
    int i = movable[next_rand(rng) % (uint64_t)n];
    if (is_flag(i)) p->v[i] ^= 1;
    else if (next_rand(rng) % 2 && p->v[i] > 1) p->v[i] /= 2;
    else p->v[i] *= 2;
    /* GEMMK 1 keeps its tied dimensions tied. */
    if (p->v[CNN_TP_GEMMK] == 1) {
        if (i == CNN_TP_MDIMC) p->v[CNN_TP_MDIMA] = p->v[CNN_TP_MDIMC];
        if (i == CNN_TP_MDIMA) p->v[CNN_TP_MDIMC] = p->v[CNN_TP_MDIMA];
        if (i == CNN_TP_NDIMC) p->v[CNN_TP_NDIMB] = p->v[CNN_TP_NDIMC];
        if (i == CNN_TP_NDIMB) p->v[CNN_TP_NDIMC] = p->v[CNN_TP_NDIMB];
    }
}

bool cnn_tune_random(uint64_t *rng, const cnn_tune_params *base, size_t local_mem, size_t max_work_group,
                     cnn_tune_params *out)
{
    if (!*rng) *rng = 1;
    for (int attempt = 0; attempt < 5000; attempt++) {
        cnn_tune_params p;
        if (base) {
            p = *base;
            int moves = 1 + (int)(next_rand(rng) % 3);
            for (int m = 0; m < moves; m++) step(rng, &p);
            if (!memcmp(p.v, base->v, sizeof p.v)) continue;
        } else {
            draw_any(rng, &p);
        }
        if (cnn_tune_params_valid(&p, local_mem, max_work_group, NULL, 0)) {
            *out = p;
            return true;
        }
    }
    return false;
}

/* --------------------------------------------------------- applying --- */

int cnn_tune_override(cnn_cl *cl, const cnn_tune_params *p)
{
    const char *names[CNN_TUNE_NPARAM];
    memcpy(names, cnn_tune_param_names, sizeof names);
    CLBlastStatusCode s = CLBlastOverrideParameters(cl->device, "Xgemm", CLBlastPrecisionSingle, CNN_TUNE_NPARAM,
                                                    names, p->v);
    if (s != CLBlastSuccess)
        return cnn_error_set(CNN_ERR_DEVICE, "CLBlastOverrideParameters(Xgemm) failed: %s",
                             cnn_clblast_error_name(s));
    if (p->min_indirect) {
        const char *rn[1] = {"XGEMM_MIN_INDIRECT_SIZE"};
        size_t rv[1] = {p->min_indirect};
        s = CLBlastOverrideParameters(cl->device, "GemmRoutine", CLBlastPrecisionSingle, 1, rn, rv);
        if (s != CLBlastSuccess)
            return cnn_error_set(CNN_ERR_DEVICE, "CLBlastOverrideParameters(GemmRoutine) failed: %s",
                                 cnn_clblast_error_name(s));
    }
    return CNN_OK;
}

int cnn_tune_apply(cnn_cl *cl)
{
    char *dir = cnn_cl_cache_dir();
    if (!dir) {
        cnn_error_clear();
        return 0;
    }
    char *path = cnn_tune_file_path(dir, cl->platform_name, cl->device_name, cl->driver_version);
    free(dir);
    if (!path) {
        cnn_error_clear();
        return 0;
    }
    /* No tuning file is the usual case, and says nothing. */
    struct stat st;
    if (stat(path, &st) != 0 && errno == ENOENT) {
        free(path);
        return 0;
    }
    char *text = NULL;
    size_t len = 0;
    int applied = 0;
    char why[300];
    cnn_tune_params p;
    if (cnn_file_read(path, FILE_MAX, &text, &len) < 0) {
        cnn_warn("tuning file %s: %s; ignored", path, cnn_error_message());
    } else if (!cnn_tune_parse(text, len, cl->platform_name, cl->device_name, cl->driver_version,
                               (size_t)cl->local_mem, cl->max_work_group, &p, why, sizeof why)) {
        cnn_warn("tuning file %s: %s; ignored (delete it or run 'cnnviz-cl tune')", path, why);
    } else if (cnn_tune_override(cl, &p) < 0) {
        cnn_warn("tuning file %s: %s; keeping the default GEMM parameters", path, cnn_error_message());
        cnn_blas_apply_defaults(cl);
    } else {
        applied = 1;
    }
    cnn_error_clear();
    free(text);
    free(path);
    return applied;
}
