"""Developer sessions: ``nox -s tests``, ``nox -s lint``, ``nox -s bench``."""

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
