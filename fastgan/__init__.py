"""fastgan: MLP GANs with hand-derived gradients on NumPy, Numba and CuPy backends."""
