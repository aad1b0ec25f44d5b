"""Training-step speed of every backend, side by side with PyTorch, against
the machine's limit, measured in one run.

How a figure is made:

* Every contender (fastgan's backends, the PyTorch peers, and the step's GEMMs alone) is built
  for the same preset, batch size and dtype, with one thread count for BLAS, Numba and torch.
* After warm-up, each repetition runs every contender once, rotating who goes first
  (:func:`interleaved`), so a change of load on the machine hits all of them alike. The
  figures are medians over the repetitions, with the quartiles and min/max as the spread.
* The step's GEMMs alone (:func:`fastgan.benchmarking.floor.gemm_operands`, back to back into
  preallocated outputs) are one more contender: their GFLOP/s is this machine's GEMM peak at the
  step's own shapes, and their time plus the optimizers' memory traffic at the bandwidth
  measured on as many threads as the contenders get is the step's floor
  (:mod:`fastgan.benchmarking.floor`). Each contender is reported as a % of
  both.
* The graph floor at T threads (:func:`fastgan.benchmarking.floor.measure_graph_floor`: the
  larger of the step's critical path of GEMMs and its GEMM work at the best rate T threads
  reached together, plus the same optimizer traffic) bounds a step that runs independent
  GEMMs side by side, as numba's scheduled step (``--schedule``, :mod:`fastgan.gan.scheduled`)
  does; its GEMMs are timed one by one before the interleaved repetitions, and every
  contender is reported as a % of it too.

Import heavy dependencies (torch, matplotlib) inside functions: ``fastgan`` must start quickly.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..backends import Backend, available_backends
from ..errors import BackendUnavailable, ConfigError
from ..gan import presets
from ..gan.config import GANConfig
from ..threads import (
    default_num_threads,
    get_num_threads,
    physical_cores,
    pin_cpus,
    set_blas_threads,
    set_num_threads,
)
from .floor import (
    gemm_operands,
    measure_bandwidth,
    measure_graph_floor,
    optimizer_bytes,
    step_gemms,
    weight_shapes,
)
from .provenance import provenance
from .timing import cpu_per_wall, seconds_of

BACKENDS = ("numpy", "numba", "cupy")
PEERS = {"none": (), "eager": ("torch eager",), "compile": ("torch compile",), "jax": ("jax",),
         "all": ("torch eager", "torch compile", "jax")}
PEER_MODULES = {"torch eager": "torch_peer", "torch compile": "torch_peer", "jax": "jax_peer"}
"""The module of :mod:`fastgan.benchmarking` each peer lives in (imported when asked for)."""
GEMMS = "gemms"
"""The contender that runs the step's GEMMs alone (the floor's measured part)."""
SCHEDULED = "numba scheduled"
"""The contender that runs numba's step with its independent GEMMs side by side."""
REFERENCE = "torch eager"
"""Every contender's speed is also given as a ratio to this one."""
SCALING_BATCHES = (32, 128, 512, 1024, 2048, 4096)
SCALING_WIDTHS = (1, 2, 4)
QUICK = {"preset": ["tiny"], "batch": [64], "repeats": 5, "warmup": 2, "peers": "eager"}
DEFAULT_REPEATS, DEFAULT_WARMUP = 20, 3
SETTLE_S = 0.25
"""Pause between timed calls on more than one thread. After a call, OpenBLAS's and OpenMP's
worker threads spin-wait for a while (OpenMP's block time defaults to 200 ms); without the
pause they take the cores from whichever contender runs next. Measured on the 2-vCPU dev VM,
pytorch-vanilla b100 at 2 threads: PyTorch eager 136 ms/step right after numba, 73 ms after a
0.2 s pause."""

CPU_WINDOW_S = 0.5
"""Seconds each contender steps, after the timing, while its CPU time per wall second is
measured."""

Step = Callable[[], None]
Turn = Callable[[], Any]


# ---------------------------------------------------------------- timing
def settle_time() -> float:
    """:data:`SETTLE_S` when BLAS or Numba run more than one thread, else 0."""
    return SETTLE_S if max(get_num_threads().values()) > 1 else 0.0


