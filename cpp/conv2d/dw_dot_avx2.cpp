// dw_dot_avx2.cpp -- dw_dot.h's dot-product block for AVX2
// (compiled with -mavx2 -mfma, called only when the CPU supports it).
#define NATVERK_DW_DOT_NS avx2
#define NATVERK_VEC_BYTES 32
#define NATVERK_DW_KB 2
#define NATVERK_DW_TB 6
#include "conv2d/dw_dot.inc"
