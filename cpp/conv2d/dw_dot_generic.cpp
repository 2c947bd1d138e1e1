// dw_dot_generic.cpp -- dw_dot.h's dot-product block for the portable build:
// 16-byte vectors (SSE2 on x86-64, NEON on arm64).
#define NATVERK_DW_DOT_NS generic
#define NATVERK_VEC_BYTES 16
#define NATVERK_DW_KB 2
#define NATVERK_DW_TB 6
#include "conv2d/dw_dot.inc"
