/* bench_main.c: the training-throughput benchmark of one nnc-compiled model (an MLP, a
 * convolutional net, an LSTM or GRU: the layers the descriptor and BENCH_CONV/BENCH_RNN name).
 *
 * Linked with one model object (w1.o or w2.o, compiled by nnc at build time), OpenBLAS and
 * libnnrt (its main() is not pulled in), it reads the descriptor of nnrt.h, allocates the
 * arenas, initialises the params and calls the entry points itself. It measures
 *
 *   step        samples/s of sgd_step (forward + backward + update) on one batch already in
 *               the model's input buffers (the headline figure);
 *   with copy   the same, but each step first copies the next batch of a shuffled epoch from
 *               the data in memory into the input and target buffers, as a training loop does;
 *   gemm bound  samples/s if only the step's matrix products ran: the same calls as the
 *               model makes (nnrt_sgemm_nn for a forward product, nnrt_sgemm_tn_again for a
 *               dense chain's first weight gradient, which takes the list of the data's
 *               nonzero columns that the forward product made, cblas_sgemm for the others;
 *               shapes, transposes;
 *               beta = 1 for the weight update, as a fused one would do) on buffers of the
 *               same sizes, a dense chain's input holding a batch of the data (the products
 *               skip its zero columns): of BOUND_BATCHES batches, the one with the median
 *               count of nonzero columns (those of 32 digits vary by 3% of the pixels, sd).
 *
 * Each figure is the median of --repeats timed runs of K steps, interleaved so that a change
 * of clock speed hits all three alike. The model's loss on held-out samples before and after
 * all the runs shows the step really trains; the exit status is 1 when it does not.
 */
#include "blas_kernels.h"
#include "nnrt.h"
#include "in_place_gemm.h"
#include "packed_gemm.h"

#include <cblas.h>

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>

/* What the headline figure is called: the nnc-compiled step, or ref_mlp.c's. */
#ifndef BENCH_WHAT
#define BENCH_WHAT "nnc"
#endif

#define MAX_LAYERS    16
#define MAX_REPEATS   101
#define EVAL_SAMPLES  1024
#define BOUND_BATCHES 33 /* batches of the data the bound's batch is the median of */

/* The convolution layers before the dense chain (W4), as the model declares them: BENCH_CONV
 * is a list of {c_in, h, w, c_out, k, padding, pool}: a k x k convolution with stride 1 of
 * an image [c_in, h, w], then a pool x pool pooling. Their im2col GEMMs join the bound. */
typedef struct ConvSpec {
    int64_t c_in, h, w, c_out, k, pad, pool;
} ConvSpec;
#ifdef BENCH_CONV
static const ConvSpec convs[] = {BENCH_CONV};
#define N_CONVS (int)(sizeof convs / sizeof convs[0])
#else
static const ConvSpec convs[1];
#define N_CONVS 0
#endif

/* The recurrent layer before the dense head (W5, W6): BENCH_RNN is {gates, t, d, n,
 * per_step}: an LSTM (gates 4) or a GRU (gates 3) over t steps of d inputs (the one-hot rows
 * of token ids when the model's input holds ids) with a hidden state of n, whose dense head
 * reads the last state (per_step 0: one label a sequence) or every state (per_step 1: a
 * label a step, the next token). Its GEMMs join the bound (rnn_forward, rnn_backward). */
typedef struct RnnSpec {
    int64_t gates, t, d, n, per_step;
} RnnSpec;
#ifdef BENCH_RNN
static const RnnSpec rnn = BENCH_RNN;
#define HAS_RNN            1
#define PACKED_ELEMS(k, n) nnrt_packed_elems(k, n)
#define PACKED_PATH()      nnrt_packed_gemm_path()
#else
static const RnnSpec rnn;
#define HAS_RNN            0
#define PACKED_ELEMS(k, n) 0
#define PACKED_PATH()      0
#endif

static int64_t conv_out(const ConvSpec *c, int64_t size) {
    return size + 2 * c->pad - c->k + 1;
}

/* ---- small helpers ---- */

_Noreturn static void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("bench: error: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(2);
}

static void *xalloc(size_t n) {
    size_t size = (n + 63) / 64 * 64; /* aligned_alloc wants a multiple of the alignment */
    void *p = aligned_alloc(64, size ? size : 64);
    if (!p) die("out of memory (%zu bytes)", n);
    memset(p, 0, size ? size : 64);
    return p;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static long preemptions(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_nivcsw;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(const double *v, int n) {
    double s[MAX_REPEATS];
    memcpy(s, v, (size_t)n * sizeof *v);
    qsort(s, (size_t)n, sizeof *s, cmp_double);
    return n % 2 ? s[n / 2] : 0.5 * (s[n / 2 - 1] + s[n / 2]);
}

/* xorshift64*: deterministic, good enough for init, data and shuffling. */
typedef struct Rng {
    uint64_t s;
} Rng;

static uint64_t rng_next(Rng *r) {
    r->s ^= r->s >> 12;
    r->s ^= r->s << 25;
    r->s ^= r->s >> 27;
    return r->s * 0x2545F4914F6CDD1DULL;
}

static double rng_uniform(Rng *r) {
    return (double)(rng_next(r) >> 11) * 0x1.0p-53;
}

static double rng_normal(Rng *r) {
    double u = rng_uniform(r), v = rng_uniform(r);
    return sqrt(-2.0 * log(1.0 - u)) * cos(6.283185307179586 * v);
}

static void shuffle(int64_t *v, int64_t n, Rng *r) {
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)(rng_next(r) % (uint64_t)(i + 1));
        int64_t t = v[i];
        v[i] = v[j];
        v[j] = t;
    }
}

/* "151.2k" */
static const char *human(double v, char *buf, size_t n) {
    if (v >= 1e6)
        snprintf(buf, n, "%.2fM", v / 1e6);
    else if (v >= 1e3)
        snprintf(buf, n, "%.1fk", v / 1e3);
    else
        snprintf(buf, n, "%.1f", v);
    return buf;
}

/* ---- options ---- */

typedef struct Options {
    const char *data;
    int threads, repeats;
    int64_t steps; /* per timed run; 0: calibrated to about `seconds` */
    double seconds;
    int64_t batch;
    double lr;
    uint64_t seed;
    bool detail;
} Options;

static const char usage[] =
    "usage: %s [options]\n"
    "\n"
    "Times training steps of the nnc-compiled model '%s' and the bound set by its GEMMs.\n"
    "\n"
    "options:\n"
    "  --data PATH     MNIST: a folder holding train-images-idx3-ubyte and\n"
    "                  train-labels-idx1-ubyte (or train.csv), a .csv file (label, then 784\n"
    "                  pixels 0..255) or IMAGES,LABELS (two IDX files).\n"
    "                  A character model (token ids in): a text file, each byte a token.\n"
    "                  Default: random inputs labelled by a random linear teacher (tokens:\n"
    "                  a random Markov chain).\n"
    "  --threads N     OpenBLAS threads (default 1)\n"
    "  --repeats N     timed runs per figure; the median is reported (default 5)\n"
    "  --steps K       steps per timed run (default: as many as take about --seconds)\n"
    "  --seconds S     target length of one timed run when --steps is not given (default 0.3)\n"
    "  --batch B       batch size (default: the model's, %lld)\n"
    "  --lr LR         learning rate (default: the model's, %g)\n"
    "  --seed N        seed of init, random data and shuffling (default 1)\n"
    "  --detail        also time forward, grad, the batch copy and the GEMMs by pass,\n"
    "                  and (a dense chain) the step and its GEMMs one call of each in turn\n"
    "  --help          this text\n";

