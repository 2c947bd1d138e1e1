// conv_pool_avx512.cpp -- conv_pool.h's kernel for AVX-512F (compiled with -mavx512f... -mfma,
// called only when the CPU and OS support it).
#define NATVERK_CONV_POOL_NS avx512
#define NATVERK_VEC_BYTES 64
#include "conv2d/conv_pool.inc"
