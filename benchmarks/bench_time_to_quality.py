"""Time to quality: how fast the Fréchet distance on Fashion-MNIST falls, in wall time, for
fastgan's tuned preset, fastgan with the seed tutorial's settings and the PyTorch peer.

    python benchmarks/bench_time_to_quality.py [--seeds 0,1,2] [--budget 600] [--slice 20]
        [--contenders fastgan:fast-cgan,fastgan:fast-mlp]
        [--threads 1] [--device cpu|cuda] [--shard I/N] [--out ttq]
        [--pictures DIR]
    python benchmarks/bench_time_to_quality.py --combine ttq-0.json ttq-1.json --out ttq
    pytest benchmarks/bench_time_to_quality.py --benchmark-json=ttq.json   # the same race

The contenders (:data:`CONTENDERS`, or ``--contenders``): ``fast-mlp`` on fastgan (the preset
a sweep tuned), ``pytorch-vanilla`` on fastgan (seed 004's settings) and ``pytorch-vanilla``
on the PyTorch peer (eager), each trained from scratch in float32 with every seed. On the CPU
(the default) fastgan runs its numba backend and PyTorch its CPU build, all with the same
thread count;
with ``--device cuda`` fastgan runs the cupy backend with every step replayed as a CUDA graph
(:class:`fastgan.gan.cuda_graph.GraphedStep`) and PyTorch runs on the GPU, each with its
dataset on the device.

Each run has its own clock, which runs while it loads the data, builds its model and trains;
scoring is off the clock, and so are the costs a process pays once (importing torch, loading
Numba's compiled kernels), paid before the first run starts. The runs take turns, each
training for ``--slice`` seconds of its own clock, so a machine whose load changes over the
race slows them alike; after every slice the run is scored on ``EVAL_N`` samples with one
:class:`fastgan.evaluation.metrics.Evaluator` (the Fashion-MNIST classifier's features; the
same latent vectors for every run), until its clock passes ``--budget``. ``--shard I/N`` runs
every N-th run from the I-th (start N shards at once, one per core, each with ``--threads
1``) and ``--combine`` joins their results.

The summary takes medians over seeds. The target is the distance the PyTorch peer reaches
at the budget; for each contender it reports the time to reach it (a run's first score at
or below it), its distance, recall and coverage at the budget, and the goals of the tuned
preset (:data:`GOALS`): the target in at most a third of the budget, and at most half the
peer's distance at the budget, with recall and coverage at least those of the seed settings.

A challenger (a fastgan contender of a preset in :data:`CHALLENGERS`: ``--contenders
fastgan:fast-dcgan,fastgan:fast-mlp,pytorch:fast-dcgan``) is scored against the tuned preset
(:data:`CHALLENGER_GOALS`): its distance at the budget at most half the tuned preset's, that
distance reached within half the budget, recall and coverage at least the tuned preset's.
``--pictures DIR`` keeps the first seed's samples at 60, 180 and 600 s and writes a contact
sheet of them beside real images.

A conditional contender (``--contenders fastgan:fast-cgan,fastgan:fast-mlp``) draws its
scored samples class by class in turn, and is also scored on the classifier's accuracy on the
asked class beside its accuracy on real test images (:data:`CONDITIONAL_GOALS`).

Skips with the reason where torch, the backend or Fashion-MNIST is missing.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from fastgan import GAN, GANConfig, available_backends, data
from fastgan.benchmarking.provenance import FIELDS, provenance
from fastgan.benchmarking.timing import seconds_of
from fastgan.errors import FastganError
from fastgan.evaluation.metrics import Evaluator
from fastgan.gan import presets
from fastgan.gan.model import latent_noise
from fastgan.sweep.trial import UNBOUNDED_STEPS
from fastgan.training.monitors import WallClock
from fastgan.viz import save_contact_sheet, save_grid

DATASET = "fashion-mnist"
IMAGE_SHAPE = (28, 28)
EVAL_N = 5000
"""Samples per score: the distances are defined at this sample size."""
BUDGET_S = 600.0
SLICE_S = 20.0
SEEDS = (0, 1, 2)
THREADS = 1
BACKENDS = {"cpu": "numba", "cuda": "cupy"}
"""fastgan's backend on each device the race runs on."""
SCORED = ("frechet_distance", "precision", "recall", "coverage", "density")
"""The metrics recorded at every score."""
GOALS = {"time_to_target_fraction": 1 / 3, "distance_ratio": 0.5}
"""The tuned preset's goals: the peer's distance at the budget within this fraction of the
budget, and at most this ratio of the peer's distance at the budget."""
CONDITIONAL_GOALS = {"class_accuracy_of_ceiling": 0.95}
CHALLENGER_GOALS = {"distance_ratio": 0.5, "time_to_tuned_fraction": 0.5}
"""A challenger's goals against the tuned preset: at most this ratio of its distance at the
budget, and that distance reached within this fraction of the budget."""
PICTURE_TIMES = (60, 180, 600)
"""With ``--pictures``: the clock times (s) after which the first seed's samples are kept."""
"""The conditional preset's goals: the classifier's accuracy on the asked class at least this
fraction of its accuracy on real test images (the ceiling), and a Fréchet distance at the
budget no worse than the tuned unconditional preset's."""


