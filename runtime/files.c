/* files.c: bounded whole-file reads, reads at offsets, and atomic writes (see files.h). */
#include "files.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "util.h"

/* ---- reading ---- */

/* What a file that holds no data is, for "cannot read: ..." */
static const char *not_data_kind(mode_t mode) {
    if (S_ISDIR(mode)) return NULL; /* strerror(EISDIR) says it */
    if (S_ISCHR(mode)) return "a character device, not a file";
    if (S_ISBLK(mode)) return "a block device, not a file";
    if (S_ISSOCK(mode)) return "a socket, not a file";
    return NULL;
}

/* Opens path (standard input when NULL) and stats it. Files and pipes hold data; a
 * directory or a device (/dev/zero) never ends or is not data, so it is refused. */
static FILE *open_input(const char *path, struct stat *st) {
    FILE *f = path ? fopen(path, "rb") : stdin;
    if (!f) rt_path_error(path, "cannot open: %s", strerror(errno));
    if (fstat(fileno(f), st) != 0) {
        int err = errno;
        if (path) fclose(f);
        rt_path_error(path, "cannot read: %s", strerror(err));
    }
    if (!path) return f; /* standard input may be a terminal */
    const char *kind = not_data_kind(st->st_mode);
    if (S_ISDIR(st->st_mode) || kind) {
        fclose(f);
        rt_path_error(path, "cannot read: %s", kind ? kind : strerror(EISDIR));
    }
    return f;
}

/* how: "5000000000 bytes, " or "its gzip data inflates to " */
static _Noreturn void too_large(const char *path, const rt_read_limits *lim, const char *how) {
    rt_path_error(path, "too large: %smore than the %llu bytes %s may have here (%s)", how,
                  (unsigned long long)lim->limit, lim->what, lim->why);
}

/* The largest buffer a read needs: the limit, a byte past it to see it passed, and the
 * terminating NUL. */
static size_t buffer_cap(const rt_read_limits *lim) {
    return lim->limit >= SIZE_MAX - 2 ? SIZE_MAX : (size_t)lim->limit + 2;
}

static size_t grown_cap(size_t cap, const rt_read_limits *lim) {
    size_t most = buffer_cap(lim);
    return cap > most / 2 ? most : cap * 2;
}

void rt_input_open(rt_input *in, const char *path) {
    struct stat st;
    in->path = path;
    in->f = open_input(path, &st);
    in->regular = S_ISREG(st.st_mode);
    in->size = in->regular ? (uint64_t)st.st_size : 0;
}

void rt_input_close(rt_input *in) {
    if (in->f && in->path) fclose(in->f);
    in->f = NULL;
}

/* read(2), not stdio, so that a pipe's bytes are handed on as they come rather than when a
 * buffer is full; a descriptor left non-blocking by whoever gave it to us is waited on. */
size_t rt_input_read(rt_input *in, char *dst, size_t n) {
    int fd = fileno(in->f);
    for (;;) {
        ssize_t got = read(fd, dst, n < ((size_t)1 << 30) ? n : (size_t)1 << 30);
        if (got >= 0) return (size_t)got;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            struct pollfd p = {fd, POLLIN, 0};
            poll(&p, 1, -1);
        } else if (errno != EINTR) {
            int err = errno;
            rt_input_close(in);
            rt_path_error(in->path, "cannot read: %s", strerror(err));
        }
    }
}

int rt_input_ready(const rt_input *in, int ms) {
    struct pollfd p = {fileno(in->f), POLLIN, 0};
    int n;
    while ((n = poll(&p, 1, ms)) < 0 && errno == EINTR) continue;
    return n != 0; /* an error too: the read that follows reports it */
}

char *rt_input_rest(rt_input *in, char *buf, size_t used, size_t cap, size_t *len,
                    const rt_read_limits *lim) {
    for (;;) {
        size_t got;
        if (used + 1 == cap) { /* full: at the end already? then the buffer need not grow */
            char c;
            if (rt_input_read(in, &c, 1) == 0) break;
            buf = rt_grow_array(buf, cap, grown_cap(cap, lim), 1);
            cap = grown_cap(cap, lim);
            buf[used] = c;
            got = 1;
        } else if ((got = rt_input_read(in, buf + used, cap - 1 - used)) == 0) {
            break;
        }
        /* A file's size is known; a pipe's is not, so its contents are checked as they come. */
        if (!in->regular && lim->check) lim->check(in->path, buf, used, used + got, lim->state);
        used += got;
        if (used > lim->limit) {
            rt_input_close(in);
            too_large(in->path, lim, in->regular ? "it grew while read to " : "");
        }
    }
    rt_input_close(in);
    buf[used] = '\0';
    *len = used;
    return buf;
}

