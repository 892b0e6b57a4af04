/* files.h: reading files within limits, and writing files so that a reader never sees half
 * of one. */
#ifndef NNRT_FILES_H
#define NNRT_FILES_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* How much a read may take in, and what it is, for the messages. A file that is not a
 * regular file (a pipe, standard input) or gzip data being inflated is also shown, piece by
 * piece, to check: it sees bytes [0, len) of the contents so far, of which [0, seen) it saw
 * before, and ends the run as soon as they cannot be the file wanted (so a gzip bomb or a
 * stream of zeros stops early). */
typedef struct rt_read_limits {
    uint64_t limit;   /* bytes, inflated when gzip'd */
    const char *what; /* "a data file" */
    const char *why;  /* where the limit comes from: "half the memory ..." */
    void (*check)(const char *path, const char *bytes, size_t seen, size_t len, void *state);
    void *state;
} rt_read_limits;

/* The whole file (or standard input when path is NULL), NUL-terminated, in a tracked
 * buffer. A file that cannot be opened or read, a directory or a device, and a file of
 * more than lim->limit bytes are fatal: "PATH: error: ...". */
char *rt_read_file(const char *path, size_t *len, const rt_read_limits *lim);

/* The inflated contents of gzip data (bytes, len) read from path, NUL-terminated, in a
 * tracked buffer; corrupt data, or more than lim->limit bytes inflated, is a fatal
 * "PATH: error: ...". */
char *rt_gunzip(const char *path, const char *bytes, size_t len, size_t *out_len,
                const rt_read_limits *lim);

/* A regular file, to be read at offsets (rt_read_at), and its size; anything else (a pipe,
 * a device, a directory) is a fatal "PATH: error: cannot read: ...". */
FILE *rt_open_seekable(const char *path, uint64_t *size);
/* n bytes at offset; a short read is a fatal "PATH: error: cannot read: ...". */
void rt_read_at(FILE *f, const char *path, uint64_t offset, void *dst, size_t n);

/* An atomic write: the data goes to a temporary file in the target's folder, which
 * rt_atomic_commit flushes, fsyncs and renames over the target. Any failure is a fatal
 * "PATH: error: cannot write: ..." and leaves the target as it was. */
typedef struct rt_atomic_file {
    FILE *f;
    char *path;
    char *temp_path;
} rt_atomic_file;

rt_atomic_file rt_atomic_open(const char *path);
void rt_atomic_commit(rt_atomic_file *af);

/* Stops the run early, before hours of training, when the folder of path cannot take a
 * new file: "PATH: error: cannot write: ...". */
void rt_check_writable(const char *path);

#endif
