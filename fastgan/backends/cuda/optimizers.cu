// Optimizer schedule in device memory, so a replayed CUDA graph sees each step's values:
// hyper = [step size lr / (1 - b1^t), 1 / sqrt(1 - b2^t), t, lr]. SGD uses b1 = b2 = 0.
__device__ __forceinline__ void schedule_corrections(double* hyper, double beta1, double beta2) {
    hyper[0] = hyper[3] / (1.0 - pow(beta1, hyper[2]));
    hyper[1] = 1.0 / sqrt(1.0 - pow(beta2, hyper[2]));
}

__global__ void schedule_set(double* hyper, double step, double lr, double beta1, double beta2) {
    hyper[2] = step;
    hyper[3] = lr;
    schedule_corrections(hyper, beta1, beta2);
}

__global__ void schedule_next(double* hyper, double beta1, double beta2) {
    hyper[2] += 1.0;
    schedule_corrections(hyper, beta1, beta2);
}

// p -= lr v with v = momentum v + g (velocity given), else p -= lr g; lr = hyper[0].
template <typename T>
__global__ void sgd(T* __restrict__ p, const T* __restrict__ g, T* __restrict__ velocity,
                    long long n, const double* __restrict__ hyper, T momentum) {
    const T lr = (T)hyper[0];
    for (long long i = first_index(); i < n; i += index_stride()) {
        if (velocity != nullptr) {
            const T v = momentum * velocity[i] + g[i];
            velocity[i] = v;
            p[i] -= lr * v;
        } else {
            p[i] -= lr * g[i];
        }
    }
}

// Exponential moving average: a = decay a + (1 - decay) x.
template <typename T>
__global__ void ema(T* __restrict__ average, const T* __restrict__ x, long long n, T decay,
                    T one_minus_decay) {
    for (long long i = first_index(); i < n; i += index_stride())
        average[i] = decay * average[i] + one_minus_decay * x[i];
}

// Adam: m = b1 m + c1 g; v = b2 v + c2 g^2; p -= step_size m / (sqrt(v) inv_bc2 + eps),
// with c = 1 - b given by the caller and step_size, inv_bc2 = hyper[0], hyper[1].
template <typename T>
__global__ void adam(T* __restrict__ p, const T* __restrict__ g, T* __restrict__ m,
                     T* __restrict__ v, long long n, const double* __restrict__ hyper, T beta1,
                     T c1, T beta2, T c2, T eps) {
    const T step_size = (T)hyper[0], inv_bc2 = (T)hyper[1];
    for (long long i = first_index(); i < n; i += index_stride()) {
        const T gi = g[i];
        const T mi = beta1 * m[i] + c1 * gi;
        const T vi = beta2 * v[i] + c2 * gi * gi;
        m[i] = mi;
        v[i] = vi;
        p[i] -= step_size * mi / (sqrt(vi) * inv_bc2 + eps);
    }
}
