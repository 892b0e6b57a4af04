/* fuzz_idx.c: the IDX readers (runtime/idx.c), images then labels, as --data
 * IMAGES,LABELS reads them, and the sniffing that predict does.
 *
 * Input: a 4-byte prefix, then the images file, then the labels file.
 *   byte 0    bit 0: f64 (else f32); bit 1: labels are class indexes 0..9 stored one-hot
 *             (else one value each)
 *   byte 1    the values per image the model's input wants (0 means 4)
 *   bytes 2-3 the images file's length, little-endian; the labels file is the rest */
#include "fuzz.h"

#include <stdlib.h>

#include "idx.h"
#include "util.h"

typedef struct Parse {
    const char *images, *labels;
    size_t images_len, labels_len;
    int f64;
    rt_dataset data;
} Parse;

static void parse(void *arg) {
    Parse *p = arg;
    rt_idx_sniff(p->images, p->images_len);
    rt_idx_parse_images("images.idx", p->images, p->images_len, &p->data);
    /* The bytes as they are (the runtime never rescales data): every value in 0..255. */
    int64_t n = p->data.rows * p->data.input_elems;
    for (int64_t i = 0; i < n; i++) {
        double v = rt_input_value(&p->data, i, p->f64);
        if (!(v >= 0 && v <= 255)) abort();
    }
    rt_idx_parse_labels("labels.idx", p->labels, p->labels_len, "images.idx", p->f64, &p->data);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 4) return 0;
    size_t images_len = (size_t)data[2] | (size_t)data[3] << 8;
    if (images_len > size - 4) images_len = size - 4;
    Parse p = {.f64 = data[0] & 1, .images_len = images_len, .labels_len = size - 4 - images_len};
    p.data.input_elems = data[1] ? data[1] : 4;
    p.data.target_elems = (data[0] & 2) ? 10 : 1;
    char *images = fuzz_copy(data + 4, p.images_len);
    char *labels = fuzz_copy(data + 4 + images_len, p.labels_len);
    p.images = images;
    p.labels = labels;
    fuzz_rt_call(parse, &p);
    rt_free_all();
    free(images);
    free(labels);
    return 0;
}
