/* fuzz_text.c: the text reader (runtime/text.c) as text(...) data reads a file: UTF-8
 * decoding, the vocabulary (the text's own, or one saved with weights), the ids, and the
 * vocabulary's round trip through the weights file's metadata text.
 *
 * Input: a 2-byte prefix, then the bytes.
 *   byte 0    the length of a saved vocabulary (its UTF-8 text, parsed as metadata is) at the
 *             start of the bytes; 0: none, the text makes its own
 *   byte 1    unused (kept for seeds to come)
 *   the rest  the vocabulary text (byte 0 bytes), then the text itself */
#include "fuzz.h"

#include <stdlib.h>
#include <string.h>

#include "text.h"
#include "util.h"

typedef struct Parse {
    const char *vocab_text, *text;
    size_t text_len;
} Parse;

static void parse(void *arg) {
    Parse *p = arg;
    rt_vocab vocab = {0, NULL};
    if (p->vocab_text) rt_vocab_from_utf8("w.safetensors", RT_VOCAB_KEY, p->vocab_text, &vocab);
    int32_t *ids;
    int64_t n;
    rt_text_encode("t.txt", p->text, p->text_len, &vocab, "the weights w.safetensors", &ids, &n);
    /* Every id names a character of the vocabulary, which is strictly increasing. */
    if (n < 1 || vocab.n < 1) abort();
    for (int64_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= vocab.n) abort();
    for (int32_t i = 1; i < vocab.n; i++)
        if (vocab.chars[i] <= vocab.chars[i - 1]) abort();
    /* What the weights file holds reads back as the same vocabulary. */
    char *saved = rt_vocab_to_utf8(&vocab);
    rt_vocab back;
    rt_vocab_from_utf8("w.safetensors", RT_VOCAB_KEY, saved, &back);
    if (back.n != vocab.n || memcmp(back.chars, vocab.chars, (size_t)vocab.n * 4) != 0) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2) return 0;
    size_t vocab_len = data[0] < size - 2 ? data[0] : size - 2;
    char *vocab = vocab_len ? fuzz_text(data + 2, vocab_len) : NULL;
    char *text = fuzz_copy(data + 2 + vocab_len, size - 2 - vocab_len);
    Parse p = {vocab, text, size - 2 - vocab_len};
    fuzz_rt_call(parse, &p);
    rt_free_all();
    free(vocab);
    free(text);
    return 0;
}
