"""The GAN: its settings (one GANConfig), a generator and a discriminator with their training
rule (one step), the presets the tutorials define, loading a GAN from a checkpoint, and the
step replayed as a CUDA graph.

May import: ``training``, ``nn``, ``backends`` and the leaves. Nothing here knows run folders,
evaluation, benchmarks or the command line.
"""
