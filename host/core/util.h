/* Small helpers every module uses: checked sizes, files, paths, hashing. */
#ifndef CNN_CORE_UTIL_H
#define CNN_CORE_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

struct stat;

/* Overflow-checked size arithmetic: return false (and leave *out unchanged)
 * when the result does not fit in size_t. */
bool cnn_mul_size(size_t a, size_t b, size_t *out);
bool cnn_add_size(size_t a, size_t b, size_t *out);

/* malloc/calloc/realloc that set the error message on failure (return NULL). */
void *cnn_malloc(size_t n);
void *cnn_calloc(size_t count, size_t size);
void *cnn_realloc(void *p, size_t n);
char *cnn_strdup(const char *s);
/* printf into a new heap string (NULL + error message on failure). */
char *cnn_strfmt(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Opens a file the user named, for reading, without ever blocking: FIFOs,
 * character and block devices, sockets and folders are refused before any
 * read ("PATH: is a FIFO (named pipe), not a regular file"), so a named pipe
 * with no writer cannot hang the run.  Returns the descriptor (close-on-exec,
 * blocking again) and fills *st; or a negative status: CNN_ERR_INPUT naming
 * the path (missing, unreadable, not a regular file), CNN_ERR_INTERRUPTED
 * when SIGINT/SIGTERM cut the open short. */
int cnn_file_open_read(const char *path, struct stat *st);

/* The message for a file that is not a regular one: "PATH: is a folder, not
 * a regular file", ...; returns CNN_ERR_INPUT. */
int cnn_file_refuse_kind(const char *path, unsigned mode);

/* Reads a whole file (at most max_bytes) into a NUL-terminated heap buffer,
 * opened with cnn_file_open_read().  Errors name the path: missing,
 * unreadable, not a regular file, too big -> CNN_ERR_INPUT; a failed read
 * -> CNN_ERR_IO; a signal -> CNN_ERR_INTERRUPTED. */
int cnn_file_read(const char *path, size_t max_bytes, char **data, size_t *len);

/* Same, from a descriptor of cnn_file_open_read() whose size is st_size
 * (the caller closes fd). */
int cnn_file_read_fd(int fd, const char *path, long long size, size_t max_bytes, char **data, size_t *len);

/* Writes `len` bytes to `path` atomically: a temporary name in the same
 * folder, fsync-free write, then rename().  Never leaves a partial file at
 * `path`. */
int cnn_file_write_atomic(const char *path, const void *data, size_t len);

/* Temporary-name protocol for writers that stream (libpng, ...):
 * cnn_tmp_path() gives "<dir>/.<base>.tmp.<pid>.<n>"; the writer calls
 * cnn_file_commit() (rename) or cnn_file_abort() (unlink) at the end.
 * While a temporary file exists its name is registered, so that a signal
 * handler can remove it (cnn_tmp_cleanup_all). */
char *cnn_tmp_path(const char *path);
int cnn_file_commit(const char *tmp, const char *path);
void cnn_file_abort(const char *tmp);
void cnn_tmp_cleanup_all(void); /* async-signal-safe: unlink only */

/* SIGINT / SIGTERM: the first one is recorded (cnn_signal_pending() returns
 * its number; long loops poll it and stop cleanly, leaving no partial
 * file); a second one removes the registered temporary files and exits at
 * once with 128 + its number.  The handler does not ask for SA_RESTART, so
 * a blocking call returns EINTR and the run stops instead of waiting on.
 * SIGXFSZ is ignored: a write past a `ulimit -f` limit then fails with
 * EFBIG and is reported like a full disk, instead of killing the process
 * with its temporary files left behind. */
void cnn_signals_install(void);
int cnn_signal_pending(void);
/* Holds SIGINT and SIGTERM back in the calling thread while an OpenCL
 * runtime or a compiler works: threads it starts and programs it runs (PoCL
 * runs a linker per kernel) inherit the mask, so a Ctrl-C, which the
 * terminal sends to the whole process group, neither kills a linker halfway
 * (PoCL then aborts the process) nor cuts the compiler's system calls short.
 * The signal stays pending and is taken by cnn_signals_release(), which
 * restores the mask; the run then stops at its next check.  Nests; a
 * second signal during a hold acts only once it is released. */
void cnn_signals_hold(void);
void cnn_signals_release(void);
/* The interruption as an error: "interrupted by SIGINT: stopped without
 * writing a partial file"; returns CNN_ERR_INTERRUPTED.  For a call that
 * failed while a signal was pending (EINTR, or a library that gave up
 * because its own system call was interrupted). */
int cnn_error_interrupted(void);

/* Mapped input files.  A file that shrinks while it is mapped (rewritten in
 * place by another program during the run) makes the next read of a lost
 * page raise SIGBUS, on whichever thread reads it (ours or the OpenCL
 * driver's, for buffers over the file's pages).  cnn_signals_install() also
 * catches SIGBUS: a fault inside a registered range prints one error line
 * naming the file, removes the temporary files and exits with 2; any other
 * SIGBUS keeps its default action.  Registration returns a slot (or -1 when
 * all are taken: the file is then unguarded). */
/* (Re)installs the SIGBUS handler alone, in a process that called
 * cnn_signals_install() (the command line; a library installs nothing).  The OpenCL runtime may take
 * SIGBUS for itself (PoCL's compiler does, when it starts, and its handler
 * does not hand the fault back): the runtime wrapper calls this after
 * creating the context and after each program build. */
void cnn_fault_guard_install(void);
int cnn_mapped_file_register(const void *base, size_t len, const char *path);
void cnn_mapped_file_unregister(int slot);

/* mkdir -p; errors name the folder. */
int cnn_mkdirs(const char *path, int mode);

/* "a/b/c.yaml" -> "a/b" ("." when there is no slash). Heap string. */
char *cnn_path_dir(const char *path);
/* Joins dir and rel unless rel is absolute. Heap string. */
char *cnn_path_join(const char *dir, const char *rel);
/* "dir/cat.jpg" -> "cat" (heap string). */
char *cnn_path_stem(const char *path);
/* Makes a safe single path component from a name (layer names, stems):
 * keeps [A-Za-z0-9._-], maps everything else to '_', refuses "." and ".."
 * by prefixing '_', caps the length at 100.  Writes into out (size >= 101). */
void cnn_sanitize_name(const char *name, char *out, size_t out_size);

/* "<cache_dir>/<folder>/<platform>-<device>-<driver, sanitised>-<hash>.txt":
 * a file of results for one device and driver (heap string; NULL + error
 * on failure).  The hash of the exact strings keeps apart devices that
 * sanitising and the length cap would give one name. */
char *cnn_device_file_path(const char *cache_dir, const char *folder, const char *platform, const char *device,
                           const char *driver);

/* Length of the well-formed UTF-8 sequence that starts at s (1 to 4, at
 * most n), or 0 when the bytes there are not one: a stray continuation
 * byte, an overlong form, a surrogate, a code point past U+10FFFF, a
 * sequence cut short. */
size_t cnn_utf8_seq_len(const unsigned char *s, size_t n);

/* 64-bit FNV-1a, chainable: h = cnn_hash64(h, data, n); start with
 * CNN_HASH64_INIT. */
#define CNN_HASH64_INIT 0xcbf29ce484222325ULL
uint64_t cnn_hash64(uint64_t h, const void *data, size_t n);
/* A 64-bit hash of large buffers (weights files), chainable as cnn_hash64,
 * several times faster: four independent lanes over 8-byte little-endian
 * words, folded with cnn_hash64.  The same bytes give the same value on
 * every machine. */
uint64_t cnn_hash64_wide(uint64_t h, const void *data, size_t n);

/* Philox2x32-10 of counter (c0, c1) and key, as cl/gradmap.cl's: the
 * host's random numbers, the same on every machine. */
void cnn_philox2x32(uint32_t c0, uint32_t c1, uint32_t key, uint32_t out[2]);

/* Monotonic clock in milliseconds. */
double cnn_now_ms(void);

/* IEEE half and bfloat16 to float. */
float cnn_half_to_float(uint16_t h);
float cnn_bf16_to_float(uint16_t b);

#endif
