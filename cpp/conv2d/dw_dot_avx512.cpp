// dw_dot_avx512.cpp -- dw_dot.h's dot-product block for AVX-512F
// (compiled with -mavx512f..., called only when the CPU and OS support it).
#define NATVERK_DW_DOT_NS avx512
#define NATVERK_VEC_BYTES 64
#define NATVERK_DW_KB 3
#define NATVERK_DW_TB 9
#include "conv2d/dw_dot.inc"