def interleaved(contenders: dict[str, Step], repeats: int, warmup: int = DEFAULT_WARMUP,
                settle: float = 0.0) -> dict[str, list[float]]:
    """Seconds per call of each contender: ``warmup`` untimed calls each, then ``repeats``
    repetitions that call every contender once, rotating the order each repetition, with an
    untimed pause of ``settle`` seconds after every timed call (see :data:`SETTLE_S`)."""
    seconds: dict[str, list[float]] = {name: [] for name in contenders}
    for name, run in rotated_turns(contenders, repeats, warmup):
        seconds[name].append(seconds_of(run))
        if settle:
            time.sleep(settle)
    return seconds


def rotated_turns(contenders: dict[str, Turn], rounds: int, warmup: int = 0
                  ) -> Iterator[tuple[str, Turn]]:
    """``warmup`` untimed calls of each contender, then each contender's turn in every one of
    ``rounds`` rounds, the order rotating by one each round: (name, contender) pairs."""
    for run in contenders.values():
        for _ in range(warmup):
            run()
    names = list(contenders)
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            yield name, contenders[name]


def alternating_windows(contenders: dict[str, Step], rounds: int, window: float,
                        warmup: int = DEFAULT_WARMUP, settle: float = 0.0
                        ) -> dict[str, list[float]]:
    """Seconds per call of each contender, one figure per round: ``warmup`` untimed calls
    each, then ``rounds`` rounds in which every contender in turn (rotating the order each
    round) runs back to back for at least ``window`` seconds, its figure being the window's
    time over its calls; an untimed pause of ``settle`` seconds follows every window.

    Unlike :func:`interleaved`, a contender runs as in training (step after step, thread pools
    warm), and the figures of one round, taken seconds apart, can be paired: on a machine that
    switches between fast and slow modes, the ratio of two contenders in the same round
    compares them in the same mode.
    """
    seconds: dict[str, list[float]] = {name: [] for name in contenders}
    for name, run in rotated_turns(contenders, rounds, warmup):
        calls = 0
        start = now = time.perf_counter()
        while now - start < window or not calls:
            run()
            calls += 1
            now = time.perf_counter()
        seconds[name].append((now - start) / calls)
        if settle:
            time.sleep(settle)
    return seconds


def quartiles(values: Sequence[float]) -> dict[str, float]:
    """Median, quartiles, min and max of ``values``."""
    ordered = sorted(values)
    if len(ordered) >= 2:
        q1, _, q3 = statistics.quantiles(ordered, n=4, method="inclusive")
    else:
        q1 = q3 = ordered[0]
    return {"median": statistics.median(ordered), "q1": q1, "q3": q3, "min": ordered[0],
            "max": ordered[-1]}


def spread(seconds: Sequence[float]) -> dict[str, float]:
    """Median, quartiles, min and max of ``seconds``, in milliseconds."""
    return quartiles([1e3 * s for s in seconds])


# ---------------------------------------------------------------- the contenders
@dataclass(frozen=True)
class Case:
    """One (preset, batch, dtype) with architecture overrides (e.g. ``g_hidden``)."""

    preset: str
    batch: int
    dtype: str
    overrides: tuple[tuple[str, Any], ...] = ()

    def build(self) -> GANConfig:
        """The preset with this batch size and these overrides."""
        return presets.get(self.preset, batch_size=self.batch, **dict(self.overrides))


def _gan_and_batch(backend: str | Backend, case: Case) -> tuple[Any, Any]:
    """A fastgan GAN for ``case`` on ``backend`` and a fixed real batch on its device."""
    from ..gan.model import GAN

    gan = GAN.from_preset(case.preset, backend=backend, dtype=case.dtype,
                          batch_size=case.batch, **dict(case.overrides))
    real = np.random.default_rng(0).uniform(-1, 1, (gan.k * case.batch, gan.data_dim))
    return gan, gan.backend.asarray(real, case.dtype)


def fastgan_step(backend: str | Backend, case: Case) -> Step:
    """One fastgan training step on ``backend`` (a name or a backend object; synchronised on
    a GPU) over a fixed batch."""
    gan, real = _gan_and_batch(backend, case)
    if gan.backend.name != "cupy":
        return lambda: gan.step(real)
    import cupy

    def step_synchronised() -> None:
        gan.step(real)
        cupy.cuda.get_current_stream().synchronize()

    return step_synchronised


