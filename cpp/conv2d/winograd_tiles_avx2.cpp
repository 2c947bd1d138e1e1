// winograd_tiles_avx2.cpp -- the channel-vectorised Winograd data side for AVX2 + FMA
// (compiled with -mavx2 -mfma, called only when the CPU and OS support it; winograd_tiles.h).
#define NATVERK_WINO_TILES_NS avx2
#define NATVERK_VEC_BYTES 32
#include "conv2d/winograd_tiles.inc"
