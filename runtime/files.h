/* files.h: reading whole files, and writing files so that a reader never sees half of one. */
#ifndef NNRT_FILES_H
#define NNRT_FILES_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* The whole file (or standard input when path is NULL), NUL-terminated, in a tracked
 * buffer. A file that cannot be opened or read is a fatal "PATH: error: cannot open: ...". */
char *rt_read_file(const char *path, size_t *len);

/* The inflated contents of gzip data (bytes, len) read from path, NUL-terminated, in a
 * tracked buffer; corrupt data is a fatal "PATH: error: ...". */
char *rt_gunzip(const char *path, const char *bytes, size_t len, size_t *out_len);

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
