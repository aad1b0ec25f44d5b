"""The CUDA kernels of the CuPy backend: one C++ source and the signature of each kernel.

The source is the ``cuda/*.cu`` files of this package joined in a fixed order; constants.cu
takes its ``$NAME`` values from the Python constants here, so both sides share one definition.
It is plain CUDA C++ without headers, so NVRTC compiles it as it is (through
``cupy.RawModule``); the tests also compile it with nvcc, and with g++ to run it on the CPU
under a small emulation of the CUDA thread model. Every ``KERNELS`` entry states its
parameters' C types once; launches convert and check their arguments against it.

Launch conventions (the backend follows them):

* elementwise kernels loop grid-stride over ``n`` elements: any 1-D grid works;
* column kernels use blocks of ``TILE_COLS x ROW_LANES`` threads, one block column per
  32 feature columns, so a warp reads 32 consecutive floats of one row;
* ``bce_logits``, ``score_logits`` and the spectral-norm kernels run as one block of
  ``REDUCE_THREADS`` threads;
* ``schedule_*`` and ``philox_advance`` run as one thread.

No kernel uses atomics: every reduction adds in a fixed order, so results are bit-for-bit
repeatable (and a replayed CUDA graph equals the eager step).
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.resources import files
from string import Template
from typing import Any

import numpy as np

from ..errors import ConfigError
from .base import (
    HINGE,
    IDENTITY,
    LEAKY_RELU,
    LINEAR,
    NORM_EPS,
    RELU,
    SIGMOID,
    SQUARED,
    TANH,
)
from .philox import RNG_DROPOUT, RNG_NORMAL, RNG_UNIFORM

TILE_COLS = 32          # columns per block in the column kernels (one warp wide)
ROW_LANES = 8           # rows read in parallel per column in the column kernels
REDUCE_THREADS = 256    # threads of the single-block reductions
COLSUM_ONLY = -1        # act code of act_grad_colsum: add the columns up, change nothing
CONV_GEOMETRY = ("int",) * 9
"""The geometry parameters of the convolution kernels: ``ConvGeometry.kernel_args``."""

SOURCE_FILES = (
    "constants.cu",     # the #defines shared with Python, filled in from _CONSTANTS
    "grid.cu",          # grid-stride indexing
    "activations.cu",   # act(z) and act'(z)
    "dense.cu",         # bias + activation, its gradient and column sums, the losses
    "batch_norm.cu",
    "spectral.cu",      # power iteration, W / sigma(W) and its backward
    "optimizers.cu",    # the step-size schedule, SGD, EMA, Adam
    "philox.cu",        # Philox4x32-10 random fills
    "conv.cu",          # im2col, col2im, 2x upsampling
    "labels.cu",        # one-hot labels and column blocks (conditional GANs)
)
"""The kernel source files in ``fastgan/backends/cuda``, in the order :data:`SOURCE` joins
them (each file uses what the files before it define)."""

_CONSTANTS = {
    "ACT_IDENTITY": IDENTITY,
    "ACT_RELU": RELU,
    "ACT_LEAKY_RELU": LEAKY_RELU,
    "ACT_TANH": TANH,
    "ACT_SIGMOID": SIGMOID,
    "LOSS_HINGE": HINGE,
    "LOSS_SQUARED": SQUARED,
    "LOSS_LINEAR": LINEAR,
    "NORM_EPS": NORM_EPS,
    "COLSUM_ONLY": COLSUM_ONLY,
    "TILE_COLS": TILE_COLS,
    "ROW_LANES": ROW_LANES,
    "REDUCE_THREADS": REDUCE_THREADS,
    "RNG_NORMAL": RNG_NORMAL,
    "RNG_UNIFORM": RNG_UNIFORM,
    "RNG_DROPOUT": RNG_DROPOUT,
}


def _read_source() -> str:
    """The files of :data:`SOURCE_FILES`, each after an empty line, with each ``$NAME`` of
    constants.cu replaced by the value of the Python constant it mirrors."""
    folder = files(__package__).joinpath("cuda")
    text = "".join("\n" + folder.joinpath(name).read_text(encoding="utf-8")
                   for name in SOURCE_FILES)
    return Template(text).substitute(_CONSTANTS)


SOURCE = _read_source()
"""The whole kernel source, one translation unit."""

_C_TYPES = {np.dtype(np.float32): "float", np.dtype(np.float64): "double"}
_POINTER_DTYPES = {"double": np.dtype(np.float64), "unsigned long long": np.dtype(np.uint64)}
_SCALAR_TYPES = {"int": np.int32, "long long": np.int64, "unsigned long long": np.uint64,
                 "double": np.float64}


@dataclass(frozen=True)
class Kernel:
    """A kernel of :data:`SOURCE`: its name and its parameters' C types (``T`` = the dtype's
    C type in templated kernels)."""

    name: str
    params: tuple[str, ...]
    templated: bool = True

    def instance(self, dtype: Any) -> str:
        """The name expression NVRTC compiles, e.g. ``bias_act<float>``."""
        return f"{self.name}<{c_type(dtype)}>" if self.templated else self.name

    def c_params(self, dtype: Any) -> list[str]:
        """Parameter types with ``T`` replaced by the dtype's C type."""
        if not self.templated:
            return list(self.params)
        ctype = c_type(dtype)
        return [p.replace("T", ctype) if _is_template(p) else p for p in self.params]

    def arguments(self, dtype: Any, args: tuple) -> tuple:
        """Check ``args`` against the parameters and give scalars their exact C types.

        Pointers must be C-contiguous arrays of the right dtype (or None for a null pointer);
        a wrong one would be read as garbage by the kernel, so it is an error here.
        """
        if len(args) != len(self.params):
            raise ConfigError(f"kernel {self.name} takes {len(self.params)} arguments, "
                              f"got {len(args)}")
        return tuple(self._argument(param, dtype, arg, i)
                     for i, (param, arg) in enumerate(zip(self.params, args, strict=True)))

    def _argument(self, param: str, dtype: Any, arg: Any, position: int) -> Any:
        base = param.removeprefix("const ").rstrip("*").strip()
        if param.endswith("*"):
            if arg is None:
                return None
            expected = np.dtype(dtype) if base == "T" else _POINTER_DTYPES[base]
            if arg.dtype != expected or not arg.flags.c_contiguous:
                layout = "C-contiguous" if arg.flags.c_contiguous else "non-contiguous"
                raise ConfigError(
                    f"kernel {self.name}, argument {position}: needs a C-contiguous {expected} "
                    f"array, got a {layout} {arg.dtype} array of shape {arg.shape}")
            return arg
        return np.dtype(dtype).type(arg) if base == "T" else _SCALAR_TYPES[base](arg)


