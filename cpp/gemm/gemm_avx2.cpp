// gemm_avx2.cpp -- GEMM for AVX2 + FMA (compiled with -mavx2 -mfma, called
// only when the CPU has both). 6 x 16 floats / 6 x 8 doubles: 12 ymm
// accumulators + 2 for B + 1 broadcast = 15 of the 16 registers.
#define NATVERK_GEMM_NS avx2
#define NATVERK_VEC_BYTES 32
#define NATVERK_KC 256
#define NATVERK_F32_MR 6
#define NATVERK_F32_NV 2
#define NATVERK_F32_MC 144
#define NATVERK_F32_NC 3072
#define NATVERK_F64_MR 6
#define NATVERK_F64_NV 2
#define NATVERK_F64_MC 96
#define NATVERK_F64_NC 1536
#include "gemm/gemm_kernel.inc"
