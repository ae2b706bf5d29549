#define _POSIX_C_SOURCE 200809L
#include "core/util.h"
#include "core/error.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

bool cnn_mul_size(size_t a, size_t b, size_t *out)
{
    if (a != 0 && b > SIZE_MAX / a) return false;
    *out = a * b;
    return true;
}

bool cnn_add_size(size_t a, size_t b, size_t *out)
{
    if (b > SIZE_MAX - a) return false;
    *out = a + b;
    return true;
}

void *cnn_malloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) cnn_error_set(CNN_ERR_NOMEM, "out of host memory (%zu bytes)", n);
    return p;
}

void *cnn_calloc(size_t count, size_t size)
{
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p) cnn_error_set(CNN_ERR_NOMEM, "out of host memory (%zu x %zu bytes)", count, size);
    return p;
}

void *cnn_realloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q) cnn_error_set(CNN_ERR_NOMEM, "out of host memory (%zu bytes)", n);
    return q;
}

char *cnn_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = cnn_malloc(n);
    if (p) memcpy(p, s, n);
    return p;
}

char *cnn_strfmt(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) return NULL;
    char *p = cnn_malloc((size_t)n + 1);
    if (!p) return NULL;
    va_start(ap, fmt);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return p;
}

int cnn_file_refuse_kind(const char *path, unsigned mode)
{
    const char *kind = S_ISDIR(mode)    ? "a folder"
                       : S_ISFIFO(mode) ? "a FIFO (named pipe)"
                       : S_ISCHR(mode)  ? "a character device"
                       : S_ISBLK(mode)  ? "a block device"
                       : S_ISSOCK(mode) ? "a socket"
                                        : "a special file";
    return cnn_error_set(CNN_ERR_INPUT, "%s: is %s, not a regular file", path, kind);
}

/* An error of errno `e` from a system call on `path`: a call cut short by
 * SIGINT/SIGTERM is the interruption, not a problem with the file. */
static int file_errno(int status, const char *path, const char *what, int e)
{
    if (e == EINTR && cnn_signal_pending()) return cnn_error_interrupted();
    return cnn_error_set(status, "%s: %s%s%s", path, what, *what ? ": " : "", strerror(e));
}

int cnn_file_open_read(const char *path, struct stat *st)
{
    /* stat first: a socket cannot be opened at all (ENXIO), and a device
     * is better never opened.  The open itself does not block on a FIFO
     * (O_NONBLOCK) and fstat decides on what was actually opened, so a file
     * swapped for a FIFO in between is refused all the same. */
    if (stat(path, st) != 0) return file_errno(CNN_ERR_INPUT, path, "", errno);
    if (!S_ISREG(st->st_mode)) return cnn_file_refuse_kind(path, st->st_mode);
    int fd;
    do fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    while (fd < 0 && errno == EINTR && !cnn_signal_pending());
    if (fd < 0) return file_errno(CNN_ERR_INPUT, path, "cannot open", errno);
    if (fstat(fd, st) != 0) {
        int e = errno;
        close(fd);
        return file_errno(CNN_ERR_IO, path, "cannot stat", e);
    }
    if (!S_ISREG(st->st_mode)) {
        close(fd);
        return cnn_file_refuse_kind(path, st->st_mode);
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) != 0) {
        int e = errno;
        close(fd);
        return file_errno(CNN_ERR_IO, path, "cannot open", e);
    }
    return fd;
}

int cnn_file_read_fd(int fd, const char *path, long long size, size_t max_bytes, char **data, size_t *len)
{
    *data = NULL;
    *len = 0;
    if (size < 0 || (unsigned long long)size > max_bytes)
        return cnn_error_set(CNN_ERR_INPUT, "%s: file is %lld bytes, more than the %zu allowed", path, size,
                             max_bytes);
    size_t n = (size_t)size;
    char *buf = cnn_malloc(n + 1);
    if (!buf) return CNN_ERR_NOMEM;
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r > 0) {
            got += (size_t)r;
            continue;
        }
        if (r < 0 && errno == EINTR && !cnn_signal_pending()) continue;
        int status = r == 0 ? cnn_error_set(CNN_ERR_IO, "%s: read failed: the file shrank while it was read", path)
                            : file_errno(CNN_ERR_IO, path, "read failed", errno);
        free(buf);
        return status;
    }
    buf[n] = '\0';
    *data = buf;
    *len = n;
    return CNN_OK;
}

