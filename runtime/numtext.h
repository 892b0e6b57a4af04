/* numtext.h: numbers as text, exactly as printf's "%.9g", "%.Nf" and "%lld" write them, at a
 * small part of printf's cost: the --log row of a tiny model is written every few hundred
 * nanoseconds, where printf's general conversion took several times the step itself. */
#ifndef NNRT_NUMTEXT_H
#define NNRT_NUMTEXT_H

#include <stddef.h>
#include <stdint.h>

/* Room every function here needs: the longest text a double or an int64_t makes with these
 * formats, and the terminating NUL. */
#define RT_NUMTEXT_MAX 352

/* Each writes the text and a NUL at buf and returns its length (without the NUL). */
int rt_text_g9(char *buf, double v);                /* "%.9g" */
int rt_text_fixed(char *buf, double v, int places); /* "%.*f", places 0..9 */
int rt_text_int(char *buf, int64_t v);              /* "%lld" */

/* The fewest significant digits that read back as the same number in the element type
 * (float, or double with f64): exact, and as short as the number allows ("2", "1.4"). */
int rt_text_shortest(char *buf, size_t size, double v, int f64);

/* The last digits of a column whose values often give the same text (a learning rate, an
 * accuracy, seconds to the millisecond), and their text once they came twice in a row: the
 * digits are only written out when they change. Zeroed, it holds nothing. */
typedef struct rt_text_memo {
    uint64_t n;          /* the digits as an integer, plus one (0: nothing held) */
    int32_t shape;       /* the exponent (%.9g) or the places (%.Nf), and the sign */
    int32_t len;         /* the text's length; 0 while it is not kept */
    uint64_t value_bits; /* the last value written (its bits), and its format: the same text */
    int32_t format;
    char text[40];
} rt_text_memo;

int rt_text_g9_memo(char *buf, double v, rt_text_memo *memo);
int rt_text_fixed_memo(char *buf, double v, int places, rt_text_memo *memo);

#endif
