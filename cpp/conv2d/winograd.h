// winograd.h -- 3x3, stride-1 convolution by Winograd's minimal filtering,
// F(2x2, 3x3) and F(4x4, 3x3) (Lavin & Gray, "Fast Algorithms for Convolutional
// Neural Networks", CVPR 2016), forward and both backward passes.
//
// The output is cut into m x m tiles (m = 2 or 4); tile t of channel k is
//
//   Y_t[k] = A^T [ sum_c (G W[k,c] G^T) .* (B^T X_t[c] B) ] A         (Lavin & Gray eq. 8)
//          = A^T [ sum_c U[k,c] .* V_t[c] ] A
//
// with X_t[c] the (m+2) x (m+2) input patch under the tile. For each of the
// (m+2)^2 transform points xi the sum over c is a GEMM, M_xi = U_xi (K x C) V_xi (C x T),
// over a block of T tiles: 16 (m = 2) or 36 (m = 4) GEMMs that together do
// 2.25x (m = 2) or 4x (m = 4) fewer multiplications than the direct convolution.
// (winograd_tiles.h runs them transposed, tiles by channels: M_xi^T = V_xi^T U_xi^T.)
//
// The backward passes are the exact adjoint of that linear map, so they share its
// transforms and its GEMMs:
//   dM_t      = A dY_t A^T                        (gradient at the transform points)
//   dX_t[c]  += B [ sum_k U[k,c] .* dM_t[k] ] B^T   = B (U_xi^T dM_xi) B^T, scattered
//              back onto the (overlapping) input patches
//   dW[k,c]   = G^T [ sum_t dM_t[k] .* V_t[c] ] G   = G^T (dM_xi V_xi^T) G
//
// Error: the transforms are exact in exact arithmetic; in floating point F(4x4, 3x3)
// amplifies rounding (its A^T holds 8 and 1/8, its B^T 5/2), F(2x2, 3x3) barely. Its
// interpolation points are chosen for that (winograd_matrices.h).
// The weight transform G W G^T and the final G^T dU G are computed in double, so in
// float32 only the data transforms and the GEMM round. tests/test_conv_algos.py
// measures the error growth against the float64 reference and sets its float32
// tolerance from that measurement (benchmarks/README.md, "Convolution algorithms").
//
// NaN and Inf: the transforms mix every value of a patch, so a NaN or Inf in the input
// (or in dY) makes its whole m x m output tile (or input patch of dX, and dW) NaN, where
// the direct convolution confines it to the outputs whose window holds it. Finite
// inputs give a NaN only if a transformed value overflows (inputs near the dtype's max).
#pragma once
#include "conv2d/conv2d.h"

namespace natverk {

// Winograd applies to 3x3 kernels with stride 1, dilation 1 and one group (any padding).
bool winograd_applies(const Conv2dShape& s);

// M = 2 or 4. Y is overwritten (bias added when b is not null).
template <typename T, int M>
void winograd_forward(T* Y, const T* X, const T* Wt, const T* b, const Conv2dShape& s,
                      const ConvEvalEpilogue* ep = nullptr);

// dX and dW may be null (not wanted); both are overwritten. db is the caller's.
template <typename T, int M>
void winograd_backward(T* dX, T* dW, const T* dY, const T* X, const T* Wt, const Conv2dShape& s);

}  // namespace natverk