static int64_t parse_int(const char *opt, const char *s, int64_t lo, int64_t hi) {
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || end == s || v < lo || v > hi)
        die("%s wants an integer in %lld..%lld, not '%s'", opt, (long long)lo, (long long)hi, s);
    return (int64_t)v;
}

static double parse_num(const char *opt, const char *s) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || end == s || !(v > 0) || !isfinite(v))
        die("%s wants a positive number, not '%s'", opt, s);
    return v;
}

static void parse_args(int argc, char **argv, const nnrt_model *m, Options *o) {
    *o = (Options){.threads = 1,
                   .repeats = 5,
                   .seconds = 0.3,
                   .batch = m->train.batch > 0 ? m->train.batch : 32,
                   .lr = m->train.lr > 0 ? m->train.lr : 0.1,
                   .seed = 1};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            printf(usage, argv[0], m->name, (long long)o->batch, o->lr);
            exit(0);
        }
        if (!strcmp(a, "--detail")) {
            o->detail = true;
            continue;
        }
        if (i + 1 == argc) die("unknown option or missing argument: %s (try --help)", a);
        const char *v = argv[++i];
        if (!strcmp(a, "--data"))
            o->data = v;
        else if (!strcmp(a, "--threads"))
            o->threads = (int)parse_int(a, v, 1, 1024);
        else if (!strcmp(a, "--repeats"))
            o->repeats = (int)parse_int(a, v, 1, MAX_REPEATS);
        else if (!strcmp(a, "--steps"))
            o->steps = parse_int(a, v, 1, INT64_C(1) << 40);
        else if (!strcmp(a, "--seconds"))
            o->seconds = parse_num(a, v);
        else if (!strcmp(a, "--batch"))
            o->batch = parse_int(a, v, 1, 1 << 20);
        else if (!strcmp(a, "--lr"))
            o->lr = parse_num(a, v);
        else if (!strcmp(a, "--seed"))
            o->seed = (uint64_t)parse_int(a, v, 0, INT64_MAX);
        else
            die("unknown option %s (try --help)", a);
    }
}

/* ---- data: n samples of d floats and `rows` class labels each ---- */

/* Images have one label a sample (rows 1); a character model has one a step (the next
 * character: rows t), and its d inputs are token ids. */
typedef struct Data {
    int64_t n, d, rows;
    float *x;
    int32_t *label; /* n * rows */
    const char *what;
} Data;

static unsigned char *read_file(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) die("cannot open %s: %s", path, strerror(errno));
    size_t cap = 1 << 20, n = 0;
    unsigned char *buf = malloc(cap + 1);
    if (!buf) die("out of memory");
    for (;;) {
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap) break;
        cap *= 2;
        buf = realloc(buf, cap + 1);
        if (!buf) die("out of memory");
    }
    if (ferror(f)) die("cannot read %s", path);
    fclose(f);
    buf[n] = 0;
    *size = n;
    return buf;
}

