// winograd_weights.h -- the weight-side transforms of the Winograd convolution
// (winograd.h): U = G W G^T before the GEMMs, and dW = G^T dU G after backward's.
//
// Both are computed in double (winograd.h, "Error") and vectorized over the input
// channels c, one copy per SIMD level. The file is compiled with -ffp-contract=off and
// every lane does the scalar code's additions in its order, so all levels give the same
// bits (tests/test_conv_algos.py).
#pragma once
#include <cstdint>

namespace natverk {

// U[xi][k][c] = (G W[k,c] G^T)[xi] and/or UT[xi][c][k] (either may be null), for the
// K x C x 3 x 3 weights Wt, xi < (M+2)^2. Output channels are split between the threads.
template <typename T, int M>
void winograd_weights_in(T* U, T* UT, const T* Wt, int64_t K, int64_t C);

// dW[k,c] = G^T (sum over the `chunks` partial sums dU[ch][xi][k][c], in chunk order) G,
// each partial sum (M+2)^2 x K x C elements, one after the other.
template <typename T, int M>
void winograd_weights_out(T* dW, const T* dU, int chunks, int64_t K, int64_t C);

}  // namespace natverk