int cnn_file_read(const char *path, size_t max_bytes, char **data, size_t *len)
{
    *data = NULL;
    *len = 0;
    struct stat st;
    int fd = cnn_file_open_read(path, &st);
    if (fd < 0) return fd;
    int status = cnn_file_read_fd(fd, path, (long long)st.st_size, max_bytes, data, len);
    close(fd);
    return status;
}

/* Registry of temporary files in flight, so that a signal handler can remove
 * them.  Fixed-size and lock-free: a slot holds a heap string owned by the
 * writer; the handler only reads the pointers and calls unlink(). */
#define CNN_TMP_SLOTS 256
static _Atomic(char *) g_tmp_slots[CNN_TMP_SLOTS];
static atomic_uint g_tmp_counter;

static void tmp_register(char *p)
{
    for (int i = 0; i < CNN_TMP_SLOTS; i++) {
        char *expected = NULL;
        if (atomic_compare_exchange_strong(&g_tmp_slots[i], &expected, p)) return;
    }
    /* All slots busy: the file is still removed by commit/abort, only a
     * signal at this moment could leave it behind (a dot-file). */
}

static void tmp_unregister(const char *p)
{
    for (int i = 0; i < CNN_TMP_SLOTS; i++) {
        char *expected = (char *)p;
        if (atomic_compare_exchange_strong(&g_tmp_slots[i], &expected, NULL)) return;
    }
}

void cnn_tmp_cleanup_all(void)
{
    for (int i = 0; i < CNN_TMP_SLOTS; i++) {
        char *p = atomic_load(&g_tmp_slots[i]);
        if (p) unlink(p);
    }
}

static volatile sig_atomic_t g_signal;

static void on_signal(int sig)
{
    if (g_signal) {
        cnn_tmp_cleanup_all();
        _exit(128 + sig);
    }
    g_signal = sig;
}

/* Mapped files: the handler reads only the atomics and the message bytes,
 * which are written before the range is published. */
#define CNN_MAP_SLOTS 8
#define CNN_MAP_MSG 640
static struct {
    _Atomic(uintptr_t) base; /* 0: free */
    _Atomic(size_t) len;
    atomic_bool taken;
    size_t msg_len;
    char msg[CNN_MAP_MSG];
} g_maps[CNN_MAP_SLOTS];

int cnn_mapped_file_register(const void *base, size_t len, const char *path)
{
    for (int i = 0; i < CNN_MAP_SLOTS; i++) {
        bool expected = false;
        if (!atomic_compare_exchange_strong(&g_maps[i].taken, &expected, true)) continue;
        char shown[CNN_MAP_MSG / 2];
        cnn_escape_line(shown, sizeof shown, path);
        int n = snprintf(g_maps[i].msg, CNN_MAP_MSG,
                         "cnnviz-cl: error: %s: the file shrank while in use (rewritten by another "
                         "program during the run?); nothing was finished, run again once the file is whole\n",
                         shown);
        g_maps[i].msg_len = n < 0 ? 0 : (size_t)n < CNN_MAP_MSG ? (size_t)n : CNN_MAP_MSG - 1;
        atomic_store(&g_maps[i].len, len);
        atomic_store(&g_maps[i].base, (uintptr_t)base);
        return i;
    }
    return -1;
}

void cnn_mapped_file_unregister(int slot)
{
    if (slot < 0 || slot >= CNN_MAP_SLOTS) return;
    atomic_store(&g_maps[slot].base, (uintptr_t)0);
    atomic_store(&g_maps[slot].taken, false);
}

static atomic_flag g_bus_reported = ATOMIC_FLAG_INIT;

static void on_bus_error(int sig, siginfo_t *info, void *ctx)
{
    (void)ctx;
    uintptr_t a = (uintptr_t)info->si_addr;
    for (int i = 0; i < CNN_MAP_SLOTS; i++) {
        uintptr_t b = atomic_load(&g_maps[i].base);
        if (b && a >= b && a - b < atomic_load(&g_maps[i].len)) {
            /* Several threads may fault on the same pages at once: the first
             * reports and exits, the others wait for the exit. */
            if (atomic_flag_test_and_set(&g_bus_reported))
                for (;;) pause();
            ssize_t w = write(STDERR_FILENO, g_maps[i].msg, g_maps[i].msg_len);
            (void)w;
            cnn_tmp_cleanup_all();
            _exit(2);
        }
    }
    /* Not ours: the default action, when the faulting access runs again
     * (or at once, for a SIGBUS sent by kill()). */
    signal(sig, SIG_DFL);
    if (info->si_code <= 0) raise(sig);
}

