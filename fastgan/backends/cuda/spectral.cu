// Spectral normalisation of an (rows = in) x (cols = out) row-major weight w, each kernel one
// block of REDUCE_THREADS threads; u has cols values, v rows values.

// The block's sum of every thread's value, returned to every thread.
template <typename T>
__device__ T block_sum(T value) {
    __shared__ T part[REDUCE_THREADS];
    part[threadIdx.x] = value;
    __syncthreads();
    for (int stride = REDUCE_THREADS / 2; stride > 0; stride /= 2) {
        if (threadIdx.x < stride) part[threadIdx.x] += part[threadIdx.x + stride];
        __syncthreads();
    }
    const T total = part[0];
    __syncthreads();                               // every thread has read it: reusable
    return total;
}

template <typename T>
__device__ __forceinline__ T inverse_norm(T squares) {
    const T norm = sqrt(squares);
    return T(1) / (norm > T(NORM_EPS) ? norm : T(NORM_EPS));
}

// One power iteration, in place: v = w u / |w u|, then u = w^T v / |w^T v|.
template <typename T>
__global__ void power_iteration(const T* __restrict__ w, T* __restrict__ u, T* __restrict__ v,
                                int rows, int cols) {
    T squares = T(0);
    for (int i = threadIdx.x; i < rows; i += REDUCE_THREADS) {
        T total = T(0);
        for (int j = 0; j < cols; ++j) total += w[(long long)i * cols + j] * u[j];
        v[i] = total;
        squares += total * total;
    }
    const T v_scale = inverse_norm(block_sum(squares));   // also: every thread has read u
    for (int i = threadIdx.x; i < rows; i += REDUCE_THREADS) v[i] *= v_scale;
    __syncthreads();
    squares = T(0);
    for (int j = threadIdx.x; j < cols; j += REDUCE_THREADS) {
        T total = T(0);
        for (int i = 0; i < rows; ++i) total += w[(long long)i * cols + j] * v[i];
        u[j] = total;
        squares += total * total;
    }
    const T u_scale = inverse_norm(block_sum(squares));
    for (int j = threadIdx.x; j < cols; j += REDUCE_THREADS) u[j] *= u_scale;
}

// sigma[0] = v^T w u (u, v fixed) and w_bar = w / sigma.
template <typename T>
__global__ void spectral_weight(const T* __restrict__ w, const T* __restrict__ u,
                                const T* __restrict__ v, T* __restrict__ sigma,
                                T* __restrict__ w_bar, int rows, int cols) {
    T partial = T(0);
    for (int i = threadIdx.x; i < rows; i += REDUCE_THREADS) {
        T row = T(0);
        for (int j = 0; j < cols; ++j) row += w[(long long)i * cols + j] * u[j];
        partial += v[i] * row;
    }
    const T total = block_sum(partial);
    if (threadIdx.x == 0) sigma[0] = total;
    const T scale = T(1) / total;
    const long long n = (long long)rows * cols;
    for (long long k = threadIdx.x; k < n; k += REDUCE_THREADS) w_bar[k] = w[k] * scale;
}

// grad = dL/dw_bar in, dL/dw out: grad = (grad - (sum grad * w_bar) v u^T) / sigma.
template <typename T>
__global__ void spectral_backward(T* __restrict__ grad, const T* __restrict__ w_bar,
                                  const T* __restrict__ u, const T* __restrict__ v,
                                  const T* __restrict__ sigma, int rows, int cols) {
    const long long n = (long long)rows * cols;
    T partial = T(0);
    for (long long k = threadIdx.x; k < n; k += REDUCE_THREADS) partial += grad[k] * w_bar[k];
    const T overlap = block_sum(partial);
    const T s = sigma[0];
    for (long long k = threadIdx.x; k < n; k += REDUCE_THREADS)
        grad[k] = (grad[k] - overlap * v[k / cols] * u[k % cols]) / s;
}
