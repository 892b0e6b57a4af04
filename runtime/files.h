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

/* An input read as it comes (predict's rows): a file, a pipe or standard input. */
typedef struct rt_input {
    FILE *f;          /* NULL once closed */
    const char *path; /* NULL: standard input */
    int regular;      /* a regular file, whose size is known */
    uint64_t size;    /* a regular file's */
} rt_input;

/* Opens path (standard input when NULL); what rt_read_file refuses is fatal here too. */
void rt_input_open(rt_input *in, const char *path);
/* Up to n bytes, as many as have come (waiting for the first of them); 0 at the end. */
size_t rt_input_read(rt_input *in, char *dst, size_t n);
/* Whether more bytes (or the end) are there to read, waiting at most ms milliseconds. */
int rt_input_ready(const rt_input *in, int ms);
/* The rest of the input after the used bytes of buf (a tracked buffer of cap bytes, which
 * this takes over), NUL-terminated, within lim as rt_read_file; closes the input. */
char *rt_input_rest(rt_input *in, char *buf, size_t used, size_t cap, size_t *len,
                    const rt_read_limits *lim);
void rt_input_close(rt_input *in);

/* The whole file (or standard input when path is NULL), NUL-terminated, in a tracked
 * buffer. A file that cannot be opened or read, a directory or a device, and a file of
 * more than lim->limit bytes are fatal: "PATH: error: ...". */
char *rt_read_file(const char *path, size_t *len, const rt_read_limits *lim);

/* gzip data's first bytes. */
#define RT_GZIP_MAGIC "\x1f\x8b"

/* bytes (len of them, a tracked buffer taken over) as read from path, or, when they are gzip
 * data, their inflated contents (rt_gunzip within lim, *len updated). */
char *rt_inflated(const char *path, char *bytes, size_t *len, const rt_read_limits *lim);

/* The inflated contents of gzip data (bytes, len) read from path, NUL-terminated, in a
 * tracked buffer; corrupt data, or more than lim->limit bytes inflated, is a fatal
 * "PATH: error: ...". */
char *rt_gunzip(const char *path, const char *bytes, size_t len, size_t *out_len,
                const rt_read_limits *lim);

/* A regular file, to be read at offsets (rt_read_at), and its size; anything else (a pipe,
 * a device, a directory) is a fatal "PATH: error: cannot read: ...". Tracked (util.h,
 * rt_track_file) until rt_close_seekable closes it. */
FILE *rt_open_seekable(const char *path, uint64_t *size);
void rt_close_seekable(FILE *f);
/* n bytes at offset; a short read is a fatal "PATH: error: cannot read: ...". */
void rt_read_at(FILE *f, const char *path, uint64_t offset, void *dst, size_t n);

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

/* Checks text as it arrives (an rt_read_limits.check): no NUL byte, and not UTF-16 (a byte
 * order mark), so that a stream of zeros or a gzip bomb of them stops at once. bytes[0] is
 * byte `at` of the contents (0 but for a stream kept a piece at a time), for the messages'
 * offsets. The messages name the format ("CSV"), what to save the file as ("\"CSV UTF-8\"")
 * and what a NUL byte shows it is not ("CSV text"). */
/* The UTF-16 part alone: bytes (len of them) are the contents' first. */
void rt_check_not_utf16(const char *path, const char *bytes, size_t len, const char *format,
                        const char *save_as);
void rt_check_utf8_text(const char *path, const char *bytes, size_t seen, size_t len, uint64_t at,
                        const char *format, const char *save_as, const char *what);

#endif
