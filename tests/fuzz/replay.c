/* replay.c: main() for a fuzz target built without libFuzzer (any compiler): runs each
 * file named on the command line through LLVMFuzzerTestOneInput once, as libFuzzer does
 * when given files rather than folders. A folder runs each file in it. Exits 0 when every
 * input ran and left no more files open than there were before it; a bug shows as a crash
 * (or a sanitizer report, in a sanitizer build), or as that message. A target that leaves
 * a file open at each input a loader rejects runs out of descriptors after a few thousand,
 * and libFuzzer then fuzzes nothing but "cannot open" for the rest of its time. */
#include "fuzz.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Weak: a target without LLVMFuzzerInitialize links as well. */
__attribute__((weak)) int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    return 0;
}

static void *grow(void *p, size_t size) {
    void *bigger = realloc(p, size);
    if (!bigger) {
        fputs("replay: out of memory\n", stderr);
        exit(1);
    }
    return bigger;
}

/* The process's open file descriptors, or -1 where /proc/self/fd cannot be read. */
static int open_descriptors(void) {
    DIR *dir = opendir("/proc/self/fd");
    if (!dir) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(dir)) != NULL)
        if (e->d_name[0] != '.') n++;
    closedir(dir);
    return n - 1; /* the listing's own */
}

static int run_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        return 1;
    }
    size_t cap = 4096, len = 0, n;
    unsigned char *buf = grow(NULL, cap);
    while ((n = fread(buf + len, 1, cap - len, f)) > 0)
        if ((len += n) == cap) buf = grow(buf, cap *= 2);
    int failed = ferror(f);
    fclose(f);
    if (failed) {
        fprintf(stderr, "%s: cannot read\n", path);
        free(buf);
        return 1;
    }
    /* An exact copy, so a sanitizer sees a read past the end of the input. */
    unsigned char *input = grow(NULL, len ? len : 1);
    if (len) memcpy(input, buf, len);
    free(buf);
    fprintf(stderr, "replay: %s (%zu bytes)\n", path, len);
    int before = open_descriptors();
    LLVMFuzzerTestOneInput(input, len);
    free(input);
    int after = open_descriptors();
    if (before >= 0 && after > before) {
        fprintf(stderr, "replay: %s left %d more file%s open\n", path, after - before,
                after - before == 1 ? "" : "s");
        return 1;
    }
    return 0;
}

static int compare_names(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every regular file in the folder, in name order (so runs are repeatable). */
static int run_folder(const char *dir_path) {
    DIR *dir = opendir(dir_path);
    if (!dir) {
        perror(dir_path);
        return 1;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(dir)) != NULL) {
        if (e->d_name[0] == '.') continue;
        if (n == cap) names = grow(names, (cap = cap ? 2 * cap : 64) * sizeof *names);
        names[n++] = strcpy(grow(NULL, strlen(e->d_name) + 1), e->d_name);
    }
    closedir(dir);
    qsort(names, n, sizeof *names, compare_names);
    int status = 0;
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(dir_path) + strlen(names[i]) + 2;
        char *path = grow(NULL, len);
        snprintf(path, len, "%s/%s", dir_path, names[i]);
        struct stat st;
        if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) status |= run_file(path);
        free(path);
        free(names[i]);
    }
    free(names);
    return status;
}

int main(int argc, char **argv) {
    LLVMFuzzerInitialize(&argc, &argv);
    int status = 0, runs = 0;
    for (int i = 1; i < argc; i++) {
        if (argv[i][0] == '-') continue; /* libFuzzer's options: nothing to do here */
        struct stat st;
        if (stat(argv[i], &st) == 0 && S_ISDIR(st.st_mode))
            status |= run_folder(argv[i]);
        else
            status |= run_file(argv[i]);
        runs++;
    }
    if (runs == 0) {
        fprintf(stderr, "usage: %s FILE|FOLDER...  (runs each input once)\n", argv[0]);
        return 2;
    }
    return status;
}
