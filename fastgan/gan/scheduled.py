"""A GAN training step whose independent GEMMs run side by side on T threads (CPU backends).

    stepper = ScheduledStep(gan, threads=2)
    fastgan.training.loop.fit(gan, data, steps=1000, stepper=stepper)   # or by hand:
    for batch in batches:
        stepper.step(batch)                      # same effect as gan.step(batch)

Each step is the GAN's own (:meth:`GAN.step`), with its backend's :meth:`Backend.gemms` run
by a :class:`~fastgan.backends.scheduled.GemmSchedule` of ``threads`` threads: a dense
backward's weight and input gradients at the same time, each on one thread, and every large
single GEMM cut into blocks, one per thread. BLAS is held to one thread per call, set when
the stepper is made and checked with threadpoolctl, and set again before a step only if
fastgan set it since (:func:`fastgan.threads.set_num_threads`, say: a counter says so, for
nothing, where asking the libraries every step would cost); the elementwise
kernels run between the GEMMs on the calling thread, as in the serial step, but for the
numba backend's optimizer passes (Adam, SGD, the weight average), whose slices run side by
side (:meth:`~fastgan.backends.scheduled.GemmSchedule.run_flat`). A convolution shares its
batch among the threads (its lanes, :class:`~fastgan.nn.layers.PatchMatrixLayer`): each
runs whole slices, gather, GEMMs and scatter, with its own weight gradient.

Results: with ``split_min_flops=None`` every GEMM is one whole BLAS call on one thread, the
same calls as the serial step's, and convolutions run on one lane, so the step equals a
serial step with BLAS on one thread bit for bit; a cut GEMM, or a weight gradient summed
over lanes, may round differently (see :mod:`fastgan.backends.scheduled`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ..backends.scheduled import DEFAULT_SPLIT_MIN_ELEMENTS, DEFAULT_SPLIT_MIN_FLOPS, GemmSchedule
from ..errors import ConfigError
from ..threads import blas_settings, default_num_threads, get_num_threads, set_blas_threads
from ..training.loop import GradientHook, History, fit


def schedule_refusal(gan: Any) -> str | None:
    """Why ``gan``'s steps cannot be scheduled, or None where they can (host arrays)."""
    if gan.backend.xp is not np:
        return (f"a scheduled step runs host GEMMs (numpy or numba backend); this GAN runs on "
                f"{gan.backend.name}")
    return None


class ScheduledStep:
    """Steps ``gan`` (numpy or numba backend) with its independent GEMMs side by side on
    ``threads`` threads (None: :func:`fastgan.threads.default_num_threads`); products of at
    least ``split_min_flops`` are cut among the threads a set leaves them (None: never cut;
    see the module), optimizer passes of at least ``split_min_elements`` elements too."""

    def __init__(self, gan: Any, threads: int | None = None, *,
                 split_min_flops: int | None = DEFAULT_SPLIT_MIN_FLOPS,
                 split_min_elements: int = DEFAULT_SPLIT_MIN_ELEMENTS) -> None:
        refusal = schedule_refusal(gan)
        if refusal is not None:
            raise ConfigError(refusal)
        self.gan = gan
        self.schedule = GemmSchedule(default_num_threads() if threads is None else threads,
                                     split_min_flops, split_min_elements)
        set_blas_threads(1, rescan=True)
        in_force = get_num_threads()["blas"]
        if in_force > 1:
            raise ConfigError(f"BLAS still runs {in_force} threads after being set to one; a "
                              "scheduled step would oversubscribe the cores")
        self._blas_set_at = blas_settings()

    @property
    def threads(self) -> int:
        """The threads each step runs its GEMMs on."""
        return self.schedule.threads

    def step(self, real_batch: Any, *, gradient_hook: GradientHook | None = None) -> None:
        """One training step, as ``gan.step(real_batch, gradient_hook=...)``."""
        if blas_settings() != self._blas_set_at:
            set_blas_threads(1)
            self._blas_set_at = blas_settings()
        with self.gan.backend.gemms_on(self.schedule):
            self.gan.step(real_batch, gradient_hook=gradient_hook)

    def fit(self, dataset: Any, **options: Any) -> History:
        """Train ``gan`` on ``dataset`` with these steps: :func:`fastgan.training.loop.fit`
        with this stepper and ``options``."""
        return fit(self.gan, dataset, stepper=self, **options)

    def last_stats(self) -> dict[str, float]:
        """The last step's losses and mean D outputs (see :meth:`GAN.last_stats`)."""
        return self.gan.last_stats()

    def save(self, path: str | os.PathLike[str], *,
             extra: dict[str, Any] | None = None) -> Path:
        """Write a checkpoint of the GAN (see :meth:`GAN.save`)."""
        return self.gan.save(path, extra=extra)
