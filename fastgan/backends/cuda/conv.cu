// Convolution geometry (see fastgan.backends.base.ConvGeometry): samples of H x W x C
// channels-last pixels, a k x k window with stride s, pad_top / pad_left zero rows / columns,
// Ho x Wo outputs; total = the elements written. Every kernel below gathers (one thread
// writes each output element), so there are no atomics and the sums run in a fixed order.

// Element e of an (n, H, W, C) channels-last array is pixel (i, h, w) channel c.
struct Pixel { long long i; int h, w, c; };

__device__ __forceinline__ Pixel pixel(long long e, int H, int W, int C) {
    Pixel p;
    p.c = e % C; e /= C;
    p.w = e % W; e /= W;
    p.h = e % H;
    p.i = e / H;
    return p;
}

// cols[(i, ho, wo), (dy, dx, c)] = x[i, ho s - pad_top + dy, wo s - pad_left + dx, c], or 0
// where that pixel falls on the padding.
template <typename T>
__global__ void im2col(const T* __restrict__ x, T* __restrict__ cols, long long total, int H,
                       int W, int C, int k, int s, int pad_top, int pad_left, int Ho, int Wo) {
    for (long long e = first_index(); e < total; e += index_stride()) {
        long long t = e;
        const int c = t % C; t /= C;
        const int dx = t % k; t /= k;
        const int dy = t % k; t /= k;
        const int wo = t % Wo; t /= Wo;
        const int ho = t % Ho;
        const long long i = t / Ho;
        const int h = ho * s - pad_top + dy, w = wo * s - pad_left + dx;
        cols[e] = (h >= 0 && h < H && w >= 0 && w < W) ? x[((i * H + h) * W + w) * C + c] : T(0);
    }
}

// The adjoint: dx[i, h, w, c] = the sum of the cols entries that copied pixel (h, w), added
// over (dy, dx) in row-major order as the reference does.
template <typename T>
__global__ void col2im(const T* __restrict__ cols, T* __restrict__ dx_out, long long total,
                       int H, int W, int C, int k, int s, int pad_top, int pad_left, int Ho,
                       int Wo) {
    for (long long e = first_index(); e < total; e += index_stride()) {
        const Pixel p = pixel(e, H, W, C);
        T sum = T(0);
        for (int dy = 0; dy < k; ++dy) {
            const int row = p.h + pad_top - dy;               // = ho s
            if (row < 0 || row % s || row / s >= Ho) continue;
            for (int dx = 0; dx < k; ++dx) {
                const int col = p.w + pad_left - dx;          // = wo s
                if (col < 0 || col % s || col / s >= Wo) continue;
                sum += cols[(((p.i * Ho + row / s) * Wo + col / s) * k + dy) * k * C
                            + (long long)dx * C + p.c];
            }
        }
        dx_out[e] = sum;
    }
}

// y[i, 2h + a, 2w + b, c] = x[i, h, w, c]; total = n 4 H W C.
template <typename T>
__global__ void upsample2x(const T* __restrict__ x, T* __restrict__ y, long long total, int H,
                           int W, int C) {
    for (long long e = first_index(); e < total; e += index_stride()) {
        const Pixel p = pixel(e, 2 * H, 2 * W, C);
        y[e] = x[((p.i * H + p.h / 2) * W + p.w / 2) * C + p.c];
    }
}

// dx[i, h, w, c] = the sum of dy over the 2 x 2 block pixel (h, w) became; total = n H W C.
template <typename T>
__global__ void upsample2x_backward(const T* __restrict__ dy, T* __restrict__ dx,
                                    long long total, int H, int W, int C) {
    for (long long e = first_index(); e < total; e += index_stride()) {
        const Pixel p = pixel(e, H, W, C);
        const long long top = ((p.i * 2 * H + 2 * p.h) * 2 * W + 2 * p.w) * C + p.c;
        const long long below = 2LL * W * C;
        dx[e] = (dy[top] + dy[top + C]) + (dy[top + below] + dy[top + below + C]);
    }
}