static uint32_t be32(const unsigned char *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void load_idx(const char *images, const char *labels, Data *out) {
    size_t ni, nl;
    unsigned char *im = read_file(images, &ni), *lb = read_file(labels, &nl);
    if (ni < 16 || be32(im) != 0x803) die("%s: not an IDX image file (magic 0x803)", images);
    if (nl < 8 || be32(lb) != 0x801) die("%s: not an IDX label file (magic 0x801)", labels);
    int64_t n = be32(im + 4), d = (int64_t)be32(im + 8) * be32(im + 12);
    if ((int64_t)be32(lb + 4) != n) die("%s and %s hold different counts", images, labels);
    if ((int64_t)ni < 16 + n * d || (int64_t)nl < 8 + n)
        die("%s or %s is truncated", images, labels);
    out->n = n;
    out->d = d;
    out->rows = 1;
    out->x = xalloc((size_t)(n * d) * sizeof(float));
    out->label = xalloc((size_t)n * sizeof(int32_t));
    for (int64_t i = 0; i < n * d; i++) out->x[i] = (float)im[16 + i] / 255.0f;
    for (int64_t i = 0; i < n; i++) out->label[i] = lb[8 + i];
    free(im);
    free(lb);
}

static void load_csv(const char *path, int64_t d, Data *out) {
    size_t size;
    unsigned char *text = read_file(path, &size);
    int64_t lines = 0;
    for (size_t i = 0; i < size; i++) lines += text[i] == '\n';
    if (size && text[size - 1] != '\n') lines++;
    out->d = d;
    out->rows = 1;
    out->x = xalloc((size_t)(lines * d) * sizeof(float));
    out->label = xalloc((size_t)lines * sizeof(int32_t));
    char *p = (char *)text;
    int64_t n = 0;
    while (*p) {
        if (*p == '\n' || *p == '\r') {
            p++;
            continue;
        }
        char *end;
        for (int64_t c = 0; c <= d; c++) {
            long v = strtol(p, &end, 10);
            if (end == p || v < 0 || v > 255 || (c < d && *end != ','))
                die("%s:%lld: want a label then %lld pixels 0..255, comma-separated", path,
                    (long long)n + 1, (long long)d);
            if (c == 0)
                out->label[n] = (int32_t)v;
            else
                out->x[n * d + c - 1] = (float)v / 255.0f;
            p = end + (c < d);
        }
        if (*end && *end != '\n' && *end != '\r')
            die("%s:%lld: more than %lld fields", path, (long long)n + 1, (long long)d + 1);
        n++;
    }
    out->n = n;
    free(text);
}

static void load_data(const char *path, int64_t d, Data *out) {
    struct stat st;
    const char *comma = strchr(path, ',');
    size_t len = strlen(path);
    if (comma) {
        char *images = strndup(path, (size_t)(comma - path));
        load_idx(images, comma + 1, out);
        free(images);
    } else if (!stat(path, &st) && S_ISDIR(st.st_mode)) {
        size_t n = len + 64;
        char *images = malloc(n), *labels = malloc(n);
        if (!images || !labels) die("out of memory");
        snprintf(images, n, "%s/train-images-idx3-ubyte", path);
        snprintf(labels, n, "%s/train-labels-idx1-ubyte", path);
        if (!stat(images, &st) && !stat(labels, &st)) {
            load_idx(images, labels, out);
        } else {
            snprintf(images, n, "%s/train.csv", path);
            if (stat(images, &st)) die("%s holds neither train-*-ubyte files nor train.csv", path);
            load_csv(images, d, out);
        }
        free(images);
        free(labels);
    } else if (len > 4 && !strcmp(path + len - 4, ".csv")) {
        load_csv(path, d, out);
    } else {
        die("--data %s: want a folder, a .csv file or IMAGES,LABELS", path);
    }
    out->what = path;
}

/* Uniform 0..1 inputs, each labelled by the arg-max of a random linear map of (x - 0.5)
 * over its last `seen` values (all d for an image; the last step of a sequence, which an
 * RNN's last state reads first-hand): learnable, so the loss must fall. */
static void random_data(int64_t n, int64_t d, int64_t seen, int64_t classes, Rng *rng, Data *out) {
    out->n = n;
    out->d = d;
    out->rows = 1;
    out->x = xalloc((size_t)(n * d) * sizeof(float));
    out->label = xalloc((size_t)n * sizeof(int32_t));
    double *teacher = malloc((size_t)(d * classes) * sizeof(double));
    double *score = malloc((size_t)classes * sizeof(double));
    if (!teacher || !score) die("out of memory");
    for (int64_t i = 0; i < d * classes; i++) teacher[i] = rng_normal(rng);
    for (int64_t s = 0; s < n; s++) {
        float *x = out->x + s * d;
        for (int64_t k = 0; k < classes; k++) score[k] = 0;
        for (int64_t i = 0; i < d; i++) {
            x[i] = (float)rng_uniform(rng);
            if (i < d - seen) continue;
            for (int64_t k = 0; k < classes; k++)
                score[k] += (x[i] - 0.5) * teacher[i * classes + k];
        }
        int32_t best = 0;
        for (int64_t k = 1; k < classes; k++)
            if (score[k] > score[best]) best = (int32_t)k;
        out->label[s] = best;
    }
    free(teacher);
    free(score);
    out->what = "random (linear teacher)";
}

/* Windows of t tokens of a stream as inputs, each token's successor as its label, cut
 * without overlap (as text(..., seq = t) does). */
static void token_windows(const int32_t *stream, int64_t len, int64_t t, Data *out) {
    int64_t n = (len - 1) / t;
    if (n < 1) die("%lld tokens are too few for a window of %lld", (long long)len, (long long)t);
    out->n = n;
    out->d = out->rows = t;
    out->x = xalloc((size_t)(n * t) * sizeof(float));
    out->label = xalloc((size_t)(n * t) * sizeof(int32_t));
    for (int64_t i = 0; i < n * t; i++) {
        out->x[i] = (float)stream[i];
        out->label[i] = stream[i + 1];
    }
}

/* A random Markov chain over the vocabulary: each token is followed by one successor of its
 * own 3 times out of 4, by a uniformly random token otherwise, so a character model can
 * learn about three quarters of the next tokens. */
static void random_tokens(int64_t n, int64_t t, int64_t vocab, Rng *rng, Data *out) {
    int64_t len = n * t + 1;
    int32_t *succ = xalloc((size_t)vocab * sizeof(int32_t));
    int32_t *stream = xalloc((size_t)len * sizeof(int32_t));
    for (int64_t v = 0; v < vocab; v++) succ[v] = (int32_t)(rng_next(rng) % (uint64_t)vocab);
    stream[0] = 0;
    for (int64_t i = 1; i < len; i++)
        stream[i] = rng_uniform(rng) < 0.75 ? succ[stream[i - 1]]
                                            : (int32_t)(rng_next(rng) % (uint64_t)vocab);
    token_windows(stream, len, t, out);
    free(succ);
    free(stream);
    out->what = "random tokens (a Markov chain)";
}

/* A text file as bytes, each distinct byte a token (ids in byte order). */
static void load_text(const char *path, int64_t t, int64_t vocab, Data *out) {
    size_t size;
    unsigned char *text = read_file(path, &size);
    int32_t id[256];
    int64_t distinct = 0;
    for (int c = 0; c < 256; c++) id[c] = -1;
    for (size_t i = 0; i < size; i++) id[text[i]] = 0;
    for (int c = 0; c < 256; c++)
        if (id[c] == 0) id[c] = (int32_t)distinct++;
    if (distinct > vocab)
        die("%s has %lld different bytes, more than the model's vocabulary of %lld", path,
            (long long)distinct, (long long)vocab);
    int32_t *stream = xalloc(size * sizeof(int32_t));
    for (size_t i = 0; i < size; i++) stream[i] = id[text[i]];
    token_windows(stream, (int64_t)size, t, out);
    free(stream);
    free(text);
    out->what = path;
}

/* ---- the model ---- */

typedef struct Model {
    const nnrt_model *m;
    nnrt_ctx ctx;
    float *x, *y, *loss, *out; /* the input, target, per-sample loss and output buffers */
    int64_t d, classes;
    int64_t rows;      /* labels a sample: the output is [rows, classes] */
    bool target_ids;   /* the target holds the labels as ids, not one-hot rows */
    int64_t input_ids; /* the input holds token ids 0..input_ids-1; 0: numbers */
    int n_layers;
    int64_t dims[MAX_LAYERS + 1]; /* layer widths: dims[0] = input, dims[n_layers] = classes */
} Model;

static float *tensor_ptr(const Model *md, const nnrt_tensor *t) {
    if (t->varying) return (float *)md->ctx.varying + t->offset * md->ctx.batch_cap;
    return (float *)md->ctx.fixed + t->offset;
}

/* The recurrent layer BENCH_RNN describes and its dense head: the params must be Wx [d, G],
 * Wh [n, G] (G = gates * n) and the head's [n, classes], so that the bound's GEMMs are
 * those of the compiled model. The head is the dense chain of one layer n -> classes. */
static void find_rnn(Model *md) {
    const nnrt_model *m = md->m;
    int64_t g = rnn.gates * rnn.n, want[3][2] = {{rnn.d, g}, {rnn.n, g}, {rnn.n, md->classes}};
    int found = 0;
    for (int32_t i = 0; i < m->n_params; i++) {
        const nnrt_tensor *t = &m->params[i];
        if (t->rank != 2) continue;
        if (found == 3 || t->dims[0] != want[found][0] || t->dims[1] != want[found][1])
            die("param %s [%lld, %lld] is not the recurrent layer BENCH_RNN describes", t->name,
                (long long)t->dims[0], (long long)t->dims[1]);
        found++;
    }
    if (found != 3)
        die("model %s has %d matrices; BENCH_RNN wants 3 (Wx, Wh, head)", m->name, found);
    int64_t per_step = md->input_ids ? 1 : rnn.d;
    if (md->d != rnn.t * per_step || md->rows != (rnn.per_step ? rnn.t : 1))
        die("model %s does not read the sequence BENCH_RNN describes", m->name);
    md->n_layers = 1;
    md->dims[0] = rnn.n;
    md->dims[1] = md->classes;
}

/* The layer widths: the rank-2 params chained from the input to the output (descriptor
 * order breaks ties), so the GEMM bound is derived from the compiled model itself. */
static void find_layers(Model *md) {
    const nnrt_model *m = md->m;
    if (HAS_RNN) {
        find_rnn(md);
        return;
    }
    bool used[256] = {false};
    if (m->n_params > 256) die("too many params");
    md->dims[0] = md->d;
    if (N_CONVS) {
        const ConvSpec *last = &convs[N_CONVS - 1];
        md->dims[0] = last->c_out * (conv_out(last, last->h) / last->pool) *
                      (conv_out(last, last->w) / last->pool);
        if (convs[0].c_in * convs[0].h * convs[0].w != md->d)
            die("the first convolution reads %lld values, the model's input has %lld",
                (long long)(convs[0].c_in * convs[0].h * convs[0].w), (long long)md->d);
    }
    int rank4 = 0;
    for (int32_t i = 0; i < m->n_params; i++) {
        const nnrt_tensor *t = &m->params[i];
        if (t->rank != 4) continue;
        const ConvSpec *c = rank4 < N_CONVS ? &convs[rank4] : NULL;
        if (!c || t->dims[0] != c->c_out || t->dims[1] != c->c_in || t->dims[2] != c->k)
            die("param %s is not the convolution BENCH_CONV describes", t->name);
        rank4++;
    }
    if (rank4 != N_CONVS) die("the model has %d convolutions, BENCH_CONV %d", rank4, N_CONVS);
    md->n_layers = 0;
    for (;;) {
        int found = -1;
        for (int32_t i = 0; i < m->n_params && found < 0; i++)
            if (!used[i] && m->params[i].rank == 2 &&
                m->params[i].dims[0] == md->dims[md->n_layers])
                found = i;
        if (found < 0) break;
        if (md->n_layers == MAX_LAYERS) die("more than %d layers", MAX_LAYERS);
        used[found] = true;
        md->dims[++md->n_layers] = m->params[found].dims[1];
    }
    if (md->n_layers == 0 || md->dims[md->n_layers] != md->classes)
        die("model %s is not a chain of dense layers from %lld inputs to %lld classes", m->name,
            (long long)md->d, (long long)md->classes);
    for (int32_t i = 0; i < m->n_params; i++)
        if (m->params[i].rank == 2 && !used[i])
            die("param %s is not on the chain of dense layers", m->params[i].name);
}

static void init_params(Model *md, Rng *rng) {
    const nnrt_model *m = md->m;
    for (int32_t i = 0; i < m->n_params; i++) {
        const nnrt_tensor *t = &m->params[i];
        double fan_out = t->rank ? (double)t->dims[t->rank - 1] : 1.0, fan_in = 1.0;
        for (int32_t k = 0; k + 1 < t->rank; k++) fan_in *= (double)t->dims[k];
        if (t->rank == 4) { /* [C_out, C_in, k, k]: PyTorch's fans, as runtime/init.c */
            fan_in = (double)(t->dims[1] * t->dims[2] * t->dims[3]);
            fan_out = (double)(t->dims[0] * t->dims[2] * t->dims[3]);
        }
        float *p = tensor_ptr(md, t);
        for (int64_t e = 0; e < t->numel; e++) {
            double v;
            switch (t->init) {
            case NNRT_INIT_ZEROS: v = 0; break;
            case NNRT_INIT_ONES: v = 1; break;
            case NNRT_INIT_CONST: v = t->init_a; break;
            case NNRT_INIT_GLOROT: {
                double r = sqrt(6.0 / (fan_in + fan_out));
                v = -r + 2.0 * r * rng_uniform(rng);
                break;
            }
            case NNRT_INIT_HE: v = sqrt(2.0 / fan_in) * rng_normal(rng); break;
            case NNRT_INIT_NORMAL: v = t->init_a + t->init_b * rng_normal(rng); break;
            case NNRT_INIT_UNIFORM:
                v = t->init_a + (t->init_b - t->init_a) * rng_uniform(rng);
                break;
            default: die("param %s: unknown initialiser %d", t->name, t->init);
            }
            p[e] = (float)v;
        }
    }
}

static void setup_model(Model *md, const nnrt_model *m, int64_t batch) {
    memset(md, 0, sizeof *md);
    md->m = m;
    if (m->abi_version != NNRT_ABI_VERSION)
        die("model ABI %d, bench built for %d", m->abi_version, NNRT_ABI_VERSION);
    if (m->f64) die("model %s is f64; the bench times f32 models", m->name);
    if (m->n_inputs != 1 || m->n_targets != 1)
        die("model %s: want one input and one target", m->name);
    if (!m->sgd_step || !m->forward || !m->grad) die("model %s lacks entry points", m->name);
    md->d = m->inputs[0].numel;
    md->input_ids = m->inputs[0].ids;
    md->classes = m->output.rank ? m->output.dims[m->output.rank - 1] : 1;
    md->rows = m->output.numel / md->classes;
    md->target_ids = m->targets[0].ids > 0 && m->targets[0].numel == md->rows;
    if ((m->targets[0].numel != m->output.numel && !md->target_ids) || m->loss.numel != 1)
        die("model %s: want a target of the output's size or its ids, and a scalar loss", m->name);
    md->ctx.fixed = xalloc((size_t)m->fixed_elems * sizeof(float));
    md->ctx.varying = xalloc((size_t)(m->varying_elems * batch) * sizeof(float));
    md->ctx.batch = md->ctx.batch_cap = batch;
    md->x = tensor_ptr(md, &m->inputs[0]);
    md->y = tensor_ptr(md, &m->targets[0]);
    md->loss = tensor_ptr(md, &m->loss);
    md->out = tensor_ptr(md, &m->output);
    if (!m->inputs[0].varying || !m->targets[0].varying || !m->loss.varying || !m->output.varying)
        die("model %s: inputs, targets, output and loss should vary per sample", m->name);
    find_layers(md);
}

/* Copies samples idx[0..n) into the input and target buffers (rows 0..n): the labels as
 * ids or as one-hot rows, as the target takes them. */
static void load_batch(Model *md, const Data *data, const int64_t *idx, int64_t n) {
    int64_t d = md->d, c = md->classes, rows = md->rows;
    for (int64_t b = 0; b < n; b++) {
        memcpy(md->x + b * d, data->x + idx[b] * d, (size_t)d * sizeof(float));
        const int32_t *label = data->label + idx[b] * rows;
        if (md->target_ids) {
            for (int64_t r = 0; r < rows; r++) md->y[b * rows + r] = (float)label[r];
            continue;
        }
        float *y = md->y + b * rows * c;
        memset(y, 0, (size_t)(rows * c) * sizeof(float));
        for (int64_t r = 0; r < rows; r++) y[r * c + label[r]] = 1.0f;
    }
}

static double batch_loss(const Model *md, int64_t n) {
    double s = 0;
    for (int64_t b = 0; b < n; b++) s += md->loss[b];
    return s / (double)n;
}

/* Mean loss and accuracy over samples first..first+n of the data, with forward(). */
static void evaluate(Model *md, const Data *data, int64_t first, int64_t n, double *loss,
                     double *acc) {
    int64_t cap = md->ctx.batch_cap, c = md->classes, idx[1024];
    int64_t chunk = cap < 1024 ? cap : 1024;
    double sum = 0;
    int64_t right = 0;
    for (int64_t s = 0; s < n; s += chunk) {
        int64_t k = n - s < chunk ? n - s : chunk;
        for (int64_t b = 0; b < k; b++) idx[b] = first + s + b;
        load_batch(md, data, idx, k);
        md->ctx.batch = k;
        md->m->forward(&md->ctx);
        for (int64_t b = 0; b < k; b++) {
            sum += md->loss[b];
            for (int64_t r = 0; r < md->rows; r++) {
                const float *z = md->out + (b * md->rows + r) * c;
                int64_t best = 0;
                for (int64_t j = 1; j < c; j++)
                    if (z[j] > z[best]) best = j;
                right += best == data->label[(first + s + b) * md->rows + r];
            }
        }
    }
    md->ctx.batch = cap;
    *loss = sum / (double)n;
    *acc = (double)right / (double)(n * md->rows);
}

/* A shuffled walk over the training rows, one batch at a time. */
typedef struct Epoch {
    int64_t *perm, n, pos;
    Rng *rng;
} Epoch;

static const int64_t *next_batch(Epoch *e, int64_t b) {
    if (e->pos + b > e->n) {
        shuffle(e->perm, e->n, e->rng);
        e->pos = 0;
    }
    e->pos += b;
    return e->perm + e->pos - b;
}

/* ---- timed loops: each returns seconds ---- */

static double time_steps(Model *md, int64_t k, double lr) {
    double t0 = now();
    for (int64_t i = 0; i < k; i++) md->m->sgd_step(&md->ctx, lr, 0.0);
    return now() - t0;
}

static double time_steps_copy(Model *md, const Data *data, Epoch *ep, int64_t k, double lr) {
    int64_t b = md->ctx.batch_cap;
    double t0 = now();
    for (int64_t i = 0; i < k; i++) {
        load_batch(md, data, next_batch(ep, b), b);
        md->m->sgd_step(&md->ctx, lr, 0.0);
    }
    return now() - t0;
}

static double time_copy(Model *md, const Data *data, Epoch *ep, int64_t k) {
    int64_t b = md->ctx.batch_cap;
    double t0 = now();
    for (int64_t i = 0; i < k; i++) load_batch(md, data, next_batch(ep, b), b);
    return now() - t0;
}

static double time_entry(Model *md, void (*fn)(nnrt_ctx *), int64_t k) {
    double t0 = now();
    for (int64_t i = 0; i < k; i++) fn(&md->ctx);
    return now() - t0;
}

/* ---- the GEMM bound ---- */

/* The matrix products of one step of a dense chain d0 -> d1 -> ... -> dL over a batch B,
 * row-major as the model stores them:
 *   forward   Z_l[B,d_l] = A_{l-1}[B,d_{l-1}] @ W_l[d_{l-1},d_l]        (NN, beta 0)
 *   backward  dA_{l-1}   = dZ_l @ W_l^T, for l > 1 (none for the input) (NT, beta 0)
 *             W_l       += -lr/B * A_{l-1}^T @ dZ_l                     (TN, beta 1: the
 *                          gradient GEMM with the SGD update fused in)
 * Each operand has its own buffer, as in the model's arenas. */
typedef struct Gemms {
    int n;
    int64_t batch, dims[MAX_LAYERS + 1];
    int64_t rows; /* of the dense chain's A: the batch, or batch * t for a per-step head */
    float *a[MAX_LAYERS + 1], *da[MAX_LAYERS + 1], *w[MAX_LAYERS + 1], *z[MAX_LAYERS + 1],
        *dz[MAX_LAYERS + 1];
    float scale;
    /* the convolutions: im2col matrix [K, B*P], weights [C_out, K], result [C_out, B*P] */
    float *cols[MAX_LAYERS], *dcols[MAX_LAYERS], *cw[MAX_LAYERS], *cy[MAX_LAYERS], *dcy[MAX_LAYERS];
    /* the recurrent layer: the sequence X [B*t, d], its projection U [B*t, G], and per step
     * the state H_s [B, n], the gates' pre-activations A_s [B, G] and their gradients */
    float *rx, *rwx, *ru, *rdu, *rwh, *rh, *ra, *rda, *rdh;
    /* packed: the steps' products as the model runs them, Wh packed once a pass into rwh_packed
     * (runtime/packed_gemm.h); otherwise cblas_sgemm, the bound's figure */
    bool packed;
    float *rwh_packed;
} Gemms;

static float *random_buf(int64_t n, double lo, double hi, Rng *rng) {
    float *p = xalloc((size_t)n * sizeof(float));
    for (int64_t i = 0; i < n; i++) p[i] = (float)(lo + (hi - lo) * rng_uniform(rng));
    return p;
}

/* A convolution's GEMM dimensions over the batch: M = C_out, K = C_in*k*k, N = B*P. */
static void conv_dims(const ConvSpec *c, int64_t batch, int *M, int *K, int *N) {
    *M = (int)c->c_out;
    *K = (int)(c->c_in * c->k * c->k);
    *N = (int)(batch * conv_out(c, c->h) * conv_out(c, c->w));
}

static void setup_gemms(Gemms *g, const Model *md, double lr, Rng *rng) {
    memset(g, 0, sizeof *g);
    for (int l = 0; l < N_CONVS; l++) {
        int M, K, N;
        conv_dims(&convs[l], md->ctx.batch_cap, &M, &K, &N);
        g->cols[l] = random_buf((int64_t)K * N, 0.0, 1.0, rng);
        g->dcols[l] = random_buf((int64_t)K * N, 0.0, 0.0, rng);
        g->cw[l] = random_buf((int64_t)M * K, -0.1, 0.1, rng);
        g->cy[l] = random_buf((int64_t)M * N, 0.0, 0.0, rng);
        g->dcy[l] = random_buf((int64_t)M * N, -0.01, 0.01, rng);
    }
    g->n = md->n_layers;
    g->batch = md->ctx.batch_cap;
    memcpy(g->dims, md->dims, sizeof g->dims);
    g->scale = (float)(-lr / (double)g->batch);
    int64_t b = g->batch * (HAS_RNN && rnn.per_step ? rnn.t : 1);
    g->rows = b;
    if (HAS_RNN) {
        int64_t bt = g->batch * rnn.t, gn = rnn.gates * rnn.n;
        double r = sqrt(6.0 / (double)(rnn.n + gn));
        g->rx = random_buf(bt * rnn.d, 0.0, 1.0, rng);
        g->rwx = random_buf(rnn.d * gn, -r, r, rng);
        g->ru = random_buf(bt * gn, 0.0, 0.0, rng);
        g->rdu = random_buf(bt * gn, -0.01, 0.01, rng);
        g->rwh = random_buf(rnn.n * gn, -r, r, rng);
        g->rh = random_buf(bt * rnn.n, -1.0, 1.0, rng);
        g->ra = random_buf(bt * gn, 0.0, 0.0, rng);
        g->rda = random_buf(bt * gn, -0.01, 0.01, rng);
        g->rdh = random_buf(bt * rnn.n, 0.0, 0.0, rng);
        g->rwh_packed = random_buf(PACKED_ELEMS(rnn.n, gn), 0.0, 0.0, rng);
    }
    for (int l = 0; l <= g->n; l++) {
        g->a[l] = random_buf(b * g->dims[l], 0.0, 1.0, rng);
        if (l == 0) continue;
        double r = sqrt(6.0 / (double)(g->dims[l - 1] + g->dims[l]));
        g->w[l] = random_buf(g->dims[l - 1] * g->dims[l], -r, r, rng);
        g->z[l] = random_buf(b * g->dims[l], 0.0, 0.0, rng);
        g->dz[l] = random_buf(b * g->dims[l], -0.01, 0.01, rng);
        if (l > 1 || HAS_RNN) g->da[l - 1] = random_buf(b * g->dims[l - 1], 0.0, 0.0, rng);
    }
}

/* A convolution as an im2col implementation issues it, one GEMM per pass over the batch:
 *   forward   Y[C_out, B*P] = W[C_out, K] @ cols[K, B*P]                 (NN, beta 0)
 *   backward  dcols[K, B*P] = W^T @ dY, except for the input layer       (TN, beta 0)
 *             W += -lr/B * dY @ cols^T                                   (NT, beta 1) */
static void conv_forward(const Gemms *g, int l) {
    int M, K, N;
    conv_dims(&convs[l], g->batch, &M, &K, &N);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, 1.0f, g->cw[l], K, g->cols[l],
                N, 0.0f, g->cy[l], N);
}

