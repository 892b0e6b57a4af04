/* launched.c: rt_launched_ranks (ranks.h), which solo.c and mpi.c both ask. */
#include <stdlib.h>

#include "ranks.h"

int rt_launched_ranks(void) {
    static const char *const vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
        const char *v = getenv(vars[i]);
        if (v && *v) return atoi(v) > 0 ? atoi(v) : 1;
    }
    return 0;
}