@dataclass(frozen=True)
class Contender:
    """One side of the race: who trains (``"fastgan"`` or ``"pytorch"``) which preset, with
    which of the config's switches turned on (``options``, e.g. ``("projection",)``)."""

    side: str
    preset: str
    options: tuple[str, ...] = ()

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Contender:
        """The contender a run's JSON record names."""
        return cls(record["side"], record["preset"], tuple(record.get("options", ())))

    @property
    def name(self) -> str:
        """E.g. ``fastgan fast-mlp``, ``fastgan fast-cgan+projection``."""
        return f"{self.side} {self.preset}" + "".join(f"+{option}" for option in self.options)


TUNED = Contender("fastgan", "fast-mlp")
SEED_SETTINGS = Contender("fastgan", "pytorch-vanilla")
PEER = Contender("pytorch", "pytorch-vanilla")
CONDITIONAL = Contender("fastgan", "fast-cgan")
CONVOLUTIONAL = Contender("fastgan", "fast-dcgan")
CHALLENGERS = ("fast-dcgan",)
"""Presets whose fastgan contenders are scored against the tuned preset
(:data:`CHALLENGER_GOALS`), with recall and coverage at least its own."""
CONTENDERS = (TUNED, SEED_SETTINGS, PEER)
"""The default race; ``--contenders fastgan:fast-cgan,fastgan:fast-mlp`` is the conditional
preset's."""


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
class Run:
    """One contender with one seed: how it trains until a deadline and draws samples, its own
    clock and its scores."""

    contender: Contender
    seed: int
    train_until: Callable[[float], Any] = field(repr=False)
    samples: Callable[[int], np.ndarray] = field(repr=False)
    steps: Callable[[], int] = field(repr=False)
    class_scores: Callable[[Evaluator], dict[str, float]] | None = field(default=None,
                                                                        repr=False)
    seconds: float = 0.0
    trace: list[dict[str, float]] = field(default_factory=list)

    def train(self, seconds: float) -> None:
        """Train for ``seconds`` more of this run's clock (to the end of the step that passes
        them; at least one step)."""
        deadline = time.perf_counter() + seconds
        self.seconds += seconds_of(lambda: self.train_until(deadline))

    def record(self) -> dict[str, Any]:
        """The run as JSON values."""
        return {"contender": asdict(self.contender), "seed": self.seed, "trace": self.trace}


def fastgan_run(contender: Contender, seed: int, threads: int, device: str) -> Run:
    """fastgan: ``GAN.fit`` on the numba backend, or on the cupy backend with its steps
    replayed as CUDA graphs (``graph=True``); the fit ends with one read-back (its last log),
    so the clock waits for the device."""
    from fastgan.threads import set_num_threads

    set_num_threads(threads)
    train = data.load(DATASET)
    gan = GAN.from_preset(contender.preset, backend=BACKENDS[device], seed=seed,
                          data_dim=train.n_features, **dict.fromkeys(contender.options, True))
    noise = _noise(gan.config)

    def train_until(deadline: float) -> None:
        gan.fit(train, steps=UNBOUNDED_STEPS, graph=device == "cuda",
                callbacks=[WallClock(limit=deadline - time.perf_counter())])

    def class_scores(evaluator: Evaluator) -> dict[str, float]:
        report = evaluator.class_report(gan)
        return {"class_accuracy": report["accuracy"],
                "class_accuracy_real": report["accuracy_real"]}

    return Run(contender, seed, train_until, lambda n: gan.sample(n, noise=noise[:n]),
               lambda: gan.steps, class_scores if gan.num_classes else None)