static void conv_backward(const Gemms *g, int l) {
    int M, K, N;
    conv_dims(&convs[l], g->batch, &M, &K, &N);
    if (l > 0)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, K, N, M, 1.0f, g->cw[l], K, g->dcy[l],
                    N, 0.0f, g->dcols[l], N);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, K, N, g->scale, g->dcy[l], N,
                g->cols[l], N, 1.0f, g->cw[l], K);
}

/* The recurrent layer's products, as its unrolled step issues them (h_0 = 0, so step 0 has
 * no recurrent product):
 *   forward   U[B*t, G] = X[B*t, d] @ Wx                  (NN: the input projection, once)
 *             A_s[B, G] = H_(s-1)[B, n] @ Wh, s = 1..t-1   (NN, one a step)
 *   backward  dH_(s-1)  = dA_s @ Wh^T                      (NT, one a step)
 *             Wh += -lr/B * H_(s-1)^T @ dA_s               (TN, beta 1, one a step)
 *             Wx += -lr/B * X^T @ dU                       (TN, beta 1, over all steps) */
/* C[M, N] = A[M, K] @ op(Wh) (beta 0), the product of a step: cblas_sgemm, or with g->packed
 * the packed product on Wh packed at the pass's first step (first). */
static void step_product(const Gemms *g, bool first, int M, int N, int K, const float *a, bool tb,
                         float *c) {
    int ldw = (int)(rnn.gates * rnn.n);
#if HAS_RNN
    if (g->packed) {
        if (first) nnrt_sgemm_pack(K, N, g->rwh, ldw, tb, g->rwh_packed);
        nnrt_sgemm_packed(M, N, K, 1.0f, a, K, g->rwh, ldw, tb, g->rwh_packed, 0.0f, c, N);
        return;
    }
#else
    (void)first;
#endif
    cblas_sgemm(CblasRowMajor, CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N, K, 1.0f, a, K,
                g->rwh, ldw, 0.0f, c, N);
}

