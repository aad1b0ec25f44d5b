"""Run the CuPy backend's CUDA kernels on the CPU, for tests on machines without a GPU.

The kernel source (``fastgan.backends.cuda_kernels.SOURCE``) is compiled by g++ with a small
shim that gives it the CUDA thread model: every thread of a block is a coroutine (ucontext)
on one host thread, ``__syncthreads()`` is a barrier between rounds of resumes, and
``__shared__`` arrays are static (blocks run one after another, so one copy per kernel is the
block's shared memory). :class:`EmulatedDevice` then
stands in for ``CupyDevice``: "device arrays" are NumPy arrays of a marker subclass, GEMMs are
NumPy matmuls, and ``capture()`` records launches and copies to replay them later, as a CUDA
graph does. What this proves is the kernels' arithmetic and indexing, the backend's launch
logic and the graph step's bookkeeping; what only a GPU proves (NVRTC, cuBLAS, cupy's
launch path, real graph capture, warp scheduling) it cannot.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from fastgan.backends.cuda_kernels import KERNELS, SOURCE, Kernel, c_type

SHIM = r"""
#include <math.h>
#include <ucontext.h>
#include <vector>

// CUDA threads as coroutines on one host thread: __syncthreads() switches back to the
// scheduler, which resumes every thread of the block in turn, so each round of resumes is
// one barrier phase.
struct emu_dim3 { unsigned int x = 1, y = 1, z = 1; };
emu_dim3 threadIdx, blockIdx, blockDim, gridDim;

struct emu_thread { ucontext_t context; emu_dim3 index; bool done; };
static ucontext_t emu_scheduler;
static emu_thread* emu_current = nullptr;
static void (*emu_run)(void*) = nullptr;
static void* emu_body = nullptr;
static std::vector<char> emu_stacks;
static const size_t EMU_STACK = 1 << 16;

#define __global__
#define __device__
#define __forceinline__ inline
#define __shared__ static

inline void __syncthreads() { swapcontext(&emu_current->context, &emu_scheduler); }

static void emu_entry() {
    emu_run(emu_body);
    emu_current->done = true;                // returning resumes uc_link, the scheduler
}

template <class Body>
void emu_launch(emu_dim3 grid, emu_dim3 block, Body body) {
    gridDim = grid;
    blockDim = block;
    emu_body = &body;
    emu_run = [](void* b) { (*static_cast<Body*>(b))(); };
    const unsigned int count = block.x * block.y * block.z;
    if (emu_stacks.size() < count * EMU_STACK) emu_stacks.resize(count * EMU_STACK);
    std::vector<emu_thread> threads(count);
    for (unsigned int bz = 0; bz < grid.z; ++bz)
    for (unsigned int by = 0; by < grid.y; ++by)
    for (unsigned int bx = 0; bx < grid.x; ++bx) {
        blockIdx = {bx, by, bz};
        for (unsigned int t = 0; t < count; ++t) {
            emu_thread& th = threads[t];
            th.index = {t % block.x, t / block.x % block.y, t / (block.x * block.y)};
            th.done = false;
            getcontext(&th.context);
            th.context.uc_stack.ss_sp = emu_stacks.data() + t * EMU_STACK;
            th.context.uc_stack.ss_size = EMU_STACK;
            th.context.uc_link = &emu_scheduler;
            makecontext(&th.context, emu_entry, 0);
        }
        for (bool running = true; running;) {
            running = false;
            for (auto& th : threads) {
                if (th.done) continue;
                emu_current = &th;
                threadIdx = th.index;
                swapcontext(&emu_scheduler, &th.context);
                running = running || !th.done;
            }
        }
    }
}
"""

_CTYPES = {"int": ctypes.c_int, "long long": ctypes.c_longlong, "double": ctypes.c_double,
           "float": ctypes.c_float, "unsigned long long": ctypes.c_ulonglong}
_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def compiler_available() -> bool:
    """True when g++ can build the emulation."""
    return shutil.which("g++") is not None


def _instances(kernel: Kernel) -> list[np.dtype | None]:
    return list(_DTYPES) if kernel.templated else [None]


def _symbol(kernel: Kernel, dtype: np.dtype | None) -> str:
    return f"emu_{kernel.name}" + (f"_{c_type(dtype)}" if dtype is not None else "")


def _wrapper(kernel: Kernel, dtype: np.dtype | None) -> str:
    params = kernel.c_params(dtype if dtype is not None else np.float64)
    declared = ", ".join(f"{p} a{i}" for i, p in enumerate(params))
    passed = ", ".join(f"a{i}" for i in range(len(params)))
    name = kernel.instance(dtype) if dtype is not None else kernel.name
    return (f'extern "C" void {_symbol(kernel, dtype)}(unsigned gx, unsigned gy, unsigned bx, '
            f"unsigned by, {declared}) {{\n"
            f"    emu_launch({{gx, gy, 1}}, {{bx, by, 1}}, [&] {{ {name}({passed}); }});\n}}\n")


def build(directory: Path | None = None) -> ctypes.CDLL:
    """Compile the kernels for the CPU (cached by source hash) and load them."""
    wrappers = [_wrapper(k, dt) for k in KERNELS.values() for dt in _instances(k)]
    code = "\n".join([SHIM, SOURCE, *wrappers])
    digest = hashlib.sha256(code.encode()).hexdigest()[:16]
    directory = Path(directory or tempfile.gettempdir()) / "fastgan-cuda-emulator"
    directory.mkdir(parents=True, exist_ok=True)
    library = directory / f"kernels-{digest}.so"
    if not library.exists():
        source = directory / f"kernels-{digest}.cpp"
        source.write_text(code)
        partial = directory / f"kernels-{digest}.so.partial"
        subprocess.run(["g++", "-std=c++17", "-O1", "-shared", "-fPIC",
                        "-o", str(partial), str(source)], check=True, capture_output=True)
        partial.replace(library)
    lib = ctypes.CDLL(str(library))
    for kernel in KERNELS.values():
        for dtype in _instances(kernel):
            function = getattr(lib, _symbol(kernel, dtype))
            params = kernel.c_params(dtype if dtype is not None else np.float64)
            function.argtypes = [ctypes.c_uint] * 4 + [
                ctypes.c_void_p if p.endswith("*") else _CTYPES[p] for p in params]
            function.restype = None
    return lib


class DeviceArray(np.ndarray):
    """A NumPy array that plays a device array (so host and device sources can be told apart)."""


class _DeviceNumpy:
    """NumPy as the emulated device's array module: allocations return DeviceArrays."""

    def __getattr__(self, name: str) -> Any:
        return getattr(np, name)

    def empty(self, shape: Any, dtype: Any = float) -> DeviceArray:
        return np.empty(shape, dtype).view(DeviceArray)

    def zeros(self, shape: Any, dtype: Any = float) -> DeviceArray:
        return np.zeros(shape, dtype).view(DeviceArray)

    def asarray(self, a: Any, dtype: Any = None) -> DeviceArray:
        return np.array(a, dtype=dtype).view(DeviceArray)