char *rt_read_file(const char *path, size_t *len, const rt_read_limits *lim) {
    rt_input in;
    rt_input_open(&in, path);
    if (in.regular && in.size > lim->limit) {
        rt_input_close(&in);
        char size[48];
        snprintf(size, sizeof size, "%llu bytes, ", (unsigned long long)in.size);
        too_large(path, lim, size);
    }
    size_t cap = in.regular ? (size_t)in.size + 1 : (size_t)1 << 16;
    if (cap > buffer_cap(lim)) cap = buffer_cap(lim);
    return rt_input_rest(&in, rt_alloc(cap), 0, cap, len, lim);
}

/* zlib's state in the runtime's tracked memory: a check that ends the run in the middle of
 * inflating (a NUL byte in what it inflates to) leaves nothing behind where the error exits
 * return instead (the fuzz targets' seam, util.h), as rt_free_all frees it. */
static voidpf z_alloc(voidpf opaque, uInt items, uInt size) {
    (void)opaque;
    return rt_alloc_array(items, size);
}

static void z_free(voidpf opaque, voidpf p) {
    (void)opaque;
    rt_free(p);
}

char *rt_gunzip(const char *path, const char *bytes, size_t len, size_t *out_len,
                const rt_read_limits *lim) {
    z_stream z = {.zalloc = z_alloc, .zfree = z_free};
    if (inflateInit2(&z, 15 + 32) != Z_OK) rt_path_error(path, "cannot inflate: out of memory");
    size_t cap = len < (SIZE_MAX - 1024) / 4 ? len * 4 + 1024 : SIZE_MAX, used = 0;
    if (cap > buffer_cap(lim)) cap = buffer_cap(lim);
    char *out = rt_alloc(cap);
    z.next_in = (Bytef *)bytes;
    int status = Z_OK;
    /* Concatenated gzip members (as `cat a.gz b.gz` makes) are one stream to gunzip. */
    while (status != Z_STREAM_END || z.avail_in > 0) {
        if (status == Z_STREAM_END) inflateReset(&z);
        if (used + 1 >= cap) {
            out = rt_grow_array(out, cap, grown_cap(cap, lim), 1);
            cap = grown_cap(cap, lim);
        }
        size_t in_left = len - (size_t)((const char *)z.next_in - bytes);
        z.avail_in = in_left > UINT32_MAX ? UINT32_MAX : (uInt)in_left;
        size_t room = cap - 1 - used;
        z.avail_out = room > UINT32_MAX ? UINT32_MAX : (uInt)room;
        z.next_out = (Bytef *)out + used;
        status = inflate(&z, Z_NO_FLUSH);
        size_t before = used;
        used = (size_t)((char *)z.next_out - out);
        /* A bomb (a few MB that inflate to GB) stops here, as soon as what it inflates to
         * cannot be what is wanted, or is too much. */
        if (lim->check && used > before) lim->check(path, out, before, used, lim->state);
        if (used > lim->limit) {
            inflateEnd(&z);
            too_large(path, lim, "its gzip data inflates to ");
        }
        if (status == Z_BUF_ERROR && z.avail_in == 0) {
            inflateEnd(&z);
            rt_path_error(path, "truncated gzip data (%zu bytes inflated)", used);
        }
        if (status != Z_OK && status != Z_STREAM_END && status != Z_BUF_ERROR) {
            const char *why = z.msg ? z.msg : "corrupt data";
            char msg[256];
            snprintf(msg, sizeof msg, "%s", why);
            inflateEnd(&z);
            rt_path_error(path, "not valid gzip data: %s", msg);
        }
    }
    inflateEnd(&z);
    out[used] = '\0';
    *out_len = used;
    return out;
}

