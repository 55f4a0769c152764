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

import numpy as np

from rl import backend, initializers
from rl.experiment import check_memory

__all__ = ["mlp", "mlp_input", "orthogonal"]


# Bytes each weight costs while training: float32 value, gradient and Adam's two moments, plus the float64
# draw a layer's initializer makes before casting.
BYTES_PER_WEIGHT = 4 * 4 + 8


def check_network_memory(key: str, dense_chain: Sequence[int], extra_weights: int = 0) -> None:
    """Refuse (ConfigError naming ``key``) a network too big to train, before any layer is built.

    Args:
        key: the config key(s) that size the network.
        dense_chain: widths of a chain of Dense layers, input first (``[4, 64, 64, 2]``).
        extra_weights: weights outside the chain (convolutions, a second input branch).
    """
    weights = extra_weights + sum((a + 1) * b for a, b in zip(dense_chain, dense_chain[1:]))
    check_memory(key, weights * BYTES_PER_WEIGHT, f"a network of {weights:,} weights")


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
    key: str = "agent.hidden",
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
        key: the config key ``hidden`` comes from, named if the network is too big to train.
    Returns:
        an :class:`rl.models.Sequential` (``model(x)``, ``model.parameters()``, ``state_dict()``).
    """
    check_network_memory(key, [in_dim, *hidden, out_dim])
    from rl.layers import Dense  # noqa: PLC0415 - keeps this module importable while rl grows
    from rl.models import Sequential  # noqa: PLC0415

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


def mlp_input(obs: Any) -> Any:
    """Observations ``(B, *obs_shape)`` (host or device) as an MLP takes them: float32 ``(B, obs_dim)`` on
    the active device, ``obs_dim = prod(obs_shape)`` (a Snake board or a MetaCar lidar grid is flattened)."""
    return backend.to_device(obs, dtype=np.float32).reshape(len(obs), -1)


# ------------------------------------------------------------------------------- DQN (agents/dqn.py)
def conv_q_network(
    obs_shape: Sequence[int],
    num_actions: int,
    filters: Sequence[int] = (128, 256, 256),
    kernel_size: int = 3,
    batch_norm: bool = True,
    dense_units: Sequence[int] = (100,),
    dropout: float = 0.25,
    key: str = "agent.conv_filters, agent.hidden_sizes",
) -> Any:
    """A convolutional Q-network ``(B, H, W, C) -> (B, num_actions)``, built at once.

    The defaults are the TensorFlow.js book's snake-dqn network (``snake-dqn/dqn.js``), on a 9x9x2
    board 1,120,019 weights: three valid-padded ReLU convolutions (128, 256, 256 filters, 3x3)
    with batch normalization after all but the last, flatten, Dense(100, relu), Dropout(0.25), and a
    linear Dense(num_actions). Smaller settings (``filters=(16, 32)``, ``batch_norm=False``,
    ``dropout=0``) make a CPU-sized net of the same shape. Kernels glorot_uniform, biases zero
    (the Keras/TF.js defaults the book uses).

    Args:
        obs_shape: one observation, ``(H, W, C)`` channels last.
        num_actions: output units, one Q-value per action.
        filters: output channels of each convolution.
        kernel_size: square kernel of every convolution (stride 1, no padding).
        batch_norm: put BatchNormalization after every convolution but the last.
        dense_units: hidden Dense(relu) layers after the flatten.
        dropout: dropout rate after the last hidden Dense (0 for none).
        key: the config keys that size the network, named if it is too big to train.
    """
    from rl.layers import BatchNormalization, Conv2D, Dense, Dropout, Flatten  # noqa: PLC0415
    from rl.models import Sequential  # noqa: PLC0415

    if len(obs_shape) != 3:
        raise ValueError(f"conv_q_network needs image observations (H, W, C), got shape {tuple(obs_shape)}")
    shrink = len(filters) * (kernel_size - 1)  # each valid convolution takes kernel_size - 1 rows and columns
    if min(obs_shape[0], obs_shape[1]) - shrink < 1:
        raise ValueError(
            f"a {obs_shape[0]}x{obs_shape[1]} board is too small for {len(filters)} valid {kernel_size}x{kernel_size} "
            f"convolutions (they need at least {shrink + 1}x{shrink + 1}): use a larger board or fewer conv_filters"
        )
    channels = [int(obs_shape[2]), *(int(n) for n in filters)]
    flat = (obs_shape[0] - shrink) * (obs_shape[1] - shrink) * channels[-1]
    conv_weights = sum((kernel_size**2 * a + 1) * b for a, b in zip(channels, channels[1:]))
    check_network_memory(key, [flat, *dense_units, num_actions], extra_weights=conv_weights)
    layers: list[Any] = []
    for i, n in enumerate(filters):
        kwargs = {"input_shape": tuple(int(s) for s in obs_shape)} if i == 0 else {}
        layers.append(Conv2D(int(n), kernel_size, activation="relu", **kwargs))
        if batch_norm and i < len(filters) - 1:
            layers.append(BatchNormalization())
    layers.append(Flatten(**({} if filters else {"input_shape": tuple(obs_shape)})))
    for units in dense_units:
        layers.append(Dense(int(units), activation="relu"))
    if dropout > 0:
        layers.append(Dropout(dropout))
    layers.append(Dense(int(num_actions)))
    return Sequential(layers)


# ------------------------------------------------------------------------------- DDPG (agents/ddpg.py)
def ddpg_actor(
    obs_dim: int,
    act_dim: int,
    hidden: Sequence[int] = (64, 32),
    activation: str = "relu",
    out_init: str = "uniform",
    out_init_scale: float = 3e-3,
    name: str = "actor",
    key: str = "agent.actor_hidden",
) -> Any:
    """The deterministic policy ``mu(s)``: ``(B, obs_dim) -> (B, act_dim)`` in [-1, 1], built at once.

    MetaCar's DDPG demo (spec §6.3): Dense(64, relu) -> Dense(32, relu) -> Dense(act_dim, tanh), hidden
    kernels glorot_uniform, zero biases. The output kernel is tiny so the first actions are near 0 and the
    first actor gradients come from a critic that has not yet saturated the tanh: ``out_init="uniform"``
    draws it from U(-scale, scale) (the DDPG paper's 3e-3); ``"constant"`` fills it with ``+scale``, as the
    demo's ``randomUniform(0.003, 0.003)`` does (most likely a bug there, kept reproducible here).
    """
    from rl.layers import Dense  # noqa: PLC0415
    from rl.models import Sequential  # noqa: PLC0415

    check_network_memory(key, [obs_dim, *hidden, act_dim])
    layers = []
    for i, units in enumerate(hidden):
        kwargs = {"input_shape": (obs_dim,)} if i == 0 else {}
        layers.append(Dense(int(units), activation=activation, **kwargs))
    out_kwargs = {} if hidden else {"input_shape": (obs_dim,)}
    layers.append(Dense(act_dim, activation="tanh", kernel_initializer=_small_init(out_init, out_init_scale),
                        **out_kwargs))
    return Sequential(layers, name=name)


def ddpg_critic(
    obs_dim: int,
    act_dim: int,
    obs_units: int = 64,
    action_units: int = 64,
    hidden: Sequence[int] = (32,),
    merge_activation: str | None = None,
    activation: str = "relu",
    out_init: str = "uniform",
    out_init_scale: float = 3e-3,
    name: str = "critic",
    key: str = "agent.critic_obs_units, agent.critic_hidden",
) -> Any:
    """The action value ``Q(s, a)``: called as ``critic([obs (B, obs_dim), act (B, act_dim)]) -> (B, 1)``.

    The demo's two-branch shape (spec §6.3): Dense(obs_units)(s) + Dense(action_units)(a) merged by Add,
    then the ``hidden`` Dense(relu) layers and a linear Dense(1). The demo applies no activation after the
    Add (``merge_activation=None``; its comment promises a ReLU that never comes); ``"relu"`` adds it.
    """
    from rl.layers import Activation, Add, Dense, Input  # noqa: PLC0415
    from rl.models import Model  # noqa: PLC0415

    if obs_units != action_units:
        raise ValueError(f"the critic adds its two branches, so obs_units ({obs_units}) must equal "
                         f"action_units ({action_units})")
    check_network_memory(key, [obs_units, *hidden, 1], extra_weights=(obs_dim + act_dim + 2) * obs_units)
    s, a = Input((obs_dim,)), Input((act_dim,))
    h = Add()([Dense(int(obs_units))(s), Dense(int(action_units))(a)])
    if merge_activation not in (None, "linear"):
        h = Activation(merge_activation)(h)
    for units in hidden:
        h = Dense(int(units), activation=activation)(h)
    q = Dense(1, kernel_initializer=_small_init(out_init, out_init_scale))(h)
    return Model([s, a], q, name=name)


def _small_init(kind: str, scale: float) -> Any:
    if kind == "uniform":
        return initializers.RandomUniform(-scale, scale)
    if kind == "constant":
        return initializers.Constant(scale)
    raise ValueError(f"out_init must be 'uniform' or 'constant', got {kind!r}")
