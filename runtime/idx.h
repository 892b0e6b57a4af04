/* idx.h: the IDX format of the MNIST files: a big-endian header (two zero bytes, a type
 * byte, a dimension count, then one u32 per dimension) and the raw data. Only unsigned
 * bytes (type 0x08) are read. */
#ifndef NNRT_IDX_H
#define NNRT_IDX_H

#include <stddef.h>
#include <stdint.h>

#include "data.h"

/* An IDX file of unsigned bytes starts with these (then its dimension count). */
#define RT_IDX_MAGIC "\0\0\x08"

/* Whether the bytes start like an IDX file of unsigned bytes. */
int rt_idx_sniff(const char *bytes, size_t len);

/* Checks the start of an IDX file as it arrives (bytes [0, len) so far): its header, once
 * there, must be one this reader takes, and the file must not go on past the data the
 * header promises, so a stream or a gzip bomb stops as soon as it does. */
void rt_idx_check_prefix(const char *path, const char *bytes, size_t len);

/* Images: dimension 0 counts samples, the rest are one sample, which must have
 * out->input_elems elements; every byte is a value 0..255 as it is (a model scales its
 * input itself, docs/architecture.md). Sets rows and inputs, which keep the bytes
 * (inputs_u8): gathering a batch converts them to the model's element type. */
void rt_idx_parse_images(const char *path, const char *bytes, size_t len, rt_dataset *out);

/* Labels: one dimension, out->rows of them. With target_elems > 1 a label is a class index
 * stored one-hot; with 1 it is stored as its value. Sets targets. */
void rt_idx_parse_labels(const char *path, const char *bytes, size_t len, const char *images_path,
                         int f64, rt_dataset *out);

#endif
