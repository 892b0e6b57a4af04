/* text.h: character-level text data (docs/runtime.md, "Text"). A UTF-8 text becomes the ids
 * of its characters in a vocabulary, and windows of those ids feed a model: window r starts at
 * character r * stride, its input is ids[s .. s+seq) and its target ids[s+1 .. s+seq+1), the
 * next character at every position. Windows are gathered when a batch is filled, so a text
 * costs its ids (4 bytes a character) however much the windows overlap. */
#ifndef NNRT_TEXT_H
#define NNRT_TEXT_H

#include <stddef.h>
#include <stdint.h>

#include "data.h"
#include "nnrt.h"

/* Where a window's characters go: a tensor of shape [seq] gets the ids, one of shape
 * [seq, vocab] their one-hot rows. */
typedef struct rt_text_shape {
    int64_t seq;       /* the window: the input's first dimension */
    int64_t vocab;     /* the model's vocabulary size (the descriptor's train.vocab) */
    int input_one_hot; /* the input is [seq, vocab] */
    int target_one_hot;
} rt_text_shape;

/* Whether the model reads text data (train.data_kind "text"). */
int rt_is_text_model(const nnrt_model *m);

/* The model's text shape, checked against nnrt.h's rules for text models: one input, at most
 * one target, each [seq] or [seq, vocab]; a descriptor that breaks them is a fatal error. */
rt_text_shape rt_text_shape_of(const nnrt_model *m);

/* The characters of a text file (or standard input, path NULL) as ids. vocab: when
 * vocab->n > 0, the vocabulary to encode with (saved with weights: vocab_source names where
 * it came from: "the weights w.safetensors"), and a character outside it is an error at its line
 * and column; else it is set to the sorted set of the text's characters. Invalid UTF-8, a NUL byte,
 * UTF-16, an empty text and a vocabulary larger than the model's are errors naming the file. */
void rt_text_read(const nnrt_model *m, const char *path, rt_vocab *vocab, const char *vocab_source,
                  int32_t **ids, int64_t *n_ids);

/* A text read for a run: its path (NULL: standard input), ids and vocabulary. */
typedef struct rt_text_data {
    const char *path;
    int32_t *ids;
    int64_t n_ids;
    rt_vocab vocab;
} rt_text_data;

/* The text of --data (data NULL: the train block's file), encoded with vocab when it is
 * given with n > 0 (saved with vocab_source), else with its own sorted characters. */
rt_text_data rt_load_text(const nnrt_model *m, const char *data, const rt_vocab *vocab,
                          const char *vocab_source);

/* "WHAT PATH" for messages about a vocabulary: "the weights w.safetensors". */
const char *rt_vocab_source(const char *what, const char *path);

/* The same on text already in memory (the fuzz target's entry). */
void rt_text_encode(const char *path, const char *bytes, size_t len, rt_vocab *vocab,
                    const char *vocab_source, int32_t **ids, int64_t *n_ids);

/* The windows of ids[0..n) as a data set (out->text points to a struct allocated here). what:
 * which part of the text, for the message when it is shorter than a window. */
void rt_text_dataset(const nnrt_model *m, const char *path, const int32_t *ids, int64_t n,
                     int64_t stride, const char *what, rt_dataset *out);

/* Copies row `row`'s input (and, when with_targets, target) into the batch slot b. */
void rt_text_fill_row(const nnrt_model *m, nnrt_ctx *ctx, const rt_dataset *d, int64_t row,
                      int64_t b, int with_targets);

/* The target values of row `row` (one-hot or ids), in the model's type, into the data set's
 * scratch row: for accuracy, which reads targets from the data set. */
const void *rt_text_target_row(const nnrt_model *m, const rt_dataset *d, int64_t row);

/* The vocabulary as UTF-8 text, its characters in id order (the weights file's metadata
 * text.vocab), and back: a value that is not UTF-8, not strictly increasing or empty is a
 * fatal error naming path and key. */
char *rt_vocab_to_utf8(const rt_vocab *v);
void rt_vocab_from_utf8(const char *path, const char *key, const char *s, rt_vocab *out);

/* Character c as UTF-8 in out (room for 4 bytes); returns the number of bytes. */
size_t rt_put_utf8(uint32_t c, char *out);

/* The metadata key of the vocabulary in weights files and checkpoints. */
#define RT_VOCAB_KEY "text.vocab"

/* The vocabulary saved with a weights file or checkpoint (path), or n = 0 when it has none. */
void rt_vocab_of_weights(const char *path, rt_vocab *out);

#endif
