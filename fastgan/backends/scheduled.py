"""GEMMs run side by side on T threads, each BLAS call on one thread (CPU backends).

A training step's GEMMs come one at a time (a forward product) or in sets that do not depend
on each other (a dense backward's weight gradient ``dW = x^T dy`` and input gradient
``dx = dy W^T``). :class:`GemmSchedule` runs such a set on a :class:`SideBySide` pool of T
threads, with BLAS held to one thread per call, so the threads never split one small
product among themselves, as BLAS's own pool does:

* the T threads are shared out among the set's products (T // n each, at least one);
* a product with more than one thread and at least ``split_min_flops`` of work is cut into
  as many blocks along the longer side of its output, each block one BLAS call into its own
  slice of the output (views: nothing is allocated);
* everything else runs whole, as the backend's own ``gemm``.

The same pool runs the numba backend's optimizer passes (Adam, SGD and the generator's weight
average, each one elementwise pass over a network's flat buffers, bound by memory): a pass
over at least ``split_min_elements`` elements is cut into one contiguous slice per thread
(:meth:`GemmSchedule.run_flat`), each slice one call of the ``nogil`` kernel. Every element
is computed as in the whole pass, so the cut changes no result. And it runs a convolution's
lanes (:attr:`GemmSchedule.lanes`): each thread takes whole slices of the batch (gather,
GEMMs, scatter) with its own weight gradient, and these are summed at the end.

Results: a product run whole on one thread is the same BLAS call as the serial step's, so
with ``split_min_flops=None`` (never cut) the step equals the serial step bit for bit when
BLAS runs one thread in both. A cut product sums each output element over the same inner
dimension but through BLAS's kernels for the block's shape, which may order the sum
differently: equal to the whole product within float rounding (see ``tests/test_scheduled.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import ConfigError
from .side_by_side import Job, SideBySide

Product = tuple[Any, Any, Any, bool, bool]
"""``(a, b, out, trans_a, trans_b)``: ``out = op(a) @ op(b)``, as :meth:`Backend.gemm` takes it."""

DEFAULT_SPLIT_MIN_FLOPS = 4_000_000
"""Work below which a product is not cut: handing a block to a worker costs a wake-up (tens of
microseconds on a busy machine), about what 4 MFLOP take on one core. A first guess from noisy
measurements on a shared 2-core VM; ``benchmarks/bench_split.py`` measures it per shape."""


DEFAULT_SPLIT_MIN_ELEMENTS = 1 << 16
"""Elements below which an elementwise pass is not cut: Adam over 65,536 float32 values moves
1.8 MB, about 0.1 ms at the memory speed of one core, a few wake-ups' worth."""


def product_flops(product: Product) -> int:
    """Floating-point operations of ``op(a) @ op(b)``: 2 m n k."""
    a, _, out, trans_a, _ = product
    return 2 * out.shape[0] * out.shape[1] * a.shape[0 if trans_a else 1]


def blocks(product: Product, parts: int) -> list[Job]:
    """``op(a) @ op(b)`` as ``parts`` BLAS calls (``np.matmul`` into slices of ``out``), cut
    along the output's longer side; fewer parts when that side is shorter than ``parts``."""
    a, b, out, trans_a, trans_b = product
    a, b = (a.T if trans_a else a), (b.T if trans_b else b)
    rows = out.shape[0] >= out.shape[1]
    side = out.shape[0 if rows else 1]
    parts = min(parts, side)
    jobs: list[Job] = []
    for i in range(parts):
        cut = slice(i * side // parts, (i + 1) * side // parts)
        if rows:
            jobs.append((np.matmul, (a[cut], b, out[cut])))
        else:
            jobs.append((np.matmul, (a, b[:, cut], out[:, cut])))
    return jobs


class GemmSchedule:
    """Independent GEMMs side by side on ``threads`` threads (see the module);
    ``split_min_flops``: the least work a product needs to be cut among threads (None: never
    cut, which keeps every result bit-identical to a one-thread serial step);
    ``split_min_elements``: the least size of an elementwise pass cut among them."""

    def __init__(self, threads: int, split_min_flops: int | None = DEFAULT_SPLIT_MIN_FLOPS,
                 split_min_elements: int = DEFAULT_SPLIT_MIN_ELEMENTS) -> None:
        if split_min_flops is not None and split_min_flops < 0:
            raise ConfigError(f"split_min_flops must be None or at least 0, "
                              f"got {split_min_flops!r}")
        if not (isinstance(split_min_elements, int) and split_min_elements >= 1):
            raise ConfigError(f"split_min_elements must be a positive integer, "
                              f"got {split_min_elements!r}")
        self.pool = SideBySide(threads)
        self.threads = threads
        self.split_min_flops = split_min_flops
        self.split_min_elements = split_min_elements

    def run(self, backend: Any, products: Sequence[Product]) -> None:
        """``out = op(a) @ op(b)`` for every product (no product may read another's ``out``),
        through ``backend.gemm`` or, for a cut product, NumPy's BLAS directly."""
        if not products:
            return
        share = max(1, self.threads // len(products))
        jobs: list[Job] = []
        for product in products:
            if share > 1 and self._cut(product):
                jobs += blocks(product, share)
            else:
                jobs.append((backend.gemm, product))
        for first in range(0, len(jobs), self.threads):
            self.pool.run(jobs[first:first + self.threads])

    @property
    def lanes(self) -> int:
        """The threads a convolution shares its batch among: all of them, or one where
        products are never cut (``split_min_flops`` None), as the lanes' weight gradients are
        summed in another order than one lane's."""
        return 1 if self.split_min_flops is None else self.threads

    def run_flat(self, kernel: Any, buffers: Sequence[Any], scalars: Sequence[Any]) -> None:
        """``kernel(*buffers, *scalars)`` for an elementwise ``kernel`` over flat ``buffers``
        of one size, as one call per contiguous slice, side by side (one slice per
        ``split_min_elements`` elements, at most one per thread)."""
        size = buffers[0].size
        parts = min(self.threads, max(1, size // self.split_min_elements))
        self.pool.run([(kernel, (*(buffer[i * size // parts:(i + 1) * size // parts]
                                   for buffer in buffers), *scalars))
                       for i in range(parts)])

    def _cut(self, product: Product) -> bool:
        """Whether to cut ``product``: worth it, and a plain BLAS call (an inner dimension of
        one is an outer product, which a backend may compute with its own kernel)."""
        a, _, _, trans_a, _ = product
        inner = a.shape[0 if trans_a else 1]
        return (self.split_min_flops is not None and inner > 1
                and product_flops(product) >= self.split_min_flops)
