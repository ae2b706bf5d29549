/* The tuning file parser (valid files, every kind of damage, the device
 * check), the constraints of Xgemm parameter sets and the candidate
 * generator, and the file's name.  No device needed. */
#include "check.h"
#include "core/util.h"
#include "ops/tune.h"

#include <string.h>

static const char *PLATFORM = "Portable Computing Language";
static const char *DEVICE = "cpu-znver4-AMD EPYC 9R14";
static const char *DRIVER = "3.1+debian";

static const char VALID[] =
    "cnnviz-cl-tune 1\n"
    "# a comment\n"
    "\n"
    "platform Portable Computing Language\n"
    "device cpu-znver4-AMD EPYC 9R14\n"
    "driver 3.1+debian\n"
    "GEMMK 0\nKREG 1\nKWG 32\nKWI 2\nMDIMA 8\nMDIMC 8\nMWG 64\nNDIMB 32\n"
    "NDIMC 8\nNWG 128\nSA 0\nSB 0\nSTRM 0\nSTRN 0\nVWM 8\nVWN 4\n"
    "XGEMM_MIN_INDIRECT_SIZE 64\n"
    "gflops 96.60\n"
    "default_gflops 70.12\n";

static bool parse(const char *text, cnn_tune_params *p, char *why, size_t size)
{
    return cnn_tune_parse(text, strlen(text), PLATFORM, DEVICE, DRIVER, 0, 0, p, why, size);
}

/* VALID with the first occurrence of `from` replaced by `to`. */
static char *edit(const char *from, const char *to)
{
    const char *at = strstr(VALID, from);
    if (!at) return NULL;
    return cnn_strfmt("%.*s%s%s", (int)(at - VALID), VALID, to, at + strlen(from));
}

/* The edited file is refused, and the reason contains `want`. */
static void refused(const char *what, const char *from, const char *to, const char *want)
{
    char *text = edit(from, to);
    CHECK(text != NULL, "%s: '%s' not in the valid file", what, from);
    if (!text) return;
    cnn_tune_params p;
    char why[300] = "";
    bool ok = parse(text, &p, why, sizeof why);
    CHECK(!ok, "%s: accepted", what);
    CHECK(strstr(why, want) != NULL, "%s: reason '%s' lacks '%s'", what, why, want);
    free(text);
}

static void test_valid(void)
{
    cnn_tune_params p, shipped;
    char why[300] = "";
    CHECK(parse(VALID, &p, why, sizeof why), "valid file refused: %s", why);
    cnn_tune_shipped_defaults(&shipped);
    CHECK(!memcmp(p.v, shipped.v, sizeof p.v), "parsed parameters differ from the shipped set");
    CHECK(p.min_indirect == 64, "min_indirect %zu", p.min_indirect);

    /* CRLF line ends, blanks around values, no trailing newline, no optional lines. */
    const char crlf[] = "cnnviz-cl-tune 1\r\nplatform  Portable Computing Language \r\n"
                        "device\tcpu-znver4-AMD EPYC 9R14\r\ndriver 3.1+debian\r\n"
                        "VWN 4\r\nVWM 8\r\nSTRN 0\r\nSTRM 0\r\nSB 0\r\nSA 0\r\nNWG 128\r\nNDIMC 8\r\n"
                        "NDIMB 32\r\nMWG 64\r\nMDIMC 8\r\nMDIMA 8\r\nKWI 2\r\nKWG 32\r\nKREG 1\r\nGEMMK 0";
    CHECK(parse(crlf, &p, why, sizeof why), "CRLF file refused: %s", why);
    CHECK(p.min_indirect == 0, "min_indirect set without the line");

    /* Without a device to compare, any device's file parses. */
    CHECK(cnn_tune_parse(VALID, strlen(VALID), NULL, NULL, NULL, 0, 0, &p, why, sizeof why), "%s", why);

    /* The formatter's output parses back to the same set. */
    char *text = cnn_tune_format(&shipped, PLATFORM, DEVICE, DRIVER, 96.6, 70.1, "note\nwith a newline");
    CHECK(text != NULL, "format failed");
    if (text) {
        CHECK(parse(text, &p, why, sizeof why), "formatted file refused: %s\n%s", why, text);
        CHECK(!memcmp(p.v, shipped.v, sizeof p.v), "round trip changed the parameters");
        free(text);
    }
    /* A device name with a newline or blanks at its ends still matches. */
    text = cnn_tune_format(&shipped, PLATFORM, " odd\nname ", DRIVER, 0, 0, NULL);
    CHECK(text && cnn_tune_parse(text, strlen(text), PLATFORM, " odd\nname ", DRIVER, 0, 0, &p, why, sizeof why),
          "odd device name: %s", why);
    free(text);
}

