"""Snake: the TensorFlow.js book's snake game as a batched array core (``core``), a single env
(``env``), a native vector env (``vector``), a pygame renderer (``render``) and keyboard controls
for ``scripts/play.py`` (``controls``)."""
