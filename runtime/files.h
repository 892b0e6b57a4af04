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

/* Where outputs go (docs/runtime.md, "Where outputs go"): a path that names a regular file,
 * or nothing yet, gets a new file; a symlink is followed, and its target is what is written
 * (the link stays); a character device or a FIFO (/dev/null, /dev/stdout, a pipe) is written
 * to as it is; a folder, a block device or a socket is an error. Any failure is a fatal
 * "PATH: error: cannot write: REASON" (exit 1). */

/* An atomic write: the data goes to a temporary file in the target's folder, which
 * rt_atomic_commit flushes, fsyncs and renames over the target, so a reader or a crash sees
 * the old file or the new one, never a part; on failure the target is left as it was. A
 * device or FIFO is written directly instead (there is nothing to replace). */
typedef struct rt_atomic_file {
    FILE *f;
    char *path;      /* as given, for messages */
    char *target;    /* the file replaced (symlinks followed); NULL for a device or FIFO */
    char *temp_path; /* NULL for a device or FIFO */
} rt_atomic_file;

rt_atomic_file rt_atomic_open(const char *path);
void rt_atomic_commit(rt_atomic_file *af);

/* Stops the run early, before hours of training, when the path cannot be written (its
 * folder cannot take a new file, or it is a folder): "PATH: error: cannot write: ...". */
void rt_check_writable(const char *path);

/* An output written as training goes (the log, the trace): truncated, or appended to, in
 * place. Check it after every row written (a failed write is fatal then, with its cause),
 * and close it with rt_output_close, which flushes it and reports what failed. path NULL in
 * both stands for standard output: "PROG: error: cannot write the output: REASON". */
FILE *rt_output_open(const char *path, int append);
void rt_output_check(FILE *f, const char *path);
void rt_output_close(FILE *f, const char *path);

/* The no-clobber check (docs/runtime.md): the files a command reads and writes. An output
 * may not be the same file (device and inode, through symlinks and hard links) as an input
 * or as another output; `may_replace` names the one input it may be (a checkpoint resumed
 * and saved again). A device or FIFO output is a stream, exempt. A clash is a usage error,
 * before anything is opened for writing. */
typedef struct rt_file_use {
    const char *role; /* "--data", "--save", "the train block's data" */
    const char *path; /* NULL: not used */
    int output;
    const char *may_replace; /* outputs: the role of the input it may overwrite, or NULL */
} rt_file_use;

void rt_check_file_uses(const rt_file_use *uses, int n);

#endif
