"""Sweeps: many ordinary training runs over a hyper-parameter space, seeds included, trained
under a time or step budget, scored with fastgan evaluate's metrics, optionally by successive
halving; run one at a time in-process or as tasks on Dask (a local cluster or any scheduler).

May import runs, evaluation, gan, training, nn, backends, environment and the leaves; only the
CLI and the package root import it. Dask is imported only when a sweep runs on it.

    >>> import fastgan.sweep
    >>> results = fastgan.sweep.run({"lr": [1e-4, 2e-4]}, "sweeps/lr", budget="60s",
    ...                             seeds=3)                           # doctest: +SKIP
"""

from .budget import Amount
from .engine import run
from .results import Results
from .space import Range, Space, hyper_parameters

__all__ = ["Amount", "Range", "Results", "Space", "hyper_parameters", "run"]
