/* suggest.h: "did you mean": the candidate nearest a word that matched none, for the hints
 * under an unknown name, option or setting. The compiler (common.h) and the runtime
 * (util.h) both include it, so both suggest by the same rule:
 *
 *   Suggestion s = suggest_start("epoch");
 *   for (each name the table has) suggest_consider(&s, name);
 *   const char *fix = suggest_best(&s);   (NULL: nothing is near enough)
 *
 * The distance is Damerau-Levenshtein (optimal string alignment: a swap of two neighbours
 * is one edit), where letters that differ only in case, and '-' against '_', count as the
 * same. A candidate is near enough within max(3, length)/3 edits of the word and when the
 * two share something (changing every character is no typo). The first nearest candidate
 * wins, so a table's order breaks ties.
 *
 * Bounded time: words and candidates longer than SUGGEST_MAX_LEN are not compared, and a
 * suggestion computes at most SUGGEST_MAX_COMPARED distances (candidates whose lengths
 * differ by more than the edits allowed cost no distance), so one costs at most about
 * SUGGEST_MAX_COMPARED * SUGGEST_MAX_LEN^2 steps however large the table. */
#ifndef NNC_SUGGEST_H
#define NNC_SUGGEST_H

#include <ctype.h>
#include <stddef.h>
#include <string.h>

#define SUGGEST_MAX_LEN      64
#define SUGGEST_MAX_COMPARED 2000

typedef struct Suggestion {
    const char *wanted;
    size_t wanted_len; /* 0 when too long to compare (or empty): nothing is suggested */
    int max_edits;
    int best_edits;
    int compared;
    char best[SUGGEST_MAX_LEN + 1]; /* a copy: candidates may be cut from a longer text */
} Suggestion;

static inline Suggestion suggest_start(const char *wanted) {
    size_t n = strnlen(wanted, SUGGEST_MAX_LEN + 1);
    Suggestion s = {wanted, n > SUGGEST_MAX_LEN ? 0 : n, (int)(n > 3 ? n : 3) / 3, 0, 0, ""};
    return s;
}

static inline int suggest_same_char(char a, char b) {
    if (a == '-') a = '_';
    if (b == '-') b = '_';
    return tolower((unsigned char)a) == tolower((unsigned char)b);
}

/* The edits from a to b, or limit + 1 when there are more than limit. */
static inline int suggest_distance(const char *a, size_t na, const char *b, size_t nb, int limit) {
    int rows[3][SUGGEST_MAX_LEN + 1]; /* the rows i - 2, i - 1 and i, taken in turn */
    for (size_t j = 0; j <= nb; j++) rows[0][j] = (int)j;
    for (size_t i = 1; i <= na; i++) {
        int *two_up = rows[(i + 1) % 3], *up = rows[(i + 2) % 3], *row = rows[i % 3];
        int row_min = row[0] = (int)i;
        for (size_t j = 1; j <= nb; j++) {
            int cost = !suggest_same_char(a[i - 1], b[j - 1]);
            int best = up[j - 1] + cost;
            if (up[j] + 1 < best) best = up[j] + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            if (i > 1 && j > 1 && suggest_same_char(a[i - 1], b[j - 2]) &&
                suggest_same_char(a[i - 2], b[j - 1]) && two_up[j - 2] + 1 < best)
                best = two_up[j - 2] + 1;
            row[j] = best;
            if (best < row_min) row_min = best;
        }
        if (row_min > limit) return limit + 1; /* every path is past the limit already */
    }
    int d = rows[na % 3][nb];
    return d > limit ? limit + 1 : d;
}

/* The candidate of n bytes at text (not NUL-terminated: "a|b|c" is read in place). */
static inline void suggest_consider_n(Suggestion *s, const char *text, size_t n) {
    if (!s->wanted_len || !text || s->compared >= SUGGEST_MAX_COMPARED) return;
    size_t gap = n > s->wanted_len ? n - s->wanted_len : s->wanted_len - n;
    if (n > SUGGEST_MAX_LEN || n == 0 || gap > (size_t)s->max_edits) return;
    s->compared++;
    int limit = s->best[0] ? s->best_edits - 1 : s->max_edits;
    if (limit < 0) return;
    int d = suggest_distance(s->wanted, s->wanted_len, text, n, limit);
    size_t longer = n > s->wanted_len ? n : s->wanted_len;
    if (d <= limit && (size_t)d < longer) {
        memcpy(s->best, text, n);
        s->best[n] = '\0';
        s->best_edits = d;
    }
}

static inline void suggest_consider(Suggestion *s, const char *candidate) {
    if (candidate) suggest_consider_n(s, candidate, strnlen(candidate, SUGGEST_MAX_LEN + 1));
}

/* The nearest candidate, or NULL. */
static inline const char *suggest_best(const Suggestion *s) {
    return s->best[0] ? s->best : NULL;
}

#endif