static void rnn_forward(const Gemms *g) {
    int b = (int)g->batch, n = (int)rnn.n, gn = (int)(rnn.gates * rnn.n), d = (int)rnn.d;
    nnrt_sgemm_nn(b * rnn.t, gn, d, 1.0f, g->rx, d, g->rwx, gn, 0.0f, g->ru, gn);
    for (int64_t s = 1; s < rnn.t; s++)
        step_product(g, s == 1, b, gn, n, g->rh + (s - 1) * b * n, false, g->ra + s * b * gn);
}

static void rnn_backward(const Gemms *g) {
    int b = (int)g->batch, n = (int)rnn.n, gn = (int)(rnn.gates * rnn.n), d = (int)rnn.d;
    for (int64_t s = rnn.t - 1; s >= 1; s--) {
        const float *da = g->rda + s * b * gn, *h = g->rh + (s - 1) * b * n;
        step_product(g, s == rnn.t - 1, b, n, gn, da, true, g->rdh + (s - 1) * b * n);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, n, gn, b, g->scale, h, n, da, gn, 1.0f,
                    g->rwh, gn);
    }
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, d, gn, b * (int)rnn.t, g->scale, g->rx, d,
                g->rdu, gn, 1.0f, g->rwx, gn);
}

static void gemms_forward(const Gemms *g) {
    for (int l = 0; l < N_CONVS; l++) conv_forward(g, l);
    if (HAS_RNN) rnn_forward(g);
    int b = (int)g->rows;
    for (int l = 1; l <= g->n; l++) {
        int k = (int)g->dims[l - 1], n = (int)g->dims[l];
        nnrt_sgemm_nn(b, n, k, 1.0f, g->a[l - 1], k, g->w[l], n, 0.0f, g->z[l], n);
    }
}

