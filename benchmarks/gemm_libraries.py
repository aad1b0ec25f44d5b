"""Which BLAS runs a training step's GEMMs fastest here: NumPy's bundled OpenBLAS against other
builds, called on the same operands in alternating windows in one process.

Every library is a shared object called through its C interface (``cblas_sgemm``, with
whatever prefix and integer width its build uses) on the operands the floor times
(:func:`fastgan.benchmarking.floor.gemm_operands`: the step's GEMMs, transposed views
included). NumPy's own ``np.matmul`` is the reference, and NumPy's own OpenBLAS called the
same way as the others shows what the calling route costs. All libraries run in one process,
each limited to ``--threads`` threads (threadpoolctl sees every library loaded), and take turns
in windows of ``--window`` seconds (:func:`fastgan.benchmarking.bench.alternating_windows`), a
settle pause after each on more than one thread, so that a change of machine mode hits every
library alike; each round's ratio to ``np.matmul`` is taken within the round. Before timing,
every library's products are checked against NumPy's. Usage::

    python benchmarks/gemm_libraries.py --threads 1 \\
        --library openblas-0.3.34=/path/to/libscipy_openblas.so \\
        --library mkl=/path/to/libmkl_rt.so.3 --json out.json

The libraries come from wheels: ``scipy-openblas32`` / ``scipy-openblas64``
(``python -c "import scipy_openblas32 as s; print(s.get_lib_dir())"``) and ``mkl`` (its
``libmkl_rt.so``), each best installed in a virtual environment of its own and loaded here by
path.

``--xla`` adds the GEMMs of the JAX peer's compiler (``jax[cpu]``, the ``[compare]`` extra):
``xla per GEMM``, one jitted ``dot`` per product (transposed operands as the same transposed
``dot``), and ``xla one program``, all the pass's products in one jitted function, which XLA
may run side by side. XLA's threads do not follow threadpoolctl, so the process is kept on
``--threads`` cores (:func:`fastgan.threads.pin_cpus`) before JAX starts.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

from fastgan.benchmarking.bench import alternating_windows, quartiles, spread
from fastgan.benchmarking.floor import gemm_operands, step_gemms
from fastgan.benchmarking.provenance import provenance
from fastgan.environment import gemm_library
from fastgan.gan import presets
from fastgan.threads import pin_cpus

CASES = (("pytorch-vanilla", 100), ("pytorch-vanilla", 512), ("keras-mlp", 128))
ROW_MAJOR, NO_TRANS, TRANS = 101, 111, 112           # CBLAS enum values
SGEMM_SYMBOLS = (("scipy_cblas_sgemm64_", ctypes.c_int64),   # scipy-openblas64, NumPy's own
                 ("scipy_cblas_sgemm", ctypes.c_int),        # scipy-openblas32
                 ("cblas_sgemm", ctypes.c_int))              # MKL (LP64), any plain CBLAS
REFERENCE = "numpy matmul"
XLA_PER_GEMM, XLA_PROGRAM = "xla per GEMM", "xla one program"


@dataclass
class Library:
    """One BLAS shared object and its single-precision GEMM."""

    name: str
    path: str
    sgemm: Callable
    integer: type

    @classmethod
    def load(cls, name: str, path: str) -> Library:
        """Open ``path`` and find its ``cblas_sgemm`` (a clear error when it has none)."""
        handle = ctypes.CDLL(path)
        for symbol, integer in SGEMM_SYMBOLS:
            if hasattr(handle, symbol):
                sgemm = getattr(handle, symbol)
                pointer = ctypes.c_void_p
                sgemm.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int, integer, integer,
                                  integer, ctypes.c_float, pointer, integer, pointer, integer,
                                  ctypes.c_float, pointer, integer]
                sgemm.restype = None
                return cls(name, path, sgemm, integer)
        raise SystemExit(f"{path} has no cblas_sgemm ({', '.join(s for s, _ in SGEMM_SYMBOLS)})")

    def calls(self, operands: list[tuple[np.ndarray, ...]]) -> Callable[[], None]:
        """One pass over ``operands``, ``C = A @ B`` each, as a function of no arguments."""
        arguments = []
        for a, b, c in operands:
            (trans_a, lda), (trans_b, ldb) = _layout(a), _layout(b)
            arguments.append((ROW_MAJOR, trans_a, trans_b, c.shape[0], c.shape[1], a.shape[1],
                              1.0, a.ctypes.data, lda, b.ctypes.data, ldb, 0.0, c.ctypes.data,
                              c.shape[1]))
        sgemm = self.sgemm

        def run() -> None:
            for args in arguments:
                sgemm(*args)

        return run


def _layout(x: np.ndarray) -> tuple[int, int]:
    """(CBLAS transpose flag, leading dimension) of a row-major matrix or a transposed view."""
    if x.flags.c_contiguous:
        return NO_TRANS, x.shape[1]
    if x.flags.f_contiguous:
        return TRANS, x.shape[0]
    raise ValueError("operands must be C- or Fortran-contiguous")


def numpy_matmul(operands: list[tuple[np.ndarray, ...]]) -> Callable[[], None]:
    """The reference: what the floor and fastgan's CPU backends call."""
    def run() -> None:
        for a, b, c in operands:
            np.matmul(a, b, out=c)
    return run