char *rt_inflated(const char *path, char *bytes, size_t *len, const rt_read_limits *lim) {
    if (rt_starts_with(bytes, *len, RT_GZIP_MAGIC, 2) != 1) return bytes;
    char *plain = rt_gunzip(path, bytes, *len, len, lim);
    rt_free(bytes);
    return plain;
}

FILE *rt_open_seekable(const char *path, uint64_t *size) {
    /* stat before opening: opening a pipe would wait for a writer */
    struct stat st;
    if (stat(path, &st) == 0 && S_ISFIFO(st.st_mode))
        rt_path_error(path, "cannot read: a pipe, not a file (it is read at offsets)");
    FILE *f = open_input(path, &st);
    if (!S_ISREG(st.st_mode)) {
        fclose(f);
        rt_path_error(path, "cannot read: not a regular file");
    }
    *size = (uint64_t)st.st_size;
    rt_track_file(f);
    return f;
}

void rt_close_seekable(FILE *f) {
    rt_untrack_file(f);
    fclose(f);
}

void rt_read_at(FILE *f, const char *path, uint64_t offset, void *dst, size_t n) {
    if (offset > (uint64_t)INT64_MAX || fseeko(f, (off_t)offset, SEEK_SET) != 0)
        rt_path_error(path, "cannot read: %s", strerror(errno ? errno : EINVAL));
    if (fread(dst, 1, n, f) != n)
        rt_path_error(path, "cannot read: %s",
                      ferror(f) ? strerror(errno) : "the file is shorter than it was");
}

/* ---- writing ---- */

/* What a write to a path lands on, symlinks followed. */
enum target_kind {
    TARGET_NEW,     /* nothing there yet (the folder may not exist either) */
    TARGET_REGULAR, /* a regular file */
    TARGET_STREAM,  /* a character device or a FIFO: written as it is, never replaced */
    TARGET_OTHER,   /* a folder, a block device, a socket: never written */
};

static enum target_kind target_kind(const char *path, struct stat *st) {
    if (stat(path, st) != 0) return TARGET_NEW;
    if (S_ISREG(st->st_mode)) return TARGET_REGULAR;
    if (S_ISCHR(st->st_mode) || S_ISFIFO(st->st_mode)) return TARGET_STREAM;
    return TARGET_OTHER;
}

static char *folder_of(const char *path) {
    const char *slash = strrchr(path, '/');
    return slash ? rt_strndup(path, slash == path ? 1 : (size_t)(slash - path)) : rt_strdup(".");
}

/* The path a write through `path` replaces: each symlink on the way replaced by its target
 * (a relative target is relative to the link's folder), even a link to nothing yet, so that
 * the new file goes where the link points and the link stays a link. */
static char *follow_links(const char *path) {
    enum { MAX_LINKS = 40 }; /* as the kernel: a longer chain is a loop */
    char *at = rt_strdup(path);
    for (int hops = 0;; hops++) {
        struct stat st;
        if (lstat(at, &st) != 0 || !S_ISLNK(st.st_mode)) return at;
        if (hops == MAX_LINKS) rt_path_error(path, "cannot write: %s", strerror(ELOOP));
        size_t cap = (size_t)st.st_size + 2;
        char *link = rt_alloc(cap);
        ssize_t n = readlink(at, link, cap - 1);
        if (n < 0 || (size_t)n >= cap - 1) rt_path_error(path, "cannot write: %s", strerror(errno));
        link[n] = '\0';
        char *next = link;
        if (link[0] != '/') {
            char *folder = folder_of(at);
            next = rt_alloc(strlen(folder) + strlen(link) + 2);
            sprintf(next, "%s/%s", folder, link);
            rt_free(folder);
            rt_free(link);
        }
        rt_free(at);
        at = next;
    }
}

static _Noreturn void not_writable(const char *path, const struct stat *st) {
    if (S_ISDIR(st->st_mode)) rt_path_error(path, "cannot write: %s", strerror(EISDIR));
    rt_path_error(path, "cannot write: not a regular file, character device or FIFO");
}

void rt_check_writable(const char *path) {
    struct stat st;
    enum target_kind kind = target_kind(path, &st);
    if (kind == TARGET_OTHER) not_writable(path, &st);
    if (kind == TARGET_STREAM) {
        if (access(path, W_OK) != 0) rt_path_error(path, "cannot write: %s", strerror(errno));
        return;
    }
    char *target = follow_links(path), *folder = folder_of(target);
    if (access(folder, W_OK | X_OK) != 0) rt_path_error(path, "cannot write: %s", strerror(errno));
    rt_free(folder);
    rt_free(target);
}

