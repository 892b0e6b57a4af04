/* fuzz_rows.c: predict's and eval's rows as a pipe delivers them (runtime/row_source.c):
 * its buffer of lines, the lines it drops and moves, the first lines it reads before the
 * column layout, a line cut between two reads. The model is tests/runtime/logreg.c's
 * (x = columns 0..1, y = column 2, f32).
 *
 * Input: one byte that picks the use (bits 0-1: predict's inputs, predict --loss, eval,
 * eval) and the batch asked for (bits 2-4: 1..8 rows), one byte that seeds the pieces'
 * sizes, then the text.
 *
 * The text goes through a pipe twice: written whole before it is read, and in pieces of
 * 1..64 bytes, each written once the pipe is empty, so that each read(2) sees about one
 * piece. The two reads must end alike (the same exit status) and, when they succeed, hand
 * on the same rows, bit for bit, however the batches fell. */
#include "fuzz.h"

#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "model.h"
#include "row_source.h"
#include "util.h"

extern const nnrt_model nnrt_model_desc;

/* The writing end: the text whole, or in pieces each written into an empty pipe. */
typedef struct Feed {
    int fd;
    const uint8_t *text;
    size_t len;
    uint32_t seed; /* 0: whole */
    atomic_int reader_done;
} Feed;

static size_t next_piece(uint32_t *seed) {
    *seed = *seed * 1103515245u + 12345u;
    return 1 + (*seed >> 16) % 64;
}

static void *feed(void *arg) {
    Feed *f = arg;
    uint32_t seed = f->seed;
    for (size_t at = 0; at < f->len;) {
        size_t n = seed ? next_piece(&seed) : f->len - at;
        if (n > f->len - at) n = f->len - at;
        for (int queued = 1; seed && queued > 0 && !atomic_load(&f->reader_done);) {
            if (ioctl(f->fd, FIONREAD, &queued) != 0) queued = 0;
            if (queued > 0) sched_yield();
        }
        ssize_t wrote = write(f->fd, f->text + at, n);
        if (wrote <= 0) break; /* the reader stopped (EPIPE) */
        at += (size_t)wrote;
    }
    close(f->fd);
    return NULL;
}

/* The rows handed on, each row's inputs then its targets, as doubles. */
typedef struct Read {
    rt_rows_for use;
    int64_t batch;
    double *values;
    size_t n, cap;
} Read;

static void keep(Read *r, double v) {
    if (r->n == r->cap) {
        r->cap = r->cap ? 2 * r->cap : 256;
        r->values = realloc(r->values, r->cap * sizeof *r->values);
        if (!r->values) abort();
    }
    r->values[r->n++] = v;
}

static void read_rows(void *arg) {
    Read *r = arg;
    const nnrt_model *m = &nnrt_model_desc;
    rt_row_source *s = rt_open_rows(m, NULL, NULL, r->use, NULL); /* standard input */
    for (;;) {
        rt_rows b = rt_next_rows(s, r->batch);
        if (b.count == 0) break;
        if (b.count > r->batch) abort();
        const rt_dataset *d = b.data;
        for (int64_t row = b.first; row < b.first + b.count; row++) {
            for (int64_t e = 0; e < d->input_elems; e++)
                keep(r, rt_input_value(d, row * d->input_elems + e, m->f64));
            for (int64_t e = 0; e < d->target_elems; e++)
                keep(r, rt_get(d->targets, row * d->target_elems + e, m->f64));
        }
    }
    rt_close_rows(s);
}

static int dev_null = -1;

/* Reads the text through a pipe on standard input (seed 0: written whole): the exit status,
 * the rows in *r. Standard input, which the runtime never closes, rather than a path the
 * runtime would open: a run that ends in an error leaves no descriptor open behind it. */
static int read_through_pipe(const uint8_t *text, size_t len, uint32_t seed, Read *r) {
    int fds[2];
    if (pipe(fds) != 0 || dup2(fds[0], STDIN_FILENO) < 0) abort();
    close(fds[0]);
    Feed f = {fds[1], text, len, seed, 0};
    pthread_t writer;
    if (pthread_create(&writer, NULL, feed, &f) != 0) abort();
    int status = fuzz_rt_call(read_rows, r);
    atomic_store(&f.reader_done, 1);
    dup2(dev_null, STDIN_FILENO); /* the pipe's last reader gone: a writer still writing gets EPIPE */
    pthread_join(writer, NULL);
    rt_free_all();
    return status;
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    signal(SIGPIPE, SIG_IGN);
    dev_null = open("/dev/null", O_RDONLY);
    if (dev_null < 0) abort();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2) return 0;
    static const rt_rows_for uses[4] = {RT_ROWS_INPUTS, RT_ROWS_LOSS, RT_ROWS_EVAL,
                                        RT_ROWS_EVAL};
    rt_rows_for use = uses[data[0] & 3];
    int64_t batch = 1 + (data[0] >> 2 & 7);
    uint32_t seed = 1 + data[1];
    const uint8_t *text = data + 2;
    size_t len = size - 2;
    Read whole = {.use = use, .batch = batch}, pieces = {.use = use, .batch = batch};
    int a = read_through_pipe(text, len, 0, &whole);
    int b = read_through_pipe(text, len, seed, &pieces);
    if (a != b) {
        fprintf(stderr, "fuzz_rows: exit %d read whole, %d in pieces\n", a, b);
        abort();
    }
    if (a == 0 && (whole.n != pieces.n ||
                   (whole.n > 0 &&
                    memcmp(whole.values, pieces.values, whole.n * sizeof *whole.values) != 0))) {
        fprintf(stderr, "fuzz_rows: %zu values read whole, %zu in pieces, or other values\n",
                whole.n, pieces.n);
        abort();
    }
    free(whole.values);
    free(pieces.values);
    return 0;
}
