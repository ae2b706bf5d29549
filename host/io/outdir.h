/* The output folder, owned safely.
 *
 * A run never writes straight into OUT.  It writes its files into a folder
 * of its own, OUT/.cnnviz-run.<pid>/ (the stage), and only when everything
 * is written does it commit: it moves each file into place, then switches
 * OUT/manifest.json (an atomic rename), then removes the files of the
 * earlier run that it did not write again.  A run that fails, is
 * interrupted or is killed before the commit leaves OUT as the earlier run
 * left it; its stage is removed (by the next run, after kill -9).
 *
 * Ownership: the tool deletes or replaces only files that an earlier
 * manifest of its own lists (marker and schema, see io/manifest.h) and that
 * still have the size and modification time recorded there.  Paths are
 * resolved one component at a time relative to OUT (openat with
 * O_NOFOLLOW), so a symbolic link inside OUT is never followed out of it.
 * A manifest.json that this tool did not write is never used: the run
 * refuses (exit 2) before writing anything.
 *
 * Concurrency: OUT/.cnnviz.lock (flock) is held from open to close; a
 * second run into the same folder fails at once naming the holder's pid,
 * or waits for it (wait_lock).  Whoever holds the lock knows every stage
 * and temporary file it finds belongs to a dead run and clears them.
 *
 * Cost: one rename per file at the commit, on the same file system. */
#ifndef CNN_IO_OUTDIR_H
#define CNN_IO_OUTDIR_H

#include "io/manifest.h"

#include <stdbool.h>
#include <stddef.h>

typedef struct cnn_outdir {
    char *path;       /* OUT as given: every message names files under it */
    char *stage;      /* OUT/.cnnviz-run.<pid>: where the run writes */
    int dfd;          /* OUT (-1: not open) */
    int lock_fd;      /* OUT/.cnnviz.lock (-1: not held) */
    bool made;        /* this run created OUT */
    bool committed;
    bool quiet;
    cnn_owned old;    /* the files the earlier run's manifest proves it wrote */
    struct cnn_outdir_take *take; /* cnn_outdir_take_file's open folders */
} cnn_outdir;

/* Creates OUT if needed, takes the lock (waiting for it when wait_lock),
 * clears what dead runs left (stages, temporary files; an interrupted
 * commit is finished), reads the earlier manifest and makes the stage.
 * Errors: CNN_ERR_USAGE (OUT is not a folder, is locked by another run, or
 * holds a manifest.json this tool did not write), CNN_ERR_IO,
 * CNN_ERR_INTERRUPTED (a signal while waiting).  On error, nothing of this
 * run is left behind (call cnn_outdir_close all the same). */
int cnn_outdir_open(cnn_outdir *o, const char *path, bool wait_lock, bool quiet);

/* Refuses early (CNN_ERR_USAGE) when one of the top-level `names` the run
 * will write exists in OUT and is not the earlier run's: a file where a
 * file will go that the earlier manifest does not list (with its size and
 * time), or a file where a folder will go (`folder[i]`). */
int cnn_outdir_check_names(const cnn_outdir *o, const char *const *names, const bool *folder, int n);

/* Publishes the stage: records each listed file's size and time in `m`,
 * checks that no file in OUT that is not the earlier run's would be
 * replaced (CNN_ERR_USAGE naming it; nothing moved then), writes
 * manifest.json, moves every file into place, switches the manifest and
 * removes the earlier run's files that `m` does not list.  `m` must list
 * every file the run wrote into the stage, manifest.json excluded. */
int cnn_outdir_commit(cnn_outdir *o, cnn_manifest *m);

/* Puts file f->path of another output folder (`from`: an open folder,
 * `from_name` its name for messages) into the stage at the same path: a
 * hard link, or a copy where the two are on different file systems
 * (*copied says which).  Paths are resolved without following symbolic
 * links on either side.  The file must be a regular file of f's size and
 * modification time, as that folder's manifest recorded them: else
 * CNN_ERR_INPUT naming it (changed or removed since its run wrote it). */
int cnn_outdir_take_file(cnn_outdir *o, int from, const char *from_name, const cnn_owned_file *f, bool *copied);

/* Removes the stage if the run did not commit, releases the lock and
 * removes OUT if this run created it and it is empty.  Safe on a zeroed or
 * partly opened cnn_outdir. */
void cnn_outdir_close(cnn_outdir *o);

/* A file or folder name for `name` that can live in OUT: sanitised
 * (cnn_sanitize_name) and, when it ends like a file the tool writes
 * (.png, .npy, .json, .html, .csv), given a trailing '_', so that a
 * folder named after a layer or input never takes a file's name. */
void cnn_outdir_name(const char *name, char *out, size_t out_size);

/* Replaces the stage's path with OUT's in the current error message, so
 * that errors name the file where the user will look for it. */
void cnn_outdir_fix_message(const cnn_outdir *o);

#endif
