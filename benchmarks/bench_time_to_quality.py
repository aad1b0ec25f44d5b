"""Time to quality: wall time for `pytorch-vanilla` on Fashion-MNIST to reach a fixed Fréchet
distance, fastgan against the PyTorch peer (same algorithm, same preset).

    python benchmarks/bench_time_to_quality.py [--targets 150,100,60] [--threads 1]
        [--budget 1800] [--device cpu|cuda] [--out ttq]
    pytest benchmarks/bench_time_to_quality.py --benchmark-json=ttq.json   # the same race

On the CPU (the default) fastgan runs its numba backend and PyTorch eager its CPU build, both
with the same thread count; with ``--device cuda`` fastgan runs the cupy backend with every
step replayed as a CUDA graph (:class:`fastgan.gan.cuda_graph.GraphedStep`) and PyTorch eager
runs on the GPU, each with its dataset on the GPU. Both contenders train from scratch, in
float32, and after
every epoch (600 steps of 100) score ``EVAL_N`` samples with the same
:class:`fastgan.evaluation.metrics.Evaluator` (the Fashion-MNIST classifier's features). Each
has its own clock, which runs only while it works: loading the data, building the model,
training and sampling plus scoring. The two alternate epoch by epoch, so a machine whose load
changes over the run slows both alike. Each target is a fixed Fréchet distance; a contender
reaches it at its first evaluation at or below it, and stops at the lowest target or when its
clock passes ``budget`` seconds. The result is each one's time to each target, the ratios
fastgan / PyTorch (the goal: at most 0.6), and a plot of distance against wall time.

Skips with the reason where torch, the backend or Fashion-MNIST is missing.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fastgan import GAN, available_backends, data
from fastgan.errors import FastganError
from fastgan.evaluation.metrics import Evaluator
from fastgan.gan import presets
from fastgan.gan.model import latent_noise

PRESET = "pytorch-vanilla"
DATASET = "fashion-mnist"
THREADS = 1
EVAL_N = 2000
"""Samples per evaluation: the Fréchet distance target is defined at this sample size."""
TARGETS_FD = (150.0, 100.0, 60.0)
BUDGET_S = 1800.0
SEED = 0
BACKENDS = {"cpu": "numba", "cuda": "cupy"}
"""fastgan's backend on each device the race runs on."""


def unavailable_reason(device: str = "cpu") -> str | None:
    """Why the race cannot run here on ``device``, or None."""
    try:
        import torch
    except ImportError as exc:
        return f"the PyTorch peer needs torch ({exc})"
    if device == "cuda" and not torch.cuda.is_available():
        return "PyTorch has no CUDA device"
    backend = BACKENDS[device]
    reason = available_backends()[backend]
    if reason is not None:
        return f"the {backend} backend is unavailable: {reason}"
    try:
        data.load(DATASET, split="test", n=1)
    except FastganError as exc:
        return f"{DATASET} is not available offline: {exc}"
    return None


@dataclass
class Contender:
    """One side of the race: how it trains an epoch and draws samples, and its own clock."""

    name: str
    steps_per_epoch: int
    train_epoch: Callable[[], Any]
    samples: Callable[[int], np.ndarray]
    seconds: float = 0.0
    steps: int = 0
    trace: list[dict[str, float]] = field(default_factory=list)
    reached_s: dict[float, float] = field(default_factory=dict)

    def timed(self, work: Callable[[], Any]) -> Any:
        """Run ``work`` on this contender's clock."""
        started = time.perf_counter()
        try:
            return work()
        finally:
            self.seconds += time.perf_counter() - started


