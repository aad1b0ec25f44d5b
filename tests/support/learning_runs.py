"""The training runs that the learning tests judge, written once for the tests and for
``tests/support/learning_stats.py``, which repeats them over many seeds and OpenBLAS kernels.

A run's trajectory depends on the machine (OpenBLAS picks its kernels per CPU, and so rounds
differently), so a test never asserts on one run's path: it asserts a rule that held, with
margin, for every seed and kernel the script measured (figures in each test's docstring).
"""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Any

import numpy as np
from threadpoolctl import threadpool_info

from fastgan import GAN, data
from fastgan.evaluation import classifier
from fastgan.evaluation.metrics import Evaluator

MODES = data.ring_modes()


def openblas_kernel() -> str:
    """The kernel of each loaded OpenBLAS (numpy's, and scipy's once imported), as
    threadpoolctl reads it back, and OPENBLAS_CORETYPE: an unknown forced name falls back
    silently to the CPU's own kernel."""
    names = sorted({i.get("architecture", "?") for i in threadpool_info()
                    if i.get("internal_api") == "openblas"})
    forced = os.environ.get("OPENBLAS_CORETYPE", "unset")
    return f"{', '.join(names) or 'no OpenBLAS loaded'} (OPENBLAS_CORETYPE={forced})"

RING_STEPS = 3000
RING_CHECK_EVERY = 250
RING_JUDGED_FROM = 2000   # the tests judge the checks at steps 2000, 2250, ..., 3000
RING_SAMPLES = 2000


def covered_modes(samples: np.ndarray) -> tuple[int, float]:
    """(modes holding >= 2% of the samples within 0.15, fraction of samples near any mode).

    0.15 is 3 standard deviations of the ring's Gaussians.
    """
    distance = np.linalg.norm(samples[:, None, :] - MODES[None], axis=2)
    near = distance.min(axis=1) < 0.15
    counts = np.bincount(distance.argmin(axis=1)[near], minlength=len(MODES))
    return int((counts >= 0.02 * len(samples)).sum()), float(near.mean())


def ring_checks(backend: Any, seed: int, steps: int = RING_STEPS,
                every: int = RING_CHECK_EVERY) -> list[tuple[int, int, float]]:
    """Train `tiny` on a ring of 8 Gaussians (8192 points) with ``seed`` for the data, the
    weights, the noise and the batch order; every ``every`` steps (and before the first)
    :func:`covered_modes` of 2000 samples, as (step, modes, fraction near a mode)."""
    ring = data.ring(n=8192, seed=seed)
    gan = GAN.from_preset("tiny", data_dim=2, backend=backend, seed=seed)
    rng = np.random.default_rng(seed)
    checks = [(0, *covered_modes(gan.sample(RING_SAMPLES)))]
    for step in range(1, steps + 1):
        gan.step(ring.x[rng.integers(0, len(ring), gan.batch_size)])
        if step % every == 0:
            checks.append((step, *covered_modes(gan.sample(RING_SAMPLES))))
    return checks


def digits_gan_reports(backend: Any, seed: int, evaluator: Evaluator,
                       steps: int = 3000) -> tuple[dict, dict]:
    """The evaluation report of an untrained `tiny` GAN on the 8x8 digits and of the same GAN
    after ``steps`` steps of ``fit`` (batches of 128), all seeded with ``seed``."""
    digits = data.load("digits")
    gan = GAN.from_preset("tiny", data_dim=digits.n_features, backend=backend, seed=seed)
    before = evaluator.evaluate(gan)
    gan.fit(digits, steps=steps)
    return before, evaluator.evaluate(gan)


def digits_classifier(backend: Any, seed: int) -> classifier.Classifier:
    """The digits evaluation classifier (the default recipe) trained with ``seed``."""
    train, test = data.load("digits"), data.load("digits", split="test")
    config = replace(classifier.default_config(train.n_features), seed=seed)
    return classifier.train(train, test, config, backend=backend)


def real_against_real(evaluator: Evaluator, name: str, n: int) -> dict:
    """The report of test images [n, 2n) against a reference of train images [0, n), whose
    real-vs-real value comes from test images [0, n): real data scored as if generated."""
    train, test = data.load(name), data.load(name, split="test")
    return Evaluator(evaluator.classifier, train.x[:n], test.x[:n]).report(test.x[n:2 * n])


def collapsed_reports(evaluator: Evaluator) -> list[dict]:
    """Reports of two collapsed generators: one real test digit repeated, and a blank white
    image repeated (off the data manifold)."""
    real_digit, white = data.load("digits", split="test").x[0], np.ones(64, np.float32)
    return [evaluator.report(np.repeat(image[None], evaluator.n, axis=0))
            for image in (real_digit, white)]


# An evaluation-classifier recipe that trains in a blink (2 epochs of a 16-unit net): for
# plumbing tests, whose only quality check is that it beats chance by far.
QUICK_RECIPE = classifier.ClassifierConfig(hidden=(16,), epochs=2, batch_size=50, lr=1e-2)


def torch_blob_run(seed: int, steps: int = 200) -> tuple[float, float, dict[str, float]]:
    """The PyTorch peer's `tiny` preset trained ``steps`` steps on a 2-D Gaussian blob
    (centre (0.5, -0.4), std 0.05) from ``seed``: the distance of the mean of 2000 generated
    points to the centre before and after, and the last step's statistics."""
    import torch

    from fastgan.benchmarking.torch_peer import TorchGAN
    from fastgan.gan import presets

    torch.manual_seed(seed)
    peer = TorchGAN(presets.get("tiny", data_dim=2), seed=seed)
    centre = torch.tensor([0.5, -0.4])

    def distance_to_centre() -> float:
        with torch.no_grad():
            fakes = peer.generator(torch.randn(2000, peer.preset.latent_dim))
        return (fakes.mean(0) - centre).norm().item()

    start = distance_to_centre()
    for _ in range(steps):
        peer.step(centre + 0.05 * torch.randn(peer.preset.batch_size, 2))
    return start, distance_to_centre(), peer.stats()
