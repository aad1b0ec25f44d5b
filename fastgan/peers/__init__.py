"""Peers: fastgan's training algorithm written in other frameworks, for side-by-side benchmarks.

Nothing here is imported by ``import fastgan``. Import a peer module explicitly when you want
it: ``from fastgan.peers.torch_gan import TorchGAN`` needs PyTorch (the ``compare`` extra) and
raises :class:`~fastgan.errors.BackendUnavailable` where it cannot be imported.
"""
