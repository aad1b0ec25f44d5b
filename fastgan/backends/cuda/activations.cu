// act(z); comparisons are written so that NaN propagates, as numpy.maximum does.
template <typename T>
__device__ __forceinline__ T activate(T z, int act, T alpha) {
    switch (act) {
    case ACT_RELU: return z < T(0) ? T(0) : z;
    case ACT_LEAKY_RELU: return z < alpha * z ? alpha * z : z;   // max(z, alpha z), alpha < 1
    case ACT_TANH: return tanh(z);
    case ACT_SIGMOID: return T(1) / (T(1) + exp(-z));
    default: return z;
    }
}

// act'(z) expressed through the output y = act(z).
template <typename T>
__device__ __forceinline__ T derivative(T y, int act, T alpha) {
    switch (act) {
    case ACT_RELU: return y > T(0) ? T(1) : T(0);
    case ACT_LEAKY_RELU: return y > T(0) ? T(1) : alpha;
    case ACT_TANH: return T(1) - y * y;
    case ACT_SIGMOID: return y * (T(1) - y);
    default: return T(1);
    }
}
