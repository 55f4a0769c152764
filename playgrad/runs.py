"""Runs as the commands open them: a run directory (or an original MetaCar demo agent) to an agent, or one line
saying why not.

:func:`load_agent_or_report` is how ``evaluate``, ``record`` (and the dashboard's recordings, through
``record``) load what the user named, so they accept and refuse the same things with the same words.
"""

from __future__ import annotations

import sys

from agents.base import Agent
from agents.originals import OriginalAgentError, is_original_source, load_original
from agents.runner import CheckpointError, load_agent
from rl import backend
from rl.experiment import ConfigError
from rl.tfjs import TfjsFormatError


def load_agent_or_report(run_dir: str, tag: str = "best", device: str | None = None) -> Agent | None:
    """The run's agent (:func:`agents.runner.load_agent`), or ``None`` after printing why it cannot load.

    ``run_dir`` may instead name one of the original MetaCar demo's agents (:mod:`agents.originals`:
    ``original:ddpg-traffic``, a TF.js ``.json`` model, ``qtable.json`` or a folder holding one), which then
    plays in the env it was trained in, so the originals and ours are watched and scored the same way.
    """
    if is_original_source(run_dir):
        try:
            return load_original(run_dir)
        except (OriginalAgentError, TfjsFormatError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return None
    try:
        return load_agent(run_dir, tag=tag, device=device)
    except backend.BackendError as exc:
        print(f"error: {exc} (the run's config asks for it; pass --device cpu)", file=sys.stderr)
    except (ConfigError, CheckpointError) as exc:
        print(f"error: {exc}", file=sys.stderr)
    return None