def scheduled_step(case: Case, threads: int) -> Step:
    """One step of numba's scheduled step (:class:`~fastgan.gan.scheduled.ScheduledStep`) on
    ``threads`` threads, BLAS on one thread during the step and back on ``threads`` after it
    for the other contenders (a microsecond each way, inside the timing)."""
    from ..gan.scheduled import ScheduledStep

    gan, real = _gan_and_batch("numba", case)
    stepper = ScheduledStep(gan, threads)
    set_blas_threads(threads)

    def run() -> None:
        stepper.step(real)
        set_blas_threads(threads)

    return run


def torch_step(case: Case, *, compile: bool) -> Step:
    """One step of the PyTorch peer (:mod:`fastgan.benchmarking.torch_peer`) on the CPU."""
    from .torch_peer import TorchGAN

    peer = TorchGAN(case.build(), dtype=case.dtype, compile=compile)
    real = peer.make_batch()
    return lambda: peer.step(real)


def jax_step(case: Case) -> Step:
    """One step of the JAX peer (:mod:`fastgan.benchmarking.jax_peer`), waited for."""
    from .jax_peer import JaxGAN

    peer = JaxGAN(case.build(), dtype=case.dtype)
    real = peer.make_batch()
    return lambda: peer.step(real)


def gemms_step(case: Case) -> Step:
    """The step's GEMMs alone, back to back into preallocated outputs."""
    operands = gemm_operands(case.build(), case.batch, case.dtype)

    def run() -> None:
        for a, b, c in operands:
            np.matmul(a, b, out=c)

    return run


def usable(backends: Sequence[str], peers: Sequence[str], schedule: bool = False
           ) -> tuple[list[str], dict[str, str]]:
    """The contenders among ``backends``, numba's scheduled step (when ``schedule``) and
    ``peers`` that can run here, and why the others cannot (name -> reason)."""
    reasons = {**available_backends()}
    if schedule:
        reasons[SCHEDULED] = reasons["numba"]
    runnable, skipped = [], {}
    for name in [*backends, *([SCHEDULED] if schedule else [])]:
        if reasons.get(name) is None:
            runnable.append(name)
        else:
            skipped[name] = reasons[name]
    for peer in peers:
        try:
            importlib.import_module(f"{__package__}.{PEER_MODULES[peer]}")
        except (ImportError, BackendUnavailable) as exc:
            skipped[peer] = str(exc)
        else:
            runnable.append(peer)
    return runnable, skipped


def contenders_for(case: Case, names: Sequence[str], threads: int) -> dict[str, Step]:
    """The step of every contender in ``names`` on ``threads`` threads, plus the GEMMs alone."""
    steps: dict[str, Step] = {GEMMS: gemms_step(case)}
    for name in names:
        if name in BACKENDS:
            steps[name] = fastgan_step(name, case)
        elif name == SCHEDULED:
            steps[name] = scheduled_step(case, threads)
        elif name == "jax":
            steps[name] = jax_step(case)
        else:
            steps[name] = torch_step(case, compile=name == "torch compile")
    return steps