def xla_calls(operands: list[tuple[np.ndarray, ...]], one_program: bool
              ) -> Callable[[], None]:
    """One pass over ``operands`` through XLA (see the module), checked against NumPy's
    products once; the products stay on XLA's side (no copy into ``c``)."""
    import jax
    import jax.numpy as jnp

    def stored(x: np.ndarray) -> tuple[jax.Array, bool]:
        """The array XLA holds and whether the product reads it transposed."""
        return (jnp.asarray(x), False) if x.flags.c_contiguous else (jnp.asarray(x.T), True)

    pairs = [(stored(a), stored(b)) for a, b, _ in operands]
    flags = tuple((ta, tb) for (_, ta), (_, tb) in pairs)
    arrays = [(a, b) for (a, _), (b, _) in pairs]

    def product(a: jax.Array, b: jax.Array, trans_a: bool, trans_b: bool) -> jax.Array:
        return jnp.matmul(a.T if trans_a else a, b.T if trans_b else b)

    if one_program:
        program = jax.jit(lambda arrays: [product(a, b, *f)
                                          for (a, b), f in zip(arrays, flags, strict=True)])

        def run() -> list[jax.Array]:
            return jax.block_until_ready(program(arrays))
    else:
        dot = jax.jit(product, static_argnums=(2, 3))

        def run() -> list[jax.Array]:
            return jax.block_until_ready([dot(a, b, *f)
                                          for (a, b), f in zip(arrays, flags, strict=True)])

    for found, (a, b, _) in zip(run(), operands, strict=True):
        _check_product(f"xla ({'one program' if one_program else 'per GEMM'})",
                       np.asarray(found), a, b)
    return run


def _check_product(name: str, found: np.ndarray, a: np.ndarray, b: np.ndarray) -> None:
    """``found`` must be ``a @ b`` within float32 rounding of k-term sums."""
    expected = np.matmul(a.astype(np.float64), b.astype(np.float64))
    error = np.abs(found - expected).max() / np.abs(expected).max()
    if not error < 1e-5:
        raise SystemExit(f"{name}: products differ from NumPy's (relative error {error:.2g})")


def check(name: str, run: Callable[[], None], operands: list[tuple[np.ndarray, ...]]) -> None:
    """One pass of ``run`` must give NumPy's products (float32 rounding of k-term sums)."""
    for _, _, c in operands:
        c.fill(np.nan)
    run()
    for a, b, c in operands:
        _check_product(name, c, a, b)