def _is_template(param: str) -> bool:
    return param.removeprefix("const ").rstrip("*").strip() == "T"


def c_type(dtype: Any) -> str:
    """``float`` or ``double`` for a supported dtype."""
    try:
        return _C_TYPES[np.dtype(dtype)]
    except KeyError:
        raise ConfigError(f"CUDA kernels take float32 or float64 arrays, not {dtype}") from None


def _kernels(*kernels: Kernel) -> dict[str, Kernel]:
    return {k.name: k for k in kernels}


KERNELS = _kernels(
    Kernel("bias_act", ("T*", "const T*", "long long", "int", "int", "T")),
    Kernel("act_grad", ("T*", "const T*", "long long", "int", "T")),
    Kernel("act_grad_colsum", ("T*", "const T*", "T*", "int", "int", "int", "T", "int")),
    Kernel("bce_logits", ("const T*", "T*", "T*", "int", "T", "T")),
    Kernel("score_logits", ("const T*", "T*", "T*", "int", "int", "T", "T")),
    Kernel("power_iteration", ("const T*", "T*", "T*", "int", "int")),
    Kernel("spectral_weight", ("const T*", "const T*", "const T*", "T*", "T*", "int", "int")),
    Kernel("spectral_backward", ("T*", "const T*", "const T*", "const T*", "const T*", "int",
                                 "int")),
    Kernel("multiply", ("const T*", "const T*", "T*", "long long")),
    Kernel("bn_train", ("const T*", "const T*", "const T*", "T*", "T*", "T*", "T*", "T*",
                        "int", "int", "T", "T")),
    Kernel("bn_eval", ("const T*", "const T*", "const T*", "T*", "const T*", "const T*",
                       "long long", "int", "T")),
    Kernel("bn_backward", ("const T*", "const T*", "const T*", "const T*", "T*", "T*", "T*",
                           "int", "int")),
    Kernel("schedule_set", ("double*", "double", "double", "double", "double"), templated=False),
    Kernel("schedule_next", ("double*", "double", "double"), templated=False),
    Kernel("sgd", ("T*", "const T*", "T*", "long long", "const double*", "T")),
    Kernel("ema", ("T*", "const T*", "long long", "T", "T")),
    Kernel("adam", ("T*", "const T*", "T*", "T*", "long long", "const double*", "T", "T", "T",
                    "T", "T")),
    Kernel("philox_fill", ("T*", "long long", "unsigned long long", "const unsigned long long*",
                           "int", "T", "T")),
    Kernel("philox_advance", ("unsigned long long*",), templated=False),
    Kernel("im2col", ("const T*", "T*", "long long", *CONV_GEOMETRY)),
    Kernel("col2im", ("const T*", "T*", "long long", *CONV_GEOMETRY)),
    Kernel("upsample2x", ("const T*", "T*", "long long", "int", "int", "int")),
    Kernel("upsample2x_backward", ("const T*", "T*", "long long", "int", "int", "int")),
    Kernel("copy_columns", ("const T*", "int", "int", "T*", "int", "int", "int", "long long")),
    Kernel("one_hot", ("const T*", "T*", "int", "int", "int", "long long")),
    Kernel("label_maps", ("const T*", "int", "const T*", "int", "int", "T*", "int", "int", "int",
                          "long long")),
    Kernel("image_channels", ("const T*", "T*", "int", "int", "int", "long long")),
)


def name_expressions() -> list[str]:
    """Every kernel instance the backend launches (float and double for templates)."""
    names: list[str] = []
    for kernel in KERNELS.values():
        dtypes = _C_TYPES if kernel.templated else [np.dtype(np.float64)]
        names.extend(dict.fromkeys(kernel.instance(dt) for dt in dtypes))
    return names
