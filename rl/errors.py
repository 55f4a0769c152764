"""The errors playgrad raises about things a user controls: files, configs, devices, diverging training.

One small hierarchy, so a program can catch all of them at once (``except PlaygradError``) or one kind.
Each also derives from the built-in exception it was before this module existed (``ValueError``,
``RuntimeError``, ``FloatingPointError``), so code that caught those keeps working.

This module imports nothing: every other module, at any floor of the package, may raise these.

========================  ======================================  =====================================
class                     raised when                             also a
========================  ======================================  =====================================
``PlaygradError``         (base class only)                       ``Exception``
``CheckpointError``       a checkpoint or weights file is          ``ValueError``
                          missing, truncated, corrupt, hostile,
                          or does not fit the model / agent
``NonFiniteLossError``    a training loss or saved array became    ``FloatingPointError``,
                          NaN or infinite                          ``RuntimeError``
``ConfigError``           a config file or override is wrong       ``ValueError``
``BackendError``          a requested device cannot be used        ``RuntimeError``
========================  ======================================  =====================================

Messages name the file, the place and, where there is one, the fix.
"""

from __future__ import annotations

__all__ = ["BackendError", "CheckpointError", "ConfigError", "NonFiniteLossError", "PlaygradError"]


class PlaygradError(Exception):
    """Base class of every error playgrad raises on purpose; the message says what is wrong and where."""


class CheckpointError(PlaygradError, ValueError):
    """A checkpoint file cannot be used; the message names the file and, where known, the tensor."""


class NonFiniteLossError(PlaygradError, FloatingPointError, RuntimeError):
    """A loss (or an array about to be saved) became NaN or infinite; the message says where and what was kept."""


class ConfigError(PlaygradError, ValueError):
    """A config file or override is wrong; the message names the file, the place and the fix."""


class BackendError(PlaygradError, RuntimeError):
    """A requested device cannot be used; the message says why."""
