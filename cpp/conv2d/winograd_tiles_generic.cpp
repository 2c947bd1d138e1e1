// winograd_tiles_generic.cpp -- the channel-vectorised Winograd data side for any CPU
// (16-byte vectors: SSE2 on x86-64, the compiler's lowering elsewhere; winograd_tiles.h).
#define NATVERK_WINO_TILES_NS generic
#define NATVERK_VEC_BYTES 16
#include "conv2d/winograd_tiles.inc"
