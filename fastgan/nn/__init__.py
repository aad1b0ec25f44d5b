"""Networks: layer specs, flat parameters, layers, the MLP, losses, the R1 penalty, init,
optimizers, EMA.

Everything a network needs to compute, learn and be averaged, written against the backend
contract only. May import: ``backends`` and the leaves (``errors``); never numpy kernels of
its own, never the GAN, training or anything above.
"""
