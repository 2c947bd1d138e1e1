// conv_direct_avx2.cpp -- conv_direct.h's kernel for AVX2 + FMA (compiled with -mavx2 -mfma, called only
// when the CPU and OS support it).
#define NATVERK_CONV_DIRECT_NS avx2
#define NATVERK_VEC_BYTES 32
#include "conv2d/conv_direct.inc"
