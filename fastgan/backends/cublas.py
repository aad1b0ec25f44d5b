"""Row-major GEMM through cuBLAS, called directly (ctypes) so that CUDA graphs can capture it.

CuPy refuses every cuBLAS call while a stream is capturing (cupy issue #6290: its wrapper
``cupy_backends.cuda.libs.cublas.setStream`` raises ``NotImplementedError``), although cuBLAS
itself supports stream capture. This module owns its own cuBLAS handle in the very library
CuPy loaded, binds it to a stream and a preallocated workspace *before* any capture (cuBLAS
must not allocate its workspace inside a capture, and ``cublasSetStream`` resets the
workspace, so the two are always set together), and calls ``cublas{S,D}gemm_v2``.

NumPy arrays are row-major, cuBLAS is column-major: ``out = op(a) @ op(b)`` is computed as
``out^T = op(b)^T @ op(a)^T``, which is the same memory read column-major. See
:func:`gemm_arguments` (pure, tested on the CPU).
"""

from __future__ import annotations

import ctypes
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, FastganError

OP_N, OP_T = 0, 1                    # cublasOperation_t
DEFAULT_MATH, TF32_TENSOR_OP_MATH = 0, 3   # cublasMath_t
WORKSPACE_BYTES = 32 << 20           # cuBLAS's recommendation for Hopper; ample elsewhere
_STATUS = {1: "NOT_INITIALIZED", 3: "ALLOC_FAILED", 7: "INVALID_VALUE", 8: "ARCH_MISMATCH",
           11: "MAPPING_ERROR", 13: "EXECUTION_FAILED", 14: "INTERNAL_ERROR",
           15: "NOT_SUPPORTED", 16: "LICENSE_ERROR"}


@dataclass(frozen=True)
class GemmArguments:
    """The column-major cuBLAS call computing a row-major ``out = op(a) @ op(b)``: cuBLAS's
    first operand is ``b``, its second is ``a``; m, n, k and leading dimensions in elements."""

    trans_first: int
    trans_second: int
    m: int
    n: int
    k: int
    ld_first: int
    ld_second: int
    ld_out: int


def _row_stride(name: str, shape: tuple[int, ...], strides: tuple[int, ...], itemsize: int) -> int:
    """Elements between rows of a 2-D array whose rows are contiguous; else an error."""
    if len(shape) != 2:
        raise ConfigError(f"gemm needs 2-D arrays, {name} has shape {shape}")
    rows, cols = shape
    if cols > 1 and strides[1] != itemsize:
        raise ConfigError(f"gemm needs {name} with contiguous rows, got strides {strides}")
    stride = strides[0] // itemsize if rows > 1 else cols
    if stride < cols or strides[0] % itemsize:
        raise ConfigError(f"gemm cannot read {name} with strides {strides} as row-major")
    return max(1, stride)


def gemm_arguments(a: Any, b: Any, out: Any, trans_a: bool, trans_b: bool) -> GemmArguments:
    """Shapes, transposes and leading dimensions for ``out = op(a) @ op(b)`` (row-major)."""
    a_rows, a_cols = a.shape if not trans_a else a.shape[::-1]
    b_rows, b_cols = b.shape if not trans_b else b.shape[::-1]
    if a_cols != b_rows or out.shape != (a_rows, b_cols):
        raise ConfigError(f"gemm shapes do not match: op(a) {a_rows}x{a_cols}, op(b) "
                          f"{b_rows}x{b_cols}, out {out.shape}")
    if not (a.dtype == b.dtype == out.dtype):
        raise ConfigError(f"gemm needs one dtype, got {a.dtype}, {b.dtype}, {out.dtype}")
    size = out.dtype.itemsize
    return GemmArguments(
        trans_first=OP_T if trans_b else OP_N, trans_second=OP_T if trans_a else OP_N,
        m=b_cols, n=a_rows, k=a_cols,
        ld_first=_row_stride("b", b.shape, b.strides, size),
        ld_second=_row_stride("a", a.shape, a.strides, size),
        ld_out=_row_stride("out", out.shape, out.strides, size),
    )


def _library_path(cuda_major: int) -> str:
    """The libcublas CuPy has loaded (from /proc/self/maps), else the versioned soname."""
    maps = Path("/proc/self/maps")
    if maps.exists():
        for line in maps.read_text().splitlines():
            path = line.split()[-1]
            if Path(path).name.startswith("libcublas.so"):
                return path
    return f"libcublas.so.{cuda_major}"


