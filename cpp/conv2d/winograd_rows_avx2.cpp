// winograd_rows_avx2.cpp -- the Winograd row copies for AVX2 (compiled with -mavx2,
// called only when the CPU and OS support it; see winograd_rows.h).
#define NATVERK_WINO_ROWS_NS avx2
#include "conv2d/winograd_rows.inc"
