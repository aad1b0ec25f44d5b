"""The CUDA kernels of the CuPy backend: one C++ source and the signature of each kernel.

The source is plain CUDA C++ without headers, so NVRTC compiles it as it is (through
``cupy.RawModule``); the tests also compile it with nvcc, and with g++ to run it on the CPU
under a small emulation of the CUDA thread model. Every ``KERNELS`` entry states its
parameters' C types once; launches convert and check their arguments against it.

Launch conventions (the backend follows them):

* elementwise kernels loop grid-stride over ``n`` elements: any 1-D grid works;
* column kernels use blocks of ``TILE_COLS x ROW_LANES`` threads, one block column per
  32 feature columns, so a warp reads 32 consecutive floats of one row;
* ``bce_logits`` runs as one block of ``REDUCE_THREADS`` threads;
* ``schedule_*`` and ``philox_advance`` run as one thread.

No kernel uses atomics: every reduction adds in a fixed order, so results are bit-for-bit
repeatable (and a replayed CUDA graph equals the eager step).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ConfigError
from .base import IDENTITY, LEAKY_RELU, RELU, SIGMOID, TANH
from .philox import RNG_DROPOUT, RNG_NORMAL, RNG_UNIFORM

TILE_COLS = 32          # columns per block in the column kernels (one warp wide)
ROW_LANES = 8           # rows read in parallel per column in the column kernels
REDUCE_THREADS = 256    # threads of the single-block reductions
COLSUM_ONLY = -1        # act code of act_grad_colsum: add the columns up, change nothing
CONV_GEOMETRY = ("int",) * 9
"""The geometry parameters of the convolution kernels: ``ConvGeometry.kernel_args``."""

SOURCE = rf"""
// fastgan kernels. Activation codes match fastgan.backends.base.
#define ACT_IDENTITY {IDENTITY}
#define ACT_RELU {RELU}
#define ACT_LEAKY_RELU {LEAKY_RELU}
#define ACT_TANH {TANH}
#define ACT_SIGMOID {SIGMOID}
#define COLSUM_ONLY ({COLSUM_ONLY})
#define TILE_COLS {TILE_COLS}
#define ROW_LANES {ROW_LANES}
#define REDUCE_THREADS {REDUCE_THREADS}
#define RNG_NORMAL {RNG_NORMAL}
#define RNG_UNIFORM {RNG_UNIFORM}
#define RNG_DROPOUT {RNG_DROPOUT}

__device__ __forceinline__ long long first_index() {{
    return (long long)blockIdx.x * blockDim.x + threadIdx.x;
}}

__device__ __forceinline__ long long index_stride() {{
    return (long long)gridDim.x * blockDim.x;
}}

__device__ __forceinline__ int smaller(int a, int b) {{ return a < b ? a : b; }}

// act(z); comparisons are written so that NaN propagates, as numpy.maximum does.
template <typename T>
__device__ __forceinline__ T activate(T z, int act, T alpha) {{
    switch (act) {{
    case ACT_RELU: return z < T(0) ? T(0) : z;
    case ACT_LEAKY_RELU: return z < alpha * z ? alpha * z : z;   // max(z, alpha z), alpha < 1
    case ACT_TANH: return tanh(z);
    case ACT_SIGMOID: return T(1) / (T(1) + exp(-z));
    default: return z;
    }}
}}

// act'(z) expressed through the output y = act(z).
template <typename T>
__device__ __forceinline__ T derivative(T y, int act, T alpha) {{
    switch (act) {{
    case ACT_RELU: return y > T(0) ? T(1) : T(0);
    case ACT_LEAKY_RELU: return y > T(0) ? T(1) : alpha;
    case ACT_TANH: return T(1) - y * y;
    case ACT_SIGMOID: return y * (T(1) - y);
    default: return T(1);
    }}
}}

// y = act(y + bias[column]) over a (n / cols) x cols row-major array.
template <typename T>
__global__ void bias_act(T* __restrict__ y, const T* __restrict__ bias, long long n, int cols,
                         int act, T alpha) {{
    for (long long i = first_index(); i < n; i += index_stride())
        y[i] = activate(y[i] + bias[i % cols], act, alpha);
}}