def _bind(lib: ctypes.CDLL) -> None:
    handle, stream, ptr, i = ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int
    signatures = {
        "cublasCreate_v2": [ctypes.POINTER(ctypes.c_void_p)],
        "cublasDestroy_v2": [handle],
        "cublasSetStream_v2": [handle, stream],
        "cublasSetWorkspace_v2": [handle, ptr, ctypes.c_size_t],
        "cublasSetMathMode": [handle, i],
        "cublasSgemm_v2": [handle, i, i, i, i, i, ctypes.POINTER(ctypes.c_float), ptr, i, ptr, i,
                           ctypes.POINTER(ctypes.c_float), ptr, i],
        "cublasDgemm_v2": [handle, i, i, i, i, i, ctypes.POINTER(ctypes.c_double), ptr, i, ptr,
                           i, ctypes.POINTER(ctypes.c_double), ptr, i],
    }
    for name, argtypes in signatures.items():
        function = getattr(lib, name)
        function.argtypes = argtypes
        function.restype = ctypes.c_int


def _check(status: int, call: str) -> None:
    if status != 0:
        raise FastganError(f"cuBLAS {call} failed with status {status} "
                           f"({_STATUS.get(status, 'unknown')})")


class Cublas:
    """A cuBLAS handle with its own workspace; row-major GEMMs on CuPy's current stream.

    ``tf32=True`` lets float32 GEMMs use TF32 tensor cores (inputs rounded to a 10-bit
    mantissa, unit roundoff 2^-11): elementwise ``|out - exact| <= 2^-9 (|a| @ |b|)`` in
    practice, against about ``k 2^-24 (|a| @ |b|)`` without. float64 is never affected.
    """

    def __init__(self, cupy: Any, tf32: bool = False) -> None:
        self._cupy = cupy
        # the workspace first: it also makes sure the CUDA context exists for cublasCreate
        self.workspace = cupy.empty(WORKSPACE_BYTES, dtype=np.uint8)
        cupy.cuda.device.get_cublas_handle()          # makes CuPy load its libcublas
        major = cupy.cuda.runtime.runtimeGetVersion() // 1000
        self.lib = ctypes.CDLL(_library_path(major))
        _bind(self.lib)
        handle = ctypes.c_void_p()
        _check(self.lib.cublasCreate_v2(ctypes.byref(handle)), "cublasCreate")
        self.handle = handle
        weakref.finalize(self, self.lib.cublasDestroy_v2, handle)
        _check(self.lib.cublasSetMathMode(handle, TF32_TENSOR_OP_MATH if tf32 else DEFAULT_MATH),
               "cublasSetMathMode")
        self._stream: int | None = None

    def bind(self, stream_ptr: int) -> None:
        """Make later GEMMs run on ``stream_ptr`` with this handle's workspace (call it before
        capturing on that stream: it talks to cuBLAS, and capture must not see that)."""
        if stream_ptr == self._stream:
            return
        _check(self.lib.cublasSetStream_v2(self.handle, ctypes.c_void_p(stream_ptr)),
               "cublasSetStream")
        _check(self.lib.cublasSetWorkspace_v2(self.handle, ctypes.c_void_p(self.workspace.data.ptr),
                                              WORKSPACE_BYTES), "cublasSetWorkspace")
        self._stream = stream_ptr

    def gemm(self, a: Any, b: Any, out: Any, trans_a: bool = False, trans_b: bool = False,
             accumulate: bool = False) -> None:
        """``out = op(a) @ op(b)`` (``out += ...`` when ``accumulate``: beta = 1) on CuPy's
        current stream."""
        g = gemm_arguments(a, b, out, trans_a, trans_b)
        if out.size == 0:
            return
        self.bind(self._cupy.cuda.get_current_stream().ptr)
        scalar = ctypes.c_float if out.dtype == np.float32 else ctypes.c_double
        function = self.lib.cublasSgemm_v2 if out.dtype == np.float32 else self.lib.cublasDgemm_v2
        alpha, beta = scalar(1.0), scalar(1.0 if accumulate else 0.0)
        _check(function(self.handle, g.trans_first, g.trans_second, g.m, g.n, g.k,
                        ctypes.byref(alpha), b.data.ptr, g.ld_first, a.data.ptr, g.ld_second,
                        ctypes.byref(beta), out.data.ptr, g.ld_out), "gemm")