static _Noreturn void write_failed(rt_atomic_file *af, int err) {
    if (af->f) fclose(af->f);
    af->f = NULL;
    if (af->temp_path) unlink(af->temp_path);
    rt_path_error(af->path, "cannot write: %s", strerror(err));
}

/* A device or a FIFO (/dev/null, /dev/stdout, a pipe) takes the bytes as they come: there is
 * no file to replace, and renaming a file over it would destroy it. */
static void open_stream(rt_atomic_file *af) {
    int fd = open(af->path, O_WRONLY | O_NOCTTY);
    if (fd < 0) rt_path_error(af->path, "cannot write: %s", strerror(errno));
    af->f = fdopen(fd, "wb");
    if (!af->f) {
        int err = errno;
        close(fd);
        write_failed(af, err);
    }
}

rt_atomic_file rt_atomic_open(const char *path) {
    rt_atomic_file af = {0};
    af.path = rt_strdup(path);
    struct stat st;
    enum target_kind kind = target_kind(path, &st);
    if (kind == TARGET_OTHER) not_writable(path, &st);
    if (kind == TARGET_STREAM) {
        open_stream(&af);
        errno = 0; /* rt_atomic_commit reports the errno of a failed write */
        return af;
    }
    af.target = follow_links(path);
    /* "TARGET.tmp." and six template characters that mkstemp replaces */
    size_t n = strlen(af.target);
    af.temp_path = rt_alloc(n + 16);
    memcpy(af.temp_path, af.target, n);
    memcpy(af.temp_path + n, ".tmp.", 5);
    memset(af.temp_path + n + 5, 'X', 6);
    int fd = mkstemp(af.temp_path);
    if (fd < 0) {
        rt_free(af.temp_path);
        af.temp_path = NULL;
        rt_path_error(path, "cannot write: %s", strerror(errno));
    }
    /* mkstemp makes the file private (0600); the file it replaces keeps its permissions, a
     * new one gets the usual ones. */
    mode_t mask = umask(0);
    umask(mask);
    mode_t mode = kind == TARGET_REGULAR ? st.st_mode & 07777 : 0666 & ~mask;
    if (fchmod(fd, mode) != 0) {
        int err = errno;
        close(fd);
        write_failed(&af, err);
    }
    af.f = fdopen(fd, "wb");
    if (!af.f) {
        int err = errno;
        close(fd);
        write_failed(&af, err);
    }
    errno = 0; /* rt_atomic_commit reports the errno of a failed write */
    return af;
}

/* The rename is durable only once the folder itself is synced. Best effort: some file
 * systems do not allow it, and the data is already safe in the file. */
