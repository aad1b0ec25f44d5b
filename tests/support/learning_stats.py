"""Measure the statistic of each learning test over many seeds and print its distribution.

The learning tests assert rules set from these figures, with margin, so that they hold on any
machine: OpenBLAS picks its kernels per CPU, and a different kernel rounds differently and so
trains along a different trajectory. Run once per kernel to see its effect::

    python tests/support/learning_stats.py ring --seeds 10
    OPENBLAS_CORETYPE=Sandybridge python tests/support/learning_stats.py ring --seeds 10

Subcommands: ``ring`` (test_learning.py), ``digits-gan``, ``digits-classifier``
(test_learning_quality.py), ``quick-classifier`` (test_classifier.py), ``torch-blob``
(test_torch_peer.py). The header names the OpenBLAS kernel in use, read back with
threadpoolctl (an unknown ``OPENBLAS_CORETYPE`` silently falls back to the CPU's own).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fastgan import data
from fastgan.evaluation import classifier
from fastgan.evaluation.classifier import ClassifierConfig
from fastgan.evaluation.metrics import Evaluator
from support import learning_runs as runs


def summarize(label: str, values: Sequence[float]) -> str:
    """One line: min, median, max of ``values``."""
    return (f"  {label}: min {min(values):.4g}  median {statistics.median(values):.4g}  "
            f"max {max(values):.4g}  (n={len(values)})")


def measure_ring(backend: str, seeds: range) -> None:
    """Per seed: modes and near-fraction at every check, then the test's statistics."""
    best_modes, best_near, untrained = [], [], []
    for seed in seeds:
        checks = runs.ring_checks(backend, seed)
        trained = [c for c in checks if c[0] >= runs.RING_JUDGED_FROM]
        best_modes.append(max(c[1] for c in trained))
        best_near.append(max(c[2] for c in trained))
        untrained.append(checks[0][1:])
        print(f"{backend:6s} seed {seed:2d}: " + "  ".join(
            f"{step}:{modes}/{near:.3f}" for step, modes, near in checks), flush=True)
    judged = f"steps >= {runs.RING_JUDGED_FROM}"
    print(summarize(f"{backend} best modes, {judged}", best_modes))
    print(summarize(f"{backend} best near fraction, {judged}", best_near))
    print(summarize(f"{backend} untrained modes", [u[0] for u in untrained]))
    print(summarize(f"{backend} untrained near fraction", [u[1] for u in untrained]))


def _digits_evaluator(cache: Path) -> Evaluator:
    return Evaluator.for_dataset("digits", cache_dir=cache)


def measure_digits_gan(backend: str, seeds: range, cache: Path) -> None:
    """Per seed: FD and classes of the untrained and the trained GAN."""
    evaluator = _digits_evaluator(cache)
    before_fd, after_fd, after_classes = [], [], []
    for seed in seeds:
        before, after = runs.digits_gan_reports(backend, seed, evaluator)
        before_fd.append(before["frechet_distance"])
        after_fd.append(after["frechet_distance"])
        after_classes.append(after["classes_covered"])
        print(f"{backend:6s} seed {seed:2d}: untrained FD {before['frechet_distance']:.1f} "
              f"({before['classes_covered']} classes)  trained FD "
              f"{after['frechet_distance']:.1f} ({after['classes_covered']} classes)  "
              f"real-vs-real {after['frechet_distance_real']:.1f}", flush=True)
    print(summarize(f"{backend} untrained FD", before_fd))
    print(summarize(f"{backend} trained FD", after_fd))
    print(summarize(f"{backend} trained classes", after_classes))


