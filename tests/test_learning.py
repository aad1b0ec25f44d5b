"""The whole stack learns: the `tiny` preset on a ring of 8 Gaussians covers the modes.

Coverage is measured from samples: a mode counts when at least 2% of 2,000 samples lie within
3 standard deviations (0.15) of its centre. A generator that had not learned the ring (noise,
one blob, a collapsed point) covers at most a mode or two.
"""

from __future__ import annotations

import numpy as np
import pytest

from fastgan import GAN, data

MODES = data.ring_modes()


def covered_modes(samples: np.ndarray) -> tuple[int, float]:
    """(modes holding >= 2% of the samples within 0.15, fraction of samples near any mode)."""
    distance = np.linalg.norm(samples[:, None, :] - MODES[None], axis=2)
    near = distance.min(axis=1) < 0.15
    counts = np.bincount(distance.argmin(axis=1)[near], minlength=len(MODES))
    return int((counts >= 0.02 * len(samples)).sum()), float(near.mean())


def test_coverage_measure_rejects_collapse_and_noise():
    rng = np.random.default_rng(0)
    assert covered_modes(np.tile(MODES[:1], (2000, 1)))[0] == 1
    assert covered_modes(rng.uniform(-1, 1, (2000, 2)))[0] <= 2
    real = data.ring(n=2000, seed=1).x
    assert covered_modes(real) == (8, pytest.approx(1 - np.exp(-4.5), abs=0.01))  # 2-D: P(r<3s)


@pytest.mark.slow
def test_tiny_gan_covers_the_ring(backend):
    ring = data.ring(n=8192, seed=0)
    gan = GAN.from_preset("tiny", data_dim=2, backend=backend, seed=0)
    rng = np.random.default_rng(0)
    history = []
    for step in range(1, 3001):
        gan.step(ring.x[rng.integers(0, len(ring), gan.batch_size)])
        if step % 500 == 0 and step >= 2000:
            history.append(covered_modes(gan.sample(2000)))
    best_modes, near_fraction = max(history)
    assert best_modes >= 6, f"modes covered at steps 2000..3000: {history}"
    assert near_fraction > 0.5, f"too few samples on the ring: {history}"