static void gemms_backward(const Gemms *g) {
    int b = (int)g->rows;
    for (int l = g->n; l >= 1; l--) {
        int k = (int)g->dims[l - 1], n = (int)g->dims[l];
        if (l > 1 || HAS_RNN) /* the head's dH goes into the recurrent layer */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, b, k, n, 1.0f, g->dz[l], n,
                        g->w[l], n, 0.0f, g->da[l - 1], k);
        if (l == 1 && !HAS_RNN && N_CONVS == 0) /* A is the data: the model's own call */
            nnrt_sgemm_tn_again(k, n, b, g->scale, g->a[0], k, g->dz[1], n, 1.0f, g->w[1], n);
        else
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, k, n, b, g->scale, g->a[l - 1], k,
                        g->dz[l], n, 1.0f, g->w[l], n);
    }
    if (HAS_RNN) rnn_backward(g);
    for (int l = N_CONVS - 1; l >= 0; l--) conv_backward(g, l);
}

static void free_gemms(Gemms *g) {
    for (int l = 0; l < N_CONVS; l++) {
        free(g->cols[l]);
        free(g->dcols[l]);
        free(g->cw[l]);
        free(g->cy[l]);
        free(g->dcy[l]);
    }
    float *rnn_bufs[] = {g->rx, g->rwx, g->ru,  g->rdu, g->rwh,
                         g->rh, g->ra,  g->rda, g->rdh, g->rwh_packed};
    for (size_t i = 0; i < sizeof rnn_bufs / sizeof rnn_bufs[0]; i++) free(rnn_bufs[i]);
    for (int l = 0; l <= g->n; l++) {
        free(g->a[l]);
        free(g->da[l]);
        free(g->w[l]);
        free(g->z[l]);
        free(g->dz[l]);
    }
}

/* The columns of a [rows, cols] batch holding a value other than 0 in some row. */
static int64_t nonzero_columns(const float *x, int64_t rows, int64_t cols) {
    int64_t n = 0;
    for (int64_t j = 0; j < cols; j++) {
        bool any = false;
        for (int64_t i = 0; i < rows && !any; i++) any = x[i * cols + j] != 0;
        n += any;
    }
    return n;
}

/* Into x: of BOUND_BATCHES batches of the epoch's order, the one whose count of nonzero
 * columns is the median, so that the bound's products skip as much as a typical step's.
 * The batches are read from the order as it stands, not drawn: the steps timed after train
 * on the batches they would have trained on. */
static void median_zeros_batch(Model *md, const Data *data, const Epoch *ep, int64_t batch,
                               float *x, int64_t rows, int64_t cols) {
    int64_t count[BOUND_BATCHES], batches = ep->n / batch;
    int order[BOUND_BATCHES];
    for (int b = 0; b < BOUND_BATCHES; b++) {
        load_batch(md, data, ep->perm + (b % batches) * batch, batch);
        count[b] = nonzero_columns(md->x, rows, cols);
        order[b] = b;
    }
    for (int i = 1; i < BOUND_BATCHES; i++) /* by count: an insertion sort of a few */
        for (int j = i; j > 0 && count[order[j]] < count[order[j - 1]]; j--) {
            int t = order[j];
            order[j] = order[j - 1];
            order[j - 1] = t;
        }
    load_batch(md, data, ep->perm + (order[BOUND_BATCHES / 2] % batches) * batch, batch);
    memcpy(x, md->x, (size_t)(rows * cols) * sizeof(float));
}