# ---------------------------------------------------------------- one case
def measure_case(case: Case, names: Sequence[str], repeats: int, warmup: int,
                 bandwidth: float, threads: int) -> dict[str, Any]:
    """Time ``names`` and the GEMMs interleaved on ``case`` with ``threads`` threads (the
    count in force); every figure of one table row.

    ``bandwidth`` (bytes/s, :func:`fastgan.benchmarking.floor.measure_bandwidth`) prices the
    optimizers' traffic. samples/s counts the real rows a step consumes (k x batch);
    ``cpu_per_wall`` is the CPU time the process used per wall second while the contender
    stepped (:func:`~fastgan.benchmarking.timing.cpu_per_wall`: 1.0 is one core busy). The
    graph floor (``floor["graph"]``) is measured first, its GEMMs one by one, ``repeats``
    times each.
    """
    preset = case.build()
    graph = measure_graph_floor(preset, case.batch, threads, case.dtype, repeats)
    contenders = contenders_for(case, names, threads)
    seconds = interleaved(contenders, repeats, warmup, settle_time())
    cpu = {name: cpu_per_wall(contenders[name], CPU_WINDOW_S) for name in seconds}
    flops = sum(g.flops for g in step_gemms(preset, case.batch))
    gemm_ms = spread(seconds.pop(GEMMS))["median"]
    optimizer_ms = 1e3 * optimizer_bytes(preset, np.dtype(case.dtype).itemsize) / bandwidth
    floor_ms = gemm_ms + optimizer_ms
    graph["floor_ms"] = graph["gemm_ms"] + optimizer_ms
    peak_gflops = flops / gemm_ms / 1e6
    rows: dict[str, dict[str, Any]] = {}
    for name, times in seconds.items():
        ms = spread(times)
        step_ms = ms["median"]
        gflops = flops / step_ms / 1e6
        rows[name] = {"step_ms": ms, "steps_per_s": 1e3 / step_ms,
                      "samples_per_s": 1e3 * preset.k * case.batch / step_ms,
                      "gflops": gflops, "pct_gemm_peak": 100 * gflops / peak_gflops,
                      "pct_floor": 100 * floor_ms / step_ms,
                      "pct_graph_floor": 100 * graph["floor_ms"] / step_ms,
                      "cpu_per_wall": cpu[name]}
    if REFERENCE in rows:
        reference = rows[REFERENCE]["steps_per_s"]
        for row in rows.values():
            row["ratio_to_torch_eager"] = row["steps_per_s"] / reference
    return {"preset": case.preset, "batch": case.batch, "dtype": case.dtype,
            "overrides": {key: list(value) for key, value in case.overrides},
            "floor": {"gemm_ms": gemm_ms, "optimizer_ms": optimizer_ms, "floor_ms": floor_ms,
                      "gemm_gflops": peak_gflops, "flops": flops, "graph": graph},
            "contenders": rows}


def measure_windows(case: Case, names: Sequence[str], rounds: int, window: float, warmup: int,
                    bandwidth: float, threads: int) -> dict[str, Any]:
    """Time ``names`` and the GEMMs in alternating windows on ``case`` (``threads`` threads)
    (:func:`alternating_windows`), and pair them round by round.

    Each round's floor is that round's GEMM time plus the optimizers' traffic at
    ``bandwidth``; each contender's ``pct_floor`` in a round is that floor over its own step
    time in the same round. ``summary`` gives, per contender, the median, quartiles and
    extremes of those per-round percentages (a median of the ratios, not a ratio of medians,
    so that rounds in a slow mode are compared with rounds in the same mode).
    """
    seconds = alternating_windows(contenders_for(case, names, threads), rounds, window, warmup,
                                  settle_time())
    return paired_rounds(case, seconds, window, bandwidth)


def paired_rounds(case: Case, seconds: dict[str, list[float]], window: float,
                  bandwidth: float) -> dict[str, Any]:
    """The figures of :func:`measure_windows` from the seconds per step of each round
    (:func:`alternating_windows`; the GEMMs alone under :data:`GEMMS`)."""
    optimizer_ms = 1e3 * optimizer_bytes(case.build(), np.dtype(case.dtype).itemsize) / bandwidth
    seconds = dict(seconds)
    rounds_out = []
    for r, gemm_s in enumerate(seconds.pop(GEMMS)):
        floor_ms = 1e3 * gemm_s + optimizer_ms
        rounds_out.append({"floor_ms": floor_ms, "floor_steps_per_s": 1e3 / floor_ms,
                           "contenders": {name: {"step_ms": 1e3 * times[r],
                                                 "steps_per_s": 1 / times[r],
                                                 "pct_floor": 100 * floor_ms / (1e3 * times[r])}
                                          for name, times in seconds.items()}})
    summary = {name: quartiles([row["contenders"][name]["pct_floor"] for row in rounds_out])
               for name in seconds}
    return {"preset": case.preset, "batch": case.batch, "dtype": case.dtype, "window_s": window,
            "optimizer_ms": optimizer_ms, "rounds": rounds_out, "pct_floor": summary}


# ---------------------------------------------------------------- scaling
def hidden_widths(preset: GANConfig) -> dict[str, tuple[int, ...]]:
    """The preset's hidden layer widths: ``{"g_hidden": (...), "d_hidden": (...)}``."""
    g = weight_shapes(preset.generator, preset.latent_dim)
    d = weight_shapes(preset.discriminator, preset.data_dim)
    return {"g_hidden": tuple(out for _, _, out in g[:-1]),
            "d_hidden": tuple(out for _, _, out in d[:-1])}


def thread_counts(cores: int) -> list[int]:
    """The threads axis of the scaling run: 1, 2, 4, ... below ``cores``, then ``cores``."""
    counts = [1]
    while counts[-1] * 2 < cores:
        counts.append(counts[-1] * 2)
    return [*counts, cores] if cores > 1 else counts


