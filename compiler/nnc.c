/* nnc.c: the nnc executable; the driver itself is nnc_main (main.c). */
#include "driver.h"

int main(int argc, char **argv) {
    return nnc_main(argc, argv);
}