static void sync_folder_of(const char *path) {
    char *folder = folder_of(path);
    int fd = open(folder, O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
    rt_free(folder);
}

/* A stdio write that failed earlier leaves only the error flag; errno is still its cause
 * when nothing has failed since (the writers call nothing else that fails). */
static int write_error(void) {
    return errno ? errno : EIO;
}

void rt_atomic_commit(rt_atomic_file *af) {
    if (fflush(af->f) != 0 || ferror(af->f)) write_failed(af, write_error());
    if (af->temp_path && fsync(fileno(af->f)) != 0) write_failed(af, errno);
    FILE *f = af->f;
    af->f = NULL;
    if (fclose(f) != 0) write_failed(af, errno);
    if (af->temp_path) {
        if (rename(af->temp_path, af->target) != 0) write_failed(af, errno);
        sync_folder_of(af->target);
    }
    rt_free(af->path);
    rt_free(af->temp_path);
    rt_free(af->target);
    af->path = af->temp_path = af->target = NULL;
}

/* ---- outputs written as training goes ---- */

FILE *rt_output_open(const char *path, int append) {
    rt_check_writable(path);
    FILE *f = fopen(path, append ? "a" : "w");
    if (!f) rt_path_error(path, "cannot write: %s", strerror(errno));
    errno = 0;
    return f;
}

static _Noreturn void output_failed(const char *path, int err) {
    if (!path) rt_fatal("cannot write the output: %s", strerror(err));
    rt_path_error(path, "cannot write: %s", strerror(err));
}

void rt_output_check(FILE *f, const char *path) {
    if (ferror(f)) output_failed(path, write_error());
}

void rt_output_close(FILE *f, const char *path) {
    errno = 0; /* the rows were checked: a failure now is the flush's own */
    if (fflush(f) != 0 || ferror(f)) output_failed(path, write_error());
    if (f != stdout && fclose(f) != 0) output_failed(path, errno);
}

/* ---- the no-clobber check ---- */

/* What a path names: the device and inode of the file there (symlinks followed), or, for an
 * output not written yet, those of the folder it will be made in, with its name. */
typedef struct file_id {
    int known;  /* 0: nothing to compare (an input or a folder that does not exist) */
    int stream; /* a device or a FIFO */
    dev_t dev;
    ino_t ino;
    char *name; /* NULL: (dev, ino) are the file's own; else its name in that folder */
} file_id;

static file_id identify(const rt_file_use *use) {
    file_id id = {0};
    struct stat st;
    enum target_kind kind = target_kind(use->path, &st);
    if (kind != TARGET_NEW) {
        id.known = 1;
        id.stream = kind == TARGET_STREAM;
        id.dev = st.st_dev;
        id.ino = st.st_ino;
        return id;
    }
    if (!use->output) return id;
    char *target = follow_links(use->path), *folder = folder_of(target);
    if (stat(folder, &st) == 0) {
        const char *slash = strrchr(target, '/');
        id.known = 1;
        id.dev = st.st_dev;
        id.ino = st.st_ino;
        id.name = rt_strdup(slash ? slash + 1 : target);
    }
    rt_free(folder);
    rt_free(target);
    return id;
}

static int same_file(const file_id *a, const file_id *b) {
    if (!a->known || !b->known || a->dev != b->dev || a->ino != b->ino) return 0;
    if (!a->name || !b->name) return !a->name && !b->name;
    return strcmp(a->name, b->name) == 0;
}

void rt_check_file_uses(const rt_file_use *uses, int n) {
    file_id *ids = rt_alloc_array((size_t)n, sizeof *ids);
    for (int i = 0; i < n; i++)
        if (uses[i].path) ids[i] = identify(&uses[i]);
    for (int i = 0; i < n; i++) {
        const rt_file_use *out = &uses[i];
        if (!out->output || !out->path || ids[i].stream) continue;
        for (int j = 0; j < n; j++) {
            const rt_file_use *other = &uses[j];
            if (j == i || !other->path || !same_file(&ids[i], &ids[j])) continue;
            if (!other->output) {
                if (out->may_replace && strcmp(out->may_replace, other->role) == 0) continue;
                /* --save has a default (MODEL.safetensors): say how to change or drop it. */
                int save = strcmp(out->role, "--save") == 0;
                rt_usage_error("%s %s is the same file as %s %s: writing it would destroy the "
                               "input; %s",
                               out->role, out->path, other->role, other->path,
                               save ? "give another --save FILE, or --no-save"
                                    : "choose another file");
            }
            if (j < i)
                rt_usage_error("%s %s and %s %s are the same file: one would overwrite the "
                               "other; give each its own",
                               other->role, other->path, out->role, out->path);
        }
    }
    for (int i = 0; i < n; i++) rt_free(ids[i].name);
    rt_free(ids);
}

void rt_check_not_utf16(const char *path, const char *bytes, size_t len, const char *format,
                        const char *save_as) {
    const unsigned char *u = (const unsigned char *)bytes;
    if (len >= 2 && ((u[0] == 0xFF && u[1] == 0xFE) || (u[0] == 0xFE && u[1] == 0xFF)))
        rt_byte_error(path, 0, "the file is UTF-16 text; %s is read as UTF-8 (save it as %s)",
                      format, save_as);
}

void rt_check_utf8_text(const char *path, const char *bytes, size_t seen, size_t len, uint64_t at,
                        const char *format, const char *save_as, const char *what) {
    if (at == 0 && seen < 2) rt_check_not_utf16(path, bytes, len, format, save_as);
    const char *nul = memchr(bytes + seen, '\0', len - seen);
    if (nul) rt_byte_error(path, at + (uint64_t)(nul - bytes), "a NUL byte: this is not %s", what);
}
