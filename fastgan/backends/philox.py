"""Philox4x32-10, the counter-based random stream every backend can draw, in plain NumPy.

Philox (Salmon et al. 2011, "Parallel random numbers: as easy as 1, 2, 3") maps a 128-bit
counter and a 64-bit key to four 32-bit words through ten rounds of multiply-high and xor.
fastgan's stream from a seed's key: draw number ``d`` sets element ``i`` of the array it fills
from word ``i % 4`` of the block with counter ``(i // 4, d)``, so a number depends only on
(key, d, i), never on the array's shape, the thread count or the device. The Numba kernel
(:mod:`.numba_kernels`) and the CUDA kernel (:mod:`.cuda_kernels`) compute the same words; this
module is their reference (and the NumPy backend's way to draw the stream).

A word ``x`` becomes a uniform ``u`` in [0, 1) as ``(x >> 8) 2^-24`` in float32 (exact) and
``x 2^-32`` in float64. The three kinds of draw:

* ``RNG_UNIFORM`` in [a, b): ``u (b - a) + a``;
* ``RNG_DROPOUT`` with rate ``a`` and scale ``b = 1/(1 - a)``: ``b`` where ``u >= a``, else 0;
* ``RNG_NORMAL``, Box-Muller on the word pairs (0, 1) and (2, 3) of a block:
  ``sqrt(-2 ln(1 - u0)) (cos, sin)(2 pi u1)``; ``1 - u0`` lies in (0, 1], so ``|z| <= 5.8``
  in float32.
"""

from __future__ import annotations

from typing import Any

import numpy as np

RNG_NORMAL, RNG_UNIFORM, RNG_DROPOUT = range(3)
MASK32 = 0xFFFFFFFF
MULTIPLIERS = (0xD2511F53, 0xCD9E8D57)
WEYL = (0x9E3779B9, 0xBB67AE85)     # the key's increment per round
UNIT_BITS = {4: (8, 2.0**-24), 8: (0, 2.0**-32)}
"""Item size -> (shift, scale): a word ``x`` becomes ``(x >> shift) scale`` in [0, 1)."""


def key_of(seed: int | np.random.SeedSequence) -> int:
    """The 64-bit Philox key of a seed: two 32-bit words of its SeedSequence."""
    if not isinstance(seed, np.random.SeedSequence):
        seed = np.random.SeedSequence(seed)
    low, high = seed.generate_state(2, np.uint32)
    return int(low) | int(high) << 32


def blocks(counter: Any, draw: int, key: int, xp: Any = np) -> list[Any]:
    """Philox4x32-10 of the blocks ``(counter, draw)`` (``counter`` a uint64 array): the four
    output words, each an array of ``counter``'s shape held in uint64."""
    u64 = xp.uint64
    mask, shift = u64(MASK32), u64(32)
    c = [counter & mask, counter >> shift, xp.full_like(counter, draw & MASK32),
         xp.full_like(counter, draw >> 32)]
    k0, k1 = key & MASK32, key >> 32
    for _ in range(10):
        p0, p1 = u64(MULTIPLIERS[0]) * c[0], u64(MULTIPLIERS[1]) * c[2]
        c = [(p1 >> shift) ^ c[1] ^ u64(k0), p1 & mask, (p0 >> shift) ^ c[3] ^ u64(k1), p0 & mask]
        k0, k1 = (k0 + WEYL[0]) & MASK32, (k1 + WEYL[1]) & MASK32
    return c


def fill(out: Any, key: int, draw: int, kind: int, a: float, b: float, xp: Any = np) -> None:
    """Fill ``out`` (in C order) from draw ``draw`` of the stream ``key`` (see the module
    docstring for the kinds and what ``a`` and ``b`` mean)."""
    real = out.dtype.type
    shift, scale = UNIT_BITS[out.dtype.itemsize]
    words = blocks(xp.arange(-(-out.size // 4), dtype=xp.uint64), draw, key, xp)
    unit = [(w >> xp.uint64(shift)).astype(out.dtype) * real(scale) for w in words]
    if kind == RNG_NORMAL:
        values = []
        for u0, u1 in ((unit[0], unit[1]), (unit[2], unit[3])):
            radius = xp.sqrt(real(-2) * xp.log(real(1) - u0))
            angle = real(2 * np.pi) * u1
            values += [radius * xp.cos(angle), radius * xp.sin(angle)]
    elif kind == RNG_UNIFORM:
        values = [u * (real(b) - real(a)) + real(a) for u in unit]
    elif kind == RNG_DROPOUT:
        values = [xp.where(u >= real(a), real(b), real(0)) for u in unit]
    else:
        raise ValueError(f"unknown kind of draw {kind}")
    out[...] = xp.stack(values, axis=1).reshape(-1)[:out.size].reshape(out.shape)
