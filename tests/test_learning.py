"""The whole stack learns: the `tiny` preset on a ring of 8 Gaussians covers the modes.

Coverage is measured from samples (learning_runs.covered_modes): a mode counts when at least
2% of 2,000 samples lie within 3 standard deviations (0.15) of its centre, and the fraction of
samples within 0.15 of any mode says how much of the mass sits on the ring. A run is judged by
its best checkpoint between steps 2000 and 3000, each statistic on its own: the mode count
swings by a mode or two from one checkpoint to the next as the generator moves its mass, and
how it swings depends on the machine (OpenBLAS's kernel), never on whether the stack learns.
"""

from __future__ import annotations

import numpy as np
import pytest
from support.learning_runs import MODES, RING_JUDGED_FROM, covered_modes, ring_checks

from fastgan import data

# The rule, set below the worst of 40 measured runs (tests/support/learning_stats.py ring): the
# figures are in test_tiny_gan_covers_the_ring's docstring.
MIN_MODES = 5
MIN_NEAR_FRACTION = 0.5


def covers_the_ring(modes: int, near_fraction: float) -> bool:
    """The rule a trained generator meets: enough modes, and most samples on the ring."""
    return modes >= MIN_MODES and near_fraction > MIN_NEAR_FRACTION


def best_checkpoint(checks: list[tuple[int, int, float]]) -> tuple[int, float]:
    """(most modes, highest near fraction) over the checks from RING_JUDGED_FROM on, each
    statistic taken on its own (not the tuple order, which would rank by modes first)."""
    judged = [check for check in checks if check[0] >= RING_JUDGED_FROM]
    return max(modes for _, modes, _ in judged), max(near for _, _, near in judged)


def test_coverage_rule_rejects_collapse_and_noise():
    """The negative controls: one collapsed point is all on the ring but covers one mode;
    uniform noise covers at most two with ~14% of its samples near a mode (8 discs of radius
    0.15 in the square [-1, 1]^2); the real ring passes."""
    rng = np.random.default_rng(0)
    collapsed = covered_modes(np.tile(MODES[:1], (2000, 1)))
    noise = covered_modes(rng.uniform(-1, 1, (2000, 2)))
    real = covered_modes(data.ring(n=2000, seed=1).x)
    assert collapsed == (1, 1.0) and not covers_the_ring(*collapsed)
    assert noise[0] <= 2 and noise[1] < 0.2 and not covers_the_ring(*noise)
    assert real == (8, pytest.approx(1 - np.exp(-4.5), abs=0.01))  # 2-D: P(r<3s)
    assert covers_the_ring(*real)


def test_best_checkpoint_takes_each_statistic_on_its_own():
    """The issue's failing history (SkylakeX): max() over tuples picked (6, 0.637)."""
    checks = [(1750, 8, 0.2), (2000, 7, 0.435), (2500, 6, 0.637), (3000, 6, 0.7295)]
    assert best_checkpoint(checks) == (7, 0.7295)


@pytest.mark.slow
def test_tiny_gan_covers_the_ring(backend):
    """3000 steps of batch 128 (seed 0), checks every 250 steps, judged from step 2000.

    Measured (tests/support/learning_stats.py ring; best modes / best near fraction, both
    backends): OpenBLAS's own Haswell kernel, seeds 0-11 (checks at 2000, 2500, 3000 only):
    6-8 / 0.664-0.805; Sandybridge, seeds 0-2: 7-8 / 0.720-0.795; Prescott, seeds 1-2: 8 /
    0.747-0.790; Nehalem, seed 0: 7-8 / 0.735-0.773; seed 0 under Prescott (here) and
    SkylakeX (the issue's AVX-512 machine), where the old rule failed: 7-8 / 0.697-0.741.
    Untrained (step 0): 1-3 modes, near fraction 0.047-0.134. The rule (>= 5 modes, near
    fraction > 0.5) holds for all 40 runs with a mode and 0.16 to spare, and fails for the
    untrained generator, noise and a collapsed point.
    """
    checks = ring_checks(backend, seed=0)
    untrained = checks[0][1:]
    assert not covers_the_ring(*untrained), f"untrained generator passes: {untrained}"
    modes, near_fraction = best_checkpoint(checks)
    assert modes >= MIN_MODES, f"too few modes at steps {RING_JUDGED_FROM}..: {checks}"
    assert near_fraction > MIN_NEAR_FRACTION, f"too few samples on the ring: {checks}"
