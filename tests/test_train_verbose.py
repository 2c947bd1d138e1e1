"""train()'s verbosity: "auto" picks one line per tenth of the run when the output is not a
terminal (so no progress bar floods a log), 2 forces it, 0 is silent, anything else is named."""

from __future__ import annotations

import numpy as np
import pytest

import natverk


def _run(verbose, epochs=40):
    X, y = natverk.generate_nonlinear_2d(20, 2, 3, 0.0, seed=0)
    params = natverk.initialize_weights([2, 8, 3], seed=0)
    return natverk.train(params, X, y, epochs, 0.01, 16, verbose=verbose, seed=0)


def test_auto_is_one_line_per_tenth_when_not_a_terminal(capsys):
    _run("auto")
    out = capsys.readouterr()
    lines = [ln for ln in out.out.splitlines() if ln.startswith("Epoch ")]
    assert len(lines) == 10 and lines[-1].startswith("Epoch 40/40 - loss: ")
    assert "train_acc" in lines[0] and out.err == ""  # no tqdm bar on stderr


def test_zero_is_silent_and_bad_values_are_named(capsys):
    _run(0)
    assert capsys.readouterr().out == ""
    with pytest.raises(ValueError, match="verbose must be 0 .* or 'auto', got 'loud'"):
        _run("loud")
