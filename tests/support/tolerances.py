"""Parity and gradient tolerances, stated once, each with the reason it is safe.

Every test that compares a backend with the NumPy reference (or with a formula), and every
finite-difference check, takes its tolerance from here. "Safe" means two things: a correct
backend passes on any CPU (OpenBLAS picks its kernels per CPU, and their summation orders
differ), and a wrong one (a missing term, a wrong sign, a transposed operand: errors of order
1) fails by orders of magnitude.

Measured margin (``FASTGAN_TOLERANCE_SCALE=0.1`` divides every tolerance below by 10): 472 of
the 473 parity, gradient and kernel tests still pass under OpenBLAS's own kernel; the one that
fails is float32 col2im, 1.2e-7 off (one ulp of its summands) against KERNEL's atol 1e-6.
``nox -s tests-cpus`` runs these tests once per OpenBLAS kernel at the stated tolerances.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

# Divides nothing in normal runs; set below 1 to measure how much margin the tolerances have.
SCALE = float(os.environ.get("FASTGAN_TOLERANCE_SCALE", "1"))


def _scaled(table: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    return {dtype: {k: v * SCALE for k, v in tols.items()} for dtype, tols in table.items()}


# One kernel against the NumPy reference (or a closed-form formula) on fresh random inputs of
# size O(1). float32: unit roundoff u = 6e-8; a fused kernel rounds once where NumPy rounds
# after every operator (a few u apart), a GEMM's summation order is the BLAS kernel's (error
# <= n u sum|a||b| for inner size n <= 9 here, ~5e-7), and the float32 tanh is a rational
# approximation good to 5e-7: rtol 1e-5 leaves > 10x. float64: u = 1.1e-16, the same
# arguments give ~1e-15 relative; rtol 1e-12 leaves > 100x, atol covers results near 0.
KERNEL = _scaled({"float32": {"rtol": 1e-5, "atol": 1e-6},
                  "float64": {"rtol": 1e-12, "atol": 1e-14}})

# The CUDA source (on a GPU, or compiled for the CPU by tests/support/cuda_emulator.py) against the
# NumPy reference: its exp/tanh are CUDA's libdevice functions (float32: <= 2 ulp) and the
# compiler contracts a*b+c into FMAs, so float32 gets twice KERNEL's room; GEMMs of inner size
# 70 and reductions over up to 300 rows scale ``atol`` by the caller (``scale``).
DEVICE_KERNEL = _scaled({"float32": {"rtol": 2e-5, "atol": 2e-6},
                         "float64": {"rtol": 1e-12, "atol": 1e-13}})

# N whole training steps from the same weights and noise, CPU backends (tests/test_parity.py):
# ||p_fast - p_ref|| <= params * ||p_ref - p_start|| (the gap as a fraction of how far
# training moved), losses, D outputs and batch-norm statistics within ``stats`` (relative and
# absolute). Kernel differences of KERNEL's size compound through Adam over 20 steps; measured
# worst case for numba: params gap 3e-6 (float32), 1.1e-12 (float64); stats 1.2e-7, 3.5e-15.
# Kinks: these bounds assume no pre-activation lies within rounding of a (Leaky)ReLU's kink at
# 0. One that does may take the derivative 1 on one backend and alpha (or 0) on the other,
# which changes that sample's gradient by O(1), not O(u). Measured: keras-dcgan at full size,
# batch 8, float32, one BLAS thread: a D pre-activation of 9e-10 (the layer's values ~1e-2)
# had opposite signs on numpy and numba, and G's gradient came out 1e-3 apart, 10x over
# ``params``; the same step on two BLAS threads rounds differently and agrees to 7e-6. The
# chance grows with the pre-activations a step has (~10^5 there) times u, so whole steps at
# full size run in float64 (u = 1.1e-16: no flip in practice), and float32 steps use small
# networks (10^2 to 10^3 pre-activations a step).
STEPS = _scaled({"float32": {"params": 1e-4, "stats": 1e-5},
                 "float64": {"params": 1e-10, "stats": 1e-12}})

# 20 whole steps of the CUDA source against NumPy, every array of the state compared
# elementwise (weights, Adam moments, statistics): DEVICE_KERNEL's differences compounded
# over 20 Adam steps, which divide by sqrt(v) and so amplify tiny gradients' rounding.
DEVICE_STEPS = _scaled({"float32": {"rtol": 1e-4, "atol": 1e-5},
                        "float64": {"rtol": 1e-10, "atol": 1e-12}})

# Central finite differences in float64 (tests/support/gradcheck.py): with step eps the truncation
# error is eps^2 |L'''| / 6 ~ 1e-12 and the rounding error u |L| / eps ~ 1e-10 |L|, so a
# correct gradient agrees to ~1e-9 relative; rtol 1e-5 leaves 1e4x, and a wrong gradient
# (an error of order 1) fails by 1e5x. atol covers derivatives that are 0.
GRADIENT = {"eps": 1e-6, "rtol": 1e-5 * SCALE, "atol": 1e-8 * SCALE}


def kernel(dtype: Any) -> dict[str, float]:
    """KERNEL's ``rtol`` and ``atol`` for ``dtype`` (a name, numpy dtype or type)."""
    return KERNEL[np.dtype(dtype).name]


def device_kernel(dtype: Any) -> dict[str, float]:
    """DEVICE_KERNEL's ``rtol`` and ``atol`` for ``dtype``."""
    return DEVICE_KERNEL[np.dtype(dtype).name]


def steps(dtype: Any) -> dict[str, float]:
    """STEPS's ``params`` and ``stats`` for ``dtype``."""
    return STEPS[np.dtype(dtype).name]


def device_steps(dtype: Any) -> dict[str, float]:
    """DEVICE_STEPS's ``rtol`` and ``atol`` for ``dtype``."""
    return DEVICE_STEPS[np.dtype(dtype).name]
