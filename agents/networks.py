"""Network builders the agents share: multilayer perceptrons on :mod:`rl.layers`.

``mlp(4, [64, 64], 2)`` is ``Sequential([Dense(64, tanh), Dense(64, tanh), Dense(2)])`` built for
inputs of 4 features, so its weights exist (and are drawn from the seeded default generator) as
soon as it is made. Initialisation follows the PPO literature when asked: orthogonal kernels with
gain sqrt(2) in hidden layers and a small gain on the policy head (0.01) so the first policy is
nearly uniform; Keras' glorot_uniform otherwise (what the TensorFlow.js book's models use).

Other agents may append their own builders at the end of this file.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from rl import initializers

__all__ = ["mlp", "orthogonal"]


def orthogonal(gain: float) -> Any:
    """An orthogonal kernel initializer scaled by ``gain`` (Saxe et al.; PPO's default)."""
    return initializers.Orthogonal(gain=gain)


def mlp(
    in_dim: int,
    hidden: Sequence[int],
    out_dim: int,
    activation: str = "tanh",
    out_activation: str | None = None,
    init: str = "glorot_uniform",
    out_gain: float = 1.0,
    name: str | None = None,
) -> Any:
    """A fully connected network ``(B, in_dim) -> (B, out_dim)``, built at once.

    Args:
        in_dim: input features.
        hidden: units of each hidden layer (``[]`` gives a linear model).
        out_dim: output units.
        activation: Keras activation name of the hidden layers (``"tanh"``, ``"relu"``, ``"elu"``).
        out_activation: activation of the output layer (None: linear, e.g. logits or a value).
        init: ``"orthogonal"`` (hidden gain sqrt(2), output gain ``out_gain``, zero biases) or any
            Keras initializer name for every kernel (``"glorot_uniform"``, ``"random_normal"``...).
        out_gain: gain of the output layer's orthogonal kernel (0.01 for policy logits, 1 for values).
        name: the model's name.
    Returns:
        an :class:`rl.models.Sequential` (``model(x)``, ``model.parameters()``, ``state_dict()``).
    """
    from rl.models import Sequential  # noqa: PLC0415

    from rl.layers import Dense  # noqa: PLC0415 - keeps this module importable while rl grows

    if init == "orthogonal":
        hidden_init, out_init = orthogonal(math.sqrt(2.0)), orthogonal(out_gain)
    else:
        hidden_init = out_init = init
    layers = []
    for i, units in enumerate(hidden):
        kwargs = {"input_shape": (in_dim,)} if i == 0 else {}
        layers.append(Dense(units, activation=activation, kernel_initializer=hidden_init, **kwargs))
    out_kwargs = {} if hidden else {"input_shape": (in_dim,)}
    layers.append(Dense(out_dim, activation=out_activation, kernel_initializer=out_init, **out_kwargs))
    return Sequential(layers, name=name) if name is not None else Sequential(layers)
