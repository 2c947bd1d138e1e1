// winograd_tiles_avx512.cpp -- the channel-vectorised Winograd data side for AVX-512F
// (compiled with -mavx512f..., called only when the CPU and OS support it; winograd_tiles.h).
#define NATVERK_WINO_TILES_NS avx512
#define NATVERK_VEC_BYTES 64
#include "conv2d/winograd_tiles.inc"
