// winograd_rows_avx512.cpp -- the Winograd row copies for AVX-512F (compiled with
// -mavx512f..., called only when the CPU and OS support it; see winograd_rows.h).
#define NATVERK_WINO_ROWS_NS avx512
#include "conv2d/winograd_rows.inc"
