/* files.h: reading whole files, and writing files so that a reader never sees half of one. */
#ifndef NNRT_FILES_H
#define NNRT_FILES_H

#include <stddef.h>
#include <stdio.h>

/* The whole file (or standard input when path is NULL), NUL-terminated, in a tracked
 * buffer. A file that cannot be opened or read is a fatal "PATH: error: cannot open: ...". */
char *rt_read_file(const char *path, size_t *len);

/* The inflated contents of gzip data (bytes, len) read from path, NUL-terminated, in a
 * tracked buffer; corrupt data is a fatal "PATH: error: ...". */
char *rt_gunzip(const char *path, const char *bytes, size_t len, size_t *out_len);

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
