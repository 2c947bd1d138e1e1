// gemm_generic.cpp -- the portable GEMM: 16-byte vectors (SSE2 on x86-64,
// NEON on arm64, plain scalar code elsewhere via GCC's lowering).
#define NATVERK_GEMM_NS generic
#define NATVERK_VEC_BYTES 16
#define NATVERK_KC 256
#define NATVERK_F32_MR 4   // 4 x 8 floats: 8 accumulators of 16
#define NATVERK_F32_NV 2
#define NATVERK_F32_MC 128
#define NATVERK_F32_NC 2048
#define NATVERK_F64_MR 4   // 4 x 4 doubles
#define NATVERK_F64_NV 2
#define NATVERK_F64_MC 96
#define NATVERK_F64_NC 1024
#include "gemm/gemm_kernel.inc"