// dy *= act'(y), elementwise.
template <typename T>
__global__ void act_grad(T* __restrict__ dy, const T* __restrict__ y, long long n, int act,
                         T alpha) {{
    for (long long i = first_index(); i < n; i += index_stride())
        dy[i] *= derivative(y[i], act, alpha);
}}

// Block (bx, by) takes columns [32 bx, 32 bx + 32) and rows [by rpc, (by + 1) rpc) of a
// rows x cols array: dy *= act'(y) in place, and sums[by * cols + col] = the chunk's column
// sum of the new dy. With act == COLSUM_ONLY it only sums (y unused, dy unchanged).
template <typename T>
__global__ void act_grad_colsum(T* __restrict__ dy, const T* __restrict__ y,
                                T* __restrict__ sums, int rows, int cols, int act, T alpha,
                                int rows_per_chunk) {{
    __shared__ T partial[ROW_LANES][TILE_COLS];
    const int col = blockIdx.x * TILE_COLS + threadIdx.x;
    const int begin = blockIdx.y * rows_per_chunk;
    const int end = smaller(rows, begin + rows_per_chunk);
    T acc = T(0);
    if (col < cols) {{
        for (int r = begin + threadIdx.y; r < end; r += ROW_LANES) {{
            const long long i = (long long)r * cols + col;
            T d = dy[i];
            if (act != COLSUM_ONLY) {{
                d *= derivative(y[i], act, alpha);
                dy[i] = d;
            }}
            acc += d;
        }}
    }}
    partial[threadIdx.y][threadIdx.x] = acc;
    __syncthreads();
    if (threadIdx.y == 0 && col < cols) {{
        T total = partial[0][threadIdx.x];
        for (int lane = 1; lane < ROW_LANES; ++lane) total += partial[lane][threadIdx.x];
        sums[(long long)blockIdx.y * cols + col] = total;
    }}
}}

// Stable BCE with logits against a constant target t, one block:
// grad = scale (sigmoid(l) - t); stats[0] = scale sum(bce); stats[1] = mean(sigmoid(l)).
template <typename T>
__global__ void bce_logits(const T* __restrict__ logits, T* __restrict__ grad,
                           T* __restrict__ stats, int n, T target, T scale) {{
    __shared__ T loss_part[REDUCE_THREADS];
    __shared__ T prob_part[REDUCE_THREADS];
    T loss = T(0), prob_sum = T(0);
    for (int i = threadIdx.x; i < n; i += REDUCE_THREADS) {{
        const T l = logits[i];
        const T e = exp(-fabs(l));                                  // in (0, 1]
        const T p = l >= T(0) ? T(1) / (T(1) + e) : e / (T(1) + e);
        grad[i] = (p - target) * scale;
        loss += (l < T(0) ? T(0) : l) - l * target + log1p(e);
        prob_sum += p;
    }}
    loss_part[threadIdx.x] = loss;
    prob_part[threadIdx.x] = prob_sum;
    __syncthreads();
    for (int stride = REDUCE_THREADS / 2; stride > 0; stride /= 2) {{
        if (threadIdx.x < stride) {{
            loss_part[threadIdx.x] += loss_part[threadIdx.x + stride];
            prob_part[threadIdx.x] += prob_part[threadIdx.x + stride];
        }}
        __syncthreads();
    }}
    if (threadIdx.x == 0) {{
        stats[0] = scale * loss_part[0];
        stats[1] = prob_part[0] / T(n);
    }}
}}

template <typename T>
__global__ void multiply(const T* __restrict__ a, const T* __restrict__ b, T* __restrict__ out,
                         long long n) {{
    for (long long i = first_index(); i < n; i += index_stride()) out[i] = a[i] * b[i];
}}