def torch_run(contender: Contender, seed: int, threads: int, device: str) -> Run:
    """The PyTorch peer (eager), its data held as one tensor on ``device``, batches gathered
    by index from shuffled epochs."""
    import torch

    from fastgan.benchmarking.torch_peer import TorchGAN, set_threads

    set_threads(threads)
    train = data.load(DATASET)
    preset = presets.get(contender.preset, train.n_features)
    peer = TorchGAN(preset, device=device, dtype="float32", seed=seed)
    images = torch.from_numpy(np.array(train.x)).to(device)   # a writable copy for torch
    rows = preset.k * preset.batch_size
    batches = len(images) // rows
    noise = torch.as_tensor(_noise(preset), dtype=torch.float32, device=device)
    state = {"order": None, "batch": batches, "steps": 0}

    def train_until(deadline: float) -> None:
        while True:                         # at least one step, to the first past the deadline
            if state["batch"] == batches:
                state["order"], state["batch"] = torch.randperm(len(images), device=device), 0
            start = state["batch"] * rows
            peer.step(images[state["order"][start:start + rows]])
            state["batch"] += 1
            state["steps"] += 1
            if time.perf_counter() >= deadline:
                break
        peer.stats()                        # one read-back: the clock waits for the device

    def samples(n: int) -> np.ndarray:
        return peer.sample(noise[:n]).cpu().numpy()

    return Run(contender, seed, train_until, samples, lambda: state["steps"])


def _noise(preset: GANConfig) -> np.ndarray:
    """The scores' latent vectors: one fixed set for every run."""
    return latent_noise(np.random.default_rng(12345), preset.noise, EVAL_N, preset.latent_dim)


def warm_up(device: str) -> None:
    """Pay each process-wide first-time cost before any clock starts, so that it does not
    fall on whichever run comes first: importing torch, loading fastgan's compiled kernels,
    the first step of each library (a step of a tiny GAN on each side)."""
    from fastgan.benchmarking.torch_peer import TorchGAN

    tiny = presets.get("tiny", data_dim=4)
    GAN.from_preset("tiny", backend=BACKENDS[device], data_dim=4).fit(
        np.zeros((tiny.batch_size, 4), np.float32), steps=1)
    peer = TorchGAN(tiny, device=device)
    peer.step(peer.make_batch())
    peer.stats()


def make_run(contender: Contender, seed: int, threads: int, device: str) -> Run:
    """Build ``contender``'s run for ``seed``, on its own clock (loading and building count)."""
    started = time.perf_counter()
    build = fastgan_run if contender.side == "fastgan" else torch_run
    run = build(contender, seed, threads, device)
    run.seconds = time.perf_counter() - started
    return run


def race(contenders: Sequence[Contender] = CONTENDERS, seeds: Sequence[int] = SEEDS,
         budget: float = BUDGET_S, slice_s: float = SLICE_S, threads: int = THREADS,
         device: str = "cpu", shard: tuple[int, int] = (0, 1),
         log: Callable[[str], None] = print, cache_dir: Path | None = None,
         pictures: Path | None = None) -> dict[str, Any]:
    """Train this shard's runs in turns of ``slice_s`` seconds until each clock passes
    ``budget``, scoring after every slice; returns the provenance (command, commit, machine,
    date), the runs' traces and, over them, the summary (``cache_dir``: where the evaluation
    classifier is cached; default the data cache). With ``pictures``, the first 64 scored
    samples of each contender's first seed at the first score past each of
    :data:`PICTURE_TIMES` go there as grids (:func:`picture_path`)."""
    index, count = shard
    plan = [(c, s) for c in contenders for s in seeds][index::count]
    evaluator = Evaluator.for_dataset(DATASET, n=EVAL_N, seed=0, notify=log, cache_dir=cache_dir)
    warm_up(device)
    runs = [make_run(c, s, threads, device) for c, s in plan]
    log(f"{len(runs)} runs; {budget:.0f} s each in {slice_s:.0f}-s slices; {threads} "
        f"thread(s); device {device}; real vs real FD "
        f"{evaluator.real['frechet_distance']:.2f} at n={EVAL_N}")
    def running(run: Run) -> bool:              # at least one score, even past the budget
        return run.seconds < budget or not run.trace

    while any(map(running, runs)):
        for run in filter(running, runs):
            run.train(max(0.0, min(slice_s, budget - run.seconds)))
            samples = run.samples(EVAL_N)
            scores = evaluator.score(samples)
            if pictures is not None and run.seed == seeds[0]:
                keep_pictures(pictures, run, samples)
            run.trace.append({"seconds": run.seconds, "steps": run.steps(),
                              **{name: float(scores[name]) for name in SCORED},
                              **(run.class_scores(evaluator) if run.class_scores else {})})
            log(f"{run.contender.name:26} seed {run.seed}  {run.seconds:6.1f} s  step "
                f"{run.steps():6d}  FD {scores['frechet_distance']:8.2f}  recall "
                f"{scores['recall']:.3f}")
    result = {**provenance(), "dataset": DATASET, "eval_n": EVAL_N, "budget_s": budget,
              "slice_s": slice_s, "threads": threads, "device": device,
              "real_vs_real": evaluator.real["frechet_distance"],
              "runs": [run.record() for run in runs]}
    result["summary"] = summarize(result)
    return result


