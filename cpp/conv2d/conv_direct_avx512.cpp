// conv_direct_avx512.cpp -- conv_direct.h's kernel for AVX-512 (compiled with -mavx512f -mavx512dq
// -mavx512vl -mavx512bw -mfma, called only when the CPU and OS support it).
#define NATVERK_CONV_DIRECT_NS avx512
#define NATVERK_VEC_BYTES 64
#include "conv2d/conv_direct.inc"
