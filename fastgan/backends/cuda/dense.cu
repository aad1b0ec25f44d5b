// y = act(y + bias[column]) over a (n / cols) x cols row-major array.
template <typename T>
__global__ void bias_act(T* __restrict__ y, const T* __restrict__ bias, long long n, int cols,
                         int act, T alpha) {
    for (long long i = first_index(); i < n; i += index_stride())
        y[i] = activate(y[i] + bias[i % cols], act, alpha);
}

// dy *= act'(y), elementwise.
template <typename T>
__global__ void act_grad(T* __restrict__ dy, const T* __restrict__ y, long long n, int act,
                         T alpha) {
    for (long long i = first_index(); i < n; i += index_stride())
        dy[i] *= derivative(y[i], act, alpha);
}

// Block (bx, by) takes columns [32 bx, 32 bx + 32) and rows [by rpc, (by + 1) rpc) of a
// rows x cols array: dy *= act'(y) in place, and sums[by * cols + col] = the chunk's column
// sum of the new dy. With act == COLSUM_ONLY it only sums (y unused, dy unchanged).
template <typename T>
__global__ void act_grad_colsum(T* __restrict__ dy, const T* __restrict__ y,
                                T* __restrict__ sums, int rows, int cols, int act, T alpha,
                                int rows_per_chunk) {
    __shared__ T partial[ROW_LANES][TILE_COLS];
    const int col = blockIdx.x * TILE_COLS + threadIdx.x;
    const int begin = blockIdx.y * rows_per_chunk;
    const int end = smaller(rows, begin + rows_per_chunk);
    T acc = T(0);
    if (col < cols) {
        for (int r = begin + threadIdx.y; r < end; r += ROW_LANES) {
            const long long i = (long long)r * cols + col;
            T d = dy[i];
            if (act != COLSUM_ONLY) {
                d *= derivative(y[i], act, alpha);
                dy[i] = d;
            }
            acc += d;
        }
    }
    partial[threadIdx.y][threadIdx.x] = acc;
    __syncthreads();
    if (threadIdx.y == 0 && col < cols) {
        T total = partial[0][threadIdx.x];
        for (int lane = 1; lane < ROW_LANES; ++lane) total += partial[lane][threadIdx.x];
        sums[(long long)blockIdx.y * cols + col] = total;
    }
}

// The end of a one-block loss kernel, every thread calling it with its partial sums over
// n logits: stats[0] = scale (sum of loss); stats[1] = (sum of prob_sum) / n.
template <typename T>
__device__ void write_loss_stats(T loss, T prob_sum, T* __restrict__ stats, int n, T scale) {
    __shared__ T loss_part[REDUCE_THREADS];
    __shared__ T prob_part[REDUCE_THREADS];
    loss_part[threadIdx.x] = loss;
    prob_part[threadIdx.x] = prob_sum;
    __syncthreads();
    for (int stride = REDUCE_THREADS / 2; stride > 0; stride /= 2) {
        if (threadIdx.x < stride) {
            loss_part[threadIdx.x] += loss_part[threadIdx.x + stride];
            prob_part[threadIdx.x] += prob_part[threadIdx.x + stride];
        }
        __syncthreads();
    }
    if (threadIdx.x == 0) {
        stats[0] = scale * loss_part[0];
        stats[1] = prob_part[0] / T(n);
    }
}

// sigmoid(l) from e = exp(-|l|) in (0, 1]: never overflows.
template <typename T>
__device__ __forceinline__ T stable_sigmoid(T l, T e) {
    return l >= T(0) ? T(1) / (T(1) + e) : e / (T(1) + e);
}

// Stable BCE with logits against a constant target t, one block:
// grad = scale (sigmoid(l) - t); stats[0] = scale sum(bce); stats[1] = mean(sigmoid(l)).
template <typename T>
__global__ void bce_logits(const T* __restrict__ logits, T* __restrict__ grad,
                           T* __restrict__ stats, int n, T target, T scale) {
    T loss = T(0), prob_sum = T(0);
    for (int i = threadIdx.x; i < n; i += REDUCE_THREADS) {
        const T l = logits[i];
        const T e = exp(-fabs(l));
        const T p = stable_sigmoid(l, e);
        grad[i] = (p - target) * scale;
        loss += (l < T(0) ? T(0) : l) - l * target + log1p(e);
        prob_sum += p;
    }
    write_loss_stats(loss, prob_sum, stats, n, scale);
}

// A loss f(l) that needs no sigmoid, one block: grad = scale f'(l); stats as bce_logits's.
// LOSS_HINGE f = max(0, 1 - t l), f' = -t [t l < 1]; LOSS_SQUARED f = (l - t)^2 / 2,
// f' = l - t; LOSS_LINEAR f = l, f' = 1.
template <typename T>
__global__ void score_logits(const T* __restrict__ logits, T* __restrict__ grad,
                             T* __restrict__ stats, int n, int kind, T target, T scale) {
    T loss = T(0), prob_sum = T(0);
    for (int i = threadIdx.x; i < n; i += REDUCE_THREADS) {
        const T l = logits[i];
        T slope;
        if (kind == LOSS_HINGE) {
            const T margin = T(1) - target * l;
            loss += margin > T(0) ? margin : T(0);
            slope = margin > T(0) ? -target : T(0);
        } else if (kind == LOSS_SQUARED) {
            slope = l - target;
            loss += slope * slope / T(2);
        } else {
            loss += l;
            slope = T(1);
        }
        grad[i] = slope * scale;
        prob_sum += stable_sigmoid(l, exp(-fabs(l)));
    }
    write_loss_stats(loss, prob_sum, stats, n, scale);
}

template <typename T>
__global__ void multiply(const T* __restrict__ a, const T* __restrict__ b, T* __restrict__ out,
                         long long n) {
    for (long long i = first_index(); i < n; i += index_stride()) out[i] = a[i] * b[i];
}
