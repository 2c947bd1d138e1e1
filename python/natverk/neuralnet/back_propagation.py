"""Mirror of MATLAB ``back_propogation.m``: gradients of the loss."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .. import _core
from .._validation import as_activation, as_class_weights, as_labels, as_lambda, network_layout, parameter_names


def back_propagation(
    cache: Mapping[str, object],
    y,
    parameters: Mapping[str, np.ndarray],
    lambda_: float = 0.0,
    activation: str = "relu",
    class_weights=None,
) -> dict[str, np.ndarray]:
    """Mirror of MATLAB ``back_propogation(cache, t, parameters, m, lambda, activation)``.

    With ``m`` examples and ``dz_L = (probs - onehot(y)) / m``, for l = L..1:

        dW_l = h_{l-1}^T dz_l + lambda W_l
        db_l = sum over rows of dz_l
        dz_{l-1} = (dz_l W_l^T) * f'(z_{l-1})      (f' from h_{l-1})

    Unlike the seed, the L2 term ``lambda W_1`` is included for the first
    layer too (the loss penalises W1, so its gradient must).

    Parameters
    ----------
    cache : dict
        The cache returned by :func:`forward_propagation` on the same batch.
    y : int array (m,)
        The labels the forward pass used.
    parameters, lambda_, activation, class_weights
        As given to :func:`forward_propagation`.

    Returns
    -------
    dict
        ``dW1..dWL`` and ``db1..dbL``, each shaped like its parameter.
    """
    dtype, L = network_layout(parameters)
    activation = as_activation(activation)
    lambda_ = as_lambda(lambda_)
    try:
        probs = cache["probs"]
        hs = [cache[f"h{l}"] for l in range(L)]
    except KeyError as missing:
        raise ValueError(f"cache lacks {missing}: pass the cache forward_propagation returned") from None
    if not isinstance(probs, np.ndarray) or probs.dtype != dtype or probs.ndim != 2:
        raise ValueError("cache['probs'] does not belong to these parameters (dtype or shape differs)")
    y = as_labels(y, probs.shape[0], probs.shape[1])
    weights = as_class_weights(class_weights, dtype)

    # keys in the MATLAB order (dW1, db1, dW2, ...) from the start, filled from layer L down
    gradients: dict[str, np.ndarray] = dict.fromkeys(g for _, g in parameter_names(L))
    dz = _core.softmax_cross_entropy_backward(probs, y, weights)
    # eq. 6's f'(z) of a ReLU is taken from its output h = hs[l - 1], the product's own X, so
    # dense_backward applies it in the pass that writes dh (relu_mask): the same bits as
    # activation_backward after it, without that call and its pass
    relu = activation == "relu"
    for l in range(L, 0, -1):
        W = parameters[f"W{l}"]
        dh, dW, db = _core.dense_backward(dz, hs[l - 1], W, lambda_, l > 1, relu and l > 1)
        gradients[f"dW{l}"] = dW
        gradients[f"db{l}"] = db.reshape(parameters[f"b{l}"].shape)
        if l > 1:
            dz = dh if relu else _core.activation_backward(dh, hs[l - 1], activation)
    return gradients

