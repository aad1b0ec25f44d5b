"""Developer sessions: ``nox -s tests``, ``nox -s lint``, ``nox -s bench``, ``nox -s docs``,
``nox -s build``."""

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