def fastgan_contender(train: data.Dataset, threads: int, device: str = "cpu") -> Contender:
    """fastgan, one epoch per call: ``GAN.fit`` on the numba backend, or on the GPU graphed
    steps over batches gathered on the device."""
    from fastgan.threads import set_num_threads

    set_num_threads(threads)
    gan = GAN.from_preset(PRESET, backend=BACKENDS[device], seed=SEED,
                          data_dim=train.n_features)
    steps = len(train) // (gan.k * gan.batch_size)
    noise = _noise(gan.preset, EVAL_N)
    train_epoch = (lambda: gan.fit(train, steps=steps)) if device == "cpu" \
        else _graphed_epochs(gan, train, steps)
    return Contender(f"fastgan-{BACKENDS[device]}", steps, train_epoch,
                     lambda n: gan.sample(n, noise=noise[:n]))


def _graphed_epochs(gan: GAN, train: data.Dataset, steps: int) -> Callable[[], None]:
    """One epoch per call on the GPU: each batch gathered from the dataset held on the device,
    then a CUDA-graph step."""
    from fastgan.gan.cuda_graph import GraphedStep

    backend, graphed = gan.backend, GraphedStep(gan)
    images = backend.asarray(train.x, gan.dtype)
    rows = gan.k * gan.batch_size
    batch = backend.empty((rows, train.n_features), gan.dtype)
    orders = np.random.default_rng(SEED)

    def train_epoch() -> None:
        order = backend.asarray(orders.permutation(len(train)))
        for step in range(steps):
            backend.take_rows(images, order[step * rows:(step + 1) * rows], batch)
            graphed.step(batch)
        gan.last_stats()                               # one read-back, as fit's logging does
    return train_epoch


def torch_contender(train: data.Dataset, threads: int, device: str = "cpu") -> Contender:
    """The PyTorch peer (eager), its data held as one tensor on ``device``, batches gathered
    by index."""
    import torch

    from fastgan.benchmarking.torch_peer import TorchGAN, set_threads

    set_threads(threads)
    preset = presets.get(PRESET, train.n_features)
    peer = TorchGAN(preset, device=device, dtype="float32", seed=SEED)
    images = torch.from_numpy(np.array(train.x)).to(device)   # a writable copy for torch
    rows = preset.k * preset.batch_size
    steps = len(train) // rows
    noise = torch.as_tensor(_noise(preset, EVAL_N), dtype=torch.float32, device=device)

    def train_epoch() -> None:
        order = torch.randperm(len(images), device=device)
        for step in range(steps):
            peer.step(images[order[step * rows:(step + 1) * rows]])
        peer.stats()                                   # one read-back, as fit's logging does

    def samples(n: int) -> np.ndarray:
        with torch.no_grad():
            return peer.generator(noise[:n]).cpu().numpy()

    return Contender(f"pytorch-eager-{device}" if device != "cpu" else "pytorch-eager", steps,
                     train_epoch, samples)


def _noise(preset: presets.Preset, n: int) -> np.ndarray:
    """The evaluation's latent vectors: one fixed set for both contenders."""
    return latent_noise(np.random.default_rng(SEED + 1), preset.noise, n, preset.latent_dim)


def race(targets: Sequence[float] = TARGETS_FD, budget: float = BUDGET_S,
         threads: int = THREADS, log: Callable[[str], None] = print,
         cache_dir: Path | None = None, device: str = "cpu") -> dict[str, Any]:
    """Run both contenders epoch by epoch on ``device`` until each reaches the lowest target
    or its budget (``cache_dir``: where the evaluation classifier is cached; default the data
    cache)."""
    targets = sorted(targets, reverse=True)
    evaluator = Evaluator.for_dataset(DATASET, n=EVAL_N, seed=SEED, notify=log,
                                      cache_dir=cache_dir)
    contenders = []
    for make in (fastgan_contender, torch_contender):
        started = time.perf_counter()
        contender = make(data.load(DATASET), threads, device)
        contender.seconds = time.perf_counter() - started      # loading and building count
        contenders.append(contender)
    real_fd = evaluator.real["frechet_distance"]
    log(f"targets: Fréchet distance {targets} at n={EVAL_N} (real vs real: {real_fd:.2f}); "
        f"budget {budget:.0f} s each; {threads} thread(s); device {device}")

    def running(c: Contender) -> bool:
        return targets[-1] not in c.reached_s and c.seconds < budget

    while any(running(c) for c in contenders):
        for c in filter(running, contenders):
            c.timed(c.train_epoch)
            c.steps += c.steps_per_epoch
            fd = c.timed(lambda c=c: evaluator.report(c.samples(EVAL_N))["frechet_distance"])
            c.trace.append({"seconds": c.seconds, "steps": c.steps, "frechet_distance": fd})
            log(f"{c.name:14} step {c.steps:6d}  {c.seconds:7.1f} s  FD {fd:8.2f}")
            for target in targets:
                if fd <= target:
                    c.reached_s.setdefault(target, c.seconds)
    fast, peer = contenders
    ratios = {target: fast.reached_s[target] / peer.reached_s[target]
              for target in targets if target in fast.reached_s and target in peer.reached_s}
    return {"preset": PRESET, "dataset": DATASET, "eval_n": EVAL_N, "targets": targets,
            "real_vs_real": real_fd, "threads": threads, "device": device, "budget_s": budget,
            "ratio_fastgan_to_torch": ratios,
            "contenders": {c.name: {"reached_s": c.reached_s, "trace": c.trace}
                           for c in contenders}}


