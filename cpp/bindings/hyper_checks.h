// hyper_checks.h -- the rules for the optimizers' and batch norm's scalar hyper-parameters,
// in one place for every binding that takes them: the CPU kernels (bind_optimizers.cpp,
// bind_batchnorm.cpp, the step plan in bind_plan.cpp) and their CUDA twins
// (cuda/bind_optimizers.cpp, cuda/bind_batchnorm.cpp), so the same call is accepted or
// rejected, with the same message, on either device.
#pragma once
#include <initializer_list>
#include <string>
#include <utility>

#include "bindings/checks.h"

namespace natverk {
namespace bind {

// Before dispatch: the dtype-independent rules of a learning rate and a weight decay.
inline void check_lr(double lr, double wd) {
  require_finite(lr, "learning_rate");
  if (lr < 0) throw py::value_error("learning_rate must be >= 0, got " + std::to_string(lr));
  require_finite(wd, "weight_decay");
  if (wd < 0) throw py::value_error("weight_decay must be >= 0, got " + std::to_string(wd));
}

// A divisor guard (Adam's, RMSprop's and batch norm's eps): finite and > 0.
inline void check_eps(double eps) {
  require_finite(eps, "eps");
  if (!(eps > 0)) throw py::value_error("eps must be > 0, got " + std::to_string(eps));
}

// Batch norm's eps and running-statistics momentum (in [0, 1]).
inline void check_bn_hyper(double eps, double momentum) {
  check_eps(eps);
  require_in(momentum, "momentum", 0.0, 1.0, false);
}

// After dispatch: every hyper-parameter is used in the arrays' dtype T (the kernels cast
// them), so each must be finite there too.
template <typename T>
inline void check_in_dtype(std::initializer_list<std::pair<double, const char*>> args) {
  for (const auto& a : args) require_float_arg<T>(a.first, a.second);
}

}  // namespace bind
}  // namespace natverk