// Training-mode batch norm, one block per 32 columns: batch mean, biased variance (two
// passes), invstd, xhat, y = gamma xhat + beta, running = m running + (1 - m) batch.
template <typename T>
__global__ void bn_train(const T* __restrict__ x, const T* __restrict__ gamma,
                         const T* __restrict__ beta, T* __restrict__ y, T* __restrict__ xhat,
                         T* __restrict__ invstd, T* __restrict__ running_mean,
                         T* __restrict__ running_var, int rows, int cols, T momentum, T eps) {{
    __shared__ T partial[ROW_LANES][TILE_COLS];
    __shared__ T mean_of[TILE_COLS];
    __shared__ T invstd_of[TILE_COLS];
    const int tx = threadIdx.x, ty = threadIdx.y;
    const int col = blockIdx.x * TILE_COLS + tx;
    const bool active = col < cols;
    T acc = T(0);
    if (active)
        for (int r = ty; r < rows; r += ROW_LANES) acc += x[(long long)r * cols + col];
    partial[ty][tx] = acc;
    __syncthreads();
    if (ty == 0) {{
        T total = partial[0][tx];
        for (int lane = 1; lane < ROW_LANES; ++lane) total += partial[lane][tx];
        mean_of[tx] = total / T(rows);
    }}
    __syncthreads();
    const T mean = mean_of[tx];
    acc = T(0);
    if (active)
        for (int r = ty; r < rows; r += ROW_LANES) {{
            const T d = x[(long long)r * cols + col] - mean;
            acc += d * d;
        }}
    partial[ty][tx] = acc;
    __syncthreads();
    if (ty == 0) {{
        T total = partial[0][tx];
        for (int lane = 1; lane < ROW_LANES; ++lane) total += partial[lane][tx];
        const T var = total / T(rows);
        const T inv = T(1) / sqrt(var + eps);
        invstd_of[tx] = inv;
        if (active) {{
            invstd[col] = inv;
            running_mean[col] = momentum * running_mean[col] + (T(1) - momentum) * mean;
            running_var[col] = momentum * running_var[col] + (T(1) - momentum) * var;
        }}
    }}
    __syncthreads();
    if (active) {{
        const T inv = invstd_of[tx], g = gamma[col], b = beta[col];
        for (int r = ty; r < rows; r += ROW_LANES) {{
            const long long i = (long long)r * cols + col;
            const T h = (x[i] - mean) * inv;
            xhat[i] = h;
            y[i] = h * g + b;
        }}
    }}
}}

// Inference-mode batch norm: y = (x - running_mean) (gamma / sqrt(running_var + eps)) + beta.
template <typename T>
__global__ void bn_eval(const T* __restrict__ x, const T* __restrict__ gamma,
                        const T* __restrict__ beta, T* __restrict__ y,
                        const T* __restrict__ running_mean, const T* __restrict__ running_var,
                        long long n, int cols, T eps) {{
    for (long long i = first_index(); i < n; i += index_stride()) {{
        const int c = (int)(i % cols);
        y[i] = (x[i] - running_mean[c]) * (gamma[c] / sqrt(running_var[c] + eps)) + beta[c];
    }}
}}