def measure_threads(case: Case, names: Sequence[str], settings: Settings,
                    notify: Callable[[str], None] = lambda _: None) -> list[dict[str, Any]]:
    """:func:`measure_case` of ``case`` at each of :func:`thread_counts` (up to the physical
    cores), every pool set to that count, the floor's bandwidth measured on as many threads;
    ``settings.threads`` is in force again afterwards. Each result's ``x`` is its count."""
    torch_too = any(name.startswith("torch") for name in names)
    results = []
    try:
        for count in thread_counts(physical_cores()):
            set_threads(count, torch_too)
            notify(f"{count} thread(s):")
            bandwidth = measure_bandwidth(dtype=case.dtype, threads=count)
            [result] = measure_cases([case], names, dataclasses.replace(settings, threads=count),
                                     bandwidth, notify)
            results.append({**result, "x": count, "bandwidth_gbs": bandwidth / 1e9})
    finally:
        set_threads(settings.threads, torch_too)
    return results


def scaling_cases(preset: str, batch: int, dtype: str) -> dict[str, list[Case]]:
    """Cases over batch sizes (:data:`SCALING_BATCHES`, at the preset's widths) and over
    width (hidden sizes x :data:`SCALING_WIDTHS`, at ``batch``)."""
    widths = hidden_widths(presets.get(preset))
    return {
        "batch": [Case(preset, b, dtype) for b in SCALING_BATCHES],
        "width": [Case(preset, batch, dtype, tuple(
            (key, tuple(factor * w for w in value)) for key, value in widths.items()))
            for factor in SCALING_WIDTHS],
    }


SCALING_AXES = {"batch": "batch size", "width": "width factor", "threads": "threads"}
"""The scaling run's axes and their labels, in the plot's order."""


def plot_scaling(path: Path, scaling: dict[str, list[dict[str, Any]]]) -> Path | None:
    """Steps/s against each axis of ``scaling`` (batch size, width, threads), one line per
    contender, the floor and (where measured) the graph floor, as a PNG (None, with a
    warning, when matplotlib is missing)."""
    from ..viz import _new_figure, _save_figure

    axes_drawn = [(axis, label) for axis, label in SCALING_AXES.items() if axis in scaling]
    figure = _new_figure((5 * len(axes_drawn), 4))
    if figure is None:
        return None
    panels = figure.subplots(1, len(axes_drawn), squeeze=False)[0]
    for axes, (axis, label) in zip(panels, axes_drawn, strict=True):
        rows = scaling[axis]
        for name in rows[0]["contenders"]:
            axes.plot([row["x"] for row in rows],
                      [row["contenders"][name]["steps_per_s"] for row in rows],
                      marker="o", label=name)
        axes.plot([row["x"] for row in rows], [1e3 / row["floor"]["floor_ms"] for row in rows],
                  "k--", label="floor")
        if all("graph" in row["floor"] for row in rows):
            axes.plot([row["x"] for row in rows],
                      [1e3 / row["floor"]["graph"]["floor_ms"] for row in rows], "k:",
                      label="graph floor")
        axes.set(xscale="log", yscale="log", xlabel=label, ylabel="steps/s",
                 title=f"{rows[0]['preset']}, {rows[0]['dtype']}: steps/s over {label}")
        axes.set_xticks([row["x"] for row in rows], [str(row["x"]) for row in rows])
        axes.set_xticks([], minor=True)
        axes.grid(True, which="both", alpha=0.3)
        axes.legend(fontsize="small")
    return _save_figure(path, figure)


# ---------------------------------------------------------------- report
def set_threads(threads: int, torch_too: bool) -> None:
    """One thread count for BLAS, Numba (see :mod:`fastgan.threads`) and torch (when
    ``torch_too``), and the process kept on as many cores (:func:`fastgan.threads.pin_cpus`),
    which bounds the pools that take no count (XLA's)."""
    if available_backends().get("numba") is None:
        import numba  # noqa: F401 - imported so that its pool is set too

    pin_cpus(threads)
    set_num_threads(threads)
    if torch_too:
        from .torch_peer import set_threads as set_torch_threads

        set_torch_threads(threads)


