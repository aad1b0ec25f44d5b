"""Optimizers over a network's flat parameter buffer, and learning-rate schedules.

``SGD`` and ``Adam`` are frozen hyper-parameter records; ``bind`` attaches one to a
network's :class:`~fastgan.nn.params.FlatParams` and returns the stateful optimizer whose
``step`` is a single fused backend update over the whole buffer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError


# ---------------------------------------------------------------- learning-rate schedules
@dataclass(frozen=True)
class Constant:
    """The learning rate never changes."""

    def factor(self, epoch: int) -> float:
        """Multiplier of the base learning rate at ``epoch`` (0-based)."""
        return 1.0


@dataclass(frozen=True)
class InverseTimeDecay:
    """``lr(epoch) = lr0 / (1 + rate * epoch)``: seed 000's decay, without its compounding."""

    rate: float

    def __post_init__(self) -> None:
        if self.rate < 0:
            raise ConfigError(f"decay rate must be >= 0, got {self.rate}")

    def factor(self, epoch: int) -> float:
        """Multiplier of the base learning rate at ``epoch`` (0-based)."""
        return 1.0 / (1.0 + self.rate * epoch)


@dataclass(frozen=True)
class StepDecay:
    """``lr(epoch) = lr0 * factor ** (number of milestones <= epoch)``.

    Seed 002's "x0.01 after the first epoch" is ``StepDecay(0.01, milestones=(1,))``.
    """

    factor_per_drop: float
    milestones: tuple[int, ...] = (1,)

    def __post_init__(self) -> None:
        if not self.factor_per_drop > 0:
            raise ConfigError(f"step-decay factor must be > 0, got {self.factor_per_drop}")
        if list(self.milestones) != sorted(self.milestones) or any(m < 1 for m in self.milestones):
            raise ConfigError(f"milestones must be increasing epochs >= 1, got {self.milestones}")

    def factor(self, epoch: int) -> float:
        """Multiplier of the base learning rate at ``epoch`` (0-based)."""
        drops = sum(1 for m in self.milestones if epoch >= m)
        return self.factor_per_drop**drops


Schedule = Constant | InverseTimeDecay | StepDecay


# ---------------------------------------------------------------- optimizer configurations
@dataclass(frozen=True)
class SGD:
    """Stochastic gradient descent with (PyTorch-style) momentum.

    ``v <- momentum * v + g;  p <- p - lr * v`` (with momentum 0: ``p <- p - lr * g``).
    """

    lr: float = 1e-3
    momentum: float = 0.0
    schedule: Schedule = field(default_factory=Constant)

    def __post_init__(self) -> None:
        _check_lr(self.lr)
        if not 0.0 <= self.momentum < 1.0:
            raise ConfigError(f"SGD momentum must be in [0, 1), got {self.momentum}")

    def bind(self, params: Any) -> BoundSGD:
        """Attach to a network's FlatParams; returns the stateful optimizer."""
        return BoundSGD(self, params)


@dataclass(frozen=True)
class Adam:
    """Adam with bias correction (Kingma & Ba), PyTorch's placement of ``eps``.

    ``m <- b1 m + (1-b1) g;  v <- b2 v + (1-b2) g^2;
    p <- p - lr * (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps)``.
    """

    lr: float = 2e-4
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    schedule: Schedule = field(default_factory=Constant)

    def __post_init__(self) -> None:
        _check_lr(self.lr)
        for name in ("beta1", "beta2"):
            beta = getattr(self, name)
            if not 0.0 <= beta < 1.0:
                raise ConfigError(f"Adam {name} must be in [0, 1), got {beta}")
        if self.eps <= 0:
            raise ConfigError(f"Adam eps must be > 0, got {self.eps}")

    def bind(self, params: Any) -> BoundAdam:
        """Attach to a network's FlatParams; returns the stateful optimizer."""
        return BoundAdam(self, params)


OptimizerConfig = SGD | Adam


def _check_lr(lr: float) -> None:
    if not (lr > 0 and math.isfinite(lr)):
        raise ConfigError(f"learning rate must be a positive finite number, got {lr}")


# ---------------------------------------------------------------- stateful optimizers
class BoundOptimizer:
    """An optimizer attached to one network's flat buffers; holds its state arrays."""

    config: OptimizerConfig
    state_names: tuple[str, ...] = ()

    def __init__(self, config: OptimizerConfig, params: Any) -> None:
        self.config = config
        self.params = params
        self.steps = 0
        backend = params.backend
        self.state = {name: backend.zeros(params.data.shape, params.dtype)
                      for name in self.state_names}

    def lr(self, epoch: int) -> float:
        """The learning rate in force at ``epoch``."""
        return self.config.lr * self.config.schedule.factor(epoch)

    def step(self, epoch: int = 0) -> None:
        """Apply one update from ``params.grad`` to ``params.data``."""
        raise NotImplementedError

    def step_scheduled(self, schedule: Any) -> None:
        """The same update with its step count and learning rate read from device memory
        (``schedule``, from ``backend.new_schedule``), as a replayed CUDA graph needs it."""
        raise NotImplementedError

    def schedule_betas(self) -> tuple[float, float]:
        """The (beta1, beta2) a device schedule needs for bias corrections; (0, 0): none."""
        return (0.0, 0.0)


class BoundSGD(BoundOptimizer):
    """SGD state: the velocity buffer."""

    config: SGD
    state_names = ("velocity",)

    def step(self, epoch: int = 0) -> None:
        """Apply one SGD update from ``params.grad`` to ``params.data``."""
        self.steps += 1
        self.params.backend.sgd_update(
            self.params.data, self.params.grad, self.state["velocity"],
            lr=self.lr(epoch), momentum=self.config.momentum,
        )

    def step_scheduled(self, schedule: Any) -> None:
        """One SGD update, step count and learning rate from ``schedule`` (device memory)."""
        self.params.backend.sgd_update_scheduled(
            self.params.data, self.params.grad, self.state["velocity"], self.config.momentum,
            schedule)


class BoundAdam(BoundOptimizer):
    """Adam state: first and second moment buffers and the step count."""

    config: Adam
    state_names = ("m", "v")

    def step(self, epoch: int = 0) -> None:
        """Apply one Adam update from ``params.grad`` to ``params.data``."""
        self.steps += 1
        c = self.config
        self.params.backend.adam_update(
            self.params.data, self.params.grad, self.state["m"], self.state["v"],
            lr=self.lr(epoch), beta1=c.beta1, beta2=c.beta2, eps=c.eps, step=self.steps,
        )

    def step_scheduled(self, schedule: Any) -> None:
        """One Adam update, step count and learning rate from ``schedule`` (device memory)."""
        c = self.config
        self.params.backend.adam_update_scheduled(
            self.params.data, self.params.grad, self.state["m"], self.state["v"], c.beta1,
            c.beta2, c.eps, schedule)

    def schedule_betas(self) -> tuple[float, float]:
        """Adam's (beta1, beta2), for the schedule's bias corrections."""
        return (self.config.beta1, self.config.beta2)