// Backward of training-mode batch norm, one block per 32 columns: dbeta = sum dy,
// dgamma = sum dy xhat; dx = gamma invstd (dy - mean dy - xhat mean(dy xhat)) if dx given.
template <typename T>
__global__ void bn_backward(const T* __restrict__ dy, const T* __restrict__ xhat,
                            const T* __restrict__ gamma, const T* __restrict__ invstd,
                            T* __restrict__ dgamma, T* __restrict__ dbeta, T* __restrict__ dx,
                            int rows, int cols) {{
    __shared__ T dy_part[ROW_LANES][TILE_COLS];
    __shared__ T dyx_part[ROW_LANES][TILE_COLS];
    __shared__ T mean_dy[TILE_COLS];
    __shared__ T mean_dyx[TILE_COLS];
    const int tx = threadIdx.x, ty = threadIdx.y;
    const int col = blockIdx.x * TILE_COLS + tx;
    const bool active = col < cols;
    T acc_dy = T(0), acc_dyx = T(0);
    if (active)
        for (int r = ty; r < rows; r += ROW_LANES) {{
            const long long i = (long long)r * cols + col;
            acc_dy += dy[i];
            acc_dyx += dy[i] * xhat[i];
        }}
    dy_part[ty][tx] = acc_dy;
    dyx_part[ty][tx] = acc_dyx;
    __syncthreads();
    if (ty == 0) {{
        T sum_dy = dy_part[0][tx], sum_dyx = dyx_part[0][tx];
        for (int lane = 1; lane < ROW_LANES; ++lane) {{
            sum_dy += dy_part[lane][tx];
            sum_dyx += dyx_part[lane][tx];
        }}
        mean_dy[tx] = sum_dy / T(rows);
        mean_dyx[tx] = sum_dyx / T(rows);
        if (active) {{
            dbeta[col] = sum_dy;
            dgamma[col] = sum_dyx;
        }}
    }}
    __syncthreads();
    if (active && dx != nullptr) {{
        const T scale = gamma[col] * invstd[col], mdy = mean_dy[tx], mdyx = mean_dyx[tx];
        for (int r = ty; r < rows; r += ROW_LANES) {{
            const long long i = (long long)r * cols + col;
            dx[i] = (dy[i] - mdy - xhat[i] * mdyx) * scale;
        }}
    }}
}}

// Optimizer schedule in device memory, so a replayed CUDA graph sees each step's values:
// hyper = [step size lr / (1 - b1^t), 1 / sqrt(1 - b2^t), t, lr]. SGD uses b1 = b2 = 0.
__device__ __forceinline__ void schedule_corrections(double* hyper, double beta1, double beta2) {{
    hyper[0] = hyper[3] / (1.0 - pow(beta1, hyper[2]));
    hyper[1] = 1.0 / sqrt(1.0 - pow(beta2, hyper[2]));
}}

__global__ void schedule_set(double* hyper, double step, double lr, double beta1, double beta2) {{
    hyper[2] = step;
    hyper[3] = lr;
    schedule_corrections(hyper, beta1, beta2);
}}

__global__ void schedule_next(double* hyper, double beta1, double beta2) {{
    hyper[2] += 1.0;
    schedule_corrections(hyper, beta1, beta2);
}}

// p -= lr v with v = momentum v + g (velocity given), else p -= lr g; lr = hyper[0].
template <typename T>
__global__ void sgd(T* __restrict__ p, const T* __restrict__ g, T* __restrict__ velocity,
                    long long n, const double* __restrict__ hyper, T momentum) {{
    const T lr = (T)hyper[0];
    for (long long i = first_index(); i < n; i += index_stride()) {{
        if (velocity != nullptr) {{
            const T v = momentum * velocity[i] + g[i];
            velocity[i] = v;
            p[i] -= lr * v;
        }} else {{
            p[i] -= lr * g[i];
        }}
    }}
}}

// Exponential moving average: a = decay a + (1 - decay) x.
template <typename T>
__global__ void ema(T* __restrict__ average, const T* __restrict__ x, long long n, T decay,
                    T one_minus_decay) {{
    for (long long i = first_index(); i < n; i += index_stride())
        average[i] = decay * average[i] + one_minus_decay * x[i];
}}

// Adam: m = b1 m + c1 g; v = b2 v + c2 g^2; p -= step_size m / (sqrt(v) inv_bc2 + eps),
// with c = 1 - b given by the caller and step_size, inv_bc2 = hyper[0], hyper[1].
template <typename T>
__global__ void adam(T* __restrict__ p, const T* __restrict__ g, T* __restrict__ m,
                     T* __restrict__ v, long long n, const double* __restrict__ hyper, T beta1,
                     T c1, T beta2, T c2, T eps) {{
    const T step_size = (T)hyper[0], inv_bc2 = (T)hyper[1];
    for (long long i = first_index(); i < n; i += index_stride()) {{
        const T gi = g[i];
        const T mi = beta1 * m[i] + c1 * gi;
        const T vi = beta2 * v[i] + c2 * gi * gi;
        m[i] = mi;
        v[i] = vi;
        p[i] -= step_size * mi / (sqrt(vi) * inv_bc2 + eps);
    }}
}}

