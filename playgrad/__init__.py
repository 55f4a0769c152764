"""playgrad's application layer: what the command-line scripts share.

``rl`` (the engine), ``envs``, ``agents`` and ``transfer`` are libraries; this package sits on top of
all four and holds the pieces that several scripts need, so no script imports another:

* :mod:`playgrad.sources` — a network to export or serve, from a run directory, a ``Model.save`` file
  or a named pretrained model.
* :mod:`playgrad.dashboard` — the web dashboard over a folder of runs (``scripts/dashboard.py``).
"""