def format_table(results: Sequence[dict[str, Any]], key: str = "batch") -> str:
    """The results as a Markdown table, one line per (case, contender)."""
    header = (f"| preset | {key} | dtype | contender | ms/step (median [IQR]) | steps/s "
              "| samples/s | vs torch eager | GFLOP/s | % GEMM peak | % floor | % graph floor "
              "| CPU/wall |")
    lines = [header, "|" + "|".join("---" for _ in range(header.count("|") - 1)) + "|"]
    for result in results:
        floor, graph = result["floor"], result["floor"]["graph"]
        case = f"| {result['preset']} | {result.get('x', result['batch'])} | {result['dtype']}"
        lines.append(f"{case} | floor (GEMMs + optimizer) | {floor['floor_ms']:.2f} | "
                     f"{1e3 / floor['floor_ms']:.1f} | | | {floor['gemm_gflops']:.1f} | 100 | "
                     f"100 | {100 * graph['floor_ms'] / floor['floor_ms']:.0f} | |")
        lines.append(f"{case} | graph floor (critical path {graph['critical_path_ms']:.2f}, "
                     f"work {graph['work_ms']:.2f}, + optimizer) | {graph['floor_ms']:.2f} | "
                     f"{1e3 / graph['floor_ms']:.1f} | | | | | "
                     f"{100 * floor['floor_ms'] / graph['floor_ms']:.0f} | 100 | |")
        for name, row in result["contenders"].items():
            ms = row["step_ms"]
            ratio = row.get("ratio_to_torch_eager")
            lines.append(
                f"{case} | {name} | {ms['median']:.2f} [{ms['q1']:.2f}, {ms['q3']:.2f}] "
                f"| {row['steps_per_s']:.1f} | {row['samples_per_s']:.0f} "
                f"| {'' if ratio is None else f'{ratio:.2f}x'} | {row['gflops']:.1f} "
                f"| {row['pct_gemm_peak']:.0f} | {row['pct_floor']:.0f} "
                f"| {row['pct_graph_floor']:.0f} | {row['cpu_per_wall']:.2f} |")
    return "\n".join(lines)


def format_windows(result: dict[str, Any]) -> str:
    """Alternating windows (:func:`measure_windows`) as a Markdown table: one line per round,
    steps/s of the floor and of each contender with its % of that round's floor, then the
    per-round percentages summarised."""
    names = list(result["pct_floor"])
    header = "| round | floor steps/s | " + " | ".join(f"{n} steps/s | {n} % floor"
                                                      for n in names) + " |"
    lines = [header, "|" + "|".join("---" for _ in range(header.count("|") - 1)) + "|"]
    for r, row in enumerate(result["rounds"], 1):
        cells = " | ".join(f"{row['contenders'][n]['steps_per_s']:.1f} | "
                           f"{row['contenders'][n]['pct_floor']:.0f}" for n in names)
        lines.append(f"| {r} | {row['floor_steps_per_s']:.1f} | {cells} |")
    lines.append("")
    for name in names:
        pct = result["pct_floor"][name]
        lines.append(f"{name}: % of the same round's floor, median {pct['median']:.1f} "
                     f"[IQR {pct['q1']:.1f}, {pct['q3']:.1f}], min {pct['min']:.1f}, "
                     f"max {pct['max']:.1f}")
    return "\n".join(lines)


