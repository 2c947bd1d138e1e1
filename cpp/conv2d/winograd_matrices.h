// winograd_matrices.h -- the constant matrices of Winograd's F(2x2, 3x3) and F(4x4, 3x3),
// shared by the data transforms (winograd.cpp) and the weight transforms
// (winograd_weights.cpp).
#pragma once

namespace natverk {

// F(2x2, 3x3): Lavin & Gray 2016, section 4.1.
//
// F(4x4, 3x3) is the Toom-Cook construction Lavin & Gray use in section 4.2, but on the
// interpolation points 0, 1, -1, 1/2, -2 (and inf) instead of their 0, +-1, +-2. Which points
// are used does not change the maths, only the rounding. Barabasz, Anderson, Soodhalter and
// Gregg (arXiv:1803.10986, "Error analysis and improving the accuracy of Winograd
// convolution for deep neural networks") show the error bound depends on the points and
// search them empirically; Alam, Anderson, Barabasz and Gregg (arXiv:2201.10369, "Winograd
// convolution for deep neural networks: efficient point selection") explain why a point
// paired with its reciprocal (2 with 1/2) helps: the pair's terms cancel in the transforms.
// Measured here (the float32 sweep of tests/test_conv_algos.py, C = 1..256, K = 8, 64,
// 8..17 pixels, in eps * sqrt(#terms) max|a| max|b|) against 0, +-1, +-2: the forward
// error falls from 134 to 53, backward-data from 50 to 25, backward-weights from 38 to 16,
// at the same speed (B^T has 26 non-zeros instead of 22). Every entry below is exact in
// binary floating point except G's thirds and fifteenths, and G is applied in double
// (winograd_weights.cpp). Derived and checked in exact rational arithmetic:
// sum_j AT[i][j] G[j][k] BT[j][l] = [l == i + k] for every i < 4, k < 3, l < 6.
template <int M> struct Wino;
template <> struct Wino<2> {
  static constexpr double BT[4][4] = {{1, 0, -1, 0}, {0, 1, 1, 0}, {0, -1, 1, 0}, {0, 1, 0, -1}};
  static constexpr double G[4][3] = {{1, 0, 0}, {0.5, 0.5, 0.5}, {0.5, -0.5, 0.5}, {0, 0, 1}};
  static constexpr double AT[2][4] = {{1, 1, 1, 0}, {0, 1, -1, -1}};
};
template <> struct Wino<4> {
  static constexpr double BT[6][6] = {{1, -1.5, -2, 1.5, 1, 0},    {0, -1, 0.5, 2.5, 1, 0},
                                      {0, 1, -2.5, 0.5, 1, 0},     {0, -2, -1, 2, 1, 0},
                                      {0, 0.5, -1, -0.5, 1, 0},    {0, 1, -1.5, -2, 1.5, 1}};
  static constexpr double G[6][3] = {{1, 0, 0},
                                     {1.0 / 3, 1.0 / 3, 1.0 / 3},
                                     {-1.0 / 3, 1.0 / 3, -1.0 / 3},
                                     {-16.0 / 15, -8.0 / 15, -4.0 / 15},
                                     {1.0 / 15, -2.0 / 15, 4.0 / 15},
                                     {0, 0, 1}};
  static constexpr double AT[4][6] = {{1, 1, 1, 1, 1, 0},
                                      {0, 1, -1, 0.5, -2, 0},
                                      {0, 1, 1, 0.25, 4, 0},
                                      {0, 1, -1, 0.125, -8, 1}};
};

}  // namespace natverk