static void test_malformed(void)
{
    cnn_tune_params p;
    char why[300];
    CHECK(!parse("", &p, why, sizeof why) && strstr(why, "empty"), "empty file: %s", why);
    CHECK(!parse("# only a comment\n", &p, why, sizeof why), "comment-only file accepted");
    CHECK(!cnn_tune_parse("cnnviz-cl-tune 1\0GEMMK 0", 24, NULL, NULL, NULL, 0, 0, &p, why, sizeof why) &&
              strstr(why, "NUL"),
          "NUL byte: %s", why);
    refused("wrong magic", "cnnviz-cl-tune 1", "clblast-tune 1", "expected");
    refused("future version", "cnnviz-cl-tune 1", "cnnviz-cl-tune 2", "version");
    refused("header not first", "cnnviz-cl-tune 1\n", "GEMMK 0\ncnnviz-cl-tune 1\n", "expected");
    refused("unknown name", "KWI 2\n", "KWI 2\nBOGUS 3\n", "unknown name 'BOGUS'");
    refused("lower-case name", "KWI 2", "kwi 2", "unknown name");
    refused("repeated parameter", "KWI 2\n", "KWI 2\nKWI 2\n", "twice");
    refused("missing parameter", "VWN 4\n", "", "VWN is missing");
    refused("missing value", "KWI 2", "KWI", "no value");
    refused("missing value, blanks", "KWI 2", "KWI   ", "no value");
    refused("not a number", "KWI 2", "KWI two", "not an integer");
    refused("negative", "KWI 2", "KWI -2", "not an integer");
    refused("trailing junk", "KWI 2", "KWI 2x", "not an integer");
    refused("two values", "KWI 2", "KWI 2 4", "not an integer");
    refused("huge", "KWI 2", "KWI 99999999999999999999999999", "not an integer");
    refused("out of range", "MWG 64", "MWG 512", "not an integer in [1, 256]");
    refused("flag out of range", "SA 0", "SA 2", "not an integer in [0, 1]");
    refused("zero tile", "KWG 32", "KWG 0", "out of range");
    refused("not a power of two", "MWG 64", "MWG 48", "out of range");
    refused("threshold zero", "XGEMM_MIN_INDIRECT_SIZE 64", "XGEMM_MIN_INDIRECT_SIZE 0", "not in [1, 8192]");
    refused("threshold too big", "XGEMM_MIN_INDIRECT_SIZE 64", "XGEMM_MIN_INDIRECT_SIZE 9000", "not in");
    refused("threshold twice", "XGEMM_MIN_INDIRECT_SIZE 64\n",
            "XGEMM_MIN_INDIRECT_SIZE 64\nXGEMM_MIN_INDIRECT_SIZE 64\n",
            "twice");
    refused("gflops not a number", "gflops 96.60", "gflops fast", "not a number");
    refused("gflops negative", "gflops 96.60", "gflops -1", "not a number");
    refused("control character", "KWI 2", "KWI \0012", "control character");
    refused("other device", "device cpu-znver4-AMD EPYC 9R14", "device NVIDIA A100", "not this device");
    refused("other driver", "driver 3.1+debian", "driver 4.0", "not this device");
    refused("other platform", "platform Portable", "platform NVIDIA", "not this device");
    refused("no device line", "device cpu-znver4-AMD EPYC 9R14\n", "", "required");
    refused("device twice", "driver 3.1", "device cpu-znver4-AMD EPYC 9R14\ndriver 3.1", "twice");
    /* A very long line. */
    char *longline = cnn_strfmt("%s# %0600d\n", VALID, 0);
    CHECK(longline && !parse(longline, &p, why, sizeof why) && strstr(why, "longer"), "long line: %s", why);
    free(longline);
    /* Truncated at every byte: never accepted (the last parameter line
     * ends before the optional ones), never a crash. */
    size_t cut_ok = strstr(VALID, "VWN 4\n") - VALID + 5;
    for (size_t cut = 0; cut < strlen(VALID); cut++) {
        bool ok = cnn_tune_parse(VALID, cut, PLATFORM, DEVICE, DRIVER, 0, 0, &p, why, sizeof why);
        if (cut < cut_ok) CHECK(!ok, "truncated at %zu accepted", cut);
    }
}

