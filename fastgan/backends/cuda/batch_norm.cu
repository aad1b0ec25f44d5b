// Training-mode batch norm, one block per 32 columns: batch mean, biased variance (two
// passes), invstd, xhat, y = gamma xhat + beta, running = m running + (1 - m) batch.
template <typename T>
__global__ void bn_train(const T* __restrict__ x, const T* __restrict__ gamma,
                         const T* __restrict__ beta, T* __restrict__ y, T* __restrict__ xhat,
                         T* __restrict__ invstd, T* __restrict__ running_mean,
                         T* __restrict__ running_var, int rows, int cols, T momentum, T eps) {
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
    if (ty == 0) {
        T total = partial[0][tx];
        for (int lane = 1; lane < ROW_LANES; ++lane) total += partial[lane][tx];
        mean_of[tx] = total / T(rows);
    }
    __syncthreads();
    const T mean = mean_of[tx];
    acc = T(0);
    if (active)
        for (int r = ty; r < rows; r += ROW_LANES) {
            const T d = x[(long long)r * cols + col] - mean;
            acc += d * d;
        }
    partial[ty][tx] = acc;
    __syncthreads();
    if (ty == 0) {
        T total = partial[0][tx];
        for (int lane = 1; lane < ROW_LANES; ++lane) total += partial[lane][tx];
        const T var = total / T(rows);
        const T inv = T(1) / sqrt(var + eps);
        invstd_of[tx] = inv;
        if (active) {
            invstd[col] = inv;
            running_mean[col] = momentum * running_mean[col] + (T(1) - momentum) * mean;
            running_var[col] = momentum * running_var[col] + (T(1) - momentum) * var;
        }
    }
    __syncthreads();
    if (active) {
        const T inv = invstd_of[tx], g = gamma[col], b = beta[col];
        for (int r = ty; r < rows; r += ROW_LANES) {
            const long long i = (long long)r * cols + col;
            const T h = (x[i] - mean) * inv;
            xhat[i] = h;
            y[i] = h * g + b;
        }
    }
}

// Inference-mode batch norm: y = (x - running_mean) (gamma / sqrt(running_var + eps)) + beta.
template <typename T>
__global__ void bn_eval(const T* __restrict__ x, const T* __restrict__ gamma,
                        const T* __restrict__ beta, T* __restrict__ y,
                        const T* __restrict__ running_mean, const T* __restrict__ running_var,
                        long long n, int cols, T eps) {
    for (long long i = first_index(); i < n; i += index_stride()) {
        const int c = (int)(i % cols);
        y[i] = (x[i] - running_mean[c]) * (gamma[c] / sqrt(running_var[c] + eps)) + beta[c];
    }
}

// Backward of training-mode batch norm, one block per 32 columns: dbeta = sum dy,
// dgamma = sum dy xhat; dx = gamma invstd (dy - mean dy - xhat mean(dy xhat)) if dx given.
template <typename T>
__global__ void bn_backward(const T* __restrict__ dy, const T* __restrict__ xhat,
                            const T* __restrict__ gamma, const T* __restrict__ invstd,
                            T* __restrict__ dgamma, T* __restrict__ dbeta, T* __restrict__ dx,
                            int rows, int cols) {
    __shared__ T dy_part[ROW_LANES][TILE_COLS];
    __shared__ T dyx_part[ROW_LANES][TILE_COLS];
    __shared__ T mean_dy[TILE_COLS];
    __shared__ T mean_dyx[TILE_COLS];
    const int tx = threadIdx.x, ty = threadIdx.y;
    const int col = blockIdx.x * TILE_COLS + tx;
    const bool active = col < cols;
    T acc_dy = T(0), acc_dyx = T(0);
    if (active)
        for (int r = ty; r < rows; r += ROW_LANES) {
            const long long i = (long long)r * cols + col;
            acc_dy += dy[i];
            acc_dyx += dy[i] * xhat[i];
        }
    dy_part[ty][tx] = acc_dy;
    dyx_part[ty][tx] = acc_dyx;
    __syncthreads();
    if (ty == 0) {
        T sum_dy = dy_part[0][tx], sum_dyx = dyx_part[0][tx];
        for (int lane = 1; lane < ROW_LANES; ++lane) {
            sum_dy += dy_part[lane][tx];
            sum_dyx += dyx_part[lane][tx];
        }
        mean_dy[tx] = sum_dy / T(rows);
        mean_dyx[tx] = sum_dyx / T(rows);
        if (active) {
            dbeta[col] = sum_dy;
            dgamma[col] = sum_dyx;
        }
    }
    __syncthreads();
    if (active && dx != nullptr) {
        const T scale = gamma[col] * invstd[col], mdy = mean_dy[tx], mdyx = mean_dyx[tx];
        for (int r = ty; r < rows; r += ROW_LANES) {
            const long long i = (long long)r * cols + col;
            dx[i] = (dy[i] - mdy - xhat[i] * mdyx) * scale;
        }
    }
}
