"""Inverted dropout on the counter-based C++ ``dropout_forward`` / ``dropout_backward``."""

from __future__ import annotations

import numpy as np

from .. import _core
from ._base import Layer, as_float, as_seed, fresh_seed, register


@register
class Dropout(Layer):
    """Inverted dropout: in training each element is zeroed with probability
    ``p`` and the survivors scaled by 1 / (1 - p); in evaluation the identity.

    Every training forward draws a fresh mask from the kernel's counter-based
    RNG, seeded with a hash of (``seed``, call counter); the counter is saved
    with the model (a buffer), so a run is reproducible from the seed and a
    saved/loaded model continues the same sequence of masks. ``seed=None``
    draws a random seed at construction (kept in :meth:`config`).
    """

    def __init__(self, p: float = 0.5, seed: int | None = None):
        super().__init__()
        self.p = as_float(p, "p", 0.0, 1.0, hi_open=True)
        seed = as_seed(seed)
        self.seed = fresh_seed() if seed is None else seed
        self.counter = np.zeros((), dtype=np.int64)  # training forwards so far (a buffer)
        self._mask: np.ndarray | None = None

    @property
    def name(self) -> str:
        return f"Dropout(p={self.p})"

    def config(self) -> dict:
        return {"p": self.p, "seed": self.seed}

    def buffers(self) -> list[tuple[str, np.ndarray]]:
        return [("counter", self.counter)]

    def call_seed(self, counter: int) -> int:
        """The kernel seed of training call number ``counter`` (0, 1, ...)."""
        state = np.random.SeedSequence([self.seed, int(counter)]).generate_state(2, np.uint32)
        return (int(state[0]) << 32) | int(state[1])

    def forward(self, x, training: bool | None = None) -> np.ndarray:
        x = self._input(x, None, "")
        if not self._mode(training) or self.p == 0.0:
            self._mask = None
            return self._remember_output(x)
        y, self._mask = _core.dropout_forward(x, self.p, self.call_seed(int(self.counter)))
        self.counter += 1
        return self._remember_output(y)

    def backward(self, grad) -> np.ndarray:
        g = self._grad(grad)
        if self._mask is None:
            return g
        return _core.dropout_backward(g, self._mask, self.p)