static double time_gemms(const Gemms *g, int64_t k, bool forward_only) {
    double t0 = now();
    for (int64_t i = 0; i < k; i++) {
        gemms_forward(g);
        if (!forward_only) gemms_backward(g);
    }
    return now() - t0;
}

/* The step and the bound's products, one call of each in turn on the same batch (the
 * bound's, so that both skip the same zero columns): medians of k calls each, in seconds. The
 * timed runs above each take a batch of their own and drift with the machine's clock between
 * runs (±2% on a VM); one call of each in turn leaves both to the same moment, and the step's
 * work beyond its products (bias, activations, loss, their gradients) shows to a tenth of a
 * microsecond. For a dense chain, whose first product reads the data; the caller restores the
 * params, which the steps move. */
static void step_and_gemms_in_turn(Model *md, const Gemms *g, double lr, int64_t k, double *step,
                                   double *gemms) {
    double *ts = xalloc((size_t)k * sizeof *ts), *tg = xalloc((size_t)k * sizeof *tg);
    memcpy(md->x, g->a[0], (size_t)(g->rows * g->dims[0]) * sizeof(float));
    for (int64_t i = 0; i < k; i++) {
        double t0 = now();
        md->m->sgd_step(&md->ctx, lr, 0.0);
        double t1 = now();
        gemms_forward(g);
        gemms_backward(g);
        ts[i] = t1 - t0;
        tg[i] = now() - t1;
    }
    qsort(ts, (size_t)k, sizeof *ts, cmp_double);
    qsort(tg, (size_t)k, sizeof *tg, cmp_double);
    *step = ts[k / 2];
    *gemms = tg[k / 2];
    free(ts);
    free(tg);
}

static double gemm_flops(const Gemms *g) {
    double f = 0;
    for (int l = 1; l <= g->n; l++)
        f += 2.0 * (double)g->rows * (double)g->dims[l - 1] * (double)g->dims[l] *
             (l > 1 || HAS_RNN ? 3 : 2);
    if (HAS_RNN) {
        double b = (double)g->batch, gn = (double)(rnn.gates * rnn.n);
        f += 2.0 * b * (double)rnn.t * (double)rnn.d * gn * 2;
        f += 2.0 * b * (double)(rnn.t - 1) * (double)rnn.n * gn * 3;
    }
    for (int l = 0; l < N_CONVS; l++) {
        int M, K, N;
        conv_dims(&convs[l], g->batch, &M, &K, &N);
        f += 2.0 * M * K * (double)N * (l > 0 ? 3 : 2);
    }
    return f;
}

/* ---- main ---- */

