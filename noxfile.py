"""Developer sessions: ``nox -s tests``, ``nox -s lint``, ``nox -s bench``, ``nox -s docs``,
``nox -s build``, ``nox -s faults`` (the fault drills and their table); portability:
``nox -s tests-cpus`` (other CPUs' OpenBLAS kernels),
``nox -s tests-oldest`` (the oldest declared dependencies)."""

import os
import shutil
import subprocess
import tempfile
import zipfile
from pathlib import Path

import nox

nox.options.sessions = ["lint", "tests"]


@nox.session
def tests(session: nox.Session) -> None:
    """The whole test suite (GPU tests skip with a reason where no CUDA device exists)."""
    session.install("-e", ".[dev]")
    session.run("python", "-m", "pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff over the package, tests and benchmarks."""
    session.install("ruff")
    session.run("ruff", "check", ".")


@nox.session
def bench(session: nox.Session) -> None:
    """pytest-benchmark suites (never part of the tests; never fail on speed).

    Saves JSON under .benchmarks/ for ``--benchmark-compare``; PyTorch peers run when the
    ``[compare]`` extra is installed. With torch and Fashion-MNIST present, the time-to-quality
    race trains for up to half an hour per side: ``nox -s bench -- -k "not time_to_quality"``
    leaves it out.
    """
    session.install("-e", ".[dev]")
    session.run("python", "-m", "pytest", "benchmarks", "--benchmark-autosave",
                "--benchmark-columns=median,iqr,ops", *session.posargs)


FAULTS_TABLE = "benchmarks/results/faults-2core-drills.md"


@nox.session
def faults(session: nox.Session) -> None:
    """The fault drills (``pytest -m faults``: processes killed, a full disk, two writers,
    damaged files), then their figures as the table docs/faults.md includes
    (benchmarks/results/faults-2core-drills.md)."""
    session.install("-e", ".[dev]")
    drills = Path(session.create_tmp()) / "drills.jsonl"
    drills.unlink(missing_ok=True)
    session.run("python", "-m", "pytest", "-m", "faults", *session.posargs,
                env={"FASTGAN_DRILLS": str(drills)})
    table = session.run("python", "tests/support/drills.py", str(drills), silent=True)
    Path(FAULTS_TABLE).write_text(table, encoding="utf-8")
    session.log(f"wrote {FAULTS_TABLE}:\n{table}")


@nox.session
def docs(session: nox.Session) -> None:
    """The documentation site (mkdocs.yml, docs/) into site/, strictly: a broken link or an
    API reference that does not resolve fails the build."""
    session.install("-e", ".[docs]")
    session.run("mkdocs", "build", "--strict", *session.posargs,
                env={"NO_MKDOCS_2_WARNING": "1"})


WHEEL_SMOKE = """
import importlib, importlib.resources, pathlib, pkgutil, sys
import fastgan
where = pathlib.Path(fastgan.__file__).resolve()
assert "site-packages" in where.parts, f"fastgan imported from {where}, not the installed wheel"
missing = [name for name in fastgan.__all__ if not hasattr(fastgan, name)]
assert not missing, f"public names missing: {missing}"
modules = [m.name for m in pkgutil.walk_packages(fastgan.__path__, "fastgan.")
           if m.name != "fastgan.__main__"]          # that one runs the command line
optional = []                 # modules that need an extra, refused with a clear error
for name in modules:
    try:
        importlib.import_module(name)
    except fastgan.BackendUnavailable:
        optional.append(name)
assert importlib.resources.files("fastgan").joinpath("py.typed").is_file(), "no py.typed"
print(f"fastgan {fastgan.__version__} from {where.parent}: {len(fastgan.__all__)} public names, "
      f"{len(modules) - len(optional)} modules imported (needing an extra: {optional}), "
      f"py.typed installed")
"""


@nox.session
def build(session: nox.Session) -> None:
    """Build the sdist and wheel, check them (``twine check``), and prove the wheel works on
    its own: every tracked file under fastgan/ is in it, and in a fresh virtual environment
    outside the source tree it installs and runs ``fastgan --version``, ``fastgan info``, a
    50-step ``fastgan train`` on the offline default, and imports every module."""
    session.install("build", "twine")
    outside = Path(tempfile.mkdtemp(prefix="fastgan-build-"))
    dist = outside / "dist"
    session.run("python", "-m", "build", "--outdir", str(dist))
    session.run("twine", "check", "--strict", *map(str, sorted(dist.iterdir())))

    (wheel,) = dist.glob("*.whl")
    tracked = subprocess.run(["git", "ls-files", "fastgan"], capture_output=True, text=True,
                             check=True).stdout.split()
    with zipfile.ZipFile(wheel) as archive:
        packed = set(archive.namelist())
    absent = sorted(set(tracked) - packed)
    if absent:
        session.error(f"tracked files missing from {wheel.name}: {', '.join(absent)}")

    venv = outside / "venv"
    session.run("python", "-m", "venv", str(venv))
    bin_dir = venv / "bin"
    session.run(str(bin_dir / "python"), "-m", "pip", "install", "--quiet", str(wheel),
                external=True)
    home = outside / "home"
    home.mkdir()
    env = {"FASTGAN_DATA": str(outside / "data")}
    with session.chdir(home):
        fastgan = str(bin_dir / "fastgan")
        session.run(fastgan, "--version", external=True, env=env)
        session.run(fastgan, "info", external=True, env=env)
        session.run(fastgan, "train", "--steps", "50", "--threads", "1", "--no-progress",
                    "--out", str(home / "run"), external=True, env=env)
        session.run(str(bin_dir / "python"), "-c", WHEEL_SMOKE, external=True, env=env)
    if not (home / "run" / "checkpoint.npz").is_file():
        session.error("fastgan train wrote no checkpoint.npz")
    shutil.rmtree(venv)
    session.log(f"built and smoke-tested {wheel.name}; sdist and wheel in {dist}")


# ------------------------------------------------------------------ portability
# OpenBLAS picks its kernels per CPU at run time; OPENBLAS_CORETYPE forces one, which is how
# these sessions try other CPUs' kernels on one machine. "" leaves the choice to OpenBLAS.
# Each forced name must be reported back by threadpoolctl as one of the kernels listed: an
# unknown name falls back silently, and some OpenBLAS builds run another kernel under a name
# (numpy's wheels run Haswell's for Zen and report their generic SSE kernel as Katmai).
CORE_TYPES = {
    "": None,
    "Haswell": {"Haswell"},
    "SkylakeX": {"SkylakeX"},
    "Zen": {"Zen", "Haswell"},
    "Sandybridge": {"Sandybridge"},
    "Nehalem": {"Nehalem"},
    "Prescott": {"Prescott", "Katmai"},
}
PORTABILITY_TESTS = ["tests/test_learning.py", "tests/test_learning_quality.py",
                     "tests/test_parity.py", "tests/test_gradients.py",
                     "tests/test_cupy_backend.py"]
KERNEL_PROBE = """
import numpy as np, scipy.linalg
from threadpoolctl import threadpool_info
a = np.random.default_rng(0).standard_normal((64, 64))
for dtype in (np.float32, np.float64):
    (a.astype(dtype) @ a.astype(dtype)).sum(); scipy.linalg.blas.dgemm(1.0, a, a).sum()
print(" ".join(sorted({i["architecture"] for i in threadpool_info()
                       if i["internal_api"] == "openblas"})))
"""


def _openblas_kernel(session: nox.Session, core_type: str) -> str | None:
    """The kernel numpy's and scipy's OpenBLAS run with ``core_type`` forced, or None when this
    CPU cannot run it (a kernel for instructions the CPU lacks dies of SIGILL)."""
    env = {**os.environ, "OPENBLAS_CORETYPE": core_type}
    if not core_type:
        del env["OPENBLAS_CORETYPE"]
    probe = subprocess.run([str(Path(session.bin, "python")), "-c", KERNEL_PROBE], env=env,
                           capture_output=True, text=True, check=False)
    if probe.returncode < 0:
        return None
    if probe.returncode:
        session.error(f"the OpenBLAS probe failed under {core_type!r}:\n{probe.stderr}")
    return probe.stdout.strip()


@nox.session(name="tests-cpus")
def tests_cpus(session: nox.Session) -> None:
    """The learning, parity and gradient tests once per OpenBLAS kernel (CORE_TYPES).

    The session sets OPENBLAS_CORETYPE itself (unset for OpenBLAS's own choice), since some
    machines set it in the environment. A kernel this CPU cannot run (e.g. SkylakeX without
    AVX-512) is reported and skipped. Takes tens of minutes on 2 cores: the older kernels
    are several times slower. ``nox -s tests-cpus -- -k ring`` passes pytest options on.
    """
    session.install("-e", ".[dev]")
    skipped = []
    for core_type, accepted in CORE_TYPES.items():
        kernel = _openblas_kernel(session, core_type)
        label = core_type or "unset"
        if kernel is None:
            session.warn(f"OPENBLAS_CORETYPE={label}: this CPU cannot run that kernel; skipped")
            skipped.append(label)
            continue
        if accepted is not None and not set(kernel.split()) <= accepted:
            session.error(f"OPENBLAS_CORETYPE={label} runs the {kernel} kernel, not "
                          f"{' or '.join(sorted(accepted))}")
        session.log(f"OPENBLAS_CORETYPE={label}: OpenBLAS runs its {kernel} kernel")
        session.run("python", "-m", "pytest", *PORTABILITY_TESTS, *session.posargs,
                    env={"OPENBLAS_CORETYPE": core_type or None})
    if skipped:
        session.log(f"kernels this CPU cannot run, not tried: {', '.join(skipped)}")


@nox.session(name="tests-oldest")
def tests_oldest(session: nox.Session) -> None:
    """The whole test suite on the oldest dependencies pyproject.toml allows for this Python.

    uv's ``lowest-direct`` resolution installs every direct dependency (runtime and ``dev``) at
    the lowest version that exists for this Python, and their own dependencies at the newest
    that fit: a minimum that no longer works fails here, not on a user's machine.
    """
    session.install("uv")
    session.run_install("uv", "pip", "install", "--python", str(Path(session.bin, "python")),
                        "--resolution", "lowest-direct", "-e", ".[dev]")
    session.run("fastgan", "info")                         # the versions under test
    session.run("python", "-m", "pytest", *session.posargs)