def measure_digits_classifier(backend: str, seeds: range) -> None:
    """Per classifier seed: test accuracy, the real-vs-real report and the collapsed ones."""
    rows: dict[str, list[float]] = {}

    def keep(name: str, value: float) -> str:
        rows.setdefault(name, []).append(value)
        return f"{name} {value:.3g}"

    for seed in seeds:
        trained = runs.digits_classifier(backend, seed)
        test = data.load("digits", split="test")
        evaluator = Evaluator(trained, data.load("digits").x[:len(test)], test.x)
        real = runs.real_against_real(evaluator, "digits", 148)
        collapsed = runs.collapsed_reports(evaluator)
        parts = [
            keep("accuracy", trained.test_accuracy),
            keep("FD ratio", real["frechet_distance"] / real["frechet_distance_real"]),
            keep("classes", real["classes_covered"]),
            keep("classes real", real["classes_covered_real"]),
            *(keep(f"|d {name}|", abs(real[name] - real[f"{name}_real"]))
              for name in ("precision", "recall", "coverage")),
            keep("class KL", real["class_kl"]),
            keep("IS rel", abs(real["inception_score"] / real["inception_score_real"] - 1)),
        ]
        for label, report in zip(("digit", "white"), collapsed, strict=True):
            parts += [
                keep(f"{label} classes", report["classes_covered"]),
                keep(f"{label} IS", report["inception_score"]),
                keep(f"{label} recall", report["recall"]),
                keep(f"{label} coverage", report["coverage"]),
                keep(f"{label} class KL", report["class_kl"]),
                keep(f"{label} FD/real", report["frechet_distance"]
                     / report["frechet_distance_real"]),
                keep(f"{label} precision", report["precision"]),
            ]
        print(f"{backend:6s} seed {seed:2d}: " + ", ".join(parts), flush=True)
    for name, values in rows.items():
        print(summarize(f"{backend} {name}", values))


def measure_quick_classifier(backend: str, seeds: range, recipe: ClassifierConfig) -> None:
    """Per seed: the two epoch losses and the test accuracy of the quick recipe."""
    train, test = data.load("digits"), data.load("digits", split="test")
    accuracies, drops = [], []
    for seed in seeds:
        losses: list[float] = []
        trained = classifier.train(train, test, replace(recipe, seed=seed), backend=backend,
                                   progress=lambda epoch, loss, accuracy, kept=losses:
                                   kept.append(loss))
        accuracies.append(trained.test_accuracy)
        drops.append(losses[0] - losses[1])
        print(f"{backend:6s} seed {seed:2d}: losses {losses[0]:.4f} -> {losses[1]:.4f}, "
              f"accuracy {trained.test_accuracy:.4f}", flush=True)
    print(summarize(f"{backend} test accuracy", accuracies))
    print(summarize(f"{backend} loss drop (epoch 1 - epoch 2)", drops))


def measure_torch_blob(seeds: range) -> None:
    """Per seed: the PyTorch peer's distance ratio and its final D outputs."""
    from fastgan.benchmarking.torch_peer import set_threads

    set_threads(1)                                       # as test_torch_peer.py does
    ratios, starts, d_gaps = [], [], []
    for seed in seeds:
        start, end, stats = runs.torch_blob_run(seed)
        gap = max(abs(stats["d_real"] - 0.5), abs(stats["d_fake"] - 0.5))
        starts.append(start)
        ratios.append(end / start)
        d_gaps.append(gap)
        print(f"torch  seed {seed:2d}: start {start:.3f}  end/start {end / start:.3f}  "
              f"D(x) {stats['d_real']:.3f}  D(G(z)) {stats['d_fake']:.3f}", flush=True)
    print(summarize("torch start distance", starts))
    print(summarize("torch end / start", ratios))
    print(summarize("torch max |D - 1/2|", d_gaps))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("test", choices=["ring", "digits-gan", "digits-classifier",
                                         "quick-classifier", "torch-blob"])
    parser.add_argument("--seeds", type=int, default=10, help="seeds 0 .. N-1 (default 10)")
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--backends", nargs="+", default=["numpy", "numba"])
    args = parser.parse_args(argv)
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    print(f"== {args.test}: OpenBLAS kernel {runs.openblas_kernel()}, numpy {np.__version__}",
          flush=True)
    started = time.perf_counter()
    jobs: dict[str, Callable[[str], None]] = {
        "ring": lambda b: measure_ring(b, seeds),
        "digits-classifier": lambda b: measure_digits_classifier(b, seeds),
        "quick-classifier": lambda b: measure_quick_classifier(b, seeds, runs.QUICK_RECIPE),
    }
    with tempfile.TemporaryDirectory() as cache:
        jobs["digits-gan"] = lambda b: measure_digits_gan(b, seeds, Path(cache))
        if args.test == "torch-blob":
            measure_torch_blob(seeds)
        else:
            for backend in args.backends:
                jobs[args.test](backend)
    print(f"({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