def plot(result: dict[str, Any], path: Path) -> None:
    """Fréchet distance against wall time for both contenders, with the target lines."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4.5))
    for name, run in result["contenders"].items():
        trace = run["trace"]
        axes.plot([p["seconds"] for p in trace], [p["frechet_distance"] for p in trace],
                  marker="o", label=name)
    for target in result["targets"]:
        axes.axhline(target, color="grey", linestyle="--", linewidth=0.8)
    axes.axhline(result["real_vs_real"], color="green", linestyle=":", label="real vs real")
    axes.set_xlabel("wall time (s): data, model, training, evaluation")
    axes.set_ylabel(f"Fréchet distance (n={result['eval_n']}); dashed: targets")
    axes.set_yscale("log")
    where = "GPU" if result.get("device") == "cuda" else f"{result['threads']} thread(s)"
    axes.set_title(f"{result['preset']} on {result['dataset']}, {where}")
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def test_time_to_quality(benchmark) -> None:
    """The race as a pytest-benchmark entry: one round; figures in ``extra_info``."""
    import pytest

    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    result = benchmark.pedantic(race, rounds=1, iterations=1)
    benchmark.extra_info.update(json.loads(json.dumps(result)))


def main() -> None:
    """Command line: run the race, print it, write ``<out>.json`` and ``<out>.png``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--targets", default=",".join(map(str, TARGETS_FD)),
                        help="comma-separated Fréchet distances to reach")
    parser.add_argument("--threads", type=int, default=THREADS)
    parser.add_argument("--budget", type=float, default=BUDGET_S,
                        help="seconds of work per contender before giving up")
    parser.add_argument("--device", choices=list(BACKENDS), default="cpu",
                        help="cpu: numba against PyTorch's CPU build; cuda: cupy (graphed) "
                             "against PyTorch on the GPU")
    parser.add_argument("--out", type=Path, default=Path("time_to_quality"))
    args = parser.parse_args()
    reason = unavailable_reason(args.device)
    if reason is not None:
        raise SystemExit(f"skipped: {reason}")
    targets = [float(t) for t in args.targets.split(",")]
    result = race(targets, args.budget, args.threads, log=lambda line: print(line, flush=True),
                  device=args.device)
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=2))
    plot(result, args.out.with_suffix(".png"))
    for target in result["targets"]:
        times = [run["reached_s"].get(target) for run in result["contenders"].values()]
        shown = ", ".join(f"{name} " + ("not reached" if t is None else f"{t:.1f} s")
                          for name, t in zip(result["contenders"], times, strict=True))
        ratio = result["ratio_fastgan_to_torch"].get(target)
        print(f"FD <= {target:g}: {shown}; fastgan / PyTorch wall time "
              + ("n/a" if ratio is None else f"{ratio:.2f}"))


if __name__ == "__main__":
    main()