/* Whether the process asked for the handlers (the command line); a
 * library leaves the host's signals alone. */
static atomic_bool g_guard_wanted;

void cnn_signals_install(void)
{
    atomic_store(&g_guard_wanted, true);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGXFSZ, &sa, NULL);
    cnn_fault_guard_install();
}

void cnn_fault_guard_install(void)
{
    if (!atomic_load(&g_guard_wanted)) return;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_bus_error;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGBUS, &sa, NULL);
}

int cnn_signal_pending(void) { return (int)g_signal; }

static _Thread_local int g_hold_depth;
static _Thread_local sigset_t g_hold_saved;

void cnn_signals_hold(void)
{
    if (g_hold_depth++ > 0) return;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, &g_hold_saved);
}

void cnn_signals_release(void)
{
    if (g_hold_depth == 0 || --g_hold_depth > 0) return;
    pthread_sigmask(SIG_SETMASK, &g_hold_saved, NULL);
}

int cnn_error_interrupted(void)
{
    int sig = cnn_signal_pending();
    return cnn_error_set(CNN_ERR_INTERRUPTED, "interrupted by %s: stopped without writing a partial file",
                         sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : "a signal");
}

char *cnn_tmp_path(const char *path)
{
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    int dirlen = slash ? (int)(slash - path + 1) : 0;
    unsigned n = atomic_fetch_add(&g_tmp_counter, 1);
    char *tmp = cnn_strfmt("%.*s.%s.tmp.%ld.%u", dirlen, path, base, (long)getpid(), n);
    if (tmp) tmp_register(tmp);
    return tmp;
}

int cnn_file_commit(const char *tmp, const char *path)
{
    if (rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        tmp_unregister(tmp);
        return cnn_error_set(CNN_ERR_IO, "%s: cannot rename into place: %s", path, strerror(e));
    }
    tmp_unregister(tmp);
    return CNN_OK;
}

void cnn_file_abort(const char *tmp)
{
    unlink(tmp);
    tmp_unregister(tmp);
}

int cnn_file_write_atomic(const char *path, const void *data, size_t len)
{
    char *tmp = cnn_tmp_path(path);
    if (!tmp) return CNN_ERR_NOMEM;
    int status = CNN_OK;
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        status = cnn_error_set(CNN_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
        tmp_unregister(tmp);
        free(tmp);
        return status;
    }
    bool ok = (len == 0 || fwrite(data, 1, len, f) == len);
    ok = (fclose(f) == 0) && ok;
    if (!ok) {
        cnn_file_abort(tmp);
        status = cnn_error_set(CNN_ERR_IO, "%s: write failed (disk full?)", path);
    } else {
        status = cnn_file_commit(tmp, path);
    }
    free(tmp);
    return status;
}

int cnn_mkdirs(const char *path, int mode)
{
    char *p = cnn_strdup(path);
    if (!p) return CNN_ERR_NOMEM;
    int status = CNN_OK;
    for (char *s = p + 1;; s++) {
        if (*s == '/' || *s == '\0') {
            char c = *s;
            *s = '\0';
            if (mkdir(p, (mode_t)mode) != 0 && errno != EEXIST) {
                status = cnn_error_set(CNN_ERR_IO, "%s: cannot create folder: %s", p, strerror(errno));
                break;
            }
            *s = c;
            if (c == '\0') break;
        }
    }
    if (status == CNN_OK) {
        struct stat st;
        if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
            status = cnn_error_set(CNN_ERR_IO, "%s: exists and is not a folder", path);
    }
    free(p);
    return status;
}

char *cnn_path_dir(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash) return cnn_strdup(".");
    if (slash == path) return cnn_strdup("/");
    return cnn_strfmt("%.*s", (int)(slash - path), path);
}

char *cnn_path_join(const char *dir, const char *rel)
{
    if (rel[0] == '/' || !dir || !dir[0] || strcmp(dir, ".") == 0) return cnn_strdup(rel);
    size_t n = strlen(dir);
    return cnn_strfmt("%s%s%s", dir, dir[n - 1] == '/' ? "" : "/", rel);
}

char *cnn_path_stem(const char *path)
{
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    const char *dot = strrchr(base, '.');
    int n = (dot && dot != base) ? (int)(dot - base) : (int)strlen(base);
    return cnn_strfmt("%.*s", n, base);
}

