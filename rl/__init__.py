"""playgrad's engine: tensors with autograd, layers and models, optimizers, training, checkpoints.

The names most scripts need are here::

    import rl
    from rl.layers import Dense
    model = rl.Sequential([Dense(64, activation="relu", input_shape=(4,)), Dense(2)])
    with rl.no_grad():
        q = model(obs)

Submodules: ``rl.errors`` (the exceptions to catch: ``rl.errors.PlaygradError`` and its kinds),
``rl.backend`` (NumPy/CuPy seam), ``rl.tensor``, ``rl.functional`` (also ``rl.F``), ``rl.nn_ops``,
``rl.initializers``, ``rl.layer_base``, ``rl.layers``, ``rl.models`` (which bring in
``rl.training``, ``rl.callbacks``, ``rl.checkpoint``, ``rl.files``, ``rl.optimizers`` and
``rl.losses``), ``rl.random``, and, imported on first use, ``rl.schedules``, ``rl.experiment``,
``rl.gradcheck``, ``rl.data``. ``python -m rl info`` reports the backend and versions.
"""

from __future__ import annotations

import importlib
from typing import Any

from rl import backend, errors, initializers, layers, models, random
from rl import functional as F
from rl.models import Input, Model, Sequential, load_model, model_from_config
from rl.random import seed
from rl.tensor import Tensor, as_tensor, config, no_grad, tensor, using_config

functional = F

__all__ = [
    "F",
    "Input",
    "Model",
    "Sequential",
    "Tensor",
    "as_tensor",
    "backend",
    "config",
    "errors",
    "functional",
    "initializers",
    "layers",
    "load_model",
    "model_from_config",
    "models",
    "no_grad",
    "random",
    "seed",
    "tensor",
    "using_config",
]

# Imported on first attribute access: they are optional for the core and some import heavier things.
_LAZY = ("losses", "optimizers", "schedules", "training", "checkpoint", "experiment", "gradcheck", "nn_ops",
         "callbacks", "data", "files", "layer_base")


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module = importlib.import_module(f"rl.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'rl' has no attribute {name!r}")
