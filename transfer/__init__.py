"""Pretrained feature extractors and fine-tuning: torchvision's MobileNetV2 on the ``rl`` core.

Modules: :mod:`transfer.mobilenet_v2` (the network, its torch weight loader, a fast folded
inference path), :mod:`transfer.api` (cut, freeze by block, heads, embedding cache, fine-tuning
with two learning rates), :mod:`transfer.data` (image folders, scikit-learn digits),
:mod:`transfer.preprocessing` (ImageNet input pipeline), :mod:`transfer.weights` (fetching the
checkpoint) and :mod:`transfer.torch_reader` (reading ``.pth`` files without torch).
"""
