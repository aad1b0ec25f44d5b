"""Optimizers and schedules against the textbook formulas on hand-computable values."""

from __future__ import annotations

import math

import numpy as np
import pytest
from support import tolerances

from fastgan import SGD, Adam, ConfigError, Constant, InverseTimeDecay, StepDecay
from fastgan.nn.params import FlatParams


def _params(backend, dtype, values, grads):
    params = FlatParams(backend, dtype)
    params.reserve("p", np.asarray(values, dtype=float))
    params.allocate()
    backend.copy(np.asarray(grads, dtype=float), params.grad)
    return params


def test_adam_bias_correction_steps_one_and_two(backend, dtype):
    params = _params(backend, dtype, [1.0, -2.0], [0.5, -1.0])
    opt = Adam(lr=0.1, beta1=0.9, beta2=0.999, eps=1e-8).bind(params)
    opt.step()
    # step 1: m = 0.1 g, v = 0.001 g^2, mhat = g, vhat = g^2 -> p -= lr * g/(|g| + eps)
    g = np.array([0.5, -1.0])
    expected = np.array([1.0, -2.0]) - 0.1 * g / (np.abs(g) + 1e-8)
    np.testing.assert_allclose(backend.to_numpy(params.data), expected, **tolerances.kernel(dtype))
    backend.copy(np.array([1.0, 1.0]), params.grad)
    opt.step()
    g2 = np.array([1.0, 1.0])
    m = 0.9 * 0.1 * g + 0.1 * g2
    v = 0.999 * 0.001 * g**2 + 0.001 * g2**2
    mhat, vhat = m / (1 - 0.9**2), v / (1 - 0.999**2)
    expected = expected - 0.1 * mhat / (np.sqrt(vhat) + 1e-8)
    np.testing.assert_allclose(backend.to_numpy(params.data), expected, **tolerances.kernel(dtype))
    np.testing.assert_allclose(backend.to_numpy(opt.state["m"]), m, **tolerances.kernel(dtype))
    np.testing.assert_allclose(backend.to_numpy(opt.state["v"]), v, **tolerances.kernel(dtype))


def test_sgd_plain_and_with_momentum(backend, dtype):
    params = _params(backend, dtype, [1.0, 2.0], [0.5, -1.0])
    SGD(lr=0.1).bind(params).step()
    np.testing.assert_allclose(backend.to_numpy(params.data), [0.95, 2.1],
                               **tolerances.kernel(dtype))

    params = _params(backend, dtype, [1.0, 2.0], [0.5, -1.0])
    opt = SGD(lr=0.1, momentum=0.9).bind(params)
    opt.step()                       # v = g                 -> p = p - 0.1 g
    opt.step()                       # v = 0.9 g + g = 1.9 g  -> p -= 0.19 g
    np.testing.assert_allclose(backend.to_numpy(params.data),
                               np.array([1.0, 2.0]) - 0.29 * np.array([0.5, -1.0]),
                               **tolerances.kernel(dtype))


def test_schedules():
    assert Constant().factor(7) == 1.0
    decay = InverseTimeDecay(1e-4)
    assert [decay.factor(e) for e in (0, 1, 10)] == [1.0, 1 / 1.0001, 1 / 1.001]
    # not compounded: seed 000's lr *= 1/(1+d*e) each epoch would give 1/(1.0001*1.0002) at 2
    assert math.isclose(decay.factor(2), 1 / 1.0002)
    step = StepDecay(0.01, milestones=(1,))
    assert [step.factor(e) for e in (0, 1, 5)] == [1.0, 0.01, 0.01]
    two = StepDecay(0.5, milestones=(2, 4))
    assert [two.factor(e) for e in range(6)] == [1, 1, 0.5, 0.5, 0.25, 0.25]


def test_scheduled_lr_reaches_the_update(backend):
    params = _params(backend, "float64", [0.0], [1.0])
    opt = SGD(lr=1.0, schedule=StepDecay(0.1, milestones=(1,))).bind(params)
    opt.step(epoch=0)
    opt.step(epoch=1)
    np.testing.assert_allclose(backend.to_numpy(params.data), [-1.1])


@pytest.mark.parametrize("make", [lambda: Adam(lr=0), lambda: Adam(beta1=1.0),
                                  lambda: SGD(lr=-1), lambda: SGD(momentum=1.5),
                                  lambda: StepDecay(0.1, milestones=(3, 2)),
                                  lambda: InverseTimeDecay(-1)])
def test_bad_hyper_parameters_are_clear_errors(make):
    with pytest.raises(ConfigError):
        make()