static void test_constraints(void)
{
    cnn_tune_params p;
    char why[300];
    /* Breaking each constraint of the shipped set. */
    refused("KWG % KWI", "KWG 32\nKWI 2", "KWG 8\nKWI 16", "KWG 8 is not a multiple of KWI 16");
    refused("MWG % (MDIMC*VWM)", "MDIMC 8", "MDIMC 16", "MDIMC*VWM");
    refused("NWG % (NDIMC*VWN)", "NDIMC 8", "NDIMC 64", "NDIMC*VWN");
    refused("MWG % (MDIMA*VWM)", "MDIMA 8", "MDIMA 16", "MDIMA*VWM");
    refused("NWG % (NDIMB*VWN)", "NDIMB 32", "NDIMB 64", "NDIMB*VWN");
    refused("KWG % KDIMA", "KWG 32", "KWG 4", "not a multiple of KDIMA");
    refused("KREG with GEMMK 0", "KREG 1", "KREG 2", "KREG 1");
    refused("GEMMK 1 with KWG 32", "GEMMK 0", "GEMMK 1", "GEMMK 1 needs KWG 1");

    /* The known crashers: GEMMK 1 with MWG 16 or KREG 16, however valid otherwise. */
    cnn_tune_params g1 = {{0}, 0};
    g1.v[CNN_TP_GEMMK] = 1;
    g1.v[CNN_TP_KREG] = 4;
    g1.v[CNN_TP_KWG] = g1.v[CNN_TP_KWI] = 1;
    g1.v[CNN_TP_MDIMA] = g1.v[CNN_TP_MDIMC] = 8;
    g1.v[CNN_TP_NDIMB] = g1.v[CNN_TP_NDIMC] = 8;
    g1.v[CNN_TP_MWG] = 64;
    g1.v[CNN_TP_NWG] = 64;
    g1.v[CNN_TP_VWM] = g1.v[CNN_TP_VWN] = 2;
    CHECK(cnn_tune_params_valid(&g1, 0, 0, why, sizeof why), "GEMMK 1 set refused: %s", why);
    CHECK(!cnn_tune_is_known_crasher(&g1), "GEMMK 1 set called a crasher");
    p = g1;
    p.v[CNN_TP_MWG] = 16;
    CHECK(cnn_tune_is_known_crasher(&p), "MWG 16 not a crasher");
    CHECK(!cnn_tune_params_valid(&p, 0, 0, why, sizeof why) && strstr(why, "crasher"), "MWG 16: %s", why);
    p = g1;
    p.v[CNN_TP_KREG] = 16;
    CHECK(!cnn_tune_params_valid(&p, 0, 0, why, sizeof why) && strstr(why, "crasher"), "KREG 16: %s", why);
    /* ... and in a file. */
    char *text = cnn_tune_format(&g1, PLATFORM, DEVICE, DRIVER, 0, 0, NULL);
    CHECK(text && parse(text, &p, why, sizeof why), "GEMMK 1 file refused: %s", why);
    free(text);
    p = g1;
    p.v[CNN_TP_KREG] = 16;
    text = cnn_tune_format(&p, PLATFORM, DEVICE, DRIVER, 0, 0, NULL);
    CHECK(text && !parse(text, &p, why, sizeof why) && strstr(why, "crasher"), "crasher file: %s", why);
    free(text);

    /* Device limits: local memory and work-group size. */
    cnn_tune_shipped_defaults(&p);
    p.v[CNN_TP_SA] = p.v[CNN_TP_SB] = 1; /* 4 * 32 * (64 + 128) = 24576 bytes */
    CHECK(cnn_tune_params_valid(&p, 32768, 0, why, sizeof why), "24 KiB in 32 KiB refused: %s", why);
    CHECK(!cnn_tune_params_valid(&p, 16384, 0, why, sizeof why) && strstr(why, "local memory"), "lmem: %s", why);
    cnn_tune_shipped_defaults(&p);
    CHECK(!cnn_tune_params_valid(&p, 0, 32, why, sizeof why) && strstr(why, "work-group"), "wg: %s", why);
    CHECK(cnn_tune_params_valid(&p, 0, 64, why, sizeof why), "64 work-items refused: %s", why);
}

/* CLBlast's constraints, written out independently of the implementation. */
static bool clblast_ok(const cnn_tune_params *p, size_t lmem, size_t wg)
{
    const size_t *v = p->v;
    size_t threads = v[CNN_TP_MDIMC] * v[CNN_TP_NDIMC];
    if (v[CNN_TP_KWG] % v[CNN_TP_KWI]) return false;
    if (v[CNN_TP_MWG] % (v[CNN_TP_MDIMC] * v[CNN_TP_VWM])) return false;
    if (v[CNN_TP_NWG] % (v[CNN_TP_NDIMC] * v[CNN_TP_VWN])) return false;
    if (v[CNN_TP_MWG] % (v[CNN_TP_MDIMA] * v[CNN_TP_VWM])) return false;
    if (v[CNN_TP_NWG] % (v[CNN_TP_NDIMB] * v[CNN_TP_VWN])) return false;
    if (v[CNN_TP_GEMMK] == 0) {
        if (threads % v[CNN_TP_MDIMA] || threads % v[CNN_TP_NDIMB]) return false;
        if (v[CNN_TP_KWG] % (threads / v[CNN_TP_MDIMA])) return false;
        if (v[CNN_TP_KWG] % (threads / v[CNN_TP_NDIMB])) return false;
    } else {
        if (v[CNN_TP_KREG] % v[CNN_TP_VWN]) return false;
        if (v[CNN_TP_MDIMA] != v[CNN_TP_MDIMC] || v[CNN_TP_NDIMB] != v[CNN_TP_NDIMC]) return false;
        if (v[CNN_TP_SA] || v[CNN_TP_SB]) return false;
    }
    if (4 * v[CNN_TP_KWG] * (v[CNN_TP_SA] * v[CNN_TP_MWG] + v[CNN_TP_SB] * v[CNN_TP_NWG]) > lmem) return false;
    return threads <= wg;
}