def measure(libraries: list[Library], threads: int, rounds: int, window: float,
            xla: bool = False) -> list[dict]:
    """Each case's GFLOP/s per library (and XLA's two ways with ``xla``), medians over the
    rounds, and each library's ratio to ``np.matmul`` in the same round (median, min, max)."""
    results = []
    with threadpool_limits(threads, user_api="blas"):
        for preset_name, batch in CASES:
            preset = presets.get(preset_name, batch_size=batch)
            operands = gemm_operands(preset, batch, "float32")
            flops = sum(g.flops for g in step_gemms(preset, batch))
            contenders = {REFERENCE: numpy_matmul(operands)}
            contenders.update({lib.name: lib.calls(operands) for lib in libraries})
            for name, run in contenders.items():
                check(name, run, operands)
            if xla:
                contenders.update({XLA_PER_GEMM: xla_calls(operands, one_program=False),
                                   XLA_PROGRAM: xla_calls(operands, one_program=True)})
            seconds = alternating_windows(contenders, rounds, window, warmup=3,
                                          settle=0.3 if threads > 1 else 0.0)
            reference = seconds[REFERENCE]
            row = {}
            for name, times in seconds.items():
                ratios = [r / t for r, t in zip(reference, times, strict=True)]
                ms = spread(times)["median"]
                row[name] = {"gflops": flops / ms / 1e6, "ms": ms,
                             "speed_vs_numpy": quartiles(ratios)}
            results.append({"preset": preset_name, "batch": batch, "n_gemms": len(operands),
                            "gflops": flops, "libraries": row})
            print(f"  {preset_name} b{batch}: " + ", ".join(
                f"{n} {r['gflops']:.0f} GFLOP/s ({r['speed_vs_numpy']['median']:.2f}x)"
                for n, r in row.items()), file=sys.stderr, flush=True)
    return results


def describe(libraries: list[Library]) -> dict[str, dict]:
    """threadpoolctl's record of every library timed: API, version, kernel, threading."""
    by_path = {os.path.realpath(info["filepath"]): info for info in threadpool_info()}
    numpy_own = gemm_library() or {}
    found = {REFERENCE: {"library": numpy_own.get("library"), "version": numpy_own.get("version"),
                         "kernel": numpy_own.get("kernel"),
                         "threading": numpy_own.get("threading")}}
    for lib in libraries:
        info = by_path.get(os.path.realpath(lib.path), {})
        found[lib.name] = {"library": info.get("internal_api"), "version": info.get("version"),
                           "kernel": info.get("architecture"),
                           "threading": info.get("threading_layer"), "path": lib.path}
    if "jax" in sys.modules:
        jax = sys.modules["jax"]
        for name in (XLA_PER_GEMM, XLA_PROGRAM):
            found[name] = {"library": "jax", "version": jax.__version__, "kernel": None,
                           "threading": "xla"}
    return found


def table(results: list[dict], libraries: dict[str, dict], threads: int) -> str:
    """Markdown: one line per case and library."""
    lines = ["| case | library | kernel | threads | ms per pass | GFLOP/s | speed vs np.matmul "
             "(median [min, max] over rounds) |", "|---|---|---|---|---|---|---|"]
    for result in results:
        for name, row in result["libraries"].items():
            info, ratio = libraries[name], row["speed_vs_numpy"]
            lines.append(f"| {result['preset']} b{result['batch']} | {name} "
                         f"({info['library']} {info['version']}) | {info['kernel'] or '-'} | "
                         f"{threads} | {row['ms']:.2f} | {row['gflops']:.1f} | "
                         f"{ratio['median']:.3f} [{ratio['min']:.3f}, {ratio['max']:.3f}] |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--library", action="append", default=[], metavar="NAME=PATH",
                        help="a BLAS shared object to compare (repeatable)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--window", type=float, default=1.0, help="seconds per window")
    parser.add_argument("--numpy-ctypes", action="store_true",
                        help="also call NumPy's own OpenBLAS through ctypes (the route's cost)")
    parser.add_argument("--xla", action="store_true",
                        help="also JAX's XLA, a jitted dot per GEMM and all in one program")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.xla:
        pin_cpus(args.threads)
    libraries = [Library.load(*spec.split("=", 1)) for spec in args.library]
    if args.numpy_ctypes:
        libraries.insert(0, Library.load("numpy's own via ctypes", gemm_library()["path"]))
    load_before = os.getloadavg()
    results = measure(libraries, args.threads, args.rounds, args.window, args.xla)
    load_after = os.getloadavg()
    described = describe(libraries)
    print(f"{args.rounds} rounds of {args.window:g} s windows, {args.threads} thread(s); "
          f"load average before {load_before}, after {load_after}")
    print(table(results, described, args.threads))
    if args.json:
        args.json.write_text(json.dumps({
            **provenance(), "threads": args.threads, "rounds": args.rounds,
            "window_s": args.window, "load_before": load_before, "load_after": load_after,
            "libraries": described, "results": results}, indent=1))


if __name__ == "__main__":
    main()
