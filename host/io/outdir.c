/* The output folder, owned safely (io/outdir.h: the rules).
 *
 * One file: every place where the tool deletes, renames or replaces a file
 * in OUT is here (stage, lock, commit, recovery of dead runs), so that the
 * rules of io/outdir.h are checked in one file. */
#define _DEFAULT_SOURCE
#include "io/outdir.h"
#include "core/error.h"
#include "core/util.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define LOCK_NAME ".cnnviz.lock"
#define STAGE_PREFIX ".cnnviz-run."
#define MANIFEST "manifest.json"
#define MAX_REL 4096
#define MAX_MANIFEST_BYTES (256u << 20)

/* An information line on stderr (escaped: OUT may hold any byte). */
static void note(const cnn_outdir *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note(const cnn_outdir *o, const char *fmt, ...)
{
    if (o->quiet) return;
    char line[CNN_ERROR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    cnn_print_line(stderr, "cnnviz-cl: ", line);
}

/* ---------------------------------------------------------------------- */
/* Paths relative to a folder, one component at a time, never following a
 * symbolic link.                                                          */

/* Why a walk stopped, for messages. */
typedef struct walk_err {
    int err;             /* errno */
    char at[MAX_REL + 1]; /* the prefix of rel that failed */
} walk_err;

/* Opens the folder that holds rel's last component, below dir.  With
 * `create`, missing folders are made.  Returns an fd (the caller closes it)
 * or -1 with *why set: ENOENT (a folder is missing), ELOOP (a component is a
 * symbolic link), ENOTDIR (a component is not a folder), or the system's. */
static int open_parent(int dir, const char *rel, bool create, walk_err *why)
{
    int cur = openat(dir, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (cur < 0) {
        why->err = errno;
        why->at[0] = '\0';
        return -1;
    }
    const char *c = rel;
    for (const char *slash; (slash = strchr(c, '/')) != NULL; c = slash + 1) {
        size_t end = (size_t)(slash - rel), n = (size_t)(slash - c);
        char comp[MAX_REL + 1];
        if (n == 0 || n > MAX_REL) continue;
        memcpy(comp, c, n);
        comp[n] = '\0';
        if (create && mkdirat(cur, comp, 0755) != 0 && errno != EEXIST) {
            why->err = errno;
            snprintf(why->at, sizeof why->at, "%.*s", (int)end, rel);
            close(cur);
            return -1;
        }
        int next = openat(cur, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (next < 0) {
            why->err = errno;
            struct stat st;
            if (fstatat(cur, comp, &st, AT_SYMLINK_NOFOLLOW) == 0)
                why->err = S_ISLNK(st.st_mode) ? ELOOP : !S_ISDIR(st.st_mode) ? ENOTDIR : why->err;
            snprintf(why->at, sizeof why->at, "%.*s", (int)end, rel);
            close(cur);
            return -1;
        }
        close(cur);
        cur = next;
    }
    return cur;
}

static const char *base_name(const char *rel)
{
    const char *slash = strrchr(rel, '/');
    return slash ? slash + 1 : rel;
}

/* One open parent folder, kept while consecutive paths share it (the files
 * of one tap mostly do). */
typedef struct dir_cache {
    int fd;
    char parent[MAX_REL + 1];
} dir_cache;

static int cached_parent(dir_cache *c, int dir, const char *rel, bool create, walk_err *why)
{
    const char *b = base_name(rel);
    size_t n = (size_t)(b - rel);
    if (c->fd >= 0 && strlen(c->parent) == n && memcmp(c->parent, rel, n) == 0) return c->fd;
    if (c->fd >= 0) close(c->fd);
    c->fd = open_parent(dir, rel, create, why);
    snprintf(c->parent, sizeof c->parent, "%.*s", (int)n, rel);
    if (c->fd < 0) c->parent[0] = '\0';
    return c->fd;
}

static void cache_close(dir_cache *c)
{
    if (c->fd >= 0) close(c->fd);
    c->fd = -1;
}

/* Removes a folder and everything in it, without following links (a link
 * is removed, not its target). */
static void remove_tree(int parent, const char *name, int depth)
{
    int fd = depth < 64 ? openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) : -1;
    if (fd < 0) {
        unlinkat(parent, name, 0);
        return;
    }
    DIR *d = fdopendir(fd);
    if (!d) {
        close(fd);
        return;
    }
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        if (unlinkat(fd, e->d_name, 0) != 0 && (errno == EISDIR || errno == EPERM))
            remove_tree(fd, e->d_name, depth + 1);
    }
    closedir(d);
    unlinkat(parent, name, AT_REMOVEDIR);
}

/* Removes the folders of rel that are left empty, deepest first. */
static void remove_empty_parents(int dir, const char *rel)
{
    char p[MAX_REL + 1];
    snprintf(p, sizeof p, "%s", rel);
    for (char *slash; (slash = strrchr(p, '/')) != NULL;) {
        *slash = '\0';
        walk_err why;
        int fd = open_parent(dir, p, false, &why);
        if (fd < 0) return;
        int r = unlinkat(fd, base_name(p), AT_REMOVEDIR);
        close(fd);
        if (r != 0) return;
    }
}

static bool same_stat(const cnn_owned_file *f, const struct stat *st)
{
    return S_ISREG(st->st_mode) && st->st_size == f->bytes && st->st_mtim.tv_sec == f->mtime_s &&
           st->st_mtim.tv_nsec == f->mtime_ns;
}

static int cmp_owned(const void *a, const void *b)
{
    return strcmp(((const cnn_owned_file *)a)->path, ((const cnn_owned_file *)b)->path);
}

static const cnn_owned_file *find_owned(const cnn_owned *o, const char *rel)
{
    cnn_owned_file key = {.path = (char *)rel};
    return o->n ? bsearch(&key, o->f, (size_t)o->n, sizeof *o->f, cmp_owned) : NULL;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* ---------------------------------------------------------------------- */
/* Reading a manifest                                                      */

typedef enum { MF_NONE, MF_OURS, MF_FOREIGN } mf_kind;

/* Reads dir/manifest.json into *out (sorted by path).  A manifest that is
 * not this tool's: MF_FOREIGN with the reason in `why`. */
static int read_manifest(int dir, cnn_owned *out, mf_kind *kind, char *why, size_t why_size)
{
    memset(out, 0, sizeof *out);
    *kind = MF_NONE;
    int fd = openat(dir, MANIFEST, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        if (errno == ENOENT) return CNN_OK;
        *kind = MF_FOREIGN;
        snprintf(why, why_size, "%s", errno == ELOOP ? "it is a symbolic link" : strerror(errno));
        return CNN_OK;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || (unsigned long long)st.st_size > MAX_MANIFEST_BYTES) {
        close(fd);
        *kind = MF_FOREIGN;
        snprintf(why, why_size, "%s", S_ISREG(st.st_mode) ? "larger than any this tool writes"
                                                           : "it is not a regular file");
        return CNN_OK;
    }
    size_t len = (size_t)st.st_size, got = 0;
    char *text = cnn_malloc(len + 1);
    if (!text) {
        close(fd);
        return CNN_ERR_NOMEM;
    }
    while (got < len) {
        ssize_t r = read(fd, text + got, len - got);
        if (r < 0 && errno == EINTR && !cnn_signal_pending()) continue;
        if (r <= 0) break;
        got += (size_t)r;
    }
    close(fd);
    int status = cnn_manifest_parse_owned(text, got, out);
    free(text);
    if (status == CNN_ERR_INPUT) {
        *kind = MF_FOREIGN;
        snprintf(why, why_size, "%s", cnn_error_message());
        cnn_error_clear();
        return CNN_OK;
    }
    if (status < 0) return status;
    *kind = MF_OURS;
    if (out->n) qsort(out->f, (size_t)out->n, sizeof *out->f, cmp_owned);
    return CNN_OK;
}

/* ---------------------------------------------------------------------- */
/* Commit                                                                  */

/* Writes data to dir/name through a temporary name and a rename. */
static int write_at(const cnn_outdir *o, int dir, const char *name, const char *data, size_t len)
{
    char tmp[256];
    snprintf(tmp, sizeof tmp, ".%s.tmp.%ld.0", name, (long)getpid());
    int fd = openat(dir, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0) return cnn_error_set(CNN_ERR_IO, "%s/%s: cannot create: %s", o->path, name, strerror(errno));
    size_t done = 0;
    int err = 0;
    while (done < len) {
        ssize_t w = write(fd, data + done, len - done);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            err = w < 0 ? errno : ENOSPC;
            break;
        }
        done += (size_t)w;
    }
    if (close(fd) != 0 && !err) err = errno;
    if (!err && renameat(dir, tmp, dir, name) != 0) err = errno;
    if (err) {
        unlinkat(dir, tmp, 0);
        return cnn_error_set(CNN_ERR_IO, "%s/%s: write failed: %s", o->path, name, strerror(err));
    }
    return CNN_OK;
}

/* Moves every listed file from the stage into OUT (files already moved by
 * an interrupted commit are skipped), switches the manifest, then removes
 * the files of `old` that `paths` (sorted) does not list and that are
 * still as that run wrote them. */
static int finish_commit(cnn_outdir *o, int sfd, char **paths, int n, const cnn_owned *old)
{
    dir_cache from = {.fd = -1}, to = {.fd = -1};
    int status = CNN_OK;
    walk_err why;
    for (int i = 0; i < n && status == CNN_OK; i++) {
        const char *rel = paths[i], *base = base_name(rel);
        int s = cached_parent(&from, sfd, rel, false, &why);
        struct stat st;
        if (s < 0 || fstatat(s, base, &st, AT_SYMLINK_NOFOLLOW) != 0) continue; /* moved before */
        int d = cached_parent(&to, o->dfd, rel, true, &why);
        if (d < 0)
            status = cnn_error_set(CNN_ERR_IO, "%s/%s: cannot make the folder: %s", o->path, why.at,
                                   strerror(why.err));
        else if (renameat(s, base, d, base) != 0)
            status = cnn_error_set(CNN_ERR_IO, "%s/%s: cannot move into place: %s", o->path, rel, strerror(errno));
    }
    cache_close(&from);
    cache_close(&to);
    if (status == CNN_OK && renameat(sfd, MANIFEST, o->dfd, MANIFEST) != 0)
        status = cnn_error_set(CNN_ERR_IO, "%s/%s: cannot move into place: %s", o->path, MANIFEST, strerror(errno));
    if (status < 0)
        return cnn_error_prefix(status, "%s: the run's files are written but not all moved into place; the next run "
                                        "into this folder finishes the move",
                                o->path);
    int removed = 0, changed = 0;
    const char *first_changed = NULL;
    for (int i = 0; i < old->n; i++) {
        const cnn_owned_file *f = &old->f[i];
        if (n && bsearch(&f->path, paths, (size_t)n, sizeof *paths, cmp_str)) continue;
        int d = open_parent(o->dfd, f->path, false, &why);
        if (d < 0) continue; /* its folder is gone, or a link now: nothing of ours there */
        struct stat st;
        if (fstatat(d, base_name(f->path), &st, AT_SYMLINK_NOFOLLOW) == 0) {
            if (same_stat(f, &st) && unlinkat(d, base_name(f->path), 0) == 0) {
                removed++;
                close(d);
                remove_empty_parents(o->dfd, f->path);
                continue;
            }
            if (!changed++) first_changed = f->path;
        }
        close(d);
    }
    if (removed)
        note(o, "removed %d file%s of an earlier run that this run did not write", removed, removed == 1 ? "" : "s");
    if (changed)
        note(o, "left %d file%s of an earlier run in place: changed since that run wrote %s (%s/%s%s)", changed,
             changed == 1 ? "" : "s", changed == 1 ? "it" : "them", o->path, first_changed,
             changed > 1 ? ", ..." : "");
    return CNN_OK;
}

static char *stage_name(void) { return cnn_strfmt(STAGE_PREFIX "%ld", (long)getpid()); }

/* ---------------------------------------------------------------------- */
/* Files of another output folder into the stage                          */

struct cnn_outdir_take {
    int stage;            /* the stage folder */
    dir_cache from, to;   /* the last source and stage folders */
    int from_root;        /* the source folder `from` belongs to */
};

/* Copies the open file `in` to a new file `name` of folder `dir`. */
static int copy_file(int in, int dir, const char *name, int *err)
{
    int out = openat(dir, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (out < 0) {
        *err = errno;
        return -1;
    }
    char buf[1 << 16];
    int e = 0;
    for (;;) {
        ssize_t r = read(in, buf, sizeof buf);
        if (r < 0 && errno == EINTR && !cnn_signal_pending()) continue;
        if (r <= 0) {
            e = r < 0 ? errno : 0;
            break;
        }
        for (ssize_t done = 0; done < r && !e;) {
            ssize_t w = write(out, buf + done, (size_t)(r - done));
            if (w < 0 && errno == EINTR && !cnn_signal_pending()) continue;
            if (w <= 0) e = w < 0 ? errno : ENOSPC;
            else done += w;
        }
        if (e) break;
    }
    if (close(out) != 0 && !e) e = errno;
    if (e) {
        unlinkat(dir, name, 0);
        *err = e;
        return -1;
    }
    return 0;
}

static void take_release(cnn_outdir *o)
{
    if (!o->take) return;
    cache_close(&o->take->from);
    cache_close(&o->take->to);
    if (o->take->stage >= 0) close(o->take->stage);
    free(o->take);
    o->take = NULL;
}

int cnn_outdir_take_file(cnn_outdir *o, int from, const char *from_name, const cnn_owned_file *f, bool *copied)
{
    CNN_ASSERT(o->dfd >= 0 && o->stage && !o->committed);
    struct cnn_outdir_take *t = o->take;
    if (!t) {
        if (!(t = o->take = cnn_calloc(1, sizeof *t))) return CNN_ERR_NOMEM;
        t->from.fd = t->to.fd = t->from_root = -1;
        char *name = stage_name();
        t->stage = name ? openat(o->dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) : -1;
        free(name);
        if (t->stage < 0) return cnn_error_set(CNN_ERR_IO, "%s: the run's folder is gone", o->stage);
    }
    if (t->from_root != from) {
        cache_close(&t->from);
        t->from_root = from;
    }
    const char *rel = f->path, *base = base_name(rel);
    walk_err why;
    struct stat st;
    int s = cached_parent(&t->from, from, rel, false, &why);
    if (s < 0 || fstatat(s, base, &st, AT_SYMLINK_NOFOLLOW) != 0)
        return cnn_error_set(CNN_ERR_INPUT, "%s/%s: listed in its manifest.json but %s", from_name, rel,
                             s < 0 && why.err == ELOOP ? "a folder on the way is a symbolic link" : "missing");
    if (!same_stat(f, &st))
        return cnn_error_set(CNN_ERR_INPUT, "%s/%s: changed since its run wrote it (%s); run that part again",
                             from_name, rel, S_ISREG(st.st_mode) ? "size or time differ" : "not a regular file");
    int d = cached_parent(&t->to, t->stage, rel, true, &why);
    if (d < 0) return cnn_error_set(CNN_ERR_IO, "%s/%s: cannot make the folder: %s", o->path, why.at, strerror(why.err));
    *copied = false;
    if (linkat(s, base, d, base, 0) == 0) return CNN_OK;
    int err = errno;
    if (err == EXDEV || err == EPERM || err == EMLINK || err == ENOTSUP || err == EACCES) {
        int in = openat(s, base, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        struct stat ist;
        if (in >= 0 && (fstat(in, &ist) != 0 || !same_stat(f, &ist))) {
            close(in);
            return cnn_error_set(CNN_ERR_INPUT, "%s/%s: changed since its run wrote it; run that part again",
                                 from_name, rel);
        }
        err = in < 0 ? errno : 0;
        if (in >= 0) {
            int r = copy_file(in, d, base, &err);
            close(in);
            if (r == 0) {
                *copied = true;
                return CNN_OK;
            }
        }
    }
    return cnn_error_set(CNN_ERR_IO, "%s/%s: cannot link or copy into %s: %s", from_name, rel, o->path,
                         strerror(err));
}

/* A file of OUT that the commit would replace must be the earlier run's
 * and unchanged; its folders must be real folders on OUT's file system. */
static int check_target(cnn_outdir *o, dir_cache *c, const char *rel, dev_t dev)
{
    walk_err why;
    int d = cached_parent(c, o->dfd, rel, false, &why);
    if (d < 0) {
        if (why.err == ENOENT) return CNN_OK; /* nothing there yet */
        if (why.err == ELOOP)
            return cnn_error_set(CNN_ERR_USAGE,
                                 "%s/%s is a symbolic link: cnnviz-cl writes only into real folders inside --out; "
                                 "remove the link or choose another --out",
                                 o->path, why.at);
        if (why.err == ENOTDIR)
            return cnn_error_set(CNN_ERR_USAGE, "%s/%s exists and is not a folder; move it away or choose another --out",
                                 o->path, why.at);
        return cnn_error_set(CNN_ERR_IO, "%s/%s: %s", o->path, why.at, strerror(why.err));
    }
    struct stat st;
    if (fstat(d, &st) == 0 && st.st_dev != dev)
        return cnn_error_set(CNN_ERR_USAGE, "%s/%.*s is on another file system than %s; choose another --out", o->path,
                             (int)(base_name(rel) - rel - 1), rel, o->path);
    if (fstatat(d, base_name(rel), &st, AT_SYMLINK_NOFOLLOW) != 0) return CNN_OK;
    const cnn_owned_file *f = find_owned(&o->old, rel);
    if (f && same_stat(f, &st)) return CNN_OK;
    return cnn_error_set(CNN_ERR_USAGE,
                         "%s/%s exists and %s; cnnviz-cl replaces only its own files: move it away or choose "
                         "another --out",
                         o->path, rel,
                         S_ISDIR(st.st_mode) ? "is a folder"
                         : f                 ? "changed since an earlier run wrote it"
                                             : "was not written by cnnviz-cl");
}

int cnn_outdir_commit(cnn_outdir *o, cnn_manifest *m)
{
    CNN_ASSERT(o->dfd >= 0 && o->stage && !o->committed);
    take_release(o);
    char *sname = stage_name();
    if (!sname) return CNN_ERR_NOMEM;
    int sfd = openat(o->dfd, sname, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    free(sname);
    if (sfd < 0) return cnn_error_set(CNN_ERR_IO, "%s: the run's folder is gone: %s", o->stage, strerror(errno));
    char **paths = cnn_malloc((size_t)(m->n ? m->n : 1) * sizeof *paths);
    int status = paths ? CNN_OK : CNN_ERR_NOMEM;
    dir_cache c = {.fd = -1};
    walk_err why;
    /* The size and time of every file, as the manifest will record them
     * (a rename keeps both). */
    for (int i = 0; i < m->n && status == CNN_OK; i++) {
        cnn_manifest_entry *e = &m->e[i];
        struct stat st;
        int d = cnn_manifest_path_ok(e->path) ? cached_parent(&c, sfd, e->path, false, &why) : -1;
        if (d < 0 || fstatat(d, base_name(e->path), &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode)) {
            status = cnn_error_set(CNN_ERR_IO, "%s/%s: listed in the manifest but not written", o->path, e->path);
            break;
        }
        e->has_stat = 1;
        e->bytes = (int64_t)st.st_size;
        e->mtime_s = (int64_t)st.st_mtim.tv_sec;
        e->mtime_ns = (int64_t)st.st_mtim.tv_nsec;
        paths[i] = e->path;
    }
    cache_close(&c);
    if (status == CNN_OK && m->n) {
        qsort(paths, (size_t)m->n, sizeof *paths, cmp_str);
        for (int i = 1; i < m->n && status == CNN_OK; i++) {
            size_t k = strlen(paths[i - 1]);
            if (!strcmp(paths[i - 1], paths[i]) || (!strncmp(paths[i - 1], paths[i], k) && paths[i][k] == '/'))
                status = cnn_error_set(CNN_ERR_IO, "%s: the run wrote '%s' twice (as '%s'): two outputs share a name",
                                       o->path, paths[i - 1], paths[i]);
        }
    }
    struct stat ost;
    if (status == CNN_OK && fstat(o->dfd, &ost) != 0)
        status = cnn_error_set(CNN_ERR_IO, "%s: %s", o->path, strerror(errno));
    for (int i = 0; i < m->n && status == CNN_OK; i++) status = check_target(o, &c, paths[i], ost.st_dev);
    cache_close(&c);
    char *text = NULL;
    size_t len = 0;
    if (status == CNN_OK) status = cnn_manifest_text(m, &text, &len);
    if (status == CNN_OK) status = write_at(o, sfd, MANIFEST, text, len);
    free(text);
    if (status == CNN_OK) {
        o->committed = true; /* from here on the stage is the next run's to finish, never to discard */
        status = finish_commit(o, sfd, paths, m->n, &o->old);
    }
    free(paths);
    close(sfd);
    if (status == CNN_OK) {
        sname = stage_name();
        if (sname) remove_tree(o->dfd, sname, 0);
        free(sname);
    }
    return status;
}

/* ---------------------------------------------------------------------- */
/* Open: lock, recovery, the earlier manifest                             */

static long lock_holder(int fd)
{
    char buf[32] = "";
    ssize_t r = pread(fd, buf, sizeof buf - 1, 0);
    if (r <= 0) return -1;
    buf[r] = '\0';
    char *end;
    long pid = strtol(buf, &end, 10);
    return end != buf && pid > 0 ? pid : -1;
}

static int take_lock(cnn_outdir *o, bool wait)
{
    for (int attempt = 0; attempt < 1000; attempt++) {
        int fd = openat(o->dfd, LOCK_NAME, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK, 0644);
        if (fd < 0)
            return cnn_error_set(errno == ELOOP ? CNN_ERR_USAGE : CNN_ERR_IO, "%s/%s: cannot open the lock file: %s",
                                 o->path, LOCK_NAME, errno == ELOOP ? "it is a symbolic link" : strerror(errno));
        if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
            int e = errno;
            long pid = lock_holder(fd);
            char holder[48] = "pid unknown";
            if (pid > 0) snprintf(holder, sizeof holder, "pid %ld", pid);
            if (e != EWOULDBLOCK) {
                close(fd);
                return cnn_error_set(CNN_ERR_IO, "%s/%s: cannot lock: %s", o->path, LOCK_NAME, strerror(e));
            }
            if (!wait) {
                close(fd);
                return cnn_error_set(CNN_ERR_USAGE,
                                     "%s is in use by another cnnviz-cl run (%s): wait for it to finish, pass "
                                     "--wait-lock, or choose another --out",
                                     o->path, holder);
            }
            note(o, "%s is in use by another run (%s); waiting for it (--wait-lock)", o->path, holder);
            while (flock(fd, LOCK_EX) != 0) {
                if (errno == EINTR && !cnn_signal_pending()) continue;
                int err = errno;
                close(fd);
                if (err == EINTR)
                    return cnn_error_set(CNN_ERR_INTERRUPTED, "interrupted by %s while waiting for %s",
                                         cnn_signal_pending() == SIGTERM ? "SIGTERM" : "SIGINT", o->path);
                return cnn_error_set(CNN_ERR_IO, "%s/%s: cannot lock: %s", o->path, LOCK_NAME, strerror(err));
            }
        }
        /* The holder removes the file when it lets go: the lock is good
         * only on the file that is still at the name. */
        struct stat a, b;
        if (fstat(fd, &a) == 0 && fstatat(o->dfd, LOCK_NAME, &b, AT_SYMLINK_NOFOLLOW) == 0 && a.st_dev == b.st_dev &&
            a.st_ino == b.st_ino) {
            char pid[32];
            int n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
            if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)n, 0) != n) {
                /* only the message to a second run loses the pid */
            }
            o->lock_fd = fd;
            return CNN_OK;
        }
        close(fd);
    }
    return cnn_error_set(CNN_ERR_IO, "%s/%s: the lock file keeps changing", o->path, LOCK_NAME);
}

static bool pid_alive(long pid)
{
    return pid > 0 && pid != (long)getpid() && (kill((pid_t)pid, 0) == 0 || errno == EPERM);
}

/* ".cnnviz-run.<digits>": the pid, else -1. */
static long stage_pid(const char *name)
{
    size_t k = strlen(STAGE_PREFIX);
    if (strncmp(name, STAGE_PREFIX, k) != 0 || !name[k]) return -1;
    long pid = 0;
    for (const char *c = name + k; *c; c++) {
        if (!isdigit((unsigned char)*c) || pid > 100000000) return -1;
        pid = pid * 10 + (*c - '0');
    }
    return pid;
}

/* ".<name>.tmp.<pid>.<n>": the pid of a temporary file, else -1. */
static long tmp_pid(const char *name)
{
    if (name[0] != '.') return -1;
    const char *t = NULL;
    for (const char *p = strstr(name, ".tmp."); p; p = strstr(p + 1, ".tmp.")) t = p;
    if (!t || t == name) return -1;
    long pid = 0;
    const char *c = t + 5;
    for (; isdigit((unsigned char)*c) && pid < 100000000; c++) pid = pid * 10 + (*c - '0');
    if (c == t + 5 || *c++ != '.' || !isdigit((unsigned char)*c)) return -1;
    while (isdigit((unsigned char)*c)) c++;
    return *c ? -1 : pid;
}

/* Stages of dead runs: a finished commit (its manifest is there) is
 * completed, anything else removed.  We hold the lock, so no live run of
 * this tool owns them. */
static int recover_stages(cnn_outdir *o)
{
    int fd = openat(o->dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d) {
        if (fd >= 0) close(fd);
        return cnn_error_set(CNN_ERR_IO, "%s: cannot list the folder: %s", o->path, strerror(errno));
    }
    char names[16][64];
    int n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL && n < 16;) {
        size_t len = strlen(e->d_name);
        if (stage_pid(e->d_name) > 0 && len < sizeof names[0]) memcpy(names[n++], e->d_name, len + 1);
    }
    closedir(d);
    int status = CNN_OK;
    for (int i = 0; i < n && status == CNN_OK; i++) {
        long pid = stage_pid(names[i]);
        int sfd = openat(o->dfd, names[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        cnn_owned fresh = {0}, old = {0};
        mf_kind fk = MF_NONE, ok = MF_NONE;
        char why[CNN_ERROR_MAX];
        if (sfd >= 0) status = read_manifest(sfd, &fresh, &fk, why, sizeof why);
        if (status == CNN_OK && fk == MF_OURS) status = read_manifest(o->dfd, &old, &ok, why, sizeof why);
        if (status == CNN_OK && fk == MF_OURS && ok != MF_FOREIGN) {
            char **paths = cnn_malloc((size_t)(fresh.n ? fresh.n : 1) * sizeof *paths);
            if (!paths) status = CNN_ERR_NOMEM;
            for (int k = 0; paths && k < fresh.n; k++) paths[k] = fresh.f[k].path;
            if (paths) status = finish_commit(o, sfd, paths, fresh.n, &old);
            free(paths);
            if (status == CNN_OK)
                note(o, "%s: finished publishing the results of an interrupted run (pid %ld)", o->path, pid);
        } else if (status == CNN_OK) {
            note(o, "%s: removed the unfinished files of an interrupted run (pid %ld)", o->path, pid);
        }
        if (sfd >= 0) close(sfd);
        cnn_owned_free(&fresh);
        cnn_owned_free(&old);
        if (status == CNN_OK) remove_tree(o->dfd, names[i], 0);
    }
    return status;
}

/* Temporary files of dead runs (older versions wrote them in OUT itself):
 * in OUT and in the folders the earlier manifest names. */
static void remove_dead_temporaries(cnn_outdir *o)
{
    int removed = 0;
    const char *prev = NULL;
    size_t prev_len = 0;
    for (int i = -1; i < o->old.n; i++) {
        const char *rel = i < 0 ? "x" : o->old.f[i].path;
        size_t plen = (size_t)(base_name(rel) - rel);
        if (prev && plen == prev_len && !strncmp(prev, rel, plen)) continue;
        prev = rel;
        prev_len = plen;
        walk_err why;
        int fd = open_parent(o->dfd, rel, false, &why);
        DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
        if (!d) {
            if (fd >= 0) close(fd);
            continue;
        }
        for (struct dirent *e; (e = readdir(d)) != NULL;) {
            long pid = tmp_pid(e->d_name);
            struct stat st;
            if (pid > 0 && !pid_alive(pid) && fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
                S_ISREG(st.st_mode) && unlinkat(dirfd(d), e->d_name, 0) == 0)
                removed++;
        }
        closedir(d);
    }
    if (removed) note(o, "%s: removed %d temporary file%s of interrupted runs", o->path, removed, removed == 1 ? "" : "s");
}

int cnn_outdir_open(cnn_outdir *o, const char *path, bool wait_lock, bool quiet)
{
    memset(o, 0, sizeof *o);
    o->dfd = o->lock_fd = -1;
    o->quiet = quiet;
    if (!(o->path = cnn_strdup(path))) return CNN_ERR_NOMEM;
    struct stat st;
    if (stat(path, &st) == 0 && !S_ISDIR(st.st_mode))
        return cnn_error_set(CNN_ERR_USAGE, "--out %s: exists and is not a folder", path);
    o->made = stat(path, &st) != 0;
    CNN_TRY_RET(cnn_mkdirs(path, 0755));
    o->dfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (o->dfd < 0) return cnn_error_set(CNN_ERR_IO, "--out %s: cannot open the folder: %s", path, strerror(errno));
    CNN_TRY_RET(take_lock(o, wait_lock));
    CNN_TRY_RET(recover_stages(o));
    mf_kind kind;
    char why[CNN_ERROR_MAX];
    CNN_TRY_RET(read_manifest(o->dfd, &o->old, &kind, why, sizeof why));
    if (kind == MF_FOREIGN)
        return cnn_error_set(CNN_ERR_USAGE,
                             "%s holds a manifest.json not written by this version of cnnviz-cl (%s); choose "
                             "another --out or remove it",
                             path, why);
    remove_dead_temporaries(o);
    char *name = stage_name();
    if (!name) return CNN_ERR_NOMEM;
    remove_tree(o->dfd, name, 0); /* a stage of our own pid: left by a process of another pid namespace */
    int r = mkdirat(o->dfd, name, 0755);
    int err = errno;
    o->stage = r == 0 ? cnn_path_join(path, name) : NULL;
    free(name);
    if (r != 0) return cnn_error_set(CNN_ERR_IO, "%s: cannot write in the folder: %s", path, strerror(err));
    return o->stage ? CNN_OK : CNN_ERR_NOMEM;
}

int cnn_outdir_check_names(const cnn_outdir *o, const char *const *names, const bool *folder, int n)
{
    for (int i = 0; i < n; i++) {
        struct stat st;
        if (fstatat(o->dfd, names[i], &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
        if (folder[i] && S_ISDIR(st.st_mode)) continue;
        const cnn_owned_file *f = folder[i] ? NULL : find_owned(&o->old, names[i]);
        if (f && same_stat(f, &st)) continue;
        const char *what = S_ISLNK(st.st_mode) ? "is a symbolic link"
                           : folder[i]         ? "is not a folder"
                           : f                 ? "changed since an earlier run wrote it"
                                               : "was not written by cnnviz-cl";
        return cnn_error_set(CNN_ERR_USAGE,
                             "%s/%s exists and %s; cnnviz-cl replaces only its own files: move it away or choose "
                             "another --out",
                             o->path, names[i], what);
    }
    return CNN_OK;
}

void cnn_outdir_close(cnn_outdir *o)
{
    if (!o->path) return; /* never opened: its fds are not ours */
    take_release(o);
    if (o->dfd >= 0) {
        char *name = stage_name();
        /* A commit that stopped half way keeps its stage for the next run. */
        if (name && o->stage && !o->committed) remove_tree(o->dfd, name, 0);
        free(name);
        if (o->lock_fd >= 0) unlinkat(o->dfd, LOCK_NAME, 0);
    }
    if (o->lock_fd >= 0) close(o->lock_fd);
    if (o->dfd >= 0) close(o->dfd);
    if (o->made && o->path) rmdir(o->path); /* only if empty */
    cnn_owned_free(&o->old);
    free(o->path);
    free(o->stage);
    memset(o, 0, sizeof *o);
    o->dfd = o->lock_fd = -1;
}

void cnn_outdir_name(const char *name, char *out, size_t out_size)
{
    cnn_sanitize_name(name, out, out_size);
    static const char *const ext[] = {".png", ".npy", ".json", ".html", ".csv"};
    size_t n = strlen(out);
    for (size_t i = 0; i < sizeof ext / sizeof *ext; i++) {
        size_t k = strlen(ext[i]);
        if (n >= k && !strcasecmp(out + n - k, ext[i])) {
            if (n + 1 < out_size) {
                out[n] = '_';
                out[n + 1] = '\0';
            } else {
                out[n - 1] = '_';
            }
            break;
        }
    }
}

void cnn_outdir_fix_message(const cnn_outdir *o)
{
    if (!o->stage) return;
    const char *m = cnn_error_message(), *hit = strstr(m, o->stage);
    if (!hit) return;
    char buf[CNN_ERROR_MAX];
    snprintf(buf, sizeof buf, "%.*s%s%s", (int)(hit - m), m, o->path, hit + strlen(o->stage));
    cnn_error_set(CNN_ERR_IO, "%s", buf);
}