int main(int argc, char **argv) {
    rt_choose_blas_kernels(argv); /* may execute the program again, with better kernels */
    const nnrt_model *m = &nnrt_model_desc;
    Options o;
    parse_args(argc, argv, m, &o);
    openblas_set_num_threads(o.threads);

    Model md;
    setup_model(&md, m, o.batch);
    Rng rng = {0x9E3779B97F4A7C15ULL ^ (o.seed * 0xD1B54A32D192ED03ULL + 1)};
    init_params(&md, &rng);

    Data data;
    if (md.input_ids && o.data) {
        load_text(o.data, md.d, md.input_ids, &data);
    } else if (md.input_ids) {
        random_tokens(8192 + EVAL_SAMPLES, md.d, md.input_ids, &rng, &data);
    } else if (o.data) {
        load_data(o.data, md.d, &data);
        if (data.d != md.d)
            die("%s: samples of %lld values, model %s wants %lld", o.data, (long long)data.d,
                m->name, (long long)md.d);
    } else {
        random_data(8192 + EVAL_SAMPLES, md.d, HAS_RNN ? rnn.d : md.d, md.classes, &rng, &data);
    }
    if (data.rows != md.rows)
        die("%s: %lld labels a sample, model %s wants %lld", data.what, (long long)data.rows,
            m->name, (long long)md.rows);
    for (int64_t i = 0; i < data.n * data.rows; i++)
        if (data.label[i] < 0 || data.label[i] >= md.classes)
            die("%s: sample %lld has label %d, model %s has %lld classes", data.what,
                (long long)(i / data.rows) + 1, data.label[i], m->name, (long long)md.classes);
    /* The last EVAL_SAMPLES (or an eighth) are held out for the learning check. */
    int64_t n_eval = data.n / 8 < EVAL_SAMPLES ? data.n / 8 : EVAL_SAMPLES;
    int64_t n_train = data.n - n_eval;
    if (n_eval < 1 || n_train < o.batch)
        die("%lld samples are too few for batch %lld", (long long)data.n, (long long)o.batch);

    char shape[256];
    int pos = 0;
    for (int l = 0; l < N_CONVS; l++)
        pos += snprintf(shape + pos, sizeof shape - (size_t)pos, "conv%lldx%lldx%lld-",
                        (long long)convs[l].c_out, (long long)convs[l].k, (long long)convs[l].k);
    if (HAS_RNN)
        pos += snprintf(shape, sizeof shape, "%s%lldx%lld-", rnn.gates == 4 ? "lstm" : "gru",
                        (long long)rnn.t, (long long)rnn.d);
    for (int l = 0; l <= md.n_layers; l++)
        pos += snprintf(shape + pos, sizeof shape - (size_t)pos, "%s%lld", l ? "-" : "",
                        (long long)md.dims[l]);
    char label[32];
    snprintf(label, sizeof label, "%s", m->name);
    for (char *c = label; *c; c++)
        if (*c >= 'a' && *c <= 'z') *c = (char)(*c - 'a' + 'A');

    printf("%s %s b%lld: lr %g, momentum 0, %d thread%s, OpenBLAS %s (%s)\n", label, shape,
           (long long)o.batch, o.lr, o.threads, o.threads == 1 ? "" : "s", openblas_get_corename(),
           openblas_get_config());
    printf("  data: %s, %lld samples (%lld held out)\n", data.what, (long long)data.n,
           (long long)n_eval);
    fflush(stdout);

    double loss0, acc0;
    evaluate(&md, &data, n_train, n_eval, &loss0, &acc0);

    Epoch ep = {xalloc((size_t)n_train * sizeof(int64_t)), n_train, n_train, &rng};
    for (int64_t i = 0; i < n_train; i++) ep.perm[i] = i;

    /* Warm up (training on the data) and choose K. */
    int64_t k = o.steps;
    if (k) {
        time_steps_copy(&md, &data, &ep, k, o.lr);
    } else {
        double spent = 0;
        int64_t done = 0;
        for (int64_t n = 1; spent < 0.2; n *= 2) {
            spent += time_steps_copy(&md, &data, &ep, n, o.lr);
            done += n;
        }
        k = (int64_t)ceil(o.seconds / (spent / (double)done));
        if (k < 5) k = 5;
    }
    double train_loss_warm = batch_loss(&md, o.batch);

    Gemms g;
    setup_gemms(&g, &md, o.lr, &rng);
    /* The first layer's products skip the zero columns of their data (runtime/in_place_gemm.h):
     * the bound multiplies a batch of the data too, one with a typical count of them. */
    if (!HAS_RNN && N_CONVS == 0)
        median_zeros_batch(&md, &data, &ep, o.batch, g.a[0], g.rows, g.dims[0]);
    time_gemms(&g, k > 20 ? 20 : k, false);

    size_t fixed_bytes = (size_t)m->fixed_elems * sizeof(float);
    float *saved = xalloc(fixed_bytes);
    int r_n = o.repeats;
    double t_step[MAX_REPEATS], t_copy[MAX_REPEATS], t_gemm[MAX_REPEATS];
    double fixed_loss0 = 0, fixed_loss1 = 0;
    double wall0 = now(), cpu0 = cpu_now();
    long preempt0 = preemptions();
    for (int r = 0; r < r_n; r++) {
        /* step only: one batch already in the buffers; the params are restored after, so
         * that overfitting one batch does not leak into the rest of the run */
        memcpy(saved, md.ctx.fixed, fixed_bytes);
        load_batch(&md, &data, next_batch(&ep, o.batch), o.batch);
        md.m->forward(&md.ctx);
        if (r == 0) fixed_loss0 = batch_loss(&md, o.batch);
        t_step[r] = time_steps(&md, k, o.lr);
        if (r == 0) fixed_loss1 = batch_loss(&md, o.batch);
        memcpy(md.ctx.fixed, saved, fixed_bytes);

        t_copy[r] = time_steps_copy(&md, &data, &ep, k, o.lr);
        t_gemm[r] = time_gemms(&g, k, false);
    }
    double timed = now() - wall0, cpu_share = (cpu_now() - cpu0) / timed;
    long preempted = preemptions() - preempt0;
    double train_loss_end = batch_loss(&md, o.batch);
    double loss1, acc1;
    evaluate(&md, &data, n_train, n_eval, &loss1, &acc1);

    double b = (double)o.batch;
    double s_step = b * (double)k / median(t_step, r_n);
    double s_copy = b * (double)k / median(t_copy, r_n);
    double s_gemm = b * (double)k / median(t_gemm, r_n);
    /* a character model counts tokens: sequences/s times the steps of a sequence */
    double per = HAS_RNN && rnn.per_step ? (double)rnn.t : 1.0;
    const char *unit = per > 1 ? "tokens" : "samples";
    char h1[32], h2[32], h3[32];
    printf("%s %s b%lld: " BENCH_WHAT " %s %s/s  gemm bound %s %s/s  ratio %.3f  (median of %d, "
           "%lld steps each)\n",
           label, shape, (long long)o.batch, human(s_step * per, h1, sizeof h1), unit,
           human(s_gemm * per, h2, sizeof h2), unit, s_step / s_gemm, r_n, (long long)k);
    printf("  with batch copy: %s %s/s (ratio %.3f)   step %.1f us, gemms %.1f us "
           "(%.1f GFLOP/s)\n",
           human(s_copy * per, h3, sizeof h3), unit, s_copy / s_gemm, 1e6 * b / s_step,
           1e6 * b / s_gemm, gemm_flops(&g) * s_gemm / b / 1e9);

    /* With one thread the process should have had a whole core: when it did not, other
     * work shared the machine and the figures are low or noisy. */
    if (o.threads == 1)
        printf("  timing: %.0f%% of a core while timed, %ld preemptions%s\n", 100 * cpu_share,
               preempted,
               cpu_share < 0.95 && timed > 0.1 ? "  (the machine is busy: figures are low or noisy)"
                                               : "");

    if (o.detail) {
        double tf[MAX_REPEATS], tg[MAX_REPEATS], tc[MAX_REPEATS], tgf[MAX_REPEATS];
        double tp[MAX_REPEATS], tpf[MAX_REPEATS];
        Gemms packed = g;
        packed.packed = true;
        memcpy(saved, md.ctx.fixed, fixed_bytes);
        for (int r = 0; r < r_n; r++) {
            tf[r] = time_entry(&md, m->forward, k);
            tg[r] = time_entry(&md, m->grad, k);
            tc[r] = time_copy(&md, &data, &ep, k);
            tgf[r] = time_gemms(&g, k, true);
            tp[r] = HAS_RNN ? time_gemms(&packed, k, false) : 0;
            tpf[r] = HAS_RNN ? time_gemms(&packed, k, true) : 0;
        }
        memcpy(md.ctx.fixed, saved, fixed_bytes);
        double us = 1e6 / (double)k;
        double step = 1e6 * b / s_step, gemm = 1e6 * b / s_gemm;
        double fwd = median(tf, r_n) * us, gfwd = median(tgf, r_n) * us;
        printf("  per step (us): forward %.1f  grad %.1f  sgd_step %.1f  batch copy %.1f\n", fwd,
               median(tg, r_n) * us, step, median(tc, r_n) * us);
        printf("  gemms (us):    forward %.1f  backward+update %.1f  all %.1f\n", gfwd, gemm - gfwd,
               gemm);
        /* Below 0 where the step beats the GEMMs the bound counts (W4's direct convolutions). */
        printf("  step - gemms:  forward %+.1f  backward+update %+.1f  step %+.1f us\n", fwd - gfwd,
               step - fwd - (gemm - gfwd), step - gemm);
        if (!HAS_RNN && N_CONVS == 0) {
            double one_step, one_gemms;
            step_and_gemms_in_turn(&md, &g, o.lr, k, &one_step, &one_gemms);
            memcpy(md.ctx.fixed, saved, fixed_bytes);
            printf("  in turn, on the bound's batch (medians of %lld each): step %.2f us, gemms "
                   "%.2f us, step - gemms %+.2f us\n",
                   (long long)k, 1e6 * one_step, 1e6 * one_gemms, 1e6 * (one_step - one_gemms));
        }
        if (HAS_RNN) { /* not the bound: the same GEMMs, the steps' products as the model runs them
                        */
            double pf = median(tpf, r_n) * us, pall = median(tp, r_n) * us;
            printf("  gemms, the steps' products on Wh packed (us): forward %.1f  "
                   "backward+update %.1f  all %.1f (%s)\n",
                   pf, pall - pf, pall,
                   (const char *[]){"OpenBLAS", "AVX2 kernel", "AVX-512 kernel"}[PACKED_PATH()]);
        }
    }

    /* One batch stepped k times must lose loss, unless the warm-up fitted it already: a loss
     * below 1e-4 of the held-out start then moves by rounding alone (W3's ~1e-8 went up as
     * often as down). */
    double fitted = 1e-4 * loss0;
    bool fixed_ok = fixed_loss1 < fixed_loss0 || (fixed_loss0 < fitted && fixed_loss1 < fitted);
    bool ok = isfinite(loss1) && isfinite(train_loss_end) && loss1 < loss0 &&
              isfinite(fixed_loss1) && fixed_ok;
    printf("  learning: held-out loss %.4f -> %.4f, accuracy %.1f%% -> %.1f%%; "
           "last batch loss %.4g -> %.4g; one batch stepped %lld times %.4g -> %.4g  %s\n",
           loss0, loss1, 100 * acc0, 100 * acc1, train_loss_warm, train_loss_end, (long long)k,
           fixed_loss0, fixed_loss1, ok ? "[ok]" : "[FAILED: the step does not train]");
    fflush(stdout);

    free_gemms(&g);
    free(saved);
    free(ep.perm);
    free(data.x);
    free(data.label);
    free(md.ctx.fixed);
    free(md.ctx.varying);
    return ok ? 0 : 1;
}