// Philox4x32-10 (Salmon et al. 2011), counter-based: block (counter, key) -> 4 words.
__device__ __forceinline__ unsigned int mulhi32(unsigned int a, unsigned int b) {{
    return (unsigned int)(((unsigned long long)a * b) >> 32);
}}

__device__ __forceinline__ void philox4x32_10(unsigned int c[4], unsigned int k0,
                                              unsigned int k1) {{
    for (int round = 0; round < 10; ++round) {{
        const unsigned int hi0 = mulhi32(0xD2511F53u, c[0]), lo0 = 0xD2511F53u * c[0];
        const unsigned int hi1 = mulhi32(0xCD9E8D57u, c[2]), lo1 = 0xCD9E8D57u * c[2];
        c[0] = hi1 ^ c[1] ^ k0;
        c[1] = lo1;
        c[2] = hi0 ^ c[3] ^ k1;
        c[3] = lo0;
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }}
}}

// A 32-bit word -> [0, 1): 24 bits for float, 32 bits for double.
__device__ __forceinline__ float unit_interval(unsigned int x, float) {{
    return (float)(x >> 8) * 5.9604644775390625e-08f;
}}

__device__ __forceinline__ double unit_interval(unsigned int x, double) {{
    return (double)x * 2.3283064365386962890625e-10;
}}

template <typename T>
__device__ __forceinline__ void box_muller(unsigned int x0, unsigned int x1, T* z) {{
    const T u1 = T(1) - unit_interval(x0, T(0));                    // in (0, 1]
    const T radius = sqrt(T(-2) * log(u1));
    const T angle = T(6.283185307179586) * unit_interval(x1, T(0));
    z[0] = radius * cos(angle);
    z[1] = radius * sin(angle);
}}

// Element i of draw number *draws takes word i % 4 of the Philox block with counter
// (i / 4, *draws) and key `key`: the stream depends only on (key, draw, i), never on the
// launch shape. kind: RNG_NORMAL (Box-Muller), RNG_UNIFORM in [a, b), RNG_DROPOUT
// (u >= a ? b : 0, i.e. rate a and scale b = 1 / (1 - a)).
template <typename T>
__global__ void philox_fill(T* __restrict__ out, long long n, unsigned long long key,
                            const unsigned long long* __restrict__ draws, int kind, T a, T b) {{
    const unsigned long long draw = *draws;
    const long long blocks = (n + 3) / 4;
    for (long long g = first_index(); g < blocks; g += index_stride()) {{
        unsigned int c[4] = {{(unsigned int)g, (unsigned int)(g >> 32), (unsigned int)draw,
                              (unsigned int)(draw >> 32)}};
        philox4x32_10(c, (unsigned int)key, (unsigned int)(key >> 32));
        T values[4];
        if (kind == RNG_NORMAL) {{
            box_muller(c[0], c[1], values);
            box_muller(c[2], c[3], values + 2);
        }} else {{
            for (int j = 0; j < 4; ++j) {{
                const T u = unit_interval(c[j], T(0));
                values[j] = kind == RNG_UNIFORM ? u * (b - a) + a : (u >= a ? b : T(0));
            }}
        }}
        for (int j = 0; j < 4 && 4 * g + j < n; ++j) out[4 * g + j] = values[j];
    }}
}}

__global__ void philox_advance(unsigned long long* draws) {{ *draws += 1; }}

// Convolution geometry (see fastgan.backends.base.ConvGeometry): samples of H x W x C
// channels-last pixels, a k x k window with stride s, pad_top / pad_left zero rows / columns,
// Ho x Wo outputs; total = the elements written. Every kernel below gathers (one thread
// writes each output element), so there are no atomics and the sums run in a fixed order.

