"""Export: a trained network written for other runtimes (ONNX, PyTorch, plain NumPy arrays).

Every format reads the one walk over a network's layers (:mod:`fastgan.export.walk`), built
from the GAN's :class:`~fastgan.gan.config.GANConfig` and its weights; may import ``gan``,
``benchmarking`` (the PyTorch peer's architecture), ``nn``, ``backends`` and the leaves.
"""

from .api import FORMATS, NETWORKS, export

__all__ = ["FORMATS", "NETWORKS", "export"]
