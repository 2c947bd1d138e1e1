"""The one optimizer contract: name -> update kernel, state slots, hyper-parameters,
defaults and accepted aliases (thesis §2.6, eq. 33-36).

Every API derives from this table: the optimizer classes of the layer API
(:mod:`natverk.optimizers.classes`), the MATLAB-style ``train()`` and its
``gradient_descent_*`` dispatch, the balance principle and the lambda search.
A name is looked up case-insensitively among the canonical name, its aliases
and the class name, so ``"vanilla"``, ``"sgd"`` and ``"SGD"`` are one optimizer.

What weight decay (the thesis' L2, eq. 9: ``g <- g + lambda * W``) applies to
is part of the contract too: weights only (dense and convolution kernels), never
biases or batch-norm gamma/beta, unless ``decay="all"`` asks for PyTorch's
behaviour (every parameter). See :data:`DECAY_MODES`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["OptimizerSpec", "OPTIMIZERS", "DECAY_MODES", "resolve", "names"]

#: What weight decay applies to: "weights" (the thesis' L2: dense and conv
#: weights, the parameters whose ``decay`` flag is set) or "all" (every
#: parameter, biases and batch-norm gamma/beta included, as PyTorch's
#: ``weight_decay`` does).
DECAY_MODES = ("weights", "all")


@dataclass(frozen=True)
class OptimizerSpec:
    """One row of the table."""

    name: str  #: canonical name (lower case); the C++ kernels know it by this name
    class_name: str  #: the layer API's class (natverk.optimizers.<class_name>)
    matlab: str  #: the MATLAB-style function (natverk.<matlab>)
    kernel: str  #: the C++ update (natverk._core.<kernel>)
    slots: tuple[str, ...]  #: per-parameter state arrays: "v" first moment, "s" second moment
    hyper: tuple[str, ...]  #: hyper-parameters besides learning_rate and weight_decay
    defaults: dict = field(default_factory=dict)  #: the class API's defaults
    aliases: tuple[str, ...] = ()

    @property
    def accepted(self) -> tuple[str, ...]:
        """Every spelling :func:`resolve` maps to this row (lower case)."""
        return (self.name, *self.aliases, self.class_name.lower())


OPTIMIZERS: dict[str, OptimizerSpec] = {
    s.name: s
    for s in (
        # w -= lr g                                                     (eq. 33)
        OptimizerSpec("sgd", "SGD", "gradient_descent_vanilla", "sgd_update", (), (),
                      {"learning_rate": 0.01}, aliases=("vanilla",)),
        # v = beta v + (1 - beta) g; w -= lr v                          (eq. 34)
        OptimizerSpec("momentum", "Momentum", "gradient_descent_momentum", "momentum_update", ("v",), ("beta",),
                      {"learning_rate": 0.01, "beta": 0.9}),
        # s = beta2 s + (1 - beta2) g^2; w -= lr g / (sqrt(s) + eps)    (eq. 35)
        OptimizerSpec("rmsprop", "RMSprop", "gradient_descent_rmsprop", "rmsprop_update", ("s",), ("beta2", "eps"),
                      {"learning_rate": 0.001, "beta2": 0.99, "eps": 1e-8}),
        # Adam with bias correction, t = 1, 2, ...                       (eq. 36)
        OptimizerSpec("adam", "Adam", "gradient_descent_adam", "adam_update", ("v", "s"), ("beta1", "beta2", "eps"),
                      {"learning_rate": 0.001, "beta1": 0.9, "beta2": 0.99, "eps": 1e-8}),
    )
}

_LOOKUP = {alias: spec for spec in OPTIMIZERS.values() for alias in spec.accepted}


def names() -> list[str]:
    """Every accepted spelling, sorted (for messages and docs)."""
    return sorted(_LOOKUP)


def resolve(name, argument: str = "optimizer") -> OptimizerSpec:
    """The table row for ``name`` (case-insensitive; aliases and class names too).
    ValueError naming ``argument`` and the accepted names otherwise."""
    if isinstance(name, str):
        spec = _LOOKUP.get(name.lower())
        if spec is not None:
            return spec
    raise ValueError(f"{argument} must be one of {names()}, got {name!r}")
