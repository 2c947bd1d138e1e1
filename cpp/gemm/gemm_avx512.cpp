// gemm_avx512.cpp -- GEMM for AVX-512F (compiled with -mavx512f..., called only
// when the CPU and OS support it). 12 x 32 floats / 12 x 16 doubles: 24 zmm
// accumulators + 2 for B + 1 broadcast of the 32 registers.
#define NATVERK_GEMM_NS avx512
#define NATVERK_VEC_BYTES 64
#define NATVERK_KC 256
#define NATVERK_F32_MR 12
#define NATVERK_F32_NV 2
#define NATVERK_F32_MC 144
#define NATVERK_F32_NC 3072
#define NATVERK_F64_MR 12
#define NATVERK_F64_NV 2
#define NATVERK_F64_MC 96
#define NATVERK_F64_NC 1536
#include "gemm/gemm_kernel.inc"
