"""CartPole: Gymnasium's CartPole-v1 physics (and the TensorFlow.js book's variant) as a batched
array core (``core``), a single env (``env``), a native vector env (``vector``), a pygame renderer
(``render``) and keyboard controls for ``scripts/play.py`` (``controls``)."""