static void test_generator(void)
{
    uint64_t rng = 12345;
    cnn_tune_params base, p;
    cnn_tune_shipped_defaults(&base);
    const size_t lmem = 65536, wg = 4096;
    int n_random = 0, n_near = 0, gemmk1 = 0, sa = 0, differs = 0;
    for (int i = 0; i < 4000; i++) {
        bool near = i % 2;
        bool ok = cnn_tune_random(&rng, near ? &base : NULL, lmem, wg, &p);
        CHECK(ok, "no candidate at draw %d", i);
        if (!ok) continue;
        near ? n_near++ : n_random++;
        char why[300] = "";
        CHECK(cnn_tune_params_valid(&p, lmem, wg, why, sizeof why), "draw %d invalid: %s", i, why);
        CHECK(clblast_ok(&p, lmem, wg), "draw %d breaks CLBlast's constraints", i);
        CHECK(!cnn_tune_is_known_crasher(&p), "draw %d is a known crasher", i);
        gemmk1 += p.v[CNN_TP_GEMMK] == 1;
        sa += p.v[CNN_TP_SA] == 1;
        if (near) differs += memcmp(p.v, base.v, sizeof p.v) != 0;
    }
    CHECK(n_near == 2000 && differs == n_near, "neighbours: %d of %d differ from the base", differs, n_near);
    CHECK(gemmk1 > 0 && sa > 0, "the search space lacks GEMMK 1 (%d) or SA (%d) sets", gemmk1, sa);
    /* A small device: every draw fits its limits. */
    for (int i = 0; i < 500; i++) {
        if (!cnn_tune_random(&rng, i % 2 ? &base : NULL, 8192, 64, &p)) continue;
        CHECK(clblast_ok(&p, 8192, 64), "small-device draw %d breaks the limits", i);
    }
    /* Neighbours of a GEMMK 1 set stay valid and never crash. */
    cnn_tune_params g1 = {{0}, 0};
    g1.v[CNN_TP_GEMMK] = 1;
    g1.v[CNN_TP_KREG] = 8;
    g1.v[CNN_TP_KWG] = g1.v[CNN_TP_KWI] = 1;
    g1.v[CNN_TP_MDIMA] = g1.v[CNN_TP_MDIMC] = 4;
    g1.v[CNN_TP_NDIMB] = g1.v[CNN_TP_NDIMC] = 8;
    g1.v[CNN_TP_MWG] = 32;
    g1.v[CNN_TP_NWG] = 64;
    g1.v[CNN_TP_VWM] = g1.v[CNN_TP_VWN] = 4;
    for (int i = 0; i < 1000; i++) {
        if (!cnn_tune_random(&rng, &g1, lmem, wg, &p)) continue;
        CHECK(clblast_ok(&p, lmem, wg) && !cnn_tune_is_known_crasher(&p), "GEMMK 1 neighbour %d bad", i);
    }
}

static void test_path(void)
{
    char *a = cnn_tune_file_path("/c", PLATFORM, DEVICE, DRIVER);
    char *b = cnn_tune_file_path("/c", PLATFORM, DEVICE, "3.1 debian"); /* sanitises to the same text */
    char *c = cnn_tune_file_path("/c", "../..", "/etc/passwd", "x");
    CHECK(a && b && c, "path failed");
    if (a && b && c) {
        CHECK(!strncmp(a, "/c/tune/", 8) && strstr(a, ".txt"), "path '%s'", a);
        CHECK(strcmp(a, b) != 0, "two devices share '%s'", a);
        CHECK(strchr(c + 8, '/') == NULL && c[8] != '.', "unsafe path '%s'", c);
    }
    free(a);
    free(b);
    free(c);
}

int main(void)
{
    test_valid();
    test_malformed();
    test_constraints();
    test_generator();
    test_path();
    return test_summary("test_tune");
}