def picture_path(folder: Path, contender: Contender, seconds: int) -> Path:
    """Where the race keeps ``contender``'s samples at ``seconds`` on its clock."""
    return folder / f"{contender.name.replace(' ', '-')}-{seconds}s.png"


def keep_pictures(folder: Path, run: Run, samples: np.ndarray) -> None:
    """Save a grid of ``samples``' first 64 for each picture time ``run``'s clock has passed
    and that has no picture yet."""
    folder.mkdir(parents=True, exist_ok=True)
    for seconds in PICTURE_TIMES:
        path = picture_path(folder, run.contender, seconds)
        if run.seconds >= seconds and not path.exists():
            save_grid(path, samples[:64], IMAGE_SHAPE)


def save_sheet(folder: Path, contenders: Sequence[Contender]) -> Path:
    """``folder/contact-sheet.png``: one row per contender, real test images beside its
    samples at each of :data:`PICTURE_TIMES` (where the race kept them)."""
    real = folder / "real.png"
    save_grid(real, data.load(DATASET, split="test", n=64).x, IMAGE_SHAPE)
    kept = []
    for contender in contenders:
        kept += [(real, "real (test images)")] + [
            (picture_path(folder, contender, seconds), f"{contender.name} at {seconds} s")
            for seconds in PICTURE_TIMES]
    missing = [str(path) for path, _ in kept if not path.exists()]
    if missing:
        raise FastganError(f"the race kept no picture {', '.join(missing)}: race with "
                           "--pictures for the whole budget first")
    return save_contact_sheet(folder / "contact-sheet.png", [path for path, _ in kept],
                              [label for _, label in kept], ncols=1 + len(PICTURE_TIMES))