class EmulatedGraph:
    """Recorded launches and copies, replayed in order like a CUDA graph."""

    def __init__(self, work: list[Callable[[], None]]) -> None:
        self.work = work

    def launch(self) -> None:
        """Run every recorded operation once."""
        for operation in self.work:
            operation()


class EmulatedDevice:
    """The CupyDevice interface on the CPU (see the module docstring)."""

    def __init__(self, library: ctypes.CDLL, multiprocessors: int = 2) -> None:
        self.library = library
        self.xp = _DeviceNumpy()
        self.multiprocessors = multiprocessors
        self.launches: list[str] = []
        self._recording: list[Callable[[], None]] | None = None

    def is_device_array(self, a: Any) -> bool:
        """Whether ``a`` lives on the (emulated) device."""
        return isinstance(a, DeviceArray)

    def _run(self, operation: Callable[[], None]) -> None:
        if self._recording is None:
            operation()
        else:
            self._recording.append(operation)

    def launch(self, kernel: Kernel, dtype: Any, grid: tuple[int, ...], block: tuple[int, ...],
               args: tuple) -> None:
        """Check the arguments as the real device does, then run (or record) the kernel."""
        converted = kernel.arguments(dtype, args)
        dtype = np.dtype(dtype) if kernel.templated else None
        function = getattr(self.library, _symbol(kernel, dtype))
        grid, block = (*grid, 1)[:2], (*block, 1)[:2]
        values = [None if a is None else a.ctypes.data if isinstance(a, np.ndarray) else a.item()
                  for a in converted]
        self.launches.append(kernel.name)
        self._run(lambda: function(*grid, *block, *values))

    def gemm(self, a: Any, b: Any, out: Any, trans_a: bool, trans_b: bool,
             accumulate: bool) -> None:
        """``out = op(a) @ op(b)`` (``+=`` when ``accumulate``) with NumPy (cuBLAS is not
        emulated)."""
        first, second = a.T if trans_a else a, b.T if trans_b else b
        self._run(lambda: np.add(out, first @ second, out=out) if accumulate
                  else np.matmul(first, second, out=out))

    def copy(self, src: Any, dst: Any) -> None:
        """Device-to-device copy of equal contiguous arrays."""
        self._run(lambda: np.copyto(dst, src))

    def upload(self, host: np.ndarray, dst: Any) -> None:
        """Host-to-device copy; like a CUDA stream, refused while capturing."""
        if self._recording is not None:
            raise RuntimeError("host-to-device copy while capturing a graph")
        np.copyto(dst, host)

    def download(self, a: Any) -> np.ndarray:
        """Device-to-host copy; refused while capturing."""
        if self._recording is not None:
            raise RuntimeError("device-to-host copy while capturing a graph")
        return np.array(a).view(np.ndarray)

    def download_into(self, a: Any, out: np.ndarray) -> None:
        """Device-to-host copy into ``out``; refused while capturing."""
        if self._recording is not None:
            raise RuntimeError("device-to-host copy while capturing a graph")
        np.copyto(out, a)

    @contextlib.contextmanager
    def capture(self) -> Iterator[SimpleNamespace]:
        """Record instead of run; the recording is ``captured.graph`` after the block."""
        captured = SimpleNamespace(graph=None)
        self._recording = []
        try:
            yield captured
            captured.graph = EmulatedGraph(self._recording)
        finally:
            self._recording = None