# ---------------------------------------------------------------- a whole benchmark
@dataclass(frozen=True)
class Settings:
    """What one benchmark measures: contenders, cases, repetitions and threads (checked)."""

    backends: tuple[str, ...] = BACKENDS
    presets: tuple[str, ...] = ("pytorch-vanilla",)
    batches: tuple[int, ...] | None = None
    """Batch sizes; None: each preset's own."""
    dtype: str = "float32"
    peers: str = "eager"
    repeats: int = DEFAULT_REPEATS
    warmup: int = DEFAULT_WARMUP
    threads: int = field(default_factory=default_num_threads)
    schedule: bool = False
    """Also time numba's scheduled step (:data:`SCHEDULED`)."""
    scaling: bool = False
    window: float | None = None
    """Seconds per window of the alternating-window mode (:func:`measure_windows`), with
    ``repeats`` rounds; None: the interleaved mode (:func:`measure_case`)."""

    def __post_init__(self) -> None:
        unknown = sorted(set(self.backends) - set(BACKENDS))
        if unknown:
            raise ConfigError(f"unknown backend {', '.join(unknown)}; choose from "
                              f"{', '.join(BACKENDS)}")
        if self.peers not in PEERS:
            raise ConfigError(f"peers must be one of {', '.join(PEERS)}, got {self.peers!r}")
        for preset in self.presets:
            presets.get(preset)  # a clear ConfigError for an unknown name
        for key in ("repeats", "threads"):
            if getattr(self, key) < 1:
                raise ConfigError(f"--{key} must be at least 1, got {getattr(self, key)}")
        if self.window is not None and not self.window > 0:
            raise ConfigError(f"--windows must be a positive number of seconds, got {self.window}")
        if self.batches and min(self.batches) < 1:
            raise ConfigError(f"batch sizes must be at least 1, got {list(self.batches)}")

    @classmethod
    def quick(cls, **changes: Any) -> Settings:
        """A smoke run well under a minute (:data:`QUICK`); ``changes`` override it."""
        values = {"presets": tuple(QUICK["preset"]), "batches": tuple(QUICK["batch"]),
                  "repeats": QUICK["repeats"], "warmup": QUICK["warmup"],
                  "peers": QUICK["peers"], "scaling": False}
        return cls(**{**values, **changes})

    def cases(self) -> list[Case]:
        """Every (preset, batch) to measure, in order."""
        return [Case(preset, batch, self.dtype) for preset in self.presets
                for batch in self.batches or [presets.get(preset).batch_size]]


def measure_cases(cases: Sequence[Case], names: Sequence[str], settings: Settings,
                  bandwidth: float, notify: Callable[[str], None] = lambda _: None,
                  ) -> list[dict[str, Any]]:
    """:func:`measure_case` of each case in turn; ``notify`` hears which one starts."""
    results = []
    for case in cases:
        notify(f"{case.preset} batch {case.batch} {case.dtype} {dict(case.overrides) or ''}...")
        results.append(measure_case(case, names, settings.repeats, settings.warmup, bandwidth,
                                    settings.threads))
    return results


def run(settings: Settings, *, plot: Path | None = None,
        notify: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    """Measure everything ``settings`` asks for; returns the report (its provenance: command,
    commit, machine and date; settings, skipped contenders with reasons, bandwidth, ``results``
    and, with ``scaling``, the scaling results and the plot's path, written to ``plot``).
    ``notify`` hears progress lines."""
    names, skipped = usable(settings.backends, PEERS[settings.peers], settings.schedule)
    set_threads(settings.threads, any(name.startswith("torch") for name in names))
    for name, reason in skipped.items():
        notify(f"skipping {name}: {reason}")
    if not names:
        raise BackendUnavailable("none of the asked-for backends or peers can run here")
    report: dict[str, Any] = {**provenance(), "settings": dataclasses.asdict(settings),
                              "skipped": skipped}
    bandwidth = measure_bandwidth(dtype=settings.dtype, threads=settings.threads)
    report["bandwidth_gbs"] = bandwidth / 1e9
    cases = settings.cases()
    if settings.window is not None:
        report["windows"] = []
        for case in cases:
            notify(f"{case.preset} batch {case.batch} {case.dtype}: {settings.repeats} rounds of "
                   f"{settings.window:g} s windows...")
            report["windows"].append(measure_windows(case, names, settings.repeats,
                                                     settings.window, settings.warmup, bandwidth,
                                                     settings.threads))
    else:
        report["results"] = measure_cases(cases, names, settings, bandwidth, notify)
    if settings.scaling:
        first = cases[0]
        scaling: dict[str, list[dict[str, Any]]] = {}
        for axis, axis_cases in scaling_cases(first.preset, first.batch, first.dtype).items():
            results = measure_cases(axis_cases, names, settings, bandwidth, notify)
            for result, x in zip(results, SCALING_BATCHES if axis == "batch" else
                                 SCALING_WIDTHS, strict=False):
                result["x"] = x
            scaling[axis] = results
        scaling["threads"] = measure_threads(first, names, settings, notify)
        report["scaling"] = scaling
        drawn = None if plot is None else plot_scaling(plot, scaling)
        report["scaling_plot"] = None if drawn is None else str(drawn)
    report["machine"]["load_average_after"] = os.getloadavg() if hasattr(os, "getloadavg") \
        else None
    return report