def combine(results: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One result from the shards' results (the same race settings, different runs), with
    this command's provenance, and each shard's under ``shards``."""
    combined = {**results[0], **provenance(),
                "shards": [{key: result.get(key) for key in FIELDS} for result in results],
                "runs": [run for result in results for run in result["runs"]]}
    combined["summary"] = summarize(combined)
    return combined


def summarize(result: dict[str, Any]) -> dict[str, Any]:
    """Medians over seeds per contender: the distance at the budget, the time to the peer's
    distance at the budget (the target), recall and coverage at the budget; the goals."""
    by_contender: dict[str, list[dict[str, Any]]] = {}
    for run in result["runs"]:
        by_contender.setdefault(Contender.from_record(run["contender"]).name, []).append(run)

    def at_budget(run: dict[str, Any], metric: str) -> float:
        return run["trace"][-1][metric]

    def median(runs: list[dict[str, Any]], value: Callable[[dict[str, Any]], float]) -> float:
        return statistics.median(value(run) for run in runs)

    summary: dict[str, Any] = {"contenders": {}}
    peer_runs = by_contender.get(PEER.name)
    target = None if not peer_runs else median(
        peer_runs, lambda run: at_budget(run, "frechet_distance"))
    summary["target_frechet_distance"] = target
    for name, runs in by_contender.items():
        row = {"seeds": sorted(run["seed"] for run in runs)}
        for metric in ("frechet_distance", "recall", "coverage", "precision",
                       "class_accuracy", "class_accuracy_real"):
            if metric in runs[0]["trace"][-1]:
                row[metric] = median(runs, lambda run, m=metric: at_budget(run, m))
        if target is not None:
            row["time_to_target_s"] = median(runs, lambda run: time_to(run, target))
        summary["contenders"][name] = row
    tuned, seed_settings = (summary["contenders"].get(c.name) for c in (TUNED, SEED_SETTINGS))
    goals: dict[str, tuple[float, str, float]] = {}
    if tuned and target is not None:
        goals |= {"time_to_target_s": (tuned["time_to_target_s"], "<=",
                                       GOALS["time_to_target_fraction"] * result["budget_s"]),
                  "distance_ratio": (tuned["frechet_distance"] / target, "<=",
                                     GOALS["distance_ratio"])}
        if seed_settings:                       # diversity: at least the seed settings'
            goals |= {metric: (tuned[metric], ">=", seed_settings[metric])
                      for metric in ("recall", "coverage")}
    for name, row in summary["contenders"].items():
        challenger = Contender.from_record(by_contender[name][0]["contender"])
        if tuned and challenger.side == "fastgan" and challenger.preset in CHALLENGERS:
            row["time_to_tuned_s"] = median(by_contender[name], lambda run: time_to(
                run, tuned["frechet_distance"]))
            goals |= {
                f"distance_ratio to {TUNED.name} ({name})": (
                    row["frechet_distance"] / tuned["frechet_distance"], "<=",
                    CHALLENGER_GOALS["distance_ratio"]),
                f"time_to_tuned_s ({name})": (
                    row["time_to_tuned_s"], "<=",
                    CHALLENGER_GOALS["time_to_tuned_fraction"] * result["budget_s"]),
                **{f"{metric} ({name})": (row[metric], ">=", tuned[metric])
                   for metric in ("recall", "coverage")}}
        if "class_accuracy" in row:             # a conditional contender
            goals[f"class_accuracy_of_ceiling ({name})"] = (
                row["class_accuracy"] / row["class_accuracy_real"], ">=",
                CONDITIONAL_GOALS["class_accuracy_of_ceiling"])
            if tuned:
                goals[f"frechet_distance ({name})"] = (row["frechet_distance"], "<=",
                                                       tuned["frechet_distance"])
    if goals:
        summary["goals"] = {
            name: {"value": value, "goal": f"{relation} {bound:.4g}",
                   "met": value <= bound if relation == "<=" else value >= bound}
            for name, (value, relation, bound) in goals.items()}
    for row in (*summary["contenders"].values(), *summary.get("goals", {}).values()):
        for key in ("time_to_target_s", "time_to_tuned_s", "value"):  # None: never
            if row.get(key) == math.inf:
                row[key] = None
    return summary


def time_to(run: dict[str, Any], target: float) -> float:
    """The clock at the run's first score at or below ``target`` (inf: never)."""
    return next((point["seconds"] for point in run["trace"]
                 if point["frechet_distance"] <= target), math.inf)


def report(result: dict[str, Any]) -> str:
    """The summary as a Markdown table and the goals as lines."""
    summary = result["summary"]
    target = summary["target_frechet_distance"]
    budget = result["budget_s"]
    lines = [f"| contender (median of seeds) | FD at {budget:.0f} s | time to FD "
             f"{'-' if target is None else f'{target:.1f}'} | precision | recall | coverage |",
             "|---|---|---|---|---|---|"]
    for name, row in summary["contenders"].items():
        reached = row.get("time_to_target_s", "-")
        shown = "not reached" if reached is None else reached if reached == "-" \
            else f"{reached:.0f} s"
        lines.append(f"| {name} (seeds {', '.join(map(str, row['seeds']))}) | "
                     f"{row['frechet_distance']:.1f} | {shown} | {row['precision']:.3f} | "
                     f"{row['recall']:.3f} | {row['coverage']:.3f} |")
    for name, row in summary["contenders"].items():
        if "class_accuracy" in row:
            lines.append(f"- {name}: the classifier's accuracy on the asked class "
                         f"{row['class_accuracy']:.3f}, on real test images "
                         f"{row['class_accuracy_real']:.3f}")
    for name, goal in summary.get("goals", {}).items():
        value = "not reached" if goal["value"] is None else f"{goal['value']:.3g}"
        lines.append(f"- {name}: {value} (goal {goal['goal']}): "
                     + ("met" if goal["met"] else "missed"))
    return "\n".join(lines)


def plot(result: dict[str, Any], path: Path) -> None:
    """Fréchet distance against wall time: one thin line per run, one colour per contender,
    the target as a dashed line."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    figure, axes = plt.subplots(figsize=(7.5, 4.5))
    colours: dict[str, str] = {}
    for run in result["runs"]:
        name = Contender.from_record(run["contender"]).name
        trace = run["trace"]
        line, = axes.plot([p["seconds"] for p in trace], [p["frechet_distance"] for p in trace],
                          linewidth=1.2, color=colours.get(name),
                          label=None if name in colours else name)
        colours.setdefault(name, line.get_color())
    target = result["summary"]["target_frechet_distance"]
    if target is not None:
        axes.axhline(target, color="grey", linestyle="--", linewidth=0.8,
                     label=f"PyTorch's median at {result['budget_s']:.0f} s")
    axes.axhline(result["real_vs_real"], color="green", linestyle=":", label="real vs real")
    axes.set_xlabel("wall time (s): data, model, training (scoring off the clock)")
    axes.set_ylabel(f"Fréchet distance (n={result['eval_n']})")
    axes.set_yscale("log")
    where = "GPU" if result["device"] == "cuda" else f"{result['threads']} thread(s) per run"
    axes.set_title(f"{result['dataset']}, {where}")
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


def _contenders(text: str) -> tuple[Contender, ...]:
    contenders = []
    switches = [f.name for f in fields(GANConfig) if f.type in (bool, "bool")]
    for item in text.split(","):
        side, _, spec = item.partition(":")
        preset, *options = spec.split("+")
        if side not in ("fastgan", "pytorch") or preset not in presets.names():
            raise argparse.ArgumentTypeError(f"a contender is fastgan:PRESET or pytorch:PRESET "
                                             f"with a preset of {', '.join(presets.names())}; "
                                             f"got {item!r}")
        unknown = [option for option in options if option not in switches]
        if unknown or (options and side != "fastgan"):
            raise argparse.ArgumentTypeError(f"{item!r}: a fastgan contender's options "
                                             f"(+NAME) are among {', '.join(switches)}")
        contenders.append(Contender(side, preset, tuple(options)))
    return tuple(contenders)


def _shard(text: str) -> tuple[int, int]:
    index, _, count = text.partition("/")
    shard = int(index), int(count)
    if not 0 <= shard[0] < shard[1]:
        raise argparse.ArgumentTypeError(f"a shard is I/N with 0 <= I < N, got {text!r}")
    return shard


def main() -> None:
    """Command line: run the race (or combine shards), print the summary, write
    ``<out>.json`` and ``<out>.png``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default=",".join(map(str, SEEDS)),
                        help="comma-separated seeds of every contender")
    parser.add_argument("--contenders", type=_contenders, default=CONTENDERS,
                        metavar="SIDE:PRESET,...",
                        help="who races (default: fastgan:fast-mlp,fastgan:pytorch-vanilla,"
                             "pytorch:pytorch-vanilla); the conditional preset's race: "
                             "fastgan:fast-cgan,fastgan:fast-mlp")
    parser.add_argument("--budget", type=float, default=BUDGET_S,
                        help="seconds on each run's clock")
    parser.add_argument("--slice", type=float, default=SLICE_S,
                        help="seconds each run trains per turn (a score follows each)")
    parser.add_argument("--threads", type=int, default=THREADS)
    parser.add_argument("--device", choices=list(BACKENDS), default="cpu",
                        help="cpu: numba against PyTorch's CPU build; cuda: cupy (graphed) "
                             "against PyTorch on the GPU")
    parser.add_argument("--shard", type=_shard, default=(0, 1), metavar="I/N",
                        help="run only every N-th run from the I-th")
    parser.add_argument("--combine", type=Path, nargs="+", metavar="JSON",
                        help="join shards' results instead of racing")
    parser.add_argument("--pictures", type=Path, metavar="DIR",
                        help="keep the first seed's samples at 60, 180 and 600 s in DIR, and "
                             "write DIR/contact-sheet.png beside real images (a shard keeps "
                             "its pictures; --combine with --pictures writes the sheet)")
    parser.add_argument("--out", type=Path, default=Path("time_to_quality"))
    args = parser.parse_args()
    if args.combine:
        result = combine([json.loads(path.read_text()) for path in args.combine])
    else:
        reason = unavailable_reason(args.device)
        if reason is not None:
            raise SystemExit(f"skipped: {reason}")
        seeds = [int(s) for s in args.seeds.split(",")]
        result = race(args.contenders, seeds=seeds, budget=args.budget, slice_s=args.slice,
                      threads=args.threads, device=args.device, shard=args.shard,
                      log=lambda line: print(line, flush=True), pictures=args.pictures)
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=2))
    plot(result, args.out.with_suffix(".png"))
    if args.pictures and (args.combine or args.shard[1] == 1):   # a shard has some of them
        raced = dict.fromkeys(Contender.from_record(run["contender"]) for run in result["runs"])
        print(f"contact sheet: {save_sheet(args.pictures, list(raced))}")
    print(report(result))


if __name__ == "__main__":
    main()