void cnn_sanitize_name(const char *name, char *out, size_t out_size)
{
    size_t cap = out_size - 1 < 100 ? out_size - 1 : 100;
    size_t j = 0;
    if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0 || name[0] == '\0') out[j++] = '_';
    for (size_t i = 0; name[i] && j < cap; i++) {
        unsigned char c = (unsigned char)name[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == '-';
        out[j++] = ok ? (char)c : '_';
    }
    out[j] = '\0';
    if (out[0] == '.') out[0] = '_'; /* no hidden files, no "..x" */
}

size_t cnn_utf8_seq_len(const unsigned char *s, size_t n)
{
    if (n == 0) return 0;
    unsigned char c = s[0];
    if (c < 0x80) return 1;
    /* The second byte's range is what rules out overlong forms (E0, F0),
     * surrogates (ED) and code points past U+10FFFF (F4). */
    size_t len = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : 2;
    unsigned char lo = c == 0xe0 ? 0xa0 : c == 0xf0 ? 0x90 : 0x80;
    unsigned char hi = c == 0xed ? 0x9f : c == 0xf4 ? 0x8f : 0xbf;
    if (c < 0xc2 || c > 0xf4) return 0;
    if (n < len || s[1] < lo || s[1] > hi) return 0;
    for (size_t i = 2; i < len; i++)
        if (s[i] < 0x80 || s[i] > 0xbf) return 0;
    return len;
}

void cnn_philox2x32(uint32_t c0, uint32_t c1, uint32_t key, uint32_t out[2])
{
    for (int r = 0; r < 10; r++) {
        uint64_t prod = (uint64_t)0xD256D193u * c0;
        uint32_t hi = (uint32_t)(prod >> 32), lo = (uint32_t)prod;
        c0 = hi ^ key ^ c1;
        c1 = lo;
        key += 0x9E3779B9u;
    }
    out[0] = c0;
    out[1] = c1;
}

uint64_t cnn_hash64(uint64_t h, const void *data, size_t n)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

uint64_t cnn_hash64_wide(uint64_t h, const void *data, size_t n)
{
    const unsigned char *p = data;
    uint64_t lane[4] = {h, h ^ 0x9e3779b97f4a7c15ULL, h + 0xc2b2ae3d27d4eb4fULL, h - 0x165667b19e3779f9ULL};
    size_t blocks = n / 32;
    for (size_t b = 0; b < blocks; b++, p += 32)
        for (int k = 0; k < 4; k++) {
            uint64_t w;
            memcpy(&w, p + 8 * k, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
            w = __builtin_bswap64(w);
#endif
            uint64_t x = (lane[k] ^ w) * 0x9e3779b97f4a7c15ULL;
            lane[k] = x ^ (x >> 29);
        }
    for (int k = 0; k < 4; k++) {
        unsigned char le[8];
        for (int i = 0; i < 8; i++) le[i] = (unsigned char)(lane[k] >> (8 * i));
        h = cnn_hash64(h, le, 8);
    }
    h = cnn_hash64(h, p, n - blocks * 32);
    uint64_t len = (uint64_t)n;
    unsigned char le[8];
    for (int i = 0; i < 8; i++) le[i] = (unsigned char)(len >> (8 * i));
    return cnn_hash64(h, le, 8);
}

double cnn_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

float cnn_half_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t man = h & 0x3ffu;
    uint32_t bits;
    if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else { /* subnormal: renormalise */
            int e = -1;
            do {
                e++;
                man <<= 1;
            } while (!(man & 0x400u));
            bits = sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 0x3ffu) << 13);
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (man << 13);
    } else {
        bits = sign | ((exp + 112u) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

float cnn_bf16_to_float(uint16_t b)
{
    uint32_t bits = (uint32_t)b << 16;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

char *cnn_device_file_path(const char *cache_dir, const char *folder, const char *platform, const char *device,
                           const char *driver)
{
    char *key = cnn_strfmt("%s-%s-%s", platform, device, driver);
    if (!key) return NULL;
    char name[101];
    cnn_sanitize_name(key, name, sizeof name);
    uint64_t h = cnn_hash64(CNN_HASH64_INIT, key, strlen(key));
    free(key);
    return cnn_strfmt("%s/%s/%.80s-%016llx.txt", cache_dir, folder, name, (unsigned long long)h);
}
