/* checkpoint.h: parameters to and from safetensors files
 * (https://github.com/huggingface/safetensors): an 8-byte little-endian header length, a
 * JSON header naming each tensor's dtype, shape and byte range, then the raw little-endian
 * data. Tensor names are the param names, so PyTorch and NumPy read the files directly. */
#ifndef NNRT_CHECKPOINT_H
#define NNRT_CHECKPOINT_H

#include "nnrt.h"

/* Writes every param (dtype F64 when the model is f64, else F32), atomically. */
void rt_save_weights(const nnrt_model *m, const void *fixed, const char *path);

/* Reads every param from the file into the fixed arena. Each must be present with the
 * model's shape; F32 and F64 data are both accepted and converted to the model's type.
 * A file that does not fit is a fatal error naming the tensor. */
void rt_load_weights(const nnrt_model *m, void *fixed, const char *path);

#endif
