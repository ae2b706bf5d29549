/* CLBlast GEMM tuning results: the parameter sets of CLBlast's Xgemm kernel,
 * their constraints, the tuning file `cnnviz-cl tune` writes into the cache
 * folder (one per device), and applying it to a device at start-up.
 *
 * Tuning file (text, one "NAME VALUE" pair a line, '#' starts a comment):
 *
 *   cnnviz-cl-tune 1                  first line: format and version
 *   platform Portable Computing Language
 *   device cpu-znver4-AMD EPYC ...    the exact strings of the device it was
 *   driver 3.1                        measured on (checked when applied)
 *   GEMMK 0                           the 16 Xgemm parameters, each once
 *   ...
 *   XGEMM_MIN_INDIRECT_SIZE 64        optional (CLBlast "GemmRoutine")
 *   gflops 96.6                       optional, informative
 *
 * Parsing is strict: a missing or repeated parameter, an unknown name, a
 * value out of range, a set that breaks CLBlast's constraints or one of the
 * known crashers rejects the whole file. */
#ifndef CNN_OPS_TUNE_H
#define CNN_OPS_TUNE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "runtime/clrt.h"

/* Indices into cnn_tune_params.v, in the order of cnn_tune_param_names
 * (alphabetical, as CLBlast lists them). */
enum {
    CNN_TP_GEMMK, CNN_TP_KREG, CNN_TP_KWG, CNN_TP_KWI, CNN_TP_MDIMA, CNN_TP_MDIMC, CNN_TP_MWG, CNN_TP_NDIMB,
    CNN_TP_NDIMC, CNN_TP_NWG, CNN_TP_SA, CNN_TP_SB, CNN_TP_STRM, CNN_TP_STRN, CNN_TP_VWM, CNN_TP_VWN,
    CNN_TUNE_NPARAM
};

extern const char *const cnn_tune_param_names[CNN_TUNE_NPARAM];

typedef struct cnn_tune_params {
    size_t v[CNN_TUNE_NPARAM];
    size_t min_indirect; /* XGEMM_MIN_INDIRECT_SIZE; 0: not set (keep the default) */
} cnn_tune_params;

#define CNN_TUNE_MIN_INDIRECT_MAX 8192

/* The Xgemm parameters cnn_blas_apply_defaults ships for PoCL CPUs. */
void cnn_tune_shipped_defaults(cnn_tune_params *p);

/* True for the combinations that crash PoCL 3.1's compiler or kernel
 * (GEMMK 1 with MWG 16 or KREG 16): never tried, never applied. */
bool cnn_tune_is_known_crasher(const cnn_tune_params *p);

/* Checks one set: every value in its range (powers of two, flags 0/1), the
 * Xgemm kernel's constraints (GEMMK 0: KWG % KWI, MWG % (MDIMC*VWM), NWG %
 * (NDIMC*VWN), MWG % (MDIMA*VWM), NWG % (NDIMB*VWN), KWG % KDIMA and KDIMB
 * with KDIMA = MDIMC*NDIMC/MDIMA; GEMMK 1: KWG = KWI = 1, MDIMA = MDIMC,
 * NDIMB = NDIMC, KREG % VWN, no SA/SB/STRM/STRN), the known crashers, and,
 * when non-zero, the device's limits: local memory in bytes
 * (4 * KWG * (SA*MWG + SB*NWG)) and work-group size (MDIMC*NDIMC).  On
 * failure writes the reason into why (may be NULL). */
bool cnn_tune_params_valid(const cnn_tune_params *p, size_t local_mem, size_t max_work_group, char *why,
                           size_t why_size);

/* Parses a tuning file's text.  device/driver/platform: when non-NULL, the
 * file's lines must name exactly these.  local_mem, max_work_group: as for
 * cnn_tune_params_valid (0: unchecked).  Returns true and fills *out, or
 * false with the reason ("line 7: ...") in why. */
bool cnn_tune_parse(const char *text, size_t len, const char *platform, const char *device, const char *driver,
                    size_t local_mem, size_t max_work_group, cnn_tune_params *out, char *why, size_t why_size);

/* The text of a tuning file (heap string, NULL + error on failure).
 * gflops <= 0 leaves the informative lines out; note (may be NULL) is
 * written as a comment. */
char *cnn_tune_format(const cnn_tune_params *p, const char *platform, const char *device, const char *driver,
                      double gflops, double default_gflops, const char *note);

/* "<cache_dir>/tune/<platform>-<device>-<driver, sanitised>-<hash>.txt"
 * (heap string; NULL + error on failure). */
char *cnn_tune_file_path(const char *cache_dir, const char *platform, const char *device, const char *driver);

/* A random valid set: with `base` non-NULL a neighbour of it (one to three
 * parameters stepped), else one drawn from the whole search space.  Never a
 * known crasher; respects the device limits as cnn_tune_params_valid does.
 * *rng: xorshift state (non-zero).  Returns false when no valid set was
 * found in a few thousand draws. */
bool cnn_tune_random(uint64_t *rng, const cnn_tune_params *base, size_t local_mem, size_t max_work_group,
                     cnn_tune_params *out);

/* Overrides CLBlast's single-precision Xgemm parameters (and GemmRoutine's
 * XGEMM_MIN_INDIRECT_SIZE when set) for cl's device; checked, errors name
 * the call and CLBlast's status. */
int cnn_tune_override(cnn_cl *cl, const cnn_tune_params *p);

/* Applies the tuning file of cl's device when there is one (the cache folder
 * of cnn_cl_cache_dir; none when it is 'off').  A file that cannot be read
 * or parsed, or that CLBlast refuses, gives one warning line on stderr and is
 * ignored (CLBlast keeps the parameters it had).  Never fails the run.
 * Returns 1 when applied, 0 otherwise. */
int cnn_tune_apply(cnn_cl *cl);

#endif