// Element e of an (n, H, W, C) channels-last array is pixel (i, h, w) channel c.
struct Pixel {{ long long i; int h, w, c; }};

__device__ __forceinline__ Pixel pixel(long long e, int H, int W, int C) {{
    Pixel p;
    p.c = e % C; e /= C;
    p.w = e % W; e /= W;
    p.h = e % H;
    p.i = e / H;
    return p;
}}

// cols[(i, ho, wo), (dy, dx, c)] = x[i, ho s - pad_top + dy, wo s - pad_left + dx, c], or 0
// where that pixel falls on the padding.
template <typename T>
__global__ void im2col(const T* __restrict__ x, T* __restrict__ cols, long long total, int H,
                       int W, int C, int k, int s, int pad_top, int pad_left, int Ho, int Wo) {{
    for (long long e = first_index(); e < total; e += index_stride()) {{
        long long t = e;
        const int c = t % C; t /= C;
        const int dx = t % k; t /= k;
        const int dy = t % k; t /= k;
        const int wo = t % Wo; t /= Wo;
        const int ho = t % Ho;
        const long long i = t / Ho;
        const int h = ho * s - pad_top + dy, w = wo * s - pad_left + dx;
        cols[e] = (h >= 0 && h < H && w >= 0 && w < W) ? x[((i * H + h) * W + w) * C + c] : T(0);
    }}
}}

// The adjoint: dx[i, h, w, c] = the sum of the cols entries that copied pixel (h, w), added
// over (dy, dx) in row-major order as the reference does.
template <typename T>
__global__ void col2im(const T* __restrict__ cols, T* __restrict__ dx_out, long long total,
                       int H, int W, int C, int k, int s, int pad_top, int pad_left, int Ho,
                       int Wo) {{
    for (long long e = first_index(); e < total; e += index_stride()) {{
        const Pixel p = pixel(e, H, W, C);
        T sum = T(0);
        for (int dy = 0; dy < k; ++dy) {{
            const int row = p.h + pad_top - dy;               // = ho s
            if (row < 0 || row % s || row / s >= Ho) continue;
            for (int dx = 0; dx < k; ++dx) {{
                const int col = p.w + pad_left - dx;          // = wo s
                if (col < 0 || col % s || col / s >= Wo) continue;
                sum += cols[(((p.i * Ho + row / s) * Wo + col / s) * k + dy) * k * C
                            + (long long)dx * C + p.c];
            }}
        }}
        dx_out[e] = sum;
    }}
}}

// y[i, 2h + a, 2w + b, c] = x[i, h, w, c]; total = n 4 H W C.
template <typename T>
__global__ void upsample2x(const T* __restrict__ x, T* __restrict__ y, long long total, int H,
                           int W, int C) {{
    for (long long e = first_index(); e < total; e += index_stride()) {{
        const Pixel p = pixel(e, 2 * H, 2 * W, C);
        y[e] = x[((p.i * H + p.h / 2) * W + p.w / 2) * C + p.c];
    }}
}}

// dx[i, h, w, c] = the sum of dy over the 2 x 2 block pixel (h, w) became; total = n H W C.
template <typename T>
__global__ void upsample2x_backward(const T* __restrict__ dy, T* __restrict__ dx,
                                    long long total, int H, int W, int C) {{
    for (long long e = first_index(); e < total; e += index_stride()) {{
        const Pixel p = pixel(e, H, W, C);
        const long long top = ((p.i * 2 * H + 2 * p.h) * 2 * W + 2 * p.w) * C + p.c;
        const long long below = 2LL * W * C;
        dx[e] = (dy[top] + dy[top + C]) + (dy[top + below] + dy[top + below + C]);
    }}
}}
"""

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
)


def name_expressions() -> list[str]:
    """Every kernel instance the backend launches (float and double for templates)."""
    names: list[str] = []
    for kernel in KERNELS.values():
        dtypes = _C_TYPES if kernel.templated else [np.dtype(np.float64)]
        names.extend(dict.fromkeys(kernel.instance(dt) for dt in dtypes))
    return names
