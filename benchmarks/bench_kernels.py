"""Each fused Numba kernel against the NumPy reference operations it replaces (float32, one
thread, the shapes of the pytorch-vanilla step at batch 100). Run::

    PYTHONPATH=. python -m pytest benchmarks/bench_kernels.py --benchmark-group-by=group

pytest-benchmark groups the two backends of each kernel side by side. The in-place backward
kernels run on their own output again and again, so their inputs keep the derivative at 1
(positive LeakyReLU outputs, tanh outputs near 0): the gradients never drift into denormals.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

import fastgan
from fastgan.backends.base import LEAKY_RELU, TANH
from fastgan.threads import set_num_threads

F32 = np.float32


def _arrays(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)

    def normal(*shape: int) -> np.ndarray:
        return rng.standard_normal(shape, dtype=F32)

    return {"h": normal(200, 1024), "h_out": np.abs(normal(200, 1024)), "dh": normal(200, 1024),
            "b": normal(1024), "db": np.empty(1024, F32), "img": normal(100, 784),
            "img_out": np.tanh(normal(100, 784)) * F32(1e-3), "dimg": normal(100, 784),
            "b_img": normal(784), "db_img": np.empty(784, F32), "logits": normal(200, 1),
            "grad": np.empty((200, 1), F32), "stats": np.empty(2, F32),
            "mask": np.empty((200, 1024), F32), "dy1": normal(200, 1), "w1": normal(256, 1),
            "dx1": np.empty((200, 256), F32),
            "p": normal(1_460_000), "g": normal(1_460_000) * F32(1e-3),
            "m": np.zeros(1_460_000, F32), "v": np.zeros(1_460_000, F32)}


# name -> function(backend, arrays) running the kernel once
KERNELS: dict[str, Callable] = {
    "bias+leaky_relu 200x1024": lambda be, a: be.bias_act(a["h"], a["b"], LEAKY_RELU, 0.2),
    "bias+tanh 100x784": lambda be, a: be.bias_act(a["img"], a["b_img"], TANH, 0.0),
    "leaky' dy + colsum 200x1024": lambda be, a: be.act_backward(a["dh"], a["h_out"],
                                                                 LEAKY_RELU, 1.0, a["db"]),
    "tanh' dy + colsum 100x784": lambda be, a: be.act_backward(a["dimg"], a["img_out"], TANH,
                                                               0.0, a["db_img"]),
    "bce loss+grad+stats 200": lambda be, a: be.bce_with_logits(a["logits"], 1.0, 0.01,
                                                                a["grad"], a["stats"]),
    "dropout mask 200x1024": lambda be, a: a["rng"].dropout_mask(a["mask"], 0.3),
    "dx = dy W^T, k=1, 200x256": lambda be, a: be.gemm(a["dy1"], a["w1"], a["dx1"],
                                                       trans_b=True),
    "adam 1.46M": lambda be, a: be.adam_update(a["p"], a["g"], a["m"], a["v"], 2e-4, 0.9,
                                               0.999, 1e-8, 3),
}


@pytest.mark.parametrize("backend_name", ["numpy", "numba"])
@pytest.mark.parametrize("kernel", list(KERNELS))
def test_kernel(benchmark, kernel, backend_name):
    set_num_threads(1)
    backend = fastgan.get_backend(backend_name)
    arrays = _arrays()
    arrays["rng"] = backend.rng(0)
    run = KERNELS[kernel]
    benchmark.group = kernel
    benchmark(run, backend, arrays)
