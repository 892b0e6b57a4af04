/* driver.h: the nnc command as a function (main.c). nnc's main() calls it once; the fuzz
 * target tests/fuzz/fuzz_nnc.c calls it for every input, in one process.
 *
 * Each call starts from a clean state (no errors counted, an empty arena) and returns the
 * exit status; no input makes it exit. Like the command, it writes to stdout and stderr,
 * and --emit=STAGE -o FILE points stdout at FILE (it stays there after the call). */
#ifndef NNC_DRIVER_H
#define NNC_DRIVER_H

int nnc_main(int argc, char **argv);

#endif
