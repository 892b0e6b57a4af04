/* idx.c: MNIST's IDX files. The header is checked against the file size before any data
 * byte is read, so a truncated or lying header is an error, never a read past the end. */
#include "idx.h"

#include <string.h>

#include "util.h"

#define IDX_TYPE_U8  0x08
#define IDX_MAX_DIMS 8

typedef struct idx_header {
    int ndims;
    uint64_t dims[IDX_MAX_DIMS];
    uint64_t count;     /* product of dims */
    size_t data_offset; /* bytes before the data */
} idx_header;

int rt_idx_sniff(const char *bytes, size_t len) {
    return len >= 4 && rt_starts_with(bytes, len, RT_IDX_MAGIC, 3) == 1;
}

static uint32_t read_u32_be(const unsigned char *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/* The magic, the type and the dimensions; 0 when the bytes so far do not hold them all. */
static int read_header(const char *path, const char *bytes, size_t len, idx_header *h) {
    const unsigned char *u = (const unsigned char *)bytes;
    memset(h, 0, sizeof *h);
    if (len < 4) return 0;
    if (u[0] != 0 || u[1] != 0)
        rt_byte_error(path, 0, "not an IDX file (it starts with 0x%02x%02x, not 0x0000)", u[0],
                      u[1]);
    if (u[2] != IDX_TYPE_U8)
        rt_byte_error(path, 2,
                      "IDX element type 0x%02x is not supported (only unsigned bytes, 0x08)", u[2]);
    h->ndims = u[3];
    if (h->ndims < 1 || h->ndims > IDX_MAX_DIMS)
        rt_byte_error(path, 3, "IDX dimension count %d is not in 1..%d", h->ndims, IDX_MAX_DIMS);
    h->data_offset = 4 + 4 * (size_t)h->ndims;
    if (len < h->data_offset) return 0;
    h->count = 1;
    for (int i = 0; i < h->ndims; i++) {
        h->dims[i] = read_u32_be(u + 4 + 4 * i);
        /* u32 dims times at most 7 more u32 dims can overflow: check before multiplying */
        if (h->dims[i] != 0 && h->count > UINT64_MAX / h->dims[i])
            rt_byte_error(path, 4 + 4 * (uint64_t)i, "IDX dimensions are too large");
        h->count *= h->dims[i];
    }
    return 1;
}

static idx_header parse_header(const char *path, const char *bytes, size_t len) {
    idx_header h;
    if (len < 4) rt_byte_error(path, 0, "not an IDX file: %zu bytes, shorter than the header", len);
    if (!read_header(path, bytes, len, &h))
        rt_byte_error(path, len,
                      "truncated IDX header: %d dimensions need %zu header bytes, the file has %zu",
                      h.ndims, h.data_offset, len);
    size_t have = len - h.data_offset;
    if (h.count > have)
        rt_byte_error(path, len,
                      "truncated IDX file: the header promises %llu data bytes, the file has %zu",
                      (unsigned long long)h.count, have);
    if (h.count < have)
        rt_byte_error(path, h.data_offset + h.count,
                      "%zu bytes after the %llu data bytes the header promises",
                      have - (size_t)h.count, (unsigned long long)h.count);
    return h;
}

void rt_idx_check_prefix(const char *path, const char *bytes, size_t len) {
    idx_header h;
    if (!read_header(path, bytes, len, &h)) return;
    if (h.count > UINT64_MAX - h.data_offset)
        rt_byte_error(path, 4, "IDX dimensions are too large");
    uint64_t size = h.data_offset + h.count;
    if (len > size)
        rt_byte_error(path, size, "the data goes on after the %llu data bytes the header promises",
                      (unsigned long long)h.count);
}

void rt_idx_parse_images(const char *path, const char *bytes, size_t len, rt_dataset *out) {
    idx_header h = parse_header(path, bytes, len);
    if (h.ndims < 2)
        rt_byte_error(path, 3,
                      "IDX images need 2 or more dimensions (samples, then values), found %d",
                      h.ndims);
    if (h.dims[0] == 0) rt_byte_error(path, 4, "the IDX file holds no samples");
    uint64_t per_sample = h.count / h.dims[0];
    if (per_sample != (uint64_t)out->input_elems)
        rt_byte_error(path, 8, "each IDX sample has %llu values, the model's input wants %lld",
                      (unsigned long long)per_sample, (long long)out->input_elems);
    const unsigned char *data = (const unsigned char *)bytes + h.data_offset;
    out->rows = (int64_t)h.dims[0];
    /* The bytes as they are: a quarter (f32) or an eighth (f64) of the memory, and of what
     * gathering a batch reads; model.c converts them as it gathers (0..255, exactly). */
    out->inputs = rt_alloc((size_t)h.count);
    memcpy(out->inputs, data, (size_t)h.count);
    out->inputs_u8 = 1;
}

void rt_idx_parse_labels(const char *path, const char *bytes, size_t len, const char *images_path,
                         int f64, rt_dataset *out) {
    idx_header h = parse_header(path, bytes, len);
    if (h.ndims != 1) rt_byte_error(path, 3, "IDX labels have %d dimensions, expected 1", h.ndims);
    if (h.dims[0] != (uint64_t)out->rows)
        rt_byte_error(path, 4, "%llu labels, but %s holds %lld images",
                      (unsigned long long)h.dims[0], images_path, (long long)out->rows);
    const unsigned char *data = (const unsigned char *)bytes + h.data_offset;
    int64_t k = out->target_elems;
    if (k < 1 || (uint64_t)k > SIZE_MAX / rt_elem_size(f64))
        rt_fatal("model descriptor: a target of %lld values", (long long)k);
    out->targets = rt_alloc_array((size_t)out->rows, (size_t)k * rt_elem_size(f64));
    for (int64_t i = 0; i < out->rows; i++) {
        unsigned label = data[i];
        if (k == 1) {
            rt_set(out->targets, i, f64, (double)label);
            continue;
        }
        if ((int64_t)label >= k)
            rt_byte_error(path, h.data_offset + (uint64_t)i,
                          "label %u of sample %lld is out of range 0..%lld", label, (long long)i,
                          (long long)k - 1);
        rt_set(out->targets, i * k + label, f64, 1.0);
    }
}
