"""playgrad's application layer: what the command-line scripts share.

``rl`` (the engine), ``envs``, ``agents`` and ``transfer`` are libraries; this package sits on top of
all four and holds the commands and the pieces several of them need, so no script imports another:

* :mod:`playgrad.cli` — the ``playgrad`` command: one module per command (``playgrad.cli.train``, ...), each
  with ``main(argv)``; ``scripts/NAME.py`` only runs it.
* :mod:`playgrad.training` — one training job, config (or a run to resume) in, run directory out.
* :mod:`playgrad.runs` — a run directory (or an original MetaCar agent) to an agent, or one line saying why not.
* :mod:`playgrad.recording` — an agent's episodes as a GIF, WebP or MP4.
* :mod:`playgrad.curves` — learning curves of runs, grouped by config and overrides, to a PNG.
* :mod:`playgrad.sweeps`, :mod:`playgrad.tuning` — many training jobs (seeds, grids, Optuna), locally or on Ray.
* :mod:`playgrad.sources` — a network to export or serve, from a run directory, a ``Model.save`` file
  or a named pretrained model.
* :mod:`playgrad.dashboard` — the web dashboard over a folder of runs (``scripts/dashboard.py``).
"""
