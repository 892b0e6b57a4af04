/* schedule_reads.h: each schedule of schedules.def and the settings of its own it reads.
 * options.c checks the command line against it, compiler/sema.c a train block: a setting
 * given under another schedule would change nothing. Include it where it is read: the table
 * is static. */
#ifndef NNRT_SCHEDULE_READS_H
#define NNRT_SCHEDULE_READS_H

#define SCHEDULE_MAX_READS 2
static const struct schedule_reads {
    const char *name, *reads[SCHEDULE_MAX_READS];
} schedule_reads[] = {
#define SCHEDULE(name, ...) {#name, {__VA_ARGS__}},
#include "schedules.def"
#undef SCHEDULE
};

#endif
